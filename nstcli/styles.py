"""Bundled style presets: the folders of ``styles/`` (each a preset.toml plus its files).

Installed, ``styles/`` is the package ``nst_styles``; run from a source tree it is the folder beside
``nstcli/``. Models and images are only read when a preset is used.
"""

from __future__ import annotations

import importlib.util
import tomllib
from dataclasses import dataclass
from pathlib import Path

from nstcli.errors import UsageError


def styles_root() -> Path:
    source_tree = Path(__file__).resolve().parent.parent / "styles"
    if source_tree.is_dir():
        return source_tree
    spec = importlib.util.find_spec("nst_styles")
    if spec is None or not spec.submodule_search_locations:
        raise UsageError("the bundled styles are not installed (reinstall nst)")
    return Path(next(iter(spec.submodule_search_locations)))


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    artist: str
    folder: Path
    image: str | None

    @property
    def image_path(self) -> Path | None:
        return self.folder / self.image if self.image else None


def list_presets() -> list[Preset]:
    presets = []
    for toml_path in sorted(styles_root().glob("*/preset.toml")):
        data = tomllib.loads(toml_path.read_text())
        presets.append(
            Preset(data["name"], data.get("title", data["name"]), data.get("artist", ""), toml_path.parent, data.get("image"))
        )
    return presets


def get_preset(name: str) -> Preset:
    for preset in list_presets():
        if preset.name == name:
            return preset
    known = ", ".join(preset.name for preset in list_presets())
    raise UsageError(f"no bundled style {name!r} (bundled: {known})")
