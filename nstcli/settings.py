"""Every setting of the engines, declared once: name, type, default, help text and help panel.

The engines take these dataclasses (``OptimizeConfig``, ``TrainConfig``, both holding one
``LossSettings``); the CLI builds its options from the same declarations (:mod:`nstcli.options`),
so a default or a help text is written in one place and ``--help`` shows the real default. The
module is torch-free: ``nst --help`` reads it without loading an engine.

A setting's *role* says what ``nst train --resume`` may change (docs/ARCHITECTURE.md, "Settings and the CLI"):
``fixed`` settings define the training and come from the checkpoint; ``run`` settings (steps,
device, logging) may differ on every run; ``bank`` settings may change when only some banks of a
StyleBank train (``--add-style``, ``--tune-style``).
"""

from __future__ import annotations

import functools
import math
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass, replace
from typing import Any, Callable, ClassVar, Mapping, TypeVar

from nstcli.errors import UsageError

# Help panels, in the order --help shows them
PANEL_IO = "Input and output"
PANEL_LOSS = "Losses"
PANEL_DESCRIPTOR = "Descriptor network"
PANEL_OPTIMISER = "Optimiser"
PANEL_GENERATOR = "Generator"
PANEL_DATA = "Training data"
PANEL_SCHEDULE = "Schedule"
PANEL_DEVICE = "Device"
PANEL_LOGGING = "Logs and checkpoints"

FIXED, RUN, BANK = "fixed", "run", "bank"
MAX_SIDE = 8192  # the longest image side an optimisation may ask for (a VGG pass at 8192 px needs ~100 GB)
MAX_SEED = 2**63 - 1

Config = TypeVar("Config")


def setting(default: Any = MISSING, *, help: str | Mapping[str, str], panel: str, factory: Callable[[], Any] | None = None,
            role: str = FIXED, low: float | None = None, high: float | None = None,
            flag: str | None = None) -> Any:  # fmt: skip
    """A dataclass field with its help text (one per command, ``{"optimize": ..., "train": ...}``, where a shared
    setting means something different in each), help panel, resume role, for numbers its range ``low..high``
    (inclusive; every item of a list of numbers), and its flag when that is not ``--name-with-dashes``."""
    metadata = {"help": help, "panel": panel, "role": role, "range": (low, high), "flag": flag}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


ORIENTATIONS_HELP = (
    "The style image in 1 (as given), 2 (and its mirror image) or 8 orientations (each quarter turn, each mirrored), "
    "matched as one averaged target: the painting's strokes keep no one direction. One number for every style image, "
    "or one per style image (8,1: the second as given, e.g. a print whose lines keep their direction)."
)


