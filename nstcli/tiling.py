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
   shift fed from outside (normalisations inside ``If`` branches too: a StyleBank's banks). The stats
   come from one pass over the whole image (downscaled to a size that fits, the guide); every tile is
   then normalised exactly as the whole image would be.

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
    """The two rewritten graphs, or None when the model has no InstanceNormalization (nothing to pin).

    Normalisations inside ``If`` branches count too (the StyleBank runs each style's bank in a branch taken
    only when its weight is not zero): the tile model's branches read their gains and shifts from the
    graph's inputs (outer scope), and the stats model passes each branch's statistics out through its
    ``If`` node, the branch not taken giving zeros for them (its gains are fed but never read)."""
    import onnx

    model = onnx.load_from_string(model_bytes)
    types = _element_types(model)
    norms = [node for _, node in _norms_in(model.graph)]
    if not norms:
        return None
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
    epsilons = [next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5) for node in norms]

    stats = onnx.ModelProto()
    stats.CopyFrom(model)
    if opset >= 18:  # ReduceMean takes its axes as an input from opset 18 on
        stats.graph.initializer.append(onnx.helper.make_tensor(AXES_NAME, onnx.TensorProto.INT64, [2], [2, 3]))
    stats_names = _add_stats(stats.graph, iter(range(len(norms))), opset, types)
    for name, elem_type in stats_names:
        stats.graph.output.append(onnx.helper.make_tensor_value_info(name, elem_type, None))

    tiles = onnx.ModelProto()
    tiles.CopyFrom(model)
    for index, (graph, node) in enumerate(_norms_in(tiles.graph)):
        element = types.get(node.input[0], onnx.TensorProto.FLOAT)  # read before the node leaves its graph
        _replace_with_affine(graph, node, index)
        for name in (GAIN_INPUT.format(index), SHIFT_INPUT.format(index)):
            tiles.graph.input.append(onnx.helper.make_tensor_value_info(name, element, None))
    return PinnedModels(stats.SerializeToString(), tiles.SerializeToString(), epsilons)


AXES_NAME = "nst_stats_axes"


def _norms_in(graph) -> list:
    """(graph, node) of every InstanceNormalization in ``graph`` and, depth first, its ``If`` branches, in
    graph order (then before else): the numbering of the gains, shifts and statistics. Only ``If`` branches:
    they are what ``_add_stats`` passes statistics out of (a norm in a loop body stays per tile)."""
    found = []
    for node in graph.node:
        if node.op_type == "InstanceNormalization":
            found.append((graph, node))
        elif node.op_type == "If":
            for attribute in node.attribute:
                if attribute.HasField("g"):
                    found.extend(_norms_in(attribute.g))
    return found


def _add_stats(graph, numbers, opset: int, types: dict[str, int]) -> list[tuple[str, int]]:
    """Add to ``graph`` the nodes that compute each of its normalisations' mean, variance, scale and bias,
    numbered from ``numbers`` in ``_norms_in`` order; returns (name, element type) of every statistic
    ``graph`` now produces, its branches' included (an ``If`` node gains them as outputs)."""
    from onnx import TensorProto, helper

    produced = []
    for node in list(graph.node):
        if node.op_type == "InstanceNormalization":
            index = next(numbers)
            x, scale, bias = node.input[0], node.input[1], node.input[2]
            mean, var = MEAN_OUTPUT.format(index), VAR_OUTPUT.format(index)
            centred, squared = f"nst_stats_centred_{index}", f"nst_stats_squared_{index}"
            graph.node.extend(
                [
                    _reduce_mean(x, mean, opset),
                    helper.make_node("Sub", [x, mean], [centred]),
                    helper.make_node("Mul", [centred, centred], [squared]),
                    _reduce_mean(squared, var, opset),
                    helper.make_node("Identity", [scale], [SCALE_OUTPUT.format(index)]),
                    helper.make_node("Identity", [bias], [BIAS_OUTPUT.format(index)]),
                ]
            )
            element = types.get(x, TensorProto.FLOAT)
            produced += [(mean, element), (var, element), (SCALE_OUTPUT.format(index), types.get(scale, element)),
                         (BIAS_OUTPUT.format(index), types.get(bias, element))]  # fmt: skip
        elif node.op_type == "If":
            produced += _pass_stats_out(node, numbers, opset, types)
    return produced


def _pass_stats_out(node, numbers, opset: int, types: dict[str, int]) -> list[tuple[str, int]]:
    """The statistics computed in an ``If`` node's branches as that node's outputs. A name is defined once
    in a model, so inside a branch each carries the branch's name; the branch that does not compute one
    gives a zero for it."""
    from onnx import helper

    branches = {attribute.name: attribute.g for attribute in node.attribute if attribute.HasField("g")}
    per_branch = {name: _add_stats(branch, numbers, opset, types) for name, branch in branches.items()}
    every = [item for produced in per_branch.values() for item in produced]
    for name, branch in branches.items():
        own = {stat for stat, _ in per_branch[name]}
        for stat, element in every:
            inner = f"{stat}_{name}"
            if stat in own:
                _rename(branch, stat, inner)
            else:
                zero = helper.make_tensor(f"{inner}_value", element, [1], [0])
                branch.node.append(helper.make_node("Constant", [], [inner], value=zero))
            branch.output.append(helper.make_tensor_value_info(inner, element, None))
    node.output.extend(stat for stat, _ in every)
    return every


def _rename(graph, old: str, new: str) -> None:
    """Rename the value ``old`` wherever ``graph``'s own nodes (not its branches) produce or read it."""
    for node in graph.node:
        node.output[:] = [new if name == old else name for name in node.output]
        node.input[:] = [new if name == old else name for name in node.input]


def _replace_with_affine(graph, node, index: int) -> None:
    """InstanceNormalization ``node`` of ``graph`` -> x * gain_index + shift_index, fed from the graph inputs."""
    from onnx import helper

    x, gain, shift = node.input[0], GAIN_INPUT.format(index), SHIFT_INPUT.format(index)
    scaled = f"nst_tile_scaled_{index}"
    position = list(graph.node).index(node)
    output = node.output[0]
    graph.node.remove(node)
    graph.node.insert(position, helper.make_node("Add", [scaled, shift], [output], name=f"nst_tile_add_{index}"))
    graph.node.insert(position, helper.make_node("Mul", [x, gain], [scaled], name=f"nst_tile_mul_{index}"))


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


def _reduce_mean(source: str, target: str, opset: int):
    from onnx import helper

    if opset >= 18:
        return helper.make_node("ReduceMean", [source, AXES_NAME], [target], keepdims=1)
    return helper.make_node("ReduceMean", [source], [target], axes=[2, 3], keepdims=1)


def _element_types(model) -> dict[str, int]:
    """Element type of every named tensor (shape inference), so new inputs/outputs get the right dtype."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # inference is best effort; unknown names default to float
        inferred = model
    return _graph_types(inferred.graph)


def _graph_types(graph) -> dict[str, int]:
    """Element types of ``graph``'s named tensors and, recursively, its branches'."""
    types = {init.name: init.data_type for init in graph.initializer}
    for info in list(graph.value_info) + list(graph.input) + list(graph.output):
        if info.type.tensor_type.elem_type:
            types[info.name] = info.type.tensor_type.elem_type
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("g"):
                types |= _graph_types(attribute.g)
    return types
