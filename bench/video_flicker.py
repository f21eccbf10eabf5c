"""Benchmark: flicker and speed of ``nst apply --temporal off|blend|flow`` vs ``styletransfer-lite video --smooth``.

    python bench/video_flicker.py --peer /tmp/peervenv/bin/styletransfer-lite            # the table
    python bench/video_flicker.py --sweep-only                                          # the weight sweep
    python bench/video_flicker.py --memory-seconds 60 --memory-fps 3 --skip-table        # peak memory

What it does (all files under --work, outside git):
1. makes clips from the Kodak photos in --photos: a slow pan with a zoom (and a little bob) across a
   photo, --frames frames at 25 fps, H.264 CRF 16, at 854x480 (--clips of them) and 1280x720
   (--clips-720 of them);
2. runs, each in a fresh process, ``nst apply --style STYLE CLIP -o OUT --temporal MODE`` for off,
   blend and flow, and the peer's ``video CLIP -o OUT --smooth S --max-size LONG_SIDE`` for each --smooth
   (its model is its own: compare its modes with each other, and ours with ours); wall time includes
   start-up; peak RSS is the process's;
3. measures flicker on every output the same way (``temporal.FlickerMeter``: the warping error of
   consecutive output frames, warped with the *input*'s DIS flow, occlusions masked), decoded from the
   files as written (so each tool's codec is in it), and the drift from the frames stylised alone (the
   mean absolute difference, 0..255, to ``off``: what ghosting and smearing cost);
4. --sweep: stylises one clip's frames once in this process and runs ``temporal.Stabiliser`` at
   several weights, for the default's choice;
5. writes strips of 4 consecutive frames (a crop) per mode as PNG, and results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from apply_throughput import measure  # noqa: E402  (fresh-process timing and peak RSS)

from nstcli.apply import temporal  # noqa: E402

SIZES = {480: (854, 480), 720: (1280, 720)}
PHOTOS = ("kodim05.png", "kodim13.png", "kodim21.png", "kodim03.png")


def make_clip(photo: Path, path: Path, frames: int, size: tuple[int, int], fps: int = 25) -> Path:
    """Pan (30% of the width), zoom (x1.35) and bob across ``photo``; a fresh clip only if missing."""
    import av
    import cv2
    from PIL import Image

    if path.exists():
        return path
    picture = np.asarray(Image.open(photo).convert("RGB"))
    height, width = picture.shape[:2]
    out_w, out_h = size
    temp = path.with_suffix(".part.mp4")
    with av.open(str(temp), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = out_w, out_h, "yuv420p"
        stream.options = {"crf": "16"}
        for index in range(frames):
            t = index / max(frames - 1, 1)
            zoom = 1.0 + 0.35 * t
            crop_w = min(width * 0.75 / zoom, height * 0.75 / zoom * out_w / out_h)
            crop_h = crop_w * out_h / out_w
            centre_x = width * (0.35 + 0.3 * t)
            centre_y = height * (0.5 + 0.04 * np.sin(2 * np.pi * t))
            scale = crop_w / out_w
            matrix = np.array([[scale, 0, centre_x - crop_w / 2], [0, scale, centre_y - crop_h / 2]], np.float32)
            pixels = cv2.warpAffine(picture, matrix, (out_w, out_h), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                                    borderMode=cv2.BORDER_REFLECT)  # fmt: skip
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    os.replace(temp, path)
    return path


def frames_of(path: Path):
    import av

    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24")


def flicker_and_drift(clip: Path, output: Path, reference: Path | None) -> tuple[float, float | None, int]:
    """The flicker figure of ``output`` (motion from ``clip``) and its drift from ``reference``."""
    motion, meter = temporal.MotionEstimator(flow=True), temporal.FlickerMeter()
    drift, count = 0.0, 0
    references = frames_of(reference) if reference is not None else None
    for source, styled in zip(frames_of(clip), frames_of(output)):
        meter.add(styled, motion.next(source))
        if references is not None:
            drift += float(np.abs(styled.astype(np.float32) - next(references).astype(np.float32)).mean())
        count += 1
    return meter.value, (drift / count if references is not None else None), count


def strip(outputs: dict[str, Path], clip: Path, dest: Path, start: int, crop: int = 300) -> None:
    """4 consecutive frames (a centre crop) per row: the input, then each output."""
    from PIL import Image, ImageDraw

    rows = []
    for label, path in {"input": clip, **outputs}.items():
        cells = []
        for index, frame in enumerate(frames_of(path)):
            if index >= start + 4:
                break
            if index >= start:
                height, width = frame.shape[:2]
                top, left = (height - crop) // 2, (width - crop) // 2
                cells.append(frame[top : top + crop, left : left + crop])
        row = Image.fromarray(np.concatenate(cells, axis=1))
        ImageDraw.Draw(row).text((4, 4), label, fill=(255, 255, 255))
        rows.append(np.asarray(row))
    Image.fromarray(np.concatenate(rows, axis=0)).save(dest)


def run_table(args: argparse.Namespace, work: Path) -> list[dict]:
    photos = Path(args.photos)
    clips = [(480, index) for index in range(args.clips)] + [(720, index) for index in range(args.clips_720)]
    rows = []
    for height, index in clips:
        size = SIZES[height]
        clip = make_clip(photos / PHOTOS[index], work / f"clip{index}_{height}p.mp4", args.frames, size)
        outputs: dict[str, Path] = {}
        for mode in ("off", "blend", "flow"):
            out = work / f"clip{index}_{height}p_nst_{mode}.mp4"
            command = [sys.executable, "-m", "nstcli", "apply", "--style", args.style, str(clip), "-o", str(out),
                       "--temporal", mode, "--overwrite", "--quiet"]  # fmt: skip
            outputs[f"nst {mode}"] = (out, measure([command]))
        if args.peer:
            for smooth in args.smooth:
                out = work / f"clip{index}_{height}p_peer_{smooth}.mp4"
                command = [args.peer, "video", str(clip), "-o", str(out), "--smooth", str(smooth), "--style",
                           str(args.peer_style), "--max-size", str(max(size))]  # fmt: skip
                outputs[f"peer smooth {smooth}"] = (out, measure([command]))
        flicker, _, frames = flicker_and_drift(clip, clip, None)  # the input's own: the figure's floor
        rows.append({"clip": clip.name, "height": height, "mode": "input", "frames": frames, "flicker": flicker,
                     "drift": None, "fps": 0.0, "rss_mb": 0.0})  # fmt: skip
        for label, (out, timing) in outputs.items():
            reference = outputs["nst off"][0] if label.startswith("nst") else outputs.get(f"peer smooth {args.smooth[0]}", (None,))[0]
            flicker, drift, frames = flicker_and_drift(clip, out, reference)
            row = {"clip": clip.name, "height": height, "mode": label, "frames": frames, "flicker": flicker,
                   "drift": drift, "fps": frames / timing["wall"], "rss_mb": timing["rss_mb"]}  # fmt: skip
            rows.append(row)
            print(json.dumps(row), flush=True)
        strip({label: out for label, (out, _) in outputs.items()}, clip, work / f"strip_clip{index}_{height}p.png", args.frames // 2)
    return rows


def sweep(args: argparse.Namespace, work: Path) -> list[dict]:
    """One 480p clip stylised once; the stabiliser at several weights (same frames for all)."""
    from nstcli.apply.bundled import resolve_model
    from nstcli.apply.model import Model

    clip = make_clip(Path(args.photos) / PHOTOS[0], work / "clip0_480p.mp4", args.frames, SIZES[480])
    resolved = resolve_model([str(clip)], args.style, None, None, None)
    model = Model(resolved.model, "cpu", 0)
    model.select_style(resolved.style, None)
    sources, stylised = [], []
    for pixels in frames_of(clip):
        sources.append(pixels)
        stylised.append(model.run(pixels[None].astype(np.float32) / 255)[0])
    rows = []
    for mode, weight in [("off", 0.0)] + [(m, w) for m in ("blend", "flow") for w in args.weights]:
        motion, meter, stabiliser = temporal.MotionEstimator(flow=True), temporal.FlickerMeter(), temporal.Stabiliser(mode, weight)
        drift = 0.0
        for source, frame in zip(sources, stylised):
            step = motion.next(source)
            out = (np.clip(stabiliser.next(frame, step), 0, 1) * 255 + 0.5).astype(np.uint8)
            meter.add(out, step)
            drift += float(np.abs(out.astype(np.float32) - np.clip(frame, 0, 1) * 255).mean())
        row = {"mode": mode, "weight": weight, "flicker": meter.value, "drift": drift / len(stylised)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def posthoc(args: argparse.Namespace, work: Path) -> list[dict]:
    """nst's flow stabiliser run afterwards on the peer's per-frame output (``--smooth 0``): the same
    temporal method on the peer's model, to compare methods rather than models."""
    rows = []
    for peer in sorted(work.glob("clip*_peer_0.0.mp4")):
        clip = work / peer.name.replace("_peer_0.0", "")
        motion, meter = temporal.MotionEstimator(flow=True), temporal.FlickerMeter()
        stabiliser = temporal.Stabiliser("flow", args.posthoc_weight)
        drift, count = 0.0, 0
        for source, styled in zip(frames_of(clip), frames_of(peer)):
            step = motion.next(source)
            out = (np.clip(stabiliser.next(styled.astype(np.float32) / 255, step), 0, 1) * 255 + 0.5).astype(np.uint8)
            meter.add(out, step)
            drift += float(np.abs(out.astype(np.float32) - styled).mean())
            count += 1
        row = {"clip": clip.name, "mode": f"peer smooth 0 + nst flow {stabiliser.weight:.1f} (afterwards)",
               "flicker": meter.value, "drift": drift / count}  # fmt: skip
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def memory(args: argparse.Namespace, work: Path) -> list[dict]:
    """Peak RSS of ``nst apply`` (flow) on 720p clips of two lengths: flat means streaming works."""
    rows = []
    for seconds in (args.memory_seconds // 6, args.memory_seconds):
        frames = seconds * args.memory_fps
        clip = make_clip(Path(args.photos) / PHOTOS[1], work / f"memory_{seconds}s_720p.mp4", frames, SIZES[720], args.memory_fps)
        out = work / f"memory_{seconds}s_720p_nst.mp4"
        command = [sys.executable, "-m", "nstcli", "apply", "--style", args.style, str(clip), "-o", str(out), "--overwrite", "--quiet"]
        timing = measure([command])
        row = {"clip": clip.name, "seconds": seconds, "frames": frames, "rss_mb": timing["rss_mb"], "fps": frames / timing["wall"]}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", default=str(ROOT.parent / "shared" / "data" / "photos"))
    parser.add_argument("--work", default="/tmp/nst-video-bench")
    parser.add_argument("--style", default="starry-night")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--clips", type=int, default=3, help="480p clips")
    parser.add_argument("--clips-720", type=int, default=1, help="720p clips")
    parser.add_argument("--peer", help="the styletransfer-lite executable (its own venv)")
    parser.add_argument("--peer-style", default="0")
    parser.add_argument("--smooth", type=float, nargs="+", default=[0.0, 0.5, 0.8])
    parser.add_argument("--weights", type=float, nargs="+", default=[0.4, 0.6, 0.8])
    parser.add_argument("--sweep", action="store_true", help="also the weight sweep")
    parser.add_argument("--sweep-only", action="store_true")
    parser.add_argument("--skip-table", action="store_true")
    parser.add_argument("--posthoc", action="store_true", help="nst's flow on the peer's --smooth 0 outputs in --work")
    parser.add_argument("--posthoc-weight", type=float, default=temporal.DEFAULT_WEIGHT)
    parser.add_argument("--memory-seconds", type=int, default=0, help="also peak memory on a 720p clip this long")
    parser.add_argument("--memory-fps", type=int, default=25)
    args = parser.parse_args()
    if not args.photos.startswith("/"):
        args.photos = str(Path(args.photos).resolve())
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ["PYTHONPATH"] = str(ROOT)
    results: dict[str, list[dict]] = {}
    if args.sweep or args.sweep_only:
        results["sweep"] = sweep(args, work)
    if not (args.skip_table or args.sweep_only):
        results["table"] = run_table(args, work)
    if args.posthoc:
        results["posthoc"] = posthoc(args, work)
    if args.memory_seconds:
        results["memory"] = memory(args, work)
    previous = json.loads((work / "results.json").read_text()) if (work / "results.json").exists() else {}
    (work / "results.json").write_text(json.dumps({**previous, **results}, indent=1))
    if "table" in results:
        print("\n| clip | mode | flicker (warping error x1000) | drift from off (0..255) | frames/s | peak RSS MB |")
        print("|---|---|---|---|---|---|")
        for row in results["table"]:
            drift = "-" if row["drift"] is None else f"{row['drift']:.1f}"
            print(f"| {row['clip']} | {row['mode']} | {row['flicker'] * 1000:.2f} | {drift} | {row['fps']:.2f} | {row['rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
