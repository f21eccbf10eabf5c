"""Videos in ``nst apply``: decode -> stylise -> steady (``temporal``) -> encode, streamed.

Flow of one video (``stylise_video``):
  decode   a thread: demux, decode (any pixel format, to RGB), --max-size, and the motion from the
           previous input frame (``temporal.MotionEstimator``: flow, trusted pixels, scene cuts);
           audio packets ride along with the next video frame
  stylise  the caller's thread: the model (``stylizer.Stylizer``: tiles, regions), --strength and
           --preserve-color (``Stylizer.finish``), then ``temporal.Stabiliser``
  encode   a thread: the flicker figure, encode, mux (audio copied as it is), into a temporary file
           renamed into place at the end: a failed or killed run leaves no partial video
Bounded queues keep memory flat for any length. Frame timestamps are the input's (so the frame
rate, variable or not, and the duration are kept), and so are the rotation and the audio streams.

Container and codec follow the input unless --format names another container (then its usual
codec). PyAV (FFmpeg's libraries in its wheels) and OpenCV are the optional ``video`` extra; both
are imported only when a video is among the inputs.
"""

from __future__ import annotations

import contextlib
import os
import queue
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

from nstcli import images
from nstcli.apply import temporal
from nstcli.apply.config import VIDEO_FORMATS, ApplyConfig, Job
from nstcli.apply.jobs import video_format
from nstcli.apply.pipeline import put
from nstcli.errors import InputError, NstError, UsageError

# A video without a frame count that decodes to fewer than this share of its duration's frames is reported
# (a variable frame rate makes the estimate rough, so only a clear shortfall counts).
SHORT_OF_DURATION = 0.9
# Encoders used when the input's codec cannot be written here or --format asks for another container.
DEFAULT_CODEC = {"mp4": "libx264", "mov": "libx264", "matroska": "libx264", "webm": "libvpx-vp9", "avi": "mpeg4"}
# Encoders whose quality is a constant rate factor (--quality 95 -> CRF 18, visually lossless for x264).
CRF_CODECS = {"libx264": 51, "libx265": 51, "libvpx-vp9": 63, "libvpx": 63, "libsvtav1": 63}
QUEUE_DEPTH = 4
# FFmpeg's colour-space tag (AVColorSpace) -> swscale's matrix for RGB -> YUV (None: its default, BT.601).
SWS_MATRIX = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}


def require_av():
    """PyAV, or the one-line UsageError that names the extra (OpenCV is checked with it)."""
    try:
        import av
    except ImportError:
        raise UsageError(f"video needs PyAV: {temporal.VIDEO_EXTRA}") from None
    temporal.require_cv2()
    return av


@dataclass
class VideoResult:
    """One video's line in the --json summary."""

    input: str
    output: str
    frames: int
    fps: float  # the clip's frame rate
    duration: float  # seconds
    size: list[int]  # width, height written
    codec: str
    pixel_format: str
    audio_streams: int
    rotation: int
    temporal: str
    scene_cuts: int
    flicker: float | None  # the warping error (temporal's docstring); None when not measured
    seconds: float = 0.0
    frames_per_second: float = 0.0  # processing speed
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class _Frame:
    index: int
    pts: int | None
    pixels: np.ndarray  # float32 (H, W, 3) 0..1: the content
    motion: temporal.Motion
    audio: list  # audio packets demuxed before this frame


@dataclass
class _Output:
    frame: _Frame | None  # None: the end (only audio packets left)
    pixels: np.ndarray | None  # float32 0..1, the frame to write
    audio: list


_DONE = object()


def muxer_for(path: str, format_name: str | None) -> str:
    """The FFmpeg muxer for an output path (or --format)."""
    key = (format_name or Path(path).suffix).lower().lstrip(".")
    if key not in VIDEO_FORMATS:
        raise UsageError(f"{path}: unknown video format {key!r} (use {', '.join(sorted(VIDEO_FORMATS))})")
    return VIDEO_FORMATS[key]


def open_input(av, path: str):
    try:
        container = av.open(path, "r")
    except (av.FFmpegError, OSError, ValueError) as error:
        raise InputError(f"{path}: not a readable video ({_first_line(error)})") from None
    if not container.streams.video:
        container.close()
        raise InputError(f"{path}: has no video stream")
    return container


def _first_line(error: Exception) -> str:
    """An FFmpeg error's own words (without the file name PyAV appends), else the message's first line."""
    text = (getattr(error, "strerror", None) or str(error)).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


