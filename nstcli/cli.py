"""The ``nst`` command line: parse flags, call an engine, print. Nothing else lives here.

Engines (and torch) are imported inside each command so ``nst --help`` starts fast.
stdout carries only data (images, JSON); messages and progress go to stderr.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from typer._click import exceptions as click_errors
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from nstcli import __version__
from nstcli.errors import EXIT_INTERRUPTED, EXIT_USAGE, NstError, UsageError

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
    styles: list[str] = typer.Argument(..., help="One or more style images."),
    output: str = typer.Option(..., "-o", "--output", help="Output image (.png, .jpg, .webp; - for stdout)."),
    size: int = typer.Option(512, help="Output long side in pixels."),
    style_scale: float = typer.Option(1.0, help="Style image long side relative to the output's."),
    net: str = typer.Option("vgg19", help="Descriptor: vgg19 (embedded), vgg19-tv, vgg16, resnet50, resnet101."),
    weights: Optional[str] = typer.Option(None, help="Local weights file for a torchvision descriptor."),
    pooling: str = typer.Option("max", help="Pooling in VGG descriptors: max or avg."),
    content_layers: Optional[str] = typer.Option(None, help="Comma-separated, e.g. relu4_2 (default: per net)."),
    style_layers: Optional[str] = typer.Option(None, help="Comma-separated, e.g. relu1_1,relu2_1,relu3_1."),
    content_layer_weights: Optional[str] = typer.Option(None, help="Per content layer, comma-separated."),
    style_layer_weights: Optional[str] = typer.Option(None, help="Per style layer, comma-separated."),
    content_weight: float = typer.Option(1.0, help="Weight of the content loss."),
    style_weight: float = typer.Option(1e3, help="Weight of the style loss."),
    tv_weight: float = typer.Option(0.0, help="Weight of the total-variation loss (0..1 image scale)."),
    style_blend: Optional[str] = typer.Option(None, help="Weights of several styles, e.g. 0.7,0.3."),
    init: str = typer.Option("content", help="Start image: content, noise or an image file."),
    noise_ratio: float = typer.Option(0.0, help="Mix of noise into the start image: 0 = none, 1 = pure noise."),
    seed: Optional[int] = typer.Option(None, help="Random seed (CPU runs are then bit-for-bit reproducible)."),
    optimizer: str = typer.Option("lbfgs", help="lbfgs or adam."),
    lr: Optional[float] = typer.Option(None, help="Learning rate, 0..255 pixel units (default lbfgs 1, adam 2)."),
    iterations: int = typer.Option(300, help="Budget in descriptor evaluations (forward+backward), all scales."),
    scales: int = typer.Option(1, help="Coarse-to-fine pyramid levels (each half the next)."),
    preserve_color: Optional[str] = typer.Option(None, help="Keep the content's colours: luminance or histogram."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    precision: str = typer.Option("auto", help="Descriptor precision: auto, fp32 or bf16."),
    save_every: int = typer.Option(0, help="Also write a snapshot every N evaluations (OUT.<N>.png)."),
    loss_log: Optional[str] = typer.Option(None, help="Write losses per evaluation to FILE.csv or FILE.json."),
    plot: Optional[str] = typer.Option(None, help="Write loss curves to FILE.png."),
    save_config: Optional[str] = typer.Option(None, help="Write the resolved configuration to FILE.json."),
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
        style_blend=parse_floats(style_blend, "--style-blend"),
        init=init, noise_ratio=noise_ratio, seed=seed,
        optimizer=optimizer, lr=lr, iterations=iterations, scales=scales, preserve_color=preserve_color,
        device=device, precision=precision,
    )  # fmt: skip
    engine.validate(config)
    images.format_for(output, image_format)
    if save_every < 0:
        raise UsageError("--save-every must not be negative")
    if save_every and output == images.STDIO:
        raise UsageError("--save-every needs a file output, not -o -")
    if loss_log:
        report.check_log_path(loss_log)
    if [content, *styles].count(images.STDIO) > 1:
        raise UsageError("only one input can be read from stdin")
    init_is_file = init not in ("content", "noise")
    inputs = [content, *styles] + ([init] if init_is_file else [])
    images.check_output_path(output, inputs, overwrite)

    content_image = images.read_image(content)
    style_images = [images.read_image(style) for style in styles]
    init_image = images.read_image(init) if init_is_file else None
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
            content_image, style_images, config, init_image, on_progress, keep_history=bool(loss_log or plot)
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
    model: str = typer.Argument(..., help="An nst ONNX model (from nst export)."),
    inputs: list[str] = typer.Argument(..., help="Images, folders (recursive), globs, or - for stdin."),
    output: str = typer.Option(..., "-o", "--output", help="Output folder (mirrors the input tree), FILE for one input, or -."),
    name: str = typer.Option("{stem}.{ext}", help="Output file name: {stem} {ext} {style} {name} {model}."),
    image_format: Optional[str] = typer.Option(None, "--format", help="png, jpg, webp, bmp, tiff (default: the input's)."),
    quality: int = typer.Option(95, help="JPEG/WebP quality."),
    style: Optional[str] = typer.Option(None, help="Multi-style models: style name or index."),
    mix: Optional[str] = typer.Option(None, help="Multi-style models: blend, e.g. a=0.5,b=0.5."),
    strength: float = typer.Option(1.0, help="Blend with the input: 1 = fully stylised, 0 = unchanged."),
    preserve_color: Optional[str] = typer.Option(None, help="Keep the input's colours: luminance or histogram."),
    max_size: Optional[int] = typer.Option(None, help="Downscale inputs whose long side is larger."),
    tile: Optional[int] = typer.Option(None, help="Tile size in px for large images (default: auto above 4 MP; 0 = off)."),
    tile_overlap: int = typer.Option(64, help="Overlap of neighbouring tiles in px."),
    provider: str = typer.Option("auto", help="auto (TensorRT > CUDA > CPU), tensorrt, cuda or cpu."),
    threads: int = typer.Option(0, help="onnxruntime threads (0 = its default)."),
    batch_size: int = typer.Option(4, help="Images of equal size per inference batch."),
    workers: int = typer.Option(2, help="Decode threads and encode threads (each)."),
    skip_existing: bool = typer.Option(False, help="Skip inputs whose output exists (resume a killed run)."),
    overwrite: bool = typer.Option(False, help="Replace existing outputs."),
    shard: Optional[str] = typer.Option(None, help="Process only part I of N (e.g. 2/4), the same split on every machine."),
    fail_fast: bool = typer.Option(False, help="Stop at the first failed input."),
    json_summary: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or messages on stderr (errors still shown)."),
) -> None:
    """Stylise images with an exported model (onnxruntime; no torch needed)."""
    from nstcli import apply as engine

    if json_summary and output == "-":
        raise UsageError("--json and -o - both want stdout; write the image to a file")
    config = engine.ApplyConfig(
        model=model, inputs=inputs, output=output, name=name, image_format=image_format, quality=quality,
        provider=provider, threads=threads, batch_size=batch_size, workers=workers, max_size=max_size,
        tile=tile, tile_overlap=tile_overlap, preserve_color=preserve_color, strength=strength, style=style,
        mix=engine.parse_mix(mix) if mix else None, skip_existing=skip_existing, overwrite=overwrite,
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


def main() -> None:
    """Entry point: run the app, turning every expected failure into one line and an exit code."""
    try:
        code = app(prog_name="nst", standalone_mode=False)
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
    except BrokenPipeError:
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