@dataclass
class LossSettings:
    """The perceptual objective: descriptor network, layers and weights (shared by optimize and train)."""

    net: str = setting(
        "vgg19", help="Descriptor: vgg19 (embedded), vgg19-tv, vgg16, resnet50, resnet101.", panel=PANEL_DESCRIPTOR
    )
    weights: str | None = setting(None, help="Local weights file for a torchvision descriptor.", panel=PANEL_DESCRIPTOR)
    pooling: str = setting("max", help="Pooling in VGG descriptors: max or avg.", panel=PANEL_DESCRIPTOR)
    padding: str = setting(
        "zeros",
        help="Padding of the descriptor's first convolution: zeros (the network's own) or replicate (the edge pixels "
        "repeated, so the picture's border is not seen as a dark frame).",
        panel=PANEL_DESCRIPTOR,
    )
    content_layers: list[str] | None = setting(
        None,
        help={
            "optimize": "Comma-separated, e.g. relu4_2 (default: the net's; relu4_2 in VGG19, relu3_3 in VGG16, layer2 in ResNets).",
            "train": "Comma-separated (default relu2_2).",
        },
        panel=PANEL_DESCRIPTOR,
    )
    style_layers: list[str] | None = setting(
        None,
        help={
            "optimize": "Comma-separated (default relu1_1,relu2_1,relu3_1,relu4_1,relu5_1; in ResNets stem,layer1,layer2,layer3).",
            "train": "Comma-separated (default: the last ReLU of blocks 1-4; relu1_2,relu2_2,relu3_4,relu4_4 in VGG19).",
        },
        panel=PANEL_DESCRIPTOR,
    )
    content_layer_weights: list[float] | None = setting(
        None,
        help="Per content layer, comma-separated (default: 1 each).",
        panel=PANEL_LOSS,
        low=0,
        high=1e6,
    )
    style_layer_weights: list[float] | None = setting(
        None,
        help="Per style layer, comma-separated (default: 1 each).",
        panel=PANEL_LOSS,
        low=0,
        high=1e6,
    )
    content_weight: float = setting(
        1.0, help="Weight of the content loss.", panel=PANEL_LOSS, role=BANK, low=0, high=1e12
    )
    style_weight: float = setting(10.0, help="Weight of the style loss.", panel=PANEL_LOSS, role=BANK, low=0, high=1e12)
    tv_weight: float = setting(
        0.0,
        help="Weight of the total-variation loss (0..1 image scale).",
        panel=PANEL_LOSS,
        role=BANK,
        low=0,
        high=1e12,
    )
    style_blend: list[float] | None = setting(
        None,
        help={
            "optimize": "One weight per style image, e.g. 0.7,0.3 (default: equal weights).",
            "train": "One weight per style image, e.g. 0.7,0.3 (stylebank, cin: each style's style-loss weight, default 1 each).",
        },
        panel=PANEL_LOSS,
        role=BANK,
        low=0,
        high=1e6,
    )
    style_loss: str = setting(
        "gram",
        help="Style loss per layer: gram (Gatys et al.), meancov (feature mean and covariance, matched apart), "
        "patch (each 3x3 feature patch against the most similar patch of the painting, Li & Wand; layers relu3_1,relu4_1) "
        "or sw (sliced Wasserstein: each layer's whole feature distribution, along fixed directions); or two of gram, "
        "meancov, sw joined by +, each with half the style weight (sw+gram: the distribution, and the Gram matrix "
        "that does not ask for the painting's share of flat areas).",
        panel=PANEL_LOSS,
    )
    style_tiles: int = setting(
        1,
        help="gram, meancov and sw: match the style statistic (sw: the feature distribution) in each tile of an N x N "
        "grid of the output, not only over the whole image, so every region takes the painting (1 = whole image; "
        "with masks: each region; not with patch).",
        panel=PANEL_LOSS,
        low=1,
        high=16,
    )
    style_orientations: list[int] | None = setting(
        help={
            "optimize": ORIENTATIONS_HELP + " Default: 8, which spreads the style most evenly (1 with --style-loss patch).",
            "train": ORIENTATIONS_HELP + " Default: 1.",
        },
        panel=PANEL_LOSS,
        factory=lambda: [1],
        role=BANK,
        low=1,
        high=8,
    )
    style_scale: float = setting(
        1.0,
        help={
            "optimize": "Style image long side relative to --size (at each scale: to that scale's size).",
            "train": "Style image long side relative to --image-size.",
        },
        panel=PANEL_LOSS,
        role=BANK,
        low=0.01,
        high=8,
    )


def _optimize_loss() -> LossSettings:
    """Optimisation's loss defaults: the sliced Wasserstein loss, which spreads the painting over the whole
    picture where the Gram loss left regions a photo and keeps the photo's shapes where the mean and
    covariance loss smeared them; its target averaged over the painting's eight orientations, so that no motif
    of the painting as given decides where the style gathers (None: ``optimize.DEFAULT_ORIENTATIONS``,
    1 for the patch loss). At the default 512 px the two spread the style more evenly than the old Gram default on
    all 6 benchmark pairs (the spread's mean over 3 x 3 to 6 x 6 grids; docs/optimize-quality.md). Training keeps
    the Gram loss its bundled models were trained with."""
    return LossSettings(style_loss="sw", style_orientations=None)


