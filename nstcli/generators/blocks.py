"""Building blocks shared by the generator networks, and weight initialisation.

Every convolution pads by reflection (no dark borders) and is followed by a norm: instance
normalisation by default, which Ulyanov et al. showed is what makes feed-forward stylisation work.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from nstcli.errors import UsageError

INITS = ("default", "xavier", "he")
OUTPUT_KERNELS = (1, 3, 5, 7, 9)

# The normalisation after each conv, made for a channel count: instance norm with its own learnt scale
# and shift by default (batch norm for Johnson et al.'s original); conditional instance norm
# (generators.cin) takes the scale and shift from the style instead.
Norm = Callable[[int], nn.Module]


def instance_norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=True)


def batch_norm(channels: int) -> nn.Module:
    """Johnson et al.'s original norm: the training batches' statistics, frozen for use (folded into the convs at export)."""
    return nn.BatchNorm2d(channels)


NORMS: dict[str, Norm] = {"instance": instance_norm, "batch": batch_norm}


class ConvBlock(nn.Sequential):
    """Reflection pad, conv, norm (instance norm, affine, by default) and an optional activation."""

    def __init__(
        self, channels_in: int, channels_out: int, kernel: int, stride: int = 1, activation: nn.Module | None = None,
        norm: Norm = instance_norm,
    ):  # fmt: skip
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(kernel // 2),
            nn.Conv2d(channels_in, channels_out, kernel, stride),
            norm(channels_out),
        ]
        if activation is not None:
            layers.append(activation)
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    """Two 3x3 conv blocks with a skip connection (Johnson et al., after He et al.)."""

    def __init__(self, channels: int, norm: Norm = instance_norm):
        super().__init__()
        self.body = nn.Sequential(
            ConvBlock(channels, channels, 3, activation=nn.ReLU(inplace=True), norm=norm),
            ConvBlock(channels, channels, 3, norm=norm),
        )

    def forward(self, x):
        return x + self.body(x)


class Upsample(nn.Module):
    """Double the resolution: a resize + conv (nearest or bilinear; no checkerboard) or a stride-1/2 conv (the paper's).

    Nearest + conv lets the conv weigh the two phases of every doubled pixel differently, so it can paint
    a grating of period 2; bilinear resizing leaves no energy at that period for the conv to amplify
    (measured: the nets then paint their texture a scale coarser; docs/bundled-styles.md, "The upsampling").
    """

    def __init__(self, channels_in: int, channels_out: int, mode: str, norm: Norm = instance_norm):
        super().__init__()
        if mode in ("nearest", "bilinear"):
            resize = nn.Upsample(scale_factor=2, mode=mode, align_corners=False if mode == "bilinear" else None)
            self.body = nn.Sequential(resize, ConvBlock(channels_in, channels_out, 3, norm=norm))
        else:  # deconv: output exactly twice the input size
            self.body = nn.Sequential(
                nn.ConvTranspose2d(channels_in, channels_out, 3, stride=2, padding=1, output_padding=1),
                norm(channels_out),
            )
        self.activation = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.activation(self.body(x))


def channel_widths(width: float) -> tuple[int, int, int]:
    """Channels of the three resolutions of Johnson et al.'s net (32, 64, 128) times ``width``."""
    c1, c2, c3 = (max(4, round(base * width)) for base in (32, 64, 128))
    return c1, c2, c3


def encoder_layers(c1: int, c2: int, c3: int, norm: Norm = instance_norm) -> list[nn.Module]:
    """9x9 conv to c1, then two stride-2 3x3 convs to c2 and c3 (instance norm, ReLU)."""
    return [
        ConvBlock(3, c1, 9, activation=nn.ReLU(inplace=True), norm=norm),
        ConvBlock(c1, c2, 3, stride=2, activation=nn.ReLU(inplace=True), norm=norm),
        ConvBlock(c2, c3, 3, stride=2, activation=nn.ReLU(inplace=True), norm=norm),
    ]


def decoder_layers(
    c3: int, c2: int, c1: int, upsample: str, output_kernel: int = 9, norm: Norm = instance_norm
) -> list[nn.Module]:
    """The encoder's mirror: two x2 upsampling stages, then a conv to RGB (no activation).

    The paper's output conv is 9x9; on onnxruntime's CPU kernels a 3-channel output conv is the
    slowest layer of a narrow net (a third of a width-0.5 StyleBank at 512 px), so it can be smaller.
    """
    pad = nn.ReflectionPad2d(output_kernel // 2)
    return [Upsample(c3, c2, upsample, norm), Upsample(c2, c1, upsample, norm), pad, nn.Conv2d(c1, 3, output_kernel)]


def validate_output_kernel(kernel: int) -> None:
    if kernel not in OUTPUT_KERNELS:
        raise UsageError(f"--output-kernel must be one of {', '.join(map(str, OUTPUT_KERNELS))}")


def initialise(model: nn.Module, scheme: str) -> None:
    """Re-initialise conv weights: xavier (Glorot uniform), he (Kaiming normal, fan-out) or PyTorch's default."""
    if scheme == "default":
        return
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            if scheme == "xavier":
                nn.init.xavier_uniform_(module.weight)
            else:
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(module.bias)
