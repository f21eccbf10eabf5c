"""``nst bench``: the study's timing table for this machine, one row per method.

For each family (optimize, johnson, texture, stylebank, cin) it measures what the study reported:
- learning: seconds per training step per style at ``batch_size`` and the total time of a short
  training run of ``train_steps`` steps (set-up included), and whether a new style can be added
  incrementally (without retraining the rest of the model);
- generating: seconds per ``size`` x ``size`` image (Gatys: a whole optimisation of ``iterations``
  descriptor evaluations; generators: one forward pass, median of ``repeats``).

Everything runs on synthetic images (a generated folder of photos and a generated style), so the
figures depend only on the machine, the device and the settings.
"""

from __future__ import annotations

import platform
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from nstcli import generators, images
from nstcli.errors import reject_first
from nstcli.devices import resolve_device, synchronize
from nstcli.optimize import run_optimize
from nstcli.settings import MULTI_STYLE_ARCHS, OptimizeConfig, TrainConfig
from nstcli.train import run_train
from nstcli.train_plan import TrainPlan

INCREMENTAL = dict.fromkeys(MULTI_STYLE_ARCHS, True)  # multi-style models add a style by training only its own parameters
FAMILY = dict.fromkeys(MULTI_STYLE_ARCHS, "one model, many styles")


@dataclass
class BenchConfig:
    size: int = 256  # generated images are size x size (the study: 256)
    iterations: int = 10  # Gatys: descriptor evaluations per image
    train_size: int = 128  # training crops (the study: 256)
    batch_size: int = 4
    train_steps: int = 5  # the "short run"
    repeats: int = 3  # generator forward passes timed (median)
    arches: list[str] = field(default_factory=lambda: list(generators.ARCHS))
    device: str = "auto"
    precision: str = "auto"


@dataclass
class BenchRow:
    family: str
    method: str
    seconds_per_step_per_style: float | None  # None: no training (Gatys)
    training_seconds: float | None
    incremental: bool | None  # None: nothing to add a style to
    seconds_per_image: float


@dataclass
class BenchReport:
    device: str  # the card (or CPU) name
    settings: dict
    rows: list[BenchRow]

    def to_dict(self) -> dict:
        return asdict(self)


def validate(config: BenchConfig) -> None:
    checks = {
        "--size must be at least 32": config.size < 32,
        "--iterations must be at least 1": config.iterations < 1,
        "--train-size must be at least 32": config.train_size < 32,
        "--batch-size must be at least 1": config.batch_size < 1,
        "--train-steps must be at least 2": config.train_steps < 2,
        "--repeats must be at least 1": config.repeats < 1,
    }
    reject_first(checks)
    for name in config.arches:
        generators.arch(name)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")] \
        if cpuinfo.exists() else []  # fmt: skip
    name = names[0] if names else platform.processor() or platform.machine()
    return f"CPU {name} ({torch.get_num_threads()} threads)"


def _synthetic(size: int, seed: int) -> Image.Image:
    """Smooth colour fields with noise: stands in for photos and paintings (speed does not depend on content)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    phase = rng.random(3) * 6
    array = 0.5 + 0.4 * np.sin(np.stack([x * 5 + phase[0], y * 7 + phase[1], (x + y) * 3 + phase[2]], -1))
    array += rng.normal(0, 0.05, array.shape)
    return images.from_array(array.astype(np.float32))


def bench_optimize(config: BenchConfig) -> BenchRow:
    """One scale at the benchmark size: the study times evaluations at that size, not a schedule."""
    content, style = _synthetic(config.size, 0), _synthetic(config.size, 1)
    run = OptimizeConfig(size=config.size, min_size=config.size, iterations=config.iterations, device=config.device,
                         precision=config.precision, seed=0)  # fmt: skip
    run_optimize(content, [style], replace(run, iterations=2))  # warm-up: weights, kernels
    result = run_optimize(content, [style], run)
    return BenchRow("image optimisation", "gatys", None, None, None, result.seconds)


def bench_arch(config: BenchConfig, arch: str, folder: Path) -> BenchRow:
    device = resolve_device(config.device)
    data = folder / "photos"
    data.mkdir(exist_ok=True)
    for index in range(max(8, config.batch_size)):
        _synthetic(config.train_size + 16, 10 + index).save(data / f"{index}.png")
    style = folder / "style.png"
    _synthetic(config.train_size, 2).save(style)
    train = TrainConfig(
        style=[str(style)], data=str(data), arch=arch, image_size=config.train_size, batch_size=config.batch_size,
        steps=config.train_steps, workers=0, device=config.device, precision=config.precision, log_every=1,
        checkpoint_every=0,
    )  # fmt: skip
    stamps: list[float] = []
    start = time.perf_counter()
    run_train(TrainPlan(train, folder / f"{arch}.pt"), on_progress=lambda progress: stamps.append(time.perf_counter()))
    total = time.perf_counter() - start
    # the first step pays for warm-up (allocator, autotuning); log_every=1 syncs the device every step
    per_step = statistics.median(b - a for a, b in zip(stamps, stamps[1:]))
    styles = len(train.style_names())
    return BenchRow(FAMILY.get(arch, "one model, one style"), arch, per_step / styles, total,
                    INCREMENTAL.get(arch, False), _generation_seconds(config, arch, device))  # fmt: skip


def _generation_seconds(config: BenchConfig, arch: str, device: torch.device) -> float:
    options = generators.make_options(arch, {})
    model = generators.build_generator(arch, options).to(device).eval()
    image = images.to_tensor(_synthetic(config.size, 3)).to(device)
    times = []
    with torch.no_grad():
        for attempt in range(config.repeats + 1):
            synchronize(device)
            start = time.perf_counter()
            generators.stylise(model, image, options.size_multiple())
            synchronize(device)
            if attempt:  # the first pass is warm-up
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_bench(config: BenchConfig, on_step: Callable[[str], None] | None = None) -> BenchReport:
    """Time every family; ``on_step(name)`` is called before each measurement."""
    validate(config)
    device = resolve_device(config.device)
    rows = []
    if on_step:
        on_step(f"gatys: {config.iterations} evaluations at {config.size}x{config.size}")
    rows.append(bench_optimize(config))
    with tempfile.TemporaryDirectory(prefix="nst-bench-") as folder:
        for arch in config.arches:
            if on_step:
                on_step(f"{arch}: {config.train_steps} steps at batch {config.batch_size}, {config.train_size} px")
            rows.append(bench_arch(config, arch, Path(folder)))
    return BenchReport(device_name(device), asdict(config), rows)


def format_table(report: BenchReport) -> str:
    """The study's table as aligned text."""
    s = report.settings
    header = ["family", "method", f"s/step/style (batch {s['batch_size']}, {s['train_size']} px)",
              f"training s ({s['train_steps']} steps)", "incremental", f"s/image ({s['size']}x{s['size']})"]  # fmt: skip
    lines = [header]
    for row in report.rows:
        step = "-" if row.seconds_per_step_per_style is None else f"{row.seconds_per_step_per_style:.3f}"
        total = "-" if row.training_seconds is None else f"{row.training_seconds:.1f}"
        incremental = "-" if row.incremental is None else ("yes" if row.incremental else "no")
        image = f"{row.seconds_per_image:.3f}"
        if row.method == "gatys":
            image += f" ({s['iterations']} evals)"
        lines.append([row.family, row.method, step, total, incremental, image])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines]
    return "\n".join([f"device: {report.device}", *text])
