"""onnxruntime sessions: which runtimes are installed, which providers to ask for (and their options),
and a session on the best one that really loads."""

from __future__ import annotations

import contextlib
import functools
import io
import os
import signal
import threading
from pathlib import Path

from nstcli.errors import InputError, NstError, UsageError, first_line

PROVIDERS = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
REPAIR_CLASH = "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu"


def quiet_onnxruntime() -> None:
    """onnxruntime logs provider-load failures as red multi-line errors; we report them ourselves."""
    import onnxruntime as ort

    ort.set_default_logger_severity(4)


def installed_runtimes() -> list[str]:
    """Which onnxruntime distributions are installed (more than one means they overwrote each other)."""
    from importlib import metadata  # here, not at the top: importing it costs every nst apply 25 ms

    names = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino")
    found = []
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            metadata.version(name)
            found.append(name)
    return found


def gpu_present() -> bool:
    """Whether an NVIDIA driver sees a GPU here (whether or not onnxruntime can use it)."""
    return Path("/proc/driver/nvidia/gpus").is_dir() or Path("/dev/nvidia0").exists()


def provider_list(choice: str) -> list[str]:
    """The providers to ask onnxruntime for, best first; CPU always last as the fallback."""
    import onnxruntime as ort

    if choice == "auto":
        available = ort.get_available_providers()  # lists what was compiled in, not what loads
        return [name for name in GPU_PROVIDERS if name in available] + ["CPUExecutionProvider"]
    name = PROVIDERS.get(choice.lower(), choice)
    if name not in ort.get_all_providers():
        raise UsageError(f"--provider: unknown provider {choice!r} (choose auto, cpu, cuda or tensorrt)")
    if name == "TensorrtExecutionProvider":
        return [name, "CUDAExecutionProvider", "CPUExecutionProvider"]
    return [name] if name == "CPUExecutionProvider" else [name, "CPUExecutionProvider"]


def provider_options(name: str) -> dict[str, str]:
    """The options onnxruntime gets with provider ``name``."""
    if name == "TensorrtExecutionProvider":
        # Engines are built per input shape; caching them makes later runs start fast.
        cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "nst" / "tensorrt"
        return {"trt_engine_cache_enable": "True", "trt_engine_cache_path": str(cache)}
    return {}


@functools.cache
def _share_cpu_memory() -> None:
    """One CPU memory arena for every session of this process (onnxruntime's environment allocator), once.

    Each session otherwise grows its own arena to its peak and keeps it: the universal model's six sessions
    held 4.7 GB at 2048 px, each fresh arena paid again in page faults. Shared, the next session reuses what
    the last one freed: 3.0 GB, and the run 1.4-2x faster (docs/universal.md)."""
    import onnxruntime as ort

    memory = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
    ort.create_and_register_allocator(memory, ort.OrtArenaCfg(0, -1, -1, -1))  # onnxruntime's default arena settings


def create_session(model: str | bytes, choice: str = "auto", threads: int = 0, spin: bool = True) -> tuple[object, list[str]]:
    """An InferenceSession on the best provider that actually loads, and that provider list.

    onnxruntime retries failed GPU providers on CPU by itself and prints that on stdout, which
    would corrupt ``-o -``; its prints are captured and the providers read back afterwards.
    ``spin=False``: onnxruntime's CPU threads sleep between runs instead of spinning for the next one;
    for callers that do numpy work between runs (the universal model's WCT), which spinning threads
    would take the cores from.
    """
    import onnxruntime as ort

    quiet_onnxruntime()
    wanted = provider_list(choice)
    if "TensorrtExecutionProvider" in wanted:
        Path(provider_options("TensorrtExecutionProvider")["trt_engine_cache_path"]).mkdir(parents=True, exist_ok=True)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 4  # not even errors: nst reports a failed run itself, in one line
    if threads:
        options.intra_op_num_threads = threads
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    _share_cpu_memory()
    options.add_session_config_entry("session.use_env_allocators", "1")
    with contextlib.redirect_stdout(io.StringIO()), _signals_held():
        session = ort.InferenceSession(
            model, sess_options=options, providers=[(name, provider_options(name)) for name in wanted]
        )
    return session, session.get_providers()


@contextlib.contextmanager
def _signals_held():
    """Ctrl-C or a kill while onnxruntime makes a session is delivered when it is made: onnxruntime turns a pending
    interrupt into a failed load, which nst would report as a bad model file. Only the main thread sets handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    handled = {number: handler for number, handler in previous.items() if callable(handler)}
    for number in handled:
        signal.signal(number, lambda received, frame: held.append(received))
    try:
        yield
    finally:
        for number, handler in handled.items():
            signal.signal(number, handler)
        if held:
            handled[held[0]](held[0], None)


def provider_warning(choice: str, loaded: list[str]) -> str | None:
    """One line when a GPU provider was wanted (or a GPU is present) but onnxruntime fell back to CPU."""
    if loaded[0] != "CPUExecutionProvider":
        return None
    if choice == "cpu" or (choice == "auto" and not gpu_present()):
        return None
    clash = len([name for name in installed_runtimes() if name.startswith("onnxruntime")]) > 1
    hint = f"; onnxruntime and onnxruntime-gpu are both installed, repair with: {REPAIR_CLASH}" if clash else ""
    return f"GPU provider did not load (needs CUDA 13 and cuDNN 9 libraries; see nst info); running on CPU{hint}"


def load_session(path: str, choice: str = "auto", threads: int = 0, spin: bool = True) -> tuple[object, list[str]]:
    """:func:`create_session` of the ONNX file at ``path``; InputError for a file onnxruntime cannot load."""
    try:
        return create_session(path, choice, threads, spin)
    except NstError:
        raise
    except Exception as error:  # onnxruntime raises its own exception types for bad files
        raise InputError(f"{path}: cannot load as an ONNX model ({first_line(error)})") from None
