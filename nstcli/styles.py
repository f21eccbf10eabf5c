"""Bundled style presets: the folders of ``styles/`` (each a preset.toml plus its files).

Installed, ``styles/`` is the package ``nst_styles``; run from a source tree it is the folder beside
``nstcli/``. Listing reads only the TOML files; models and images are read when a preset is used.

A preset names its trained models by kind: ``[models.stylebank]`` (a style inside a multi-style
model, ``file`` + ``style``; the bundled bank is one file shared by several presets) and
``[models.johnson]`` (a single-style model, ``file``). ``image`` is a style image shipped with the
preset (only procedural ones: the paintings themselves are not redistributed).
"""

from __future__ import annotations

import importlib.util
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nstcli.errors import UsageError

DEFAULT_KIND = "stylebank"  # the one-file multi-style model: fastest, and it mixes styles


def styles_root() -> Path:
    source_tree = Path(__file__).resolve().parent.parent / "styles"
    if source_tree.is_dir():
        return source_tree
    spec = importlib.util.find_spec("nst_styles")
    if spec is None or not spec.submodule_search_locations:
        raise UsageError("the bundled styles are not installed (reinstall nst)")
    return Path(next(iter(spec.submodule_search_locations)))


@dataclass(frozen=True)
class BundledModel:
    kind: str  # stylebank or johnson
    path: Path
    style: str | None  # the style's name inside a multi-style model


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    artist: str
    year: str
    folder: Path
    image: str | None
    models: dict[str, BundledModel] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)  # the whole TOML (training, judged losses, ...)

    @property
    def image_path(self) -> Path | None:
        return self.folder / self.image if self.image else None

    def model(self, kind: str | None = None) -> BundledModel:
        """The preset's model of ``kind`` (None: stylebank if it has one, else its only model)."""
        if not self.models:
            raise UsageError(f"the bundled style {self.name!r} has no trained model (only a style image for optimize)")
        if kind is None:
            kind = DEFAULT_KIND if DEFAULT_KIND in self.models else next(iter(self.models))
        if kind not in self.models:
            raise UsageError(f"the bundled style {self.name!r} has no {kind} model (it has: {', '.join(self.models)})")
        return self.models[kind]


def _preset(toml_path: Path) -> Preset:
    data = tomllib.loads(toml_path.read_text())
    folder = toml_path.parent
    models = {
        kind: BundledModel(kind, (folder / entry["file"]).resolve(), entry.get("style"))
        for kind, entry in data.get("models", {}).items()
    }
    return Preset(
        name=data["name"], title=data.get("title", data["name"]), artist=data.get("artist", ""),
        year=str(data.get("year", "")), folder=folder, image=data.get("image"), models=models, data=data,
    )  # fmt: skip


def list_presets() -> list[Preset]:
    return [_preset(path) for path in sorted(styles_root().glob("*/preset.toml"))]


def get_preset(name: str) -> Preset:
    presets = list_presets()
    for preset in presets:
        if preset.name == name:
            return preset
    known = ", ".join(preset.name for preset in presets)
    raise UsageError(f"no bundled style {name!r} (bundled: {known})")


def is_preset(name: str) -> bool:
    return any(preset.name == name for preset in list_presets())


def style_image(name: str) -> Path:
    """The style image of preset ``name`` (for ``nst optimize content.jpg NAME``)."""
    preset = get_preset(name)
    if preset.image_path is None:
        source = preset.data.get("painting", "the painting")
        raise UsageError(f"the bundled style {name!r} ships no style image ({source} is not redistributed); give an image file")
    return preset.image_path


def style_image_or_file(name_or_path: str) -> str:
    """A style image argument: a file (or '-') as given; a bundled style's name that is not a file, its image."""
    if name_or_path != "-" and not Path(name_or_path).exists() and is_preset(name_or_path):
        return str(style_image(name_or_path))
    return name_or_path


def bundled_model(names: list[str], kind: str | None, flag: str) -> BundledModel:
    """The bundled model for styles named by ``flag`` (--style, --mix or --region) when no model file is given.

    Several styles must all be in the same multi-style model.
    """
    if not names:
        raise UsageError("give a model (FILE.onnx) or a bundled style with --style NAME (list them with: nst styles)")
    if len(names) == 1:
        return get_preset(names[0]).model(kind)
    models = [get_preset(name).model(kind or DEFAULT_KIND) for name in names]
    if len({model.path for model in models}) > 1 or models[0].style is None:
        raise UsageError(f"{flag}: these bundled styles are not in one multi-style model")
    return models[0]
