"""What one ``nst apply`` run is asked and what it reports: its settings, jobs, progress and summary.

Also the checks and parsers of the settings given on the command line (``validate``, ``parse_shard``,
``parse_mix``).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from nstcli import color, images, model_format as fmt
from nstcli.apply.temporal import DEFAULT_MODE, DEFAULT_WEIGHT, check_mode
from nstcli.errors import UsageError
from nstcli.settings import check_range


DEFAULT_TILE = 1024  # px, when --tile is not given and a photo is over auto_tile_pixels
DEFAULT_TILE_OVERLAP = 64  # px, or less than half of a tile smaller than 130 px
# Video containers nst writes: file extension (or --format) -> FFmpeg muxer.
VIDEO_FORMATS = {"mp4": "mp4", "m4v": "mp4", "mov": "mov", "mkv": "matroska", "webm": "webm", "avi": "avi"}


@dataclass
class ApplyConfig:
    model: str
    inputs: list[str]
    output: str  # a folder, a single output file, or '-' (stdout)
    name: str = "{stem}.{ext}"  # output file name template, see jobs.TEMPLATE_FIELDS
    image_format: str | None = None  # --format: png, jpg, webp, ... for images; mp4, mkv, ... for videos (default: the input's)
    quality: int = 95
    provider: str = "auto"  # auto | cpu | cuda | tensorrt (or an onnxruntime provider name)
    threads: int = 0  # onnxruntime intra-op threads; 0 = its default
    batch_size: int = 0  # images of equal size per inference; 0 = auto (GPU 8, CPU 1: no faster, more memory)
    workers: int = 2  # decode threads and encode threads (each)
    max_size: int | None = None  # downscale inputs whose long side is larger
    tile: int | None = None  # tile size in px; None = automatic above auto_tile_pixels; 0 = never
    tile_overlap: int | None = None  # px between neighbouring tiles; None: see tiling()
    auto_tile_pixels: int = 2048 * 2048
    preserve_color: str | None = None  # luminance | histogram
    strength: float = 1.0  # 1 = fully stylised, 0 = the input
    style: str | None = None  # multi-style models: a name or index
    mix: dict[str, float] | None = None  # multi-style models: {name or index: weight}
    regions: list[tuple[str, str | None]] | None = None  # (style, mask or None = the rest): see regions.py
    skip_existing: bool = False
    overwrite: bool = False
    shard: tuple[int, int] | None = None  # (I, N), 1 <= I <= N
    fail_fast: bool = False
    temporal: str = DEFAULT_MODE  # videos: off | blend | flow (see temporal)
    temporal_weight: float = DEFAULT_WEIGHT  # videos: the previous frame's share where it carries over
    measure_flicker: bool = False  # videos: compute the flicker figure (costs the flow in off and blend modes)
    style_images: list[str] | None = None  # universal style transfer with these paintings (model: its folder)
    style_blend: list[float] | None = None  # one weight per style image
    levels: list[int] | None = None  # universal levels to run (4 = relu4_1 ... 1); None: universal.DEFAULT_LEVELS
    style_size: int = fmt.UNIVERSAL_STYLE_SIZE  # long side the paintings are measured at
    int8: bool = True  # universal, on the CPU: the encoder stages the folder has in int8 compute in int8


@dataclass(frozen=True)
class Job:
    source: str  # a path or '-'
    target: str  # a path or '-'
    key: str  # relative output path: identifies the job across machines (sharding)


@dataclass
class Progress:
    total: int
    written: int = 0
    failed: int = 0
    last: str = ""
    started: float = field(default_factory=time.perf_counter)
    frames: int = 0  # the video being stylised: frames written, of frame_total (0: unknown), since video_started
    frame_total: int = 0
    video_started: float = 0.0

    @property
    def images_per_second(self) -> float:
        return self.written / max(time.perf_counter() - self.started, 1e-9)

    @property
    def frames_per_second(self) -> float:
        return self.frames / max(time.perf_counter() - self.video_started, 1e-9)


@dataclass
class Summary:
    model: str
    provider: str
    styles: list[str]
    planned: int
    written: int = 0
    skipped: int = 0
    failed: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    images_per_second: float = 0.0
    shard: str | None = None
    videos: list[dict[str, object]] = field(default_factory=list)  # per video: frames, fps, flicker, ... (video.VideoResult)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def tiling(config: ApplyConfig) -> tuple[int, int]:
    """The tile size and the overlap between tiles, in px, when a photo is tiled."""
    tile = config.tile or DEFAULT_TILE
    overlap = config.tile_overlap if config.tile_overlap is not None else min(DEFAULT_TILE_OVERLAP, tile // 2 - 1)
    return tile, overlap


def validate(config: ApplyConfig) -> None:
    """Reject settings that contradict each other or are out of range (UsageError), before any work."""
    if not config.output or not all(config.inputs):  # Path('') is '.': it would walk the whole current folder
        raise UsageError("an input or -o is an empty string (an unset shell variable?)")
    if config.batch_size < 0 or config.workers < 1:
        raise UsageError("--batch-size must not be negative and --workers must be at least 1")
    if config.threads < 0:
        raise UsageError("--threads must not be negative")
    if not 0.0 <= config.strength <= 1.0:
        raise UsageError(f"--strength must be in 0..1, got {config.strength}")
    if config.preserve_color is not None and config.preserve_color not in color.METHODS:
        raise UsageError(f"--preserve-color: choose {' or '.join(color.METHODS)}, not {config.preserve_color!r}")
    if not 1 <= config.quality <= 100:
        raise UsageError("--quality must be in 1..100")
    if config.max_size is not None and config.max_size < 16:
        raise UsageError("--max-size must be at least 16")
    if config.tile is not None and config.tile != 0 and config.tile < 64:
        raise UsageError("--tile must be 0 (off) or at least 64")
    tile, _ = tiling(config)
    if config.tile_overlap is not None and not 0 <= config.tile_overlap < tile // 2:
        raise UsageError(f"--tile-overlap must be in 0..{tile // 2 - 1} (less than half of --tile {tile})")
    if config.regions and (config.style is not None or config.mix):
        raise UsageError("--region names its styles: give no --style or --mix with it")
    _validate_universal(config)
    if config.skip_existing and config.overwrite:
        raise UsageError("use either --skip-existing or --overwrite, not both")
    if config.shard is not None:
        index, count = config.shard
        if not 1 <= index <= count:
            raise UsageError(f"--shard I/N needs 1 <= I <= N, got {index}/{count}")
    if config.image_format and config.image_format.lower().lstrip(".") not in VIDEO_FORMATS:
        images.format_for("-", config.image_format)
    check_mode(config.temporal, config.temporal_weight)


def _validate_universal(config: ApplyConfig) -> None:
    """The flags of universal style transfer, and the ones it does not take."""
    if not config.style_images:
        if config.style_blend is not None or config.levels is not None:
            raise UsageError("--style-blend goes with --style-image, --levels with --style-image or --kind universal")
        return
    if config.style is not None or config.mix:
        raise UsageError("--style-image paints with the images given: no --style or --mix with it")
    if config.levels is not None and (not config.levels or not all(1 <= level <= 4 for level in config.levels)):
        raise UsageError(f"--levels: choose among 4,3,2,1 (relu4_1 .. relu1_1), got {config.levels}")
    if not 64 <= config.style_size <= 4096:
        raise UsageError(f"--style-size must be in 64..4096, got {config.style_size}")


def parse_shard(text: str) -> tuple[int, int]:
    """--shard ``I/N`` -> (I, N); the range is checked by ``validate``."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard: expected I/N such as 1/4, got {text!r}") from None
    return index, count


def parse_mix(text: str) -> dict[str, float]:
    """--mix ``a=0.5,b=0.5`` -> {name: weight}; a name given twice adds up."""
    mix: dict[str, float] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        try:
            if not sep or not key.strip():
                raise ValueError
            mix[key.strip()] = mix.get(key.strip(), 0.0) + float(value)
        except ValueError:
            raise UsageError(f"--mix: expected name=weight pairs such as a=0.5,b=0.5, got {text!r}") from None
    for weight in mix.values():
        check_range("--mix weights", weight, 0, 1e6)
    return mix
