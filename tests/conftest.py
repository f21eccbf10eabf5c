"""Shared fixtures: small images generated in code (never files from shared/data), and the two ways
tests run the CLI: ``nst`` (in this process, the default) and ``run_nst`` (a real subprocess)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator
from unittest import mock

import nstcli  # noqa: F401 - first, before numpy: it sets numpy's BLAS to one thread as the CLI runs it

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
# The paintings' statistics that --style-image runs keep (apply/painting_cache) go to a folder of this session's
# (each test's own in-process: fresh_painting_cache), never to the user's cache
PAINTING_CACHE = tempfile.TemporaryDirectory(prefix="nst-test-cache-")
os.environ["NST_CACHE_DIR"] = PAINTING_CACHE.name
# Subprocesses get one OpenMP thread: on a loaded 2-core machine spinning threads make small ops ~100x slower.
# Without PYTHONUNBUFFERED (this machine sets it, a user's shell does not): stdout into a pipe is block-buffered there
SUBPROCESS_ENV = {**{key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"},
                  "PYTHONPATH": str(REPO), "NO_COLOR": "1", "OMP_NUM_THREADS": "1"}  # fmt: skip


def hear_ctrl_c() -> None:
    """``preexec_fn`` for a child a test sends SIGINT: a shell's background job (``pytest &``) ignores SIGINT,
    its children inherit that, and Python then never installs its Ctrl-C handler, as it should not."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(autouse=True)
def fresh_painting_cache(tmp_path_factory, monkeypatch):
    """Each test starts with no painting measured: what one test's runs keep cannot change another's."""
    monkeypatch.setenv("NST_CACHE_DIR", str(tmp_path_factory.mktemp("painting-cache")))


@pytest.fixture(scope="module")
def one_torch_thread():
    """The same in-process, for modules that train or export (use with pytest.mark.usefixtures)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def gradient_image(width: int = 48, height: int = 32, seed: int = 0) -> Image.Image:
    """A smooth colour gradient with a bright disc: a stand-in photo."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rng = np.random.default_rng(seed)
    red, green = x / width, y / height
    blue = ((x - width / 2) ** 2 + (y - height / 2) ** 2 < (min(width, height) / 4) ** 2).astype(np.float32)
    array = np.stack([red, green, 0.3 + 0.6 * blue], axis=-1) + rng.normal(0, 0.02, (height, width, 3))
    return Image.fromarray((np.clip(array, 0, 1) * 255).astype(np.uint8), "RGB")


