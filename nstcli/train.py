"""Training a feed-forward generator on a folder of content photos with the perceptual losses.

One step: a batch of random crops goes through the generator and the architecture's objective
(:mod:`nstcli.objectives`) returns the loss and its named terms. Schedule (from the study):
``warmup_steps`` with style weight 0 at ``warmup_lr`` so the generator first learns to reproduce
its input, then the style phase at ``lr``, multiplied by ``lr_decay`` every ``lr_decay_every``
steps. The schedule is a pure function of the step, so the step is all the "scheduler state" a
checkpoint (:mod:`nstcli.checkpoint`) needs. What runs (fresh, resumed, a multi-style model growing
or tuning styles) is decided beforehand by :func:`nstcli.train_plan.plan_train`.

Multi-GPU / multi-node: under ``torchrun`` (RANK, WORLD_SIZE, LOCAL_RANK set) the generator is
wrapped in DistributedDataParallel (NCCL on CUDA, gloo on CPU); each rank reads its share of
every epoch; rank 0 writes checkpoints, logs and previews.
"""

from __future__ import annotations

import hashlib
import math
import os
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from nstcli import __version__, data, generators, images, losses, report
from nstcli.checkpoint import load_checkpoint, save_checkpoint
from nstcli.descriptors import build_descriptor, net_info
from nstcli.devices import resolve_device, resolve_precision
from nstcli.errors import InputError, UsageError
from nstcli.export import ExportResult, export_model
from nstcli.losses import LossWeights, PerceptualLoss
from nstcli.objectives import PerceptualObjective, make_objective
from nstcli.settings import TrainConfig
from nstcli.train_plan import TrainPlan, validate

# The paper's layers (VGG16 relu2_2 content; relu1_2, relu2_2, relu3_3, relu4_3 style); for VGG19
# the same places in the network: the last ReLU of blocks 1-4.
TRAIN_LAYERS = {
    "vgg16": (("relu2_2",), ("relu1_2", "relu2_2", "relu3_3", "relu4_3")),
    "vgg19": (("relu2_2",), ("relu1_2", "relu2_2", "relu3_4", "relu4_4")),
    "vgg19-tv": (("relu2_2",), ("relu1_2", "relu2_2", "relu3_4", "relu4_4")),
}


def loss_weights(config: TrainConfig) -> LossWeights:
    """The objective of ``config``: its loss settings, layers left unset from :data:`TRAIN_LAYERS`
    (or the network's defaults)."""
    net = config.loss.net
    content, style = TRAIN_LAYERS.get(net, (net_info(net).content_layers, net_info(net).style_layers))
    return losses.loss_weights(config.loss, list(content), list(style))


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
    unreadable_files: int = 0  # image files whose header could not be read: left out at the scan
    failed_reads: int = 0  # photos that passed the scan but failed to decode, each time the next photo taking its place
    parameters: int = 0
    exported: ExportResult | None = None  # with TrainPlan.export


def is_main_process() -> bool:
    """False on every torchrun rank but 0: only rank 0 talks and writes."""
    return os.environ.get("RANK", "0") == "0"


