"""Building blocks shared by the generator networks, and weight initialisation.

Every convolution pads by reflection (no dark borders) and is followed by instance normalisation,
which Ulyanov et al. showed is what makes feed-forward stylisation work.
"""

from __future__ import annotations

from torch import nn

INITS = ("default", "xavier", "he")


class ConvBlock(nn.Sequential):
    """Reflection pad, conv, instance norm (affine) and an optional activation."""

    def __init__(
        self, channels_in: int, channels_out: int, kernel: int, stride: int = 1, activation: nn.Module | None = None
    ):
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(kernel // 2),
            nn.Conv2d(channels_in, channels_out, kernel, stride),
            nn.InstanceNorm2d(channels_out, affine=True),
        ]
        if activation is not None:
            layers.append(activation)
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    """Two 3x3 conv blocks with a skip connection (Johnson et al., after He et al.)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            ConvBlock(channels, channels, 3, activation=nn.ReLU(inplace=True)), ConvBlock(channels, channels, 3)
        )

    def forward(self, x):
        return x + self.body(x)


class Upsample(nn.Module):
    """Double the resolution: nearest-neighbour + conv (no checkerboard) or a stride-1/2 conv (the paper's)."""

    def __init__(self, channels_in: int, channels_out: int, mode: str):
        super().__init__()
        if mode == "nearest":
            self.body = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), ConvBlock(channels_in, channels_out, 3))
        else:  # deconv: output exactly twice the input size
            self.body = nn.Sequential(
                nn.ConvTranspose2d(channels_in, channels_out, 3, stride=2, padding=1, output_padding=1),
                nn.InstanceNorm2d(channels_out, affine=True),
            )
        self.activation = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.activation(self.body(x))


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
