"""Measure every bundled style's painting for ``nst apply --style NAME --kind universal`` and add the model to its preset.

    PYTHONPATH=. python3 tools/universal_stats.py [PAINTINGS_DIR]

For each preset with a painting (``painting = FILE``, found in PAINTINGS_DIR, default ../shared/data/paintings;
the paintings are not redistributed; the procedural ``swirls`` has none), the bundled universal encoder
measures it at the default style size on every level (4..1), as ``nst apply --style-image`` would, and
``styles/NAME/NAME.npz`` holds the statistics (the file stem names the style for --region and --name {style}).
A preset without a ``[models.universal]`` table gets one appended; nothing else in it is rewritten.
"""

from __future__ import annotations

import sys
from pathlib import Path

from nstcli import model_format as fmt, styles
from nstcli.apply.bundled import UNIVERSAL_FOLDER, UNIVERSAL_KIND
from nstcli.apply.universal import ALL_LEVELS, UniversalModel, save_painting_stats

DEFAULT_PAINTINGS = Path(__file__).resolve().parents[2] / "shared" / "data" / "paintings"


def painting_of(preset: styles.Preset, paintings: Path) -> Path | None:
    name = preset.data.get("painting")
    return paintings / name if name and (paintings / name).is_file() else None


def with_universal_table(text: str, statistics: str) -> str:
    """A preset's text with its ``[models.universal]`` table added after the other models' tables: before the
    first ``[training.`` table and the comment lines that belong to it (at the end when there is none)."""
    entry = [f"[models.{UNIVERSAL_KIND}]", f'file = "{statistics}"  # the painting\'s statistics (tools/universal_stats.py)', ""]
    lines = text.splitlines()
    at = next((index for index, line in enumerate(lines) if line.startswith("[training.")), None)
    if at is None:
        return text.rstrip("\n") + "\n\n" + "\n".join(entry)
    while at > 0 and lines[at - 1].startswith("#"):
        at -= 1
    return "\n".join(lines[:at] + entry + lines[at:]) + "\n"


def main() -> None:
    paintings = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_PAINTINGS
    folder = str(styles.styles_root() / UNIVERSAL_FOLDER)
    for preset in styles.list_presets():
        painting = painting_of(preset, paintings)
        if painting is None:
            print(f"{preset.name}: no painting found, skipped")
            continue
        model = UniversalModel(folder, [str(painting)], fmt.UNIVERSAL_STYLE_SIZE, levels=list(ALL_LEVELS), threads=1)
        target = preset.folder / f"{preset.name}.npz"
        save_painting_stats(target, {level: model.stats[level][0] for level in ALL_LEVELS}, fmt.UNIVERSAL_STYLE_SIZE)
        toml = preset.folder / "preset.toml"
        text = toml.read_text()
        if f"[models.{UNIVERSAL_KIND}]" not in text:
            toml.write_text(with_universal_table(text, target.name))
        print(f"{preset.name}: {painting.name} -> {target} ({target.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
