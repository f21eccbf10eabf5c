"""Parameter sweeps of ``nst optimize``: the study's ablations as one command.

``--sweep style-weight=1e-4,1,1e11 --sweep net=vgg19,vgg16`` runs the cartesian product of the
values (any numeric or choice setting of :class:`OptimizeConfig`), writes each result beside the
contact sheet (``SHEET.01_style-weight=1e-4_net=vgg19.png``), then one labelled contact sheet
(content and styles in the first row, one captioned tile per run) and a CSV of the judged losses
(:func:`nstcli.optimize.score`, at one fixed size so runs compare). List fields (layers, layer
weights, style blend) take ``+``-joined values: ``--sweep style-layers=relu1_1,relu1_1+relu2_1``.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from PIL import Image

from nstcli import images, report, settings
from nstcli.errors import UsageError
from nstcli.optimize import OptimizeResult, run_optimize, score, validate
from nstcli.settings import OptimizeConfig

# Settings that name input files or where to run: not experiment knobs.
NOT_SWEEPABLE = frozenset({"weights", "init", "device"})


@dataclass
class Axis:
    """One swept field: its values, and the texts the user wrote (for captions, the CSV and file names)."""

    name: str
    values: list[Any]
    texts: list[str]

    @property
    def flag(self) -> str:
        return self.name.replace("_", "-")


@dataclass
class PlannedRun:
    config: OptimizeConfig
    settings: dict[str, str]  # flag -> value text, for this run
    path: Path


@dataclass
class SweepPlan:
    runs: list[PlannedRun]
    axes: list[Axis]
    sheet: Path
    csv: Path

    def outputs(self) -> list[Path]:
        return [run.path for run in self.runs] + [self.sheet, self.csv]


def sweepable_fields() -> dict[str, tuple[type, bool]]:
    """Setting name -> (scalar type, is a list) of every OptimizeConfig setting a sweep may vary."""
    return {
        name: settings.value_type(declared.annotation)
        for name, declared in settings.declarations(OptimizeConfig).items()
        if name not in NOT_SWEEPABLE
    }


def parse_axis(text: str) -> Axis:
    """'style-weight=1e-4,1,1e11' -> Axis('style_weight', [1e-4, 1.0, 1e11], ...)."""
    key, sep, values = text.partition("=")
    name = key.strip().lstrip("-").replace("-", "_")
    known = sweepable_fields()
    if not sep or not values.strip():
        raise UsageError(f"--sweep {text!r}: expected FLAG=V1,V2,... (e.g. style-weight=1e2,1e3,1e4)")
    if name not in known:
        choices = ", ".join(sorted(field.replace("_", "-") for field in known))
        raise UsageError(f"--sweep: cannot vary {key.strip()!r} (choose from {choices})")
    texts = [part.strip() for part in values.split(",") if part.strip()]
    scalar, is_list = known[name]
    flag = f"--sweep {text!r}"
    if is_list:  # list settings join their items with '+': style-layers=relu1_1,relu1_1+relu2_1
        parsed = [settings.parse_list(part, scalar, flag, separator="+") for part in texts]
    else:
        try:
            parsed = [settings.parse_value(part, scalar) for part in texts]
        except (ValueError, KeyError):
            raise UsageError(f"{flag}: a value does not fit --{key.strip()} ({scalar.__name__})") from None
    return Axis(name, parsed, texts)


def parse_axes(texts: list[str]) -> list[Axis]:
    axes = [parse_axis(text) for text in texts]
    names = [axis.name for axis in axes]
    for name in names:
        if names.count(name) > 1:
            raise UsageError(f"--sweep {name.replace('_', '-')} is given twice; list all its values once")
    return axes


def _file_label(settings: dict[str, str]) -> str:
    text = "_".join(f"{flag}={value}" for flag, value in settings.items())
    return re.sub(r"[^A-Za-z0-9._=+-]+", "-", text)


def plan_sweep(base: OptimizeConfig, axes: list[Axis], sheet: str | Path) -> SweepPlan:
    """Every combination as a validated config with its output path (checked before anything runs)."""
    sheet = Path(sheet)
    if sheet.suffix.lower() != ".png":
        raise UsageError(f"{sheet}: with --sweep, -o is the contact sheet, written as .png")
    runs = []
    for index, combo in enumerate(itertools.product(*(range(len(axis.values)) for axis in axes)), start=1):
        changes = {axis.name: axis.values[i] for axis, i in zip(axes, combo)}
        labels = {axis.flag: axis.texts[i] for axis, i in zip(axes, combo)}
        config = settings.with_settings(base, changes)
        try:
            validate(config)
        except UsageError as error:
            raise UsageError(f"sweep run {index} ({', '.join(f'{k}={v}' for k, v in labels.items())}): {error}") from None
        path = sheet.with_name(f"{sheet.stem}.{index:02d}_{_file_label(labels)}.png")
        runs.append(PlannedRun(config, labels, path))
    return SweepPlan(runs, axes, sheet, sheet.with_suffix(".csv"))


@dataclass
class SweepRow:
    """One finished run: its settings, judged losses and time."""

    index: int
    settings: dict[str, str]
    losses: dict[str, float]  # content, style (first style), style_2 ..., total
    seconds: float
    path: Path


def judged_losses(content: Image.Image, styles: list[Image.Image], image: Image.Image, size: int) -> dict[str, float]:
    """``score`` against each style: content, style (the first), style_2, ...; total of the first."""
    results = [score(content, style, image, size) for style in styles]
    losses = {"content": results[0]["content"], "style": results[0]["style"]}
    for number, result in enumerate(results[1:], start=2):
        losses[f"style_{number}"] = result["style"]
    losses["total"] = results[0]["total"]
    return losses


def run_sweep(
    plan: SweepPlan,
    content: Image.Image,
    styles: list[Image.Image],
    judge_size: int,
    init_image: Image.Image | None = None,
    style_masks: list[Image.Image] | None = None,
    content_mask: Image.Image | None = None,
    on_run: Callable[[int, PlannedRun], Callable | None] | None = None,
    on_done: Callable[[SweepRow], None] | None = None,
    title: str | None = None,
) -> list[SweepRow]:
    """Run every planned combination, write its image, then the CSV and the contact sheet.

    ``on_run(index, run)`` is called before each run and may return an ``on_progress`` callback for
    :func:`run_optimize`; ``on_done(row)`` after each.
    """
    rows: list[SweepRow] = []
    results: list[OptimizeResult] = []
    for index, planned in enumerate(plan.runs, start=1):
        on_progress = on_run(index, planned) if on_run else None
        result = run_optimize(
            content, styles, planned.config, init_image, on_progress,
            style_masks=style_masks, content_mask=content_mask,
        )  # fmt: skip
        images.write_image(result.image, planned.path)
        row = SweepRow(index, planned.settings, judged_losses(content, styles, result.image, judge_size),
                       result.seconds, planned.path)  # fmt: skip
        rows.append(row)
        results.append(result)
        if on_done:
            on_done(row)
    write_csv(rows, plan.csv)
    tiles = [(result.image, caption(row)) for result, row in zip(results, rows)]
    header = [(content, ["content"])] + [(style, [f"style {i}"]) for i, style in enumerate(styles, start=1)]
    report.write_contact_sheet([header] + _grid(tiles, plan.axes), plan.sheet, title=title)
    return rows


def caption(row: SweepRow) -> list[str]:
    """Caption lines: one per varied setting, then the judged losses."""
    styles = [row.losses["style"]] + [value for key, value in row.losses.items() if key.startswith("style_")]
    lines = [f"{flag}={value}" for flag, value in row.settings.items()]
    return lines + [f"content {row.losses['content']:.3g}", "style " + " / ".join(f"{value:.3g}" for value in styles)]


def _grid(tiles: list[report.Tile], axes: list[Axis]) -> list[list[report.Tile]]:
    """Rows of tiles: one column per value of the last axis (one sweep: up to 6 a row)."""
    columns = len(axes[-1].values) if len(axes) > 1 else min(len(tiles), 6)
    return [tiles[start : start + columns] for start in range(0, len(tiles), columns)]


def write_csv(rows: list[SweepRow], path: str | Path) -> None:
    buffer = io.StringIO()
    settings = list(rows[0].settings) if rows else []
    losses = list(rows[0].losses) if rows else []
    writer = csv.writer(buffer)
    writer.writerow(["run", *settings, *losses, "seconds", "file"])
    for row in rows:
        values = [f"{row.losses[key]:.6g}" for key in losses]
        writer.writerow([row.index, *row.settings.values(), *values, f"{row.seconds:.2f}", row.path.name])
    images.write_bytes_atomic(buffer.getvalue().encode(), path)
