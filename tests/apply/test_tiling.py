"""Tiling: large images in blended tiles, with whole-image instance-norm statistics (numerical seam checks)."""

from __future__ import annotations

import numpy as np
import pytest

from nstcli import tiling


def scene(size: int = 192) -> np.ndarray:
    """Left half warm, right half cold: tiles on either side have very different statistics."""
    y, x = np.mgrid[0:size, 0:size] / size
    image = np.stack(
        [0.2 + 0.6 * (x > 0.5) + 0.1 * np.sin(9 * y), 0.3 + 0.4 * y, 0.8 - 0.6 * (x > 0.5) + 0.1 * np.cos(7 * x)], -1
    )
    noise = np.random.default_rng(0).normal(0, 0.02, image.shape)
    return np.clip(image + noise, 0, 1).astype(np.float32)


def test_tile_geometry_covers_everything_with_positive_weights():
    for length, tile, overlap in [(192, 64, 16), (200, 64, 16), (64, 64, 16), (30, 64, 8), (1000, 256, 48)]:
        starts = tiling.tile_starts(length, tile, overlap)
        covered = np.zeros(length, bool)
        for start in starts:
            covered[start : start + min(tile, length)] = True
        assert covered.all() and starts[-1] + min(tile, length) == length
        assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))  # neighbours overlap enough
    weights = tiling.feather(64, 16, True, True)
    assert weights.min() > 0 and weights[16:48].min() == 1 and np.all(np.diff(weights[:16]) > 0)
    assert tiling.feather(64, 16, False, False).min() == 1  # image borders keep full weight


def test_tiled_output_matches_whole_image_run_without_seams(models):
    from nstcli.apply.model import Model

    model = Model(str(models["single"]), "cpu")
    image = scene()
    whole = model.run(image[None])[0]
    pinned = model.run_tiled(image, tile=64, overlap=16, batch_size=4)
    naive = tiling.run_tiled(image, model.run, 64, 16, 4)  # per-tile statistics, feathered seams
    pinned_error, naive_error = np.abs(pinned - whole), np.abs(naive - whole)
    assert pinned_error.mean() < 1 / 255 and np.percentile(pinned_error, 99) < 4 / 255
    assert naive_error.mean() > 10 * pinned_error.mean()  # the instance-norm shift is real, and gone

    # Seams: the step between neighbouring columns/rows at every tile boundary equals the whole-image one.
    starts = tiling.tile_starts(image.shape[0], 64, 16)
    boundaries = sorted({s for s in starts[1:]} | {s + 64 for s in starts[:-1]})
    for axis in (0, 1):
        step = lambda out: np.abs(np.diff(out, axis=axis)).take([b - 1 for b in boundaries], axis=axis)  # noqa: E731
        assert np.abs(step(pinned) - step(whole)).mean() < 1 / 255


def test_small_guide_still_removes_most_of_the_shift(models):
    from nstcli.apply.model import Model

    model = Model(str(models["single"]), "cpu")
    model.guide_size = 96  # statistics from a half-size copy, as for images larger than the guide
    image = scene()
    whole = model.run(image[None])[0]
    pinned = np.abs(model.run_tiled(image, 64, 16, 4) - whole).mean()
    naive = np.abs(tiling.run_tiled(image, model.run, 64, 16, 4) - whole).mean()
    assert pinned < 0.3 * naive


@pytest.mark.parametrize("style", ["ink", "oil"])
def test_multi_style_model_tiles_too(models, style):
    from nstcli.apply.model import Model

    model = Model(str(models["multi"]), "cpu")  # exported at opset 17: ReduceMean with axes attribute
    model.select_style(style, None)
    image = scene(128)
    whole = model.run(image[None])[0]
    assert np.abs(model.run_tiled(image, 64, 16, 2) - whole).mean() < 1 / 255
