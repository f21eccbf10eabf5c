"""Shared fixtures: small images generated in code (never files from shared/data)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
# Subprocesses get one OpenMP thread: on a loaded 2-core machine spinning threads make small ops ~100x slower.
SUBPROCESS_ENV = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1", "OMP_NUM_THREADS": "1"}


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


def run_nst(*args: str, stdin: bytes | None = None, cwd: Path | None = None, timeout: float = 300):
    """Run the real CLI in a subprocess (python -m nstcli), return the CompletedProcess (bytes)."""
    return subprocess.run(
        [sys.executable, "-m", "nstcli", *args], input=stdin, capture_output=True, cwd=cwd, env=SUBPROCESS_ENV,
        timeout=timeout,
    )


def assert_one_line_error(result, code: int, fragment: str) -> None:
    """Exit ``code``, one line on stderr that contains ``fragment``, no traceback, nothing on stdout."""
    stderr = result.stderr.decode()
    assert result.returncode == code, stderr
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert fragment in stderr, stderr
    assert result.stdout == b""