@dataclass
class OptimizeConfig:
    """Everything that defines one ``nst optimize`` run; written next to outputs so it can be reproduced."""

    COMMAND: ClassVar[str] = "optimize"  # whose help texts a shared setting shows

    size: int = setting(512, help="Output long side in pixels.", panel=PANEL_IO, low=16, high=MAX_SIDE)
    style_crop: float = setting(
        1.0,
        help="Use only the central fraction of each style image's width and height (e.g. 0.5).",
        panel=PANEL_IO,
        low=0.01,
        high=1,
    )
    loss: LossSettings = field(default_factory=_optimize_loss)
    style_masks: list[str] | None = None  # paths of the masks passed as style_masks (spatial control)
    content_mask: str | None = None  # path of the mask passed as content_mask
    init: str = setting(
        "content",
        help="Start image: content, noise, universal (the content painted in one pass, as by nst apply --style-image) "
        "or an image file.",
        panel=PANEL_OPTIMISER,
    )
    noise_ratio: float = setting(
        0.0,
        help="Mix of noise into the start image: 0 = none, 1 = pure noise.",
        panel=PANEL_OPTIMISER,
        low=0,
        high=1,
    )
    seed: int | None = setting(
        None,
        help="Random seed (CPU runs are then bit-for-bit reproducible).",
        panel=PANEL_OPTIMISER,
        low=0,
        high=MAX_SEED,
    )
    optimizer: str = setting("lbfgs", help="lbfgs or adam.", panel=PANEL_OPTIMISER)
    lr: float | None = setting(
        None,
        help="Learning rate, 0..255 pixel units (default: lbfgs 1, adam 10).",
        panel=PANEL_OPTIMISER,
        low=1e-12,
        high=1e6,
    )
    average: float = setting(
        0.0,
        help="adam: save the exponential moving average of the iterate with this decay, e.g. 0.9 (0: the last "
        "iterate); each scale starts from the last one's average.",
        panel=PANEL_OPTIMISER,
        low=0,
        high=0.999,
    )
    iterations: int = setting(
        330,  # an evaluation with the default sw loss costs ~1.3x one with meancov (its sorts): 330 take what 450 did
        help="Budget in descriptor evaluations (forward+backward), all scales.",
        panel=PANEL_OPTIMISER,
        low=1,
        high=1_000_000,
    )
    min_size: int = setting(
        128,
        help="Coarse to fine: scales sqrt(2) apart, counted down from --size to the smallest long side not below "
        "this (512 and 128: 128, 181, 256, 362, 512; at or above --size: one scale).",
        panel=PANEL_OPTIMISER,
        low=16,
        high=MAX_SIDE,
    )
    preserve_color: str | None = setting(
        None, help="Keep the content's colours: luminance or histogram.", panel=PANEL_IO
    )
    device: str = setting("auto", help="auto, cpu, cuda or cuda:N.", panel=PANEL_DEVICE)
    precision: str = setting(
        "auto", help="Descriptor precision: auto (bf16 where native), fp32 or bf16.", panel=PANEL_DEVICE
    )
    cuda_graph: bool = True  # on CUDA, replay each iteration as one captured CUDA graph

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class UniversalTrainConfig:
    """``nst train --arch universal``: the WCT decoders, trained to reconstruct photos from VGG19 features.

    Defaults differ from the generators' (smaller crops, more per batch, a decoder learning rate):
    decoders learn no style, and on a CPU the deepest one is what the time goes to.
    """

    data: str = setting("", help="Folder of content photos (recursive; jpg, png, webp).", panel=PANEL_DATA)
    image_size: int = setting(128, help="Training crops are SIZE x SIZE (a multiple of 8).", panel=PANEL_DATA, low=16, high=4096)
    batch_size: int = setting(4, help="Images per step.", panel=PANEL_DATA, low=1, high=4096)
    max_images: int | None = setting(None, help="Use only the first N readable images.", panel=PANEL_DATA, low=1, high=1e9)
    level_steps: list[int] = setting(
        help="universal: steps of each decoder, relu1_1,relu2_1,relu3_1,relu4_1 (0 = leave that level untrained).",
        panel=PANEL_SCHEDULE,
        factory=lambda: [2500, 4000, 4000, 750],  # about the bundled decoders' (README: any painting in one pass)
        role=RUN,
        low=0,
        high=1e9,
    )
    width: float = setting(0.5, help="universal: decoder channel multiplier (1.0 = the VGG mirror).", panel=PANEL_GENERATOR, low=0.05, high=4)
    lr: float = setting(1e-3, help="Adam learning rate.", panel=PANEL_SCHEDULE, low=1e-12, high=10)
    feature_weight: float = setting(
        0.01,
        help="universal: weight of the feature loss (relative squared error at the decoder's own level) beside the pixel loss.",
        panel=PANEL_LOSS,
        low=0,
        high=1e6,
    )
    holdout: str | None = setting(
        None, help="universal: folder of held-out photos; reconstruction PSNR per level is measured on them.", panel=PANEL_DATA, role=RUN
    )
    eval_size: int = setting(256, help="universal: long side of the held-out photos when measured.", panel=PANEL_DATA, role=RUN, low=16, high=4096)
    workers: int = setting(1, help="DataLoader worker processes (0 = decode in the main process).", panel=PANEL_DATA, role=RUN, low=0, high=256)
    seed: int = setting(0, help="Random seed (CPU runs are reproducible bit-for-bit).", panel=PANEL_DATA, low=0, high=MAX_SEED)
    device: str = setting("auto", help="auto, cpu, cuda or cuda:N.", panel=PANEL_DEVICE, role=RUN)
    log_every: int = setting(10, help="Average and record the losses every N steps.", panel=PANEL_LOGGING, role=RUN, low=1, high=1e9)
    checkpoint_every: int = setting(
        50, help="Write the checkpoint every N steps (0 = only at the end or on Ctrl-C).", panel=PANEL_LOGGING, role=RUN, low=0, high=1e9
    )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _train_loss() -> LossSettings:
    """Training's loss defaults: a gentler style weight than optimisation's (the generator sees many photos)."""
    return LossSettings(style_weight=0.05)


