"""Benchmark: seconds and peak memory of one whole ``nst optimize`` run at its defaults, per output size.

Issue 16 asks for the default's seconds at 512 px and 2048 px on a GPU. Each size runs the engine
in-process at every default (coarse to fine, the default loss and budget) on a photo and a painting,
after one small warm-up run (CUDA context, weight decoding); the time includes everything a CLI run
does between reading the images and writing the result (targets per scale, cudnn autotuning, graph
capture). Peak memory is the device's (``torch.cuda.max_memory_allocated``) on a GPU, the process's
peak RSS so far on the CPU (it only grows, so give sizes from small to large).

    python bench/optimize_default_seconds.py --device cuda --sizes 512,2048 \\
        --content ../shared/data/photos/kodim08.png --style ../shared/data/paintings/vangogh_night_cafe.jpg
"""

from __future__ import annotations

import argparse
import resource
import sys
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.optimize_engine_speed import timed_optimize
from nstcli import images
from nstcli.settings import OptimizeConfig


def run_once(content: Image.Image, style: Image.Image, config: OptimizeConfig) -> float:
    if config.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    return timed_optimize(content, style, config)


def peak_gib(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", default="512,2048", help="output long sides, comma-separated")
    parser.add_argument("--content", required=True)
    parser.add_argument("--style", required=True)
    parser.add_argument("--iterations", type=int, default=None, help="budget (default: the CLI's)")
    args = parser.parse_args()
    content, style = images.read_image(args.content), images.read_image(args.style)
    budget = {} if args.iterations is None else {"iterations": args.iterations}
    run_once(content, style, OptimizeConfig(size=64, min_size=64, iterations=2, device=args.device, seed=0))
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    defaults = OptimizeConfig()
    print(f"device {name}, torch {torch.__version__}, threads {torch.get_num_threads()}; default loss "
          f"{defaults.loss.style_loss}, {budget.get('iterations', defaults.iterations)} evaluations from "
          f"--min-size {defaults.min_size}")  # fmt: skip
    print(f"{'size':>6} {'seconds':>8} {'peak GiB':>9}")
    for size in (int(text) for text in args.sizes.split(",")):
        config = OptimizeConfig(size=size, device=args.device, seed=0, **budget)
        seconds = run_once(content, style, config)
        print(f"{size:>6} {seconds:>8.1f} {peak_gib(args.device):>9.2f}", flush=True)


if __name__ == "__main__":
    main()
