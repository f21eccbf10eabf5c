"""Whitening and colouring (nstcli.wct) against a float64 torch reference, and on degenerate features."""

from __future__ import annotations

import numpy as np
import pytest

from nstcli import wct


def features(channels: int = 16, height: int = 12, width: int = 10, seed: int = 0) -> np.ndarray:
    """ReLU-like correlated features: non-negative, with a mean and a covariance of their own."""
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(channels, channels))
    raw = mixing @ rng.normal(size=(channels, height * width)) + rng.normal(size=(channels, 1)) * 3
    return np.maximum(raw, 0).reshape(channels, height, width).astype(np.float32)


def reference(content: np.ndarray, style: np.ndarray, strength: float) -> np.ndarray:
    """WCT as Li et al. write it, in torch float64: whiten with E D^-1/2 E^T, colour with E D^1/2 E^T."""
    import torch

    def stats(x):
        flat = torch.from_numpy(x).double().reshape(x.shape[0], -1)
        mean = flat.mean(1, keepdim=True)
        centred = flat - mean
        values, vectors = torch.linalg.eigh(centred @ centred.T / (flat.shape[1] - 1))
        return flat, mean, centred, values.clamp(min=0), vectors

    flat, _, centred, values, vectors = stats(content)
    _, style_mean, _, style_values, style_vectors = stats(style)
    white = vectors @ torch.diag(values.rsqrt()) @ vectors.T @ centred
    coloured = style_vectors @ torch.diag(style_values.sqrt()) @ style_vectors.T @ white + style_mean
    return (strength * coloured + (1 - strength) * flat).reshape(content.shape).numpy()


@pytest.mark.parametrize("strength", [1.0, 0.6])
def test_transfer_matches_the_float64_torch_reference(strength):
    content, style = features(seed=1), features(height=9, width=7, seed=2)
    result = wct.transfer(content, [wct.style_stats(style)], [1.0], strength)
    expected = reference(content, style, strength)
    assert result.dtype == np.float32 and result.shape == content.shape
    assert np.abs(result - expected).max() < 1e-3 * np.abs(expected).max()


def test_the_result_has_the_paintings_mean_and_covariance():
    content, style = features(seed=3), features(seed=4)
    result = wct.transfer(content, [wct.style_stats(style)], [1.0], 1.0).reshape(16, -1).astype(np.float64)
    flat = style.reshape(16, -1).astype(np.float64)
    np.testing.assert_allclose(result.mean(1), flat.mean(1), atol=1e-3 * np.abs(flat).max())
    np.testing.assert_allclose(np.cov(result), np.cov(flat), atol=2e-3 * np.abs(np.cov(flat)).max())


def test_two_paintings_blend_as_the_weighted_sum_of_each_transfer():
    content, first, second = features(seed=5), features(seed=6), features(seed=7)
    stats = [wct.style_stats(first), wct.style_stats(second)]
    blended = wct.transfer(content, stats, [0.7, 0.3], 1.0)
    separate = 0.7 * wct.transfer(content, stats[:1], [1.0], 1.0) + 0.3 * wct.transfer(content, stats[1:], [1.0], 1.0)
    np.testing.assert_allclose(blended, separate, atol=1e-4 * np.abs(separate).max())


def test_strength_zero_gives_back_the_photos_features():
    content = features(seed=8)
    result = wct.transfer(content, [wct.style_stats(features(seed=9))], [1.0], 0.0)
    np.testing.assert_allclose(result, content, atol=1e-4 * content.max())


def test_a_flat_painting_gives_its_colour_everywhere_not_nan():
    """A one-colour painting has a zero (singular) covariance: colouring leaves only its mean."""
    flat_style = np.broadcast_to(np.arange(16, dtype=np.float32)[:, None, None], (16, 8, 8)).copy()
    result = wct.transfer(features(seed=10), [wct.style_stats(flat_style)], [1.0], 1.0)
    assert np.isfinite(result).all()
    np.testing.assert_allclose(result, flat_style[:, :1, :1] * np.ones_like(result), atol=1e-4)


@pytest.mark.parametrize("shape", [(16, 1, 1), (16, 6, 6)])
def test_a_flat_or_one_pixel_photo_stays_finite(shape):
    flat_content = np.full(shape, 2.5, np.float32)
    style = wct.style_stats(features(seed=11))
    result = wct.transfer(flat_content, [style], [1.0], 1.0)
    assert np.isfinite(result).all()
    np.testing.assert_allclose(result, np.broadcast_to(style.mean[:, None, None], shape), atol=1e-4)


def test_rank_deficient_features_whiten_only_where_they_vary():
    """Fewer pixels than channels (a tiny photo at relu4_1): no division by the zero eigenvalues."""
    content = features(channels=32, height=3, width=3, seed=12)
    result = wct.transfer(content, [wct.style_stats(features(channels=32, seed=13))], [1.0], 1.0)
    assert np.isfinite(result).all() and np.abs(result).max() < 1e3 * np.abs(content).max()


