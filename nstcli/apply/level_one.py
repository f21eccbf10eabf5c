"""Level 1 of the universal model in numpy: its encoder stage (relu1_1) and its decoder are each one 3x3 conv.

- :class:`FirstStage`: relu1_1 (Caffe's preprocessing, the conv with zero padding, ReLU) at a grid of sampled
  positions only, from the weights the export stores in ``encoder_1.onnx``'s metadata. Level 1's statistics are
  measured on such a grid (at most ``wct.MAX_SAMPLES`` positions: every other row and column of a 512 px photo),
  so the full-size 64-channel map, which the tiled pass otherwise computed once only for them, is not needed:
  the statistics of a 512 px photo took 9-13 ms instead of about 40 (docs/universal.md).
- :class:`LinearDecoder`: the relu1_1 decoder read back from its session, so the WCT map folds into it.

Each is checked against its onnxruntime session when it is built and not used (None) unless it computes what
the session computes, so a folder of another design, or one exported before the weights were stored, still
runs, in onnxruntime.
"""

from __future__ import annotations

import base64
import json

import numpy as np

from nstcli import model_format as fmt


def uneven_pattern(channels: int) -> np.ndarray:
    """A fixed (1, channels, 10, 12) pattern in 0..1 (multiples of the golden ratio, mod 1) to check a numpy conv
    against its session; numpy.random would add 6 ms to every start."""
    return (np.arange(channels * 120) * 0.6180339887 % 1.0).astype(np.float32).reshape(1, channels, 10, 12)


def computes_as_session(expected: np.ndarray, found: np.ndarray) -> bool:
    """Whether a numpy stand-in's ``found`` is its session's ``expected`` to float rounding (relative to its scale)."""
    return expected.shape == found.shape and bool(np.abs(expected - found).max() <= 1e-4 * max(1.0, float(np.abs(expected).max())))


def first_stage_metadata(weight: np.ndarray, bias: np.ndarray, mean: np.ndarray) -> str:
    """The value of ``fmt.META_FIRST_STAGE``: the stage is relu(conv(zero-pad-1(BGR(x) * 255 - mean))) with
    ``weight`` (64, 3, 3, 3) and ``bias`` (64,), stored as little-endian float32 in base64 (exact, 9 KB)."""
    def encode(array: np.ndarray) -> str:
        return base64.b64encode(np.ascontiguousarray(array, dtype="<f4").tobytes()).decode("ascii")

    return json.dumps({"weight": encode(weight), "weight_shape": list(weight.shape), "bias": encode(bias),
                       "mean_bgr": [float(value) for value in mean], "scale": 255.0})  # fmt: skip