# Generators that hold several styles, trained from NAME=IMAGE pairs, one style per step, mixable with
# style weights, grown by --add-style (their options hold ``styles``; see nstcli.generators).
MULTI_STYLE_ARCHS = ("stylebank", "cin")


@dataclass
class TrainConfig:
    """Everything that defines a training run; stored in checkpoints and in exported models."""

    COMMAND: ClassVar[str] = "train"

    style: list[str] = setting(
        help="Style image, or a bundled style that ships one (repeat, with --style-blend, to blend several); stylebank, cin: "
        "NAME=IMAGE, one per style.",
        panel=PANEL_IO,
        factory=list,
        flag="--style-image",
    )
    data: str = setting("", help="Folder of content photos (recursive; jpg, png, webp).", panel=PANEL_DATA, role=BANK)
    arch: str = setting(
        "johnson",
        help="Generator: johnson (Johnson et al.), texture (Ulyanov et al.), stylebank (Chen et al.), cin (Dumoulin "
        "et al.: Johnson's net, each style its own instance-norm scales and shifts) or universal "
        "(Li et al.: decoders for nst apply --style-image; needs only --data; its own defaults: --image-size "
        f"{UniversalTrainConfig.image_size}, --batch-size {UniversalTrainConfig.batch_size}, --lr {UniversalTrainConfig.lr:g}, "
        f"--workers {UniversalTrainConfig.workers}).",
        panel=PANEL_GENERATOR,
    )
    arch_options: dict[str, Any] = field(default_factory=dict)  # the options dataclass of nstcli.generators.ARCH
    image_size: int = setting(
        256, help="Training crops are SIZE x SIZE.", panel=PANEL_DATA, role=BANK, low=16, high=4096
    )
    crop_scale: float = setting(
        1.0,
        help="Each crop covers a random CROP_SCALE..1 of the photo's short side (below 1: more scales from few photos).",
        panel=PANEL_DATA,
        role=BANK,
        low=0.01,
        high=1,
    )
    batch_size: int = setting(
        4, help="Images per step (per process under torchrun).", panel=PANEL_DATA, role=BANK, low=1, high=4096
    )
    max_images: int | None = setting(
        None, help="Use only the first N readable images.", panel=PANEL_DATA, role=BANK, low=1, high=1e9
    )
    steps: int | None = setting(
        None, help="Total optimiser steps (overrides --epochs).", panel=PANEL_SCHEDULE, role=RUN, low=1, high=1e9
    )
    epochs: float = setting(
        2.0,
        help="Passes over the data (when --steps is not given).",
        panel=PANEL_SCHEDULE,
        role=RUN,
        low=0.001,
        high=1e6,
    )
    workers: int = setting(
        4,
        help="DataLoader worker processes (0 = decode in the main process).",
        panel=PANEL_DATA,
        role=RUN,
        low=0,
        high=256,
    )
    loss: LossSettings = field(default_factory=_train_loss)
    lr: float = setting(
        1e-3, help="Adam learning rate of the style phase.", panel=PANEL_SCHEDULE, role=BANK, low=1e-12, high=10
    )
    warmup_steps: int = setting(
        0,
        help="First steps with style weight 0: the net learns to reproduce its input.",
        panel=PANEL_SCHEDULE,
        role=BANK,
        low=0,
        high=1e9,
    )
    warmup_lr: float | None = setting(
        None,
        help="Learning rate of the warm-up steps (default: 10 x --lr).",
        panel=PANEL_SCHEDULE,
        role=BANK,
        low=1e-12,
        high=10,
    )
    lr_decay: float = setting(
        1.0,
        help="Multiply the learning rate by this every --lr-decay-every steps.",
        panel=PANEL_SCHEDULE,
        low=1e-6,
        high=1,
    )
    lr_decay_every: int = setting(
        1250,
        help="Steps between learning-rate decays (counted after warm-up).",
        panel=PANEL_SCHEDULE,
        low=1,
        high=1e9,
    )
    weight_init: str = setting(
        "default", help="Weight initialisation: default (PyTorch's), xavier or he.", panel=PANEL_GENERATOR
    )
    seed: int = setting(
        0,
        help="Random seed (CPU runs are reproducible bit-for-bit).",
        panel=PANEL_DATA,
        role=BANK,
        low=0,
        high=MAX_SEED,
    )
    device: str = setting("auto", help="auto, cpu, cuda or cuda:N.", panel=PANEL_DEVICE, role=RUN)
    precision: str = setting(
        "auto", help="Training precision: auto (bf16 where native), fp32 or bf16.", panel=PANEL_DEVICE
    )
    log_every: int = setting(
        10, help="Average and record the losses every N steps.", panel=PANEL_LOGGING, role=RUN, low=1, high=1e9
    )
    checkpoint_every: int = setting(
        1000,
        help="Write the checkpoint every N steps (0 = only at the end or on Ctrl-C).",
        panel=PANEL_LOGGING,
        role=RUN,
        low=0,
        high=1e9,
    )
    preview: str | None = setting(
        None, help="Image to stylise every --preview-every steps and at the last, into MODEL.preview/.", panel=PANEL_LOGGING, role=RUN
    )
    preview_every: int = setting(100, help="Steps between previews.", panel=PANEL_LOGGING, role=RUN, low=1, high=1e9)
    names: list[str] | None = None  # stylebank, cin: one name per style image (None: the images' stems)
    steps_per_identity: int = setting(
        2,
        help="stylebank: style steps before each auto-encoder step (the paper's T).",
        panel=PANEL_GENERATOR,
        low=1,
        high=1e6,
    )
    train_banks: list[int] | None = None  # stylebank, cin: train only these styles, freeze the rest; None: everything

    @property
    def multi_style(self) -> bool:
        """Whether the generator holds several styles (:data:`MULTI_STYLE_ARCHS`)."""
        return self.arch in MULTI_STYLE_ARCHS

    def style_names(self) -> list[str]:
        """The styles the model learnt: one per style for stylebank and cin, else one (several stems joined with '+')."""
        from pathlib import Path

        if self.multi_style:
            return list(self.names or [Path(path).stem for path in self.style])
        return ["+".join(Path(path).stem for path in self.style)]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """A config written by any nst version: checkpoints, ONNX metadata, preset records (see :func:`migrate_train`)."""
        values = migrate_train(values)
        known = {item.name for item in fields(cls)}
        loss_known = {item.name for item in fields(LossSettings)}
        loss_values = values.get("loss", {})
        if not isinstance(loss_values, dict):
            raise ValueError(f"loss is {loss_values!r}, not a table of settings")
        loss = replace(_train_loss(), **{key: value for key, value in migrate_loss(loss_values).items() if key in loss_known})
        return cls(**{key: value for key, value in values.items() if key in known and key != "loss"}, loss=loss)


