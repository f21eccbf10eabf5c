"""Planning an ``nst apply`` run: inputs (files, folders, globs, '-') to jobs (source, target).

Output names from the --name template, the --shard split, --skip-existing / --overwrite, and the
removal of temporary files a killed run left behind.
"""

from __future__ import annotations

import contextlib
import glob
import os
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from nstcli import images
from nstcli.apply.config import VIDEO_FORMATS, ApplyConfig, Job
from nstcli.errors import InputError, UsageError

# Extensions picked up when walking folders (explicit files may have any name).
IMAGE_SUFFIXES = frozenset(images.FORMATS) | {".gif"}
VIDEO_SUFFIXES = frozenset("." + ext for ext in VIDEO_FORMATS)
EXT_FOR_FORMAT = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "BMP": "bmp", "TIFF": "tif"}
TEMPLATE_FIELDS = ("stem", "ext", "style", "name", "model")


def check_template(template: str) -> None:
    """Reject a --name template with unknown fields or a path separator, before any file is read."""
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as error:
        raise UsageError(f"--name: bad template {template!r} ({error})") from None
    unknown = [name for name in fields if name not in TEMPLATE_FIELDS]
    if unknown:
        raise UsageError(f"--name: unknown field {{{unknown[0]}}} (use {', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)})")
    if "/" in template or "\\" in template:
        raise UsageError("--name: a file name template must not contain / or \\ (outputs stay in -o's folder tree)")


MAX_NAME_BYTES = 255  # one path component on Linux, macOS and Windows file systems


def is_video(path: str | Path) -> bool:
    """A video input or output, by its extension ('-' is always an image)."""
    return str(path) != images.STDIO and Path(path).suffix.lower() in VIDEO_SUFFIXES


def video_format(format_name: str | None) -> str | None:
    """--format when it names a video container (mp4, mkv, ...), else None."""
    key = (format_name or "").lower().lstrip(".")
    return key if key in VIDEO_FORMATS else None


def image_format(format_name: str | None) -> str | None:
    """--format when it names an image format (png, jpg, ...), else None."""
    return None if video_format(format_name) else format_name


def output_name(template: str, source: Path, style: str, model: str, format_name: str | None) -> str:
    """Fill the --name template; the result is one plain file name (no path escapes).

    --format changes the extension of the inputs of its kind: an image format the images', a video
    container the videos'."""
    suffix = source.suffix.lower()
    if is_video(source):
        ext = video_format(format_name) or suffix.lstrip(".")
    elif image_format(format_name):
        ext = EXT_FOR_FORMAT[images.format_for("-", format_name)]
    else:
        ext = suffix.lstrip(".") if suffix in images.FORMATS else "png"
    try:
        name = template.format(stem=source.stem, ext=ext, style=style, name=source.name, model=model)
    except ValueError as error:  # a bad format spec or conversion, e.g. {stem:%s} or {stem!x}
        raise UsageError(f"--name: bad template {template!r} ({error})") from None
    if not name or name in (".", "..") or "/" in name or "\0" in name:  # a '\\' from a source name is a legal character
        raise UsageError(f"--name: {template!r} gives {name!r} for {source}, which is not a plain file name")
    if len(os.fsencode(name)) > MAX_NAME_BYTES:
        raise UsageError(f"--name: {template!r} gives a file name of {len(os.fsencode(name))} bytes for {source} "
                         f"(the limit is {MAX_NAME_BYTES})")  # fmt: skip
    return name


def find_inputs(inputs: list[str], skip_dir: Path | None, unreadable: list[str]) -> Iterator[tuple[Path, Path]]:
    """(file, path relative to its input root) for files, folders (recursive) and globs; folders that
    cannot be listed are added to ``unreadable`` (as ``find`` does, the walk goes on without them).
    Inputs that are neither there nor globs were refused first (:func:`missing_inputs`)."""
    for entry in inputs:
        path = Path(entry)
        if path.is_dir():
            yield from walk_folder(path, skip_dir, unreadable)
        elif glob.has_magic(entry) and not path.exists():
            matches = sorted(glob.glob(entry, recursive=True))
            if not matches:
                raise InputError(f"{entry}: no files match")
            root = Path(glob_root(entry))
            for match in map(Path, matches):
                if match.is_file():
                    yield match, _relative_below(match, root)
        else:  # a file, or another readable non-folder (a FIFO, /dev/stdin)
            yield path, Path(path.name)