class _Encoder:
    """The output container in a temporary file beside the target; ``commit`` renames it into place."""

    def __init__(self, av, job: Job, config: ApplyConfig, source, stream) -> None:
        self.av, self.job, self.config, self.source, self.in_stream = av, job, config, source, stream
        self.muxer = muxer_for(job.target, video_format(config.image_format))
        self.container = None
        self.stream = None
        self.codec = self.pixel_format = ""
        self.matrix: int | None = None
        self.audio_map: dict[int, object] = {}
        self.warnings: list[str] = []
        folder = Path(job.target).parent
        folder.mkdir(parents=True, exist_ok=True)
        handle, self.temp = tempfile.mkstemp(dir=folder, prefix=f".{Path(job.target).name}.nst-", suffix=".part")
        os.close(handle)

    def open(self, width: int, height: int, rotation: int) -> None:
        """Create the streams once the first frame's size is known."""
        av, source, in_stream = self.av, self.source, self.in_stream
        options = {"movflags": "+faststart"} if self.muxer in ("mp4", "mov") else {}
        self.container = av.open(self.temp, "w", format=self.muxer, options=options)
        codec = self._codec()
        rate = in_stream.average_rate or in_stream.guessed_rate or Fraction(25)
        stream = self.container.add_stream(codec, rate=rate)
        stream.width, stream.height = width, height
        stream.pix_fmt = self._pixel_format(codec, width, height)
        stream.time_base = in_stream.time_base
        stream.codec_context.time_base = in_stream.time_base
        # The input's colour tags, and RGB -> YUV by its matrix (swscale's default is BT.601, which would
        # shift the colours of BT.709 video). The range is not copied: frames are written limited-range.
        context = in_stream.codec_context
        for name in ("colorspace", "color_primaries", "color_trc"):
            with contextlib.suppress(AttributeError, ValueError, TypeError):
                setattr(stream.codec_context, name, getattr(context, name))
        self.matrix = SWS_MATRIX.get(int(getattr(context, "colorspace", 2) or 2))
        if codec in CRF_CODECS:
            crf = min(CRF_CODECS[codec], max(0, round(18 + (95 - self.config.quality) * 0.4)))
            stream.options = {"crf": str(crf), **({"b:v": "0"} if codec.startswith("libvpx") else {})}
        if rotation:
            stream.set_display_rotation(rotation)
        self.stream, self.codec, self.pixel_format = stream, codec, stream.pix_fmt
        supported = self.container.supported_codecs
        for audio in source.streams.audio:
            name = audio.codec_context.name
            if name not in supported:
                raise InputError(
                    f"{self.job.source}: its audio ({name}) cannot go in a {Path(self.job.target).suffix} file; "
                    "choose another --format (mkv takes any)"
                )
            self.audio_map[audio.index] = self.container.add_stream_from_template(audio)

    def _codec(self) -> str:
        """The input's codec when the output container takes it and it can be encoded here, else the default."""
        source_name = self.in_stream.codec_context.name
        if source_name in self.container.supported_codecs:
            with contextlib.suppress(self.av.FFmpegError, ValueError):
                encoder = self.av.codec.Codec(source_name, "w")
                if encoder.video_formats:
                    return encoder.name
            self.warnings.append(f"no {source_name} encoder here; wrote {DEFAULT_CODEC[self.muxer]}")
        return DEFAULT_CODEC[self.muxer]

    def _pixel_format(self, codec: str, width: int, height: int) -> str:
        """The input's pixel format when the encoder takes it; 4:4:4 for odd sizes (4:2:x needs even ones)."""
        supported = [fmt.name for fmt in self.av.codec.Codec(codec, "w").video_formats or []]
        wanted = self.in_stream.codec_context.pix_fmt or "yuv420p"
        wanted = wanted.replace("yuvj", "yuv")  # deprecated full-range names: the range is a tag
        if wanted not in supported:
            deep = any(token in wanted for token in ("10", "12", "16"))
            fallback = next((f for f in supported if deep and "420p10" in f), None) or (
                "yuv420p" if "yuv420p" in supported else supported[0]
            )
            self.warnings.append(f"pixel format {wanted} is not written by {codec}; wrote {fallback}")
            wanted = fallback
        if (width % 2 or height % 2) and any(tag in wanted for tag in ("420", "422", "nv12", "nv21", "nv16", "411")):
            full = wanted.replace("420", "444").replace("422", "444")
            if full not in supported:
                raise InputError(
                    f"{self.job.source}: odd frame size {width}x{height} cannot be written as {wanted} by {codec}; "
                    "use --max-size or --format mkv"
                )
            self.warnings.append(f"odd frame size {width}x{height}: wrote {full} (4:2:x needs even sizes)")
            wanted = full
        return wanted

    @property
    def deep(self) -> bool:
        return any(tag in self.pixel_format for tag in ("10", "12", "16"))

    def write(self, pixels: np.ndarray | None, pts: int | None, audio: list) -> None:
        for packet in audio:
            target = self.audio_map.get(packet.stream.index)
            if target is not None and packet.dts is not None:
                packet.stream = target
                self.container.mux(packet)
        if pixels is None:
            return
        if self.deep:
            frame = self.av.VideoFrame.from_ndarray((np.clip(pixels, 0, 1) * 65535 + 0.5).astype(np.uint16), format="rgb48le")
        else:
            frame = self.av.VideoFrame.from_ndarray(to_uint8(pixels), format="rgb24")
        frame = frame.reformat(format=self.pixel_format, dst_colorspace=self.matrix)
        frame.pts, frame.time_base = pts, self.in_stream.time_base
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def commit(self) -> None:
        for packet in self.stream.encode(None):
            self.container.mux(packet)
        self.container.close()
        self.container = self.stream = None
        os.chmod(self.temp, images.FILE_MODE)
        os.replace(self.temp, self.job.target)

    def discard(self) -> None:
        if self.container is not None:
            with contextlib.suppress(Exception):
                self.container.close()
        with contextlib.suppress(OSError):
            os.unlink(self.temp)


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    return (np.clip(pixels, 0, 1) * 255 + 0.5).astype(np.uint8)