# Fields renamed since checkpoint format 1 (old name -> new name).
TRAIN_RENAMES_V1 = {"init": "weight_init", "t": "steps_per_identity"}


def migrate_train(values: dict[str, Any]) -> dict[str, Any]:
    """A training config in today's layout. Format 1 (nst 0.1 checkpoints, the bundled models'
    metadata and preset records) kept the loss settings at the top level and used the old names of
    :data:`TRAIN_RENAMES_V1`; format 2 nests them under ``loss``."""
    if "loss" in values:
        return dict(values)
    loss_names = {item.name for item in fields(LossSettings)}
    migrated: dict[str, Any] = {"loss": {key: value for key, value in values.items() if key in loss_names}}
    for key, value in values.items():
        if key not in loss_names:
            migrated[TRAIN_RENAMES_V1.get(key, key)] = value
    return migrated


def check_blend_length(blend: list[float] | None, count: int) -> None:
    """--style-blend gives one weight per style image (None: equal weights)."""
    if blend is not None and len(blend) != count:
        weights, images = ("weight" if len(blend) == 1 else "weights"), ("style image" if count == 1 else "style images")
        raise UsageError(f"--style-blend has {len(blend)} {weights} for {count} {images}")


def orientation_counts(counts: list[int], styles: int) -> list[int]:
    """--style-orientations for each of ``styles`` style images: one count for all, or one each."""
    if len(counts) == 1:
        return counts * styles
    if len(counts) != styles:
        raise UsageError(f"--style-orientations has {len(counts)} counts for {styles} style image{'s' if styles != 1 else ''} (give one, or one each)")
    return list(counts)


