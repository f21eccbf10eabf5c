"""Training a feed-forward generator on a folder of content photos with the perceptual losses.

One step: a batch of random crops goes through the generator; the loss compares its output with
the batch (content, at the content layers) and with the style image (Gram matrices), plus total
variation. Schedule (from the study): ``warmup_steps`` with style weight 0 at ``warmup_lr`` so the
generator first learns to reproduce its input, then the style phase at ``lr``, multiplied by
``lr_decay`` every ``lr_decay_every`` steps. The schedule is a pure function of the step, so the
step is all the "scheduler state" a checkpoint needs.

Checkpoints are plain dicts of tensors and JSON-able values (``torch.load(weights_only=True)``
reads them): model, Adam state, step, data position, RNG states, loss history and the config.
The final model file has the same format, so training can be continued from it too.

StyleBank (``arch="stylebank"``, Chen et al. 2017): one bank per style, named by ``names``.
The (T+1) alternation of the paper: ``t`` steps of the stylising branch (one style, drawn at
random, per step; the loss against that style's Gram targets) then one step of the auto-encoder
branch (encoder + decoder, pixel MSE against the input, logged as ``identity``). Incremental
learning (:func:`add_styles_config`) and tuning (:func:`tune_styles_config`) set ``train_banks``:
only those banks train, encoder, decoder and the other banks are frozen, so no identity steps.

Multi-GPU / multi-node: under ``torchrun`` (RANK, WORLD_SIZE, LOCAL_RANK set) the generator is
wrapped in DistributedDataParallel (NCCL on CUDA, gloo on CPU); each rank reads its share of
every epoch; rank 0 writes checkpoints, logs and previews.
"""

from __future__ import annotations

import hashlib
import io
import os
import signal
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from nstcli import __version__, data, generators, images
from nstcli.descriptors import build_descriptor, net_info
from nstcli.errors import InputError, UsageError, reject_first
from nstcli.losses import LossWeights, PerceptualLoss
from nstcli.optimize import PRECISIONS, loss_weights_from, resolve_device, resolve_precision, validate_losses

CHECKPOINT_FORMAT = "nst-train"
CHECKPOINT_VERSION = 1
# The paper's layers (VGG16 relu2_2 content; relu1_2, relu2_2, relu3_3, relu4_3 style); for VGG19
# the same places in the network: the last ReLU of blocks 1-4.
TRAIN_LAYERS = {
    "vgg16": (("relu2_2",), ("relu1_2", "relu2_2", "relu3_3", "relu4_3")),
    "vgg19": (("relu2_2",), ("relu1_2", "relu2_2", "relu3_4", "relu4_4")),
    "vgg19-tv": (("relu2_2",), ("relu1_2", "relu2_2", "relu3_4", "relu4_4")),
}
# What a checkpoint holds besides format, version, config and model, for --resume to continue exactly.
TRAINING_STATE_KEYS = ("optimizer", "step", "items_seen", "world", "rng", "cuda_rng", "history", "seconds", "data",
                       "style_digests")  # fmt: skip
# Fields that may differ on --resume; every other field defines the training and comes from the checkpoint.
RUN_FIELDS = frozenset(
    {"steps", "epochs", "workers", "device", "log_every", "checkpoint_every", "preview", "preview_every"}
)


