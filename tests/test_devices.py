import platform
import subprocess
import sys

import pytest
import torch

from nstcli.devices import resolve_precision

CPU = torch.device("cpu")


@pytest.mark.parametrize(("avx512_bf16", "amx", "expected"), [
    (False, False, torch.float32),  # plain AVX-512: oneDNN would emulate bf16, 2-3x slower than fp32
    (True, False, torch.bfloat16),
    (False, True, torch.bfloat16),
])  # fmt: skip
def test_auto_precision_is_bf16_only_on_a_cpu_that_computes_it_in_hardware(
    monkeypatch: pytest.MonkeyPatch, avx512_bf16: bool, amx: bool, expected: torch.dtype
) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert resolve_precision("auto", CPU) == expected


def test_a_named_precision_is_taken_as_given() -> None:
    assert resolve_precision("fp32", CPU) == torch.float32
    assert resolve_precision("bf16", CPU) == torch.bfloat16


# A 256 MB tensor filled and freed, then a 128 MB one filled: prints the second's page faults per page it covers.
# In a child process: keep_freed_memory changes the process's allocator for good.
REFILL_FAULTS = """
import resource, sys, torch
import nstcli.devices as devices
if sys.argv[1] == "keep":
    assert devices.keep_freed_memory()
torch.ones(2**26).sum()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
torch.ones(2**25).sum()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / (2**27 / resource.getpagesize()))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc's malloc")
def test_keep_freed_memory_reuses_freed_blocks_instead_of_faulting_new_pages_in() -> None:
    def faults_per_page(mode: str) -> float:
        done = subprocess.run([sys.executable, "-c", REFILL_FAULTS, mode], capture_output=True, text=True, check=True)
        return float(done.stdout)

    assert faults_per_page("default") > 0.5  # glibc mapped a fresh block: every page faulted in and zeroed
    assert faults_per_page("keep") < 0.05  # the second tensor lies in the first one's freed memory
