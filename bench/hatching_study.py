"""What makes the bundled nets hatch (issue 18, step 1): small CPU trainings that vary one thing at a time.

Every variant is ``nst train --arch johnson`` with BASE flags plus its own, on --data (default
../shared/data/train; the variant ``photos23`` uses the Kodak photos other than the judged ones),
exported and applied to the judged Kodak photos at --size. For each variant it prints the judged
losses (``nst score``), the hatching coherence, hatched area and mesh amplitude (bench/texture_noise.py)
and writes WORK/sheet.png (rows = judged photos; columns = photo, variants, optional --column
LABEL=MODEL.onnx) and WORK/crops.png (a 160 px crop of each at 2x, where hatching shows). Finished trainings are reused.

    OMP_NUM_THREADS=1 PYTHONPATH=. python bench/hatching_study.py --work /tmp/hatch --jobs 2 \\
        --variant base= --variant tv="--tv-weight 1e6" --variant scale1="--style-scale 1"
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.texture_noise import hatched_area, hatching_coherence, mesh_amplitude
from nstcli import images, report
from nstcli.apply.model import Model
from nstcli.optimize import score

DATA = REPO.parent / "shared" / "data"
JUDGED = ("kodim04", "kodim08", "kodim13", "kodim23")  # portrait, street, landscape, parrots
BASE = (
    "--arch johnson --width 0.5 --output-kernel 3 --image-size 128 --batch-size 4 --crop-scale 0.5 "
    "--style-weight 0.7 --style-scale 2 --warmup-steps 50 --checkpoint-every 0 --workers 1 --log-every 50"
)


def kodak_training_photos(work: Path) -> Path:
    """The Kodak photos that are not judged, as links in one folder (the old bundled nets' data)."""
    folder = work / "photos23"
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted((DATA / "photos").glob("*.png")):
        if path.stem not in JUDGED and not (folder / path.name).exists():
            (folder / path.name).symlink_to(path)
    return folder


def train(work: Path, label: str, flags: str, painting: Path, steps: int, data: Path) -> Path:
    """Train and export one variant (skipped when its ONNX file exists); returns the ONNX path."""
    onnx_path = work / f"{label}.onnx"
    if onnx_path.exists():
        return onnx_path
    if label == "photos23":
        data = kodak_training_photos(work)
    command = [sys.executable, "-m", "nstcli", "train", *shlex.split(BASE), *shlex.split(flags),
               "--style-image", str(painting), "--data", str(data), "--steps", str(steps),
               "-o", str(work / f"{label}.pt"), "--export", str(onnx_path), "--overwrite", "--quiet"]  # fmt: skip
    done = subprocess.run(command, check=False, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{label}: nst train failed:\n{done.stderr}")
    return onnx_path


def stylise(model: Model, photo: Image.Image) -> Image.Image:
    return images.from_array(model.run((np.asarray(photo, dtype=np.float32) / 255.0)[None])[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--variant", action="append", default=[], help='LABEL="FLAGS" (LABEL photos23: Kodak data)')
    parser.add_argument("--column", action="append", default=[], help="LABEL=MODEL.onnx: a trained model to show too")
    parser.add_argument("--painting", type=Path, default=DATA / "paintings" / "vangogh_starry_night.jpg")
    parser.add_argument("--data", type=Path, default=DATA / "train")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--size", type=int, default=512, help="long side the judged photos are stylised at")
    parser.add_argument("--jobs", type=int, default=1, help="trainings at once (each should get one thread)")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    variants = dict(text.partition("=")[::2] for text in args.variant)
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {label: pool.submit(train, args.work, label, flags, args.painting, args.steps, args.data)
                   for label, flags in variants.items()}  # fmt: skip
        models = {label: future.result() for label, future in futures.items()}
    models |= {label: Path(path) for label, _, path in (text.partition("=") for text in args.column)}

    painting = images.read_image(args.painting)
    rows, crops = [], []
    figures: dict[str, list[tuple[float, float, float, float, float]]] = {label: [] for label in models}
    sessions = {label: Model(str(path), "cpu", 0) for label, path in models.items()}
    for name in JUDGED:
        photo = images.resize_long_side(images.read_image(DATA / "photos" / f"{name}.png"), args.size)
        box = (photo.width // 2 - 80, photo.height // 3 - 80, photo.width // 2 + 80, photo.height // 3 + 80)
        row, crop_row = [(photo, [name])], [(photo.crop(box).resize((320, 320), Image.Resampling.NEAREST), [name])]
        for label, session in sessions.items():
            output = stylise(session, photo)
            judged = score(photo, painting, output, args.size)
            figures[label].append((hatching_coherence(photo, output), judged["content"], judged["style"],
                                   hatched_area(photo, output), mesh_amplitude(photo, output)))  # fmt: skip
            row.append((output, [label]))
            crop_row.append((output.crop(box).resize((320, 320), Image.Resampling.NEAREST), [label]))
        rows.append(row)
        crops.append(crop_row)
    report.write_contact_sheet(rows, args.work / "sheet.png", cell=args.size // 2, title=f"hatching study, {args.size} px")
    report.write_contact_sheet(crops, args.work / "crops.png", cell=320, title="160 px crops at 2x")

    print(f"{'variant':12} {'hatching coherence (each photo)':34} {'mean':>6} {'hatched':>7} {'mesh':>5} {'content':>9} {'style':>9}  flags")
    for label, values in figures.items():
        coherence = " ".join(f"{value[0]:.3f}" for value in values)
        print(f"{label:12} {coherence:34} {statistics.mean(v[0] for v in values):6.3f} {statistics.mean(v[3] for v in values):7.3f} "
              f"{statistics.mean(v[4] for v in values):5.1f} {statistics.mean(v[1] for v in values):9.3e} "
              f"{statistics.mean(v[2] for v in values):9.3e}  {variants.get(label, models[label])}")  # fmt: skip
    print(f"wrote {args.work / 'sheet.png'} and {args.work / 'crops.png'}")


if __name__ == "__main__":
    main()