def compact_counts(counts: list[int]) -> list[int]:
    """Per-style orientation counts as the setting holds them: one count when all are the same."""
    return counts[:1] if len(set(counts)) == 1 else counts


def migrate_loss(values: dict[str, Any]) -> dict[str, Any]:
    """Loss settings in today's types: ``style_orientations`` was one number for every style image before it
    could be one per style image (nst 0.1's checkpoints and model metadata of 2026-12-01)."""
    if isinstance(values.get("style_orientations"), int):
        return {**values, "style_orientations": [values["style_orientations"]]}
    return values


def _fits(value: Any, annotation: Any) -> bool:
    """Whether ``value`` has the declared type (ints count as floats; bools are not numbers)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, option) for option in args)
    if annotation is type(None):
        return value is None
    if annotation is Any:
        return True
    if origin is list:
        return isinstance(value, list) and all(_fits(item, args[0]) for item in value)
    if origin is dict:
        return isinstance(value, dict) and all(isinstance(key, str) for key in value)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if is_dataclass(annotation):
        return isinstance(value, annotation)
    return isinstance(value, annotation)


def check_types(config: Any) -> None:
    """Every field of ``config`` (and of its nested settings) has its declared type: a config read
    from a file (a checkpoint, model metadata) is data, and wrong types must stop here, not crash later.
    Raises ValueError naming the first field that does not fit."""
    hints = typing.get_type_hints(type(config))
    for item in fields(config):
        value = getattr(config, item.name)
        if is_dataclass(hints[item.name]):
            check_types(value)
        elif not _fits(value, hints[item.name]):
            expected = hints[item.name]
            raise ValueError(f"{item.name} is {value!r}, not {getattr(expected, '__name__', str(expected))}")


# ---------------------------------------------------------------- flat views, for the CLI and sweeps


class Declaration(typing.NamedTuple):
    """One setting as a config type declares it: where it sits, its type, the config's default, its metadata."""

    path: tuple[str, ...]  # ("loss", "style_weight")
    annotation: Any
    default: Any
    metadata: Mapping[str, Any]


@functools.cache
def declarations(config_type: type) -> Mapping[str, Declaration]:
    """Every declared setting of ``config_type`` by flat name, nested settings included. Computed once per
    type: the CLI asks for them while building its options, on every start."""
    found: dict[str, Declaration] = {}

    def collect(owner: type, instance: Any, parents: tuple[str, ...]) -> None:
        hints = typing.get_type_hints(owner)
        for item in fields(owner):
            value = getattr(instance, item.name)
            if is_dataclass(hints[item.name]):
                collect(hints[item.name], value, (*parents, item.name))
            elif "help" in item.metadata:
                found[item.name] = Declaration((*parents, item.name), hints[item.name], value, item.metadata)

    collect(config_type, config_type(), ())  # the defaults are this config's own (train's style weight)
    return types.MappingProxyType(found)


def declaration(config_type: type, name: str) -> tuple[Any, Any, Mapping[str, Any]]:
    """(type, default, metadata) of flat setting ``name`` of ``config_type``; the default is the config's own
    (``TrainConfig``'s style weight, not ``LossSettings``')."""
    declared = declarations(config_type)[name]
    return declared.annotation, declared.default, declared.metadata


def help_of(config_type: type, name: str) -> str:
    """The help text of setting ``name`` for ``config_type``'s command."""
    text = declarations(config_type)[name].metadata["help"]
    return text if isinstance(text, str) else text[config_type.COMMAND]


