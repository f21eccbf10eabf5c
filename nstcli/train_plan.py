"""Planning a training run: which kind of run, with which config, writing which files.

``nst train`` runs in one of four modes:

- fresh: ``--style`` and ``--data`` (a multi-style model, StyleBank or CIN: ``--style NAME=IMAGE`` per style);
- ``--resume CKPT``: continue exactly; only *run* settings (steps, device, logging) may differ,
  every other setting comes from the checkpoint (giving one again with the same value is fine);
- ``--resume BANK --add-style NAME=IMAGE``: a trained multi-style model grows new styles (StyleBank:
  banks; CIN: norm scales and shifts), only they train;
- ``--resume BANK --tune-style NAME``: the named styles train further, everything else frozen.

In the last two, *bank* settings (data, crops, loss weights, learning rate) may also change,
and run settings not given take their defaults rather than the checkpoint's. Which settings play
which role is declared with them (:mod:`nstcli.settings`). :func:`plan_train` checks all of this,
and every output path, before any photo is read or weight loaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nstcli import generators, images, report, styles as presets
from nstcli.checkpoint import load_checkpoint
from nstcli.devices import check_precision
from nstcli.errors import InputError, UsageError, reject_first
from nstcli.settings import (
    BANK, RUN, TrainConfig, check_blend_length, check_ranges, compact_counts, declarations, flag_of, get_setting,
    orientation_counts, roles, with_settings,
)  # fmt: skip

RUN_SETTINGS = roles(TrainConfig, RUN)  # may differ on --resume
BANK_SETTINGS = RUN_SETTINGS | roles(TrainConfig, BANK)  # may differ when only some banks train


@dataclass
class TrainPlan:
    """A checked training run: what :func:`nstcli.train.run_train` needs."""

    config: TrainConfig
    output: Path  # the trained model, FILE.pt
    resume_state: dict[str, Any] | None = None  # a loaded checkpoint to continue exactly
    base_state: dict[str, Any] | None = None  # a trained StyleBank whose weights start an add/tune run
    loss_log: Path | None = None
    plot: Path | None = None
    export: Path | None = None  # also export the trained model to ONNX (fp32)

    @property
    def checkpoint(self) -> Path:
        """Where interrupted and periodic state goes: FILE.ckpt beside FILE.pt."""
        return self.output.with_suffix(".ckpt")

    @property
    def preview_dir(self) -> Path | None:
        return self.output.with_suffix(".preview") if self.config.preview else None


def validate(config: TrainConfig) -> None:
    """Reject bad settings before any image is read or any weight is loaded. Each number's own range
    is declared with it (:func:`nstcli.settings.check_ranges`); the checks here involve choices, the
    architecture or several settings at once."""
    from nstcli import losses, train  # torch: only once the flags are parsed

    check_ranges(config)
    options = generators.make_options(config.arch, config.arch_options)
    if not config.style:
        raise UsageError(f"{flag_of(TrainConfig, 'style')} is required")
    check_blend_length(config.loss.style_blend, len(config.style))
    orientation_counts(config.loss.style_orientations, len(config.style))
    multiple = options.size_multiple()
    if config.image_size % multiple:
        raise UsageError(f"--image-size must be at least 16 and a multiple of {multiple} for --arch {config.arch}")
    if config.multi_style:
        _validate_multi_style(config, options.styles)
    if config.weight_init not in generators.INITS:
        raise UsageError(f"unknown --weight-init {config.weight_init!r} (choose from {', '.join(generators.INITS)})")
    check_precision(config.precision)
    losses.validate_settings(config.loss, train.loss_weights(config))


def _validate_multi_style(config: TrainConfig, banks: int) -> None:
    names = config.style_names()
    train_banks = config.train_banks
    bad_train_banks = train_banks is not None and (
        not train_banks or len(set(train_banks)) != len(train_banks) or not all(0 <= bank < banks for bank in train_banks)
    )
    checks = {
        f"--arch {config.arch} has {banks} styles for {len(config.style)} style images": banks != len(config.style),
        "--style-image names must be unique": len(set(names)) != len(names),
        f"{len(names)} style names for {len(config.style)} style images": len(names) != len(config.style),
        "the styles to train must be distinct styles of the model": bad_train_banks,
        f"--arch {config.arch} trains in one process (not under torchrun)": int(os.environ.get("WORLD_SIZE", "1")) > 1,
    }  # fmt: skip
    reject_first(checks)
    for name in names:
        if not name or "=" in name or "," in name:
            raise UsageError(f"--style-image: bad style name {name!r} (no '=' or ',', not empty)")


def plan_train(
    config: TrainConfig,
    output: str | Path,
    *,
    given: frozenset[str] = frozenset(),
    resume: str | None = None,
    add_styles: list[str] | None = None,
    tune_styles: list[str] | None = None,
    loss_log: str | None = None,
    plot: str | None = None,
    export: str | None = None,
    overwrite: bool = False,
) -> TrainPlan:
    """The run that ``nst train`` flags ask for, or a one-line :class:`UsageError`/:class:`InputError`.

    ``config``: built from the flags (style images as typed: ``NAME=IMAGE`` for StyleBank);
    ``given``: the setting and architecture-option names typed on the command line, which a run from
    a checkpoint checks against it.
    """
    config, typed_styles, typed_data = _named_styles(config)
    bank_flag = "--add-style" if add_styles else "--tune-style" if tune_styles else None
    if add_styles and tune_styles:
        raise UsageError("--add-style and --tune-style are separate runs: give one of them")
    if bank_flag and not resume:
        raise UsageError(f"{bank_flag} needs --resume MODEL.pt (a trained stylebank or cin model)")
    if bank_flag and config.style:
        raise UsageError(f"with {bank_flag} the model keeps its styles: give no --style-image")
    settings = declarations(TrainConfig)
    values: dict[str, Any] = {name: get_setting(config, name) for name in given if name in settings}
    values["arch_options"] = {name: value for name, value in config.arch_options.items() if name in given}
    resume_state = base_state = None
    if bank_flag:
        base_state = load_checkpoint(resume)
        saved = TrainConfig.from_dict(base_state["config"])
        if add_styles:
            names, paths = (list(items) for items in zip(*(split_named_style(text) for text in add_styles)))
            config = add_styles_config(saved, [str(Path(path).resolve()) for path in paths], names, values)
        else:
            config = tune_styles_config(saved, tune_styles or [], values)
    elif resume:
        resume_state = load_checkpoint(resume, resumable=True)
        config = resume_config(TrainConfig.from_dict(resume_state["config"]), values)
    elif not config.style or not config.data:
        raise UsageError("--style-image and --data are required (or --resume CHECKPOINT)")
    validate(config)
    check_inputs(typed_styles, typed_data)  # after the flags: a bad value is named before a missing file
    plan = TrainPlan(
        config, Path(output), resume_state, base_state, _optional_path(loss_log), _optional_path(plot),
        _optional_path(export),
    )  # fmt: skip
    _check_outputs(plan, resume, overwrite)
    return plan


def _optional_path(text: str | None) -> Path | None:
    return Path(text) if text else None


def _named_styles(config: TrainConfig) -> tuple[TrainConfig, list[str], str]:
    """Style paths made absolute (a bundled style's name: its image); a multi-style model's ``NAME=IMAGE`` split
    into names and paths, one style each. Also the style paths and data folder as typed, for messages."""
    if config.multi_style and config.style:
        names, paths = (list(items) for items in zip(*(split_named_style(text) for text in config.style)))
        options = {**config.arch_options, "styles": len(paths)}
        config = replace(config, names=names, style=paths, arch_options=options)
    paths = [presets.style_image_or_file(path) for path in config.style]
    data = str(Path(config.data).resolve()) if config.data else ""
    return replace(config, style=[str(Path(path).resolve()) for path in paths], data=data), paths, config.data


def check_inputs(style_paths: list[str], data: str) -> None:
    """Style images and the data folder exist, named as typed (the config keeps them absolute)."""
    for path in style_paths:
        if not Path(path).is_file():
            raise InputError(f"{path}: no such file" if not Path(path).exists() else f"{path}: is a directory, not an image")
    if data and not Path(data).is_dir():
        raise InputError(f"{data}: not a folder" if Path(data).exists() else f"{data}: no such folder")


def _check_outputs(plan: TrainPlan, resume: str | None, overwrite: bool) -> None:
    """Every file the run writes: the right suffix, then :func:`nstcli.images.check_outputs`."""
    if plan.output.suffix != ".pt":
        raise UsageError(f"{plan.output}: the model is written as FILE.pt")
    if plan.loss_log:
        report.check_log_path(plan.loss_log)
    if plan.plot and plan.plot.suffix.lower() != ".png":
        raise UsageError(f"{plan.plot}: plots are written as .png")
    if plan.export and plan.export.suffix.lower() != ".onnx":
        raise UsageError(f"{plan.export}: the exported model is written as FILE.onnx")
    if plan.preview_dir and plan.preview_dir.exists() and not plan.preview_dir.is_dir():
        raise UsageError(f"{plan.preview_dir}: previews go into this folder, but a file has its name")
    outputs: list[str | Path] = [plan.output]
    if resume is None or Path(resume).resolve() != plan.checkpoint.resolve():  # resuming from it replaces it
        outputs.append(plan.checkpoint)
    outputs += [path for path in (plan.loss_log, plan.plot, plan.export) if path]
    config = plan.config
    inputs = [*config.style, *([config.data] if config.data else []), *([config.preview] if config.preview else [])]
    images.check_outputs(outputs, inputs + ([resume] if resume else []), overwrite)


def split_named_style(text: str) -> tuple[str, str]:
    """``NAME=IMG`` -> (NAME, IMG); a bare ``IMG`` is named by its stem."""
    name, separator, path = text.partition("=")
    if not separator:
        return Path(text).stem, text
    if not name or not path:
        raise UsageError(f"--style-image: expected NAME=IMAGE or IMAGE, got {text!r}")
    return name, path


def resume_config(saved: TrainConfig, given: dict[str, Any]) -> TrainConfig:
    """The checkpoint's config with the run settings the user ``given`` on the command line.

    A training-defining setting given with a different value than the checkpoint's is an error: a
    resumed run continues the same training. ``--data`` may name another folder (moved, copied to another
    machine): the trainer checks that it holds the same files (``data.ScanResult.fingerprint``).
    """
    run_values = {}
    for key, value in given.items():
        if key in RUN_SETTINGS or key == "data":
            run_values[key] = value
        elif key == "arch_options":
            _check_arch_unchanged(saved, value, "on --resume")
        elif _normalised(key, value) != _normalised(key, get_setting(saved, key)):
            kept = get_setting(saved, key)
            raise UsageError(f"{flag_of(TrainConfig, key)} cannot change on --resume (the checkpoint has {kept!r})")
    if "epochs" in run_values and "steps" not in run_values:
        run_values["steps"] = None  # --epochs given: it sets the length, not the checkpoint's --steps
    return with_settings(saved, run_values)


def _bank_run(saved: TrainConfig, given: dict[str, Any], flag: str, count: int) -> TrainConfig:
    """``saved`` (a trained multi-style model) with ``given``: run and bank settings may change; architecture and
    descriptor stay the checkpoint's. Run settings not given take their defaults, as in any new run
    (not the checkpoint's device or step count). ``count``: how many banks train, which is how many
    --style-blend weights to expect. The style blend and warm-up are set by the caller."""
    if not saved.multi_style:
        raise UsageError(f"{flag} needs a multi-style model, --arch stylebank or cin (this one is --arch {saved.arch})")
    given = dict(given)
    _check_arch_unchanged(saved, given.pop("arch_options", {}), f"with {flag}")
    for key, value in given.items():
        if key not in BANK_SETTINGS and _normalised(key, value) != _normalised(key, get_setting(saved, key)):
            raise UsageError(f"{flag_of(TrainConfig, key)} cannot change with {flag} (the model's is kept)")
    weights = given.get("style_blend")
    if weights is not None and len(weights) != count:
        raise UsageError(f"--style-blend with {flag}: one weight per style it trains ({count}), got {len(weights)}")
    orientations = given.get("style_orientations")
    if orientations is not None and len(orientations) not in (1, count):
        raise UsageError(f"--style-orientations with {flag}: one count, or one per style it trains ({count}), got {len(orientations)}")
    defaults = TrainConfig()
    run_defaults = {key: get_setting(defaults, key) for key in RUN_SETTINGS}
    values = {**run_defaults, **given, "style_blend": saved.loss.style_blend, "style_orientations": saved.loss.style_orientations,
              "warmup_steps": given.get("warmup_steps", 0)}  # fmt: skip
    return with_settings(saved, values)



def add_styles_config(saved: TrainConfig, styles: list[str], names: list[str], given: dict[str, Any]) -> TrainConfig:
    """The config of an incremental run: ``saved`` (a trained bank) plus new styles, of which only the banks train.

    ``given``: see :func:`_bank_run`. A given ``style_blend`` weighs the new styles only, a given
    ``style_orientations`` sets theirs (the trained banks keep their own); without it the new styles take the
    model's one count, and a model with one count per style asks for theirs.
    """
    config = _bank_run(saved, given, "--add-style", len(styles))
    taken = [name for name in names if name in saved.style_names()]
    if taken:
        raise UsageError(f"--add-style: the model has a style named {taken[0]!r} already (choose another, NAME=IMAGE)")
    all_styles = saved.style + styles
    config = replace(
        config, style=all_styles, names=saved.style_names() + names,
        arch_options={**saved.arch_options, "styles": len(all_styles)},
        train_banks=list(range(len(saved.style), len(all_styles))),
    )  # fmt: skip
    new_weights = given.get("style_blend")
    if saved.loss.style_blend or new_weights:
        blend = (saved.loss.style_blend or [1.0] * len(saved.style)) + (new_weights or [1.0] * len(styles))
        config = with_settings(config, {"style_blend": blend})
    new_counts = given.get("style_orientations")
    if new_counts is None:
        if len(saved.loss.style_orientations) > 1:
            raise UsageError("--add-style: the model has one --style-orientations count per style; give the new "
                             "styles' (one count, or one per new style)")  # fmt: skip
        new_counts = saved.loss.style_orientations
    counts = orientation_counts(saved.loss.style_orientations, len(saved.style)) + orientation_counts(new_counts, len(styles))
    return with_settings(config, {"style_orientations": compact_counts(counts)})


def tune_styles_config(saved: TrainConfig, names: list[str], given: dict[str, Any]) -> TrainConfig:
    """The config of a tuning run: the banks of ``names`` in ``saved`` (a trained bank) train further, the rest is frozen.

    ``given``: see :func:`_bank_run`. A given ``style_blend`` sets the tuned styles' weights (the
    others keep theirs), e.g. a stronger style for a bank that came out too faint; a given
    ``style_orientations`` their orientation counts, e.g. 1 for a print whose lines keep their direction.
    """
    config = _bank_run(saved, given, "--tune-style", len(names))
    known = saved.style_names()
    for name in names:
        if name not in known:
            raise UsageError(f"--tune-style: the model has no style {name!r} (it has {', '.join(known)})")
    if len(set(names)) != len(names):
        raise UsageError("--tune-style: each style once")
    config = replace(config, train_banks=[known.index(name) for name in names])
    if given.get("style_blend") is not None:
        weights = list(saved.loss.style_blend or [1.0] * len(known))
        for bank, weight in zip(config.train_banks, given["style_blend"]):
            weights[bank] = weight
        config = with_settings(config, {"style_blend": weights})
    if given.get("style_orientations") is not None:
        counts = orientation_counts(saved.loss.style_orientations, len(known))
        for bank, count in zip(config.train_banks, orientation_counts(given["style_orientations"], len(names))):
            counts[bank] = count
        config = with_settings(config, {"style_orientations": compact_counts(counts)})
    return config


def _check_arch_unchanged(saved: TrainConfig, given: dict[str, Any], context: str) -> None:
    """Architecture flags given again must match the checkpoint's (defaults filled in: --bank-layers 2
    matches a bank trained without the flag)."""
    options = generators.make_options(saved.arch, saved.arch_options)
    for option, value in given.items():
        kept = getattr(options, option, None)
        if kept != value:
            raise UsageError(f"{generators.option_flag(option)} cannot change {context} (the checkpoint has {kept!r})")


def _normalised(key: str, value: Any) -> Any:
    if key == "data":
        return str(Path(value).resolve())
    if key == "style":
        return [str(Path(path).resolve()) for path in value]
    return value
