"""Which model ``nst apply`` runs: a model file given first, or the bundled model of the styles named.

``nst apply MODEL.onnx INPUTS...`` runs that file; ``nst apply --style NAME INPUTS...`` (or --mix,
--region) runs the bundled model holding those styles (see ``styles``); with ``--kind universal`` the
universal models paint with the styles' stored painting statistics, as ``--style-image`` does with a painting.
"""

from __future__ import annotations

from dataclasses import dataclass

from nstcli import styles
from nstcli.errors import UsageError

UNIVERSAL_FOLDER = "universal"  # styles/universal: the bundled encoder and decoders of --style-image
CHECKPOINT_SUFFIXES = (".pt", ".ckpt")  # what nst train writes: exported before apply runs it
UNIVERSAL_KIND = "universal"  # --kind universal: a preset's painting statistics through those models


@dataclass(frozen=True)
class ResolvedModel:
    model: str  # the model file to load
    inputs: list[str]  # the images, folders, globs or '-' to stylise
    style: str | None  # --style as the model names it (None: --mix, --region or the model's only style)
    regions: list[tuple[str, str | None]] | None  # --region (style, mask), styles as the model names them
    style_images: list[str] | None = None  # universal: the paintings (or their statistics files) to paint with
    style_blend: list[float] | None = None  # universal: their weights (None: equal)


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
    if paths and paths[0].lower().endswith(CHECKPOINT_SUFFIXES):
        raise UsageError(f"{paths[0]}: a training checkpoint; apply runs ONNX models: nst export {paths[0]} -o MODEL.onnx")
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
                      regions: list[tuple[str, str | None]] | None, kind: str | None = None) -> ResolvedModel:  # fmt: skip
    """--style-image: the universal models' folder (``folder``, else the bundled one) and the inputs;
    --style and --region pass through to be refused with their own message (``apply.config.validate``)."""
    if kind is not None:
        raise UsageError("--kind picks among bundled models; --style-image paints with the images given")
    if paths and paths[0].lower().endswith(".onnx"):
        raise UsageError("--style-image runs the universal models: give no model file (--universal-model DIR picks others)")
    if not paths:
        raise UsageError("no input images given")
    return ResolvedModel(folder or str(styles.styles_root() / UNIVERSAL_FOLDER), paths, style, regions)


def resolve_universal_styles(
    paths: list[str],
    folder: str | None,
    style: str | None,
    mix: dict[str, float] | None,
    regions: list[tuple[str, str | None]] | None,
    style_blend: list[float] | None,
) -> ResolvedModel:
    """--kind universal: bundled styles painted by the universal models from their stored statistics.

    It is --style-image with each style's statistics file for its painting (the paintings are not shipped):
    --style one style, --mix a blend in feature space (its weights the blend), --region one style per region.
    """
    if style_blend is not None:
        raise UsageError("--style-blend goes with --style-image; with --kind universal, --mix blends bundled styles")
    if style is not None:
        names, blend = [style], None
    elif mix:
        names, blend = list(mix), list(mix.values())
    else:
        names, blend = [name for name, _ in regions or []], None
    if not names:
        raise UsageError("--kind universal: name bundled styles with --style, --mix or --region (list them with: nst styles)")
    statistics = [str(styles.get_preset(name).model(UNIVERSAL_KIND).path) for name in names]
    resolved = resolve_universal(paths, folder, None, regions)
    return ResolvedModel(resolved.model, resolved.inputs, None, regions, statistics, blend)