@dataclass
class TrainConfig:
    """Everything that defines a training run; stored in checkpoints and in exported models."""

    style: list[str] = field(default_factory=list)  # style image paths (several: blended, see style_blend)
    data: str = ""
    arch: str = "johnson"
    arch_options: dict[str, Any] = field(default_factory=dict)
    image_size: int = 256
    crop_scale: float = 1.0  # crops cover crop_scale..1 of a photo's short side
    batch_size: int = 4
    max_images: int | None = None
    steps: int | None = None  # None: epochs over the data
    epochs: float = 2.0
    workers: int = 4
    style_scale: float = 1.0
    net: str = "vgg19"
    weights: str | None = None
    pooling: str = "max"
    content_layers: list[str] | None = None  # None: TRAIN_LAYERS, or the network's defaults
    style_layers: list[str] | None = None
    content_layer_weights: list[float] | None = None
    style_layer_weights: list[float] | None = None
    content_weight: float = 1.0
    style_weight: float = 0.05
    tv_weight: float = 0.0
    style_blend: list[float] | None = None  # stylebank: each bank's style-loss weight (None: 1 each)
    lr: float = 1e-3
    warmup_steps: int = 0
    warmup_lr: float | None = None  # None: 10 x lr
    lr_decay: float = 1.0
    lr_decay_every: int = 1250
    init: str = "default"
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    log_every: int = 10
    checkpoint_every: int = 1000  # 0: only at the end and on interrupt
    preview: str | None = None
    preview_every: int = 100
    names: list[str] | None = None  # stylebank: one name per style image (None: the images' stems)
    t: int = 2  # stylebank: style steps per auto-encoder step (the paper's T)
    train_banks: list[int] | None = None  # stylebank: train only these banks, freeze the rest; None: everything

    def loss_weights(self) -> LossWeights:
        content, style = TRAIN_LAYERS.get(self.net, (net_info(self.net).content_layers, net_info(self.net).style_layers))
        return loss_weights_from(self, content, style)

    def style_names(self) -> list[str]:
        """The styles the model learnt: one per bank for stylebank, else one (several stems joined with '+')."""
        if self.arch == "stylebank":
            return list(self.names or [Path(path).stem for path in self.style])
        return ["+".join(Path(path).stem for path in self.style)]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {item.name for item in fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})


@dataclass
class Progress:
    step: int
    total: int
    epoch: float
    images_per_second: float
    losses: dict[str, float] | None  # set on logged steps
    event: str | None = None  # e.g. "checkpoint ckpt.pt", "preview p/step_000100.png"


@dataclass
class TrainResult:
    steps: int
    seconds: float  # this invocation's training time (not counting earlier, resumed parts)
    history: list[dict[str, float]]
    interrupted: bool = False
    checkpoint: str | None = None  # written on interrupt
    skipped_images: int = 0
    parameters: int = 0


def validate(config: TrainConfig) -> None:
    """Reject bad settings before any image is read or any weight is loaded."""
    options = generators.make_options(config.arch, config.arch_options)
    if not config.style:
        raise UsageError("--style is required")
    if config.style_blend is not None and len(config.style_blend) != len(config.style):
        raise UsageError(f"--style-blend has {len(config.style_blend)} weights for {len(config.style)} style images")
    multiple = options.size_multiple()
    if config.image_size < 16 or config.image_size % multiple:
        raise UsageError(f"--image-size must be at least 16 and a multiple of {multiple} for --arch {config.arch}")
    checks = {
        "--crop-scale must be in (0, 1]": not 0 < config.crop_scale <= 1,
        "--batch-size must be at least 1": config.batch_size < 1,
        "--steps must be at least 1": config.steps is not None and config.steps < 1,
        "--epochs must be positive": config.epochs <= 0,
        "--max-images must be at least 1": config.max_images is not None and config.max_images < 1,
        "--workers must not be negative": config.workers < 0,
        "--lr must be positive": config.lr <= 0,
        "--warmup-lr must be positive": config.warmup_lr is not None and config.warmup_lr <= 0,
        "--warmup-steps must not be negative": config.warmup_steps < 0,
        "--lr-decay must be in (0, 1]": not 0 < config.lr_decay <= 1,
        "--lr-decay-every must be at least 1": config.lr_decay_every < 1,
        "--log-every must be at least 1": config.log_every < 1,
        "--checkpoint-every must not be negative": config.checkpoint_every < 0,
        "--preview-every must be at least 1": config.preview_every < 1,
    }
    reject_first(checks)
    if config.arch == "stylebank":
        _validate_stylebank(config, options.styles)
    if config.init not in generators.INITS:
        raise UsageError(f"unknown --init {config.init!r} (choose from {', '.join(generators.INITS)})")
    if config.precision not in PRECISIONS:
        raise UsageError(f"unknown precision {config.precision!r} (choose auto, fp32 or bf16)")
    validate_losses(config)


