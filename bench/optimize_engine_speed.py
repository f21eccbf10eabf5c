"""Benchmark: steady-state cost of one optimize evaluation (forward + backward + L-BFGS step).

Runs the engine in-process three times per setting (a warm-up, then a short and a long budget)
and divides the time difference by the difference in evaluations, so set-up (weights, targets,
CUDA-graph capture, cudnn autotuning) is excluded.

Usage:  python bench/optimize_engine_speed.py --device cuda --size 512
"""

from __future__ import annotations

import argparse
import time

import torch
from PIL import Image

from nstcli import images
from nstcli.demo import DEMO_STYLE, demo_scene
from nstcli.optimize import run_optimize
from nstcli.settings import OptimizeConfig
from nstcli.styles import get_preset


def timed_optimize(content: Image.Image, style: Image.Image, config: OptimizeConfig) -> float:
    """Seconds of one ``run_optimize``, the device's queued work included."""
    cuda = config.device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    run_optimize(content, [style], config)
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def seconds_for(config: OptimizeConfig) -> float:
    return timed_optimize(demo_scene(768), images.read_image(get_preset(DEMO_STYLE).image_path), config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--short", type=int, default=20)
    parser.add_argument("--long", type=int, default=120)
    args = parser.parse_args()
    settings = [("bf16", True), ("bf16", False), ("fp32", True), ("fp32", False)]
    if not args.device.startswith("cuda"):
        settings = [("bf16", False), ("fp32", False)]
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(f"device {name}, size {args.size} (long side), evaluations {args.short} vs {args.long}")
    print(f"{'precision':<10} {'cuda graph':<11} {'ms / evaluation':>16}")
    for precision, graph in settings:
        config = OptimizeConfig(size=args.size, min_size=args.size, device=args.device, precision=precision, cuda_graph=graph, seed=0)
        config.iterations = args.short
        seconds_for(config)  # warm-up: CUDA context, cudnn autotuning, weight decoding

        short = seconds_for(config)
        config.iterations = args.long
        long = seconds_for(config)
        print(f"{precision:<10} {str(graph):<11} {1000 * (long - short) / (args.long - args.short):>16.2f}")


if __name__ == "__main__":
    main()
