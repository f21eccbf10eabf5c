"""The ``nst apply`` engine: stylise many images with an exported nst ONNX model (onnxruntime).

Deliberately torch-free (onnxruntime, Pillow, numpy): a one-image run must start in well under a
second. The model contract is in ``model_format``.

Flow of one run (``run_apply``):
  plan_jobs   inputs (files, folders, globs, '-') -> jobs (source, target), sharded, resumable
  decode      worker threads: read, orient (EXIF), downscale (--max-size) -> bounded queue
  inference   this thread: equal sizes batched; large images tiled (``tiling``) -> bounded queue
  encode      worker threads: strength, preserve-colour, encode, atomic write
Bounded queues keep memory flat whatever the folder size. Progress goes to a callback.
"""

from __future__ import annotations

import contextlib
import fnmatch
import glob
import hashlib
import io
import json
import os
import queue
import string
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image

from nstcli import __version__, color, images, model_format as fmt, regions, tiling
from nstcli.errors import InputError, NstError, UsageError

# Extensions picked up when walking folders (explicit files may have any name).
IMAGE_SUFFIXES = frozenset(images.FORMATS) | {".gif"}
EXT_FOR_FORMAT = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "BMP": "bmp", "TIFF": "tif"}
TEMPLATE_FIELDS = ("stem", "ext", "style", "name", "model")

PROVIDERS = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
# Tiled images take their instance-norm statistics from the whole image shrunk to this long side.
GUIDE_SIZE = 2048
REPAIR_CLASH = "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu"


@dataclass
class ApplyConfig:
    model: str
    inputs: list[str]
    output: str  # a folder, a single output file, or '-' (stdout)
    name: str = "{stem}.{ext}"  # output file name template, see TEMPLATE_FIELDS
    image_format: str | None = None  # png, jpg, webp, ... (default: the input's, else png)
    quality: int = 95
    provider: str = "auto"  # auto | cpu | cuda | tensorrt (or an onnxruntime provider name)
    threads: int = 0  # onnxruntime intra-op threads; 0 = its default
    batch_size: int = 0  # images of equal size per inference; 0 = auto (GPU 8, CPU 1: no faster, more memory)
    workers: int = 2  # decode threads and encode threads (each)
    max_size: int | None = None  # downscale inputs whose long side is larger
    tile: int | None = None  # tile size in px; None = automatic above auto_tile_pixels; 0 = never
    tile_overlap: int = 64
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

    @property
    def images_per_second(self) -> float:
        return self.written / max(time.perf_counter() - self.started, 1e-9)


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

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


# ---------------------------------------------------------------- model and providers


def quiet_onnxruntime() -> None:
    """onnxruntime logs provider-load failures as red multi-line errors; we report them ourselves."""
    import onnxruntime as ort

    ort.set_default_logger_severity(4)


def installed_runtimes() -> list[str]:
    """Which onnxruntime distributions are installed (more than one means they overwrote each other)."""
    from importlib import metadata  # here, not at the top: importing it costs every nst apply 25 ms

    names = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino")
    found = []
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            metadata.version(name)
            found.append(name)
    return found


def gpu_present() -> bool:
    return Path("/proc/driver/nvidia/gpus").is_dir() or Path("/dev/nvidia0").exists()


def provider_list(choice: str) -> list[str]:
    """The providers to ask onnxruntime for, best first; CPU always last as the fallback."""
    import onnxruntime as ort

    if choice == "auto":
        available = ort.get_available_providers()  # lists what was compiled in, not what loads
        return [name for name in GPU_PROVIDERS if name in available] + ["CPUExecutionProvider"]
    name = PROVIDERS.get(choice.lower(), choice)
    if name not in ort.get_all_providers():
        raise UsageError(f"--provider: unknown provider {choice!r} (choose auto, cpu, cuda or tensorrt)")
    if name == "TensorrtExecutionProvider":
        return [name, "CUDAExecutionProvider", "CPUExecutionProvider"]
    return [name] if name == "CPUExecutionProvider" else [name, "CPUExecutionProvider"]


def provider_options(name: str) -> dict[str, str]:
    if name == "TensorrtExecutionProvider":
        # Engines are built per input shape; caching them makes later runs start fast.
        cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "nst" / "tensorrt"
        return {"trt_engine_cache_enable": "True", "trt_engine_cache_path": str(cache)}
    return {}


