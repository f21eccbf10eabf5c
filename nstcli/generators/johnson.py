"""Johnson, Alahi, Fei-Fei 2016: the image transformation network of "Perceptual Losses".

9x9 conv (32), two stride-2 3x3 convs (64, 128), residual blocks (128), two x2 upsampling stages
(64, 32), 9x9 conv to RGB. Instance norm (Ulyanov et al.'s improvement; ``norm="batch"`` for the
paper's batch norm) and reflection padding throughout. ``width`` scales every channel count, so a user can trade quality for speed;
``decoder_width`` scales the two upsampling stages alone (the peer's net runs them at 8 and 4 channels).
The output goes through a sigmoid, so it is always an image in 0..1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from nstcli.errors import UsageError
from nstcli.generators.blocks import (
    NORMS,
    ResidualBlock,
    channel_widths,
    decoder_layers,
    encoder_layers,
    validate_output_kernel,
)

UPSAMPLE_MODES = ("nearest", "bilinear", "deconv")


@dataclass
class JohnsonOptions:
    width: float = 1.0  # channel multiplier: 1.0 = the paper's 32/64/128
    residual_blocks: int = 5
    upsample: str = "nearest"  # nearest or bilinear (+conv, no checkerboard), or deconv (the paper's)
    output_kernel: int = 9  # the paper's 9x9 output conv; 3 is much faster on onnxruntime's CPU kernels
    decoder_width: Optional[float] = None  # channel multiplier of the two upsampling stages; None: width's
    norm: str = "instance"  # instance (Ulyanov et al.) or batch (the paper's)

    def validate(self) -> None:
        if not 0.05 <= self.width <= 4:
            raise UsageError("--width must be between 0.05 and 4")
        if self.decoder_width is not None and not 0.05 <= self.decoder_width <= 4:
            raise UsageError("--decoder-width must be between 0.05 and 4")
        if not 0 <= self.residual_blocks <= 32:
            raise UsageError("--residual-blocks must be between 0 and 32")
        if self.upsample not in UPSAMPLE_MODES:
            raise UsageError(f"unknown --upsample {self.upsample!r} (choose nearest, bilinear or deconv)")
        validate_output_kernel(self.output_kernel)
        if self.norm not in NORMS:
            raise UsageError(f"unknown --norm {self.norm!r} (choose instance or batch)")

    def size_multiple(self) -> int:
        return 4  # two stride-2 stages


class JohnsonNet(nn.Module):
    def __init__(self, options: JohnsonOptions):
        super().__init__()
        c1, c2, c3 = channel_widths(options.width)
        d1, d2, _ = channel_widths(options.width if options.decoder_width is None else options.decoder_width)
        norm = NORMS[options.norm]
        self.body = nn.Sequential(
            *encoder_layers(c1, c2, c3, norm),
            *(ResidualBlock(c3, norm) for _ in range(options.residual_blocks)),
            *decoder_layers(c3, d2, d1, options.upsample, options.output_kernel, norm),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.body(image))


def build(options: JohnsonOptions) -> nn.Module:
    return JohnsonNet(options)
