"""Perceptual losses (Gatys et al. 2016): content, Gram style, total variation.

The objective, for an image x in 0..1 RGB::

    total = content_weight * sum_l a_l * mean((F_l(x) - F_l(c))^2)
          + style_weight   * sum_s b_s * sum_l w_l * mean((G_l(x) - G_l(s))^2) / C_l^2
          + tv_weight      * (mean|x[:, :, :, 1:] - x[:, :, :, :-1]| + mean|x[:, :, 1:] - x[:, :, :-1]|)

with F_l the activations at layer l, G_l = F_l F_l^T / (H_l W_l) the Gram matrix, C_l its channel
count, a_l / w_l per-layer weights (default 1) and b_s the style blend (default 1/number of styles).
Dividing by C_l^2 puts every style layer on a comparable scale, so equal weights are a good default.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from nstcli.descriptors import Descriptor
from nstcli.errors import UsageError


def gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrices (N, C, C) of features (N, C, H, W), divided by H*W."""
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return torch.bmm(flat, flat.transpose(1, 2)) / (h * w)


def mean_squared_error(value: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error; ``target`` may have batch size 1 and is then broadcast over the batch."""
    return (value - target).pow(2).mean()


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Anisotropic L1 total variation: mean absolute difference of horizontal plus vertical neighbours."""
    horizontal = (image[..., :, 1:] - image[..., :, :-1]).abs().mean()
    vertical = (image[..., 1:, :] - image[..., :-1, :]).abs().mean()
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

    def content_factors(self) -> dict[str, float]:
        return _per_layer(self.content_layers, self.content_layer_weights, "content")

    def style_factors(self) -> dict[str, float]:
        return _per_layer(self.style_layers, self.style_layer_weights, "style")


def _per_layer(layers: list[str], weights: list[float] | None, kind: str) -> dict[str, float]:
    if weights is None:
        return {layer: 1.0 for layer in layers}
    if len(weights) != len(layers):
        raise UsageError(f"{len(weights)} {kind} layer weights given for {len(layers)} {kind} layers")
    return dict(zip(layers, weights))


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
        self.weights = weights
        self.precision = precision
        self.content_factors = weights.content_factors()
        self.style_factors = weights.style_factors()
        self.wanted = frozenset(weights.content_layers) | frozenset(weights.style_layers)
        self.content_targets: dict[str, torch.Tensor] = {}
        self.style_targets: list[dict[str, torch.Tensor]] = []
        self.style_blend: list[float] = []

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
        """Gram targets for each style image (each may have its own size)."""
        blend = self.weights.style_blend or [1.0 / len(styles)] * len(styles)
        if len(blend) != len(styles):
            raise UsageError(f"--style-blend has {len(blend)} weights for {len(styles)} style images")
        self.style_blend = list(blend)
        layers = frozenset(self.weights.style_layers)
        self.style_targets = [
            {name: gram(value) for name, value in self.features(style, layers).items()} for style in styles
        ]

    def forward(self, image: torch.Tensor) -> LossTerms:
        w = self.weights
        features = self.features(image, self.wanted)
        content = sum(
            factor * mean_squared_error(features[name], self.content_targets[name])
            for name, factor in self.content_factors.items()
        )
        grams = {name: gram(features[name]) for name in self.style_factors}
        per_style = []
        for targets, blend in zip(self.style_targets, self.style_blend):
            style_loss = sum(
                factor * mean_squared_error(grams[name], targets[name]) / grams[name].shape[-1] ** 2
                for name, factor in self.style_factors.items()
            )
            per_style.append(blend * style_loss)
        style = sum(per_style)
        tv = total_variation(image)
        content, style, tv = w.content_weight * content, w.style_weight * style, w.tv_weight * tv
        return LossTerms(content=content, style=style, tv=tv, total=content + style + tv, per_style=per_style)