def create_session(model: str | bytes, choice: str = "auto", threads: int = 0) -> tuple[object, list[str]]:
    """An InferenceSession on the best provider that actually loads, and that provider list.

    onnxruntime retries failed GPU providers on CPU by itself and prints that on stdout, which
    would corrupt ``-o -``; its prints are captured and the providers read back afterwards.
    """
    import onnxruntime as ort

    quiet_onnxruntime()
    wanted = provider_list(choice)
    if "TensorrtExecutionProvider" in wanted:
        Path(provider_options("TensorrtExecutionProvider")["trt_engine_cache_path"]).mkdir(parents=True, exist_ok=True)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    with contextlib.redirect_stdout(io.StringIO()):
        session = ort.InferenceSession(
            model, sess_options=options, providers=[(name, provider_options(name)) for name in wanted]
        )
    return session, session.get_providers()


@dataclass
class ModelInfo:
    path: str
    styles: list[str]
    size_multiple: int
    precision: str
    arch: str
    has_style_weights: bool


class Model:
    """A loaded nst model: pads to the size multiple, runs a batch, crops back."""

    def __init__(self, path: str, provider: str = "auto", threads: int = 0) -> None:
        source = Path(path)
        if not source.is_file():
            raise InputError(f"{path}: no such model file")
        try:
            self.session, self.providers = create_session(str(source), provider, threads)
        except NstError:
            raise
        except Exception as error:  # onnxruntime raises its own exception types for bad files
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise InputError(f"{path}: cannot load as an ONNX model ({first_line[:200]})") from None
        self.info = read_model_info(path, self.session)
        self.style_weights: np.ndarray | None = None
        self.on_gpu = self.providers[0] in GPU_PROVIDERS
        self.threads = threads
        self.guide_size = GUIDE_SIZE
        self._pinned: tuple | None = None

    def select_style(self, style: str | None, mix: dict[str, float] | None) -> str:
        """Set the style weights from --style / --mix; returns a label for file names."""
        styles = self.info.styles
        if not self.info.has_style_weights:
            if mix:
                raise UsageError(f"--mix: this model has one style ({styles[0]}); mixing needs a multi-style model")
            if style is not None and style_index(style, styles) != 0:
                raise UsageError(f"--style: this model has one style ({styles[0]}), not {style!r}")
            return safe_label(styles[0])
        if style is not None and mix:
            raise UsageError("use either --style or --mix, not both")
        weights = np.zeros(len(styles), dtype=np.float32)
        if mix:
            for key, value in mix.items():
                if value < 0:
                    raise UsageError(f"--mix: weights must not be negative ({key}={value})")
                weights[style_index(key, styles)] += value
            if weights.sum() <= 0:
                raise UsageError("--mix: the weights must not all be zero")
            weights /= weights.sum()
            label = "-".join(f"{safe_label(styles[i])}{round(w * 100)}" for i, w in enumerate(weights) if w > 0)
        elif style is not None:
            index = style_index(style, styles)
            weights[index] = 1.0
            label = safe_label(styles[index])
        else:
            raise UsageError(f"this model has {len(styles)} styles ({', '.join(styles)}); pick with --style, --mix or --region")
        self.style_weights = weights
        return label

    def region_styles(self, names: list[str]) -> tuple[list[np.ndarray | None], str]:
        """--region: each region's style weights (one-hot; None for a one-style model) and a label for file names."""
        styles = self.info.styles
        indices = [style_index(name, styles) for name in names]
        if len(set(indices)) != len(indices):
            raise UsageError("--region: each style once")
        label = "-".join(safe_label(styles[index]) for index in indices)
        if not self.info.has_style_weights:
            return [None], label
        return [np.eye(len(styles), dtype=np.float32)[index] for index in indices], label

    def run(self, batch: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) float32 in 0..1 -> stylised (N, H, W, 3), any H and W."""
        return self._stylise(self.session, batch, {})

    def run_tiled(self, image: np.ndarray, tile: int, overlap: int, batch_size: int) -> np.ndarray:
        """A large (H, W, 3) image in blended tiles, normalised with whole-image statistics (see tiling)."""
        pinned = self._pinned_sessions()
        if pinned is None:  # no instance norm: tiles need no shared statistics
            return tiling.run_tiled(image, self.run, tile, overlap, batch_size)
        stats_session, tiles_session, epsilons = pinned
        guide = tiling.resize_array(image, self.guide_size)
        names = tiling.stats_outputs(len(epsilons))
        stats = dict(zip(names, self._session_run(stats_session, self._feeds(guide[None])[0], names)))
        extra = tiling.gains_and_shifts(stats, epsilons)
        return tiling.run_tiled(image, lambda batch: self._stylise(tiles_session, batch, extra), tile, overlap, batch_size)

    def _pinned_sessions(self) -> tuple[object, object, list[float]] | None:
        if self._pinned is None:
            pinned = tiling.pin_instance_norm(Path(self.info.path).read_bytes())
            self._pinned = (False,) if pinned is None else (
                create_session(pinned.stats, self.providers[0], self.threads)[0],
                create_session(pinned.tiles, self.providers[0], self.threads)[0],
                pinned.epsilons,
            )  # fmt: skip
        return None if self._pinned == (False,) else self._pinned

    def _feeds(self, batch: np.ndarray) -> tuple[dict[str, np.ndarray], tuple[int, int]]:
        """NHWC batch -> the model's feeds (NCHW, padded as model_format says) and the size to crop back to."""
        height, width = batch.shape[1:3]
        multiple = self.info.size_multiple
        # at least two multiples: the generators' reflection pads need more pixels than they pad
        pad_h = max(2 * multiple, height + -height % multiple) - height
        pad_w = max(2 * multiple, width + -width % multiple) - width
        nchw = np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)
        if pad_h or pad_w:
            mode = "reflect" if height > pad_h and width > pad_w else "edge"
            nchw = np.pad(nchw, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)), mode=mode)
        feeds = {fmt.INPUT_IMAGE: nchw}
        if self.style_weights is not None:
            feeds[fmt.INPUT_STYLE_WEIGHTS] = self.style_weights
        return feeds, (height, width)

    def _stylise(self, session: object, batch: np.ndarray, extra: dict[str, np.ndarray]) -> np.ndarray:
        feeds, (height, width) = self._feeds(batch)
        output = self._session_run(session, {**feeds, **extra}, [fmt.OUTPUT_IMAGE])[0]
        return np.ascontiguousarray(output[:, :, :height, :width].transpose(0, 2, 3, 1), dtype=np.float32)

    def _session_run(self, session: object, feeds: dict[str, np.ndarray], outputs: list[str]) -> list[np.ndarray]:
        if not self.on_gpu:
            return session.run(outputs, feeds)
        # GPU providers: IO binding lets onnxruntime allocate outputs on the device and copy once.
        binding = session.io_binding()
        for name, value in feeds.items():
            binding.bind_cpu_input(name, value)
        for name in outputs:
            binding.bind_output(name, "cuda")
        session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()


