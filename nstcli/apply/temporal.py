"""Temporal consistency for video (``nst apply --temporal``) and the flicker figure.

Each frame stylised alone shimmers: the network answers small changes of the input with different
brush strokes. Three modes:

  off    every frame as the network paints it
  blend  a plain blend with the previous output frame (steadier, but moving things leave ghosts)
  flow   optical flow between consecutive *input* frames (OpenCV's DIS) warps the previous output
         onto the current frame; where the warp is trusted (forward-backward consistent, the
         colours agree, inside the frame) it is blended with the new stylisation, elsewhere
         (occlusions, new content) the new stylisation is kept as it is

Scene cuts reset both: the first frame after a cut is the network's own.

The flicker figure is the warping error of Lai et al. (2018, "Learning blind video temporal
consistency"): the mean squared difference, in 0..1 RGB, between each output frame and the
previous output warped by the input's flow, over the pixels where that flow is trusted, averaged
over the frame pairs (cuts excluded). The same motion (from the input frames) measures every mode
and any other tool's output, so the figures compare.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nstcli.errors import UsageError

MODES = ("off", "blend", "flow")
DEFAULT_MODE = "flow"
DEFAULT_WEIGHT = 0.6  # the previous (warped) frame's share where the warp is trusted; chosen in bench/video_flicker.py
VIDEO_EXTRA = "pip install 'nst[video]'"

FLOW_SIZE = 640  # flow is estimated with the long side at most this (then scaled up): DIS is 4x faster, as good
CUT_VALID = 0.25  # fewer trusted pixels than this share of the frame: a scene cut
CUT_HISTOGRAM = 0.5  # Bhattacharyya distance of the grey-level histograms above this: a scene cut
COLOUR_TOLERANCE = 0.08  # warped input grey value off by more than this (0..1): not the same surface


def require_cv2():
    """OpenCV, or the one-line UsageError that names the extra."""
    try:
        import cv2
    except ImportError:
        raise UsageError(f"video needs OpenCV: {VIDEO_EXTRA}") from None
    return cv2


def check_mode(mode: str, weight: float) -> None:
    if mode not in MODES:
        raise UsageError(f"--temporal: choose {', '.join(MODES)}, not {mode!r}")
    if not 0.0 <= weight < 1.0:
        raise UsageError(f"--temporal-weight must be in 0..1 (1 excluded), got {weight}")


@dataclass
class Motion:
    """How the current input frame relates to the previous one."""

    backward: np.ndarray | None  # (H, W, 2) float32: for each pixel here, its offset to where it was before
    trusted: np.ndarray | None  # (H, W) float32 0..1: where warping the previous frame onto this one is right
    cut: bool  # a scene cut (or the first frame): nothing carries over


FIRST = Motion(None, None, True)


class MotionEstimator:
    """Feed input frames in order; ``next`` says how each relates to the one before.

    ``flow=False`` (blend mode without the flicker figure) looks for scene cuts only.
    """

    def __init__(self, flow: bool) -> None:
        self.cv2 = require_cv2()
        self.flow = flow
        self.dis = self.cv2.DISOpticalFlow_create(self.cv2.DISOPTICAL_FLOW_PRESET_FAST) if flow else None
        self.previous: tuple[np.ndarray, np.ndarray] | None = None  # (grey at flow size, histogram)

    def next(self, rgb: np.ndarray) -> Motion:
        """``rgb``: (H, W, 3) uint8 or float32 0..1."""
        cv2 = self.cv2
        pixels = rgb if rgb.dtype == np.uint8 else (np.clip(rgb, 0, 1) * 255).astype(np.uint8)
        height, width = pixels.shape[:2]
        scale = min(1.0, FLOW_SIZE / max(height, width))
        small = cv2.resize(pixels, (max(8, round(width * scale)), max(8, round(height * scale))),
                           interpolation=cv2.INTER_AREA) if scale < 1 else pixels  # fmt: skip
        grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        histogram = cv2.calcHist([grey], [0], None, [32], [0, 256])
        cv2.normalize(histogram, histogram, 1.0, 0.0, cv2.NORM_L1)
        previous, self.previous = self.previous, (grey, histogram)
        if previous is None:
            return FIRST
        if cv2.compareHist(previous[1], histogram, cv2.HISTCMP_BHATTACHARYYA) > CUT_HISTOGRAM:
            return FIRST
        if not self.flow:
            return Motion(None, None, False)
        backward, trusted = self._flow(previous[0], grey)
        if float(trusted.mean()) < CUT_VALID:
            return FIRST
        if scale < 1:  # back to the frame's size: offsets scale with it
            backward = cv2.resize(backward, (width, height), interpolation=cv2.INTER_LINEAR) * np.float32(1 / scale)
            trusted = cv2.resize(trusted, (width, height), interpolation=cv2.INTER_LINEAR)
        return Motion(backward, trusted, False)

    def _flow(self, before: np.ndarray, now: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Backward flow (now -> before) and where it is trusted: forward-backward consistent
        (Sundaram et al. 2010), landing inside the frame, and the grey values agree."""
        cv2 = self.cv2
        backward = self.dis.calc(now, before, None)
        forward = self.dis.calc(before, now, None)
        forward_there = warp(forward, backward)  # the forward flow at where each pixel came from
        loop = backward + forward_there
        consistent = (loop**2).sum(-1) <= 0.01 * ((backward**2).sum(-1) + (forward_there**2).sum(-1)) + 0.5
        height, width = now.shape
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        x_then, y_then = xs + backward[..., 0], ys + backward[..., 1]
        inside = (x_then >= 0) & (x_then <= width - 1) & (y_then >= 0) & (y_then <= height - 1)
        grey_then = warp(before.astype(np.float32), backward)
        agrees = np.abs(grey_then - now.astype(np.float32)) <= COLOUR_TOLERANCE * 255
        trusted = (consistent & inside & agrees).astype(np.float32)
        trusted = cv2.erode(trusted, np.ones((3, 3), np.uint8))  # distrust the rims of occlusions too
        return backward, cv2.GaussianBlur(trusted, (5, 5), 0)  # soft edges: no seams where blending stops


