"""Colour control (Gatys et al. 2017, "Controlling Perceptual Factors in Neural Style Transfer").

Both methods work on float RGB arrays (H, W, 3) in 0..1 with numpy only, so ``nst apply`` can use
them without torch:

- ``luminance``: keep the stylised image's luminance and take the colour (chroma) from the content
  image, in YIQ space.
- ``histogram``: before transfer, give the style image the content image's colour mean and
  covariance (an affine map of its RGB values).
"""

from __future__ import annotations

import numpy as np

METHODS = ("luminance", "histogram")

_RGB_TO_YIQ = np.array(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]], dtype=np.float64
)
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ)


def transfer_luminance(stylised: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Stylised luminance with the content's chroma; both arrays must have the same shape."""
    stylised_yiq = stylised.astype(np.float64) @ _RGB_TO_YIQ.T
    content_yiq = content.astype(np.float64) @ _RGB_TO_YIQ.T
    combined = np.concatenate([stylised_yiq[..., :1], content_yiq[..., 1:]], axis=-1)
    return np.clip(combined @ _YIQ_TO_RGB.T, 0.0, 1.0).astype(np.float32)


def _matrix_sqrt(covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric square root and its inverse of a covariance matrix (eigenvalues floored)."""
    values, vectors = np.linalg.eigh(covariance)
    values = np.maximum(values, 1e-8)
    root = (vectors * np.sqrt(values)) @ vectors.T
    inverse_root = (vectors / np.sqrt(values)) @ vectors.T
    return root, inverse_root


def _covariance(pixels: np.ndarray) -> np.ndarray:
    """The (3, 3) covariance of (N, 3) pixels; one pixel has none (zeros, where np.cov would divide by zero)."""
    return np.cov(pixels, rowvar=False) if len(pixels) > 1 else np.zeros((3, 3))


def match_color(source: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``source`` recoloured so its RGB mean and covariance equal ``reference``'s (sizes may differ)."""
    source_pixels = source.reshape(-1, 3).astype(np.float64)
    reference_pixels = reference.reshape(-1, 3).astype(np.float64)
    source_mean, reference_mean = source_pixels.mean(0), reference_pixels.mean(0)
    _, source_inverse_root = _matrix_sqrt(_covariance(source_pixels) + 1e-6 * np.eye(3))
    reference_root, _ = _matrix_sqrt(_covariance(reference_pixels) + 1e-6 * np.eye(3))
    transform = reference_root @ source_inverse_root
    matched = (source_pixels - source_mean) @ transform.T + reference_mean
    return np.clip(matched, 0.0, 1.0).reshape(source.shape).astype(np.float32)