def read_model_info(path: str, session: object) -> ModelInfo:
    """Check the graph against the nst contract and read its metadata."""
    inputs = {arg.name: arg for arg in session.get_inputs()}
    outputs = [arg.name for arg in session.get_outputs()]
    image = inputs.get(fmt.INPUT_IMAGE)
    extra = set(inputs) - {fmt.INPUT_IMAGE, fmt.INPUT_STYLE_WEIGHTS}
    if image is None or len(image.shape) != 4 or fmt.OUTPUT_IMAGE not in outputs or extra:
        found = f"inputs {sorted(inputs)}, outputs {outputs}"
        raise InputError(
            f"{path}: not an nst model: expected input '{fmt.INPUT_IMAGE}' (float32 N,3,H,W), optional "
            f"'{fmt.INPUT_STYLE_WEIGHTS}', and output '{fmt.OUTPUT_IMAGE}'; found {found}"
        )
    meta = session.get_modelmeta().custom_metadata_map
    has_weights = fmt.INPUT_STYLE_WEIGHTS in inputs
    try:
        styles = json.loads(meta[fmt.META_STYLES]) if fmt.META_STYLES in meta else [Path(path).stem]
        size_multiple = int(meta.get(fmt.META_SIZE_MULTIPLE, "4"))
    except (ValueError, TypeError):
        raise InputError(f"{path}: unreadable nst metadata ({fmt.META_STYLES} / {fmt.META_SIZE_MULTIPLE})") from None
    if isinstance(styles, str):
        styles = [styles]
    if not isinstance(styles, list) or not styles or size_multiple < 1:
        raise InputError(f"{path}: bad nst metadata: {fmt.META_STYLES} must be a non-empty list")
    styles = [str(name) for name in styles]
    if has_weights:
        declared = inputs[fmt.INPUT_STYLE_WEIGHTS].shape[0] if inputs[fmt.INPUT_STYLE_WEIGHTS].shape else None
        if isinstance(declared, int) and declared != len(styles):
            raise InputError(
                f"{path}: {fmt.META_STYLES} names {len(styles)} styles but {fmt.INPUT_STYLE_WEIGHTS} has {declared}"
            )
    return ModelInfo(
        path, styles, size_multiple, meta.get(fmt.META_PRECISION, "fp32"), meta.get(fmt.META_ARCH, "?"), has_weights
    )


