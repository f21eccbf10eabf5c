"""Dumoulin, Shlens, Kudlur 2017, "A Learned Representation for Artistic Style": conditional instance norm.

Johnson et al.'s network (:mod:`nstcli.generators.johnson`: 9x9 conv, two stride-2 convs, residual
blocks, two nearest x2 upsample + conv stages, an output conv, a sigmoid), built from the same blocks,
in which every instance norm's scale and shift belong to the style: style k holds one scale (gamma)
and one shift (beta) per normalised channel, all the conv weights are shared by every style. At
width 1 with 5 residual blocks that is 1,600 channels, 3,200 parameters a style; at width 0.5, 1,600.

Styles mix linearly, the way the StyleBank's banks do: with weights w (K,), every norm's scale is
sum_k w_k * gamma_k and its shift sum_k w_k * beta_k (a one-hot w selects one style). The norm stays
an ONNX ``InstanceNormalization`` whose scale and shift are computed from ``style_weights``, so
``nst apply``'s tiling, which pins each norm's statistics, works on it as on any other model.

A style's scales and shifts live in ``banks[k]`` (named as StyleBank's per-style modules are, so the
trainer's add-style and tune-style runs, which train only some banks with everything else frozen,
serve both architectures).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nstcli.errors import UsageError
from nstcli.generators.blocks import (
    ResidualBlock,
    Upsample,
    channel_widths,
    decoder_layers,
    encoder_layers,
    validate_output_kernel,
)


@dataclass
class CINOptions:
    styles: int = 1  # K, the number of styles (set by training from the --style-image list)
    width: float = 1.0  # channel multiplier: 1.0 = the paper's 32/64/128
    residual_blocks: int = 5
    output_kernel: int = 9  # the decoder's output conv (see blocks.decoder_layers)

    def validate(self) -> None:
        if not 1 <= self.styles <= 256:
            raise UsageError("a cin model holds between 1 and 256 styles")
        if not 0.05 <= self.width <= 4:
            raise UsageError("--width must be between 0.05 and 4")
        if not 0 <= self.residual_blocks <= 32:
            raise UsageError("--residual-blocks must be between 0 and 32")
        validate_output_kernel(self.output_kernel)

    def size_multiple(self) -> int:
        return 4  # two stride-2 stages


class ConditionalNorm(nn.Module):
    """Instance norm without parameters of its own: the scale and shift are the style's, given per call."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.channels = channels
        self.eps = eps

    def forward(self, x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        return F.instance_norm(x, weight=scale, bias=shift, eps=self.eps)


class StyleNorms(nn.Module):
    """One style: the scale and shift of every normalised channel of the network, in graph order."""

    def __init__(self, channels: int):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(channels))
        self.shift = nn.Parameter(torch.zeros(channels))


class CINNet(nn.Module):
    def __init__(self, options: CINOptions):
        super().__init__()
        c1, c2, c3 = channel_widths(options.width)
        self.body = nn.Sequential(
            *encoder_layers(c1, c2, c3, norm=ConditionalNorm),
            *(ResidualBlock(c3, norm=ConditionalNorm) for _ in range(options.residual_blocks)),
            *decoder_layers(c3, c2, c1, "nearest", options.output_kernel, norm=ConditionalNorm),
        )
        self.norm_channels = [module.channels for module in self.body.modules() if isinstance(module, ConditionalNorm)]
        self.banks = nn.ModuleList(StyleNorms(sum(self.norm_channels)) for _ in range(options.styles))

    def norm_parameters(self, style_weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every norm's scale and shift (concatenated) for the style mix ``style_weights`` (K,): linear in the weights."""
        scales = torch.stack([bank.scale for bank in self.banks])
        shifts = torch.stack([bank.shift for bank in self.banks])
        return style_weights @ scales, style_weights @ shifts

    def branch(self, image: torch.Tensor, style: int) -> torch.Tensor:
        """One style alone (training, and a single-style export): only that style's parameters take part,
        so the other styles get no gradient at all (not a zero one that Adam's momentum would still move)."""
        bank = self.banks[style]
        return self._run(image, bank.scale, bank.shift)

    def forward(self, image: torch.Tensor, style_weights: torch.Tensor | None = None) -> torch.Tensor:
        """Stylise with the styles mixed by ``style_weights`` (K,); None: the first style."""
        if style_weights is None:
            return self.branch(image, 0)
        return self._run(image, *self.norm_parameters(style_weights))

    def _run(self, image: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        norms = zip(torch.split(scale, self.norm_channels), torch.split(shift, self.norm_channels))
        return torch.sigmoid(_apply(self.body, image, iter(norms)))


def _apply(module: nn.Module, x: torch.Tensor, norms) -> torch.Tensor:
    """Run ``module`` (built from :mod:`blocks`) handing each ConditionalNorm, in graph order, its scale and shift."""
    if isinstance(module, ConditionalNorm):
        return module(x, *next(norms))
    if isinstance(module, nn.Sequential):
        for layer in module:
            x = _apply(layer, x, norms)
        return x
    if isinstance(module, ResidualBlock):
        return x + _apply(module.body, x, norms)
    if isinstance(module, Upsample):
        return module.activation(_apply(module.body, x, norms))
    return module(x)


def parameters_per_style(options: CINOptions) -> int:
    return 2 * sum(CINNet(CINOptions(1, options.width, options.residual_blocks, options.output_kernel)).norm_channels)


def build(options: CINOptions) -> nn.Module:
    return CINNet(options)
