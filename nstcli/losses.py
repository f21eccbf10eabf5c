"""Perceptual losses (Gatys et al. 2016): content, Gram style, total variation.

The objective, for an image x in 0..1 RGB::

    total = content_weight * sum_l a_l * mean((F_l(x) - F_l(c))^2)
          + style_weight   * sum_s b_s * sum_l w_l * mean((G_l(x) - G_l(s))^2) / C_l^2
          + tv_weight      * (mean (x[:, :, :, 1:] - x[:, :, :, :-1])^2 + mean (x[:, :, 1:] - x[:, :, :-1])^2)

with F_l the activations at layer l, G_l = F_l F_l^T / (H_l W_l) the Gram matrix, C_l its channel
count, a_l / w_l per-layer weights (default 1) and b_s the style blend (default 1/number of styles).
Even divided by C_l^2 the layers are far from equal: on a photo against a painting (256 px) relu4_1
carries ~90% of the Gram loss, relu2_1 and relu3_1 a few percent, relu1_1 and relu5_1 under 0.1%.

``--style-loss`` swaps the Gram matrix for another statistic (``meancov``: the mean and covariance
apart) or for the patch loss (``patch``, Li & Wand 2016): each 3 x 3 patch of the output's features is
pulled towards the painting's most similar patch, so each region of the photo borrows from the part
of the painting that resembles it; or for the sliced Wasserstein loss (``sw``, Heitz et al. 2021): the
whole distribution of each layer's features, compared along fixed directions. Two of gram, meancov and sw joined
by ``+`` (``sw+gram``) are summed, each with half the style weight, on one pass of the descriptor (a
:class:`PerceptualLoss` computes the first, a companion each other one). ``--style-tiles N`` takes the output's statistic in each tile of an
N x N grid (:class:`Tiled`; for ``sw`` each tile's distribution, :func:`split_tiles`) against the painting's
whole image, so no region can stay unstyled.

Spatial control (Gatys et al. 2017, "guided Gram matrices"): with a mask m_s per style (N, 1, H, W)
in 0..1 on the output image, style s is judged only inside its region. At each layer the mask is
resized to the layer's resolution and the output's Gram matrix becomes
G_l^s = (F_l m_s)(F_l m_s)^T / sum(m_s^2): the Gram of the region, normalised by the region's mass
(an all-ones mask gives back G_l exactly). The targets stay the Grams of the whole style images.
A content mask marks protected pixels (white = keep the content photo): no style is applied there,
i.e. every style's region is multiplied by (1 - content mask); the content loss is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch.autograd.function import FunctionCtx

from nstcli.descriptors import Descriptor, check_layers
from nstcli.errors import UsageError
from nstcli.settings import LossSettings, check_blend_length, orientation_counts


def gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrices (N, C, C) of features (N, C, H, W), divided by H*W."""
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return torch.bmm(flat, flat.transpose(1, 2)) / (h * w)


def mean_covariance(features: torch.Tensor) -> torch.Tensor:
    """Each layer's feature covariance (C x C) with the feature mean as one more row: (N, C + 1, C).

    A Gram matrix mixes the two (G = covariance + mean mean^T); matching them apart is the statistic of
    Li et al.'s universal style transfer and of crowsonkb's style loss, and it leaves the mean free to be
    matched on its own, so a painting's average colour does not have to be bought with its texture.
    """
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    mean = flat.mean(dim=2, keepdim=True)
    centred = flat - mean
    covariance = torch.bmm(centred, centred.transpose(1, 2)) / (h * w)
    return torch.cat([covariance, mean.transpose(1, 2)], dim=1)


MIN_TILE = 4  # feature positions along a tile's shorter side: a layer too small for the grid gets fewer tiles


def tile_starts(length: int, grid: int, tile: int) -> list[int]:
    """Where each of ``grid`` tiles of ``tile`` positions starts along ``length``: spread evenly, the first at 0,
    the last ending at ``length`` (neighbours overlap by a position or two where ``length`` does not divide)."""
    return [round(part * (length - tile) / (grid - 1)) for part in range(grid)]