def style_index(key: str, styles: list[str]) -> int:
    if key in styles:
        return styles.index(key)
    if key.isdigit() and int(key) < len(styles):
        return int(key)
    raise UsageError(f"unknown style {key!r}; this model has: {', '.join(f'{i}={s}' for i, s in enumerate(styles))}")


def safe_label(text: str) -> str:
    """A style name made safe for file names."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text).strip(".") or "style"


# ---------------------------------------------------------------- planning


def check_template(template: str) -> None:
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as error:
        raise UsageError(f"--name: bad template {template!r} ({error})") from None
    unknown = [name for name in fields if name not in TEMPLATE_FIELDS]
    if unknown:
        raise UsageError(f"--name: unknown field {{{unknown[0]}}} (use {', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)})")
    if "/" in template or "\\" in template:
        raise UsageError("--name: a file name template must not contain / or \\ (outputs stay in -o's folder tree)")


def output_name(template: str, source: Path, style: str, model: str, image_format: str | None) -> str:
    """Fill the --name template; the result is one plain file name (no path escapes)."""
    suffix = source.suffix.lower()
    if image_format:
        ext = EXT_FOR_FORMAT[images.format_for("-", image_format)]
    else:
        ext = suffix.lstrip(".") if suffix in images.FORMATS else "png"
    try:
        name = template.format(stem=source.stem, ext=ext, style=style, name=source.name, model=model)
    except ValueError as error:  # a bad format spec or conversion, e.g. {stem:%s} or {stem!x}
        raise UsageError(f"--name: bad template {template!r} ({error})") from None
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise UsageError(f"--name: {template!r} gives {name!r} for {source}, which is not a plain file name")
    return name


def find_inputs(inputs: list[str], skip_dir: Path | None) -> Iterator[tuple[Path, Path]]:
    """(file, path relative to its input root) for files, folders (recursive) and globs."""
    for entry in inputs:
        path = Path(entry)
        if path.is_dir():
            yield from walk_folder(path, skip_dir)
        elif path.is_file() or path.exists():
            yield path, Path(path.name)
        elif glob.has_magic(entry):
            matches = sorted(glob.glob(entry, recursive=True))
            if not matches:
                raise UsageError(f"{entry}: no files match")
            root = Path(glob_root(entry))
            for match in map(Path, matches):
                if match.is_file():
                    yield match, match.relative_to(root) if match.is_relative_to(root) else Path(match.name)
        else:
            raise UsageError(f"{entry}: no such file or folder")


def glob_root(pattern: str) -> str:
    """The folder part of a glob before its first wildcard ('photos/**/*.jpg' -> 'photos')."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return str(Path(*fixed)) if fixed else "."


def walk_folder(folder: Path, skip_dir: Path | None) -> Iterator[tuple[Path, Path]]:
    """Image files under ``folder`` in sorted order, skipping hidden entries and the output folder."""
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not _same(here / d, skip_dir))
        for name in sorted(files):
            path = here / name
            # Regular files only: reading a FIFO or device found in a folder would block forever.
            if not name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                yield path, path.relative_to(folder)


def _same(path: Path, other: Path | None) -> bool:
    return other is not None and other.exists() and path.exists() and os.path.samefile(path, other)


