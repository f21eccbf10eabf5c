"""Texture-noise figures that tell fine hatching from brush strokes: ``hatched_area`` and the older
``hatching_coherence``; and ``mesh_amplitude``, the strength of a mesh finer than both.

Plain high-frequency energy does not: the peer's result has more fine-detail energy than ours (a
canvas-like weave of short dashes), yet it looks cleaner. What the eye reads as hatching is fine
lines that keep ONE angle over whole regions, laid over the picture whatever is under them. So:

1. band-pass the luma to fine detail (difference of Gaussians, sigma 0.7 and 2.5 px: periods of
   roughly 3 to 10 px);
2. in every 17 x 17 px window, the structure tensor's coherence: 1 when all the detail there runs
   at one angle, 0 when the angles cancel (a weave, dabs, noise);
3. averaged, weighted by the detail's energy, over the half of the picture where the *photo* has the
   least detail: there every line comes from the stylisation, not from the photo's edges.

Measured on kodim04, 08, 13 and 23 at their full 768 x 512 px with The Starry Night (README, issue 18): the photos
themselves 0.17-0.54, the peer 0.43-0.48, the bundled StyleBank 0.48-0.60, the bundled Johnson
net 0.59-0.65 (the strongest hatching to the eye). But it counts long strokes that bend with the
shapes, and ink lines along edges, as it counts hatching, which the eye does not.

``hatched_area`` asks what the eye asks: where does a *visible regular grating* (parallel lines at
one spacing) cover the picture? In every 64 x 64 px window (half overlapping) that lies in the
photo's flat half, the power spectrum of the luma (Hann-windowed) over periods of 2.5 to 10 px; the
window is hatched when its 4 strongest frequencies (one grating and its mirror image, with their
nearest neighbours) hold at least 10% of the band's energy (white noise: about 2%; strokes that
bend, a weave of dashes at many angles, dabs and photo detail spread it) AND that grating's
amplitude is at least 3/255 of luma (fainter is hard to see). The figure is the share of such
windows. On the same four photos (means of the photos): the photos themselves 0.07, the first
Johnson Starry Night net 0.45, the one that replaced it 0.13, the peer's style 19 0.11, the first
bundled StyleBank's Starry Night 0.22, the CPU-trained bank that replaced it 0.19 (README, issue 18).

Both measure the texture, not whether strokes follow the shapes; read them beside the sheets. A weave finer
than the band escapes the hatched area: the Night Café net trained with the Gram loss scored 0.08 against the
shipped net's 0.16 with a fine mesh the eye sees in 2x crops. Most of that mesh lies at periods of 2 to 3.4 px
(on kodim23 its strongest fine frequency is a 2 px period), and in the band few windows hold two gratings at
different angles (1%). The same test over periods of 2 to 3.4 px does not agree with the eye either: the Gram
net 0.08, the shipped net 0.04, but the peer's style 19 0.62 (a fine canvas grain that reads as clean at
viewing size) and its style 7 0.01 (README).

``mesh_amplitude`` measures that mesh's strength instead of counting gratings: the RMS luma amplitude
(0-255) at periods of 2 to 4 px in the same windows, at 512 px. It is a cause's figure, not a verdict: a
net with nearest-neighbour upsampling can paint a period-2 mesh, one with bilinear upsampling much less
(the Night Café recipe at 1,000 steps: 4.0 against 1.0, though by 3,700 steps 5.2 against 4.3; the
shipped net 5.4), while the peer's style 19 carries a strong fine canvas grain (27) that looks clean at
viewing size and its flat style 7 little (2.5; docs/bundled-styles.md).

    python bench/texture_noise.py PHOTO STYLISED [STYLISED ...]   # hatched area, coherence, mesh: a line per image
"""

from __future__ import annotations

import sys

import numpy as np
from PIL import Image, ImageFilter

FINE_BAND = (0.7, 2.5)  # Gaussian sigmas (px) of the detail that is measured
PHOTO_BAND = (1.0, 4.0)  # sigmas of the photo detail that marks its edges
WINDOW_RADIUS = 8  # px: 17 x 17 windows, a few hatch lines wide
SPECTRUM_WINDOW = 64  # px: hatched_area's windows, 6-25 hatch lines wide
GRATING_PERIODS = (2.5, 10.0)  # px: the gratings hatched_area looks for
GRATING_PEAKS = 4  # strongest frequencies counted: one grating, its mirror, their neighbours
GRATING_SHARE = 0.10  # of the band's energy in them: a grating dominates the fine detail (white noise: 0.02)
GRATING_AMPLITUDE = 3 / 255  # of luma (0..1): a grating this strong shows
MESH_PERIODS = (2.0, 4.0)  # px: mesh_amplitude's band, below most of hatched_area's


def band_pass(image: Image.Image, sigmas: tuple[float, float]) -> np.ndarray:
    """Luma (0..1) blurred at the smaller sigma minus blurred at the larger one."""
    luma = image.convert("L")
    fine, coarse = (np.asarray(luma.filter(ImageFilter.GaussianBlur(sigma)), np.float64) for sigma in sigmas)
    return (fine - coarse) / 255.0


