"""The ``nst`` command line: parse flags, call an engine, print. Nothing else lives here.

Engines (and torch) are imported inside each command so ``nst --help`` starts fast.
stdout carries only data (images, JSON); messages and progress go to stderr.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
import threading
import time
import warnings
from contextlib import contextmanager, suppress
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional

try:  # Typer >= 0.25 vendors Click; older releases use the click package
    from typer._click import exceptions as click_errors
except ImportError:
    from click import exceptions as click_errors
import typer

from nstcli import __version__, extras, settings
from nstcli.model_format import UNIVERSAL_STYLE_SIZE
from nstcli.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, NstError, UsageError
from nstcli.options import number_option, replace_deprecated, setting_option
from nstcli.settings import (
    PANEL_GENERATOR, PANEL_IO, PANEL_LOGGING, OptimizeConfig, TrainConfig, UniversalTrainConfig, parse_list,
)  # fmt: skip

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from nstcli.optimize import Progress as OptimizeProgress

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    help="Neural style transfer: optimise images (Gatys), train and apply feed-forward generators.",
)
PANEL_SWEEP = "Sweeps"  # nst optimize --sweep
PANEL_STYLE = "Style"  # nst apply: which style, how strong
PANEL_SPEED = "Size and speed"  # nst apply: tiling, runtime, threads
PANEL_CLUSTER = "Cluster"  # nst apply --ray
PANEL_ANY_STYLE = "Any painting"  # nst apply --style-image: universal style transfer


def one_line(message: str) -> str:
    """A message as one line: a newline inside it (from a file name) is shown as \\n."""
    return message.replace("\r", "\\r").replace("\n", "\\n")


@functools.cache
def terminal_console() -> Console:
    """rich's console on stderr, made only for a terminal: importing rich is 16 ms of every start."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def say(message: str, quiet: bool = False) -> None:
    """One message on stderr, one line (never wrapped); on a terminal through rich, above a live progress bar."""
    if quiet:
        return
    if sys.stderr.isatty():
        terminal_console().print(one_line(message), markup=False, soft_wrap=True)
    else:
        print(one_line(message), file=sys.stderr, flush=True)


PLAIN_PROGRESS_SECONDS = 5.0  # between progress lines when stderr is not a terminal (logs, CI)
WORK_STEPS = 1000  # an optimisation's progress bar counts its work in thousandths (optimize_reporter)


class ProgressLines:
    """Progress as plain lines on stderr, at most one every ``PLAIN_PROGRESS_SECONDS``: what a script's
    log or a CI job shows where a live bar would print nothing. Takes the calls of rich's ``Progress``."""

    task_ids = [0]

    def __init__(self, description: str, total: int, counts: bool = True):
        self.description, self.total, self.completed, self.status = description, total, 0, ""
        self.counts = counts
        self.start = time.monotonic()
        self.last_line = self.start

    def update(self, task_id: int, *, total: int | None = None, completed: int | None = None,
               description: str | None = None, status: str | None = None) -> None:  # fmt: skip
        self.total = self.total if total is None else total
        self.completed = self.completed if completed is None else completed
        self.description = description or self.description
        self.status = self.status if status is None else status
        now = time.monotonic()
        if now - self.last_line >= PLAIN_PROGRESS_SECONDS:
            self.last_line = now
            say(self.line(now - self.start))

    def line(self, elapsed: float) -> str:
        if not self.counts:
            parts = [self.description]
        elif self.total:
            parts = [f"{self.description} {self.completed}/{self.total}"]
        else:
            parts = [f"{self.description} {self.completed}"]
        if self.status:
            parts.append(self.status)
        parts.append(f"{elapsed:.0f} s")
        if self.total and 0 < self.completed < self.total:
            parts[-1] += f", ~{elapsed * (self.total - self.completed) / self.completed:.0f} s left"
        return "  ".join(parts)


@contextmanager
def progress_bar(description: str, total: int, quiet: bool, lines: bool = True, counts: bool = True) -> Iterator[Progress | ProgressLines | None]:
    """A rich progress bar on stderr when it is a terminal; else, with ``lines``, a plain line every
    few seconds; nothing with --quiet. ``counts``: show done/total (else the status says what is counted)."""
    if quiet or not sys.stderr.isatty():
        yield ProgressLines(description, total, counts) if lines and not quiet else None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (
        TextColumn("{task.description}"), BarColumn(), *([MofNCompleteColumn()] if counts else []),
        TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn(),
    )  # fmt: skip
    with Progress(*columns, console=terminal_console(), transient=False) as progress:
        progress.add_task(description, total=total, status="")
        yield progress


def optimize_reporter(bar: Progress | ProgressLines | None) -> Callable[[OptimizeProgress], None]:
    """An optimisation's progress on ``bar``, whose total is WORK_STEPS: the bar and its time left follow the work
    (each evaluation weighted by its scale's pixels), the status counts the evaluations."""
    latest: dict[str, float] = {}  # the losses are reported every few evaluations

    def on_progress(step: OptimizeProgress) -> None:
        if bar is None:
            return
        latest.update(step.losses or {})
        loss = f"  loss {latest['total']:.4g}" if latest else ""
        status = f"{step.evaluation}/{step.total}  {step.size[0]}x{step.size[1]}{loss}"
        bar.update(bar.task_ids[0], completed=round(step.work * WORK_STEPS), status=status)

    return on_progress


def version_callback(value: bool) -> None:
    if value:
        print(f"nst {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=version_callback, is_eager=True, help="Print version."),
) -> None:
    """Neural style transfer from the command line."""


def output_or_stdout(output: str | None, inputs: list[str], kinds: str) -> str:
    """-o as given; left out, stdout when the one input is stdin, as a filter: cat in.png | nst ... - > out.png.
    ``kinds``: what -o may name, for the message when it is missing. Image bytes are not written to a terminal."""
    if output is None and inputs != ["-"]:
        raise UsageError(f"give -o: {kinds}, or - for stdout")
    output = "-" if output is None else output
    if output == "-" and sys.stdout.isatty():
        raise UsageError("stdout is a terminal, not a place for image bytes: redirect it (> out.png), pipe it, or give -o FILE")
    return output