def single_file_output(config: ApplyConfig) -> bool:
    """``-o out.jpg`` for one input file: the output is that file, not a folder."""
    out = Path(config.output)
    return (
        len(config.inputs) == 1
        and (config.inputs[0] == images.STDIO or Path(config.inputs[0]).is_file())
        and out.suffix.lower() in images.FORMATS
        and not out.is_dir()
    )


def in_shard(key: str, shard: tuple[int, int] | None) -> bool:
    """Deterministic split by a hash of the relative output path: the same on every machine."""
    if shard is None:
        return True
    index, count = shard
    digest = int.from_bytes(hashlib.sha1(key.encode("utf-8", "surrogateescape")).digest()[:8], "big")
    return digest % count == index - 1


def plan_jobs(config: ApplyConfig, style_label: str) -> tuple[list[Job], int]:
    """All (source, target) pairs to process and the number skipped as already done."""
    check_template(config.name)
    model_stem = Path(config.model).stem
    stdin = images.STDIO in config.inputs
    if stdin and len(config.inputs) != 1:
        raise UsageError("- (stdin) must be the only input")
    if config.output == images.STDIO:
        if len(config.inputs) != 1 or not (stdin or Path(config.inputs[0]).is_file()):
            raise UsageError("-o - (stdout) takes exactly one input image")
        return [Job(config.inputs[0], images.STDIO, "-")], 0
    if stdin and not single_file_output(config):
        raise UsageError("reading stdin (-) needs -o - or -o FILE")
    if single_file_output(config):
        source = config.inputs[0]
        images.format_for(config.output, config.image_format)
        if source != images.STDIO and Path(config.output).exists() and os.path.samefile(source, config.output):
            raise UsageError(f"{config.output}: output is also an input; choose another output path")
        if not Path(config.output).parent.is_dir():
            raise UsageError(f"{Path(config.output).parent}: output folder does not exist")
        return _resolve_existing([Job(source, config.output, Path(config.output).name)], config)

    out_dir = Path(config.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir}: exists and is not a folder (an output file needs exactly one input)")
    jobs: list[Job] = []
    seen: dict[str, str] = {}
    input_paths: set[Path] = set()
    for source, relative in find_inputs(config.inputs, out_dir):
        input_paths.add(source.resolve())
        name = output_name(config.name, source, style_label, model_stem, config.image_format)
        key = (relative.parent / name).as_posix()
        if key in seen:
            if seen[key] == str(source):
                continue  # the same file named twice
            raise UsageError(f"{seen[key]} and {source} would both be written to {out_dir / key}; use --name")
        seen[key] = str(source)
        if in_shard(key, config.shard):
            jobs.append(Job(str(source), str(out_dir / key), key))
    if not seen:
        raise UsageError("no input images found")
    for job in jobs:
        images.format_for(job.target, config.image_format)
        if Path(job.target).resolve() in input_paths:
            raise UsageError(f"{job.target}: output would overwrite an input; choose another -o or --name")
    return _resolve_existing(jobs, config)


def _resolve_existing(jobs: list[Job], config: ApplyConfig) -> tuple[list[Job], int]:
    """Apply --skip-existing / --overwrite: outputs are atomic, so an existing one is complete."""
    remove_stale_temps(jobs)
    todo, skipped = [], 0
    for job in jobs:
        if job.target != images.STDIO and Path(job.target).exists():
            if config.skip_existing:
                skipped += 1
                continue
            if not config.overwrite:
                raise UsageError(f"{job.target}: already exists (use --overwrite, or --skip-existing to resume)")
        todo.append(job)
    return todo, skipped


def remove_stale_temps(jobs: list[Job]) -> None:
    """A killed run can leave the temporary files of write_bytes_atomic; remove ours before writing."""
    by_folder: dict[Path, set[str]] = {}
    for job in jobs:
        if job.target != images.STDIO:
            by_folder.setdefault(Path(job.target).parent, set()).add(Path(job.target).name)
    for folder, names in by_folder.items():
        if not folder.is_dir():
            continue
        for entry in os.scandir(folder):
            if entry.name.startswith(".") and entry.name.endswith(".part"):
                original = entry.name[1:].rsplit(".", 2)[0]
                if original in names and fnmatch.fnmatch(entry.name, f".{original}.*.part"):
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)


# ---------------------------------------------------------------- the pipeline