class _VideoRun:
    """One video through the three stages (see the module's docstring)."""

    def __init__(self, av, job: Job, config: ApplyConfig, renderer, finish, on_frame) -> None:
        self.av, self.job, self.config, self.renderer, self.finish = av, job, config, renderer, finish
        self.on_frame, self.stop = on_frame, threading.Event()
        self.source = open_input(av, job.source)
        self.stream = self.source.streams.video[0]
        self.stream.thread_type = "AUTO"
        self.stream_frames = self.stream.frames
        self.total = self.stream_frames or _estimate_frames(self.stream, self.source)
        # Read now: a closed container's streams must not be touched (FFmpeg has freed them).
        self.rate = float(self.stream.average_rate or self.stream.guessed_rate or 0)
        self.duration = float(self.stream.duration * self.stream.time_base) if self.stream.duration else 0.0
        self.decoded: queue.Queue[object] = queue.Queue(maxsize=QUEUE_DEPTH)
        self.stylised: queue.Queue[object] = queue.Queue(maxsize=QUEUE_DEPTH)
        self.error: BaseException | None = None
        self.rotation = 0
        self.pixel_format = self.stream.codec_context.pix_fmt or "?"
        measure = config.measure_flicker
        self.motion = temporal.MotionEstimator(flow=config.temporal == "flow" or measure)
        self.stabiliser = temporal.Stabiliser(config.temporal, config.temporal_weight)
        self.meter = temporal.FlickerMeter() if measure else None
        self.encoder = _Encoder(av, job, config, self.source, self.stream)
        self.frames = self.cuts = 0
        self.size = (0, 0)

    def run(self) -> VideoResult:
        started = time.perf_counter()
        decoder = threading.Thread(target=self._guard, args=(self._decode_loop,), daemon=True)
        encoder = threading.Thread(target=self._guard, args=(self._encode_loop,), daemon=True)
        decoder.start()
        encoder.start()
        try:
            self._stylise_loop()
        except BaseException as error:
            self._fail(error)
        finally:
            self._put(self.stylised, _DONE, force=True)
            for thread in (encoder, decoder):
                while thread.is_alive():
                    thread.join(0.1)
            self.source.close()
        try:
            if self.error is not None:
                raise self.error
            if self.frames == 0:
                raise InputError(f"{self.job.source}: no video frames could be decoded")
            if self.stream_frames > self.frames:
                self.encoder.warnings.append(f"decoded {self.frames} of the {self.stream_frames} frames it declares (truncated?)")
            elif not self.stream_frames and self.frames < SHORT_OF_DURATION * self.total:  # e.g. Matroska: no count
                self.encoder.warnings.append(f"decoded {self.frames} frames, where its duration holds about {self.total} (truncated?)")
            self.encoder.commit()
        except BaseException:
            self.encoder.discard()
            raise
        seconds = time.perf_counter() - started
        rate, duration = self.rate, self.duration or (self.frames / self.rate if self.rate else 0.0)
        return VideoResult(
            self.job.source, self.job.target, self.frames, round(rate, 3), round(duration, 3), list(self.size),
            self.encoder.codec, self.encoder.pixel_format, len(self.encoder.audio_map), self.rotation, self.config.temporal, self.cuts, self.meter.value if self.meter else None,
            round(seconds, 3), round(self.frames / seconds, 3) if seconds > 0 else 0.0, self.encoder.warnings,
        )  # fmt: skip

    def _fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self.stop.set()

    def _guard(self, loop: Callable[[], None]) -> None:
        try:
            loop()
        except BaseException as error:
            self._fail(error)

    def _put(self, target: queue.Queue[object], item: object, force: bool = False) -> bool:
        return put(target, item, self.stop, force)

    def _get(self, source: queue.Queue[object]) -> object:
        while True:
            try:
                return source.get(timeout=0.1)
            except queue.Empty:
                if self.stop.is_set() and source is self.decoded:
                    return _DONE

    def _decode_loop(self) -> None:
        av, pending, index = self.av, [], 0
        audio = list(self.source.streams.audio)
        max_size = self.config.max_size
        last_pts = None
        try:
            for packet in self.source.demux(self.stream, *audio):
                if self.stop.is_set():
                    return
                if packet.stream.type == "audio":
                    pending.append(packet)
                    continue
                for frame in packet.decode():
                    if index == 0:
                        self.rotation = int(frame.rotation or 0)
                    deep = frame.format.components and max(c.bits for c in frame.format.components) > 8
                    array = frame.to_ndarray(format="rgb48le" if deep else "rgb24")
                    pixels = array.astype(np.float32) / (65535.0 if deep else 255.0)
                    if max_size and max(pixels.shape[:2]) > max_size:
                        pixels = _resize_long_side(pixels, max_size)
                    pts = frame.pts if frame.pts is not None else (last_pts + 1 if last_pts is not None else 0)
                    last_pts = pts
                    item = _Frame(index, pts, pixels, self.motion.next(pixels), pending)
                    pending = []
                    index += 1
                    if not self._put(self.decoded, item):
                        return
        except av.FFmpegError as error:
            raise InputError(f"{self.job.source}: cannot decode frame {index + 1} ({_first_line(error)})") from None
        self._put(self.decoded, _Output(None, None, pending))
        self._put(self.decoded, _DONE)

    def _stylise_loop(self) -> None:
        while not self.stop.is_set():
            item = self._get(self.decoded)
            if item is _DONE:
                return
            if isinstance(item, _Output):  # the trailing audio
                self._put(self.stylised, item)
                continue
            assert isinstance(item, _Frame)
            tiled = self.renderer.needs_tiles(item.pixels)
            pixels = self.finish(self.renderer.render(item.pixels[None], tiled)[0], item.pixels)
            out = self.stabiliser.next(pixels, item.motion)
            if not self._put(self.stylised, _Output(item, out, item.audio)):
                return

    def _encode_loop(self) -> None:
        while True:
            item = self._get(self.stylised)
            if item is _DONE:
                return
            if self.stop.is_set():
                continue
            assert isinstance(item, _Output)
            frame = item.frame
            if frame is None:
                if self.encoder.container is not None:
                    self.encoder.write(None, None, item.audio)
                continue
            height, width = item.pixels.shape[:2]
            if self.encoder.container is None:
                self.size = (width, height)
                self.encoder.open(width, height, self.rotation)
            elif (width, height) != self.size:
                raise InputError(f"{self.job.source}: the frame size changes at frame {frame.index + 1}; not supported")
            if frame.index > 0 and frame.motion.cut:
                self.cuts += 1
            if self.meter is not None:
                self.meter.add(to_uint8(item.pixels), frame.motion)
            self.encoder.write(item.pixels, frame.pts, item.audio)
            self.frames += 1
            self.on_frame(self.frames, self.total)


