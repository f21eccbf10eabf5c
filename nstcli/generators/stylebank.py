"""Chen, Yuan, Liao, Yu, Hua 2017: StyleBank, many styles in one network.

A shared encoder (9x9 conv, two stride-2 3x3 convs; instance norm) maps the image to a feature
map; one small conv block per style (its "bank") turns those features into that style's; a
decoder mirroring the encoder (two nearest x2 upsample + conv stages, a 9x9 conv, a sigmoid)
turns features back into an image. Without a bank, encoder + decoder form the auto-encoder
(identity) branch that training alternates with the style branches, which is what keeps content
in the encoder/decoder and style in the banks, so a new style is added by training only a new bank.

Styles are fused linearly, as in the paper: with weights w (K,), the decoder gets
sum_k w_k * bank_k(features). A one-hot w selects one style (and runs one bank).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from nstcli.errors import UsageError
from nstcli.generators.blocks import (
    ConvBlock,
    channel_widths,
    decoder_layers,
    encoder_layers,
    validate_output_kernel,
)


@dataclass
class StyleBankOptions:
    styles: int = 1  # K, the number of banks (set by training from the --style list)
    width: float = 1.0  # channel multiplier: 1.0 = 32/64/128
    bank_layers: int = 2  # 3x3 conv blocks per bank
    output_kernel: int = 9  # the decoder's output conv (see blocks.decoder_layers)

    def validate(self) -> None:
        if not 1 <= self.styles <= 256:
            raise UsageError("a style bank holds between 1 and 256 styles")
        if not 0.05 <= self.width <= 4:
            raise UsageError("--width must be between 0.05 and 4")
        if not 1 <= self.bank_layers <= 8:
            raise UsageError("--bank-layers must be between 1 and 8")
        validate_output_kernel(self.output_kernel)

    def size_multiple(self) -> int:
        return 4  # two stride-2 stages


def _bank(channels: int, layers: int) -> nn.Sequential:
    return nn.Sequential(*(ConvBlock(channels, channels, 3, activation=nn.ReLU(inplace=True)) for _ in range(layers)))


class StyleBankNet(nn.Module):
    def __init__(self, options: StyleBankOptions):
        super().__init__()
        c1, c2, c3 = channel_widths(options.width)
        self.encoder = nn.Sequential(*encoder_layers(c1, c2, c3))
        self.banks = nn.ModuleList(_bank(c3, options.bank_layers) for _ in range(options.styles))
        self.decoder = nn.Sequential(*decoder_layers(c3, c2, c1, "nearest", options.output_kernel))

    def branch(self, image: torch.Tensor, style: int | None) -> torch.Tensor:
        """One training branch: bank ``style`` only, or None for the auto-encoder (identity) branch."""
        features = self.encoder(image)
        if style is not None:
            features = self.banks[style](features)
        return torch.sigmoid(self.decoder(features))

    def forward(self, image: torch.Tensor, style_weights: torch.Tensor | None = None) -> torch.Tensor:
        """Stylise with the banks fused by ``style_weights`` (K,); None: the first style.

        A bank whose weight is 0 is not run (``torch.cond``, an ONNX ``If`` when exported): one style
        costs one bank, however many the model holds.
        """
        if style_weights is None:
            return self.branch(image, 0)
        features = self.encoder(image)
        fused = torch.zeros_like(features)
        for weight, bank in zip(style_weights, self.banks):
            fused = torch.cond(
                weight != 0,
                lambda features, fused, weight=weight, bank=bank: fused + weight * bank(features),
                lambda features, fused: fused.clone(),  # a branch may not return its input as it is
                (features, fused),
            )
        return torch.sigmoid(self.decoder(fused))


def build(options: StyleBankOptions) -> nn.Module:
    return StyleBankNet(options)