@dataclass
class _Decoded:
    job: Job
    pixels: np.ndarray  # (H, W, 3) float32 0..1
    source_format: str | None
    icc_profile: bytes | None


@dataclass
class _Stylised:
    item: _Decoded
    pixels: np.ndarray


_DONE = object()


def describe(error: Exception, where: str) -> str:
    """One line for a failure: NstError messages as they are, anything else prefixed with ``where``."""
    if isinstance(error, NstError):
        return str(error)
    text = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
    return f"{where}: {text}"


def validate(config: ApplyConfig) -> None:
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
    tile = config.tile or 1024
    if not 0 <= config.tile_overlap < tile // 2:
        raise UsageError(f"--tile-overlap must be in 0..{tile // 2 - 1}")
    if config.regions and (config.style is not None or config.mix):
        raise UsageError("--region names its styles: give no --style or --mix with it")
    if config.skip_existing and config.overwrite:
        raise UsageError("use either --skip-existing or --overwrite, not both")
    if config.shard is not None:
        index, count = config.shard
        if not 1 <= index <= count:
            raise UsageError(f"--shard I/N needs 1 <= I <= N, got {index}/{count}")
    if config.image_format:
        images.format_for("-", config.image_format)


def parse_shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard: expected I/N such as 1/4, got {text!r}") from None
    return index, count


def parse_mix(text: str) -> dict[str, float]:
    mix: dict[str, float] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        try:
            if not sep or not key.strip():
                raise ValueError
            mix[key.strip()] = mix.get(key.strip(), 0.0) + float(value)
        except ValueError:
            raise UsageError(f"--mix: expected name=weight pairs such as a=0.5,b=0.5, got {text!r}") from None
    return mix


@dataclass
class _RegionPlan:
    style_weights: list[np.ndarray | None]  # per region, the model's style weights (None: a one-style model)
    shares: regions.RegionWeights