def flag_of(config_type: type, name: str) -> str:
    """The command-line flag of setting ``name``: ``style_weight`` -> ``--style-weight``."""
    return declarations(config_type)[name].metadata["flag"] or "--" + name.replace("_", "-")


def get_setting(config: Any, name: str) -> Any:
    value = config
    for part in declarations(type(config))[name].path:
        value = getattr(value, part)
    return value


def with_settings(config: Config, values: dict[str, Any]) -> Config:
    """A copy of ``config`` with settings changed by flat name (``{"style_weight": 3.0}`` reaches
    ``config.loss``); other fields of ``config`` itself change too (``arch_options``)."""
    settings = declarations(type(config))
    nested: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    for name, value in values.items():
        *parents, last = settings[name].path if name in settings else (name,)
        if parents:
            nested.setdefault(parents[0], {})[last] = value
        else:
            top[last] = value
    for parent, changes in nested.items():
        top[parent] = replace(getattr(config, parent), **changes)
    return replace(config, **top)  # type: ignore[type-var]


def value_type(annotation: Any) -> tuple[type, bool]:
    """(scalar type, is a list) of a declared type: ``list[float] | None`` -> (float, True)."""
    options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = options[0]
    if typing.get_origin(annotation) is list:
        return typing.get_args(annotation)[0], True
    return annotation, False


def parse_value(text: str, scalar: type) -> Any:
    """One value of a setting from its text (``"1e3"`` -> 1000.0); ValueError when it does not fit."""
    if scalar is bool:
        return {"true": True, "false": False}[text.strip().lower()]
    return scalar(text.strip())


def parse_list(text: str | None, scalar: type, flag: str, separator: str = ",") -> list[Any] | None:
    """'0.7,0.3' -> [0.7, 0.3]; None stays None. Empty names are dropped ('a,,b'), empty numbers are errors."""
    if text is None:
        return None
    parts = text.split(separator)
    if scalar is str:
        parts = [part for part in parts if part.strip()]
    try:
        values = [parse_value(part, scalar) for part in parts]
    except (ValueError, KeyError):
        raise UsageError(f"{flag}: expected {separator!r}-separated {scalar.__name__} values, got {text!r}") from None
    if scalar is float:  # nan and inf parse as floats: never a weight or a size
        for value in values:
            check_range(flag, value, None, None)
    return values


def from_flags(config_type: type[Config], flags: dict[str, Any], base: Config | None = None) -> Config:
    """A config from command-line values keyed by flag name; lists arrive as comma-separated text.

    Keys that are not settings of ``config_type`` are ignored (the CLI's own flags: output, quiet...).
    """
    settings = declarations(config_type)
    values = {}
    for name, value in flags.items():
        if name not in settings:
            continue
        if value is None and settings[name].default is not None:  # a repeatable option given no time: its default ([])
            continue
        scalar, is_list = value_type(settings[name].annotation)
        if is_list and isinstance(value, str):
            value = parse_list(value, scalar, flag_of(config_type, name))
        values[name] = value
    return with_settings(base if base is not None else config_type(), values)


def check_range(flag: str, value: float | None, low: float | None, high: float | None) -> None:
    """The one rule for numbers on the command line: finite, and within ``low..high`` (inclusive)."""
    if value is None or isinstance(value, bool):
        return
    if not math.isfinite(value):
        raise UsageError(f"{flag} must be a finite number, got {value}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise UsageError(f"{flag} must be in {_number(low)}..{_number(high)}, got {_number(value)}")


def _number(value: float | None) -> str:
    """10000000000 as such, not 1e+10; 0.05 as 0.05; an int (the largest seed, 2^63 - 1) whole."""
    if isinstance(value, int):
        return str(value)
    if value is not None and float(value).is_integer() and abs(value) < 1e16:
        return str(int(value))
    return f"{value:g}"


def check_ranges(config: Any) -> None:
    """Every numeric setting of ``config`` (and every item of a list of numbers) within its declared range."""
    for name, declared in declarations(type(config)).items():
        low, high = declared.metadata["range"]
        value = get_setting(config, name)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, (int, float)):
                check_range(flag_of(type(config), name), item, low, high)


def roles(config_type: type, role: str) -> frozenset[str]:
    """Flat names of the settings of ``config_type`` with resume role ``role``."""
    return frozenset(name for name, declared in declarations(config_type).items() if declared.metadata["role"] == role)
