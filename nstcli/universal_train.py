"""Training the decoders of universal style transfer (``nst train --arch universal``).

Decoder k learns to reconstruct a photo from its relu{k}_1 features (Li et al. 2017): pixel MSE plus
``feature_weight`` x the relative squared error of the reconstruction's own relu{k}_1 features. No
style image is involved; any folder of photos will do. All levels train in the same loop on the same
batch, so the encoder runs once per batch for every level; a level stops when it has its
``level_steps``, so the deepest (slowest to learn) gets the most steps.

The checkpoint (FILE.ckpt beside the output FILE.pt, and FILE.pt itself) holds the decoders, their
optimisers, each level's step and seconds, the data position and the RNG, so ``--resume`` continues
exactly; only run settings (``level_steps``, logging, device, the held-out folder) may change then.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import DataLoader

from nstcli import __version__, data, images
from nstcli.checkpoint import read_torch_file, write_torch_file
from nstcli.devices import resolve_device
from nstcli.errors import InputError, UsageError
from nstcli.settings import RUN, UniversalTrainConfig, check_ranges, check_types, roles
from nstcli.universal_net import LEVELS, SIZE_MULTIPLE, build_decoder, build_encoder

CHECKPOINT_FORMAT = "nst-universal"
CHECKPOINT_VERSION = 1
RUN_SETTINGS = roles(UniversalTrainConfig, RUN)


@dataclass
class LevelState:
    steps: int = 0
    seconds: float = 0.0  # time spent on this level's steps (forward, backward, update; not the shared encoder pass)


@dataclass
class UniversalProgress:
    step: int
    total: int
    losses: dict[str, float] | None  # per level, on logged steps


@dataclass
class UniversalResult:
    steps: list[int]
    seconds: float  # this invocation
    level_seconds: list[float]  # every invocation, per level
    encoder_seconds: float
    interrupted: bool
    checkpoint: str
    psnr: dict[str, float] = field(default_factory=dict)  # per level, on the held-out photos


def validate(config: UniversalTrainConfig) -> None:
    check_ranges(config)
    if len(config.level_steps) != len(LEVELS):
        raise UsageError(f"--level-steps needs {len(LEVELS)} step counts ({','.join(LEVELS)}), got {len(config.level_steps)}")
    if config.image_size % SIZE_MULTIPLE:
        raise UsageError(f"--image-size must be a multiple of {SIZE_MULTIPLE} for --arch universal")
    if not config.data:
        raise UsageError("--data is required (a folder of photos)")


def save(state: dict[str, Any], path: str | Path) -> None:
    write_torch_file({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **state}, path)


def load(path: str | Path) -> dict[str, Any]:
    """A universal checkpoint or trained file; InputError for anything else."""
    state = read_torch_file(path, "not an nst universal checkpoint")
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{path}: not an nst universal checkpoint (train one with nst train --arch universal)")
    if state.get("version") != CHECKPOINT_VERSION:
        raise InputError(f"{path}: universal checkpoint version {state.get('version')} is not supported")
    config = UniversalTrainConfig(**state["config"])
    check_types(config)
    state["config"] = config
    return state


def resume_config(saved: UniversalTrainConfig, given: dict[str, Any]) -> UniversalTrainConfig:
    """The checkpoint's config with the run settings given again; another value of any other setting is an error."""
    values = saved.to_dict()
    for name, value in given.items():
        if name not in RUN_SETTINGS and value != values[name]:
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} differs from the checkpoint's ({values[name]!r}); a resumed run keeps it")
        values[name] = value
    return UniversalTrainConfig(**values)