class _Pipeline:
    """Decode workers -> batched inference (caller's thread) -> encode workers, with bounded queues."""

    def __init__(self, model: Model, config: ApplyConfig, jobs: list[Job], report: Callable[[Job, str | None], None],
                 region_plan: _RegionPlan | None = None):  # fmt: skip
        self.model, self.config, self.jobs, self.report = model, config, jobs, report
        self.region_plan = region_plan
        self.batch_size = config.batch_size or (8 if model.on_gpu else 1)
        self.stop = threading.Event()
        depth = self.batch_size * 2
        self.decoded: queue.Queue[object] = queue.Queue(maxsize=depth)
        self.stylised: queue.Queue[object] = queue.Queue(maxsize=depth)
        self.next_job = iter(jobs)
        self.lock = threading.Lock()

    def run(self) -> None:
        workers = min(self.config.workers, max(1, len(self.jobs)))
        decoders = [threading.Thread(target=self._decode_loop, daemon=True) for _ in range(workers)]
        encoders = [threading.Thread(target=self._encode_loop, daemon=True) for _ in range(workers)]
        for thread in decoders + encoders:
            thread.start()
        try:
            self._infer_loop(len(decoders))
        except BaseException:
            self.stop.set()  # e.g. Ctrl-C: workers drop what is queued
            raise
        finally:
            for _ in encoders:
                self._put(self.stylised, _DONE, force=True)
            for thread in encoders:
                while thread.is_alive():
                    thread.join(0.1)
            self.stop.set()

    def _put(self, target: queue.Queue[object], item: object, force: bool = False) -> bool:
        while force or not self.stop.is_set():
            try:
                target.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _decode_loop(self) -> None:
        try:
            while not self.stop.is_set():
                with self.lock:
                    job = next(self.next_job, None)
                if job is None:
                    break
                try:
                    item = self._decode(job)
                except Exception as error:  # one bad file must not stop the others
                    self.report(job, describe(error, job.source))
                    continue
                if not self._put(self.decoded, item):
                    break
        finally:
            self._put(self.decoded, _DONE)

    def _decode(self, job: Job) -> _Decoded:
        decoded = images.decode_image(job.source)
        image = decoded.image
        if self.config.max_size and max(image.size) > self.config.max_size:
            image = images.resize_long_side(image, self.config.max_size)
        return _Decoded(job, images.to_array(image), decoded.format, decoded.icc_profile)

    def _infer_loop(self, producers: int) -> None:
        buckets: dict[tuple[int, int], list[_Decoded]] = {}
        finished = 0
        while finished < producers and not self.stop.is_set():
            try:
                item = self.decoded.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is _DONE:
                finished += 1
                continue
            assert isinstance(item, _Decoded)
            if self._needs_tiles(item.pixels):
                self._infer([item], tiled=True)
                continue
            shape = item.pixels.shape[:2]
            buckets.setdefault(shape, []).append(item)
            if len(buckets[shape]) >= self.batch_size:
                self._infer(buckets.pop(shape), tiled=False)
            elif sum(map(len, buckets.values())) > self.batch_size * 2:
                # Many different sizes: run the fullest partial batch rather than hold more images.
                self._infer(buckets.pop(max(buckets, key=lambda key: len(buckets[key]))), tiled=False)
        for items in buckets.values():
            if not self.stop.is_set():
                self._infer(items, tiled=False)

    def _needs_tiles(self, pixels: np.ndarray) -> bool:
        tile = self.config.tile
        if tile == 0:
            return False
        height, width = pixels.shape[:2]
        if tile is None:
            return height * width > self.config.auto_tile_pixels
        return max(height, width) > tile

    def _infer(self, items: list[_Decoded], tiled: bool) -> None:
        try:
            batch = items[0].pixels[None] if tiled else np.stack([item.pixels for item in items])
            outputs = self._render(batch, tiled)
        except Exception as error:  # onnxruntime errors (e.g. out of memory): fail these images only
            for item in items:
                self.report(item.job, describe(error, f"{item.job.source}: inference failed"))
            return
        for item, pixels in zip(items, outputs):
            if not self._put(self.stylised, _Stylised(item, pixels)):
                return

    def _render(self, batch: np.ndarray, tiled: bool) -> list[np.ndarray]:
        """The stylised batch (one image when tiled); with --region, one rendering per region, blended."""
        plan = self.region_plan
        if plan is None:
            return self._run(batch, tiled)
        renderings = []
        for weights in plan.style_weights:
            self.model.style_weights = weights
            renderings.append(self._run(batch, tiled))
        return [
            regions.blend(photo, [rendering[index] for rendering in renderings], plan.shares.at(*photo.shape[:2]))
            for index, photo in enumerate(batch)
        ]

    def _run(self, batch: np.ndarray, tiled: bool) -> list[np.ndarray]:
        if tiled:
            return [self.model.run_tiled(batch[0], self.config.tile or 1024, self.config.tile_overlap, self.batch_size)]
        return list(self.model.run(batch))

    def _encode_loop(self) -> None:
        while True:
            try:
                result = self.stylised.get(timeout=0.1)
            except queue.Empty:
                continue
            if result is _DONE:
                return
            assert isinstance(result, _Stylised)
            if self.stop.is_set():
                continue
            job = result.item.job
            try:
                self._encode(result)
            except Exception as error:  # e.g. a full disk: count it, keep the worker alive
                self.report(job, describe(error, job.target))
                continue
            self.report(job, None)

    def _encode(self, result: _Stylised) -> None:
        content, pixels = result.item.pixels, result.pixels
        if self.config.preserve_color == "luminance":
            pixels = color.transfer_luminance(pixels, content)
        elif self.config.preserve_color == "histogram":
            pixels = color.match_color(pixels, content)
        if self.config.strength < 1.0:
            pixels = self.config.strength * pixels + (1.0 - self.config.strength) * content
        job = result.item.job
        if job.target == images.STDIO and not self.config.image_format:
            format_name = result.item.source_format if result.item.source_format in EXT_FOR_FORMAT else "PNG"
        else:
            format_name = images.format_for(job.target, self.config.image_format)
        data = images.encode_image(images.from_array(pixels), format_name, self.config.quality, result.item.icc_profile)
        if job.target != images.STDIO:
            Path(job.target).parent.mkdir(parents=True, exist_ok=True)
        images.write_bytes_atomic(data, job.target)