class FirstStage:
    """relu1_1 of an image at a grid of positions, in numpy (see the module's docstring)."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray, mean_bgr: np.ndarray, scale: float) -> None:
        self.kernel = np.ascontiguousarray(weight.reshape(weight.shape[0], -1), np.float32)  # (64, 27): (channel, dy, dx)
        self.bias, self.mean_bgr, self.scale = bias.astype(np.float32), mean_bgr.astype(np.float32), np.float32(scale)

    @classmethod
    def from_session(cls, session: object) -> FirstStage | None:
        """The stage from its session's metadata; None when the metadata is not there or does not compute what
        the session computes (checked on a fixed pattern)."""
        stored = session.get_modelmeta().custom_metadata_map.get(fmt.META_FIRST_STAGE)
        if stored is None:
            return None
        try:
            record = json.loads(stored)
            weight = np.frombuffer(base64.b64decode(record["weight"]), "<f4").reshape(record["weight_shape"])
            stage = cls(weight, np.frombuffer(base64.b64decode(record["bias"]), "<f4"), np.array(record["mean_bgr"]), record["scale"])
        except (ValueError, KeyError, TypeError):
            return None
        image = uneven_pattern(3)
        expected = session.run([fmt.UNIVERSAL_OUTPUT], {fmt.UNIVERSAL_INPUT: image})[0][0]
        return stage if computes_as_session(expected, stage.sampled(image, 1)) else None

    def sampled(self, image: np.ndarray, stride: int) -> np.ndarray:
        """relu1_1 of a (1, 3, H, W) image in 0..1 (padded as the encoder's input is) at every ``stride``-th row
        and column from the first: (64, ceil(H / stride), ceil(W / stride)), as the session's map sliced so."""
        _, _, height, width = image.shape
        rows, columns = -(-height // stride), -(-width // stride)
        canvas = np.zeros((3, height + 2, width + 2), np.float32)  # the conv's zero padding, in the preprocessed space
        inner = canvas[:, 1:-1, 1:-1]
        np.multiply(image[0, ::-1], self.scale, out=inner)  # RGB -> BGR, 0..255
        inner -= self.mean_bgr[:, None, None]
        patches = np.empty((3, 3, 3, rows, columns), np.float32)  # (channel, dy, dx) as the kernel's columns
        for dy in range(3):
            for dx in range(3):
                patches[:, dy, dx] = canvas[:, dy : dy + stride * rows : stride, dx : dx + stride * columns : stride]
        features = self.kernel @ patches.reshape(self.kernel.shape[1], -1)
        features += self.bias[:, None]
        np.maximum(features, 0.0, out=features)
        return features.reshape(-1, rows, columns)


class LinearDecoder:
    """A decoder that is one 3x3 conv over reflect-padded features (the relu1_1 decoder: scale, pad, conv), read
    back from its session as numpy weights, so the WCT map folds into it: conv(pad(M f + b)) = conv_{W M}(pad(f))
    + the conv of b. That spares the C x C product over the full-size map and the graph's own scale and pad
    passes; it decodes what the session decodes (to float rounding)."""

    PROBE = 7  # an impulse in the middle of a 7 x 7 map: reflect padding of 1 does not copy it

    def __init__(self, kernel: np.ndarray, bias: np.ndarray) -> None:
        self.kernel, self.bias = kernel, bias  # (O, C, 3, 3) and (O,), float32, the graph's scale included

    @classmethod
    def probe(cls, session: object, channels: int) -> LinearDecoder | None:
        """The decoder's conv, from its answers to impulses; None unless it is exactly such a conv (checked on noise)."""
        size, middle = cls.PROBE, cls.PROBE // 2
        impulses = np.zeros((channels + 1, channels, size, size), np.float32)
        impulses[np.arange(channels), np.arange(channels), middle, middle] = 1.0  # the last one stays zero: the bias
        answers = session.run([fmt.UNIVERSAL_OUTPUT], {fmt.UNIVERSAL_INPUT: impulses})[0]
        if answers.shape[2:] != (size, size):
            return None
        bias = answers[-1, :, middle, middle]
        # y[o, i, j] = sum_c,dy,dx W[o, c, dy, dx] x_padded[c, i + dy, j + dx]: the impulse at (m, m) reaches (m+1-dy, m+1-dx)
        window = answers[:-1, :, middle - 1 : middle + 2, middle - 1 : middle + 2] - bias[None, :, None, None]
        decoder = cls(np.ascontiguousarray(window[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)), bias.astype(np.float32))
        noise = 2 * uneven_pattern(channels)
        expected = session.run([fmt.UNIVERSAL_OUTPUT], {fmt.UNIVERSAL_INPUT: noise})[0][0]
        found = decoder.decode(noise[0], np.eye(channels, dtype=np.float32), np.zeros(channels, np.float32))
        # not a single conv (a decoder of another design): the session decodes
        return decoder if computes_as_session(expected, found) else None

    def decode(self, features: np.ndarray, matrix: np.ndarray, offset: np.ndarray) -> np.ndarray:
        """conv(pad(matrix @ features + offset)) for (C, H, W) features (H, W >= 2) -> (O, H, W)."""
        outputs, channels = self.kernel.shape[:2]
        _, height, width = features.shape
        # one row per (output, dy, dx): the product over the map is (9 O) x C, not C x C
        fused = np.einsum("ocyx,cd->oyxd", self.kernel, matrix).reshape(outputs * 9, channels)
        constant = self.bias + np.einsum("ocyx,c->o", self.kernel, offset)
        taps = (fused.astype(np.float32) @ features.reshape(channels, -1)).reshape(outputs * 9, height, width)
        padded = np.empty((outputs * 9, height + 2, width + 2), np.float32)  # reflect padding of 1
        padded[:, 1:-1, 1:-1] = taps
        padded[:, 0, 1:-1], padded[:, -1, 1:-1] = taps[:, 1], taps[:, -2]
        padded[:, :, 0], padded[:, :, -1] = padded[:, :, 2], padded[:, :, -3]
        result = np.empty((outputs, height, width), np.float32)
        for o in range(outputs):
            result[o] = constant[o]
            for tap in range(9):
                dy, dx = divmod(tap, 3)
                result[o] += padded[o * 9 + tap, dy : dy + height, dx : dx + width]
        return result