def decoders_from_state(state: dict[str, Any]) -> list[torch.nn.Module]:
    """The trained decoders of a checkpoint, in eval mode."""
    width = state["config"].width
    decoders = []
    for level in range(1, len(LEVELS) + 1):
        decoder = build_decoder(level, width)
        decoder.load_state_dict(state["decoders"][level - 1])
        decoders.append(decoder.eval())
    return decoders


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of images in 0..1 (``a`` clamped, as it would be saved)."""
    mse = torch.mean((a.clamp(0, 1) - b) ** 2).item()
    return 10 * math.log10(1 / max(mse, 1e-12))


def holdout_psnr(decoders: list[torch.nn.Module], folder: str, size: int, encoder=None) -> dict[str, float]:
    """Mean reconstruction PSNR of each level on the photos of ``folder`` (long side ``size``, padded to 8)."""
    from nstcli.generators import pad_to_multiple

    encoder = encoder or build_encoder()
    scan = data.scan_folder(folder)
    totals = np.zeros(len(decoders))
    with torch.no_grad():
        for path in scan.files:
            photo = images.to_tensor(images.resize_long_side(images.read_image(path), size))
            height, width = photo.shape[-2:]
            features = encoder(pad_to_multiple(photo, SIZE_MULTIPLE), len(decoders))
            for index, decoder in enumerate(decoders):
                totals[index] += psnr(decoder(features[index])[..., :height, :width], photo)
    return {LEVELS[index]: round(float(total) / len(scan.files), 2) for index, total in enumerate(totals)}


class UniversalTrainer:
    def __init__(self, config: UniversalTrainConfig, resume: dict[str, Any] | None = None):
        validate(config)
        self.config = config
        self.device = resolve_device(config.device)
        scan = data.scan_folder(config.data, config.max_images)
        self.fingerprint = scan.fingerprint(Path(config.data))
        self.dataset = data.ContentImages(scan.files, config.image_size, config.seed)
        torch.manual_seed(config.seed)
        self.encoder = build_encoder().to(self.device)
        self.decoders = [build_decoder(level, config.width).to(self.device) for level in range(1, len(LEVELS) + 1)]
        self.optimizers = [torch.optim.Adam(decoder.parameters(), lr=config.lr) for decoder in self.decoders]
        self.levels = [LevelState() for _ in LEVELS]
        self.step = 0
        self.items_seen = 0
        self.encoder_seconds = 0.0
        self.history: list[dict[str, float]] = []
        if resume is not None:
            self._load(resume)
        self.sampler = data.StreamSampler(len(self.dataset), config.seed, self.items_seen)

    def _load(self, state: dict[str, Any]) -> None:
        if state["fingerprint"] != self.fingerprint:
            raise InputError(f"{self.config.data}: the data folder changed since the checkpoint; resume needs the same files")
        for decoder, optimizer, weights, optimizer_state in zip(
            self.decoders, self.optimizers, state["decoders"], state["optimizers"]
        ):
            decoder.load_state_dict(weights)
            optimizer.load_state_dict(optimizer_state)
        self.levels = [LevelState(steps, seconds) for steps, seconds in zip(state["level_steps"], state["level_seconds"])]
        self.step, self.items_seen = state["step"], state["items_seen"]
        self.encoder_seconds = state["encoder_seconds"]
        self.history = list(state["history"])
        torch.set_rng_state(state["rng"])

    def state_dict(self) -> dict[str, Any]:
        return {
            "nst_version": __version__,
            "config": self.config.to_dict(),
            "decoders": [{key: value.detach().cpu() for key, value in d.state_dict().items()} for d in self.decoders],
            "optimizers": [optimizer.state_dict() for optimizer in self.optimizers],
            "level_steps": [level.steps for level in self.levels],
            "level_seconds": [level.seconds for level in self.levels],
            "encoder_seconds": self.encoder_seconds,
            "step": self.step,
            "items_seen": self.items_seen,
            "fingerprint": self.fingerprint,
            "history": self.history,
            "rng": torch.get_rng_state(),
        }

    def active(self) -> list[int]:
        """Indices of the levels that still have steps to go."""
        return [index for index, level in enumerate(self.levels) if level.steps < self.config.level_steps[index]]

    def train_step(self, batch: torch.Tensor) -> dict[str, float]:
        """One step of every active level on ``batch``; the loss of each."""
        active = self.active()
        started = time.perf_counter()
        with torch.no_grad():
            features = self.encoder(batch, max(active) + 1)
        self.encoder_seconds += time.perf_counter() - started
        losses = {}
        for index in active:
            started = time.perf_counter()
            target = features[index]
            output = self.decoders[index](target)
            loss = torch.nn.functional.mse_loss(output, batch)
            if self.config.feature_weight:
                rebuilt = self.encoder(output, index + 1)[-1]
                relative = torch.mean((rebuilt - target) ** 2) / torch.mean(target**2).clamp(min=1e-8)
                loss = loss + self.config.feature_weight * relative
            self.optimizers[index].zero_grad(set_to_none=True)
            loss.backward()
            self.optimizers[index].step()
            self.levels[index].steps += 1
            self.levels[index].seconds += time.perf_counter() - started
            losses[LEVELS[index]] = loss.item()
        return losses

    def run(self, output: Path, checkpoint: Path, on_progress: Callable[[UniversalProgress], None] | None = None) -> UniversalResult:
        from nstcli.train import _stop_on_signals  # the same Ctrl-C / SIGTERM handling as the other generators

        config = self.config
        loader = DataLoader(
            self.dataset, batch_size=config.batch_size, sampler=self.sampler, num_workers=config.workers,
            collate_fn=data.collate, worker_init_fn=data.ignore_stop_signals,
            generator=torch.Generator().manual_seed(config.seed), persistent_workers=config.workers > 0,
        )  # fmt: skip
        total = self.step + max((steps - level.steps for steps, level in zip(config.level_steps, self.levels)), default=0)
        start = time.perf_counter()
        interrupted = False
        running: dict[str, list[float]] = {}
        batches = iter(loader)
        with _stop_on_signals() as flag:
            while self.active():
                batch, _ = next(batches)
                for name, value in self.train_step(batch.to(self.device)).items():
                    running.setdefault(name, []).append(value)
                self.step += 1
                self.items_seen += batch.shape[0]
                logged = None
                if self.step % config.log_every == 0 or not self.active() or flag["stop"]:
                    logged = {name: sum(values) / len(values) for name, values in running.items()}
                    if not all(math.isfinite(value) for value in logged.values()):
                        raise InputError(f"training diverged by step {self.step} (a loss is NaN or infinite); lower --lr")
                    self.history.append({"step": self.step, **logged})
                    running = {}
                if flag["stop"]:
                    interrupted = True
                    save(self.state_dict(), checkpoint)
                    break
                if config.checkpoint_every and self.step % config.checkpoint_every == 0:
                    save(self.state_dict(), checkpoint)
                if on_progress is not None:
                    on_progress(UniversalProgress(self.step, total, logged))
        if not interrupted:
            save(self.state_dict(), output)
        result = UniversalResult(
            [level.steps for level in self.levels], time.perf_counter() - start, [level.seconds for level in self.levels],
            self.encoder_seconds, interrupted, str(checkpoint if interrupted else output),
        )  # fmt: skip
        if config.holdout and not interrupted:
            self.encoder.eval()
            result.psnr = holdout_psnr([decoder.eval() for decoder in self.decoders], config.holdout, config.eval_size, self.encoder)
        return result


def run_universal_train(config: UniversalTrainConfig, output: str | Path, resume: str | None = None,
                        given: dict[str, Any] | None = None, overwrite: bool = False,
                        on_progress: Callable[[UniversalProgress], None] | None = None) -> UniversalResult:  # fmt: skip
    """Train (or, with ``resume``, continue) the universal decoders; writes FILE.pt (and FILE.ckpt on the way,
    removed when the run finishes: FILE.pt holds the last step and resumes the same way)."""
    output = Path(output)
    if output.suffix != ".pt":
        raise UsageError(f"{output}: the decoders are written as FILE.pt")
    state = None
    if resume:
        state = load(resume)
        config = resume_config(state["config"], given or {})
    validate(config)
    checkpoint = output.with_suffix(".ckpt")
    resumed = Path(resume).resolve() if resume else None
    outputs = [path for path in (output, checkpoint) if path.resolve() != resumed]  # continuing in place replaces it
    images.check_outputs(outputs, [config.data], overwrite)
    result = UniversalTrainer(config, state).run(output, checkpoint, on_progress)
    if not result.interrupted:
        checkpoint.unlink(missing_ok=True)
    return result