def run_apply(
    config: ApplyConfig,
    on_progress: Callable[[Progress], None] | None = None,
    on_failure: Callable[[str], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> Summary:
    """Stylise every planned input; failures are reported and counted, the rest proceed.

    Callbacks are called from worker threads, one at a time.
    """
    validate(config)
    started = time.perf_counter()
    model = Model(config.model, config.provider, config.threads)
    warning = provider_warning(config.provider, model.providers)
    if warning and on_warning:
        on_warning(warning)
    region_plan = None
    if config.regions:
        loaded = regions.load_regions(config.regions)
        style_weights, label = model.region_styles([region.style for region in loaded])
        region_plan = _RegionPlan(style_weights, regions.RegionWeights(loaded))
    else:
        label = model.select_style(config.style, config.mix)
    jobs, skipped = plan_jobs(config, label)
    shard = f"{config.shard[0]}/{config.shard[1]}" if config.shard else None
    summary = Summary(config.model, model.providers[0], model.info.styles, len(jobs) + skipped, skipped=skipped, shard=shard)
    progress = Progress(total=len(jobs))
    lock = threading.Lock()
    pipeline: _Pipeline

    def report(job: Job, error: str | None) -> None:
        with lock:
            if error is None:
                progress.written += 1
            else:
                progress.failed += 1
                summary.failures.append({"input": job.source, "error": error})
                if on_failure:
                    on_failure(error)
                if config.fail_fast:
                    pipeline.stop.set()
            progress.last = job.source
            if on_progress:
                on_progress(progress)

    pipeline = _Pipeline(model, config, jobs, report, region_plan)
    try:
        pipeline.run()
    finally:
        pipeline.stop.set()
    summary.written, summary.failed = progress.written, progress.failed
    summary.seconds = time.perf_counter() - started
    summary.images_per_second = summary.written / summary.seconds if summary.seconds > 0 else 0.0
    return summary


def provider_warning(choice: str, loaded: list[str]) -> str | None:
    """One line when a GPU provider was wanted (or a GPU is present) but onnxruntime fell back to CPU."""
    if loaded[0] != "CPUExecutionProvider":
        return None
    if choice == "cpu" or (choice == "auto" and not gpu_present()):
        return None
    clash = len([name for name in installed_runtimes() if name.startswith("onnxruntime")]) > 1
    hint = f"; onnxruntime and onnxruntime-gpu are both installed, repair with: {REPAIR_CLASH}" if clash else ""
    return f"GPU provider did not load (needs CUDA 13 and cuDNN 9 libraries; see nst info); running on CPU{hint}"


# ---------------------------------------------------------------- nst info


def environment_report() -> dict[str, object]:
    """Versions, the onnxruntime providers that actually load here, and the devices."""
    import platform
    from importlib import metadata

    import onnxruntime as ort

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    runtimes = installed_runtimes()
    report: dict[str, object] = {
        "nst": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "onnxruntime": ort.__version__,
        "onnxruntime_packages": runtimes,
        "numpy": np.__version__,
        "pillow": Image.__version__,
        "torch": version("torch"),  # read from metadata: nst info does not import torch
        "providers_compiled": ort.get_available_providers(),
        "providers_loading": loading_providers(),
        "cpu_count": os.cpu_count(),
        "cpu_features": cpu_features(),
        "gpus": list_gpus(),
    }
    if len(runtimes) > 1:
        report["problem"] = f"{' and '.join(runtimes)} are installed together and overwrite each other; repair: {REPAIR_CLASH}"
    return report


def loading_providers() -> list[str]:
    """Try each compiled-in provider on a one-node model; keep those onnxruntime really registers."""
    import onnxruntime as ort

    loaded = []
    for name in ort.get_available_providers():
        try:
            _, providers = create_session(identity_model(), name)
        except Exception:  # a provider that cannot even start is simply not listed
            continue
        if providers and providers[0] == name:
            loaded.append(name)
    return loaded


def identity_model() -> bytes:
    from onnx import TensorProto, helper

    value = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    result = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe", [value], [result])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def cpu_features() -> list[str]:
    """The CPU flags that matter for onnxruntime speed and int8 accuracy (Linux only)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    return [flag for flag in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if flag in flags]


def list_gpus() -> list[str]:
    import shutil
    import subprocess

    if shutil.which("nvidia-smi"):
        try:
            result = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
            return [line.strip() for line in result.stdout.splitlines() if line.strip()]
        except (OSError, subprocess.SubprocessError):
            return []
    return []
