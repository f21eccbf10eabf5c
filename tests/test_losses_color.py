"""losses.py and color.py: the objective's pieces behave as documented."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nstcli import color
from nstcli.descriptors import build_descriptor
from nstcli.errors import UsageError
from nstcli.losses import (
    LossWeights, PerceptualLoss, Tiled, gram, guided_mean_covariance, mean_covariance, mean_squared_error, patch_loss,
    VALUES_PER_BIN, SortedProjections, guided_sliced_wasserstein, quantile_targets, sliced_wasserstein,
    sorted_projections, sorted_rows, style_patches, tile_starts, total_variation,
)  # fmt: skip


def test_gram_is_normalised_by_positions() -> None:
    features = torch.ones(1, 2, 3, 4)
    assert torch.allclose(gram(features), torch.ones(1, 2, 2))


def test_total_variation_is_zero_on_flat_images_and_positive_on_edges() -> None:
    assert total_variation(torch.full((1, 3, 8, 8), 0.5)) == 0
    edge = torch.zeros(1, 3, 8, 8)
    edge[..., 4:] = 1
    assert total_variation(edge) == pytest.approx(1 / 7)


def _loss(weights: LossWeights, styles: list[torch.Tensor], content: torch.Tensor) -> PerceptualLoss:
    descriptor = build_descriptor("vgg19", weights.content_layers + weights.style_layers)
    loss = PerceptualLoss(descriptor, weights)
    loss.set_content(content)
    loss.set_styles(styles)
    return loss


def test_losses_vanish_at_their_targets_and_blend_weights_styles() -> None:
    generator = torch.Generator().manual_seed(0)
    content, style_a, style_b = (torch.rand(1, 3, 32, 32, generator=generator) for _ in range(3))
    weights = LossWeights(["relu2_2"], ["relu1_1", "relu2_1"], style_blend=[1.0, 0.0])
    loss = _loss(weights, [style_a, style_b], content)
    at_content, at_style = loss(content), loss(style_a)
    assert at_content.content == 0 and at_content.style > 0
    assert at_style.style == 0 and at_style.content > 0  # blend 1,0: only style A counts
    single = _loss(LossWeights(["relu2_2"], ["relu1_1", "relu2_1"]), [style_a], content)
    assert torch.allclose(single(content).total, at_content.total)


def test_mean_covariance_separates_the_mean_from_the_gram() -> None:
    features = torch.rand(2, 4, 6, 5, generator=torch.Generator().manual_seed(3))
    statistic = mean_covariance(features)
    covariance, mean = statistic[:, :4], statistic[:, 4]
    assert statistic.shape == (2, 5, 4)
    assert torch.allclose(mean, features.mean(dim=(2, 3)))
    # G = covariance + mean mean^T: the Gram matrix is the two mixed
    assert torch.allclose(gram(features), covariance + mean[:, :, None] * mean[:, None, :], atol=1e-6)


def test_meancov_style_loss_vanishes_at_the_style_and_is_not_the_gram_loss() -> None:
    generator = torch.Generator().manual_seed(2)
    content, style = (torch.rand(1, 3, 32, 32, generator=generator) for _ in range(2))
    layers = (["relu2_2"], ["relu1_1", "relu2_1"])
    meancov = _loss(LossWeights(*layers, style_loss="meancov"), [style], content)
    plain = _loss(LossWeights(*layers), [style], content)
    assert meancov(style).style == 0 and meancov(content).style > 0
    assert not torch.isclose(meancov(content).style, plain(content).style)
    unmasked = meancov(content).style
    meancov.set_masks([torch.ones(1, 1, 32, 32)])  # a white mask: the plain objective
    assert torch.isclose(meancov(content).style, unmasked, rtol=1e-4)


def test_guided_mean_covariance_is_the_region_statistic() -> None:
    features = torch.rand(1, 4, 8, 8, generator=torch.Generator().manual_seed(5))
    left = torch.zeros(1, 1, 8, 8)
    left[..., :4] = 1
    guided = guided_mean_covariance(features, left)
    assert torch.allclose(guided, mean_covariance(features[..., :4]), atol=1e-5)
    assert torch.allclose(guided_mean_covariance(features, torch.ones(1, 1, 8, 8)), mean_covariance(features), atol=1e-5)


def test_tiles_are_spread_evenly_and_cover_the_length() -> None:
    assert tile_starts(12, 3, 4) == [0, 4, 8]
    assert tile_starts(10, 3, 4) == [0, 3, 6]  # 4 + 4 + 4 > 10: neighbours overlap by one, the last ends at 10


def _halves() -> tuple[torch.Tensor, torch.Tensor]:
    """Features of a painting half flat, half texture ((1, 2, 12, 12)) and of a picture with the same two in a fine
    checkerboard: the same whole-image statistics, but only the checkerboard has them in every region."""
    texture = torch.tensor([3.0, 1.0]).view(1, 2, 1, 1)
    halves = torch.zeros(1, 2, 12, 12)
    halves[..., 6:] = texture
    checker = torch.zeros(1, 2, 12, 12)
    checker[..., ::2, ::2] = checker[..., 1::2, 1::2] = texture
    return halves, checker


@pytest.mark.parametrize("statistic", [gram, mean_covariance])
def test_tiled_statistic_asks_every_region_for_the_painting(statistic) -> None:
    halves, checker = _halves()
    target = statistic(halves)
    assert torch.allclose(statistic(checker), target)  # the whole image cannot tell them apart
    tiled = Tiled(statistic, 3)
    assert tiled(halves).shape == (1, 9, *target.shape[1:])
    assert mean_squared_error(tiled(checker), target) < 0.01 * mean_squared_error(tiled(halves), target)
    # Gram: the mean over equal tiles is the whole image's Gram, so the tiled loss is the whole loss plus the tiles' spread
    assert torch.allclose(Tiled(gram, 3)(halves).mean(dim=1), gram(halves))


def test_tiled_statistic_uses_fewer_tiles_on_small_layers() -> None:
    features = torch.rand(1, 2, 7, 30, generator=torch.Generator().manual_seed(6))
    whole = Tiled(mean_covariance, 3)(features)  # 7 rows: under MIN_TILE a tile, one tile
    assert whole.shape == (1, 1, 3, 2) and torch.allclose(whole[:, 0], mean_covariance(features))
    features = torch.rand(1, 2, 8, 30, generator=torch.Generator().manual_seed(8))
    tiled = Tiled(gram, 3)(features)  # 8 rows: two tiles a side, 4 x 15 positions each
    assert tiled.shape == (1, 4, 2, 2)
    assert torch.allclose(tiled[:, 1], gram(features[..., :4, 15:]))  # row-major: top right second


@pytest.mark.parametrize("style_loss", ["meancov", "sw"])
def test_style_tiles_make_the_loss_see_a_style_left_in_one_half(style_loss: str) -> None:
    generator = torch.Generator().manual_seed(7)
    content, style = (torch.rand(1, 3, 64, 64, generator=generator) for _ in range(2))
    content[..., 32:] = style[..., 32:]  # the right half copies the painting, the left half stays the photo
    layers = (["relu2_2"], ["relu1_1", "relu2_1"])
    plain = _loss(LossWeights(*layers, style_loss=style_loss), [style], content)
    tiled = _loss(LossWeights(*layers, style_loss=style_loss, style_tiles=4), [style], content)
    assert tiled(style).style > 0  # the painting's own regions differ from its whole
    assert tiled(content).style > plain(content).style
    assert _loss(LossWeights(*layers, style_tiles=1), [style], content)(content).style == _loss(LossWeights(*layers), [style], content)(content).style
    tiled.set_masks([torch.ones(1, 1, 64, 64)])  # with masks the regions are the masks', not tiles
    assert torch.isclose(tiled(content).style, plain(content).style, rtol=1e-4)


def test_patch_loss_lets_each_region_take_the_part_of_the_style_like_it() -> None:
    a, b = torch.tensor([1.0, 0.0, 2.0]), torch.tensor([0.0, 3.0, 1.0])
    style = torch.cat([a.view(1, 3, 1, 1).expand(1, 3, 8, 8), b.view(1, 3, 1, 1).expand(1, 3, 8, 8)], dim=3)
    only_a = a.view(1, 3, 1, 1).expand(1, 3, 8, 8).clone()
    # all of the output looks like the style's left half: a perfect match, though the Gram (the mix) differs
    assert patch_loss(only_a, style_patches(style)) == 0
    assert not torch.allclose(gram(only_a), gram(style))
    near_b = only_a * 0.1 + b.view(1, 3, 1, 1) * 0.9  # pulled to b, the most similar patch, not to a
    assert patch_loss(near_b, style_patches(style)) == pytest.approx(float((near_b[0, :, 0, 0] - b).pow(2).mean()))
    assert style_patches(style).shape == (3 * 7, 3 * 9)  # every other 3x3 window of the 8 x 16 map


def test_patch_style_loss_uses_its_own_layers_and_no_masks() -> None:
    from nstcli.losses import loss_weights
    from nstcli.settings import LossSettings

    defaults = (["relu4_2"], ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"])
    assert loss_weights(LossSettings(style_loss="patch"), *defaults).style_layers == ["relu3_1", "relu4_1"]
    assert loss_weights(LossSettings(style_loss="patch", style_layers=["relu2_1"]), *defaults).style_layers == ["relu2_1"]
    assert loss_weights(LossSettings(style_loss="patch"), ["layer3"], ["layer1", "layer2"]).style_layers == ["layer1", "layer2"]
    generator = torch.Generator().manual_seed(4)
    content, style = (torch.rand(1, 3, 32, 32, generator=generator) for _ in range(2))
    patch = _loss(LossWeights(["relu2_2"], ["relu2_1"], style_loss="patch"), [style], content)
    assert patch(content).style > 0
    with pytest.raises(UsageError, match="not patch"):
        patch.set_masks([torch.ones(1, 1, 32, 32)])


def test_sliced_wasserstein_compares_distributions_not_places() -> None:
    generator = torch.Generator().manual_seed(9)
    style = torch.rand(1, 4, 16, 16, generator=generator)
    target = sorted_projections(style)
    assert torch.allclose(target.directions.T @ target.directions, torch.eye(4), atol=1e-5)  # an orthonormal basis
    other = sliced_wasserstein(torch.rand(1, 4, 16, 16, generator=generator) ** 2, target)  # another distribution
    shuffled = style.flatten(2)[..., torch.randperm(256, generator=generator)].view(1, 4, 16, 16)
    assert sliced_wasserstein(shuffled, target) < 1e-3 * other  # the same features elsewhere: the same distribution
    # a picture twice the painting's size made of two copies has its quantiles: the target is resampled
    assert sliced_wasserstein(torch.cat([shuffled, style], dim=3), target) < 1e-3 * other
    # the same mean and variance, another distribution: meancov cannot see the difference, sw can
    two_values = (torch.arange(64) % 2 * 2.0 - 1).view(1, 1, 8, 8)  # -1 and +1, half each: mean 0, variance 1
    bell = torch.randn(1, 1, 8, 8, generator=generator)
    bell = (bell - bell.mean()) / bell.std(unbiased=False)
    assert torch.allclose(mean_covariance(bell), mean_covariance(two_values), atol=1e-5)
    assert sliced_wasserstein(bell, sorted_projections(two_values)) > 0.1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_sorted_rows_sorts_each_row_in_its_own_dtype(dtype: torch.dtype) -> None:
    """The CPU's numpy sort gives what torch's sort gives: each row ascending, ties and NaN (last) included."""
    generator = torch.Generator().manual_seed(4)
    values = torch.randn(3, 1000, generator=generator).mul(4).round().to(dtype)  # many ties
    values += torch.randn(3, 1000, generator=generator).to(dtype) * 1e-12  # float64's order below float32's precision
    values[1, 10] = float("nan")
    ordered = sorted_rows(values)
    assert ordered.dtype == dtype and ordered.shape == values.shape
    torch.testing.assert_close(ordered, values.sort(dim=1).values, rtol=0, atol=0, equal_nan=True)
    assert ordered[1, -1].isnan() and not ordered[1, :-1].isnan().any()


def _sorted_distance(features: torch.Tensor, target: SortedProjections, weights: torch.Tensor | None = None) -> torch.Tensor:
    """The sliced Wasserstein distance by sorting (torch's sort, differentiable): every direction's sorted values
    against the painting's at the same (weighted) quantiles."""
    projected = target.directions.T @ features.flatten(2)
    ordered, order = projected.sort(dim=2)
    count = target.values.shape[1]
    if weights is None:
        quantiles = torch.nn.functional.interpolate(target.values[None], size=projected.shape[2], mode="linear", align_corners=False)
        return (ordered - quantiles).pow(2).mean()
    weights = weights[:, None, :].expand_as(projected).gather(2, order)
    position = ((weights.cumsum(dim=2) - weights / 2) * count - 0.5).clamp(0, count - 1)
    low = position.floor().long()
    painting = target.values[None].expand(features.shape[0], -1, -1)
    values = painting.gather(2, low) * (1 - (position - low)) + painting.gather(2, (low + 1).clamp_max(count - 1)) * (position - low)
    return ((ordered - values).pow(2) * weights).sum() / (features.shape[0] * features.shape[1])


@pytest.mark.parametrize("masked", [False, True])
def test_sliced_wasserstein_matches_the_sorted_distance_over_several_chunks(masked: bool) -> None:
    """The histogram's quantiles against a sort: the value within 0.5%, the gradient within a few degrees of the
    sort's (each value's residual), on two images of 24 x 24 positions and directions over two chunks."""
    from nstcli.losses import DIRECTION_CHUNK

    generator = torch.Generator().manual_seed(12)
    channels = DIRECTION_CHUNK + 5  # two chunks, the second one partial
    target = sorted_projections(torch.rand(1, channels, 20, 20, generator=generator) ** 2)
    features = torch.rand(2, channels, 24, 24, generator=generator, requires_grad=True)
    mask = torch.rand(2, 1, 24, 24, generator=generator)
    weights = mask.flatten(1).pow(2) / mask.flatten(1).pow(2).sum(dim=1, keepdim=True) if masked else None
    approximate = guided_sliced_wasserstein(features, target, mask) if masked else sliced_wasserstein(features, target)
    (approximate_grad,) = torch.autograd.grad(approximate, features)
    exact = _sorted_distance(features, target, weights)
    (exact_grad,) = torch.autograd.grad(exact, features)
    assert approximate.item() == pytest.approx(exact.item(), rel=5e-3)
    cosine = (approximate_grad * exact_grad).sum() / approximate_grad.norm() / exact_grad.norm()
    assert cosine > 0.995


def test_quantile_targets_follow_each_value_s_rank() -> None:
    painting = torch.linspace(0, 1, 101)[None]  # value = quantile
    values = torch.rand(1, 1, 4000, generator=torch.Generator().manual_seed(3)) * 10 - 5  # any range, any order
    ranks = values.argsort(dim=2).argsort(dim=2).float()
    targets = quantile_targets(values, painting, None)
    assert torch.allclose(targets, (ranks + 0.5) / 4000, atol=0.01)  # the value's quantile, within a bin's share
    assert targets.argsort(dim=2).argsort(dim=2).float().sub(ranks).abs().max() < 2 * VALUES_PER_BIN  # order kept
    # a row of one value gets the painting's middle, not its bottom
    assert torch.allclose(quantile_targets(torch.full((1, 1, 50), 3.0), painting, None), torch.tensor(0.5))
    # weighted: values of no weight do not move the others' quantiles
    weights = torch.cat([torch.full((1, 2000), 1 / 2000), torch.zeros(1, 2000)], dim=1)
    half = quantile_targets(values, painting, weights)[..., :2000]
    assert torch.allclose(half, quantile_targets(values[..., :2000], painting, None), atol=0.01)


def test_sliced_wasserstein_style_loss_pulls_the_image() -> None:
    generator = torch.Generator().manual_seed(10)
    content, style = (torch.rand(1, 3, 32, 32, generator=generator) for _ in range(2))
    content = content**3  # another distribution of colours
    sw = _loss(LossWeights(["relu2_2"], ["relu1_1", "relu2_1"], style_loss="sw"), [style], content)
    # the painting itself: zero but for the histogram's quantiles (8 values a bin of 32 x 32 and 16 x 16 maps)
    assert sw(style).style < 1e-2 * sw(content).style
    image = content.clone().requires_grad_(True)
    sw(image).style.backward()
    stepped = (content - 1e-3 * image.grad / image.grad.abs().max()).detach()
    assert sw(stepped).style < sw(content).style  # its gradient lowers it
    unmasked = sw(content).style
    sw.set_masks([torch.ones(1, 1, 32, 32)])  # a white mask: the plain objective
    assert torch.isclose(sw(content).style, unmasked, rtol=1e-4)


def test_guided_sliced_wasserstein_judges_only_the_region() -> None:
    generator = torch.Generator().manual_seed(11)
    painting = torch.rand(1, 3, 8, 4, generator=generator)
    target = sorted_projections(painting)
    picture = torch.cat([painting.flip(2), torch.rand(1, 3, 8, 4, generator=generator) * 5], dim=3)  # left: the painting
    left = torch.zeros(1, 1, 8, 8)
    left[..., :4] = 1
    assert guided_sliced_wasserstein(picture, target, 1 - left) > 1
    assert guided_sliced_wasserstein(picture, target, left) < 1e-3 * guided_sliced_wasserstein(picture, target, 1 - left)
    whole = torch.ones(1, 1, 8, 8)
    assert torch.isclose(guided_sliced_wasserstein(picture, target, whole), sliced_wasserstein(picture, target), rtol=1e-5)


def test_per_layer_weights_must_match_layers() -> None:
    with pytest.raises(UsageError, match="2 style layer weights given for 1"):
        LossWeights(["relu2_2"], ["relu1_1"], style_layer_weights=[1, 2]).style_factors()
    with pytest.raises(UsageError, match="--style-blend has 1 weight for 2 style images"):
        _loss(LossWeights(["relu1_1"], ["relu1_1"], style_blend=[1.0]), [torch.rand(1, 3, 8, 8)] * 2,
              torch.rand(1, 3, 8, 8))  # fmt: skip


def test_bf16_descriptor_keeps_losses_close_to_fp32() -> None:
    generator = torch.Generator().manual_seed(1)
    content, style, image = (torch.rand(1, 3, 48, 48, generator=generator) for _ in range(3))
    weights = LossWeights(["relu4_2"], ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"])
    exact, mixed = _loss(weights, [style], content), _loss(weights, [style], content)
    mixed.precision = torch.bfloat16
    mixed.set_content(content)
    mixed.set_styles([style])
    assert float(mixed(image).total) == pytest.approx(float(exact(image).total), rel=0.05)


def test_luminance_transfer_keeps_stylised_luminance_and_content_colour() -> None:
    rng = np.random.default_rng(0)
    stylised, content = rng.uniform(0.4, 0.6, (2, 8, 8, 3))  # in gamut after recombining
    stylised, content = stylised, content.astype(np.float32)
    result = color.transfer_luminance(stylised, content)
    to_yiq = color._RGB_TO_YIQ
    assert np.allclose((result @ to_yiq.T)[..., 0], (stylised @ to_yiq.T)[..., 0], atol=1e-4)
    assert np.allclose((result @ to_yiq.T)[..., 1:], (content @ to_yiq.T)[..., 1:], atol=1e-4)


def test_match_color_gives_reference_mean_and_covariance() -> None:
    rng = np.random.default_rng(1)
    source = rng.uniform(0.3, 0.5, (32, 32, 3)).astype(np.float32)
    reference = np.clip(rng.normal([0.6, 0.4, 0.3], 0.05, (16, 16, 3)), 0, 1).astype(np.float32)
    matched = color.match_color(source, reference)
    assert np.allclose(matched.reshape(-1, 3).mean(0), reference.reshape(-1, 3).mean(0), atol=0.01)
    assert np.allclose(np.cov(matched.reshape(-1, 3), rowvar=False),
                       np.cov(reference.reshape(-1, 3), rowvar=False), atol=5e-4)  # fmt: skip


def test_match_color_with_a_one_pixel_image_gives_its_colour_without_warnings() -> None:
    import warnings

    painting = np.random.default_rng(2).uniform(0, 1, (8, 8, 3)).astype(np.float32)
    pixel = np.array([[[0.2, 0.5, 0.7]]], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # np.cov of one pixel divides by zero
        flat = color.match_color(painting, pixel)
        same = color.match_color(pixel, painting)
    assert np.allclose(flat, pixel, atol=5e-3)  # no variance to give: the pixel's colour everywhere (to the regulariser)
    assert np.allclose(same, painting.reshape(-1, 3).mean(0), atol=5e-3)


@pytest.mark.parametrize("style_loss", ["gram", "meancov", "sw"])
def test_style_orientations_average_the_targets_of_the_turned_and_mirrored_painting(style_loss: str) -> None:
    from nstcli.losses import oriented

    generator = torch.Generator().manual_seed(13)
    style, content = torch.rand(1, 3, 20, 28, generator=generator), torch.rand(1, 3, 24, 24, generator=generator)
    views = oriented(style, 8)
    assert len(views) == 8 and torch.equal(views[0], style) and views[2].shape == (1, 3, 28, 20)
    assert len({tuple(view.flatten().tolist()) for view in views}) == 8  # eight different pictures
    layers = (["relu2_2"], ["relu1_1", "relu2_1"])
    averaged = _loss(LossWeights(*layers, style_loss=style_loss, style_orientations=[8]), [style], content)
    blended = _loss(LossWeights(*layers, style_loss=style_loss), views, content)  # eight style images, equal blend
    gradients = []
    for loss in (averaged, blended):
        image = content.clone().requires_grad_(True)
        loss(image).style.backward()
        gradients.append(image.grad)
    # the same gradient: the loss to the average differs from the blend's by a constant
    assert torch.allclose(gradients[0], gradients[1], rtol=1e-4, atol=1e-6 * float(gradients[1].abs().max()))
    plain = _loss(LossWeights(*layers, style_loss=style_loss), [style], content)
    image = content.clone().requires_grad_(True)
    plain(image).style.backward()
    assert not torch.allclose(image.grad, gradients[0], rtol=1e-2)  # and not the painting's own as given


def test_style_orientations_are_one_two_or_eight_and_not_for_patches() -> None:
    from nstcli.losses import loss_weights, validate_settings
    from nstcli.settings import LossSettings

    def validate(settings: LossSettings) -> None:
        validate_settings(settings, loss_weights(settings, ["relu4_2"], ["relu3_1"]))

    with pytest.raises(UsageError, match="--style-orientations: choose 1, 2, 8, not 4"):
        validate(LossSettings(style_orientations=[8, 4]))
    with pytest.raises(UsageError, match="not patch"):
        validate(LossSettings(style_orientations=[1, 2], style_loss="patch"))
    assert loss_weights(LossSettings(style_orientations=None), ["relu4_2"], ["relu3_1"]).style_orientations == [1]


def test_style_orientations_one_count_per_style_image() -> None:
    """8,1: the first painting's target over its eight orientations, the second's as given."""
    generator = torch.Generator().manual_seed(5)
    first, second, content = (torch.rand(1, 3, 20, 28, generator=generator) for _ in range(3))
    layers = (["relu2_2"], ["relu1_1", "relu2_1"])
    mixed = _loss(LossWeights(*layers, style_orientations=[8, 1]), [first, second], content)
    turned = _loss(LossWeights(*layers, style_orientations=[8]), [first], content)
    given = _loss(LossWeights(*layers), [second], content)
    for name in mixed.style_targets[0]:
        assert torch.allclose(mixed.style_targets[0][name], turned.style_targets[0][name])
        assert torch.equal(mixed.style_targets[1][name], given.style_targets[0][name])
    assert not torch.allclose(mixed.style_targets[0]["relu1_1"], given.style_targets[0]["relu1_1"])
    with pytest.raises(UsageError, match="--style-orientations has 3 counts for 2 style images"):
        _loss(LossWeights(*layers, style_orientations=[8, 1, 8]), [first, second], content)


def test_a_config_with_one_orientation_count_as_a_number_still_loads() -> None:
    """Checkpoints and model metadata written before the counts could differ per style hold one number."""
    from nstcli.settings import TrainConfig

    old = TrainConfig(style=["a.png"]).to_dict()
    old["loss"]["style_orientations"] = 8
    assert TrainConfig.from_dict(old).loss.style_orientations == [8]
    assert TrainConfig.from_dict(TrainConfig(style=["a.png"]).to_dict()).loss.style_orientations == [1]


def test_two_style_losses_joined_by_plus_are_their_mean_with_masks_tiles_and_blends() -> None:
    """sw+gram: each loss with half of the style weight, on the same features; every style setting reaches both."""
    generator = torch.Generator().manual_seed(12)
    content, style_a, style_b = (torch.rand(1, 3, 32, 32, generator=generator) for _ in range(3))
    layers = (["relu2_2"], ["relu1_1", "relu2_1"])
    left = torch.zeros(1, 1, 32, 32)
    left[..., :16] = 1
    for options in ({}, {"style_tiles": 2}, {"style_blend": [0.8, 0.2]}):
        losses = {name: _loss(LossWeights(*layers, style_loss=name, style_weight=10, **options), [style_a, style_b], content)
                  for name in ("sw+gram", "sw", "gram")}  # fmt: skip
        if not options:
            for loss in losses.values():
                loss.set_masks([left, 1 - left])
        terms = {name: loss(content) for name, loss in losses.items()}
        assert torch.isclose(terms["sw+gram"].style, (terms["sw"].style + terms["gram"].style) / 2, rtol=1e-5), options
        assert torch.isclose(terms["sw+gram"].content, terms["sw"].content)
        one = {name: loss(content, style=1).style for name, loss in losses.items()}  # a StyleBank step: one style alone
        assert torch.isclose(one["sw+gram"], (one["sw"] + one["gram"]) / 2, rtol=1e-5), options


def test_style_losses_join_only_different_statistics() -> None:
    from nstcli.losses import validate_settings
    from nstcli.settings import LossSettings

    weights = LossWeights(["relu4_2"], ["relu3_1"])
    validate_settings(LossSettings(style_loss="meancov+gram"), weights)
    for name, message in (("sw+bogus", "unknown --style-loss 'sw\\+bogus'"), ("sw+sw", "join different losses"),
                          ("patch+gram", "join different losses of gram, meancov, sw")):  # fmt: skip
        with pytest.raises(UsageError, match=message):
            validate_settings(LossSettings(style_loss=name), weights)