def split_tiles(features: torch.Tensor, grid: int) -> torch.Tensor:
    """The features (N, C, H, W) cut into a ``grid`` x ``grid`` split of equal tiles, as one batch
    (N * tiles, C, h, w), image by image, rows top to bottom; neighbours overlap by a position or two where
    the grid does not divide. A layer whose shorter side has fewer than ``MIN_TILE`` positions per tile
    gets fewer tiles (one: the features as they are)."""
    n, c, height, width = features.shape
    grid = max(1, min(grid, min(height, width) // MIN_TILE))
    if grid == 1:
        return features
    tall, wide = -(-height // grid), -(-width // grid)  # tile size: ceil, so the tiles cover every position
    rows = torch.cat([features.narrow(2, start, tall) for start in tile_starts(height, grid, tall)], dim=2)
    tiles = torch.cat([rows.narrow(3, start, wide) for start in tile_starts(width, grid, wide)], dim=3)
    return tiles.view(n, c, grid, tall, grid, wide).permute(0, 2, 4, 1, 3, 5).reshape(-1, c, tall, wide)


@dataclass(frozen=True)
class Tiled:
    """A style statistic taken in each tile of a ``grid`` x ``grid`` split of the features (``--style-tiles``):
    (N, C, H, W) -> (N, tiles, ...), compared with the painting's whole-image statistic broadcast over
    the tiles, so the loss is the mean over tiles. A statistic of the whole image can be met by painting
    part of the picture and leaving the rest flat or a photo; one per tile asks every region for the
    painting. For the Gram matrix and tiles that divide the image, the mean over tiles is the whole
    image's loss plus the tiles' variance around it."""

    statistic: Callable[[torch.Tensor], torch.Tensor]
    grid: int

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        statistic = self.statistic(split_tiles(features, self.grid))
        return statistic.view(features.shape[0], -1, *statistic.shape[1:])


PATCH_LAYERS = ["relu3_1", "relu4_1"]  # the patch loss's default style layers on VGG nets (Li & Wand)
PATCH_STRIDE = 2  # between the style's patches: a quarter of the candidates, ~4x less search


def style_patches(features: torch.Tensor) -> torch.Tensor:
    """The style's 3 x 3 feature patches as rows (P, C * 9), taken every ``PATCH_STRIDE`` positions."""
    return F.unfold(features, 3, stride=PATCH_STRIDE).transpose(1, 2).reshape(-1, features.shape[1] * 9)


def patch_loss(features: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
    """Semantic matching (Li & Wand 2016, CNNMRF): each 3 x 3 patch of ``features`` (N, C, H, W) is pulled
    towards the style patch most like it (highest normalised cross-correlation); the mean squared
    difference. Unlike a Gram matrix, which asks every region for the painting's overall mix, each
    region takes the part of the painting that resembles it: sky from sky, faces from faces."""
    n, c = features.shape[:2]
    with torch.no_grad():  # the match is a choice, not a function to differentiate
        kernels = patches / torch.linalg.vector_norm(patches, dim=1, keepdim=True).clamp_min(1e-8)
        response = F.conv2d(features, kernels.view(-1, c, 3, 3))  # (N, P_style, H - 2, W - 2)
        nearest = response.flatten(2).argmax(dim=1)  # (N, positions)
    own = F.unfold(features, 3).transpose(1, 2)  # (N, positions, C * 9), same order as ``nearest``
    return (own - patches[nearest]).pow(2).mean()


SLICE_SEED = 0  # the directions are fixed: L-BFGS needs the same objective at every evaluation


@dataclass(frozen=True)
class SortedProjections:
    """The painting's features at one layer for the sliced Wasserstein loss: ``directions`` (C, C), a random
    orthonormal basis, and ``values`` (C, P), every position's features projected on each direction, sorted."""

    directions: torch.Tensor
    values: torch.Tensor


def sorted_projections(features: torch.Tensor) -> SortedProjections:
    """The sliced Wasserstein target of a style's features (1, C, H, W)."""
    channels = features.shape[1]
    generator = torch.Generator().manual_seed(SLICE_SEED + channels)
    directions, _ = torch.linalg.qr(torch.randn(channels, channels, generator=generator))
    directions = directions.to(features.device)
    projected = directions.T @ features[0].reshape(channels, -1)
    return SortedProjections(directions, sorted_rows(projected))


def sorted_rows(values: torch.Tensor) -> torch.Tensor:
    """``values`` (R, P) with each row in ascending order. On the CPU numpy sorts: its vectorised sort (x86-simd-sort
    on AVX-512 and AVX2) took 1.5 s for relu1_1's 64 rows of 3.3M values at 2048 px where torch's took 35 s (one
    thread), and a painting in eight orientations is eight such sorts per layer and scale. The half-precision types
    are widened first (exact, and it keeps their order)."""
    if values.device.type != "cpu":
        return values.sort(dim=1).values
    widened = values.detach() if values.dtype in (torch.float32, torch.float64) else values.detach().float()
    return torch.from_numpy(np.sort(widened.numpy(), axis=1)).to(values.dtype)


# Directions the sliced Wasserstein loss projects and ranks at once (bounds its forward pass's memory).
DIRECTION_CHUNK = 16
# Values per bin of the histogram that ranks them (in place of a sort, which cost several times as much on the
# CPU): the rank within a bin is interpolated, so a value's target is off by at most a bin's share of quantiles.
VALUES_PER_BIN = 8


def quantile_targets(projected: torch.Tensor, painting: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Each value's target (N, k, P): the painting's sorted values (k, Q) at the value's quantile among its row's
    ``projected`` values (N, k, P), each row's values weighted by ``weights`` (N, P, summing to 1) or equally.

    A value's quantile is the mass below it plus half its own (the i-th of P equal ones sits at (i + 0.5) / P),
    found without a sort: a histogram of P / VALUES_PER_BIN equal bins over each row's range gives the mass
    below each bin, and within a bin the quantile grows linearly with the value, as does the target between
    the painting's values at the bin's edges (one gather per bin edge, not per value). Equal values share a
    target; a row of one value gets the painting's value at its middle quantile."""
    n, k, positions = projected.shape
    rows = projected.reshape(n * k, positions)
    bins = max(1, positions // VALUES_PER_BIN)
    row_weights = None if weights is None else weights[:, None, :].expand(n, k, positions).reshape(n * k, positions)
    if row_weights is None:
        low, high = torch.aminmax(rows, dim=1, keepdim=True)
    else:  # the bins span the values that count (outside a mask, values may lie far off)
        counted = row_weights > 0
        low = rows.where(counted, torch.inf).amin(dim=1, keepdim=True).clamp_max(rows.amax(dim=1, keepdim=True))
        high = rows.where(counted, -torch.inf).amax(dim=1, keepdim=True).clamp_min(low)
    span = high - low
    step = torch.where(span > 0, bins / span.clamp_min(torch.finfo(rows.dtype).tiny), 0.0)
    middle = torch.where(span > 0, 0.0, 0.5)  # a constant row: its middle, not its bottom
    scaled = torch.addcmul(middle, rows - low, step)  # bin index + fraction within the bin
    index = scaled.long().clamp_(0, bins - 1)
    mass = rows.new_ones(()).expand_as(rows) if row_weights is None else row_weights  # a count: divided below
    edges = rows.new_zeros(n * k, bins + 1)
    edges[:, 1:].scatter_add_(1, index, mass).cumsum_(dim=1)  # the mass below each bin's upper edge
    if row_weights is None:
        edges /= positions
    count = painting.shape[1]
    position = (edges * count - 0.5).clamp_(0, count - 1)  # the quantiles at the edges, in the painting's values
    below = position.long().clamp_(max=max(count - 2, 0))
    share = position - below
    values = painting.repeat(n, 1)
    at_edges = values.gather(1, below) * (1 - share) + values.gather(1, (below + 1).clamp_(max=count - 1)) * share
    rise = at_edges.diff(dim=1)
    # the target at a value: at_edges[i] + (scaled - i) * rise[i] for its bin i, as one line per bin
    start = at_edges[:, :-1] - torch.arange(bins, dtype=rows.dtype, device=rows.device) * rise
    targets = torch.addcmul(start.gather(1, index), scaled, rise.gather(1, index))
    return targets.view(n, k, positions)


class _QuantileDistance(torch.autograd.Function):
    """The sliced Wasserstein distance of features (N, C, P) to a painting's sorted projections (C, Q): along
    each direction every value against the painting's value at the same quantile (:func:`quantile_targets`),
    squared, each position weighted by ``weights`` (N, P), summing to 1 per image, or equally (None). Its
    gradient is each value's residual, the optimal-transport gradient (the matching held fixed).

    Memory is what bounds high resolutions. The backward pass keeps only each projected value's weighted
    residual (its value minus its target): 4 bytes a value. The forward pass projects and ranks DIRECTION_CHUNK
    directions at a time, so its copies exist for one chunk only (at 2048 px, relu1_1 has 64 directions of
    2.8M positions: 0.7 GB per float copy of them all)."""

    @staticmethod
    def forward(ctx: FunctionCtx, features: torch.Tensor, directions: torch.Tensor, painting: torch.Tensor,
                weights: torch.Tensor | None) -> torch.Tensor:  # fmt: skip
        n, _, positions = features.shape
        residual = torch.empty(n, directions.shape[1], positions, dtype=features.dtype, device=features.device)
        total = features.new_zeros(())
        for first in range(0, directions.shape[1], DIRECTION_CHUNK):
            chunk = slice(first, first + DIRECTION_CHUNK)
            projected = directions[:, chunk].T @ features
            targets = quantile_targets(projected, painting[chunk], weights)
            difference = torch.sub(projected, targets, out=residual[:, chunk])
            if weights is None:
                total += torch.linalg.vector_norm(difference).square()
            else:
                total += (difference.pow(2) * weights[:, None, :]).sum()
                difference *= weights[:, None, :]
        ctx.save_for_backward(residual, directions)
        ctx.scale = 1.0 / residual.numel() if weights is None else 1.0 / (n * directions.shape[1])
        return total * ctx.scale

    @staticmethod
    def backward(ctx: FunctionCtx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        residual, directions = ctx.saved_tensors
        return directions @ (residual * (grad * 2 * ctx.scale)), None, None, None


def sliced_wasserstein(features: torch.Tensor, target: SortedProjections) -> torch.Tensor:
    """Sliced Wasserstein distance (Heitz et al. 2021): along each direction, each of the output's feature
    values against the painting's value at the same quantile (what sorting both and pairing them in order
    gives; the quantiles come from a histogram, :func:`quantile_targets`). It matches each direction's whole
    distribution, not only its first two moments, so a painting's share of flat paper or dark ground is asked
    for as well as its strokes' contrast."""
    n, c, h, w = features.shape
    return _QuantileDistance.apply(features.reshape(n, c, h * w), target.directions, target.values, None)


# --style-loss: a statistic of each style layer that the output must match, or a loss on the features
# themselves (what the painting's features become as a target, and the distance to it)
STYLE_STATISTICS = {"gram": gram, "meancov": mean_covariance}
FEATURE_LOSSES = {"patch": (style_patches, patch_loss), "sw": (sorted_projections, sliced_wasserstein)}
STYLE_LOSSES = (*STYLE_STATISTICS, *FEATURE_LOSSES)
# Each style loss scaled so the default --style-weight 10 paints about as strongly with any of them
# (looked at on kodim04 + The Starry Night and kodim15 + Turner, 256 px): unscaled, meancov is ~18x
# weaker than the Gram loss on a photo and the patch loss ~10x stronger (it copied the painting); sw
# unscaled pulls the pixels about as hard as meancov scaled (gradient norm 0.6-1.1x on kodim04, 13, 15).
STYLE_LOSS_SCALES = {"gram": 1.0, "meancov": 6.0, "patch": 0.1, "sw": 1.0}
COMBINABLE = ("gram", "meancov", "sw")  # joined by +, each with an equal share of --style-weight: sw+gram


def style_loss_parts(name: str) -> list[str]:
    """The losses a ``--style-loss`` sums: ``sw+gram`` -> [sw, gram]; one name -> itself."""
    return name.split("+")


def resize_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A (N, 1, H, W) mask at a layer's (height, width); antialiased, so thin regions fade rather than vanish."""
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    return F.interpolate(mask, size=size, mode="bilinear", align_corners=False, antialias=True)


def guided_gram(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Gram matrices (N, C, C) of the region ``mask`` (N, 1, H, W) of ``features``, normalised by its mass.

    Equals :func:`gram` for an all-ones mask; an empty region gives zeros.
    """
    region = resize_mask(mask, features.shape[-2:])
    n, c, h, w = features.shape
    flat = (features * region).reshape(n, c, h * w)
    mass = region.pow(2).sum(dim=(1, 2, 3)).clamp_min(1e-8).view(n, 1, 1)
    return torch.bmm(flat, flat.transpose(1, 2)) / mass


def guided_mean_covariance(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """:func:`mean_covariance` of the region ``mask``, with the guided Gram's weights (mask squared):
    the region's mean, and its Gram minus the mean's outer product, so Gram = covariance + mean mean^T
    holds inside a region as over the whole image."""
    region = resize_mask(mask, features.shape[-2:])
    weights = region.pow(2)
    mass = weights.sum(dim=(1, 2, 3)).clamp_min(1e-8).view(-1, 1, 1)
    mean = (features * weights).sum(dim=(2, 3))[:, :, None] / mass  # (N, C, 1)
    covariance = guided_gram(features, mask) - mean * mean.transpose(1, 2)
    return torch.cat([covariance, mean.transpose(1, 2)], dim=1)


def guided_sliced_wasserstein(features: torch.Tensor, target: SortedProjections, mask: torch.Tensor) -> torch.Tensor:
    """:func:`sliced_wasserstein` of the region ``mask``: each position weighted as in the guided Gram (mask
    squared), so along each direction a sorted value sits at its weighted quantile and is compared with the
    painting's value there. An all-ones mask gives :func:`sliced_wasserstein`."""
    n, c, h, w = features.shape
    weights = resize_mask(mask, (h, w)).pow(2).reshape(n, h * w)
    weights = weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-8)
    return _QuantileDistance.apply(features.reshape(n, c, h * w), target.directions, target.values, weights)


GUIDED_STATISTICS = {"gram": guided_gram, "meancov": guided_mean_covariance}  # the style statistics inside a mask
GUIDED_FEATURE_LOSSES = {"sw": guided_sliced_wasserstein}  # feature losses that take a mask (not patch)


def mean_squared_error(value: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error; ``target`` may have batch size 1 and is then broadcast over the batch."""
    return (value - target).pow(2).mean()


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Squared total variation (TV with beta = 2, as in Johnson et al.): mean squared difference of
    horizontal plus vertical neighbours. Unlike the L1 form it is smooth, which L-BFGS needs: with
    L1, raising the TV weight made results noisier, not smoother."""
    horizontal = (image[..., :, 1:] - image[..., :, :-1]).pow(2).mean()
    vertical = (image[..., 1:, :] - image[..., :-1, :]).pow(2).mean()
    return horizontal + vertical


@dataclass
class LossWeights:
    """Layers and weights of the objective (see the module docstring)."""

    content_layers: list[str]
    style_layers: list[str]
    content_layer_weights: list[float] | None = None
    style_layer_weights: list[float] | None = None
    content_weight: float = 1.0
    style_weight: float = 1e3
    tv_weight: float = 0.0
    style_blend: list[float] | None = None
    style_loss: str = "gram"  # one of STYLE_LOSSES
    style_tiles: int = 1  # the output's statistic per tile of a grid x grid split (Tiled); 1: the whole image
    # each style image's target averaged over this many orientations (ORIENTATIONS): one count for all, or one each
    style_orientations: list[int] = field(default_factory=lambda: [1])

    def content_factors(self) -> dict[str, float]:
        return _per_layer(self.content_layers, self.content_layer_weights, "content")

    def style_factors(self) -> dict[str, float]:
        return _per_layer(self.style_layers, self.style_layer_weights, "style")


def loss_weights(settings: LossSettings, content_layers: list[str], style_layers: list[str],
                 style_orientations: tuple[int, ...] = (1,)) -> LossWeights:  # fmt: skip
    """The objective of ``settings``; ``content_layers``, ``style_layers`` and ``style_orientations`` are the
    command's defaults for the settings the user left unset."""
    if settings.style_loss == "patch":  # the patch loss's own layers where the defaults have them; the painting as given
        style_layers = [layer for layer in PATCH_LAYERS if layer in style_layers] or style_layers
        style_orientations = (1,)
    return LossWeights(
        content_layers=list(settings.content_layers or content_layers),
        style_layers=list(settings.style_layers or style_layers),
        content_layer_weights=settings.content_layer_weights,
        style_layer_weights=settings.style_layer_weights,
        content_weight=settings.content_weight,
        style_weight=settings.style_weight,
        tv_weight=settings.tv_weight,
        style_blend=settings.style_blend,
        style_loss=settings.style_loss,
        style_tiles=settings.style_tiles,
        style_orientations=list(style_orientations if settings.style_orientations is None else settings.style_orientations),
    )


def validate_settings(settings: LossSettings, weights: LossWeights) -> None:
    """Reject bad loss settings (``weights``: the same resolved) before any weight is loaded; their
    numbers' ranges are checked with the rest of the config (:func:`nstcli.settings.check_ranges`)."""
    parts = style_loss_parts(settings.style_loss)
    if any(part not in STYLE_LOSSES for part in parts):
        raise UsageError(f"unknown --style-loss {settings.style_loss!r} (choose {', '.join(STYLE_LOSSES)}, or two of "
                         f"{', '.join(COMBINABLE)} joined by +, e.g. sw+gram)")  # fmt: skip
    if len(parts) > 1 and (len(set(parts)) != len(parts) or any(part not in COMBINABLE for part in parts)):
        raise UsageError(f"--style-loss {settings.style_loss}: join different losses of {', '.join(COMBINABLE)} with +")
    if settings.style_tiles > 1 and settings.style_loss == "patch":
        raise UsageError("--style-tiles works with --style-loss gram, meancov or sw, not patch")
    wrong = [count for count in weights.style_orientations if count not in ORIENTATIONS]
    if wrong or not weights.style_orientations:
        raise UsageError(f"--style-orientations: choose {', '.join(map(str, ORIENTATIONS))}, not {wrong[0] if wrong else 'nothing'}")
    if max(weights.style_orientations) > 1 and settings.style_loss == "patch":
        raise UsageError("--style-orientations works with --style-loss gram, meancov or sw, not patch")
    check_layers(settings.net, weights.content_layers + weights.style_layers)
    weights.content_factors()
    weights.style_factors()


def _per_layer(layers: list[str], weights: list[float] | None, kind: str) -> dict[str, float]:
    if weights is None:
        return {layer: 1.0 for layer in layers}
    if len(weights) != len(layers):
        raise UsageError(f"{len(weights)} {kind} layer weights given for {len(layers)} {kind} layers")
    return dict(zip(layers, weights))


# --style-orientations: the image as given; with its mirror image; each quarter turn and its mirror image
ORIENTATIONS = (1, 2, 8)


def oriented(image: torch.Tensor, count: int) -> list[torch.Tensor]:
    """``image`` (N, C, H, W) in ``count`` orientations (ORIENTATIONS)."""
    turns = [torch.rot90(image, quarter, dims=(2, 3)) for quarter in range(4 if count == 8 else 1)]
    return [view for turn in turns for view in ([turn, turn.flip(3)] if count > 1 else [turn])]


def summed_targets(total: object | None, target: object) -> object:
    """``total`` + ``target`` (``total`` None: ``target``): one painting's style targets summed over its orientations,
    one view at a time (at 2048 px one layer's sorted projections take ~1 GB a view). For the Gram and
    mean/covariance statistics their average is exact: the summed squared distances to each differ from the distance
    to their average by a constant, so the gradient is the same. For sorted projections (the same directions: they
    depend on the channel count alone) the average of the sorted values is the 1-D Wasserstein barycentre."""
    if total is None:
        return target
    if isinstance(target, SortedProjections):
        return SortedProjections(target.directions, total.values + target.values)
    return total + target


def scaled_target(target: object, factor: float) -> object:
    """A style target (see :func:`summed_targets`) times ``factor``: the sum over ``n`` views times 1 / ``n``."""
    if factor == 1:
        return target
    if isinstance(target, SortedProjections):
        return SortedProjections(target.directions, target.values * factor)
    return target * factor


@dataclass
class LossTerms:
    """One evaluation: the weighted terms and their sum (tensors, so callers decide when to sync)."""

    content: torch.Tensor
    style: torch.Tensor
    tv: torch.Tensor
    total: torch.Tensor
    per_style: list[torch.Tensor] = field(default_factory=list)


class PerceptualLoss(torch.nn.Module):
    """Owns the descriptor and the targets (content activations, style Grams) for one image size.

    With ``precision`` bfloat16 the descriptor runs under autocast (about 1.8x faster on CPUs with
    native bf16, more on GPUs); Gram matrices and losses are always computed in float32.
    """

    def __init__(self, descriptor: Descriptor, weights: LossWeights, precision: torch.dtype = torch.float32):
        super().__init__()
        self.descriptor = descriptor
        first, *others = style_loss_parts(weights.style_loss)
        # a sum of losses (sw+gram): this object computes the first, a companion each other one, on the same features
        self.companions = [PerceptualLoss(descriptor, replace(weights, style_loss=other), precision) for other in others]
        weights = replace(weights, style_loss=first)
        self.weights = weights
        self.precision = precision
        self.content_factors = weights.content_factors()
        self.style_factors = weights.style_factors()
        self.wanted = frozenset(weights.content_layers) | frozenset(weights.style_layers)
        self.content_targets: dict[str, torch.Tensor] = {}
        self.style_targets: list[dict[str, torch.Tensor]] = []
        self.style_blend: list[float] = []
        self.style_masks: list[torch.Tensor] | None = None  # None: every style over the whole image
        self.feature_loss = FEATURE_LOSSES.get(weights.style_loss)  # (target, distance); None: a statistic is matched
        self.statistic = STYLE_STATISTICS.get(weights.style_loss)  # of the style images: the targets
        self.target = self.feature_loss[0] if self.feature_loss else self.statistic  # a style layer's features -> target
        # of the output: per tile with --style-tiles (masks say where each style goes: their regions, not tiles)
        self.matched = Tiled(self.statistic, weights.style_tiles) if self.statistic and weights.style_tiles > 1 else self.statistic

    def features(self, image: torch.Tensor, layers: frozenset[str]) -> dict[str, torch.Tensor]:
        """Descriptor activations at ``layers``, as float32 whatever precision the net ran in."""
        mixed = self.precision != torch.float32
        # no cast cache: it would break CUDA-graph capture, and the weights are cast once per pass anyway
        with torch.autocast(image.device.type, dtype=self.precision, enabled=mixed, cache_enabled=False):
            features = self.descriptor(image, layers)
        return {name: value.float() for name, value in features.items()}

    @torch.no_grad()
    def set_content(self, content: torch.Tensor) -> None:
        self.content_targets = self.features(content, frozenset(self.weights.content_layers))

    @torch.no_grad()
    def set_styles(self, styles: list[torch.Tensor]) -> None:
        """Style targets (Gram, mean/covariance, patches or sorted projections, see ``--style-loss``) for each
        style image (each may have its own size), this loss's and its companions': each view of a style image
        goes through the descriptor once."""
        blend = self.weights.style_blend or [1.0 / len(styles)] * len(styles)
        check_blend_length(blend, len(styles))
        losses = (self, *self.companions)
        for loss in losses:
            loss.style_blend, loss.style_targets = list(blend), []
        layers = frozenset(self.weights.style_layers)
        for style, count in zip(styles, orientation_counts(self.weights.style_orientations, len(styles))):
            sums: list[dict] = [{} for _ in losses]  # each loss's targets, summed over the views
            for view in oriented(style, count):
                features = self.features(view, layers)
                for total, loss in zip(sums, losses):
                    for name, value in features.items():
                        total[name] = summed_targets(total.get(name), loss.target(value))
            for total, loss in zip(sums, losses):
                loss.style_targets.append({name: scaled_target(target, 1 / count) for name, target in total.items()})

    def set_masks(self, style_masks: list[torch.Tensor] | None, content_mask: torch.Tensor | None = None) -> None:
        """Spatial control (see the module docstring): masks (1, 1, H, W) in 0..1, any resolution.

        ``style_masks``: one region per style (None: each style everywhere); ``content_mask``: pixels
        where no style is applied. Call after :meth:`set_styles`; both None restores the plain objective.
        """
        maskable = (*GUIDED_STATISTICS, *GUIDED_FEATURE_LOSSES)
        if (style_masks is not None or content_mask is not None) and self.weights.style_loss not in maskable:
            raise UsageError(f"--style-mask and --content-mask work with --style-loss {', '.join(maskable)}, not {self.weights.style_loss}")
        if style_masks is not None and len(style_masks) != len(self.style_targets):
            raise UsageError(f"{len(style_masks)} style masks given for {len(self.style_targets)} style images")
        for companion in self.companions:
            companion.set_masks(style_masks, content_mask)
        if content_mask is None:
            self.style_masks = style_masks
            return
        free = 1.0 - content_mask
        if style_masks is None:
            self.style_masks = [free] * len(self.style_targets)
        else:
            self.style_masks = [mask * resize_mask(free, mask.shape[-2:]) for mask in style_masks]

    def _style_distance(self, name: str, grams: dict, features: dict, targets: dict, mask: torch.Tensor | None) -> torch.Tensor:
        """One style layer's loss: a feature loss (patches, sliced Wasserstein; inside ``mask`` when given)
        against its target, or statistic against statistic (``grams``: already of the mask's region), divided by C^2."""
        if self.feature_loss and mask is not None:
            distance = GUIDED_FEATURE_LOSSES[self.weights.style_loss](features[name], targets[name], mask)
        elif self.feature_loss and self.weights.style_tiles > 1:  # sw: each tile's distribution against the painting's
            distance = self.feature_loss[1](split_tiles(features[name], self.weights.style_tiles), targets[name])
        elif self.feature_loss:
            distance = self.feature_loss[1](features[name], targets[name])
        else:
            distance = mean_squared_error(grams[name], targets[name]) / grams[name].shape[-1] ** 2  # broadcast over tiles
        return STYLE_LOSS_SCALES[self.weights.style_loss] * distance

    def _style_grams(self, features: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """The output's style statistics compared with each style's targets (guided Grams per style when
        masked); none for a feature loss, which works on the features themselves."""
        if self.feature_loss:
            return [{}] * len(self.style_targets)
        if self.style_masks is None:
            grams = {name: self.matched(features[name]) for name in self.style_factors}
            return [grams] * len(self.style_targets)
        guided = GUIDED_STATISTICS[self.weights.style_loss]
        return [{name: guided(features[name], mask) for name in self.style_factors} for mask in self.style_masks]

    def style_terms(self, features: dict[str, torch.Tensor], style: int | None) -> list[torch.Tensor]:
        """This loss's style term, one entry per style image weighted by its blend weight (``style``: that one alone)."""
        masks = self.style_masks or [None] * len(self.style_targets)
        judged = zip(self._style_grams(features), self.style_targets, self.style_blend, masks)
        if style is not None:
            judged = [list(judged)[style]]
        per_style = []
        for grams, targets, blend, mask in judged:
            style_loss = sum(factor * self._style_distance(name, grams, features, targets, mask) for name, factor in self.style_factors.items())
            per_style.append(blend * style_loss)
        return per_style

    def forward(self, image: torch.Tensor, style: int | None = None) -> LossTerms:
        """The terms for ``image``; ``style``: judge against that style alone, weighted by its blend
        weight (a StyleBank bank learns one style), instead of every style blended."""
        w = self.weights
        features = self.features(image, self.wanted)
        content = sum(
            factor * mean_squared_error(features[name], self.content_targets[name])
            for name, factor in self.content_factors.items()
        )
        losses = (self, *self.companions)  # each loss of a sum weighs the same
        per_style = [sum(parts) / len(losses) for parts in zip(*(loss.style_terms(features, style) for loss in losses))]
        style = sum(per_style)
        tv = total_variation(image)
        content, style, tv = w.content_weight * content, w.style_weight * style, w.tv_weight * tv
        return LossTerms(content=content, style=style, tv=tv, total=content + style + tv, per_style=per_style)
