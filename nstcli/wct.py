"""Whitening and colouring transforms (Li et al. 2017) on feature maps, in numpy (no torch).

A painting's features at one level are summarised once by :func:`style_stats` (mean and the
colouring matrix E D^1/2 E^T of their covariance); :func:`transfer` whitens a photo's features
(E D^-1/2 E^T of their own covariance) and colours them with one or several paintings' statistics,
then blends with the photo's features by ``strength``. :func:`transfer_regions` does it per masked
region, each with its own painting (the paper's spatial control).

Covariances are at most C x C with C <= 512, decomposed with ``numpy.linalg.eigh`` in float64.
Directions with (almost) no variance are dropped rather than divided by: a flat painting or a
flat photo gives finite features (the painting's mean), never NaN.

Cost: a covariance is measured on at most MAX_SAMPLES positions (a regular grid of every k-th row
and column when the map is larger): the relu1_1 map of a 512 px photo has 176k positions, whose
every-other-row-and-column grid gives the same statistics to well under what shows (see the README)
at a quarter of the work. :func:`mean_covariance` takes the mean of the whole map it is given; the universal
model gives it level 1's grid alone (apply/level_one), whose mean is then the grid's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

# Eigenvalues below this fraction of the largest (or below ABSOLUTE_EPS) count as no variance.
RELATIVE_EPS = 1e-5
ABSOLUTE_EPS = 1e-8
# A covariance is measured on at most this many positions (a regular grid over larger maps).
MAX_SAMPLES = 1 << 16


@dataclass(frozen=True)
class StyleStats:
    mean: np.ndarray  # (C,) float32
    colouring: np.ndarray  # (C, C) float32: E D^1/2 E^T


def stats_arrays(stats: dict[int, StyleStats], colouring_dtype: type = np.float32) -> dict[str, np.ndarray]:
    """A painting's statistics (level -> StyleStats) as the named arrays of an .npz file: mean_L and colouring_L."""
    arrays = {}
    for level, level_stats in stats.items():
        arrays[f"mean_{level}"] = level_stats.mean.astype(np.float32, copy=False)
        arrays[f"colouring_{level}"] = level_stats.colouring.astype(colouring_dtype, copy=False)
    return arrays


def stored_levels(arrays: Mapping[str, np.ndarray]) -> list[int]:
    """The levels whose statistics ``arrays`` (named as :func:`stats_arrays` names them) hold."""
    return sorted(int(name.rpartition("_")[2]) for name in arrays if name.startswith("colouring_"))


def stats_from_arrays(arrays: Mapping[str, np.ndarray], levels: list[int]) -> dict[int, StyleStats]:
    """The statistics at ``levels`` back from arrays named as :func:`stats_arrays` names them (colouring in float32)."""
    return {level: StyleStats(arrays[f"mean_{level}"], arrays[f"colouring_{level}"].astype(np.float32, copy=False))
            for level in levels}  # fmt: skip


