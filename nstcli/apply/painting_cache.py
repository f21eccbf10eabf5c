"""The paintings' statistics of ``nst apply --style-image``, kept between runs.

A shell loop that stylises one photo per run with the same painting measured the painting every time: decoding
it, three encoder stages and an eigendecomposition per level, about 40 ms of a 0.5 s run at 512 px. Each
painting's statistics are kept in the user's cache folder under a key of everything they depend on: the
painting's bytes, the style size, the encoder stages that measured them (each file's path, size and
modification time) and the provider they ran on. They are kept in float32, so a run from the cache paints
what a fresh run paints, bit for bit. A cache that cannot be read or written is passed over, never an error.

The folder: ``$NST_CACHE_DIR``, else ``$XDG_CACHE_HOME/nst/paintings`` (``~/.cache/nst/paintings``); an empty
``NST_CACHE_DIR`` turns the cache off. It keeps the ``MAX_ENTRIES`` paintings used last.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from pathlib import Path

import numpy as np

from nstcli import images, wct
from nstcli.errors import InputError

MAX_ENTRIES = 64  # at most 1.4 MB each (every level's colouring matrix in float32)
SUFFIX = ".npz"


def cache_folder() -> Path | None:
    """Where the statistics are kept, or None when the cache is off."""
    configured = os.environ.get("NST_CACHE_DIR")
    if configured is not None:
        return Path(configured) if configured else None
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nst" / "paintings"


def painting_key(painting: str, style_size: int, stages: list[Path], provider: str) -> str | None:
    """The key of one painting's statistics, or None when the painting cannot be read (the run reports that)."""
    digest = hashlib.blake2b(digest_size=20)
    try:
        digest.update(Path(painting).read_bytes())
        for stage in stages:
            status = stage.stat()
            digest.update(f"{stage.resolve()}|{status.st_size}|{status.st_mtime_ns}".encode())
    except OSError:
        return None
    digest.update(f"{style_size}|{provider}".encode())
    return digest.hexdigest()


def load(key: str) -> dict[int, wct.StyleStats]:
    """The statistics kept under ``key`` (level -> StyleStats; empty when there are none or they cannot be read)."""
    folder = cache_folder()
    if folder is None:
        return {}
    path = folder / f"{key}{SUFFIX}"
    try:
        with open(path, "rb") as file, np.load(file) as stored:  # numpy left a damaged file open
            stats = wct.stats_from_arrays(stored, wct.stored_levels(stored))
        os.utime(path)  # used last: kept longest
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return {}
    return stats


def store(key: str, stats: dict[int, wct.StyleStats]) -> None:
    """Keep ``stats`` under ``key`` (atomically), then drop the entries used longest ago beyond MAX_ENTRIES."""
    folder = cache_folder()
    if folder is None:
        return
    buffer = io.BytesIO()
    np.savez(buffer, **wct.stats_arrays(stats))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        images.write_bytes_atomic(buffer.getvalue(), folder / f"{key}{SUFFIX}")
        entries = sorted(folder.glob(f"*{SUFFIX}"), key=lambda entry: entry.stat().st_mtime_ns, reverse=True)
        for entry in entries[MAX_ENTRIES:]:
            entry.unlink(missing_ok=True)
    except (OSError, InputError):  # a read-only home, a full disk, another run pruning at the same time
        pass