def learning_rate(config: TrainConfig, step: int) -> float:
    if step < config.warmup_steps:
        return config.warmup_lr or 10 * config.lr
    return config.lr * config.lr_decay ** ((step - config.warmup_steps) // config.lr_decay_every)


def total_steps(config: TrainConfig, items_per_rank: int) -> int:
    if config.steps is not None:
        return config.steps
    return max(1, round(config.epochs * items_per_rank / config.batch_size))


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


def _perceptual_loss(config: TrainConfig, device: torch.device, precision: torch.dtype) -> PerceptualLoss:
    """The loss with every style image's Gram targets. A multi-style model (StyleBank, CIN) is judged on
    one style at a time, weighted by its own --style-blend entry (1 each by default), not a blend summing to 1."""
    weights = loss_weights(config)
    if config.multi_style:
        weights = replace(weights, style_blend=config.loss.style_blend or [1.0] * len(config.style))
    settings = config.loss
    descriptor = build_descriptor(settings.net, weights.content_layers + weights.style_layers, settings.weights,
                                  settings.pooling, settings.padding)  # fmt: skip
    loss_fn = PerceptualLoss(descriptor.to(device), weights, precision)
    long_side = max(16, round(config.image_size * settings.style_scale))
    styles = [images.to_tensor(images.resize_long_side(images.read_image(path), long_side)) for path in config.style]
    loss_fn.set_styles([style.to(device) for style in styles])
    return loss_fn


def _load_base(model: torch.nn.Module, base: dict[str, Any], train_banks: list[int]) -> None:
    """The trained multi-style model's weights into ``model``; only the styles in ``train_banks`` may be
    missing (new styles: ``banks.K.…``, a StyleBank's bank or a CIN style's scales and shifts)."""
    missing, unexpected = model.load_state_dict(base["model"], strict=False)
    if unexpected or any(not key.startswith("banks.") or int(key.split(".")[1]) not in train_banks for key in missing):
        raise InputError("the trained multi-style model does not match its own configuration")


def _freeze_all_but_banks(model: torch.nn.Module, train_banks: list[int]) -> None:
    """Only the styles in ``train_banks`` train (StyleBank: their banks; CIN: their norm scales and shifts)."""
    model.requires_grad_(False)
    for bank in train_banks:
        model.banks[bank].requires_grad_(True)


class _RunningTerms:
    """Named loss terms summed between two log rows, each averaged over the steps that produced it."""

    def __init__(self, names: tuple[str, ...], device: torch.device):
        self.names = names
        self.sums = torch.zeros(len(names), device=device)  # stays on the device: no sync per step
        self.counts = [0] * len(names)

    def add(self, terms: dict[str, torch.Tensor]) -> None:
        for index, name in enumerate(self.names):
            if name in terms:
                self.sums[index] += terms[name]
                self.counts[index] += 1

    def means(self, world: int) -> dict[str, float | None]:
        """Each term's mean over its steps (and over ranks in DDP); None for a term no step produced."""
        sums, counts = self.sums, torch.tensor(self.counts, dtype=torch.float32, device=self.sums.device)
        if world > 1:
            dist.all_reduce(sums)
            dist.all_reduce(counts)
        values = (sums / counts.clamp(min=1)).tolist()
        return {name: value if count else None for name, value, count in zip(self.names, values, counts.tolist())}

    def reset(self) -> None:
        self.sums.zero_()
        self.counts = [0] * len(self.names)


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
        loss_fn = _perceptual_loss(config, self.device, self.precision)  # reads the style images first
        self.objective: PerceptualObjective = make_objective(config, loss_fn)
        self.style_digests = [_file_digest(path) for path in config.style]

        self.options = generators.make_options(config.arch, config.arch_options)
        torch.manual_seed(config.seed)
        self.model = generators.build_generator(config.arch, self.options, config.weight_init)
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
        if resume is not None and self.total <= self.step:  # it would write the checkpoint's model again, untrained
            raise UsageError(f"the checkpoint has trained {self.step} steps; give --steps (or --epochs) beyond that to train further")

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

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.precision, enabled=self.precision != torch.float32)

    def _train_step(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """One optimiser step; returns the objective's named terms (detached)."""
        lr = learning_rate(self.config, self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        batch = batch.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        result = self.objective.step(self.network, batch, self.step, self._autocast)
        self.optimizer.zero_grad(set_to_none=True)
        result.loss.backward()
        self.optimizer.step()
        return result.terms

    def _preview(self, image: torch.Tensor, folder: Path) -> str:
        self.model.eval()
        with torch.no_grad():
            extra = self.objective.preview_inputs(self.device)
            result = generators.stylise(self.model, image.to(self.device), self.options.size_multiple(), *extra)
        self.model.train()
        folder.mkdir(parents=True, exist_ok=True)  # here, not before the run: a run too short to preview leaves none
        path = folder / f"step_{self.step:07d}.png"
        images.write_image(images.from_tensor(result.clamp(0, 1)), path)
        return str(path)

    def run(self, output: Path, checkpoint_path: Path, preview_dir: Path | None = None,
            on_progress: Callable[[Progress], None] | None = None) -> TrainResult:  # fmt: skip
        config = self.config
        preview = None
        if config.preview and preview_dir and self.env.main:
            preview = images.to_tensor(images.resize_long_side(images.read_image(config.preview), config.image_size))
        loader = DataLoader(
            self.dataset, batch_size=config.batch_size, sampler=self.sampler, num_workers=config.workers,
            collate_fn=data.collate, worker_init_fn=data.ignore_stop_signals, pin_memory=self.cuda,
            generator=torch.Generator().manual_seed(config.seed), persistent_workers=config.workers > 0,
            prefetch_factor=4 if config.workers > 0 else None,
        )  # fmt: skip
        self.model.train()
        start = time.perf_counter()
        running = _RunningTerms(self.objective.term_names, self.device)
        since, since_time = 0, start
        interrupted = False
        batches = iter(loader)
        with _stop_on_signals() as flag:
            while self.step < self.total:
                batch, skipped = next(batches)
                running.add(self._train_step(batch))
                self.step += 1
                self.items_seen += batch.shape[0]
                self.skipped += skipped
                since += 1
                stop = self._agree(flag["stop"])
                event = None
                if self.step % config.log_every == 0 or self.step == self.total or stop:
                    losses = self._log_row(running.means(self.env.world), time.perf_counter() - since_time, since, start)
                    running.reset()
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
                if preview is not None and (self.step % config.preview_every == 0 or self.step == self.total):
                    event = f"preview {self._preview(preview, preview_dir)}"
                if on_progress is not None and self.env.main:
                    last = self.history[-1] if self.history else {}
                    epoch = self.items_seen / self.sampler.per_rank()
                    on_progress(Progress(self.step, self.total, epoch, last.get("images_per_second", 0.0), losses, event))
        if not interrupted:
            self._write(output, start)
        return TrainResult(
            steps=self.step, seconds=time.perf_counter() - start, history=self.history, interrupted=interrupted,
            checkpoint=str(checkpoint_path) if interrupted else None,
            unreadable_files=self.scan.unreadable, failed_reads=self.skipped, parameters=generators.count_parameters(self.model),
        )  # fmt: skip

    def _agree(self, stop: bool) -> bool:
        """In DDP all ranks stop together if any was signalled."""
        if not self.env.enabled:
            return stop
        flag = torch.tensor([1.0 if stop else 0.0], device=self.device)
        dist.all_reduce(flag)
        return bool(flag.item() > 0)

    def _log_row(self, means: dict[str, float | None], seconds: float, steps: int, start: float) -> dict[str, float]:
        """One row of the loss log; a term no step produced since the last row (StyleBank: only
        auto-encoder steps, or none) repeats its last figure (0 before the first)."""
        last = self.history[-1] if self.history else {}
        terms = {name: value if value is not None else last.get(name, 0.0) for name, value in means.items()}
        if not all(math.isfinite(value) for value in terms.values()):
            raise InputError(
                f"training diverged by step {self.step} (a loss is NaN or infinite); nothing was written: "
                "lower --lr or the loss weights"
            )
        row = {
            "step": self.step,
            "epoch": round(self.items_seen / self.sampler.per_rank(), 4),
            "lr": learning_rate(self.config, self.step - 1),
            **terms,
            "images_per_second": steps * self.config.batch_size * self.env.world / max(seconds, 1e-9),
            "seconds": self.seconds_before + time.perf_counter() - start,
        }  # fmt: skip
        self.history.append(row)
        return row

    def _write(self, path: Path, start: float) -> None:
        state = self.state_dict(self.seconds_before + time.perf_counter() - start)
        if self.env.main:
            save_checkpoint(state, path)

    def close(self) -> None:
        if self.env.enabled and dist.is_initialized():
            # Tear down together: a rank that destroyed its group while rank 0 was still writing the
            # model once aborted at exit in gloo's threads (1 run of about 10 in a CI dry run).
            dist.barrier()
            dist.destroy_process_group()


def run_train(plan: TrainPlan, on_progress: Callable[[Progress], None] | None = None) -> TrainResult:
    """Train as ``plan`` says, write the model (on SIGINT/SIGTERM: the checkpoint, and the result
    says ``interrupted``; finished, the run's checkpoint is removed), then the loss log, the plot and the
    ONNX export the plan asks for."""
    trainer = Trainer(plan.config, plan.resume_state, plan.base_state)
    try:
        result = trainer.run(plan.output, plan.checkpoint, plan.preview_dir, on_progress)
    finally:
        trainer.close()
    if not is_main_process():
        return result
    if not result.interrupted:  # the model holds all a checkpoint held, at the last step: an older step to resume is a trap
        plan.checkpoint.unlink(missing_ok=True)
    if plan.loss_log:
        report.write_loss_log(result.history, plan.loss_log, plan.config.to_dict())
    if plan.plot:
        report.plot_losses(result.history, plan.plot, x_key="step")
    if plan.export and not result.interrupted:
        result.exported = export_model(load_checkpoint(plan.output), str(plan.export))
    return result
