"""``nst apply`` on videos: clips made here with PyAV (a textured picture panned), stylised with a bundled
model. Frames, rate, duration, rotation and audio kept; --temporal and the flicker figure; scene cuts;
pixel formats; atomic outputs; one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from tests.conftest import SUBPROCESS_ENV, assert_one_line_error, nst

av = pytest.importorskip("av")
cv2 = pytest.importorskip("cv2")

STYLE = ("--style", "starry-night", "--kind", "johnson")


def scene(width: int, height: int, seed: int) -> np.ndarray:
    """A textured picture (smoothed noise over gradients), larger than the frame so it can be panned."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.random((height, width, 3)).astype(np.float32), (0, 0), 2.5)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width, y / height, 0.5 + 0.3 * np.sin(x / 9 + seed)], axis=-1)
    return (np.clip(0.5 * base + 2.5 * (noise - 0.5) + 0.25, 0, 1) * 255).astype(np.uint8)


def make_clip(path: Path, frames: int = 12, size: tuple[int, int] = (96, 64), fps: int = 24, codec: str = "libx264",
              pix_fmt: str = "yuv420p", audio: bool = False, rotation: int = 0, cut_at: int | None = None,
              bt709: bool = False) -> Path:  # fmt: skip
    """A clip panning 2 px a frame across a picture (a second picture from ``cut_at``: a scene cut)."""
    width, height = size
    pictures = [scene(width + 2 * frames + 8, height + 8, seed) for seed in (1, 2)]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if rotation:
            stream.set_display_rotation(rotation)
        if bt709:
            stream.codec_context.colorspace = stream.codec_context.color_primaries = stream.codec_context.color_trc = 1
        sound = container.add_stream("aac", rate=16000) if audio else None
        for index in range(frames):
            picture = pictures[cut_at is not None and index >= cut_at]
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture[4 : 4 + height, 2 * index : 2 * index + width]), format="rgb24")
            if bt709:
                frame = frame.reformat(format=pix_fmt, dst_colorspace="itu709")
                frame.colorspace = 1
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        if sound is not None:
            samples = int(16000 * frames / fps)
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / 16000)).astype(np.float32)
            for start in range(0, samples, 1024):
                chunk = av.AudioFrame.from_ndarray(tone[None, start : start + 1024], format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts = 16000, start
                container.mux(sound.encode(chunk))
            container.mux(sound.encode(None))
    return path


def read_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24").astype(np.float32) for frame in container.decode(video=0)]


def apply_json(*args: str) -> dict:
    result = nst("apply", *STYLE, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_keeps_frames_rate_duration_rotation_and_audio(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", frames=12, fps=24, audio=True, rotation=90)
    summary = apply_json(str(clip), "-o", str(tmp_path / "styled.mp4"))
    video = summary["videos"][0]
    assert summary["written"] == 1 and video["frames"] == 12 and video["fps"] == 24
    assert video["audio_streams"] == 1 and video["rotation"] == 90 and video["codec"] == "libx264"
    assert video["flicker"] is not None and video["flicker"] > 0
    with av.open(str(clip)) as source, av.open(str(tmp_path / "styled.mp4")) as styled:
        assert styled.streams.video[0].frames == 12
        assert styled.streams.video[0].average_rate == Fraction(24)
        assert abs(styled.duration - source.duration) < 0.05 * source.duration
        (audio_in,), (audio_out,) = source.streams.audio, styled.streams.audio
        assert audio_out.codec_context.name == "aac" and audio_out.frames == audio_in.frames
        assert next(styled.decode(video=0)).rotation == 90
        assert styled.streams.video[0].codec_context.pix_fmt == "yuv420p"


def test_flow_flickers_least_and_blend_ghosts(tmp_path):
    clip = make_clip(tmp_path / "pan.mkv", frames=16, codec="ffv1", pix_fmt="yuv444p")
    flicker, frames = {}, {}
    for mode in ("off", "blend", "flow"):
        out = tmp_path / f"{mode}.mkv"
        flicker[mode] = apply_json(str(clip), "-o", str(out), "--temporal", mode)["videos"][0]["flicker"]
        frames[mode] = read_frames(out)
    assert flicker["flow"] < 0.7 * flicker["off"], flicker
    assert flicker["blend"] < flicker["off"], flicker
    # Ghosting: blend drifts from what the network paints for each frame much more than flow does.
    drift = {mode: np.mean([np.abs(a - b).mean() for a, b in zip(frames[mode], frames["off"])]) for mode in ("blend", "flow")}
    assert drift["flow"] < drift["blend"], drift


def test_a_scene_cut_resets_the_carry_over(tmp_path):
    clip = make_clip(tmp_path / "cut.mkv", frames=12, codec="ffv1", pix_fmt="yuv444p", cut_at=6)
    runs = {}
    for mode in ("off", "blend", "flow"):
        summary = apply_json(str(clip), "-o", str(tmp_path / f"{mode}.mkv"), "--temporal", mode)
        assert summary["videos"][0]["scene_cuts"] == 1
        runs[mode] = read_frames(tmp_path / f"{mode}.mkv")
    for mode in ("blend", "flow"):
        # The first frame after the cut is the network's own: no ghost of the scene before.
        assert np.abs(runs[mode][6] - runs["off"][6]).max() <= 2, mode
        assert np.abs(runs[mode][7] - runs["off"][7]).mean() > 0.1, mode  # and carrying over starts again


@pytest.mark.parametrize(
    ("pix_fmt", "max_size", "written"),
    [("yuv420p10le", None, "yuv420p10le"), ("yuv444p", None, "yuv444p"), ("yuv420p", "95", "yuv444p")],
)
def test_pixel_formats_and_odd_sizes(tmp_path, pix_fmt, max_size, written):
    """10-bit and 4:4:4 are kept; an odd size (here from --max-size) is written 4:4:4, which allows it."""
    clip = make_clip(tmp_path / "clip.mp4", frames=4, pix_fmt=pix_fmt)
    extra = ("--max-size", max_size) if max_size else ()
    result = nst("apply", *STYLE, str(clip), "-o", str(tmp_path / "out.mp4"), "--temporal", "off", "--json", *extra)
    assert result.returncode == 0, result.stderr
    video = json.loads(result.stdout)["videos"][0]
    size = (95, 63) if max_size else (96, 64)
    assert video["pixel_format"] == written and video["size"] == list(size)
    with av.open(str(tmp_path / "out.mp4")) as styled:
        stream = styled.streams.video[0]
        assert (stream.width, stream.height, stream.codec_context.pix_fmt) == (*size, written)
    if max_size:
        assert "odd frame size 95x63" in result.stderr


@pytest.mark.parametrize("bt709", [False, True])
def test_colours_survive_the_round_trip(tmp_path, bt709):
    """--strength 0 writes the input back: decode and encode use the clip's own colour matrix."""
    clip = make_clip(tmp_path / "clip.mp4", frames=3, bt709=bt709)
    assert nst("apply", *STYLE, str(clip), "-o", str(tmp_path / "out.mp4"), "--strength", "0").returncode == 0
    for before, after in zip(read_frames(clip), read_frames(tmp_path / "out.mp4")):
        assert np.abs(before.mean((0, 1)) - after.mean((0, 1))).max() < 2.0


def test_folder_of_images_and_videos_format_and_skip_existing(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    make_clip(inputs / "a.mp4", frames=4)
    make_clip(inputs / "b.mov", frames=4)
    cv2.imwrite(str(inputs / "still.png"), scene(40, 32, 3))
    out = tmp_path / "out"
    summary = apply_json(str(inputs), "-o", str(out), "--format", "mkv", "--temporal", "blend")
    assert summary["written"] == 3 and len(summary["videos"]) == 2
    assert sorted(p.name for p in out.iterdir()) == ["a.mkv", "b.mkv", "still.png"]
    with av.open(str(out / "a.mkv")) as styled:
        assert styled.format.name == "matroska,webm" and styled.streams.video[0].frames in (0, 4)
        assert len(list(styled.decode(video=0))) == 4
    again = apply_json(str(inputs), "-o", str(out), "--format", "mkv", "--skip-existing")
    assert again["skipped"] == 3 and again["written"] == 0


def test_corrupt_and_failing_videos_leave_no_file(tmp_path):
    (tmp_path / "bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    good = make_clip(tmp_path / "good.mp4", frames=8)
    (tmp_path / "half.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    out = tmp_path / "out"
    out.mkdir()
    for name in ("bad.mp4", "half.mp4"):
        result = nst("apply", *STYLE, str(tmp_path / name), "-o", str(out / name))
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert f"{name}: " in result.stderr
        assert not (out / name).exists()
    # A failure half-way (here: the model) leaves no partial output and no temporary file.
    from nstcli.apply.stylizer import Stylizer

    calls = []

    def failing(self, batch, tiled):
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("simulated failure")
        return list(batch)

    with mock.patch.object(Stylizer, "render", failing):
        result = nst("apply", *STYLE, str(good), "-o", str(out / "good.mp4"))
    assert result.returncode == 1 and "simulated failure" in result.stderr
    assert not (out / "good.mp4").exists() and leftovers(out) == []


def test_a_truncated_video_without_a_frame_count_is_reported(tmp_path):
    """Matroska counts no frames: a cut file is measured against its duration (an MP4 against its count)."""
    whole = make_clip(tmp_path / "whole.mkv", frames=24)
    (tmp_path / "cut.mkv").write_bytes(whole.read_bytes()[: whole.stat().st_size * 3 // 4])
    complete = apply_json(str(whole), "-o", str(tmp_path / "a.mkv"))["videos"][0]
    assert complete["frames"] == 24 and complete["warnings"] == []
    cut = apply_json(str(tmp_path / "cut.mkv"), "-o", str(tmp_path / "b.mkv"))["videos"][0]
    assert 0 < cut["frames"] < 20
    assert cut["warnings"] == [f"decoded {cut['frames']} frames, where its duration holds about 24 (truncated?)"]


def test_one_line_errors(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", frames=2)
    assert_one_line_error(nst("apply", *STYLE, str(clip), "-o", "-"), 2, "videos are written to files")
    assert_one_line_error(nst("apply", *STYLE, str(clip), "-o", str(tmp_path / "x.png")), 2, "is a video")
    assert_one_line_error(nst("apply", *STYLE, str(clip), "-o", str(tmp_path / "o"), "--temporal", "smooth"), 2, "--temporal")
    from_stdin = nst("apply", *STYLE, "-", "-o", str(tmp_path / "v.mp4"), stdin=clip.read_bytes())
    assert_one_line_error(from_stdin, 2, "stdin (-) is read as one image; a video is read from its file")
    clash = nst("apply", *STYLE, str(clip), "-o", str(tmp_path / "v.mp4"), "--format", "webm")  # not WebM in .mp4
    assert_one_line_error(clash, 2, "named .mp4, but --format is webm")
    assert not (tmp_path / "v.mp4").exists()
    with mock.patch.dict(sys.modules, {"av": None}):
        result = nst("apply", *STYLE, str(clip), "-o", str(tmp_path / "o.mp4"))
    assert_one_line_error(result, 2, "pip install 'nst[video]'")
    assert not (tmp_path / "o.mp4").exists()


def test_video_path_never_imports_torch(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", frames=3)
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "nstcli", "apply", *STYLE, str(clip), "-o", str(tmp_path / "o.mp4")],
        capture_output=True, text=True, timeout=120, env=SUBPROCESS_ENV,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    modules = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "av" in modules and "cv2" in modules
    assert sorted(m for m in modules if m.split(".")[0] in ("torch", "torchvision")) == []