_GRIDS: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def warp(image: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """``image`` (the previous frame) pulled onto the current frame by the backward flow (bilinear)."""
    import cv2

    height, width = backward.shape[:2]
    grid = _GRIDS.get((height, width))
    if grid is None:
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        grid = _GRIDS.setdefault((height, width), (xs, ys))
    return cv2.remap(image, grid[0] + backward[..., 0], grid[1] + backward[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)  # fmt: skip


class Stabiliser:
    """``--temporal``: each stylised frame in, the frame to write out (float32 0..1)."""

    def __init__(self, mode: str, weight: float) -> None:
        self.mode, self.weight = mode, np.float32(weight)
        self.previous: np.ndarray | None = None

    def next(self, stylised: np.ndarray, motion: Motion) -> np.ndarray:
        previous = self.previous
        if self.mode == "off" or previous is None or motion.cut or previous.shape != stylised.shape:
            out = stylised
        elif self.mode == "blend":
            out = self.weight * previous + (1 - self.weight) * stylised
        else:
            assert motion.backward is not None and motion.trusted is not None
            share = (self.weight * motion.trusted)[..., None]
            out = share * warp(previous, motion.backward) + (1 - share) * stylised
        self.previous = out
        return out


class FlickerMeter:
    """The warping error of consecutive output frames (see the module's docstring)."""

    def __init__(self) -> None:
        self.previous: np.ndarray | None = None
        self.total, self.pairs = 0.0, 0

    def add(self, output: np.ndarray, motion: Motion) -> None:
        """``output``: the frame as written (uint8 or float32 0..1); ``motion``: from the input frames."""
        frame = output.astype(np.float32) / 255 if output.dtype == np.uint8 else output.astype(np.float32)
        previous, self.previous = self.previous, frame
        if previous is None or motion.cut or motion.backward is None or previous.shape != frame.shape:
            return
        mask = motion.trusted > 0.5
        if not mask.any():
            return
        error = ((frame - warp(previous, motion.backward)) ** 2).mean(-1)
        self.total += float(error[mask].mean())
        self.pairs += 1

    @property
    def value(self) -> float | None:
        return self.total / self.pairs if self.pairs else None