@app.command(rich_help_panel="Stylise")
def optimize(
    ctx: typer.Context,
    content: str = typer.Argument(..., metavar="CONTENT", help="Content image (path, or - for stdin)."),
    styles: list[str] = typer.Argument(..., metavar="STYLE...", help="One or more style images (or bundled styles with an image: nst styles)."),
    output: Optional[str] = typer.Option(
        None, "-o", "--output", help="Output image (.png, .jpg, .webp; - for stdout, the default when CONTENT is -).",
        rich_help_panel=PANEL_IO,
    ),
    size: int = setting_option(OptimizeConfig, "size"),
    style_crop: float = setting_option(OptimizeConfig, "style_crop"),
    preserve_color: Optional[str] = setting_option(OptimizeConfig, "preserve_color"),
    style_mask: Optional[list[str]] = typer.Option(
        None, "--style-mask", help="Region of each style, one per style image in order (white = apply).", rich_help_panel=PANEL_IO
    ),
    content_mask: Optional[str] = typer.Option(
        None, help="Protected region (white = keep the content, no style).", rich_help_panel=PANEL_IO
    ),
    image_format: Optional[str] = typer.Option(None, "--format", help="Output format (default: by suffix).", rich_help_panel=PANEL_IO),
    quality: int = number_option(95, low=1, high=100, help="JPEG/WebP quality.", rich_help_panel=PANEL_IO),
    overwrite: bool = typer.Option(False, help="Replace an existing output file.", rich_help_panel=PANEL_IO),
    content_weight: float = setting_option(OptimizeConfig, "content_weight"),
    style_weight: float = setting_option(OptimizeConfig, "style_weight"),
    tv_weight: float = setting_option(OptimizeConfig, "tv_weight"),
    style_blend: Optional[str] = setting_option(OptimizeConfig, "style_blend"),
    style_scale: float = setting_option(OptimizeConfig, "style_scale"),
    style_orientations: Optional[str] = setting_option(OptimizeConfig, "style_orientations"),
    style_loss: str = setting_option(OptimizeConfig, "style_loss"),
    style_tiles: int = setting_option(OptimizeConfig, "style_tiles"),
    content_layer_weights: Optional[str] = setting_option(OptimizeConfig, "content_layer_weights"),
    style_layer_weights: Optional[str] = setting_option(OptimizeConfig, "style_layer_weights"),
    net: str = setting_option(OptimizeConfig, "net"),
    weights: Optional[str] = setting_option(OptimizeConfig, "weights"),
    pooling: str = setting_option(OptimizeConfig, "pooling"),
    padding: str = setting_option(OptimizeConfig, "padding"),
    content_layers: Optional[str] = setting_option(OptimizeConfig, "content_layers"),
    style_layers: Optional[str] = setting_option(OptimizeConfig, "style_layers"),
    init: str = setting_option(OptimizeConfig, "init"),
    noise_ratio: float = setting_option(OptimizeConfig, "noise_ratio"),
    seed: Optional[int] = setting_option(OptimizeConfig, "seed"),
    optimizer: str = setting_option(OptimizeConfig, "optimizer"),
    average: float = setting_option(OptimizeConfig, "average"),
    lr: Optional[float] = setting_option(OptimizeConfig, "lr"),
    iterations: int = setting_option(OptimizeConfig, "iterations"),
    min_size: int = setting_option(OptimizeConfig, "min_size"),
    device: str = setting_option(OptimizeConfig, "device"),
    precision: str = setting_option(OptimizeConfig, "precision"),
    save_every: int = number_option(0, low=0, high=1_000_000, help="Also write a snapshot every N evaluations (-o out.jpg: out.00050.jpg, ...).", rich_help_panel=PANEL_LOGGING),
    loss_log: Optional[str] = typer.Option(None, help="Write losses per evaluation to FILE.csv or FILE.json.", rich_help_panel=PANEL_LOGGING),
    plot: Optional[str] = typer.Option(None, help="Write loss curves to FILE.png.", rich_help_panel=PANEL_LOGGING),
    save_config: Optional[str] = typer.Option(None, help="Write the resolved configuration to FILE.json.", rich_help_panel=PANEL_LOGGING),
    sweep: Optional[list[str]] = typer.Option(
        None, help="Vary a flag, e.g. style-weight=1e2,1e3 (repeat: all combinations); -o is then a contact sheet.",
        rich_help_panel=PANEL_SWEEP,
    ),
    judge_size: int = number_option(256, low=16, high=4096, help="With --sweep: long side at which each result is scored.", rich_help_panel=PANEL_SWEEP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or messages on stderr."),
) -> None:
    """Optimise an image against content and style losses (Gatys et al.)."""
    extras.require_torch("optimize")
    output = output_or_stdout(output, [content], "an output image")
    config = settings.from_flags(OptimizeConfig, ctx.params)
    settings.check_ranges(config)  # before an engine (and torch) is imported: a typo is refused at once
    config = replace(config, style_masks=style_mask or None, content_mask=content_mask)
    from nstcli import optimize_plan
    from nstcli.devices import keep_freed_memory

    keep_freed_memory()

    if sweep:
        if save_every or loss_log or plot or output == "-":
            raise UsageError("--sweep writes a contact sheet to -o FILE.png; --save-every, --loss-log, --plot do not apply")
        _optimize_sweep(config, sweep, content, styles, output, judge_size, save_config, overwrite, quiet)
        return
    plan = optimize_plan.plan_optimize(
        config, content, styles, output, image_format=image_format, quality=quality, save_every=save_every,
        loss_log=loss_log, plot=plot, save_config=save_config, overwrite=overwrite,
    )  # fmt: skip
    with progress_bar("optimize", WORK_STEPS, quiet, counts=False) as bar:
        result = optimize_plan.run_plan(plan, optimize_reporter(bar))
    where = "stdout" if output == "-" else output
    say(f"wrote {where} ({result.image.width}x{result.image.height}) in {result.seconds:.1f} s", quiet)


def _optimize_sweep(config, sweep: list[str], content: str, styles: list[str], output: str, judge_size: int,
                    save_config: Optional[str], overwrite: bool, quiet: bool) -> None:  # fmt: skip
    """``nst optimize --sweep``: every combination, a contact sheet at ``output`` and a CSV beside it."""
    from nstcli import images, optimize, optimize_plan, sweep as sweep_engine

    optimize.validate(config)
    plan = sweep_engine.plan_sweep(config, sweep_engine.parse_axes(sweep), output)
    inputs = optimize_plan.read_inputs(config, content, styles)
    images.check_outputs(plan.outputs() + ([save_config] if save_config else []), inputs.paths, overwrite)
    if save_config:
        axes = {axis.flag: axis.texts for axis in plan.axes}
        images.write_bytes_atomic(json.dumps({"config": config.to_dict(), "sweep": axes}, indent=1).encode(), save_config)

    def on_run(index: int, run: sweep_engine.PlannedRun) -> None:
        say(f"run {index}/{len(plan.runs)}: {' '.join(f'{k}={v}' for k, v in run.settings.items())}", quiet)

    def on_done(row: sweep_engine.SweepRow) -> None:
        losses = "  ".join(f"{key} {value:.4g}" for key, value in row.losses.items())
        say(f"  wrote {row.path} in {row.seconds:.1f} s; judged {losses}", quiet)

    title = f"{Path(content).name} + {', '.join(Path(s).name for s in styles)}: size {config.size}, " \
            f"{config.iterations} evaluations, judged at {judge_size} px"  # fmt: skip
    sweep_engine.run_sweep(plan, inputs.content, inputs.styles, judge_size, inputs.start_image(config), **inputs.masks(),
                           on_run=on_run, on_done=on_done, title=title)  # fmt: skip
    say(f"wrote {plan.sheet} and {plan.csv} ({len(plan.runs)} runs)", quiet)


@app.command(rich_help_panel="Measure")
def score(
    content: str = typer.Argument(..., metavar="CONTENT", help="Content image."),
    style: str = typer.Argument(..., metavar="STYLE", help="Style image, or a bundled style's name (one that ships its image)."),
    image: str = typer.Argument(..., metavar="IMAGE", help="Image to judge (e.g. a stylised result)."),
    size: int = number_option(512, low=16, high=8192, help="Long side at which all three are compared."),
    grid: int = number_option(4, low=1, high=16, help="Coverage: the style loss per tile of a GRID x GRID split."),
) -> None:
    """Print the judged losses (content at relu4_2, Gram style at relu1_1..relu5_1) and the style's coverage as JSON."""
    extras.require_torch("score")
    from nstcli import images, optimize as optimize_engine, styles

    if [content, style, image].count(images.STDIO) > 1:
        raise UsageError("only one input can be read from stdin")
    style_image = images.read_image(styles.style_image_or_file(style))
    result = optimize_engine.score(images.read_image(content), style_image, images.read_image(image), size, grid)
    print(json.dumps(result))


@app.command(rich_help_panel="Stylise")
def demo(
    output: str = typer.Option("demo.png", "-o", "--output", help="Output image."),
    style: str = typer.Option("starry-night", help="A bundled style with a model (see nst styles)."),
    size: Optional[int] = number_option(None, low=16, high=2048, help="Output long side in pixels (default 768; with --optimize 256)."),
    optimize: bool = typer.Option(False, "--optimize", help="Gatys optimisation against the bundled swirls style image instead (needs the torch extra)."),
    iterations: Optional[int] = number_option(None, low=1, high=100_000, help="With --optimize: budget in descriptor evaluations (default 100)."),
    overwrite: bool = typer.Option(False, help="Replace an existing output file."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No messages on stderr."),
) -> None:
    """Stylise a generated landscape with a bundled style: a one-command check that nst works (no torch needed)."""
    from nstcli import demo as demo_engine, images

    if optimize:
        extras.require_torch("demo --optimize")
    elif iterations is not None:
        raise UsageError("--iterations counts the evaluations of --optimize; the default demo runs a trained model")
    size = size or (256 if optimize else 768)
    images.format_for(output)
    images.check_output_path(output, [], overwrite)
    if optimize:
        iterations = 100 if iterations is None else iterations
        with progress_bar("demo", WORK_STEPS, quiet, counts=False) as bar:
            result = demo_engine.run_optimize_demo(size, iterations, optimize_reporter(bar))
        what = f"{iterations} evaluations against the {demo_engine.DEMO_STYLE} style image"
    else:
        result = demo_engine.run_demo(size, style)
        what = f"the bundled {style} model"
    images.write_image(result.image, output)
    say(f"wrote {output} ({result.image.width}x{result.image.height}, {what}) in {result.seconds:.1f} s", quiet)


@app.command(rich_help_panel="Stylise")
def apply(
    paths: list[str] = typer.Argument(
        ...,
        metavar="[MODEL.onnx] INPUTS...",
        help="An nst ONNX model (from nst export; leave out for a bundled --style), then images, videos, folders "
        "(recursive), globs, or - for stdin.",
    ),
    output: Optional[str] = typer.Option(
        None, "-o", "--output", help="Output folder (mirrors the input tree), FILE for one input, or - for stdout (the "
        "default when the input is -).", rich_help_panel=PANEL_IO,
    ),
    name: str = typer.Option("{stem}.{ext}", help="Output file name: {stem} (the input's name without suffix), {ext} (the output's suffix), {name} (the input's "
        "whole name), {style} (the style's name; a30+b70 for a mix, a+b for regions or paintings), {model} (the model file's stem).",
        rich_help_panel=PANEL_IO),
    image_format: Optional[str] = typer.Option(
        None, "--format", help="png, jpg, webp, bmp, tiff for images; mp4, mkv, mov, webm, avi for videos (default: the input's).",
        rich_help_panel=PANEL_IO,
    ),
    quality: int = number_option(95, low=1, high=100, help="JPEG/WebP quality.", rich_help_panel=PANEL_IO),
    style: Optional[str] = typer.Option(None, help="A bundled style's name (see nst styles), or a style of a multi-style model file: its name or index.", rich_help_panel=PANEL_STYLE),
    mix: Optional[str] = typer.Option(None, help="Blend styles of a multi-style model (or bundled ones), e.g. a=0.5,b=0.5.", rich_help_panel=PANEL_STYLE),
    region: Optional[list[str]] = typer.Option(
        None,
        help="Region fusion: NAME=MASK.png paints style NAME where the mask is white (repeat); one bare NAME takes "
        "the rest. With --style-image, NAME is a painting's file name without its suffix (fused per region in feature space).",
        rich_help_panel=PANEL_STYLE,
    ),
    kind: Optional[str] = typer.Option(
        None, help="Bundled styles: stylebank (default; one model, mixable), johnson, or universal (the painting's "
        "statistics through --style-image's models; --levels and --strength apply).",
        rich_help_panel=PANEL_STYLE,
    ),
    style_image: Optional[list[str]] = typer.Option(
        None, help="Any painting, in one pass (universal style transfer, Li et al. 2017); repeat to blend several. Also a "
        "painting's statistics file (.npz, as the bundled styles ship for --kind universal). A painting is measured "
        "once and kept for later runs in ~/.cache/nst/paintings (NST_CACHE_DIR moves it; empty: off).",
        rich_help_panel=PANEL_ANY_STYLE,
    ),
    style_blend: Optional[str] = typer.Option(
        None, help="--style-image: weights of the paintings, e.g. 0.7,0.3 (default: equal).", rich_help_panel=PANEL_ANY_STYLE
    ),
    levels: Optional[str] = typer.Option(
        None, help="--style-image, --kind universal: feature levels, 4 (relu4_1, coarsest) to 1 (default: 3,2,1; 4,3,2,1 is more abstract; 3,1 "
        "is faster).",
        rich_help_panel=PANEL_ANY_STYLE,
    ),
    style_size: Optional[int] = number_option(
        None, low=64, high=4096, help=f"--style-image: long side the paintings are measured at (default {UNIVERSAL_STYLE_SIZE}).",
        rich_help_panel=PANEL_ANY_STYLE,
    ),
    universal_model: Optional[str] = typer.Option(
        None, help="--style-image, --kind universal: folder of universal models (from nst export; default: the bundled one).",
        rich_help_panel=PANEL_ANY_STYLE,
    ),
    int8: Optional[bool] = typer.Option(
        None, "--int8/--no-int8", help="--style-image, --kind universal: on the CPU, compute the encoder stages in int8 where "
        "the folder has int8 copies (default; the bundled: relu2_1 and relu3_1; a 512 px run 0.86-0.89x as long, 34-46 "
        "dB from float32's result); --no-int8: float32.",
        rich_help_panel=PANEL_ANY_STYLE,
    ),
    strength: float = number_option(1.0, low=0, high=1, help="1 = fully stylised, 0 = the input (a model's output blended with the photo; with --style-image and --kind universal the features are blended, so 0 is the photo through the decoders, not the photo itself).", rich_help_panel=PANEL_STYLE),
    preserve_color: Optional[str] = typer.Option(None, help="Keep the input's colours: luminance or histogram.", rich_help_panel=PANEL_STYLE),
    temporal: str = typer.Option(
        "flow", help="Videos: flow (carry the last frame along the motion), blend (with the last frame) or off.",
        rich_help_panel=PANEL_STYLE,
    ),
    temporal_weight: float = number_option(
        0.6, low=0, high=1, help="Videos: the last frame's share where it carries over (0..1).", rich_help_panel=PANEL_STYLE
    ),
    max_size: Optional[int] = number_option(None, low=16, high=65536, help="Downscale inputs whose long side is larger.", rich_help_panel=PANEL_SPEED),
    tile: Optional[int] = number_option(None, low=0, high=65536, help="Tile size in px for large images (default: auto above 4 MP; 0 = off).", rich_help_panel=PANEL_SPEED),
    tile_overlap: Optional[int] = number_option(None, low=0, high=4096, help="Overlap of neighbouring tiles in px (default 64, or less than half of a smaller --tile).", rich_help_panel=PANEL_SPEED),
    provider: str = typer.Option("auto", help="auto (TensorRT > CUDA > CPU), tensorrt, cuda or cpu.", rich_help_panel=PANEL_SPEED),
    threads: int = number_option(0, low=0, high=1024, help="onnxruntime threads (0 = its default).", rich_help_panel=PANEL_SPEED),
    batch_size: int = number_option(0, low=0, high=1024, help="Images of equal size per inference batch (0 = auto: GPU 8, CPU 1).", rich_help_panel=PANEL_SPEED),
    workers: int = number_option(2, low=1, high=64, help="Decode threads and encode threads (each).", rich_help_panel=PANEL_SPEED),
    skip_existing: bool = typer.Option(False, help="Skip inputs whose output exists (resume a killed run).", rich_help_panel=PANEL_IO),
    overwrite: bool = typer.Option(False, help="Replace existing outputs.", rich_help_panel=PANEL_IO),
    shard: Optional[str] = typer.Option(None, help="Process only part I of N (e.g. 2/4), the same split on every machine.", rich_help_panel=PANEL_IO),
    fail_fast: bool = typer.Option(False, help="Stop at the first failed input.", rich_help_panel=PANEL_IO),
    json_summary: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout.", rich_help_panel=PANEL_IO),
    ray: Optional[str] = typer.Option(
        None, "--ray", metavar="local|auto|ADDRESS",
        help="Run on a Ray cluster, one model per CPU: local (start one here), auto (the cluster this machine "
        "is in) or its address. Images only; every node needs nst\\[ray] and the inputs and -o at the same paths.",
        rich_help_panel=PANEL_CLUSTER,
    ),  # fmt: skip
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or messages on stderr (errors still shown)."),
) -> None:
    """Stylise images with an exported model or a bundled style (onnxruntime; no torch needed)."""
    if ray is not None:
        extras.require_ray("apply --ray")
    from nstcli import regions
    from nstcli.apply.bundled import UNIVERSAL_KIND, resolve_model, resolve_universal, resolve_universal_styles
    from nstcli.apply.config import ApplyConfig, Progress, parse_mix, parse_shard
    from nstcli.apply.pipeline import run_apply

    mix_weights = parse_mix(mix) if mix else None
    region_specs = [regions.split_region(text) for text in region] if region else None
    blend = parse_list(style_blend, float, "--style-blend")
    if style_image:
        resolved = resolve_universal(paths, universal_model, style, region_specs, kind)
    elif kind == UNIVERSAL_KIND:
        resolved = resolve_universal_styles(paths, universal_model, style, mix_weights, region_specs, blend)
        mix_weights, blend = None, resolved.style_blend
    elif universal_model or style_size is not None or int8 is not None:
        flag = "--universal-model" if universal_model else "--style-size" if style_size is not None else "--int8/--no-int8"
        raise UsageError(f"{flag} goes with --style-image or --kind universal")
    else:
        resolved = resolve_model(paths, style, mix_weights, region_specs, kind)
    output = output_or_stdout(output, resolved.inputs, "an output folder, or a file for one input")
    if json_summary and output == "-":
        raise UsageError("--json and -o - both want stdout; write the image to a file")
    config = ApplyConfig(
        model=resolved.model, inputs=resolved.inputs, output=output, name=name, image_format=image_format,
        quality=quality, provider=provider, threads=threads, batch_size=batch_size, workers=workers,
        max_size=max_size, tile=tile, tile_overlap=tile_overlap, preserve_color=preserve_color, strength=strength,
        style=resolved.style, mix=mix_weights, regions=resolved.regions, skip_existing=skip_existing,
        overwrite=overwrite, shard=parse_shard(shard) if shard else None, fail_fast=fail_fast, temporal=temporal,
        temporal_weight=temporal_weight, measure_flicker=json_summary, style_images=style_image or resolved.style_images,
        style_blend=blend, levels=parse_list(levels, int, "--levels"),
        style_size=style_size or UNIVERSAL_STYLE_SIZE, int8=int8 is not False,
    )  # fmt: skip
    with progress_bar("apply", 0, quiet) as bar:

        def on_progress(progress: Progress) -> None:
            if bar is None:
                return
            if progress.frame_total or progress.frames:  # a video: frames, fps and (the bar's) ETA
                bar.update(bar.task_ids[0], total=progress.frame_total or None, completed=progress.frames,
                           description=Path(progress.last).name, status=f"{progress.frames_per_second:.1f} fps")  # fmt: skip
                return
            done, rate = progress.written + progress.failed, progress.images_per_second
            bar.update(bar.task_ids[0], total=progress.total, completed=done, description="apply", status=f"{rate:.1f} img/s")

        def on_failure(message: str) -> None:  # one input failed: the run goes on (or stops, --fail-fast)
            say(f"nst: error: {message}")

        if ray is None:
            summary = run_apply(config, on_progress, on_failure, on_warning=lambda m: say(f"nst: warning: {m}"))
        else:
            from nstcli.apply.ray_runner import run_apply_ray

            summary = run_apply_ray(config, ray, on_progress, on_failure)
    if json_summary:
        print(json.dumps(summary.to_dict()))
    parts = [f"{summary.written} written", f"{summary.skipped} skipped", f"{summary.failed} failed"]
    say(f"{', '.join(parts)} in {summary.seconds:.1f} s ({summary.images_per_second:.2f} img/s, {summary.provider})", quiet)
    if summary.failed:
        raise typer.Exit(1)


@app.command("styles", rich_help_panel="Stylise")
def styles_command(json_output: bool = typer.Option(False, "--json", help="Print the presets as JSON.")) -> None:
    """List the bundled styles: name, title, artist, year, and the kinds of model each has."""
    from nstcli import styles

    rows = [
        {"name": preset.name, "title": preset.title, "artist": preset.artist, "year": preset.year,
         "models": list(preset.models), "image": preset.image is not None}
        for preset in styles.list_presets()
    ]  # fmt: skip
    if json_output:
        print(json.dumps(rows, indent=1))
        return
    table = [
        [row["name"], row["title"], row["artist"], row["year"], ", ".join(row["models"] + ["image"] * row["image"])]
        for row in rows
    ]
    widths = [max(len(cells[column]) for cells in table) for column in range(4)]
    for cells in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(cells, widths)), cells[4], sep="  ")


