"""Benchmark: ``nst apply --ray local`` against the plain local run on the same photos, this machine.

    python bench/apply_ray.py                         # 200 photos of 480 px, starry-night, 3 rounds
    python bench/apply_ray.py --count 1000 --rounds 5

Makes --count photos (crops of --source resized to --size px on the long side, JPEG) under --work,
outside git, then times both commands in fresh processes, interleaved (the order alternates each round),
start-up included (Ray's too), and prints the median wall time, images/s, the ratio --ray / local, the
load average around each run and the local run's CPU seconds per photo (the per-core rate). The same
on a folder of one photo gives each command's fixed start-up cost. The last round's outputs are
compared byte for byte.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def make_photos(source: Path, folder: Path, count: int, size: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if len(list(folder.glob("*.jpg"))) == count:
        return
    originals = sorted(path for path in source.iterdir() if path.suffix.lower() in (".jpg", ".png"))[:count]
    for index, path in enumerate(originals):
        with Image.open(path) as image:
            image = image.convert("RGB")
            inset = index % 4 * 0.05  # crops of 100, 95, 90, 85 % of each side, centred
            width, height = image.size
            box = (int(width * inset / 2), int(height * inset / 2), int(width * (1 - inset / 2)), int(height * (1 - inset / 2)))
            image = image.crop(box)
            ratio = size / max(image.size)
            image = image.resize((round(image.width * ratio), round(image.height * ratio)), Image.Resampling.LANCZOS)
            image.save(folder / f"photo{index:04d}.jpg", quality=92)


def timed(command: list[str]) -> tuple[float, float, float]:
    """Wall seconds of ``command`` (a fresh process), the CPU seconds of it and the children it waited for
    (Ray's workers are not among them), and the 1-minute load average when it ends."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{result.stderr[-2000:]}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall, cpu, os.getloadavg()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=ROOT.parent / "shared" / "data" / "train")
    parser.add_argument("--work", type=Path, default=Path("/tmp/nst-bench-ray"))
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--size", type=int, default=480)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--style", default="starry-night")
    args = parser.parse_args()

    photos = args.work / "photos"
    make_photos(args.source, photos, args.count, args.size)
    count = len(list(photos.glob("*.jpg")))
    one = args.work / "one"  # a folder of one photo: the fixed start-up cost of each
    one.mkdir(exist_ok=True)
    shutil.copy(sorted(photos.glob("*.jpg"))[0], one)
    commands = {}
    for folder, label, out in ((photos, "", ""), (one, ", 1 photo", "-one")):
        base = [sys.executable, "-m", "nstcli", "apply", "--style", args.style, str(folder), "--overwrite", "--quiet"]
        commands[f"local{label}"] = [*base, "-o", str(args.work / f"local{out}")]
        commands[f"--ray local{label}"] = [*base, "-o", str(args.work / f"ray{out}"), "--ray", "local"]
    walls: dict[str, list[float]] = {name: [] for name in commands}
    local_cpu: list[float] = []
    loads: list[float] = [os.getloadavg()[0]]
    for round_ in range(args.rounds):
        order = list(commands) if round_ % 2 == 0 else list(commands)[::-1]  # local and --ray interleaved
        for name in order:
            wall, cpu, load = timed(commands[name])
            walls[name].append(wall)
            loads.append(load)
            if name == "local":
                local_cpu.append(cpu)
            print(f"round {round_ + 1} {name:22} {wall:7.1f} s  load {load:.2f}", flush=True)
    local_files = sorted(path.name for path in (args.work / "local").iterdir())
    same = all(filecmp.cmp(args.work / "local" / name, args.work / "ray" / name, shallow=False) for name in local_files)
    same &= local_files == sorted(path.name for path in (args.work / "ray").iterdir())

    local = statistics.median(walls["local"])
    print(f"\n{count} photos of {args.size} px (long side), --style {args.style}, {os.cpu_count()} CPUs, "
          f"median of {args.rounds}, load average {min(loads):.2f}-{max(loads):.2f}; outputs identical: {same}\n")  # fmt: skip
    print("| run | wall s (median) | all runs | img/s | ratio to local |")
    print("|---|---|---|---|---|")
    for name, runs in walls.items():
        median = statistics.median(runs)
        images, reference = (1, statistics.median(walls["local, 1 photo"])) if "1 photo" in name else (count, local)
        print(f"| nst apply {name} | {median:.1f} | {', '.join(f'{run:.1f}' for run in runs)} | {images / median:.2f} | "
              f"{median / reference:.2f}× |")  # fmt: skip
    per_core = count / statistics.median(local_cpu)
    print(f"\nlocal run: {statistics.median(local_cpu):.1f} CPU s for {count} photos = {per_core:.2f} img/s per core "
          f"(CPU time, so the machine's other load does not lower it)")  # fmt: skip


if __name__ == "__main__":
    main()
