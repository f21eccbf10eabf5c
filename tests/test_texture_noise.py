"""bench/texture_noise.py: the hatching figures tell one-angle lines from noise and a weave, and the mesh figure
measures detail at periods of 2 to 4 px only (synthetic images)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from bench.texture_noise import hatched_area, hatching_coherence, mesh_amplitude

SIZE = 128


def picture(pixels: np.ndarray) -> Image.Image:
    grey = np.clip(pixels * 255, 0, 255).astype(np.uint8)
    return Image.fromarray(np.stack([grey] * 3, axis=-1))


def flat_photo() -> Image.Image:
    return picture(np.full((SIZE, SIZE), 0.5))


def grating(period: float, amplitude: float) -> Image.Image:
    """Diagonal lines, ``period`` px apart along each axis (``period`` / sqrt(2) across the lines)."""
    rows, columns = np.mgrid[0:SIZE, 0:SIZE]
    return picture(0.5 + amplitude * np.sin(2 * np.pi * (rows + columns) / period))


def test_diagonal_hatching_scores_near_one() -> None:
    assert hatching_coherence(flat_photo(), grating(5, 0.3)) > 0.9


def test_noise_and_a_weave_score_low() -> None:
    noise = picture(np.random.default_rng(0).uniform(0.2, 0.8, (SIZE, SIZE)))
    rows, columns = np.mgrid[0:SIZE, 0:SIZE]
    across = np.sin(2 * np.pi * columns / 5) * ((rows // 8) % 2)  # dashes that turn every 8 px: a weave
    down = np.sin(2 * np.pi * rows / 5) * (1 - (rows // 8) % 2)
    weave = picture(0.5 + 0.3 * (across + down))
    assert hatching_coherence(flat_photo(), noise) < 0.3
    assert hatching_coherence(flat_photo(), weave) < 0.5


def test_lines_the_photo_already_has_are_not_counted() -> None:
    """Only the photo's flattest half is measured: its own stripes there would count, elsewhere not."""
    rows, columns = np.mgrid[0:SIZE, 0:SIZE]
    stripes = 0.3 * np.sin(2 * np.pi * (rows + columns) / 5) * (columns < SIZE // 2)
    photo = picture(0.5 + stripes)
    rng = np.random.default_rng(1)
    stylised = picture(0.5 + stripes + 0.2 * rng.uniform(-1, 1, (SIZE, SIZE)) * (columns >= SIZE // 2))
    assert hatching_coherence(photo, stylised) < 0.3


def test_hatched_area_counts_visible_gratings_only() -> None:
    noise = picture(np.random.default_rng(0).uniform(0.2, 0.8, (SIZE, SIZE)))
    assert hatched_area(flat_photo(), grating(5 * np.sqrt(2), 0.1)) == 1.0  # 5 px apart
    assert hatched_area(flat_photo(), grating(5 * np.sqrt(2), 1 / 255)) == 0.0  # too faint to see
    assert hatched_area(flat_photo(), noise) == 0.0


def test_mesh_amplitude_is_the_rms_of_a_fine_grating_and_ignores_coarse_ones() -> None:
    fine, coarse = grating(3 * np.sqrt(2), 0.1), grating(8 * np.sqrt(2), 0.1)  # 3 and 8 px apart
    assert abs(mesh_amplitude(flat_photo(), fine) - 0.1 / np.sqrt(2) * 255) < 1.5  # 18 of 255, up to rounding
    assert mesh_amplitude(flat_photo(), coarse) < 1.0
    assert mesh_amplitude(flat_photo(), flat_photo()) == 0.0