def _validate_stylebank(config: TrainConfig, banks: int) -> None:
    names = config.style_names()
    train_banks = config.train_banks
    bad_train_banks = train_banks is not None and (
        not train_banks or len(set(train_banks)) != len(train_banks) or not all(0 <= bank < banks for bank in train_banks)
    )
    checks = {
        f"--arch stylebank has {banks} banks for {len(config.style)} styles": banks != len(config.style),
        "--style names must be unique": len(set(names)) != len(names),
        f"{len(names)} style names for {len(config.style)} style images": len(names) != len(config.style),
        "--t must be at least 1": config.t < 1,
        "the banks to train must be distinct banks of the model": bad_train_banks,
        "--arch stylebank trains in one process (not under torchrun)": int(os.environ.get("WORLD_SIZE", "1")) > 1,
    }  # fmt: skip
    reject_first(checks)
    for name in names:
        if not name or "=" in name or "," in name:
            raise UsageError(f"--style: bad style name {name!r} (no '=' or ',', not empty)")


def _bank_run_values(saved: TrainConfig, given: dict[str, Any], flag: str, count: int) -> dict[str, Any]:
    """``saved`` (a trained bank) with ``given``: run flags and the few training flags that may change
    when only some banks train (steps, data, lr, loss weights); architecture and descriptor stay the
    checkpoint's. Run flags not given take their defaults, as in any new run (not the checkpoint's
    device or step count). ``count``: how many banks train, which is how many --style-blend weights
    to expect."""
    if saved.arch != "stylebank":
        raise UsageError(f"{flag} needs a stylebank model (this one is --arch {saved.arch})")
    given = dict(given)
    _check_arch_unchanged(saved, given.pop("arch_options", {}), f"with {flag}")
    changeable = RUN_FIELDS | {"data", "max_images", "lr", "content_weight", "style_weight", "tv_weight", "seed",
                               "image_size", "crop_scale", "batch_size", "style_scale", "warmup_steps", "warmup_lr",
                               "style_blend"}  # fmt: skip
    for key, value in given.items():
        if key not in changeable and _normalised(key, value) != _normalised(key, getattr(saved, key)):
            raise UsageError(f"--{key.replace('_', '-')} cannot change with {flag} (the bank's is kept)")
    weights = given.get("style_blend")
    if weights is not None and len(weights) != count:
        raise UsageError(f"--style-blend with {flag}: one weight per style it trains ({count}), got {len(weights)}")
    defaults = TrainConfig()
    run_defaults = {key: getattr(defaults, key) for key in RUN_FIELDS}
    values = {**saved.to_dict(), **run_defaults, **given}
    values["style_blend"] = saved.style_blend
    values["warmup_steps"] = given.get("warmup_steps", 0)
    return values


def add_styles_config(saved: TrainConfig, styles: list[str], names: list[str], given: dict[str, Any]) -> TrainConfig:
    """The config of an incremental run: ``saved`` (a trained bank) plus new styles, of which only the banks train.

    ``given``: see :func:`_bank_run_values`. A given ``style_blend`` weighs the new styles only (the
    trained banks keep theirs).
    """
    values = _bank_run_values(saved, given, "--add-style", len(styles))
    values["style"] = saved.style + styles
    values["names"] = saved.style_names() + names
    values["arch_options"] = {**saved.arch_options, "styles": len(values["style"])}
    values["train_banks"] = list(range(len(saved.style), len(values["style"])))
    new_weights = given.get("style_blend")
    if saved.style_blend or new_weights:
        values["style_blend"] = (saved.style_blend or [1.0] * len(saved.style)) + (new_weights or [1.0] * len(styles))
    return TrainConfig.from_dict(values)


