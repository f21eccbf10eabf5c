"""Typer options built from the engines' declared settings (:mod:`nstcli.settings`).

One declaration gives a setting's flag, help text, help panel and default, so ``nst optimize
--help`` and ``nst train --help`` each show their own command's real default. List settings are
typed on the command line as comma-separated text (``--style-layers relu1_1,relu2_1``);
:func:`nstcli.settings.from_flags` parses them.
"""

from __future__ import annotations

from typing import Any

import typer

from nstcli.errors import UsageError
from nstcli.settings import check_range, declaration, flag_of, help_of, value_type

# Flags renamed for clarity: (command, old flag) -> new flag. The old one still works for one
# release, with a one-line warning (see nstcli.cli.main).
DEPRECATED_FLAGS = {
    ("train", "--style"): "--style-image",
    ("train", "--log"): "--loss-log",
    ("train", "--init"): "--weight-init",
    ("train", "--scales"): "--texture-scales",
    ("train", "--t"): "--steps-per-identity",
}
# Flags whose meaning changed, so no rename can carry them: refused with what replaces them.
REPLACED_FLAGS = {
    ("optimize", "--scales"): "--scales N was replaced by --min-size PX: the scales now run sqrt(2) apart "
    "from PX up to --size (default 128: coarse to fine)",
}


def setting_option(config_type: type, name: str, **changes: Any) -> Any:
    """The option of setting ``name`` of ``config_type``."""
    annotation, default, metadata = declaration(config_type, name)
    _, is_list = value_type(annotation)
    return typer.Option(
        None if is_list else default,
        flag_of(config_type, name),
        help=help_of(config_type, name),
        rich_help_panel=metadata["panel"],
        show_default=not is_list and default is not None,
        **changes,
    )


def number_option(default: Any, *flags: str, low: float, high: float, help: str, **options: Any) -> Any:
    """A numeric option that is not an engine setting, with its range (checked as the flags are parsed)."""

    def check(ctx: typer.Context, param: typer.CallbackParam, value: Any) -> Any:
        check_range(param.opts[0] if param.opts[0].startswith("--") else param.opts[-1], value, low, high)
        return value

    return typer.Option(default, *flags, help=help, callback=check, **options)


def replace_deprecated(argv: list[str]) -> tuple[list[str], list[str]]:
    """``argv`` with deprecated flags renamed, and one warning per renamed flag; a replaced flag is a
    UsageError."""
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    renamed, warnings = [], []
    for arg in argv:
        flag, equals, value = arg.partition("=")
        if (command, flag) in REPLACED_FLAGS:
            raise UsageError(REPLACED_FLAGS[command, flag])
        new = DEPRECATED_FLAGS.get((command, flag))
        if new is None:
            renamed.append(arg)
            continue
        renamed.append(new + equals + value)
        warning = f"nst: warning: {command} {flag} is deprecated; use {new}"
        if warning not in warnings:
            warnings.append(warning)
    return renamed, warnings
