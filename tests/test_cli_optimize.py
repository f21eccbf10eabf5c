"""The real `nst` CLI in subprocesses: optimize, score, demo; Unix-filter behaviour and exit codes."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import REPO, assert_one_line_error, hear_ctrl_c, nst

FAST = ["--size", "32", "--iterations", "3", "--device", "cpu"]


def test_help_is_fast_and_does_not_import_torch() -> None:
    code = "import sys; from nstcli import cli; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
    result = nst("--help")
    assert result.returncode == 0 and b"optimize" in result.stdout
    assert nst("--version").stdout.startswith(b"nst ")
    bare = nst()  # the help, and no empty error line after it
    assert bare.returncode == 2 and b"optimize" in bare.stdout and bare.stderr == ""


def test_optimize_writes_the_output_and_a_message(tmp_path: Path, content_path: Path, style_path: Path) -> None:
    out = tmp_path / "out.jpg"
    result = nst("optimize", str(content_path), str(style_path), "-o", str(out), *FAST)
    assert result.returncode == 0, result.stderr
    assert Image.open(out).format == "JPEG" and Image.open(out).size == (32, 21)
    assert result.stdout == b"" and "wrote" in result.stderr


def test_stdin_to_stdout_filter(content_path: Path, style_path: Path) -> None:
    result = nst("optimize", "-", str(style_path), "-o", "-", *FAST, stdin=content_path.read_bytes())
    assert result.returncode == 0, result.stderr
    assert Image.open(io.BytesIO(result.stdout)).size == (32, 21)


def test_quiet_prints_nothing(tmp_path: Path, content_path: Path, style_path: Path) -> None:
    result = nst("optimize", str(content_path), str(style_path), "-o", str(tmp_path / "o.png"), *FAST, "-q")
    assert result.returncode == 0 and result.stderr == ""


def test_progress_lines_when_stderr_is_not_a_terminal(
    tmp_path: Path, content_path: Path, style_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nstcli import cli

    monkeypatch.setattr(cli, "PLAIN_PROGRESS_SECONDS", 0.0)  # a line per update instead of one every few seconds
    args = ("optimize", str(content_path), str(style_path), "-o", str(tmp_path / "o.png"), "--size", "48")
    result = nst(*args, "--iterations", "20", "--min-size", "24", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("optimize ")]
    assert lines[0].startswith("optimize  1/20  ") and lines[-1].startswith("optimize  20/20  ")
    assert "24x16" in lines[0] and "48x32  loss " in lines[-1]  # the scale's size, then the loss
    assert "s left" in lines[9]
    assert "optimize " not in nst(*args, "--iterations", "2", "--overwrite", "-q").stderr


def test_progress_counts_the_work_by_each_scales_pixels(content_path: Path, style_path: Path) -> None:
    from nstcli import images
    from nstcli.optimize import run_optimize
    from nstcli.settings import OptimizeConfig

    steps = []
    config = OptimizeConfig(size=48, min_size=24, iterations=20, device="cpu")
    run_optimize(images.read_image(content_path), [images.read_image(style_path)], config, on_progress=steps.append)
    assert [step.size for step in steps] == [(24, 16)] * 6 + [(34, 23)] * 6 + [(48, 32)] * 8
    pixels = [width * height for width, height in (step.size for step in steps)]
    assert [step.work for step in steps] == pytest.approx([sum(pixels[: n + 1]) / sum(pixels) for n in range(20)])
    assert steps[5].work < 0.12 and steps[-1].work == pytest.approx(1.0)  # the coarsest scale: 6 of 20, an eighth of the work


def test_logs_plot_snapshots_and_config(tmp_path: Path, content_path: Path, style_path: Path) -> None:
    out = tmp_path / "out.png"
    result = nst(
        "optimize", str(content_path), str(style_path), "-o", str(out), "--size", "32", "--iterations", "6",
        "--save-every", "2", "--loss-log", str(tmp_path / "loss.csv"), "--plot", str(tmp_path / "loss.png"),
        "--save-config", str(tmp_path / "config.json"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader((tmp_path / "loss.csv").open()))
    assert len(rows) == 6 and {"evaluation", "content", "style", "tv", "total"} <= set(rows[0])
    assert float(rows[-1]["total"]) < float(rows[0]["total"])
    assert Image.open(tmp_path / "loss.png").size == (900, 540)
    assert sorted(p.name for p in tmp_path.glob("out.0*.png")) == ["out.00002.png", "out.00004.png"]
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["iterations"] == 6 and saved["lr"] == 1.0  # resolved: L-BFGS's rate, the network's layers
    assert saved["loss"]["content_layers"] == ["relu4_2"] and saved["loss"]["style_layers"][0] == "relu1_1"
    json_run = nst("optimize", str(content_path), str(style_path), "-o", str(tmp_path / "b.png"), *FAST,
                       "--loss-log", str(tmp_path / "loss.json"))  # fmt: skip
    assert json_run.returncode == 0
    data = json.loads((tmp_path / "loss.json").read_text())
    assert data["config"]["size"] == 32 and len(data["rows"]) == 3


def test_several_styles_with_blend(tmp_path: Path, content_path: Path, style_path: Path) -> None:
    out = tmp_path / "out.png"
    result = nst("optimize", str(content_path), str(style_path), str(content_path), "-o", str(out), *FAST,
                     "--style-blend", "0.7,0.3", "--net", "vgg19", "--style-layers", "relu1_1,relu2_1")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert out.exists()


def test_bad_inputs_get_one_line_errors_and_no_output(tmp_path: Path, content_path: Path, style_path: Path) -> None:
    out = tmp_path / "out.png"
    text = tmp_path / "text.jpg"
    text.write_text("not an image")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    cases = [
        ([str(tmp_path / "missing.png"), str(style_path)], 1, "no such file"),
        ([str(content_path), str(text)], 1, "not a recognised image"),
        ([str(content_path), str(empty)], 1, "empty file"),
        ([str(content_path), str(style_path), "--style-layers", "relu9_1"], 2, "no layer 'relu9_1'"),
        ([str(content_path), str(style_path), "--size", "abc"], 2, "--size"),
        ([str(content_path), str(style_path), "--style-blend", "0.5,x"], 2, "--style-blend"),
        ([str(content_path), str(style_path), "--optimizer", "sgd"], 2, "unknown optimizer"),
        ([str(content_path), str(style_path), "--net", "vgg16", "--weights", str(text)], 1, "cannot load weights"),
    ]
    for args, code, fragment in cases:
        result = nst("optimize", "-o", str(out), *FAST, *args)
        assert_one_line_error(result, code, fragment)
        assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["content.png", "empty.png", "style.png", "text.jpg"]


def test_outputs_are_protected(tmp_path: Path, content_path: Path, style_path: Path) -> None:
    assert_one_line_error(nst("optimize", str(content_path), str(style_path), "-o", str(content_path), *FAST),
                          2, "also an input")  # fmt: skip
    existing = tmp_path / "existing.png"
    existing.write_bytes(b"keep me")
    assert_one_line_error(nst("optimize", str(content_path), str(style_path), "-o", str(existing), *FAST),
                          2, "already exists")  # fmt: skip
    assert existing.read_bytes() == b"keep me"
    assert_one_line_error(nst("optimize", str(content_path), str(style_path), "-o", "/proc/nst-out.png", *FAST),
                          1, "cannot write")  # fmt: skip


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_exits_130_without_partial_output(tmp_path: Path, content_path: Path, style_path: Path, signum) -> None:
    out = tmp_path / "out.png"
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONFAULTHANDLER="1")  # SIGABRT dumps every thread's stack
    process = subprocess.Popen(
        [sys.executable, "-m", "nstcli", "optimize", str(content_path), str(style_path), "-o", str(out),
         "--size", "64", "--iterations", "100000", "--loss-log", str(tmp_path / "log.csv")],
        stderr=subprocess.PIPE, env=env, preexec_fn=hear_ctrl_c,
    )  # fmt: skip
    time.sleep(8)
    process.send_signal(signum)
    try:
        _, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # show where it hangs, and leave no process behind
        process.send_signal(signal.SIGABRT)
        _, stderr = process.communicate(timeout=30)
        pytest.fail(f"still running 60 s after {signum!r}:\n{stderr.decode(errors='replace')}")
    assert process.returncode == 130, stderr
    assert b"Traceback" not in stderr and b"interrupted" in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["content.png", "style.png"]


def test_stdin_content_writes_stdout_without_o(content_path: Path, style_path: Path, tmp_path: Path) -> None:
    filtered = nst("optimize", "-", str(style_path), "--size", "32", "--iterations", "2", "-q", stdin=content_path.read_bytes())
    assert filtered.returncode == 0, filtered.stderr
    assert Image.open(io.BytesIO(filtered.stdout)).size[0] == 32
    missing = nst("optimize", str(content_path), str(style_path), "--size", "32", cwd=tmp_path)
    assert (missing.returncode, missing.stderr) == (2, "nst: error: give -o: an output image, or - for stdout\n")


def test_a_transparent_content_image_gives_a_transparent_result(content_path: Path, style_path: Path, tmp_path: Path) -> None:
    content = Image.open(content_path).convert("RGBA")
    alpha = Image.new("L", content.size, 255)
    alpha.paste(0, (0, 0, content.width // 2, content.height))  # the left half see-through
    content.putalpha(alpha)
    content.save(tmp_path / "cut.png")
    for name in ("out.png", "out.jpg"):
        result = nst("optimize", str(tmp_path / "cut.png"), str(style_path), "-o", str(tmp_path / name), "--size", "32", "--iterations", "2", "-q")
        assert result.returncode == 0, result.stderr
    out = Image.open(tmp_path / "out.png")
    assert out.mode == "RGBA" and out.getchannel("A").getpixel((2, 2)) == 0 and out.getchannel("A").getpixel((out.width - 3, 2)) == 255
    assert Image.open(tmp_path / "out.jpg").mode == "RGB"


def test_score_prints_json(content_path: Path, style_path: Path) -> None:
    result = nst("score", str(content_path), str(style_path), str(content_path), "--size", "32")
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["content"] == 0 and values["style"] > 0 and values["net"] == "vgg19"
    bundled = nst("score", str(content_path), "swirls", str(content_path), "--size", "32")  # a style's name, as optimize takes
    assert bundled.returncode == 0, bundled.stderr
    assert json.loads(bundled.stdout)["style"] != values["style"]


def test_demo_runs_offline(tmp_path: Path) -> None:
    result = nst("demo", "--optimize", "-o", str(tmp_path / "demo.png"), "--size", "48", "--iterations", "3")
    assert result.returncode == 0, result.stderr
    assert Image.open(tmp_path / "demo.png").size == (48, 32)
