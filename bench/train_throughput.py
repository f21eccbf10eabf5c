"""Training throughput of `nst train`, end to end (decode, crop, generator, descriptor, Adam), per arch.

Runs the real trainer on a generated folder of photos (random smooth images, 320 px JPEGs) for a few
warm-up steps and then a timed stretch; prints img/s at batch 4 and at the best batch of --batches,
then the rows of the study's timing table: seconds per training step per style at batch 4, total
time of the paper's run (40,000 steps at batch 4), and seconds per generated 256x256 image.

    PYTHONPATH=. python3 bench/train_throughput.py --device cpu --size 128 --batches 4 --steps 4
    PYTHONPATH=. python3 bench/train_throughput.py --device cuda            # ~2 min on an H100

On CUDA the trainer uses bf16 autocast, channels-last and fused Adam (its defaults there).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from nstcli import generators, train
from nstcli.settings import TrainConfig, with_settings
from nstcli.train_plan import TrainPlan

PAPER_STEPS = 40_000  # Johnson et al.: 2 epochs of COCO (80k images) at batch 4


def make_photos(folder: Path, count: int, size: int = 320) -> None:
    """Smooth random colour fields (upsampled noise): cheap to make, realistic to decode."""
    rng = np.random.default_rng(0)
    for index in range(count):
        small = (rng.random((size // 16, size // 16, 3)) * 255).astype(np.uint8)
        image = Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC)
        image.save(folder / f"photo{index:03d}.jpg", quality=90)


def measure(args, folder: Path, style: Path, arch: str, options: dict, batch: int) -> float:
    """img/s over the timed steps (after the warm-up steps)."""
    warmup, timed = args.warmup, args.steps
    timed = max(1, math.ceil(timed / warmup)) * warmup  # logged rows fall on multiples of warmup
    config = with_settings(TrainConfig(), dict(
        style=[str(style)], data=str(folder), arch=arch, arch_options=options, image_size=args.size,
        batch_size=batch, steps=warmup + timed, workers=args.workers, device=args.device, precision=args.precision,
        net=args.net, log_every=warmup, checkpoint_every=0,
    ))  # fmt: skip
    with tempfile.TemporaryDirectory() as out:
        result = train.run_train(TrainPlan(config, Path(out) / "model.pt"))  # checkpoint: model.ckpt beside it
    first, last = result.history[0], result.history[-1]
    return (last["step"] - first["step"]) * batch / (last["seconds"] - first["seconds"])


@torch.no_grad()
def seconds_per_image(args, arch: str, options: dict, repeats: int = 10) -> float:
    """Generator alone, batch 1 at --size, on the device (bf16 autocast on CUDA)."""
    device = torch.device("cuda" if args.device == "cuda" else "cpu")
    model = generators.build_generator(arch, generators.make_options(arch, options)).eval().to(device)
    image = torch.rand(1, 3, args.size, args.size, device=device)
    cuda = device.type == "cuda"
    if cuda:
        model, image = model.to(memory_format=torch.channels_last), image.contiguous(memory_format=torch.channels_last)
    times = []
    for _ in range(repeats + 2):
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            model(image)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return float(np.median(times[2:]))


def parse_value(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--archs", default="johnson,texture,johnson:width=0.5,johnson:width=0.25")
    parser.add_argument("--batches", default="4,8,16,32,64", help="candidates for the best batch (4 always runs)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: cuda 30, cpu 3)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: cuda 10, cpu 1)")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--images", type=int, default=256, help="generated training photos")
    parser.add_argument("--net", default="vgg19")
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()
    cuda = args.device.startswith("cuda")
    args.steps = args.steps or (30 if cuda else 3)
    args.warmup = args.warmup or (10 if cuda else 1)
    batches = sorted({4, *(int(value) for value in args.batches.split(","))})
    where = torch.cuda.get_device_name() if cuda else f"CPU, {torch.get_num_threads()} threads"
    print(f"# nst train throughput at {args.size}x{args.size}, {args.net}, {where}, torch {torch.__version__}")

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        (folder / "photos").mkdir()
        make_photos(folder / "photos", args.images)
        make_photos(folder, 1)  # the style image: photo000.jpg beside the photos folder
        style = folder / "photo000.jpg"
        print(f"| arch | params | img/s batch 4 | best batch | img/s best | s/step batch 4 | paper run (40k steps) | per image {args.size} |")
        print("|---|---|---|---|---|---|---|---|")
        for spec in args.archs.split(","):
            arch, _, option_text = spec.partition(":")
            options = {key: parse_value(value) for key, value in (item.split("=") for item in option_text.split(";") if item)}
            params = generators.count_parameters(generators.build_generator(arch, generators.make_options(arch, options)))
            speeds = {}
            for batch in batches:
                try:
                    speeds[batch] = measure(args, folder / "photos", style, arch, options, batch)
                except torch.cuda.OutOfMemoryError:
                    break
                print(f"  {spec} batch {batch}: {speeds[batch]:.1f} img/s", file=sys.stderr, flush=True)
            best = max(speeds, key=speeds.get)
            step_seconds = 4 / speeds[4]
            per_image = seconds_per_image(args, arch, options)
            row = (
                f"| {spec} | {params:,} | {speeds[4]:.1f} | {best} | {speeds[best]:.1f} | {step_seconds:.3f} "
                f"| {step_seconds * PAPER_STEPS / 3600:.2f} h | {per_image * 1000:.1f} ms |"
            )
            rows.append(row)
            print(row, flush=True)


if __name__ == "__main__":
    main()