@app.command(rich_help_panel="Measure")
def info(json_output: bool = typer.Option(False, "--json", help="Print the report as JSON.")) -> None:
    """Versions, the onnxruntime providers that actually load here, devices, and the commands this install runs."""
    from nstcli.apply.environment import environment_report

    report = environment_report()
    if json_output:
        print(json.dumps(report, indent=1))
    else:
        for key, value in report.items():
            text = (", ".join(map(str, value)) or "none") if isinstance(value, list) else value
            print(f"{key:22} {text}")
    if "problem" in report:
        say(f"nst: warning: {report['problem']}")


# Generator options (nstcli.generators: each architecture's options dataclass holds the defaults):
# flag name -> option name in that dataclass.
ARCH_FLAGS = {
    "width": "width", "residual_blocks": "residual_blocks", "upsample": "upsample", "texture_scales": "scales",
    "channels": "channels", "noise_channels": "noise_channels", "bank_layers": "bank_layers",
    "output_kernel": "output_kernel", "decoder_width": "decoder_width", "norm": "norm",
}  # fmt: skip


@app.command(rich_help_panel="Train and export")
def train(
    ctx: typer.Context,
    output: str = typer.Option(..., "-o", "--output", help="Trained model, FILE.pt (checkpoints: FILE.ckpt).", rich_help_panel=PANEL_IO),
    style: Optional[list[str]] = setting_option(TrainConfig, "style"),
    data: Optional[str] = setting_option(TrainConfig, "data"),
    resume: Optional[str] = typer.Option(None, help="Continue from a checkpoint (or a trained model) exactly.", rich_help_panel=PANEL_IO),
    add_style: Optional[list[str]] = typer.Option(
        None, help="stylebank, cin, with --resume MODEL.pt: add a style NAME=IMAGE, training only its new bank "
        "(cin: its norm scales and shifts) (repeat).",
        rich_help_panel=PANEL_IO,
    ),
    tune_style: Optional[list[str]] = typer.Option(
        None,
        help="stylebank, cin, with --resume MODEL.pt: train style NAME's own parameters further, the rest frozen (repeat; "
        "--style-blend: their new style weights).",
        rich_help_panel=PANEL_IO,
    ),
    export: Optional[str] = typer.Option(
        None, help="Also export the trained model to FILE.onnx (fp32); universal: into folder DIR (decoders fp16; "
        "int8 encoder stages calibrated on --data).",
        rich_help_panel=PANEL_IO,
    ),
    overwrite: bool = typer.Option(
        False, help="Replace existing outputs (model, checkpoint, log, plot, export).", rich_help_panel=PANEL_IO
    ),
    arch: str = setting_option(TrainConfig, "arch"),
    width: Optional[float] = typer.Option(
        None, help="johnson, stylebank, cin: channel multiplier (default 1.0 = 32/64/128).", rich_help_panel=PANEL_GENERATOR
    ),
    residual_blocks: Optional[int] = typer.Option(
        None, help="johnson, cin: residual blocks (default 5).", rich_help_panel=PANEL_GENERATOR
    ),
    upsample: Optional[str] = typer.Option(
        None, help="johnson: nearest or bilinear (+conv), or deconv (the paper's) (default nearest).", rich_help_panel=PANEL_GENERATOR
    ),
    decoder_width: Optional[float] = typer.Option(
        None, help="johnson: channel multiplier of the two upsampling stages alone (default: --width).",
        rich_help_panel=PANEL_GENERATOR,
    ),
    norm: Optional[str] = typer.Option(
        None, help="johnson: instance (Ulyanov et al.'s) or batch (the paper's, folded into the convs at export) (default instance).",
        rich_help_panel=PANEL_GENERATOR,
    ),
    output_kernel: Optional[int] = typer.Option(
        None, help="johnson, stylebank, cin: output conv size, odd, 1-9 (default 9, the paper's; 3 is faster on CPU).",
        rich_help_panel=PANEL_GENERATOR,
    ),
    texture_scales: Optional[int] = typer.Option(None, help="texture: input resolutions (default 5).", rich_help_panel=PANEL_GENERATOR),
    channels: Optional[int] = typer.Option(None, help="texture: channels per scale (default 8).", rich_help_panel=PANEL_GENERATOR),
    noise_channels: Optional[int] = typer.Option(
        None, help="texture: noise channels per scale (default 3).", rich_help_panel=PANEL_GENERATOR
    ),
    bank_layers: Optional[int] = typer.Option(
        None, help="stylebank: 3x3 conv blocks per style bank (default 2).", rich_help_panel=PANEL_GENERATOR
    ),
    steps_per_identity: int = setting_option(TrainConfig, "steps_per_identity"),
    level_steps: Optional[str] = setting_option(UniversalTrainConfig, "level_steps"),
    feature_weight: float = setting_option(UniversalTrainConfig, "feature_weight"),
    holdout: Optional[str] = setting_option(UniversalTrainConfig, "holdout"),
    eval_size: int = setting_option(UniversalTrainConfig, "eval_size"),
    weight_init: str = setting_option(TrainConfig, "weight_init"),
    image_size: int = setting_option(TrainConfig, "image_size"),
    crop_scale: float = setting_option(TrainConfig, "crop_scale"),
    batch_size: int = setting_option(TrainConfig, "batch_size"),
    max_images: Optional[int] = setting_option(TrainConfig, "max_images"),
    workers: int = setting_option(TrainConfig, "workers"),
    seed: int = setting_option(TrainConfig, "seed"),
    content_weight: float = setting_option(TrainConfig, "content_weight"),
    style_weight: float = setting_option(TrainConfig, "style_weight"),
    tv_weight: float = setting_option(TrainConfig, "tv_weight"),
    style_blend: Optional[str] = setting_option(TrainConfig, "style_blend"),
    style_scale: float = setting_option(TrainConfig, "style_scale"),
    style_orientations: Optional[str] = setting_option(TrainConfig, "style_orientations"),
    style_loss: str = setting_option(TrainConfig, "style_loss"),
    content_layer_weights: Optional[str] = setting_option(TrainConfig, "content_layer_weights"),
    style_layer_weights: Optional[str] = setting_option(TrainConfig, "style_layer_weights"),
    net: str = setting_option(TrainConfig, "net"),
    weights: Optional[str] = setting_option(TrainConfig, "weights"),
    pooling: str = setting_option(TrainConfig, "pooling"),
    padding: str = setting_option(TrainConfig, "padding"),
    content_layers: Optional[str] = setting_option(TrainConfig, "content_layers"),
    style_layers: Optional[str] = setting_option(TrainConfig, "style_layers"),
    steps: Optional[int] = setting_option(TrainConfig, "steps"),
    epochs: float = setting_option(TrainConfig, "epochs"),
    lr: float = setting_option(TrainConfig, "lr"),
    warmup_steps: int = setting_option(TrainConfig, "warmup_steps"),
    warmup_lr: Optional[float] = setting_option(TrainConfig, "warmup_lr"),
    lr_decay: float = setting_option(TrainConfig, "lr_decay"),
    lr_decay_every: int = setting_option(TrainConfig, "lr_decay_every"),
    device: str = setting_option(TrainConfig, "device"),
    precision: str = setting_option(TrainConfig, "precision"),
    log_every: int = setting_option(TrainConfig, "log_every"),
    checkpoint_every: int = setting_option(TrainConfig, "checkpoint_every"),
    preview: Optional[str] = setting_option(TrainConfig, "preview"),
    preview_every: int = setting_option(TrainConfig, "preview_every"),
    loss_log: Optional[str] = typer.Option(None, help="Write the loss log to FILE.csv or FILE.json.", rich_help_panel=PANEL_LOGGING),
    plot: Optional[str] = typer.Option(
        None, help="Write loss curves (content, style, TV, total vs step) to FILE.png.", rich_help_panel=PANEL_LOGGING
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or messages on stderr."),
) -> None:
    """Train a feed-forward generator on a folder of photos: one style (Johnson et al.; Ulyanov et al.) or many: a style bank
    (Chen et al.) or conditional instance norm (Dumoulin et al.)."""
    extras.require_torch("train")
    typed = {name for name in ctx.params if ctx.get_parameter_source(name).name == "COMMANDLINE"}
    from nstcli.generators import ARCHS

    if arch not in (*ARCHS, "universal"):
        raise UsageError(f"unknown --arch {arch!r} (choose from {', '.join([*ARCHS, 'universal'])})")
    if arch == "universal":
        _train_universal(ctx.params, typed, output, resume, export, overwrite, quiet)
        return
    universal_only = sorted(typed & (set(settings.declarations(UniversalTrainConfig)) - set(settings.declarations(TrainConfig)) - set(ARCH_FLAGS)))
    if universal_only:
        raise UsageError(f"--{universal_only[0].replace('_', '-')} applies to --arch universal only")
    arch_options = {ARCH_FLAGS[flag]: ctx.params[flag] for flag in ARCH_FLAGS if ctx.params[flag] is not None}
    config = replace(settings.from_flags(TrainConfig, ctx.params), arch_options=arch_options)
    settings.check_ranges(config)  # before the engine (and torch) is imported
    given = frozenset(ARCH_FLAGS.get(name, name) for name in typed)
    from nstcli import train as train_engine, train_plan

    quiet = quiet or not train_engine.is_main_process()
    plan = train_plan.plan_train(
        config, output, given=given, resume=resume, add_styles=add_style, tune_styles=tune_style, loss_log=loss_log,
        plot=plot, export=export, overwrite=overwrite,
    )  # fmt: skip

    with progress_bar("train", plan.config.steps or 0, quiet, lines=False) as bar:  # its own line per log event

        def on_progress(progress: train_engine.Progress) -> None:
            losses = progress.losses
            text = f"{progress.images_per_second:.1f} img/s"
            if losses:
                text += f"  content {losses['content']:.3g}  style {losses['style']:.3g}  tv {losses['tv']:.3g}"
            if bar is not None:
                bar.update(bar.task_ids[0], total=progress.total, completed=progress.step, status=text)
                if progress.event:
                    say(progress.event, quiet)
            elif losses or progress.event:
                event = f"  ({progress.event})" if progress.event else ""
                say(f"step {progress.step}/{progress.total}  epoch {progress.epoch:.2f}  {text}{event}", quiet)

        result = train_engine.run_train(plan, on_progress)
    if result.unreadable_files:
        say(f"nst: warning: {result.unreadable_files} unreadable image files were left out", quiet)
    if result.failed_reads:  # counted per read, not per file: a photo that fails is read again each epoch
        say(f"nst: warning: photos failed to decode {result.failed_reads} times (the next photo took their place)", quiet)
    if result.interrupted:
        # the loss log and plot written so far are rewritten whole by the run that continues: it must be let replace them
        replaced = " --overwrite" if loss_log or plot else ""
        say(f"interrupted at step {result.steps}; continue with --resume {result.checkpoint}{replaced}", quiet)
        raise typer.Exit(EXIT_INTERRUPTED)
    last = result.history[-1] if result.history else {}
    say(
        f"wrote {output} ({result.parameters} parameters, {result.steps} steps in {result.seconds:.1f} s; "
        f"final content {last.get('content', 0):.4g}, style {last.get('style', 0):.4g}, tv {last.get('tv', 0):.4g})",
        quiet,
    )
    if result.exported:
        exported = result.exported
        say(f"wrote {export} ({exported.nodes} nodes, max abs diff vs PyTorch {exported.max_abs_diff:.2g})", quiet)


def _is_universal(path: str) -> bool:
    """Whether ``path`` is a universal checkpoint (``nst export`` then writes a folder)."""
    from nstcli import universal_train

    try:
        universal_train.load(path)
    except NstError:
        return False
    return True


def _train_universal(params: dict[str, Any], typed: set[str], output: str, resume: str | None, export: str | None,
                     overwrite: bool, quiet: bool) -> None:  # fmt: skip
    """``nst train --arch universal``: the WCT decoders (flags of other architectures are refused)."""
    known = set(settings.declarations(UniversalTrainConfig)) | {"arch", "output", "resume", "export", "overwrite", "quiet"}
    foreign = sorted(typed - known)
    if foreign:
        raise UsageError(f"--{foreign[0].replace('_', '-')} does not apply to --arch universal")
    config = settings.from_flags(UniversalTrainConfig, {name: params[name] for name in typed if name in params})
    settings.check_ranges(config)
    from nstcli import universal_train

    given = {name: settings.get_setting(config, name) for name in typed if name in settings.declarations(UniversalTrainConfig)}
    with progress_bar("train", 0, quiet) as bar:

        def on_progress(progress: universal_train.UniversalProgress) -> None:
            if progress.losses is None:
                return
            text = "  ".join(f"{name} {value:.4g}" for name, value in progress.losses.items())
            if bar is not None:
                bar.update(bar.task_ids[0], total=progress.total, completed=progress.step, status=text)
            else:
                say(f"step {progress.step}/{progress.total}  {text}", quiet)

        result = universal_train.run_universal_train(config, output, resume, given, overwrite, on_progress)
    if result.interrupted:
        say(f"interrupted at step {max(result.steps)}; continue with --resume {result.checkpoint}", quiet)
        raise typer.Exit(EXIT_INTERRUPTED)
    levels = ", ".join(
        f"{name} {steps} steps {seconds:.0f} s" + (f" PSNR {result.psnr[name]:.2f} dB" if name in result.psnr else "")
        for name, steps, seconds in zip(universal_train.LEVELS, result.steps, result.level_seconds)
    )  # fmt: skip
    say(f"wrote {output} in {result.seconds:.1f} s ({levels}; shared encoder {result.encoder_seconds:.0f} s)", quiet)
    if export:
        from nstcli.universal_export import export_universal

        exported = export_universal(universal_train.load(output), export, "fp16", overwrite, calibration=config.data)
        say(f"wrote {len(exported.files)} ONNX files into {export} ({exported.bytes / 1e6:.1f} MB)", quiet)


@app.command("export", rich_help_panel="Train and export")
def export_command(
    model: str = typer.Argument(..., metavar="MODEL.pt", help="A trained model or checkpoint (FILE.pt from nst train)."),
    output: str = typer.Option(..., "-o", "--output", help="ONNX file to write (FILE.onnx); universal: a folder."),
    precision: str = typer.Option(
        "fp32", help="fp32, or fp16 (float16 inside; inputs and outputs stay float32); universal decoders: also int8 (stored)."
    ),
    style: Optional[str] = typer.Option(None, help="stylebank, cin: export one style (name or index) as a single-style graph."),
    calibration: Optional[str] = typer.Option(
        None, metavar="PHOTOS", help="Universal: also write the encoder stages that compute in int8 (faster on the CPU), "
        "their activation ranges measured on this folder of photos.",
    ),
    overwrite: bool = typer.Option(False, help="Replace an existing output file."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No messages on stderr."),
) -> None:
    """Export a trained generator to ONNX (for nst apply), checked against PyTorch with onnxruntime."""
    extras.require_torch("export")
    from nstcli import images

    if _is_universal(model):
        from nstcli import universal_train
        from nstcli.universal_export import export_universal

        exported = export_universal(universal_train.load(model), output, precision, overwrite, calibration)
        say(f"wrote {len(exported.files)} ONNX files into {output} ({exported.bytes / 1e6:.1f} MB)", quiet)
        return
    if calibration is not None:
        raise UsageError("--calibration goes with a universal checkpoint (nst train --arch universal)")
    if Path(output).suffix.lower() != ".onnx":
        raise UsageError(f"{output}: the exported model is written as FILE.onnx")
    images.check_output_path(output, [model], overwrite)
    from nstcli import checkpoint, export as exporter  # torch: only once the flags are known to be good

    result = exporter.export_model(checkpoint.load_checkpoint(model), output, precision, style)
    say(
        f"wrote {output} ({result.precision}, {result.nodes} nodes, {result.bytes / 1e6:.2f} MB, "
        f"max abs diff vs PyTorch {result.max_abs_diff:.2g}, {result.seconds:.1f} s)",
        quiet,
    )


@app.command(rich_help_panel="Measure")
def bench(
    size: int = number_option(256, low=32, high=4096, help="Generated images are SIZE x SIZE (the study: 256)."),
    iterations: int = number_option(10, low=1, high=100_000, help="Gatys: descriptor evaluations per image (the study: hundreds)."),
    train_size: int = number_option(128, low=32, high=4096, help="Training crop side (the study: 256)."),
    batch_size: int = number_option(4, low=1, high=1024, help="Training batch size (the study: 4)."),
    train_steps: int = number_option(5, low=2, high=100_000, help="Steps of the short training run."),
    repeats: int = number_option(3, low=1, high=10_000, help="Generator forward passes timed (median)."),
    arch: Optional[list[str]] = typer.Option(None, help="Generators to time (repeat; default: all)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    precision: str = typer.Option("auto", help="auto (bf16 where native), fp32 or bf16."),
    json_output: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress messages on stderr."),
) -> None:
    """Time each family on this machine: training s/step and total, s per generated image (the study's table)."""
    extras.require_torch("bench")
    from nstcli import bench as bench_engine

    config = bench_engine.BenchConfig(
        size=size, iterations=iterations, train_size=train_size, batch_size=batch_size, train_steps=train_steps,
        repeats=repeats, device=device, precision=precision, **({"arches": arch} if arch else {}),
    )  # fmt: skip
    report = bench_engine.run_bench(config, on_step=lambda text: say(f"timing {text}", quiet))
    print(json.dumps(report.to_dict(), indent=1) if json_output else bench_engine.format_table(report))


extras.mark_unavailable(app)  # nst --help: the commands that need the torch extra, when it is missing


def describe_os_error(error: OSError) -> str:
    """'PATH: reason' in one line, a long path shortened in the middle."""
    name = str(error.filename) if error.filename is not None else ""
    if len(name) > 120:
        name = f"{name[:60]}...{name[-50:]}"
    reason = error.strerror or str(error)
    return f"{name}: {reason}" if name else reason


def _show_warning(message: Warning | str, *args: object) -> None:
    print(f"nst: warning: {str(message).splitlines()[0]}", file=sys.stderr)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app on ``argv`` (default: sys.argv[1:]), turning every expected failure into
    one line and an exit code; raises SystemExit with that code (tests call it in-process)."""
    signal.signal(signal.SIGTERM, _interrupt)  # a kill stops like Ctrl-C: partial files removed, exit 130
    # Libraries' warnings (torch, PIL, onnxruntime) would add lines to what must be one message; nst's
    # own warnings stay, as one line each.
    warnings.simplefilter("ignore")
    warnings.filterwarnings("default", module=r"nstcli\.")
    warnings.showwarning = _show_warning
    try:
        argv, deprecations = replace_deprecated(sys.argv[1:] if argv is None else argv)
        for deprecation in deprecations:
            print(deprecation, file=sys.stderr)
        code = app(args=argv, prog_name="nst", standalone_mode=False)
    except click_errors.UsageError as error:
        if not error.format_message():  # a bare ``nst`` or group: the help is printed, and that is all
            sys.exit(EXIT_USAGE)
        hint = f" (see: {error.ctx.command_path} --help)" if error.ctx else ""
        print(one_line(f"nst: error: {error.format_message()}{hint}"), file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except typer.Abort:  # typer vendors click; its Abort lives in typer.exceptions
        print("nst: interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except click_errors.ClickException as error:
        print(one_line(f"nst: error: {error.format_message()}"), file=sys.stderr)
        sys.exit(error.exit_code)
    except NstError as error:
        print(one_line(f"nst: error: {error}"), file=sys.stderr)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        print("nst: interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except (MemoryError, RuntimeError) as error:  # torch.cuda.OutOfMemoryError is a RuntimeError
        if isinstance(error, RuntimeError) and "out of memory" not in str(error).lower():
            raise
        print(f"nst: error: out of memory ({type(error).__name__}); try a smaller --size, --batch-size or "
              "--max-size, or --device cpu", file=sys.stderr)  # fmt: skip
        sys.exit(EXIT_FAILED)
    except BrokenPipeError:
        sys.exit(1)
    except OSError as error:  # a path the user gave that the system refuses: too long, no permission, ...
        print(one_line(f"nst: error: {describe_os_error(error)}"), file=sys.stderr)
        sys.exit(EXIT_FAILED)
    if code == EXIT_INTERRUPTED:  # Typer turns Ctrl-C into a silent exit code 130
        print("nst: interrupted", file=sys.stderr)
    sys.exit(code if isinstance(code, int) else 0)


# Loaded, these need their exit handlers: torch (DataLoader workers, CUDA) and ray (the local cluster it started)
NEEDS_TEARDOWN = ("torch", "ray")


def run() -> None:
    """The ``nst`` command and ``python -m nstcli``: :func:`main`, then out without the interpreter's teardown when
    nothing is left to shut down: no other thread, neither torch nor ray loaded (the light path: apply, styles,
    info). After a one-photo ``nst apply`` the teardown (onnxruntime's sessions, every module's clean-up) took
    about 35 ms of a 0.45 s run; every output is already written and renamed by then. Interrupted, it leaves so
    with other threads alive too: a reader blocked on stdin holds its lock, and the teardown then aborted
    Python (exit 134) after ``nst: interrupted``; the outputs' partial files are removed before."""
    try:
        main()
    except SystemExit as finished:
        code = finished.code
        alone = threading.active_count() == 1 or code == EXIT_INTERRUPTED
        if (code is None or isinstance(code, int)) and alone and not any(name in sys.modules for name in NEEDS_TEARDOWN):
            with suppress(BrokenPipeError):  # the reader went away: nothing more to tell it
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code or 0)
        raise

