"""ONNX export of a trained generator, following the contract in :mod:`nstcli.model_format`.

Exporter: torch's dynamo exporter (``torch.onnx.export(dynamo=True)``, torch's default; needs
onnxscript). On the default Johnson net it gives a 65-node graph (one Pad per reflection pad) where
the legacy TorchScript exporter gives 331 (each pad a chain of Constant/Slice/Concat); onnxruntime
folds those chains, so CPU speed is the same within a few per cent (README, "Training and export").

Precision fp16: the generator runs in float16 inside the graph, with a Cast at the input and at
the output, so the model's inputs and outputs stay float32 as the contract says. We cast in
PyTorch before exporting rather than converting the ONNX graph afterwards (onnxconverter-common):
no extra dependency, and the parity check tests exactly the graph that is written.

Multi-style models (StyleBank, CIN) get a second input, ``style_weights`` (K,), whose convex weights
fuse the styles (StyleBank: the banks' outputs; CIN: the norms' scales and shifts; one-hot: one style);
``style`` exports a graph of one style instead (no second input).

Before anything is written the graph is run with onnxruntime (CPU) on random images of an odd
size, padded and cropped like ``nst apply`` does, and compared with PyTorch in float32; a
difference over the tolerance is an error and no file is written.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from nstcli import __version__, generators, images, model_format
from nstcli.errors import InputError, UsageError
from nstcli.checkpoint import build_trained_generator
from nstcli.settings import TrainConfig

PRECISIONS = ("fp32", "fp16")
# Largest allowed |onnxruntime - PyTorch float32| on 0..1 outputs: a quarter of one 8-bit level for
# fp32 (only summation order differs), about 2.5 levels for fp16.
TOLERANCE = {"fp32": 1e-3, "fp16": 1e-2}
OPSET = 18  # run by onnxruntime 1.14 and later
PARITY_SIZE = (37, 53)  # odd on purpose: exercises the pad/crop path


@dataclass
class ExportResult:
    nodes: int
    bytes: int
    max_abs_diff: float
    precision: str
    seconds: float
    metadata: dict[str, str]


class _Float32Io(nn.Module):
    """Runs ``model`` in ``dtype`` between float32 input and output (Casts inside the graph)."""

    def __init__(self, model: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.model = model.to(dtype)
        self.dtype = dtype

    def forward(self, image: torch.Tensor, style_weights: torch.Tensor | None = None) -> torch.Tensor:
        if style_weights is None:
            return self.model(image.to(self.dtype)).float()
        return self.model(image.to(self.dtype), style_weights.to(self.dtype)).float()


class _OneBank(nn.Module):
    """A multi-style net fixed to one style: the single-style graph of ``nst export --style``."""

    def __init__(self, model: nn.Module, index: int):
        super().__init__()
        self.model = model
        self.index = index

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model.branch(image, self.index)


def metadata(config: TrainConfig, multiple: int, precision: str, styles: list[str] | None = None) -> dict[str, str]:
    return {
        model_format.META_FORMAT: model_format.FORMAT_VERSION,
        model_format.META_VERSION: __version__,
        model_format.META_ARCH: config.arch,
        model_format.META_STYLES: json.dumps(styles or config.style_names()),
        model_format.META_CONFIG: json.dumps(config.to_dict()),
        model_format.META_SIZE_MULTIPLE: str(multiple),
        model_format.META_PRECISION: precision,
        model_format.META_INPUT: model_format.INPUT_CONVENTION,
    }


def _to_onnx(model: nn.Module, multiple: int, styles: int = 0) -> Any:
    """The ONNX ModelProto, batch/height/width dynamic (height and width multiples of ``multiple``).

    ``styles`` > 0 adds the ``style_weights`` input of that length (a multi-style model).
    """
    import onnx

    example = torch.rand(1, 3, 2 * multiple, 3 * multiple)
    batch, height, width = torch.export.Dim("batch"), torch.export.Dim("height"), torch.export.Dim("width")
    image_shape = {0: batch, 2: multiple * height, 3: multiple * width}
    args, names, shapes = (example,), [model_format.INPUT_IMAGE], (image_shape,)
    if styles:
        args += (torch.full((styles,), 1.0 / styles),)
        names.append(model_format.INPUT_STYLE_WEIGHTS)
        shapes += (None,)
    # The exporter reports its steps with print(); stdout is for data only. Its optimiser logs what it
    # skips as warnings ("Skipping constant folding for op Split ..." on one CIN style): nothing for users.
    optimiser_log = logging.getLogger("onnxscript")
    level = optimiser_log.level
    optimiser_log.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model, args, dynamo=True, opset_version=OPSET, verbose=False,
                input_names=names, output_names=[model_format.OUTPUT_IMAGE], dynamic_shapes=shapes,
            )  # fmt: skip
    finally:
        optimiser_log.setLevel(level)
    proto = program.model_proto
    images_io = [value for value in (*proto.graph.input, *proto.graph.output) if value.name != names[-1] or not styles]
    for value in images_io:  # "4*height" -> "height": plain names for users
        dims = value.type.tensor_type.shape.dim
        for dim, name in ((dims[0], "batch"), (dims[2], "height"), (dims[3], "width")):
            dim.dim_param = name
    onnx.checker.check_model(proto)
    return proto


def parity(model: nn.Module, onnx_bytes: bytes, multiple: int, seed: int = 0, styles: int = 0) -> float:
    """Max |onnxruntime - PyTorch| over a random batch of odd-sized images, padded and cropped alike.

    ``styles`` > 0: the graph's ``style_weights`` input gets random convex weights (a fusion of all banks).
    """
    import onnxruntime

    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(2, 3, *PARITY_SIZE, generator=generator)
    extra = ()
    if styles:
        weights = torch.rand(styles, generator=generator)
        extra = (weights / weights.sum(),)
    with torch.no_grad():
        expected = generators.stylise(model, image, multiple, *extra).numpy()
    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    feeds = {model_format.INPUT_IMAGE: generators.pad_to_multiple(image, multiple).numpy()}
    if styles:
        feeds[model_format.INPUT_STYLE_WEIGHTS] = extra[0].numpy()
    result = session.run(None, feeds)[0][..., : PARITY_SIZE[0], : PARITY_SIZE[1]]
    if result.dtype != np.float32 or result.shape != expected.shape:
        raise InputError(f"exported graph returned {result.dtype} {result.shape}, expected float32 {expected.shape}")
    return float(np.abs(result - expected).max())


def export_model(state: dict[str, Any], output: str, precision: str = "fp32", style: str | None = None) -> ExportResult:
    """Export the generator of a loaded checkpoint ``state`` to ``output`` (written atomically after the check).

    ``style``: multi-style models only, a style name or index: a single-style graph of that style.
    """
    if precision not in PRECISIONS:
        raise UsageError(f"unknown --precision {precision!r} (choose fp32 or fp16)")
    start = time.perf_counter()
    model, config, multiple = build_trained_generator(state)
    reference, _, _ = build_trained_generator(state)  # float32, for the parity check
    styles, names = 0, None
    if style is not None:
        index = _style_index(config, style)
        model, reference, names = _OneBank(model, index), _OneBank(reference, index), [config.style_names()[index]]
    elif config.multi_style:
        styles = len(config.style_names())
    dtype = torch.float16 if precision == "fp16" else torch.float32
    proto = _to_onnx(_Float32Io(model, dtype).eval(), multiple, styles)
    meta = metadata(config, multiple, precision, names)
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    data = proto.SerializeToString()
    difference = parity(reference.eval(), data, multiple, styles=styles)
    if not difference <= TOLERANCE[precision]:
        raise InputError(
            f"exported model does not match PyTorch: max abs diff {difference:.3g} > {TOLERANCE[precision]} ({precision})"
        )
    images.write_bytes_atomic(data, output)
    return ExportResult(len(proto.graph.node), len(data), difference, precision, time.perf_counter() - start, meta)


def _style_index(config: TrainConfig, style: str) -> int:
    names = config.style_names()
    if not config.multi_style:
        raise UsageError(f"--style: only stylebank and cin models hold several styles (this one is --arch {config.arch})")
    if style in names:
        return names.index(style)
    if style.isdigit() and int(style) < len(names):
        return int(style)
    raise UsageError(f"--style: no style {style!r} in this model ({', '.join(names)})")
