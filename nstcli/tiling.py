"""Stylising an image too large for one pass, in overlapping tiles, without visible seams.

Two things make naive tiles visible, and each has its remedy here:

1. Borders. A tile's edge pixels see padding instead of their real neighbours. Tiles overlap and are
   blended with weights that ramp up from a tile's inner edges (feathering), so each output pixel
   comes mostly from the tile in which it lies far from an edge.
2. Instance normalisation. Generators normalise every feature map by the mean and variance of the
   whole input, so a tile that is mostly sky gets other statistics than one that is mostly ground,
   and the two come out in different colours. ``pin_instance_norm`` rewrites the ONNX graph twice:
   a *stats* model that also outputs each InstanceNormalization's per-channel mean and variance, and
   a *tile* model in which each InstanceNormalization becomes ``x * gain + shift`` with gain and
   shift fed from outside. The stats come from one pass over the whole image (downscaled to a size
   that fits, the guide); every tile is then normalised exactly as the whole image would be.

The geometry and blending are numpy; the graph edit needs the ``onnx`` package (imported only here,
only when an image is tiled). Images are float32 arrays (H, W, 3) in 0..1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image

# A batched model run: (N, H, W, 3) float32 -> (N, H, W, 3) float32, any H and W.
Run = Callable[[np.ndarray], np.ndarray]

GAIN_INPUT = "nst_tile_gain_{}"
SHIFT_INPUT = "nst_tile_shift_{}"
MEAN_OUTPUT = "nst_stats_mean_{}"
VAR_OUTPUT = "nst_stats_var_{}"
SCALE_OUTPUT = "nst_stats_scale_{}"
BIAS_OUTPUT = "nst_stats_bias_{}"


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``length``; the last one ends flush with it."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    return list(range(0, length - tile, stride)) + [length - tile]


def feather(size: int, overlap: int, ramp_start: bool, ramp_end: bool) -> np.ndarray:
    """1-D blend weights: 1 inside, ramping towards 0 over ``overlap`` px at the sides that have a neighbour."""
    weights = np.ones(size, dtype=np.float32)
    ramp = (np.arange(min(overlap, size), dtype=np.float32) + 0.5) / max(overlap, 1)
    if ramp_start:
        weights[: ramp.size] = np.minimum(weights[: ramp.size], ramp)
    if ramp_end:
        weights[size - ramp.size :] = np.minimum(weights[size - ramp.size :], ramp[::-1])
    return weights


def resize_array(array: np.ndarray, long_side: int) -> np.ndarray:
    """Shrink a float (H, W, 3) array so its long side is at most ``long_side`` (box filter per channel)."""
    height, width = array.shape[:2]
    scale = long_side / max(height, width)
    if scale >= 1:
        return array
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    channels = [
        np.asarray(Image.fromarray(np.ascontiguousarray(array[..., c]), mode="F").resize(size, Image.Resampling.BOX))
        for c in range(array.shape[2])
    ]
    return np.stack(channels, axis=-1).astype(np.float32)


def run_tiled(image: np.ndarray, run: Run, tile: int, overlap: int, batch_size: int = 1) -> np.ndarray:
    """Stylise ``image`` (H, W, 3) in ``tile`` x ``tile`` pieces overlapping by ``overlap`` px, blended."""
    if not 0 <= overlap < tile:
        raise ValueError(f"tile overlap must be in 0..{tile - 1}, got {overlap}")
    height, width = image.shape[:2]
    tile_h, tile_w = min(tile, height), min(tile, width)
    boxes = [(y, x) for y in tile_starts(height, tile, overlap) for x in tile_starts(width, tile, overlap)]
    total = np.zeros_like(image, dtype=np.float32)
    weight_sum = np.zeros((height, width, 1), dtype=np.float32)
    for first in range(0, len(boxes), batch_size):
        chunk = boxes[first : first + batch_size]
        outputs = run(np.stack([image[y : y + tile_h, x : x + tile_w] for y, x in chunk]))
        for (y, x), out in zip(chunk, outputs):
            rows = feather(tile_h, overlap, y > 0, y + tile_h < height)
            cols = feather(tile_w, overlap, x > 0, x + tile_w < width)
            weights = np.outer(rows, cols)[..., None]
            total[y : y + tile_h, x : x + tile_w] += out * weights
            weight_sum[y : y + tile_h, x : x + tile_w] += weights
    return np.clip(total / weight_sum, 0.0, 1.0)


# ---------------------------------------------------------------- instance-norm statistics


@dataclass(frozen=True)
class PinnedModels:
    stats: bytes  # the model plus, per InstanceNormalization i, outputs mean/var/scale/bias i
    tiles: bytes  # the model with InstanceNormalization i replaced by x * gain_i + shift_i
    epsilons: list[float]


def pin_instance_norm(model_bytes: bytes) -> PinnedModels | None:
    """The two rewritten graphs, or None when the model has no InstanceNormalization (nothing to pin)."""
    import onnx
    from onnx import helper

    model = onnx.load_from_string(model_bytes)
    norms = [node for node in model.graph.node if node.op_type == "InstanceNormalization"]
    if not norms:
        return None
    types = _element_types(model)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
    epsilons = [next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5) for node in norms]

    stats = onnx.ModelProto()
    stats.CopyFrom(model)
    axes_name = "nst_stats_axes"
    if opset >= 18:  # ReduceMean takes its axes as an input from opset 18 on
        stats.graph.initializer.append(helper.make_tensor(axes_name, onnx.TensorProto.INT64, [2], [2, 3]))
    for index, node in enumerate(norms):
        x, scale, bias = node.input[0], node.input[1], node.input[2]
        mean, var = MEAN_OUTPUT.format(index), VAR_OUTPUT.format(index)
        centred, squared = f"nst_stats_centred_{index}", f"nst_stats_squared_{index}"
        stats.graph.node.extend(
            [
                _reduce_mean(x, mean, opset, axes_name),
                helper.make_node("Sub", [x, mean], [centred]),
                helper.make_node("Mul", [centred, centred], [squared]),
                _reduce_mean(squared, var, opset, axes_name),
                helper.make_node("Identity", [scale], [SCALE_OUTPUT.format(index)]),
                helper.make_node("Identity", [bias], [BIAS_OUTPUT.format(index)]),
            ]
        )
        for name, source in ((mean, x), (var, x), (SCALE_OUTPUT.format(index), scale), (BIAS_OUTPUT.format(index), bias)):
            stats.graph.output.append(helper.make_tensor_value_info(name, types.get(source, onnx.TensorProto.FLOAT), None))

    tiles = onnx.ModelProto()
    tiles.CopyFrom(model)
    replaced, index = [], -1
    for node in tiles.graph.node:
        if node.op_type != "InstanceNormalization":
            replaced.append(node)
            continue
        index += 1  # the same numbering as ``norms`` above: graph order
        x, gain, shift = node.input[0], GAIN_INPUT.format(index), SHIFT_INPUT.format(index)
        scaled = f"nst_tile_scaled_{index}"
        replaced.append(helper.make_node("Mul", [x, gain], [scaled], name=f"nst_tile_mul_{index}"))
        replaced.append(helper.make_node("Add", [scaled, shift], [node.output[0]], name=f"nst_tile_add_{index}"))
        for name in (gain, shift):
            tiles.graph.input.append(helper.make_tensor_value_info(name, types.get(x, onnx.TensorProto.FLOAT), None))
    del tiles.graph.node[:]
    tiles.graph.node.extend(replaced)
    return PinnedModels(stats.SerializeToString(), tiles.SerializeToString(), epsilons)


def gains_and_shifts(stats: dict[str, np.ndarray], epsilons: list[float]) -> dict[str, np.ndarray]:
    """Feeds for the tile model: per normalisation, gain = scale / sqrt(var + eps), shift = bias - mean * gain."""
    feeds = {}
    for index, epsilon in enumerate(epsilons):
        mean = stats[MEAN_OUTPUT.format(index)].astype(np.float64)  # (1, C, 1, 1)
        var = stats[VAR_OUTPUT.format(index)].astype(np.float64)
        scale = stats[SCALE_OUTPUT.format(index)].astype(np.float64).reshape(1, -1, 1, 1)
        bias = stats[BIAS_OUTPUT.format(index)].astype(np.float64).reshape(1, -1, 1, 1)
        gain = scale / np.sqrt(var + epsilon)
        dtype = stats[MEAN_OUTPUT.format(index)].dtype
        feeds[GAIN_INPUT.format(index)] = gain.astype(dtype)
        feeds[SHIFT_INPUT.format(index)] = (bias - mean * gain).astype(dtype)
    return feeds


def stats_outputs(count: int) -> list[str]:
    return [name.format(i) for i in range(count) for name in (MEAN_OUTPUT, VAR_OUTPUT, SCALE_OUTPUT, BIAS_OUTPUT)]


def _reduce_mean(source: str, target: str, opset: int, axes_name: str):
    from onnx import helper

    if opset >= 18:
        return helper.make_node("ReduceMean", [source, axes_name], [target], keepdims=1)
    return helper.make_node("ReduceMean", [source], [target], axes=[2, 3], keepdims=1)


def _element_types(model) -> dict[str, int]:
    """Element type of every named tensor (shape inference), so new inputs/outputs get the right dtype."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # inference is best effort; unknown names default to float
        inferred = model
    graph = inferred.graph
    types = {init.name: init.data_type for init in graph.initializer}
    for info in list(graph.value_info) + list(graph.input) + list(graph.output):
        if info.type.tensor_type.elem_type:
            types[info.name] = info.type.tensor_type.elem_type
    return types
