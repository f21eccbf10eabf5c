"""Where tensors run and in what precision: ``--device`` and ``--precision`` of every torch command."""

from __future__ import annotations

import ctypes
import ctypes.util

import torch

from nstcli.errors import UsageError

PRECISIONS = {"auto": None, "fp32": torch.float32, "bf16": torch.bfloat16}


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when present, else the CPU; a CUDA device asked for on a machine without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"unknown device {name!r} (use auto, cpu or cuda[:N])") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {name!r} requested but CUDA is not available")
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"unsupported device {name!r} (use auto, cpu or cuda[:N])")
    return device


def check_precision(name: str) -> None:
    if name not in PRECISIONS:
        raise UsageError(f"unknown precision {name!r} (choose auto, fp32 or bf16)")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes in bf16 in hardware. oneDNN also runs bf16 on plain AVX-512 (what
    ``torch.ops.mkldnn._is_mkldnn_bf16_supported`` reports), but emulated: the descriptor's forward and
    backward 2.2-2.7x slower than float32 (bench/descriptor_layout.py --precision bf16 vs fp32)."""
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def resolve_precision(name: str, device: torch.device) -> torch.dtype:
    """auto = bfloat16 on CUDA and on CPUs with native bf16 (AVX512-BF16/AMX), float32 elsewhere."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" or cpu_has_native_bf16() else torch.float32
    return PRECISIONS[name]


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work (timings); nothing to wait for on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
HEAP_TRIM_THRESHOLD = 2**31 - 1  # bytes of free heap top kept before any is given back (mallopt takes an int)


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed memory for reuse instead of unmapping it; True where it took effect.

    glibc maps every block over 32 MB on its own and unmaps it on free, so each evaluation's feature maps are
    fresh pages that the kernel faults in and zeroes one by one: at 2048 px a whole ``nst optimize`` run spent
    2,025 of its 8,646 CPU seconds in the kernel. From the heap the blocks are reused: kodim08 at 1024 px, 6
    evaluations, two threads, 143 -> 114 s wall and 52 -> 9 s system time, the same image, peak RSS 4.85 ->
    5.43 GB (docs/optimize-quality.md, "A whole default run at 2048 px, and the allocator"). Process-wide, so a
    command calls it, never an engine; a no-op where the C library is not glibc."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    mallopt = getattr(ctypes.CDLL(libc_name), "mallopt", None)
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, HEAP_TRIM_THRESHOLD))
