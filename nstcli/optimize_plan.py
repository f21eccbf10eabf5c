"""One ``nst optimize`` run from files: its inputs read once, every file it writes checked before
any work starts, then the result and the side outputs written.

Inputs: the content image, the style images (a bundled style's name stands for its painting),
an ``--init`` image and the masks; at most one of them is stdin. Outputs: the result (or stdout),
``--save-every`` snapshots (``OUT.NNNNN.EXT``, all named up front), the loss log, the plot and the
saved config; :func:`nstcli.images.check_outputs` holds them to one rule. ``--sweep`` runs use
the same inputs (:mod:`nstcli.sweep`).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from PIL import Image, ImageStat

from nstcli import images, report, styles as presets
from nstcli.errors import UsageError
from nstcli.optimize import OptimizeResult, Progress, resolved_config, run_optimize, validate
from nstcli.settings import OptimizeConfig

INIT_KINDS = ("content", "noise", "universal")  # --init values that are not a file
FLAT_STDDEV = 2.0  # 0..255: a style image below it on every channel has no texture to give


@dataclass
class OptimizeInputs:
    """The decoded inputs of a run, and the paths they came from (which no output may replace)."""

    paths: list[str]
    content: Image.Image
    styles: list[Image.Image]
    init_image: Image.Image | None = None  # an --init file
    style_masks: list[Image.Image] | None = None
    content_mask: Image.Image | None = None
    style_paths: list[str] = field(default_factory=list)
    content_alpha: Image.Image | None = None  # the content's transparency, carried over to the outputs

    def masks(self) -> dict[str, object]:
        """The masks as :func:`nstcli.optimize.run_optimize` takes them."""
        return {"style_masks": self.style_masks, "content_mask": self.content_mask}

    def start_image(self, config: OptimizeConfig) -> Image.Image | None:
        """The start image :func:`nstcli.optimize.run_optimize` takes: the --init file, or for ``--init
        universal`` the content painted in one pass at the output size (work: call once every check passed)."""
        if config.init != "universal":
            return self.init_image
        from nstcli.apply.universal import paint_once  # onnxruntime: only for this start

        return paint_once(images.resize_long_side(self.content, config.size), self.style_paths, config.loss.style_blend)


def read_inputs(config: OptimizeConfig, content: str, styles: list[str]) -> OptimizeInputs:
    """Read every input once; a style that is not a file but a bundled style's name is that preset's image."""
    styles = [presets.style_image_or_file(style) for style in styles]
    init_is_file = config.init not in INIT_KINDS
    masks = [*(config.style_masks or []), *([config.content_mask] if config.content_mask else [])]
    paths = [content, *styles, *([config.init] if init_is_file else []), *masks]
    if paths.count(images.STDIO) > 1:
        raise UsageError("only one input can be read from stdin")
    if config.init == "universal" and images.STDIO in styles:
        raise UsageError("--init universal reads the style images from files, not stdin")
    read = images.read_image
    decoded = images.decode_image(content)
    style_images = [read(style) for style in styles]
    for style, image in zip(styles, style_images):
        warn_if_flat(style, image)
    return OptimizeInputs(
        paths=paths,
        content=decoded.image,
        content_alpha=decoded.alpha,
        styles=style_images,
        init_image=read(config.init) if init_is_file else None,
        style_masks=[read(path) for path in config.style_masks] if config.style_masks else None,
        content_mask=read(config.content_mask) if config.content_mask else None,
        style_paths=styles,
    )


def warn_if_flat(name: str, image: Image.Image) -> None:
    """A one-colour style image (a blank scan, a fully transparent PNG) gives the result its colour and no
    strokes: the run goes on, with a warning, since a tint may be what was wanted."""
    if max(ImageStat.Stat(image).stddev) < FLAT_STDDEV:
        warnings.warn(f"{name}: the style image is one flat colour; the result takes its colour, no texture")


@dataclass
class OptimizePlan:
    """A checked optimize run: the config, the decoded inputs and every file it will write."""

    config: OptimizeConfig
    inputs: OptimizeInputs
    output: str  # a path, or '-' for stdout
    image_format: str | None = None
    quality: int = 95
    save_every: int = 0
    loss_log: str | None = None
    plot: str | None = None
    save_config: str | None = None
    snapshots: dict[int, Path] = field(default_factory=dict)  # evaluation -> path, for --save-every

    def outputs(self) -> list[str | Path]:
        side = [self.loss_log, self.plot, self.save_config]
        return [self.output, *self.snapshots.values(), *(path for path in side if path)]


def snapshot_paths(output: str, save_every: int, iterations: int) -> dict[int, Path]:
    """``OUT.NNNNN.EXT`` for every ``save_every``-th evaluation before the last."""
    if not save_every:
        return {}
    stem = Path(output)
    return {
        evaluation: stem.with_name(f"{stem.stem}.{evaluation:05d}{stem.suffix}")
        for evaluation in range(save_every, iterations, save_every)
    }


def plan_optimize(
    config: OptimizeConfig,
    content: str,
    styles: list[str],
    output: str,
    *,
    image_format: str | None = None,
    quality: int = 95,
    save_every: int = 0,
    loss_log: str | None = None,
    plot: str | None = None,
    save_config: str | None = None,
    overwrite: bool = False,
) -> OptimizePlan:
    """Check the settings and every output, then read the inputs: a :class:`UsageError` or
    :class:`nstcli.errors.InputError` before any optimisation starts."""
    validate(config)
    images.format_for(output, image_format)
    if save_every < 0:
        raise UsageError("--save-every must not be negative")
    if save_every and output == images.STDIO:
        raise UsageError("--save-every needs a file output, not -o -")
    if loss_log:
        report.check_log_path(loss_log)
    if plot and Path(plot).suffix.lower() != ".png":
        raise UsageError(f"{plot}: plots are written as .png")
    inputs = read_inputs(config, content, styles)
    plan = OptimizePlan(
        config, inputs, output, image_format, quality, save_every, loss_log, plot, save_config,
        snapshot_paths(output, save_every, config.iterations),
    )  # fmt: skip
    images.check_outputs(plan.outputs(), inputs.paths, overwrite)
    return plan


def run_plan(plan: OptimizePlan, on_progress: Callable[[Progress], None] | None = None) -> OptimizeResult:
    """Optimise, writing snapshots as they come, then the result and the side outputs."""

    inputs = plan.inputs

    def write(image: Image.Image, path: str | Path) -> None:
        image = images.with_alpha(image, inputs.content_alpha, images.format_for(path, plan.image_format))
        images.write_image(image, path, plan.image_format, plan.quality)

    def progress(step: Progress) -> None:
        if on_progress is not None:
            on_progress(step)
        if step.evaluation in plan.snapshots:
            write(step.image(), plan.snapshots[step.evaluation])

    keep_history = bool(plan.loss_log or plan.plot)
    result = run_optimize(
        inputs.content, inputs.styles, plan.config, inputs.start_image(plan.config), progress, keep_history=keep_history,
        **inputs.masks(),
    )  # fmt: skip
    write(result.image, plan.output)
    resolved = resolved_config(plan.config).to_dict()
    if plan.loss_log:
        report.write_loss_log(result.history, plan.loss_log, resolved)
    if plan.plot:
        report.plot_losses(result.history, plan.plot)
    if plan.save_config:
        images.write_bytes_atomic(json.dumps(resolved, indent=1).encode(), plan.save_config)
    return result