def _estimate_frames(stream, container) -> int:
    """Frames from the duration (the stream's, else the container's) and the rate when the container does not
    count them (0: unknown)."""
    rate = stream.average_rate or stream.guessed_rate
    if stream.duration:
        seconds = float(stream.duration * stream.time_base)
    else:
        seconds = (container.duration or 0) / 1_000_000  # FFmpeg's AV_TIME_BASE: microseconds
    return round(seconds * float(rate)) if rate else 0


def _resize_long_side(pixels: np.ndarray, max_size: int) -> np.ndarray:
    import cv2

    height, width = pixels.shape[:2]
    scale = max_size / max(height, width)
    return cv2.resize(pixels, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)


def stylise_video(job: Job, config: ApplyConfig, renderer, finish, on_frame: Callable[[int, int], None]) -> VideoResult:
    """Stylise one video into ``job.target`` (atomically). ``renderer``: a ``stylizer.Stylizer``;
    ``finish(stylised, content)``: the post-processes; ``on_frame(done, total)``: progress (total 0 if unknown)."""
    av = require_av()
    try:
        return _VideoRun(av, job, config, renderer, finish, on_frame).run()
    except (NstError, KeyboardInterrupt):
        raise
    except av.FFmpegError as error:
        raise InputError(f"{job.source}: {_first_line(error)}") from None