def tune_styles_config(saved: TrainConfig, names: list[str], given: dict[str, Any]) -> TrainConfig:
    """The config of a tuning run: the banks of ``names`` in ``saved`` (a trained bank) train further, the rest is frozen.

    ``given``: see :func:`_bank_run_values`. A given ``style_blend`` sets the tuned styles' weights
    (the others keep theirs), e.g. a stronger style for a bank that came out too faint.
    """
    values = _bank_run_values(saved, given, "--tune-style", len(names))
    known = saved.style_names()
    for name in names:
        if name not in known:
            raise UsageError(f"--tune-style: the bank has no style {name!r} (it has {', '.join(known)})")
    if len(set(names)) != len(names):
        raise UsageError("--tune-style: each style once")
    values["train_banks"] = [known.index(name) for name in names]
    if given.get("style_blend") is not None:
        weights = list(saved.style_blend or [1.0] * len(known))
        for bank, weight in zip(values["train_banks"], given["style_blend"]):
            weights[bank] = weight
        values["style_blend"] = weights
    return TrainConfig.from_dict(values)


def split_named_style(text: str) -> tuple[str, str]:
    """``NAME=IMG`` -> (NAME, IMG); a bare ``IMG`` is named by its stem."""
    name, separator, path = text.partition("=")
    if not separator:
        return Path(text).stem, text
    if not name or not path:
        raise UsageError(f"--style: expected NAME=IMAGE or IMAGE, got {text!r}")
    return name, path


