"""Judged losses and contact sheets of the bundled styles on held-out photos (issues 5 and 6).

For every bundled style with a painting in --paintings: the StyleBank output, the Johnson output
(where the preset has one), the universal models with the preset's painting statistics (``--kind
universal``, default levels) and, with --optimize N, ``nst optimize`` (defaults, N evaluations) on
each photo at --size long side, each judged with ``nst score`` at the same size. Prints a table,
writes OUT/quality.json, OUT/sheet.png (rows = photos; columns = the photo, every bundled style,
a 50/50 mix of the first two) and OUT/kinds.png (stylebank vs johnson vs universal vs optimize per style).

    PYTHONPATH=. python3 bench/bundled_quality.py --out /tmp/quality --size 512
    PYTHONPATH=. OMP_NUM_THREADS=1 python3 bench/bundled_quality.py --out /tmp/q256 --size 256 --optimize 300
    PYTHONPATH=. python3 bench/bundled_quality.py --out /tmp/candidate --bank candidate.onnx   # a new bank alone
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: nstcli and tools/

from nstcli import images, model_format as fmt, optimize, report, settings, styles  # noqa: E402 - after the path set-up
from nstcli.apply.bundled import UNIVERSAL_FOLDER, UNIVERSAL_KIND  # noqa: E402
from nstcli.apply.model import Model  # noqa: E402
from nstcli.apply.universal import UniversalModel  # noqa: E402
from tools.bundled_styles import HELD_OUT  # noqa: E402 - not in the bundled models' training photos


def stylise(model: Model, photo: Image.Image, style: str | None = None, mix: dict[str, float] | None = None) -> Image.Image:
    model.select_style(style, mix)
    pixels = model.run((np.asarray(photo, dtype=np.float32) / 255.0)[None])[0]
    return images.from_array(pixels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--photos", type=Path, default=Path("../shared/data/photos"))
    parser.add_argument("--paintings", type=Path, default=Path("../shared/data/paintings"))
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--optimize", type=int, default=0, help="also nst optimize with N evaluations (slow on a CPU)")
    parser.add_argument("--styles", default="", help="comma-separated preset names (default: all with a painting)")
    parser.add_argument("--bank", type=Path, help="judge this candidate StyleBank ONNX (same style names) alone instead")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    presets = [preset for preset in styles.list_presets() if "painting" in preset.data]
    if args.styles:
        presets = [preset for preset in presets if preset.name in args.styles.split(",")]
    photos = {name: images.resize_long_side(images.read_image(args.photos / name), args.size) for name in HELD_OUT}
    sessions: dict[Path, Model] = {}
    results: dict = {"size": args.size, "photos": list(HELD_OUT), "optimize_evaluations": args.optimize, "styles": {}}
    kind_rows = []
    bank_outputs: dict[str, dict[str, Image.Image]] = {}  # preset name: photo name: stylised
    for preset in presets:
        painting = images.read_image(args.paintings / preset.data["painting"])
        outputs: dict[str, dict[str, Image.Image]] = {}
        models = {"stylebank": dataclasses.replace(preset.model("stylebank"), path=args.bank)} if args.bank else preset.models
        for kind, bundled in models.items():
            if kind == UNIVERSAL_KIND:  # the painting's statistics, painted by the bundled universal models
                universal = UniversalModel(str(styles.styles_root() / UNIVERSAL_FOLDER), [str(bundled.path)], fmt.UNIVERSAL_STYLE_SIZE)
                outputs[kind] = {name: images.from_array(universal.stylise(images.to_array(photo))) for name, photo in photos.items()}
                continue
            model = sessions.setdefault(bundled.path, Model(str(bundled.path), "cpu", 0))
            outputs[kind] = {name: stylise(model, photo, bundled.style) for name, photo in photos.items()}
        if args.optimize:
            config = settings.OptimizeConfig(size=args.size, iterations=args.optimize, seed=0)
            outputs["optimize"] = {name: optimize.run_optimize(photo, [painting], config).image for name, photo in photos.items()}
        scores = {
            kind: [optimize.score(photos[name], painting, image, args.size) for name, image in by_photo.items()]
            for kind, by_photo in outputs.items()
        }
        results["styles"][preset.name] = {
            kind: {term: statistics.mean(row[term] for row in rows) for term in ("content", "style", "total")}
            for kind, rows in scores.items()
        }
        for kind, judged in results["styles"][preset.name].items():
            print(f"{preset.name:18} {kind:10} content {judged['content']:10.4g} style {judged['style']:10.4g} "
                  f"total {judged['total']:10.4g}", flush=True)  # fmt: skip
        for name in HELD_OUT[-1:]:
            kind_rows.append([(photos[name], [preset.name])] + [(by_photo[name], [kind]) for kind, by_photo in outputs.items()])
        for kind, by_photo in outputs.items():
            for name, image in by_photo.items():
                image.save(args.out / f"{preset.name}.{kind}.{Path(name).stem}.png")
        if "stylebank" in outputs:
            bank_outputs[preset.name] = outputs["stylebank"]
    (args.out / "quality.json").write_text(json.dumps(results, indent=1))

    bank_presets = [preset for preset in presets if "stylebank" in preset.models]
    if bank_presets:
        bank = sessions[args.bank or bank_presets[0].model("stylebank").path]
        mixed = [preset.model("stylebank").style for preset in bank_presets[:2]]  # a 50/50 mix of the first two
        rows = []
        for name, photo in photos.items():
            row = [(photo, [Path(name).stem])] + [(bank_outputs[preset.name][name], [preset.name]) for preset in bank_presets]
            if len(mixed) == 2:
                row.append((stylise(bank, photo, mix=dict.fromkeys(mixed, 0.5)), [f"{mixed[0]} 50 / {mixed[1]} 50"]))
            rows.append(row)
        title = f"bundled StyleBank ({len(bank_presets)} styles, one model) on held-out photos, {args.size} px"
        report.contact_sheet(rows, cell=args.size // 2, title=title).save(args.out / "sheet.png")
    report.contact_sheet(kind_rows, cell=args.size // 2, title="per style: photo, each kind of model").save(args.out / "kinds.png")
    print(f"wrote {args.out}/quality.json, sheet.png, kinds.png")


if __name__ == "__main__":
    main()