def box_mean(values: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2 radius + 1)^2 window around each pixel (reflected at the borders)."""
    side = 2 * radius + 1
    sums = np.pad(np.pad(values, radius, mode="reflect").cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    return (sums[side:, side:] - sums[:-side, side:] - sums[side:, :-side] + sums[:-side, :-side]) / side**2


def structure_tensor(detail: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Per window: the oriented part (complex, angle doubled) and the energy of the gradients."""
    gradient_y, gradient_x = np.gradient(detail)
    oriented = box_mean(gradient_x**2 - gradient_y**2, radius) + 2j * box_mean(gradient_x * gradient_y, radius)
    energy = box_mean(gradient_x**2 + gradient_y**2, radius)
    return oriented, energy


def flat_half(photo: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """The half of ``photo`` (resized to ``size``) with the least detail: any line there comes from the stylisation."""
    photo = photo.convert("RGB").resize(size, Image.Resampling.BICUBIC)
    _, photo_energy = structure_tensor(band_pass(photo, PHOTO_BAND), 4)
    return photo_energy <= np.median(photo_energy)


def hatching_coherence(photo: Image.Image, stylised: Image.Image) -> float:
    """Energy-weighted coherence of ``stylised``'s fine detail where ``photo`` is flattest (0..1)."""
    flat = flat_half(photo, stylised.size)
    oriented, energy = structure_tensor(band_pass(stylised.convert("RGB"), FINE_BAND), WINDOW_RADIUS)
    return float(np.abs(oriented)[flat].sum() / energy[flat].sum())


def flat_windows(photo: Image.Image, stylised: Image.Image) -> list[np.ndarray]:
    """``stylised``'s luma (0..1) in the 64 x 64 px windows (half overlapping) that lie mostly in ``photo``'s flat half."""
    flat = flat_half(photo, stylised.size)
    luma = np.asarray(stylised.convert("L"), np.float64) / 255.0
    size, step = SPECTRUM_WINDOW, SPECTRUM_WINDOW // 2
    return [
        luma[top : top + size, left : left + size]
        for top in range(0, luma.shape[0] - size + 1, step)
        for left in range(0, luma.shape[1] - size + 1, step)
        if flat[top : top + size, left : left + size].mean() >= 0.75
    ]


TAPER = np.outer(np.hanning(SPECTRUM_WINDOW), np.hanning(SPECTRUM_WINDOW))  # each window's Hann taper
# Parseval: a sinusoid of amplitude A puts A^2 / 2 * size^2 * sum(taper^2) into its two peaks
PEAK_ENERGY_PER_AMPLITUDE = SPECTRUM_WINDOW**2 * (TAPER**2).sum() / 2


def window_spectrum(window: np.ndarray) -> np.ndarray:
    """The Hann-tapered power spectrum of one window, mean removed."""
    return np.abs(np.fft.fft2((window - window.mean()) * TAPER)) ** 2


def period_band(low: float, high: float) -> np.ndarray:
    """The frequencies of a window's spectrum whose periods lie in [low, high] px."""
    axis = np.fft.fftfreq(SPECTRUM_WINDOW)
    frequency = np.hypot(*np.meshgrid(axis, axis, indexing="ij"))
    return (frequency >= 1 / high) & (frequency <= 1 / low)


def hatched_area(photo: Image.Image, stylised: Image.Image) -> float:
    """Share of the windows in ``photo``'s flat half where one visible grating dominates ``stylised``'s fine
    detail (0..1); NaN when no window is mostly flat (pictures under about 300 px)."""
    band = period_band(*GRATING_PERIODS)
    windows = flat_windows(photo, stylised)
    hatched = 0
    for window in windows:
        power = window_spectrum(window)[band]
        peaks = np.sort(power)[-GRATING_PEAKS:].sum()
        dominant = peaks >= GRATING_SHARE * power.sum()
        visible = peaks >= GRATING_AMPLITUDE**2 * PEAK_ENERGY_PER_AMPLITUDE
        hatched += bool(dominant and visible)
    return hatched / len(windows) if windows else float("nan")


def mesh_amplitude(photo: Image.Image, stylised: Image.Image) -> float:
    """RMS luma amplitude (0..255) of ``stylised``'s detail at periods of 2 to 4 px in ``photo``'s flat half:
    the fine mesh that nearest-neighbour upsampling lets a net paint; NaN when no window is mostly flat."""
    band = period_band(*MESH_PERIODS)
    windows = flat_windows(photo, stylised)
    if not windows:
        return float("nan")
    # Parseval: mean square of the tapered window = spectrum sum / size^4; undo the taper's mean square
    mean_square = np.mean([window_spectrum(window)[band].sum() for window in windows]) / SPECTRUM_WINDOW**4
    return float(np.sqrt(mean_square / (TAPER**2).mean()) * 255)


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit("usage: python bench/texture_noise.py PHOTO STYLISED [STYLISED ...]")
    photo = Image.open(sys.argv[1])
    for path in sys.argv[1:]:
        stylised = Image.open(path)
        figures = hatched_area(photo, stylised), hatching_coherence(photo, stylised), mesh_amplitude(photo, stylised)
        print("  ".join(f"{figure:.3f}" for figure in figures), path)


if __name__ == "__main__":
    main()
