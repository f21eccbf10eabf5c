"""Which model ``nst apply`` runs: a model file given first, or the bundled model of the styles named.

``nst apply MODEL.onnx INPUTS...`` runs that file; ``nst apply --style NAME INPUTS...`` (or --mix,
--region) runs the bundled model holding those styles (see ``styles``).
"""

from __future__ import annotations

from dataclasses import dataclass

from nstcli import styles
from nstcli.errors import UsageError

UNIVERSAL_FOLDER = "universal"  # styles/universal: the bundled encoder and decoders of --style-image


@dataclass(frozen=True)
class ResolvedModel:
    model: str  # the model file to load
    inputs: list[str]  # the images, folders, globs or '-' to stylise
    style: str | None  # --style as the model names it (None: --mix, --region or the model's only style)
    regions: list[tuple[str, str | None]] | None  # --region (style, mask), styles as the model names them


def resolve_model(
    paths: list[str],
    style: str | None,
    mix: dict[str, float] | None,
    regions: list[tuple[str, str | None]] | None,
    kind: str | None,
) -> ResolvedModel:
    """The model and inputs for the command line's positional ``paths`` and its style flags.

    A first path ending in .onnx is the model (``kind`` must then be None); otherwise every path is
    an input and the model is the bundled one (of ``kind``) holding the styles named by --style,
    --mix or --region, whose names are turned into the model's own. UsageError when no input is left.
    """
    if paths and paths[0].lower().endswith(".onnx"):
        model, inputs = paths[0], paths[1:]
        if kind is not None:
            raise UsageError("--kind picks among bundled models; it does not apply with a model file")
    else:  # a bundled style: its model, and the style's name inside it (a johnson model has one style: index 0)
        if style is not None:
            names, flag = [style], "--style"
        elif mix:
            names, flag = list(mix), "--mix"
        else:
            names, flag = [name for name, _ in regions or []], "--region"
        bundled = styles.bundled_model(names, kind, flag)
        model, inputs = str(bundled.path), paths
        style = bundled.style if style is not None else None
        if regions:
            regions = [(name if bundled.style else "0", mask) for name, mask in regions]
    if not inputs:
        raise UsageError("no input images given")
    return ResolvedModel(model, inputs, style, regions)


def resolve_universal(paths: list[str], folder: str | None, style: str | None,
                      regions: list[tuple[str, str | None]] | None) -> ResolvedModel:  # fmt: skip
    """--style-image: the universal models' folder (``folder``, else the bundled one) and the inputs;
    --style and --region pass through to be refused with their own message (``apply.config.validate``)."""
    if paths and paths[0].lower().endswith(".onnx"):
        raise UsageError("--style-image runs the universal models: give no model file (--universal-model DIR picks others)")
    if not paths:
        raise UsageError("no input images given")
    return ResolvedModel(folder or str(styles.styles_root() / UNIVERSAL_FOLDER), paths, style, regions)