def sample_stride(height: int, width: int, limit: int = MAX_SAMPLES) -> int:
    """The smallest k whose grid of every k-th row and column of a height x width map has at most ``limit`` positions."""
    stride = 1
    while -(-height // stride) * -(-width // stride) > limit:
        stride += 1
    return stride


def mean_covariance(features: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(C, H, W) -> mean (C,) and covariance (C, C) in float64 (the covariance from at most MAX_SAMPLES positions).

    ``weights`` (H, W), not negative: each position counts by its weight (a region's soft mask)."""
    channels, height, width = features.shape
    stride = sample_stride(height, width)
    if weights is not None and not weights[::stride, ::stride].any():
        stride = 1  # a small region between the grid's positions: all of them
    sample = features[:, ::stride, ::stride].reshape(channels, -1)
    if weights is None:
        mean = features.reshape(channels, -1).mean(axis=1, dtype=np.float64)
        centred = sample - mean.astype(features.dtype)[:, None]
        covariance = (centred @ centred.T).astype(np.float64) / max(centred.shape[1] - 1, 1)
        return mean, covariance
    total = float(weights.sum(dtype=np.float64))
    mean = (features.reshape(channels, -1) @ weights.reshape(-1).astype(features.dtype)).astype(np.float64) / total
    sampled = weights[::stride, ::stride].reshape(-1).astype(features.dtype)
    centred = sample - mean.astype(features.dtype)[:, None]
    count = float(sampled.sum(dtype=np.float64))
    # unbiased for reliability weights: n - 1 when every weight is 1
    dof = count - float(np.square(sampled, dtype=np.float64).sum()) / count
    covariance = ((centred * sampled) @ centred.T).astype(np.float64) / (dof if dof > 0 else count)
    return mean, covariance


def _eigen(covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eigenvalues, eigenvectors and a mask of the directions that carry variance."""
    values, vectors = np.linalg.eigh((covariance + covariance.T) / 2)
    values = np.clip(values, 0.0, None)
    kept = values > max(values.max(initial=0.0) * RELATIVE_EPS, ABSOLUTE_EPS)
    return values, vectors, kept


def style_stats(features: np.ndarray) -> StyleStats:
    """The statistics of a painting's (C, H, W) features that colouring needs."""
    mean, covariance = mean_covariance(features)
    values, vectors, kept = _eigen(covariance)
    colouring = (vectors * np.where(kept, np.sqrt(values), 0.0)) @ vectors.T
    return StyleStats(mean.astype(np.float32), colouring.astype(np.float32))


class Moments:
    """The mean and covariance of a feature map seen in pieces (tiles), as :func:`mean_covariance` measures the
    whole map: the mean of every position, the covariance on the same grid of every ``stride``-th row and column
    (counted from the map's origin), centred on the whole map's mean; with weights (a region's mask), each
    position counts by its weight, as there."""

    def __init__(self, channels: int, stride: int) -> None:
        self.stride = stride
        self.count = self.samples = self.squares = 0.0  # the weights' sums: all positions, the grid's, its squares
        self.total = np.zeros(channels)
        self.shift: np.ndarray | None = None  # the first piece's mean: the sums are kept near zero (no cancellation)
        self.sample_sum = np.zeros(channels)
        self.outer = np.zeros((channels, channels))

    def add(self, piece: np.ndarray, origin: tuple[int, int], weights: np.ndarray | None = None) -> None:
        """A (C, h, w) piece of the map whose first position is ``origin`` (row, column) in the whole map;
        ``weights`` (h, w), not negative, or None (all 1)."""
        channels = piece.shape[0]
        flat = piece.reshape(channels, -1)
        first = [-start % self.stride for start in origin]
        sample = piece[:, first[0] :: self.stride, first[1] :: self.stride].reshape(channels, -1)
        if weights is None:
            self.total += flat.sum(axis=1, dtype=np.float64)
            self.count += flat.shape[1]
            sampled = None
        else:
            self.total += (flat @ weights.reshape(-1).astype(piece.dtype)).astype(np.float64)
            self.count += float(weights.sum(dtype=np.float64))
            sampled = weights[first[0] :: self.stride, first[1] :: self.stride].reshape(-1).astype(piece.dtype)
        if sample.shape[1] == 0 or (sampled is not None and not sampled.any()):
            return
        if self.shift is None:
            self.shift = sample.mean(axis=1).astype(piece.dtype)
        centred = sample - self.shift[:, None]
        weighted = centred if sampled is None else centred * sampled
        self.sample_sum += weighted.sum(axis=1, dtype=np.float64)
        self.outer += (weighted @ centred.T).astype(np.float64)
        self.samples += sample.shape[1] if sampled is None else float(sampled.sum(dtype=np.float64))
        self.squares += sample.shape[1] if sampled is None else float(np.square(sampled, dtype=np.float64).sum())

    def finish(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The mean (C,) and covariance (C, C), in float64; None when no position had weight."""
        if self.count <= 0:
            return None
        mean = self.total / self.count
        offset = mean - (self.shift if self.shift is not None else 0.0)  # the mean, from the shift
        # sum w (x - m)(x - m)^T = sum w y y^T - d s^T - s d^T + W d d^T, with y = x - shift, d = m - shift, s = sum w y
        outer = self.outer - np.outer(offset, self.sample_sum) - np.outer(self.sample_sum, offset) + self.samples * np.outer(offset, offset)
        dof = self.samples - self.squares / self.samples if self.samples > 0 else 0.0  # n - 1 when every weight is 1
        return mean, outer / (dof if dof > 0 else max(self.samples, 1.0))


def whitening(features: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The photo's mean (C,) and whitening matrix E D^-1/2 E^T (C, C), in float64: zero mean and identity
    covariance in the directions that vary (of the positions ``weights`` counts, when given)."""
    return whitening_from(*mean_covariance(features, weights))


def whitening_from(mean: np.ndarray, covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`whitening` of features with this mean and covariance (e.g. a whole image's, from its tiles)."""
    values, vectors, kept = _eigen(covariance)
    scale = np.where(kept, 1.0 / np.sqrt(np.where(kept, values, 1.0)), 0.0)
    return mean, (vectors * scale) @ vectors.T


def _affine(mean: np.ndarray, white: np.ndarray, styles: list[StyleStats], weights: list[float],
            strength: float) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The matrix and bias (float32) of strength * sum_i w_i (C_i W (f - m) + m_i) + (1 - strength) f."""
    colour = sum(weight * stats.colouring.astype(np.float64) for stats, weight in zip(styles, weights)) @ white
    target_mean = sum(weight * stats.mean.astype(np.float64) for stats, weight in zip(styles, weights))
    matrix = strength * colour + (1.0 - strength) * np.eye(len(mean))
    bias = strength * (target_mean - colour @ mean)
    return matrix.astype(np.float32), bias.astype(np.float32)


def affine(features: np.ndarray, styles: list[StyleStats], weights: list[float], strength: float,
           moments: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The one affine map (matrix (C, C), bias (C,), float32) that :func:`transfer` applies to ``features``;
    ``moments``: the mean and covariance to whiten with instead of the features' own (a whole image's, for a tile)."""
    return _affine(*(whitening_from(*moments) if moments is not None else whitening(features)), styles, weights, strength)


def transfer(features: np.ndarray, styles: list[StyleStats], weights: list[float], strength: float) -> np.ndarray:
    """WCT of a photo's (C, H, W) features towards the weighted paintings, blended with the photo by ``strength``.

    The whitening, every painting's colouring and the blend are one affine map, applied in one pass:
    strength * sum_i w_i (C_i W (f - m) + m_i) + (1 - strength) f.
    """
    matrix, bias = affine(features, styles, weights, strength)
    mixed = matrix @ features.reshape(features.shape[0], -1)
    mixed += bias[:, None]
    return mixed.reshape(features.shape)


def transfer_regions(features: np.ndarray, styles: list[StyleStats], shares: np.ndarray, strength: float,
                     moments: list[tuple[np.ndarray, np.ndarray] | None] | None = None) -> np.ndarray:  # fmt: skip
    """WCT per region (Li et al. 2017, spatial control): region k's features, whitened with their own statistics
    (the positions weighted by ``shares[k]``), coloured with ``styles[k]``; the results blended per position by
    the shares, the last of which keeps the photo's own features. ``shares``: (K + 1, H, W), summing to 1.
    ``moments``: each region's mean and covariance to whiten with instead (a whole image's, for a tile)."""
    channels = features.shape[0]
    flat = features.reshape(channels, -1)
    mixed = flat * shares[-1].reshape(1, -1)
    for index, (stats, share) in enumerate(zip(styles, shares[:-1])):
        given = moments[index] if moments is not None else None
        if not share.any() or (moments is not None and given is None):  # a mask too small to reach this level's grid
            continue
        matrix, bias = _affine(*(whitening_from(*given) if given is not None else whitening(features, share)), [stats], [1.0], strength)
        region = matrix @ flat
        region += bias[:, None]
        region *= share.reshape(1, -1)
        mixed += region
    return mixed.reshape(features.shape)
