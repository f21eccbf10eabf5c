"""``nst info``: versions, the onnxruntime providers that really load here, the devices, and the commands
this install can run."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from nstcli import __version__, extras
from nstcli.apply.runtime import REPAIR_CLASH, create_session, installed_runtimes


def environment_report() -> dict[str, object]:
    """Versions, the onnxruntime providers that actually load here, and the devices."""
    import platform
    from importlib import metadata

    import onnxruntime as ort

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    runtimes = installed_runtimes()
    report: dict[str, object] = {
        "nst": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "onnxruntime": ort.__version__,
        "onnxruntime_packages": runtimes,
        "numpy": np.__version__,
        "pillow": Image.__version__,
        "torch": version("torch"),  # read from metadata: nst info does not import torch
        "providers_compiled": ort.get_available_providers(),
        "providers_loading": loading_providers(),
        "cpu_count": os.cpu_count(),
        "cpu_features": cpu_features(),
        "gpus": list_gpus(),
        **extras.commands_report(),
    }
    if len(runtimes) > 1:
        report["problem"] = f"{' and '.join(runtimes)} are installed together and overwrite each other; repair: {REPAIR_CLASH}"
    return report


def loading_providers() -> list[str]:
    """Try each compiled-in provider on a one-node model; keep those onnxruntime really registers."""
    import onnxruntime as ort

    loaded = []
    for name in ort.get_available_providers():
        try:
            _, providers = create_session(identity_model(), name)
        except Exception:  # a provider that cannot even start is simply not listed
            continue
        if providers and providers[0] == name:
            loaded.append(name)
    return loaded


def identity_model() -> bytes:
    """A one-node ONNX model (y = x) to try providers on."""
    from onnx import TensorProto, helper

    value = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    result = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe", [value], [result])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def cpu_features() -> list[str]:
    """The CPU flags that matter for onnxruntime speed and int8 accuracy (Linux only)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    return [flag for flag in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if flag in flags]


def list_gpus() -> list[str]:
    """The GPUs ``nvidia-smi -L`` lists (none without it)."""
    import shutil
    import subprocess

    if shutil.which("nvidia-smi"):
        try:
            result = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
            return [line.strip() for line in result.stdout.splitlines() if line.strip()]
        except (OSError, subprocess.SubprocessError):
            return []
    return []