def missing_inputs(inputs: list[str]) -> list[str]:
    """The inputs that are not there (stdin and globs aside: a glob's matches are found when it is walked)."""
    return [entry for entry in inputs if entry != images.STDIO and not Path(entry).exists() and not glob.has_magic(entry)]


def _relative_below(path: Path, root: Path) -> Path:
    """``path`` relative to ``root`` once '..' parts are resolved ('photos/a/../b.png' -> 'b.png');
    its bare name when it lies elsewhere ('photos/*/../../x.png')."""
    relative = Path(os.path.normpath(os.path.relpath(path, root)))
    return Path(path.name) if relative.parts[:1] == ("..",) else relative


def glob_root(pattern: str) -> str:
    """The folder part of a glob before its first wildcard ('photos/**/*.jpg' -> 'photos')."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return str(Path(*fixed)) if fixed else "."


def walk_folder(folder: Path, skip_dir: Path | None, unreadable: list[str]) -> Iterator[tuple[Path, Path]]:
    """Image and video files under ``folder`` in sorted order, skipping hidden entries and the output folder."""

    def cannot_list(error: OSError) -> None:
        unreadable.append(f"{error.filename}: cannot read this folder ({error.strerror or error})")

    for root, dirs, files in os.walk(folder, onerror=cannot_list):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not _same(here / d, skip_dir))
        for name in sorted(files):
            path = here / name
            # Regular files only: reading a FIFO or device found in a folder would block forever.
            suffix = path.suffix.lower()
            if not name.startswith(".") and (suffix in IMAGE_SUFFIXES or suffix in VIDEO_SUFFIXES) and path.is_file():
                yield path, path.relative_to(folder)


def _same(path: Path, other: Path | None) -> bool:
    return other is not None and other.exists() and path.exists() and os.path.samefile(path, other)


def single_file_output(config: ApplyConfig) -> bool:
    """``-o out.jpg`` (or ``out.mp4``) for one input file: the output is that file, not a folder (``out.gif``
    too: a file nst then refuses to write, as it cannot, unless --format says how)."""
    out = Path(config.output)
    return (
        len(config.inputs) == 1
        and (config.inputs[0] == images.STDIO or _is_single_input(Path(config.inputs[0])))
        and looks_like_a_file(config.output)
        and not out.is_dir()
    )


def names_a_folder(output: str) -> bool:
    """``-o out.png/``: a trailing separator says folder whatever the name looks like."""
    return output.endswith(("/", os.sep))


def looks_like_a_file(output: str) -> bool:
    """A new ``-o`` named like an image or a video (``out.jpg``, ``out.gif``, ``out.mp4``), not a folder."""
    suffix = Path(output).suffix.lower()
    return not names_a_folder(output) and (suffix in images.IMAGE_EXTENSIONS or is_video(output))


def _is_single_input(path: Path) -> bool:
    """A file, or another readable non-folder (a FIFO, /dev/stdin): read as one image, as cat would."""
    return path.exists() and not path.is_dir()


def in_shard(key: str, shard: tuple[int, int] | None) -> bool:
    """Deterministic split by a hash of the relative output path: the same on every machine."""
    if shard is None:
        return True
    import hashlib  # here: only --shard needs it, and every nst apply would import it (3 ms)

    index, count = shard
    digest = int.from_bytes(hashlib.sha1(key.encode("utf-8", "surrogateescape")).digest()[:8], "big")
    return digest % count == index - 1


@dataclass
class JobPlan:
    jobs: list[Job]  # what to do
    skipped: int  # outputs that already exist (--skip-existing)
    unreadable: list[str] = field(default_factory=list)  # folders that could not be listed: failures


def plan_jobs(config: ApplyConfig, style_label: str) -> JobPlan:
    """All (source, target) pairs to process, the number skipped as already done, and the folders
    that could not be read."""
    check_template(config.name)
    missing = missing_inputs(config.inputs)
    if missing:  # before the output rules, whose messages assume the inputs are there
        raise InputError(f"{missing[0]}: no such file or folder")
    model_stem = Path(config.model).stem
    stdin = images.STDIO in config.inputs
    if stdin and len(config.inputs) != 1:
        raise UsageError("- (stdin) must be the only input")
    if config.output == images.STDIO:
        if len(config.inputs) != 1 or not (stdin or Path(config.inputs[0]).is_file()) or is_video(config.inputs[0]):
            raise UsageError("-o - (stdout) takes exactly one input image (videos are written to files)")
        return JobPlan([Job(config.inputs[0], images.STDIO, "-")], 0)
    if stdin and not single_file_output(config):
        raise UsageError("reading stdin (-) needs -o - or -o FILE")
    if single_file_output(config):
        source = config.inputs[0]
        check_target(source, config.output, config.image_format)
        # the shared output rule; an existing output is --skip-existing's or --overwrite's (below)
        images.check_output_path(config.output, _input_files(config), overwrite=True)
        return JobPlan(*_resolve_existing([Job(source, config.output, Path(config.output).name)], config))

    out_dir = Path(config.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir}: exists and is not a folder (an output file needs exactly one input)")
    if not out_dir.exists() and looks_like_a_file(config.output):
        # a file's name, not a new folder's: several inputs (or a folder) cannot go into one file
        raise UsageError(f"{out_dir}: an output file needs exactly one input file; for several, give a folder (-o out/)")
    jobs: list[Job] = []
    seen: dict[str, str] = {}
    input_paths: set[Path] = {Path(path).resolve() for path in _input_files(config)}
    unreadable: list[str] = []
    for source, relative in find_inputs(config.inputs, out_dir, unreadable):
        input_paths.add(source.resolve())
        name = output_name(config.name, source, style_label, model_stem, config.image_format)
        key = (relative.parent / name).as_posix()
        if key in seen:
            if Path(seen[key]).resolve() == source.resolve():
                continue  # the same file named twice, or reached by two paths ('a/../x', 'b/../x')
            raise UsageError(f"{seen[key]} and {source} would both be written to {out_dir / key}; use --name")
        seen[key] = str(source)
        if in_shard(key, config.shard):
            jobs.append(Job(str(source), str(out_dir / key), key))
    if not seen and not unreadable:
        raise UsageError("no input images found")
    inside = out_dir.resolve()
    for job in jobs:
        check_target(job.source, job.target, config.image_format)
        if not Path(job.target).resolve().is_relative_to(inside):  # the rule: every output stays inside -o
            raise UsageError(f"{job.target}: would be written outside {out_dir}; use --name or other inputs")
        if Path(job.target).resolve() in input_paths:
            raise UsageError(f"{job.target}: output would overwrite an input; choose another -o or --name")
    images.check_writable_folder(out_dir)
    return JobPlan(*_resolve_existing(jobs, config), unreadable)


def check_target(source: str, target: str, format_name: str | None) -> None:
    """An image is written as an image and a video as a video (UsageError otherwise)."""
    if source == images.STDIO and is_video(target):
        raise UsageError(f"stdin (-) is read as one image; a video is read from its file ({target} would be a video)")
    if is_video(source) != is_video(target):
        kind, other = ("a video", "an image") if is_video(source) else ("an image", "a video")
        raise UsageError(f"{source} is {kind}; {target} would be {other} (use a matching extension)")
    if not is_video(target):
        images.format_for(target, image_format(format_name))
        return
    suffix, wanted = Path(target).suffix.lower().lstrip("."), video_format(format_name)
    if wanted and VIDEO_FORMATS[wanted] != VIDEO_FORMATS[suffix]:  # as for images: not WebM bytes in out.mp4
        raise UsageError(f"{target}: named .{suffix}, but --format is {format_name}; make them match or leave --format out")


def _input_files(config: ApplyConfig) -> list[str]:
    """The files a run reads that no output may replace: input files named directly and region masks."""
    masks = [mask for _, mask in config.regions or [] if mask]
    return [path for path in [*config.inputs, *masks] if path != images.STDIO and Path(path).is_file()]


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
    """A killed run can leave the temporary files of write_bytes_atomic; remove ours before writing.

    Only names write_bytes_atomic makes for these targets match (``.NAME.nst-XXXXXXXX.part``), so a
    user's own hidden file that merely starts the same way is never touched.
    """
    by_folder: dict[Path, set[str]] = {}
    for job in jobs:
        if job.target != images.STDIO:
            by_folder.setdefault(Path(job.target).parent, set()).add(Path(job.target).name)
    for folder, names in by_folder.items():
        if not folder.is_dir():
            continue
        for entry in os.scandir(folder):
            match = images.TEMP_NAME.fullmatch(entry.name)
            if match and match["target"] in names:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