def learning_rate(config: TrainConfig, step: int) -> float:
    if step < config.warmup_steps:
        return config.warmup_lr or 10 * config.lr
    return config.lr * config.lr_decay ** ((step - config.warmup_steps) // config.lr_decay_every)


def total_steps(config: TrainConfig, items_per_rank: int) -> int:
    if config.steps is not None:
        return config.steps
    return max(1, round(config.epochs * items_per_rank / config.batch_size))


def resume_config(saved: TrainConfig, given: dict[str, Any]) -> TrainConfig:
    """The checkpoint's config with the run fields the user ``given`` on the command line.

    A training-defining flag given with a different value than the checkpoint's is an error: a
    resumed run continues the same training.
    """
    values = saved.to_dict()
    for key, value in given.items():
        if key in RUN_FIELDS:
            values[key] = value
        elif key == "arch_options":
            _check_arch_unchanged(saved, value, "on --resume")
        elif _normalised(key, value) != _normalised(key, values[key]):
            raise UsageError(f"--{key.replace('_', '-')} cannot change on --resume (the checkpoint has {values[key]!r})")
    return TrainConfig.from_dict(values)


def _check_arch_unchanged(saved: TrainConfig, given: dict[str, Any], context: str) -> None:
    """Architecture flags given again must match the checkpoint's (defaults filled in: --bank-layers 2
    matches a bank trained without the flag)."""
    options = generators.make_options(saved.arch, saved.arch_options)
    for option, value in given.items():
        kept = getattr(options, option, None)
        if kept != value:
            raise UsageError(f"--{option.replace('_', '-')} cannot change {context} (the checkpoint has {kept!r})")


def _normalised(key: str, value: Any) -> Any:
    if key == "data":
        return str(Path(value).resolve())
    if key == "style":
        return [str(Path(path).resolve()) for path in value]
    return value


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    images.write_bytes_atomic(buffer.getvalue(), path)


def load_checkpoint(path: str | Path, resumable: bool = False) -> dict[str, Any]:
    """Read a checkpoint or trained model written by :func:`run_train` (tensors and plain values only).

    ``resumable``: it must also hold the training state (optimiser, step, data position, RNG), as
    ``--resume`` needs; a file with weights and config only can be exported but not resumed.
    """
    if not Path(path).is_file():
        raise InputError(f"{path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - any unreadable file is the same user error
        raise InputError(f"{path}: not an nst model or checkpoint") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{path}: not an nst model or checkpoint")
    if state.get("version") != CHECKPOINT_VERSION:
        raise InputError(f"{path}: checkpoint version {state.get('version')} is not supported")
    if not isinstance(state.get("model"), dict) or not isinstance(state.get("config"), dict):
        raise InputError(f"{path}: damaged nst checkpoint (no model weights or configuration)")
    build_trained_generator(state, str(path))  # weights that do not fit their own configuration: refuse now
    missing = [key for key in TRAINING_STATE_KEYS if key not in state] if resumable else []
    if missing:
        raise InputError(f"{path}: holds no training state ({', '.join(missing)}): it can be exported, not resumed")
    return state


def build_trained_generator(state: dict[str, Any], name: str = "checkpoint") -> tuple[torch.nn.Module, TrainConfig, int]:
    """The generator of a checkpoint, in eval mode on the CPU, with its config and size multiple."""
    config = TrainConfig.from_dict(state["config"])
    options = generators.make_options(config.arch, config.arch_options)
    model = generators.build_generator(config.arch, options)
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, TypeError, AttributeError) as error:  # a damaged or hand-made file
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(f"{name}: damaged nst checkpoint ({first[:200]})") from None
    return model.eval(), config, options.size_multiple()


def _file_digest(path: str) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()[:16]


@dataclass
class _Distributed:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def _setup_distributed(device_name: str) -> tuple[_Distributed, torch.device]:
    """Join the torchrun process group when RANK/WORLD_SIZE/LOCAL_RANK are set; pick this rank's device."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return _Distributed(), resolve_device(device_name)
    env = _Distributed(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
    device = resolve_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", env.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return env, device


@contextmanager
def _stop_on_signals() -> Iterator[dict[str, bool]]:
    """SIGINT/SIGTERM set a flag the loop checks after each step; a second Ctrl-C stops at once."""
    flag = {"stop": False}

    def handler(signum, frame):  # noqa: ARG001 - signal handler signature
        flag["stop"] = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _style_loss(config: TrainConfig, device: torch.device, precision: torch.dtype) -> PerceptualLoss:
    weights = config.loss_weights()
    descriptor = build_descriptor(config.net, weights.content_layers + weights.style_layers, config.weights, config.pooling)
    loss_fn = PerceptualLoss(descriptor.to(device), weights, precision)
    long_side = max(16, round(config.image_size * config.style_scale))
    styles = [images.to_tensor(images.resize_long_side(images.read_image(path), long_side)) for path in config.style]
    loss_fn.set_styles([style.to(device) for style in styles])
    return loss_fn


def _load_base(model: torch.nn.Module, base: dict[str, Any], train_banks: list[int]) -> None:
    """The trained bank's weights into ``model``; only banks in ``train_banks`` may be missing (new styles)."""
    missing, unexpected = model.load_state_dict(base["model"], strict=False)
    if unexpected or any(not key.startswith("banks.") or int(key.split(".")[1]) not in train_banks for key in missing):
        raise InputError("the trained style bank does not match its own configuration")


def _freeze_all_but_banks(model: torch.nn.Module, train_banks: list[int]) -> None:
    model.requires_grad_(False)
    for bank in train_banks:
        model.banks[bank].requires_grad_(True)


class Trainer:
    """One training run (fresh or resumed); :meth:`run` trains until the step budget or a stop signal."""

    def __init__(self, config: TrainConfig, resume: dict[str, Any] | None = None, base: dict[str, Any] | None = None):
        validate(config)
        self.config = config
        self.env, self.device = _setup_distributed(config.device)
        self.cuda = self.device.type == "cuda"
        if self.cuda:
            torch.backends.cudnn.benchmark = True
        self.precision = resolve_precision(config.precision, self.device)
        self.memory_format = torch.channels_last if self.cuda else torch.contiguous_format

        scan = data.scan_folder(config.data, config.max_images)
        self.scan = scan
        self.fingerprint = scan.fingerprint(Path(config.data))
        self.dataset = data.ContentImages(scan.files, config.image_size, config.seed, config.crop_scale)
        self.loss_fn = _style_loss(config, self.device, self.precision)  # reads the style images first
        self.style_digests = [_file_digest(path) for path in config.style]
        self.stylebank = config.arch == "stylebank"
        # StyleBank: each style's Gram targets, swapped into the loss one at a time (see use_bank)
        self.bank_targets = list(self.loss_fn.style_targets) if self.stylebank else []
        self.bank_weights = config.style_blend or [1.0] * len(self.bank_targets)

        self.options = generators.make_options(config.arch, config.arch_options)
        torch.manual_seed(config.seed)
        self.model = generators.build_generator(config.arch, self.options, config.init)
        if config.train_banks is not None:
            if base is not None:
                _load_base(self.model, base, config.train_banks)
            _freeze_all_but_banks(self.model, config.train_banks)
        self.model.to(self.device, memory_format=self.memory_format)
        trainable = [parameter for parameter in self.model.parameters() if parameter.requires_grad]
        self.optimizer = torch.optim.Adam(trainable, lr=config.lr, fused=True if self.cuda else None)
        torch.manual_seed(config.seed * 1000 + self.env.rank)  # generator noise differs between ranks

        self.step = 0
        self.items_seen = 0  # per rank: the data position
        self.history: list[dict[str, float]] = []
        self.seconds_before = 0.0
        self.skipped = 0
        if resume is not None:
            self._load(resume)
        self.network = self.model
        if self.env.enabled:
            device_ids = [self.device.index] if self.cuda else None
            self.network = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids)
        self.sampler = data.StreamSampler(len(self.dataset), config.seed, self.items_seen, self.env.rank, self.env.world)
        self.total = total_steps(config, self.sampler.per_rank())

    def _load(self, state: dict[str, Any]) -> None:
        if state["world"] != self.env.world:
            raise UsageError(f"the checkpoint was written by {state['world']} processes; resume with as many")
        if state["data"]["fingerprint"] != self.fingerprint:
            raise InputError(f"{self.config.data}: the data folder changed since the checkpoint; resume needs the same files")
        if state["style_digests"] != self.style_digests:
            raise InputError("the style image changed since the checkpoint; resume needs the same style")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.items_seen = state["step"], state["items_seen"]
        self.history = list(state["history"])
        self.seconds_before = state["seconds"]
        self.skipped = state["data"]["skipped"]
        torch.set_rng_state(state["rng"][self.env.rank])
        if self.cuda and state["cuda_rng"] is not None:
            torch.cuda.set_rng_state(state["cuda_rng"][self.env.rank], self.device)

    def state_dict(self, seconds: float) -> dict[str, Any]:
        """The checkpoint; in DDP every rank must call it (RNG states are gathered), rank 0 writes it."""
        rng = [torch.get_rng_state()]
        cuda_rng = [torch.cuda.get_rng_state(self.device)] if self.cuda else None
        if self.env.enabled:
            gathered: list[Any] = [None] * self.env.world
            dist.all_gather_object(gathered, (rng[0], cuda_rng[0] if cuda_rng else None))
            rng = [item[0] for item in gathered]
            cuda_rng = [item[1] for item in gathered] if self.cuda else None
        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "nst_version": __version__,
            "config": self.config.to_dict(),
            "model": {key: value.detach().cpu() for key, value in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "items_seen": self.items_seen,
            "world": self.env.world,
            "rng": rng,
            "cuda_rng": cuda_rng,
            "history": self.history,
            "seconds": seconds,
            "data": {"count": len(self.dataset), "fingerprint": self.fingerprint, "skipped": self.skipped},
            "style_digests": self.style_digests,
        }

    def use_bank(self, style: int) -> None:
        """StyleBank: judge outputs against style ``style`` alone, its loss weighted by its --style-blend entry."""
        self.loss_fn.style_targets = [self.bank_targets[style]]
        self.loss_fn.style_blend = [self.bank_weights[style]]

    def _branch(self) -> int | None:
        """StyleBank: the style this step trains (drawn at random), or None for the auto-encoder step."""
        if self.config.train_banks is None and self.step % (self.config.t + 1) == self.config.t:
            return None
        banks = self.config.train_banks or range(len(self.bank_targets))
        return banks[int(torch.randint(len(banks), ()).item())]

    def _train_step(self, batch: torch.Tensor) -> torch.Tensor:
        """One optimiser step; returns the detached terms (content, style, tv, total, identity, identity step 0/1)."""
        lr = learning_rate(self.config, self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        batch = batch.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        mixed = self.precision != torch.float32
        zero = torch.zeros((), device=self.device)
        style = self._branch() if self.stylebank else -1
        if style is None:  # StyleBank auto-encoder branch: reproduce the input
            with torch.autocast(self.device.type, dtype=self.precision, enabled=mixed):
                output = self.model.branch(batch, None)
            identity = torch.nn.functional.mse_loss(output.float(), batch)
            self._optimise(identity)
            return torch.stack([zero, zero, zero, zero, identity.detach(), zero + 1])
        self.loss_fn.set_content(batch)
        if self.stylebank:
            self.use_bank(style)
        with torch.autocast(self.device.type, dtype=self.precision, enabled=mixed):
            output = self.model.branch(batch, style) if self.stylebank else self.network(batch)
        terms = self.loss_fn(output.float())
        style_phase = self.step >= self.config.warmup_steps
        total = terms.content + terms.tv + (terms.style if style_phase else 0)
        self._optimise(total)
        return torch.stack([terms.content, terms.style, terms.tv, total, zero, zero]).detach()

    def _optimise(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def _preview(self, image: torch.Tensor, folder: Path) -> str:
        self.model.eval()
        with torch.no_grad():
            # StyleBank: the last bank (the one an incremental run trains)
            extra = (torch.eye(len(self.bank_targets), device=self.device)[-1],) if self.stylebank else ()
            result = generators.stylise(self.model, image.to(self.device), self.options.size_multiple(), *extra)
        self.model.train()
        path = folder / f"step_{self.step:07d}.png"
        images.write_image(images.from_tensor(result.clamp(0, 1)), path)
        return str(path)

    def run(self, output: str, checkpoint_path: str, preview_dir: str | None = None,
            on_progress: Callable[[Progress], None] | None = None) -> TrainResult:  # fmt: skip
        config = self.config
        preview = None
        if config.preview and preview_dir and self.env.main:
            preview = images.to_tensor(images.resize_long_side(images.read_image(config.preview), config.image_size))
            Path(preview_dir).mkdir(parents=True, exist_ok=True)
        loader = DataLoader(
            self.dataset, batch_size=config.batch_size, sampler=self.sampler, num_workers=config.workers,
            collate_fn=data.collate, pin_memory=self.cuda, generator=torch.Generator().manual_seed(config.seed),
            persistent_workers=config.workers > 0, prefetch_factor=4 if config.workers > 0 else None,
        )  # fmt: skip
        self.model.train()
        start = time.perf_counter()
        running = torch.zeros(6, device=self.device)
        since, since_time, steps_run = 0, start, 0
        interrupted = False
        batches = iter(loader)
        with _stop_on_signals() as flag:
            while self.step < self.total:
                batch, skipped = next(batches)
                running += self._train_step(batch)
                self.step += 1
                steps_run += 1
                self.items_seen += batch.shape[0]
                self.skipped += skipped
                since += 1
                stop = self._agree(flag["stop"])
                event = None
                if self.step % config.log_every == 0 or self.step == self.total or stop:
                    losses = self._log_row(running / since, time.perf_counter() - since_time, since, start)
                    running.zero_()
                    since, since_time = 0, time.perf_counter()
                else:
                    losses = None
                if stop:
                    interrupted = True
                    self._write(checkpoint_path, start)
                    break
                if config.checkpoint_every and self.step % config.checkpoint_every == 0 and self.step < self.total:
                    self._write(checkpoint_path, start)
                    event = f"checkpoint {checkpoint_path}"
                if preview is not None and self.step % config.preview_every == 0:
                    event = f"preview {self._preview(preview, Path(preview_dir))}"
                if on_progress is not None and self.env.main:
                    last = self.history[-1] if self.history else {}
                    epoch = self.items_seen / self.sampler.per_rank()
                    on_progress(Progress(self.step, self.total, epoch, last.get("images_per_second", 0.0), losses, event))
        if not interrupted:
            self._write(output, start)
        return TrainResult(
            steps=self.step, seconds=time.perf_counter() - start, history=self.history, interrupted=interrupted,
            checkpoint=checkpoint_path if interrupted else None, skipped_images=self.skipped + self.scan.unreadable,
            parameters=generators.count_parameters(self.model),
        )  # fmt: skip

    def _agree(self, stop: bool) -> bool:
        """In DDP all ranks stop together if any was signalled."""
        if not self.env.enabled:
            return stop
        flag = torch.tensor([1.0 if stop else 0.0], device=self.device)
        dist.all_reduce(flag)
        return bool(flag.item() > 0)

    def _log_row(self, mean: torch.Tensor, seconds: float, steps: int, start: float) -> dict[str, float]:
        if self.env.enabled:
            dist.all_reduce(mean)
            mean /= self.env.world
        content, style, tv, total, identity, identity_share = mean.tolist()
        # StyleBank: style terms averaged over style steps, identity over auto-encoder steps; a row with
        # no step of one kind repeats that kind's last figures (0 before the first)
        last = self.history[-1] if self.history else {}
        if identity_share == 0:
            identity = last.get("identity", 0.0)
        elif identity_share < 1:
            content, style, tv, total = (value / (1 - identity_share) for value in (content, style, tv, total))
            identity /= identity_share
        else:
            content, style, tv, total = (last.get(key, 0.0) for key in ("content", "style", "tv", "total"))
            identity /= identity_share
        row = {
            "step": self.step,
            "epoch": round(self.items_seen / self.sampler.per_rank(), 4),
            "lr": learning_rate(self.config, self.step - 1),
            "content": content, "style": style, "tv": tv, "total": total,
            **({"identity": identity} if self.stylebank and self.config.train_banks is None else {}),
            "images_per_second": steps * self.config.batch_size * self.env.world / max(seconds, 1e-9),
            "seconds": self.seconds_before + time.perf_counter() - start,
        }  # fmt: skip
        self.history.append(row)
        return row

    def _write(self, path: str, start: float) -> None:
        state = self.state_dict(self.seconds_before + time.perf_counter() - start)
        if self.env.main:
            save_checkpoint(state, path)

    def close(self) -> None:
        if self.env.enabled and dist.is_initialized():
            # Tear down together: a rank that destroyed its group while rank 0 was still writing the
            # model once aborted at exit in gloo's threads (1 run of about 10 in a CI dry run).
            dist.barrier()
            dist.destroy_process_group()


def run_train(
    config: TrainConfig,
    output: str,
    checkpoint: str,
    resume: dict[str, Any] | None = None,
    preview_dir: str | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    base: dict[str, Any] | None = None,
) -> TrainResult:
    """Train (or continue ``resume``, a loaded checkpoint), then write the model to ``output``.

    ``base``: a trained stylebank whose weights start a run that trains only ``config.train_banks``.
    On SIGINT/SIGTERM the state goes to ``checkpoint`` instead and the result says ``interrupted``.
    """
    trainer = Trainer(config, resume, base)
    try:
        return trainer.run(output, checkpoint, preview_dir, on_progress)
    finally:
        trainer.close()