def test_a_region_is_whitened_with_its_own_statistics_and_coloured_with_its_painting():
    content, first, second = features(width=12, seed=8), features(seed=9), features(seed=10)
    stats = [wct.style_stats(first), wct.style_stats(second)]
    shares = np.zeros((3, 12, 12), np.float32)
    shares[0, :, :5], shares[1, :, 5:10], shares[2, :, 10:] = 1, 1, 1  # left: first painting, middle: second, right: the photo
    result = wct.transfer_regions(content, stats, shares, 0.8)
    assert result.shape == content.shape and result.dtype == np.float32
    scale = np.abs(result).max()
    left = wct.transfer(np.ascontiguousarray(content[:, :, :5]), stats[:1], [1.0], 0.8)
    middle = wct.transfer(np.ascontiguousarray(content[:, :, 5:10]), stats[1:], [1.0], 0.8)
    np.testing.assert_allclose(result[:, :, :5], left, atol=1e-4 * scale)
    np.testing.assert_allclose(result[:, :, 5:10], middle, atol=1e-4 * scale)
    np.testing.assert_array_equal(result[:, :, 10:], content[:, :, 10:])


def test_soft_shares_blend_the_regions_transfers_per_position():
    content, first = features(seed=11), features(seed=12)
    stats = [wct.style_stats(first)]
    share = np.random.default_rng(0).random((12, 10)).astype(np.float32)
    result = wct.transfer_regions(content, stats, np.stack([share, 1 - share]), 1.0)
    whole = wct.transfer_regions(content, stats, np.stack([np.ones_like(share), np.zeros_like(share)]), 1.0)
    assert np.isfinite(result).all()
    # the share-weighted statistics differ from the whole map's, so only the photo's part is exactly linear
    assert not np.allclose(result, share * whole + (1 - share) * content, atol=1e-3 * np.abs(whole).max())
    np.testing.assert_allclose(whole, wct.transfer(content, stats, [1.0], 1.0), atol=1e-4 * np.abs(whole).max())


def test_covariances_of_large_maps_come_from_a_grid_of_positions():
    assert wct.sample_stride(256, 256) == 1 and wct.sample_stride(344, 512) == 2 and wct.sample_stride(2048, 2048) == 8
    rng = np.random.default_rng(1)
    big = np.maximum(rng.normal(size=(8, 400, 400)).astype(np.float32) + 0.5, 0)
    mean, covariance = wct.mean_covariance(big)
    flat = big.reshape(8, -1).astype(np.float64)
    np.testing.assert_allclose(mean, flat.mean(1), rtol=1e-6)  # the mean is the whole map's
    np.testing.assert_allclose(covariance, np.cov(flat), atol=0.02 * np.abs(np.cov(flat)).max())


def test_moments_of_a_map_in_pieces_are_the_whole_maps():
    rng = np.random.default_rng(2)
    big = (np.maximum(rng.normal(size=(8, 300, 300)) + 0.5, 0) * 30 + 5).astype(np.float32)
    stride = wct.sample_stride(300, 300)
    assert stride == 2
    moments = wct.Moments(8, stride)
    for top, bottom in ((0, 171), (171, 300)):  # odd origins: the grid is counted from the whole map's origin
        for left, right in ((0, 133), (133, 300)):
            moments.add(big[:, top:bottom, left:right], (top, left))
    mean, covariance = moments.finish()
    whole_mean, whole_covariance = wct.mean_covariance(big)
    np.testing.assert_allclose(mean, whole_mean, rtol=1e-6)
    np.testing.assert_allclose(covariance, whole_covariance, rtol=1e-5, atol=1e-6 * np.abs(whole_covariance).max())


def test_weighted_moments_in_pieces_are_the_whole_maps_weighted_statistics():
    rng = np.random.default_rng(4)
    big = (np.maximum(rng.normal(size=(6, 40, 50)) + 0.5, 0) * 30 + 5).astype(np.float32)
    weights = rng.random((40, 50)).astype(np.float32) * (np.arange(50) < 30)  # a soft mask over the left part
    moments = wct.Moments(6, 1)
    for top, bottom in ((0, 17), (17, 40)):
        for left, right in ((0, 23), (23, 50)):
            moments.add(big[:, top:bottom, left:right], (top, left), weights[top:bottom, left:right])
    mean, covariance = moments.finish()
    whole_mean, whole_covariance = wct.mean_covariance(big, weights)
    np.testing.assert_allclose(mean, whole_mean, rtol=1e-5)
    np.testing.assert_allclose(covariance, whole_covariance, rtol=1e-4, atol=1e-6 * np.abs(whole_covariance).max())
    assert wct.Moments(6, 1).finish() is None  # nothing seen: no statistics
