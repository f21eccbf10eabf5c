"""Feed-forward generator networks, by name.

Each architecture module exposes an options dataclass (with ``validate()`` and ``size_multiple()``)
and ``build(options) -> nn.Module``. A generator maps an RGB batch (N, 3, H, W) in 0..1 to a
stylised batch of the same shape, for H and W multiples of ``size_multiple()`` and at least twice
that; :func:`stylise` pads and crops so any size works. A multi-style generator (StyleBank, CIN) registers the same
way, its options holding the number of styles; it also takes the style weights (K,) after the image, has
``branch(image, style)`` for one style alone and keeps each style's own parameters in ``banks[k]``
(what add-style and tune-style runs train). :data:`nstcli.settings.MULTI_STYLE_ARCHS` names them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from nstcli.errors import UsageError
from nstcli.generators import cin, johnson, stylebank, texture
from nstcli.generators.blocks import INITS, initialise


@dataclass(frozen=True)
class Arch:
    name: str
    options: type  # the options dataclass
    build: Callable[[Any], nn.Module]


ARCHS: dict[str, Arch] = {
    "johnson": Arch("johnson", johnson.JohnsonOptions, johnson.build),
    "texture": Arch("texture", texture.TextureOptions, texture.build),
    "stylebank": Arch("stylebank", stylebank.StyleBankOptions, stylebank.build),
    "cin": Arch("cin", cin.CINOptions, cin.build),
}


# Options whose command-line flag is not their name (the flag says what the scales are of).
OPTION_FLAGS = {"scales": "--texture-scales"}


def option_flag(option: str) -> str:
    """The ``nst train`` flag of a generator option: ``scales`` -> ``--texture-scales``."""
    return OPTION_FLAGS.get(option, "--" + option.replace("_", "-"))


def arch(name: str) -> Arch:
    if name not in ARCHS:
        raise UsageError(f"unknown --arch {name!r} (choose from {', '.join(ARCHS)})")
    return ARCHS[name]


def make_options(name: str, values: dict[str, Any]) -> Any:
    """The options of architecture ``name`` from flag values (only the ones the user gave)."""
    options_type = arch(name).options
    known = {field.name for field in fields(options_type)}
    for key in values:
        if key not in known:
            raise UsageError(f"{option_flag(key)} does not apply to --arch {name}")
    options = options_type(**values)
    options.validate()
    return options


def options_dict(options: Any) -> dict[str, Any]:
    return asdict(options)


def build_generator(name: str, options: Any, init: str = "default") -> nn.Module:
    """A freshly initialised generator (``init``: default, xavier or he)."""
    if init not in INITS:
        raise UsageError(f"unknown --init {init!r} (choose from {', '.join(INITS)})")
    model = arch(name).build(options)
    initialise(model, init)
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def pad_to_multiple(image: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad H and W (bottom, right) to multiples of ``multiple`` and at least ``2 * multiple``.

    The minimum keeps every reflection pad inside the network valid (reflecting needs more pixels
    than the pad width, also at the coarsest scale). Reflect, or replicate when too small to reflect.
    """
    height, width = image.shape[-2:]
    pad_h = max(2 * multiple, height + -height % multiple) - height
    pad_w = max(2 * multiple, width + -width % multiple) - width
    if not pad_h and not pad_w:
        return image
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(image, (0, pad_w, 0, pad_h), mode=mode)


def stylise(model: nn.Module, image: torch.Tensor, multiple: int, *extra: torch.Tensor) -> torch.Tensor:
    """Run ``model`` on an image of any size: pad to ``multiple``, run, crop back.

    ``extra`` inputs go to the model after the image (StyleBank: the style weights).
    """
    height, width = image.shape[-2:]
    return model(pad_to_multiple(image, multiple), *extra)[..., :height, :width]
