"""Ulyanov, Lebedev, Vedaldi, Lempitsky 2016: the multi-scale "texture network" generator.

The content image is fed at ``scales`` resolutions (each half the next), each concatenated with
noise channels. Every scale runs a small conv block (3x3, 3x3, 1x1); from the coarsest up, the
running result is upsampled x2, normalised and concatenated with the next finer scale, then
another conv block mixes the joined channels. A 1x1 conv and a sigmoid give RGB in 0..1.
Instance norm throughout. About 72k parameters at the defaults.

Noise: uniform in 0..1 while training; in eval mode (preview, export, apply) it is replaced by
its expectation 0.5, so a trained model is deterministic and its ONNX graph needs no random op.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nstcli.errors import UsageError


@dataclass
class TextureOptions:
    scales: int = 5
    channels: int = 8  # per scale; the joined trunk grows by this much at each finer scale
    noise_channels: int = 3

    def validate(self) -> None:
        if not 1 <= self.scales <= 7:
            raise UsageError("--texture-scales must be between 1 and 7")
        if not 1 <= self.channels <= 128:
            raise UsageError("--channels must be between 1 and 128")
        if not 0 <= self.noise_channels <= 16:
            raise UsageError("--noise-channels must be between 0 and 16")

    def size_multiple(self) -> int:
        return 2 ** (self.scales - 1)


def _conv(channels_in: int, channels_out: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ReflectionPad2d(kernel // 2),
        nn.Conv2d(channels_in, channels_out, kernel),
        nn.InstanceNorm2d(channels_out, affine=True),
        nn.LeakyReLU(0.01, inplace=True),
    )


def _block(channels_in: int, channels_out: int) -> nn.Sequential:
    return nn.Sequential(
        _conv(channels_in, channels_out, 3), _conv(channels_out, channels_out, 3), _conv(channels_out, channels_out, 1)
    )


class TextureNet(nn.Module):
    def __init__(self, options: TextureOptions):
        super().__init__()
        self.scales = options.scales
        self.noise_channels = options.noise_channels
        c = options.channels
        self.inputs = nn.ModuleList(_block(3 + options.noise_channels, c) for _ in range(options.scales))
        # joins[i] merges the trunk (i+1)*c channels, upsampled, with the next scale's c channels
        self.join_norms = nn.ModuleList(nn.InstanceNorm2d((i + 1) * c, affine=True) for i in range(options.scales - 1))
        self.joins = nn.ModuleList(_block((i + 2) * c, (i + 2) * c) for i in range(options.scales - 1))
        self.to_rgb = nn.Conv2d(options.scales * c, 3, 1)

    def _with_noise(self, image: torch.Tensor) -> torch.Tensor:
        if not self.noise_channels:
            return image
        shape = (image.shape[0], self.noise_channels, image.shape[2], image.shape[3])
        if self.training:
            noise = torch.rand(shape, device=image.device, dtype=image.dtype)
        else:
            noise = torch.full(shape, 0.5, device=image.device, dtype=image.dtype)
        return torch.cat([image, noise], dim=1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        pyramid = [image]  # finest first
        for _ in range(self.scales - 1):
            pyramid.append(F.avg_pool2d(pyramid[-1], 2))
        trunk = self.inputs[-1](self._with_noise(pyramid[-1]))
        for level in range(self.scales - 2, -1, -1):  # coarse to fine
            index = self.scales - 2 - level
            up = self.join_norms[index](F.interpolate(trunk, scale_factor=2.0, mode="nearest"))
            branch = self.inputs[level](self._with_noise(pyramid[level]))
            trunk = self.joins[index](torch.cat([up, branch], dim=1))
        return torch.sigmoid(self.to_rgb(trunk))


def build(options: TextureOptions) -> nn.Module:
    return TextureNet(options)
