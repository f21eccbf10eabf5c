"""The descriptor's memory layout: VGG19 forward + backward in NCHW against channels-last (NHWC), same run.

Two shapes stand for the two heavy users: a training step's batch (4 x 128 px crops, to relu4_4) and one
optimisation evaluation (one 512 px image, to relu5_1). Rounds alternate the layouts so load from other work
falls on both alike; the table gives the median seconds of each and their ratio.

    PYTHONPATH=. python3 bench/descriptor_layout.py --threads 1 --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from nstcli.descriptors import Descriptor, build_descriptor
from nstcli.devices import resolve_precision

SHAPES = {  # name: (batch, size, deepest layer)
    "train 4 x 128 px": (4, 128, ["relu1_2", "relu2_2", "relu3_4", "relu4_4"]),
    "optimize 1 x 512 px": (1, 512, ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]),
}
LAYOUTS = {"NCHW": torch.contiguous_format, "NHWC": torch.channels_last}


def forward_backward(descriptor: Descriptor, image: torch.Tensor, layers: list[str], layout: torch.memory_format,
                     dtype: torch.dtype) -> float:  # fmt: skip
    """Seconds for one pass of ``image`` through the descriptor's layers in ``layout`` and back to the pixels.
    Walks the layers itself: ``Descriptor.forward`` always runs channels-last."""
    start = time.perf_counter()
    x = image.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        h = descriptor.preprocess(x).contiguous(memory_format=layout)
        loss = h.new_zeros(())
        for name, layer in descriptor.layers.items():
            h = layer(h)
            if name in layers:
                loss = loss + h.float().square().mean()
    loss.backward()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--precision", default="auto", help="auto (bf16 where native), fp32 or bf16")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dtype = resolve_precision(args.precision, torch.device("cpu"))
    capability = torch.backends.cpu.get_cpu_capability()
    print(f"CPU ({capability}), {args.threads} thread(s), {dtype}, median of {args.rounds} rounds after one warm-up")
    print(f"{'shape':22} {'NCHW s':>8} {'NHWC s':>8} {'NCHW / NHWC':>12}")
    for shape, (batch, size, layers) in SHAPES.items():
        descriptor = build_descriptor("vgg19", layers)
        image = torch.rand(batch, 3, size, size)
        times: dict[str, list[float]] = {name: [] for name in LAYOUTS}
        for round_index in range(args.rounds + 1):
            for name, layout in LAYOUTS.items():
                seconds = forward_backward(descriptor.to(memory_format=layout), image, layers, layout, dtype)
                if round_index:  # the first round warms oneDNN's kernel cache
                    times[name].append(seconds)
        nchw, nhwc = statistics.median(times["NCHW"]), statistics.median(times["NHWC"])
        print(f"{shape:22} {nchw:8.3f} {nhwc:8.3f} {nchw / nhwc:11.2f}x", flush=True)


if __name__ == "__main__":
    main()