def stripes_image(width: int = 48, height: int = 48, period: int = 6) -> Image.Image:
    """Diagonal coloured stripes: a stand-in painting with a strong texture."""
    y, x = np.mgrid[0:height, 0:width]
    band = ((x + y) // period) % 3
    palette = np.array([[230, 190, 40], [30, 60, 160], [200, 40, 40]], dtype=np.uint8)
    return Image.fromarray(palette[band], "RGB")


@pytest.fixture
def content_path(tmp_path: Path) -> Path:
    path = tmp_path / "content.png"
    gradient_image().save(path)
    return path


@pytest.fixture
def style_path(tmp_path: Path) -> Path:
    path = tmp_path / "style.png"
    stripes_image().save(path)
    return path


@dataclass
class CliResult:
    """What one in-process ``nst`` call left behind, as a subprocess would show it."""

    returncode: int
    stdout: bytes  # data: images, JSON
    stderr: str  # messages


@contextlib.contextmanager
def _fd_to_temporary_file(fd: int) -> Iterator[IO[bytes]]:
    """Point file descriptor ``fd`` at a new temporary file for the duration: C-level writes land there too."""
    with tempfile.TemporaryFile() as file:
        saved = os.dup(fd)
        os.dup2(file.fileno(), fd)
        try:
            yield file
        finally:
            os.dup2(saved, fd)
            os.close(saved)


@contextlib.contextmanager
def _standard_streams(stdin: bytes) -> Iterator[dict[str, bytes]]:
    """sys.stdin reads ``stdin``; file descriptors 1 and 2 (and sys.stdout, sys.stderr, their .buffer) write
    to temporary files, whose bytes the yielded dict holds as "stdout" and "stderr" afterwards."""
    streams = sys.stdin, sys.stdout, sys.stderr
    captured: dict[str, bytes] = {}
    with _fd_to_temporary_file(1) as out_file, _fd_to_temporary_file(2) as err_file:
        out, err = (io.TextIOWrapper(io.BufferedWriter(io.FileIO(fd, "w", closefd=False)), encoding="utf-8",
                                     write_through=True) for fd in (1, 2))  # fmt: skip
        sys.stdin, sys.stdout, sys.stderr = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"), out, err
        try:
            yield captured
        finally:
            out.flush()
            err.flush()
            sys.stdin, sys.stdout, sys.stderr = streams
            for name, file in (("stdout", out_file), ("stderr", err_file)):
                file.seek(0)
                captured[name] = file.read()


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ARG001
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


@contextlib.contextmanager
def _like_a_new_process(cwd: Path | None) -> Iterator[None]:
    """For the duration, what a subprocess would start with, all put back afterwards: NO_COLOR=1 and
    OMP_NUM_THREADS=1 (and torch on one thread), the directory ``cwd``, Python's default warning filters
    with warnings printed on stderr (not recorded by pytest), logging's fallback handler (stderr) instead
    of pytest's, and the SIGINT/SIGTERM handlers."""
    torch = sys.modules.get("torch")  # None: an import during the call reads OMP_NUM_THREADS=1
    threads = torch.get_num_threads() if torch is not None else 0
    signals = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    log_handlers = logging.root.handlers[:]
    with mock.patch.dict(os.environ, {"NO_COLOR": "1", "OMP_NUM_THREADS": "1"}), warnings.catch_warnings():
        warnings.resetwarnings()
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.simplefilter("ignore", category)
        warnings.showwarning = _show_warning
        logging.root.handlers[:] = []
        if torch is not None:
            torch.set_num_threads(1)
        try:
            with contextlib.chdir(cwd) if cwd is not None else contextlib.nullcontext():
                yield
        finally:
            logging.root.handlers[:] = log_handlers
            for number, handler in signals.items():
                signal.signal(number, handler)
            if torch is not None:
                torch.set_num_threads(threads)


def nst(*args: str, stdin: bytes = b"", cwd: Path | None = None) -> CliResult:
    """``nst ARGS`` through ``cli.main`` in this process: no interpreter start and no torch import per call.

    The call sees what a subprocess would (see ``_like_a_new_process``); stdin holds ``stdin`` (empty, never
    the terminal); stdout and stderr catch everything written to them, from Python or from C libraries.
    An exception that escapes ``cli.main`` (a crash, which a subprocess would show as a traceback) is
    raised here and fails the test.
    """
    from nstcli.cli import main

    with _like_a_new_process(cwd), _standard_streams(stdin) as captured:
        try:
            code = main(list(args))
        except SystemExit as exit_:
            code = exit_.code
    returncode = code if isinstance(code, int) else (0 if code is None else 1)  # sys.exit(None) / sys.exit("text")
    return CliResult(returncode, captured["stdout"], captured["stderr"].decode(errors="replace"))


def run_nst(*args: str, stdin: bytes | None = None, cwd: Path | None = None, timeout: float = 300):
    """Run the real CLI in a subprocess (python -m nstcli), return the CompletedProcess (bytes).

    Only for what a process alone shows: signals and kills, torchrun, import-time behaviour, FIFOs
    and other inputs that could hang (the timeout); everything else uses ``nst``.
    """
    return subprocess.run(
        [sys.executable, "-m", "nstcli", *args], input=stdin, capture_output=True, cwd=cwd, env=SUBPROCESS_ENV,
        timeout=timeout,
    )


def assert_one_line_error(result, code: int, fragment: str) -> None:
    """Exit ``code``, one line on stderr that contains ``fragment``, no traceback, nothing on stdout
    (``result``: a CliResult from ``nst`` or a CompletedProcess from ``run_nst``)."""
    stderr = result.stderr if isinstance(result.stderr, str) else result.stderr.decode()
    assert result.returncode == code, stderr
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert fragment in stderr, stderr
    assert result.stdout == b""
