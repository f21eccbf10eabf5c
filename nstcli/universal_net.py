"""The networks of universal style transfer (Li et al. 2017, WCT): VGG19 encoder stages and the decoders.

Levels 1..4 are relu1_1 .. relu4_1 of the embedded VGG19 (relu5_1 is left out: its encoder and
decoder would be 9.4M + ~9M more weights, too big to bundle and too slow to train on a CPU).
The encoder is cut into stages, stage k mapping relu{k-1}_1 (the RGB image for k = 1) to relu{k}_1, so
``nst apply`` encodes a photo only as deep as the level it is at, and no weight is stored twice.
Decoder k mirrors the encoder up to relu{k}_1 (nearest upsampling where the encoder pools, reflection
padding); ``width`` scales its inner channels. Decoders are trained only to reconstruct photos from the
features (:mod:`nstcli.universal_train`).

Sizes: the encoder pools 3 times before relu4_1 (ceil mode), so images whose sides are multiples of
:data:`SIZE_MULTIPLE` decode back to exactly their own size.
"""

from __future__ import annotations

import torch
from torch import nn

from nstcli.descriptors import build_descriptor

LEVELS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
SIZE_MULTIPLE = 8
FEATURE_CHANNELS = (64, 128, 256, 512)
# Typical RMS of each level's features on photos (Caffe scale, 0..255 input): decoders divide by it first,
# so every level starts training at the same, unit scale.
FEATURE_RMS = (40.0, 200.0, 300.0, 1000.0)

# The decoder of each level, from its features to RGB: ("conv", out channels) or ("up",), mirroring
# the VGG19 layers between the image and relu{k}_1 (the last conv maps to the 3 colours).
_DECODER_PLANS = {
    1: (),
    2: (("conv", 64), ("up",), ("conv", 64)),
    3: (("conv", 128), ("up",), ("conv", 128), ("conv", 64), ("up",), ("conv", 64)),
    4: (("conv", 256), ("up",), ("conv", 256), ("conv", 256), ("conv", 256), ("conv", 128), ("up",),
        ("conv", 128), ("conv", 64), ("up",), ("conv", 64)),
}  # fmt: skip


class _Scale(nn.Module):
    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


class EncoderStage(nn.Module):
    """VGG19 layers from relu{k-1}_1 (stage 1: the RGB image in 0..1, Caffe-preprocessed here) to relu{k}_1."""

    def __init__(self, layers: nn.Sequential, preprocess: bool):
        super().__init__()
        self.layers = layers
        self.preprocess = preprocess
        # Caffe's preprocessing (RGB -> BGR, 0..255, minus the mean), as descriptors.Descriptor does it
        self.register_buffer("mean", torch.tensor((103.939, 116.779, 123.68)).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.preprocess:
            x = x.flip(1) * 255.0 - self.mean
        return self.layers(x)


class Encoder(nn.Module):
    """The four stages; ``forward`` returns the features of every level up to ``deepest``."""

    def __init__(self, stages: list[EncoderStage]):
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.requires_grad_(False)
        self.eval()

    def forward(self, image: torch.Tensor, deepest: int = len(LEVELS)) -> list[torch.Tensor]:
        features, x = [], image
        for stage in self.stages[:deepest]:
            x = stage(x)
            features.append(x)
        return features


def build_encoder() -> Encoder:
    """The embedded VGG19 (see :mod:`nstcli.descriptors`) cut into the four stages."""
    layers = build_descriptor("vgg19", ["relu4_1"]).layers
    stages, current = [], []
    for name, module in layers.items():
        current.append(module)
        if name in LEVELS:
            stages.append(EncoderStage(nn.Sequential(*current), preprocess=not stages))
            current = []
    return Encoder(stages)


def build_decoder(level: int, width: float = 1.0) -> nn.Sequential:
    """Decoder ``level`` (1..4): relu{level}_1 features -> RGB (not clamped; clamp when saving)."""
    channels = FEATURE_CHANNELS[level - 1]
    modules: list[nn.Module] = [_Scale(1.0 / FEATURE_RMS[level - 1])]
    for step in _DECODER_PLANS[level]:
        if step[0] == "up":
            modules.append(nn.Upsample(scale_factor=2, mode="nearest"))
            continue
        out = max(8, round(step[1] * width))
        modules += [nn.Conv2d(channels, out, 3, padding=1, padding_mode="reflect"), nn.ReLU()]
        channels = out
    modules.append(nn.Conv2d(channels, 3, 3, padding=1, padding_mode="reflect"))
    return nn.Sequential(*modules)
