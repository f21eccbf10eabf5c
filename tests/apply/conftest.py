"""The apply tests' models: small real nst ONNX models, exported from torch once per session.

The nets are tiny but real: reflection-padded convs, instance norm, a stride-2 conv (so the size
multiple matters) and a sigmoid output, exported with the contract's names and metadata.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from nstcli import model_format as fmt

SIZE_MULTIPLE = 2


def _net(styles: int):
    import torch
    from torch import nn

    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(3, 8, 3))
            self.norm1 = nn.InstanceNorm2d(8, affine=True)
            self.down = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(8, 8, 3, stride=2))
            self.norm2 = nn.InstanceNorm2d(8, affine=True)
            self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1), nn.Conv2d(8, 3, 3))
            self.banks = nn.Parameter(torch.randn(max(styles, 1), 8))

        def forward(self, image, style_weights=None):
            x = torch.relu(self.norm1(self.conv1(image)))
            x = torch.relu(self.norm2(self.down(x)))
            if style_weights is not None:  # a per-style channel gain: the "bank"
                x = x * (1 + style_weights @ self.banks)[None, :, None, None]
            return torch.sigmoid(self.up(x) + 2 * (image - 0.5))

    torch.manual_seed(0)
    return Tiny().eval()


def build_model(path: Path, styles: list[str] | None = None, precision: str = "fp32", opset: int = 20) -> Path:
    """Export a tiny nst model; ``styles`` with two or more names adds the style_weights input."""
    import onnx
    import torch

    styles = styles or ["tiny"]
    multi = len(styles) > 1
    net = _net(len(styles) if multi else 0)
    image = torch.rand(1, 3, 16, 16)
    args = (image, torch.ones(len(styles)) / len(styles)) if multi else (image,)
    names = [fmt.INPUT_IMAGE] + ([fmt.INPUT_STYLE_WEIGHTS] if multi else [])
    axes = {fmt.INPUT_IMAGE: {0: "n", 2: "h", 3: "w"}, fmt.OUTPUT_IMAGE: {0: "n", 2: "h", 3: "w"}}
    with warnings.catch_warnings():  # the legacy exporter's deprecation and constant-folding notes
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net, args, str(path), input_names=names, output_names=[fmt.OUTPUT_IMAGE], dynamic_axes=axes, dynamo=False,
            opset_version=opset,
        )
    model = onnx.load(str(path))
    meta = {
        fmt.META_FORMAT: fmt.FORMAT_VERSION,
        fmt.META_ARCH: "stylebank" if multi else "johnson",
        fmt.META_STYLES: json.dumps(styles),
        fmt.META_SIZE_MULTIPLE: str(SIZE_MULTIPLE),
        fmt.META_PRECISION: precision,
        fmt.META_INPUT: fmt.INPUT_CONVENTION,
    }
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


def build_foreign_model(path: Path) -> Path:
    """A valid ONNX model that is not an nst model (wrong input and output names)."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "foreign", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


_BUILT: dict[str, dict[str, Path]] = {}


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict[str, Path]:
    """Built once per test session, also when other test modules import this fixture."""
    base = str(tmp_path_factory.getbasetemp())
    if "single" not in _BUILT.setdefault(base, {}):
        folder = tmp_path_factory.mktemp("models")
        _BUILT[base] |= {
            "single": build_model(folder / "tiny.onnx"),
            "multi": build_model(folder / "bank.onnx", ["ink", "oil"], opset=17),
            "foreign": build_foreign_model(folder / "foreign.onnx"),
        }
    return _BUILT[base]


def build_universal(folder: Path, precision: str = "fp16") -> Path:
    """A folder of real universal graphs: the embedded VGG19 encoder stages and untrained narrow decoders."""
    import torch

    from nstcli.settings import UniversalTrainConfig
    from nstcli.universal_export import export_universal
    from nstcli.universal_net import LEVELS, build_decoder

    torch.manual_seed(0)
    config = UniversalTrainConfig(width=0.125)
    decoders = [build_decoder(level, config.width).state_dict() for level in range(1, len(LEVELS) + 1)]
    export_universal({"config": config, "decoders": decoders, "level_steps": [1] * len(LEVELS)}, folder, precision)
    return folder


@pytest.fixture(scope="session")
def universal_models(tmp_path_factory) -> Path:
    """Built once per test session."""
    base = str(tmp_path_factory.getbasetemp())
    if "universal" not in _BUILT.setdefault(base, {}):
        _BUILT[base]["universal"] = build_universal(tmp_path_factory.mktemp("universal"))
    return _BUILT[base]["universal"]
