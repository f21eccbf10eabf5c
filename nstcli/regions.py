"""Region fusion for ``nst apply --region NAME=MASK``: each style paints where its mask is white.

Masks are greyscale images (colour ones count by luminance; grey = partly), stretched to each
photo. At most one region may name no mask: it takes what the masks leave. Where the masks cover
less than the whole picture the photo shows through; where they overlap, their shares are
normalised to sum 1.

The exported graph takes one weight per style for the whole picture, so the regions are fused
after decoding: the photo is stylised once per region and the renderings are blended per pixel.
Chen et al. fuse the banks' features before the decoder instead; the two differ only within the
decoder's reach of a mask's edge (a blurred mask gives a soft seam either way).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from nstcli import images
from nstcli.errors import InputError, UsageError


@dataclass
class Region:
    style: str  # a style name or index in the model
    mask: Image.Image | None  # greyscale; None: the rest of the picture


def split_region(text: str) -> tuple[str, str | None]:
    """``NAME=MASK`` -> (NAME, MASK); a bare ``NAME`` -> (NAME, None)."""
    style, separator, path = text.partition("=")
    if not style or (separator and not path):
        raise UsageError(f"--region: expected NAME=MASK.png or NAME, got {text!r}")
    if path == images.STDIO:
        raise UsageError("--region: a mask must be a file (stdin is for the photos)")
    return style, path if separator else None


def load_regions(specs: list[tuple[str, str | None]]) -> list[Region]:
    """Read the masks of (style, mask path or None) pairs, with one-line errors for bad ones."""
    regions = []
    for style, path in specs:
        try:
            mask = images.read_image(path).convert("L") if path is not None else None
        except InputError as error:
            raise InputError(f"--region {style}: {error}") from None
        if mask is not None and mask.getextrema()[1] == 0:
            raise InputError(f"--region {style}: the mask {path} is all black, so the style would apply nowhere")
        regions.append(Region(style, mask))
    if all(region.mask is None for region in regions):
        raise UsageError("--region: give at least one NAME=MASK.png (a style without a mask takes the rest)")
    if sum(region.mask is None for region in regions) > 1:
        raise UsageError("--region: at most one style without a mask (it takes what the masks leave)")
    return regions


@dataclass
class RegionWeights:
    """Per-pixel shares of each region and of the photo, kept for the last picture size (folders of
    same-size photos compute them once; one size at a time keeps memory flat for mixed sizes)."""

    regions: list[Region]
    _last: tuple[tuple[int, int], np.ndarray] | None = None

    def at(self, height: int, width: int) -> np.ndarray:
        """(K + 1, H, W) float32: each region's share, then the photo's; they sum to 1 at every pixel."""
        if self._last is None or self._last[0] != (height, width):
            self._last = ((height, width), self._compute(height, width))
        return self._last[1]

    def _compute(self, height: int, width: int) -> np.ndarray:
        masks = [None if region.mask is None else images.mask_array(region.mask, (width, height)) for region in self.regions]
        covered = sum(mask for mask in masks if mask is not None)
        rest = np.clip(1.0 - covered, 0.0, 1.0)
        shares = [rest if mask is None else mask for mask in masks]
        total = sum(shares)
        shares = [share / np.maximum(total, 1.0) for share in shares]
        return np.stack([*shares, 1.0 - np.minimum(total, 1.0)]).astype(np.float32)


def blend(photo: np.ndarray, renderings: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """Mix (H, W, 3) renderings, one per region, and the photo with :meth:`RegionWeights.at` shares."""
    mixed = weights[-1][..., None] * photo
    for share, rendering in zip(weights[:-1], renderings):
        mixed += share[..., None] * rendering
    return mixed
