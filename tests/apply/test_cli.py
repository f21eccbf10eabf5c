"""``nst apply`` and ``nst info`` end to end on tiny generated images: the CLI in-process (``nst``), and
real processes where only a process shows it (the imports of a fresh interpreter, a SIGKILL)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from tests.conftest import SUBPROCESS_ENV, hear_ctrl_c, nst


def photo(width: int = 48, height: int = 32, seed: int = 0) -> Image.Image:
    """A smooth colourful test picture (gradients plus a little noise)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    pixels = np.stack([x, y, 0.5 + 0.4 * np.sin(6 * x + seed)], axis=-1) + rng.normal(0, 0.03, (height, width, 3))
    return Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8))


def make_folder(root: Path, count: int, size: tuple[int, int] = (48, 32), suffix: str = ".png") -> list[Path]:
    paths = []
    for index in range(count):
        path = root / ("deep" if index % 3 == 0 else "") / f"img{index:03d}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        photo(*size, seed=index).save(path)
        paths.append(path)
    return paths


def outputs(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_folder_mirrors_tree_counts_failures_and_prints_json(models, tmp_path):
    inputs = tmp_path / "in"
    make_folder(inputs, 5)
    (inputs / "broken.jpg").write_bytes(b"not an image")
    (inputs / "notes.txt").write_text("ignored: not an image suffix")
    result = nst("apply", str(models["single"]), str(inputs), "-o", str(tmp_path / "out"), "--json")
    assert result.returncode == 1, result.stderr
    summary = json.loads(result.stdout)  # stdout is exactly one JSON document
    assert summary["written"] == 5 and summary["failed"] == 1 and summary["planned"] == 6
    assert summary["failures"][0]["input"].endswith("broken.jpg")
    assert summary["images_per_second"] > 0 and summary["provider"] == "CPUExecutionProvider"
    failure = next(line for line in result.stderr.splitlines() if "broken.jpg" in line)
    assert failure.startswith("nst: error: ") and failure.endswith("broken.jpg: not a recognised image file")
    assert outputs(tmp_path / "out") == {"deep/img000.png", "img001.png", "img002.png", "deep/img003.png", "img004.png"}
    with Image.open(tmp_path / "out" / "img001.png") as image:
        assert image.size == (48, 32) and image.mode == "RGB"


def test_stdin_to_stdout_filter_keeps_format(models, tmp_path):
    buffer = io.BytesIO()
    photo(40, 24).save(buffer, "JPEG")
    result = nst("apply", str(models["single"]), "-", "-o", "-", stdin=buffer.getvalue())
    assert result.returncode == 0, result.stderr
    image = Image.open(io.BytesIO(result.stdout))
    assert image.format == "JPEG" and image.size == (40, 24)
    png = nst("apply", str(models["single"]), "-", "-o", "-", "--format", "png", stdin=buffer.getvalue())
    assert Image.open(io.BytesIO(png.stdout)).format == "PNG"
    plain = nst("apply", str(models["single"]), "-", stdin=buffer.getvalue())  # a filter: stdin in, stdout out
    assert plain.returncode == 0 and plain.stdout == result.stdout, plain.stderr
    photo().save(tmp_path / "in.png")
    no_output = nst("apply", str(models["single"]), str(tmp_path / "in.png"))
    assert (no_output.returncode, no_output.stderr) == (2, "nst: error: give -o: an output folder, or a file for one input, or - for stdout\n")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.png"]


def test_a_transparent_input_stays_transparent_where_the_format_can_say_so(models, tmp_path):
    source = photo(48, 32).convert("RGBA")
    alpha = Image.new("L", source.size, 255)
    alpha.paste(0, (0, 0, 20, 32))  # the left part see-through
    source.putalpha(alpha)
    source.save(tmp_path / "cut.png")
    photo(48, 32).convert("RGBA").save(tmp_path / "opaque.png")  # an alpha channel that hides nothing
    (tmp_path / "out").mkdir()
    for name in ("cut.png", "cut.webp", "cut.jpg", "opaque.png"):
        result = nst("apply", str(models["single"]), str(tmp_path / (name.split(".")[0] + ".png")), "-o", str(tmp_path / "out" / name))
        assert result.returncode == 0, result.stderr
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "cut.png").getchannel("A")), np.asarray(alpha))
    assert Image.open(tmp_path / "out" / "cut.webp").mode == "RGBA"
    assert Image.open(tmp_path / "out" / "cut.jpg").mode == "RGB"  # JPEG has no alpha: over white, as before
    assert Image.open(tmp_path / "out" / "opaque.png").mode == "RGB"


def test_apply_path_never_imports_torch(models, tmp_path):
    photo().save(tmp_path / "in.png")
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "nstcli", "apply", str(models["single"]), str(tmp_path / "in.png"),
         "-o", str(tmp_path / "out.png")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    modules = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "onnxruntime" in modules  # the check sees real imports
    heavy = sorted(m for m in modules if m.split(".")[0] in ("torch", "torchvision", "ray"))  # ray: only with --ray
    assert heavy == [], f"nst apply imported {heavy[:5]}"
    assert (tmp_path / "out.png").is_file()


def test_never_writes_over_an_input_and_respects_existing(models, tmp_path):
    make_folder(tmp_path, 2)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*.png")}
    same = nst("apply", str(models["single"]), str(tmp_path), "-o", str(tmp_path))
    assert same.returncode == 2 and "would overwrite an input" in same.stderr
    single = tmp_path / "img001.png"
    into_itself = nst("apply", str(models["single"]), str(single), "-o", str(single), "--overwrite")
    assert into_itself.returncode == 2 and "also an input" in into_itself.stderr
    assert {p: p.read_bytes() for p in tmp_path.rglob("*.png")} == before

    out = tmp_path / "styled"
    assert nst("apply", str(models["single"]), str(single), "-o", str(out)).returncode == 0
    again = nst("apply", str(models["single"]), str(single), "-o", str(out))
    assert again.returncode == 2 and "already exists" in again.stderr
    skip = nst("apply", str(models["single"]), str(single), "-o", str(out), "--skip-existing", "--json")
    assert json.loads(skip.stdout)["skipped"] == 1
    assert nst("apply", str(models["single"]), str(single), "-o", str(out), "--overwrite").returncode == 0


def test_name_template_format_and_path_escapes(models, tmp_path):
    photo().save(tmp_path / "cat.png")
    out = tmp_path / "out"
    result = nst("apply", str(models["single"]), str(tmp_path / "cat.png"), "-o", str(out),
                 "--name", "{stem}_{style}.{ext}", "--format", "jpg", "--quality", "80")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert outputs(out) == {"cat_tiny.jpg"}
    assert Image.open(out / "cat_tiny.jpg").format == "JPEG"
    for template, message in [("../{stem}.png", "must not contain /"), ("{stem}{nope}.png", "unknown field {nope}"),
                              ("..", "not a plain file name")]:  # fmt: skip
        bad = nst("apply", str(models["single"]), str(tmp_path / "cat.png"), "-o", str(out), "--name", template)
        assert bad.returncode == 2 and message in bad.stderr, (template, bad.stderr)
    assert outputs(out) == {"cat_tiny.jpg"} and not (tmp_path / "cat.png.png").exists()


def test_exif_orientation_applied_and_icc_profile_kept(models, tmp_path):
    source = photo(40, 24)
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    source.save(tmp_path / "rotated.jpg", "JPEG", exif=exif, icc_profile=icc)
    result = nst("apply", str(models["single"]), str(tmp_path / "rotated.jpg"), "-o", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "out" / "rotated.jpg") as output:
        assert output.size == (24, 40)  # upright
        assert output.info.get("icc_profile") == icc
        assert output.getexif().get(0x0112, 1) == 1


def test_strength_and_preserve_color(models, tmp_path):
    from nstcli.color import _RGB_TO_YIQ

    content = photo(48, 48, seed=3)
    content.save(tmp_path / "c.png")
    model = str(models["single"])
    for flags, name in [([], "full"), (["--strength", "0"], "none"), (["--strength", "0.5"], "half"),
                        (["--preserve-color", "luminance"], "lum")]:  # fmt: skip
        result = nst("apply", model, str(tmp_path / "c.png"), "-o", str(tmp_path / f"{name}.png"), *flags)
        assert result.returncode == 0, result.stderr
    read = {n: np.asarray(Image.open(tmp_path / f"{n}.png"), dtype=np.float64) / 255 for n in ("full", "none", "half", "lum")}
    original = np.asarray(content, dtype=np.float64) / 255
    np.testing.assert_allclose(read["none"], original, atol=1 / 255)
    np.testing.assert_allclose(read["half"], (read["full"] + original) / 2, atol=1.5 / 255)
    chroma = lambda image: (image @ _RGB_TO_YIQ.T)[..., 1:]  # noqa: E731
    assert np.abs(chroma(read["lum"]) - chroma(original)).mean() < 0.25 * np.abs(chroma(read["full"]) - chroma(original)).mean()
    bad = nst("apply", model, str(tmp_path / "c.png"), "-o", str(tmp_path / "x.png"), "--strength", "2")
    assert bad.returncode == 2 and "--strength" in bad.stderr


def test_shards_cover_every_file_exactly_once(models, tmp_path):
    make_folder(tmp_path / "in", 24, size=(16, 16))
    seen: list[str] = []
    for index in (1, 2, 3):
        out = tmp_path / f"out{index}"
        result = nst("apply", str(models["single"]), str(tmp_path / "in"), "-o", str(out), "--shard", f"{index}/3", "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["written"] == len(outputs(out)) > 0
        seen += sorted(outputs(out))
    assert sorted(seen) == sorted(outputs(tmp_path / "in"))  # each file once, none missing
    bad = nst("apply", str(models["single"]), str(tmp_path / "in"), "-o", str(tmp_path / "x"), "--shard", "4/3")
    assert bad.returncode == 2 and "--shard" in bad.stderr


def signal_a_run_part_way(models, tmp_path: Path, signum: int, count: int = 120) -> tuple[subprocess.Popen, Path]:
    """Start nst apply over ``count`` photos in a real process and send it ``signum`` after 5 outputs."""
    make_folder(tmp_path / "in", count, size=(192, 160))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "nstcli", "apply", str(models["single"]), str(tmp_path / "in"), "-o", str(out),
               "--workers", "1", "--batch-size", "1", "--threads", "1"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not out.exists() or len(outputs(out)) < 5):
        time.sleep(0.002)
    process.send_signal(signum)
    return process, out


def test_ctrl_c_while_reading_stdin_is_a_clean_interrupt(models, tmp_path):
    """A decode thread blocked on an open, empty stdin holds its lock: the interpreter's teardown aborted (exit 134)."""
    command = [sys.executable, "-m", "nstcli", "apply", str(models["single"]), "-", "-o", str(tmp_path / "out.png")]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=SUBPROCESS_ENV,
                               preexec_fn=hear_ctrl_c)  # fmt: skip
    time.sleep(3)  # started, and reading
    process.send_signal(signal.SIGINT)
    process.wait(timeout=60)  # stdin still open: the reader is still blocked when nst leaves
    stderr = process.stderr.read().decode()
    process.stdin.close()
    assert process.returncode == 130 and stderr.strip() == "nst: interrupted", stderr
    assert not list(tmp_path.iterdir())


def test_ctrl_c_while_the_cli_loads_is_a_clean_interrupt():
    """A Ctrl-C in the first fraction of a second, while typer and rich load, before nst handles it: here the
    KeyboardInterrupt is raised where typer is imported, as the signal would."""
    script = ("import sys\n"
              "class CtrlC:\n"
              "    def find_spec(name, path=None, target=None):\n"
              "        if name == 'typer':\n"
              "            raise KeyboardInterrupt\n"
              "sys.meta_path.insert(0, CtrlC)\n"
              "from nstcli.__main__ import start\n"
              "start()\n")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", script, "styles"], capture_output=True, text=True, env=SUBPROCESS_ENV, timeout=60)
    assert done.returncode == 130 and done.stderr == "nst: interrupted\n", done.stderr


def test_image_bytes_are_not_written_to_a_terminal(models, tmp_path):
    import pty

    photo().save(tmp_path / "photo.png")
    leader, follower = pty.openpty()
    for command in (["apply", str(models["single"]), str(tmp_path / "photo.png"), "-o", "-"],
                    ["optimize", str(tmp_path / "photo.png"), str(tmp_path / "photo.png"), "-o", "-"]):  # fmt: skip
        done = subprocess.run([sys.executable, "-m", "nstcli", *command], stdout=follower, stderr=subprocess.PIPE,
                              env=SUBPROCESS_ENV, timeout=120)  # fmt: skip
        assert done.returncode == 2 and done.stderr.decode().startswith("nst: error: stdout is a terminal"), done.stderr
    os.close(follower)
    os.close(leader)


def test_kill_and_resume_leaves_no_partial_or_duplicate_files(models, tmp_path):
    count = 120
    process, out = signal_a_run_part_way(models, tmp_path, signal.SIGKILL, count)
    process.communicate()
    done_before = len(outputs(out))
    assert 5 <= done_before < count, "the run must be killed part-way for this test to mean anything"
    (out / ".img001.png.nst-abc12345.part").write_bytes(b"half a png")  # what a kill during a write leaves
    (out / ".img001.png.mine.part").write_bytes(b"a user's own file")  # only looks similar: kept
    result = nst("apply", str(models["single"]), str(tmp_path / "in"), "-o", str(out), "--skip-existing", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["skipped"] >= done_before - 1 and summary["written"] + summary["skipped"] == count
    assert (out / ".img001.png.mine.part").read_bytes() == b"a user's own file"
    (out / ".img001.png.mine.part").unlink()
    assert outputs(out) == outputs(tmp_path / "in")  # every output once, no temporary files left
    for path in out.rglob("*.png"):
        with Image.open(path) as image:
            image.load()  # complete, decodable files


def test_sigterm_stops_like_ctrl_c_with_a_message_and_no_part_files(models, tmp_path):
    count = 120
    process, out = signal_a_run_part_way(models, tmp_path, signal.SIGTERM, count)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert stderr.decode().strip().splitlines()[-1] == "nst: interrupted" and b"Traceback" not in stderr
    written = outputs(out)
    assert 5 <= len(written) < count and not list(out.rglob("*.part")), written
    for path in out.rglob("*.png"):
        with Image.open(path) as image:
            image.load()  # every file there is complete


def test_a_real_process_leaves_quickly_with_every_byte_written_and_its_exit_code(models, tmp_path):
    """``nst`` skips the interpreter's teardown (``cli.run``): what went to stdout still arrives whole."""
    from tests.conftest import run_nst

    photo(64, 48).save(tmp_path / "p.png")
    image = run_nst("apply", str(models["single"]), str(tmp_path / "p.png"), "-o", "-", cwd=tmp_path, timeout=60)
    assert image.returncode == 0, image.stderr
    expected = nst("apply", str(models["single"]), str(tmp_path / "p.png"), "-o", str(tmp_path / "in_process.png"))
    assert expected.returncode == 0 and image.stdout == (tmp_path / "in_process.png").read_bytes()
    summary = run_nst("apply", str(models["single"]), str(tmp_path / "p.png"), "-o", "out.png", "--json", cwd=tmp_path, timeout=60)
    assert summary.returncode == 0 and json.loads(summary.stdout)["written"] == 1
    missing = run_nst("apply", str(models["single"]), "nothing.png", "-o", "x.png", cwd=tmp_path, timeout=60)
    assert missing.returncode == 1 and missing.stderr.decode().strip().startswith("nst: error:")


def test_fail_fast_stops_at_first_failure(models, tmp_path):
    make_folder(tmp_path, 6)
    (tmp_path / "img000.png").write_bytes(b"broken")  # first in sorted order
    result = nst("apply", str(models["single"]), str(tmp_path), "-o", str(tmp_path / "out"), "--fail-fast",
                 "--workers", "1", "--json")  # fmt: skip
    assert result.returncode == 1
    summary = json.loads(result.stdout)
    assert summary["failed"] == 1 and summary["written"] < 5


def test_multi_style_flags(models, tmp_path):
    photo().save(tmp_path / "p.png")
    model, source, out = str(models["multi"]), str(tmp_path / "p.png"), tmp_path / "out"
    missing = nst("apply", model, source, "-o", str(out))
    assert missing.returncode == 2 and "2 styles (ink, oil)" in missing.stderr
    for flags in (["--style", "ink"], ["--style", "1"], ["--mix", "ink=0.3,oil=0.7"]):
        result = nst("apply", model, source, "-o", str(out), "--name", "{stem}_{style}.png", *flags)
        assert result.returncode == 0, result.stderr
    assert outputs(out) == {"p_ink.png", "p_oil.png", "p_ink30+oil70.png"}
    pixels = [np.asarray(Image.open(out / name), dtype=np.int16) for name in ("p_ink.png", "p_oil.png")]
    assert np.abs(pixels[0] - pixels[1]).mean() > 0.5
    bad = nst("apply", model, source, "-o", str(out), "--mix", "ink:1")
    assert bad.returncode == 2 and "--mix" in bad.stderr


def test_tiled_cli_run_and_foreign_model_error(models, tmp_path):
    photo(200, 140).save(tmp_path / "big.png")
    result = nst("apply", str(models["single"]), str(tmp_path / "big.png"), "-o", str(tmp_path / "t.png"),
                 "--tile", "64", "--tile-overlap", "16")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert Image.open(tmp_path / "t.png").size == (200, 140)
    # a small --tile alone: the default overlap (64 px) shrinks below half a tile, as the whole image would give
    small = nst("apply", str(models["single"]), str(tmp_path / "big.png"), "-o", str(tmp_path / "s.png"), "--tile", "64")
    assert small.returncode == 0, small.stderr
    assert Image.open(tmp_path / "s.png").size == (200, 140)
    too_wide = nst("apply", str(models["single"]), str(tmp_path / "big.png"), "-o", str(tmp_path / "w.png"),
                   "--tile", "64", "--tile-overlap", "32")  # fmt: skip
    assert (too_wide.returncode, too_wide.stderr) == (2, "nst: error: --tile-overlap must be in 0..31 (less than half of --tile 64)\n")
    foreign = nst("apply", str(models["foreign"]), str(tmp_path / "big.png"), "-o", str(tmp_path / "f.png"))
    assert foreign.returncode == 1
    lines = foreign.stderr.strip().splitlines()
    assert len(lines) == 1 and "not an nst model" in lines[0] and "Traceback" not in foreign.stderr


def test_gpu_provider_request_falls_back_with_one_warning(models, tmp_path):
    from nstcli.apply.model import Model

    if Model(str(models["single"]), "cuda").providers[0] != "CPUExecutionProvider":
        pytest.skip("CUDA loads on this machine")
    photo().save(tmp_path / "p.png")
    result = nst("apply", str(models["single"]), str(tmp_path / "p.png"), "-o", str(tmp_path / "o.png"), "--provider", "cuda")
    assert result.returncode == 0
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "running on CPU" in warnings[0]
    assert "EP Error" not in result.stderr and result.stdout == b""
    unknown = nst("apply", str(models["single"]), str(tmp_path / "p.png"), "-o", str(tmp_path / "u.png"), "--provider", "tpu")
    assert unknown.returncode == 2 and "unknown provider" in unknown.stderr


def test_info_lists_loading_providers_and_detects_runtime_clash(monkeypatch):
    result = nst("info", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert "CPUExecutionProvider" in report["providers_loading"] and report["onnxruntime"]
    from nstcli.apply import environment

    monkeypatch.setattr(environment, "installed_runtimes", lambda: ["onnxruntime", "onnxruntime-gpu"])
    clash = environment.environment_report()
    assert "overwrite each other" in clash["problem"] and "pip install onnxruntime-gpu" in clash["problem"]


def test_images_of_mixed_sizes_are_all_written_correctly(models, tmp_path):
    sizes = [(40, 30), (30, 40), (40, 30), (17, 9), (40, 30), (30, 40), (64, 64)]
    for index, size in enumerate(sizes):
        photo(*size, seed=index).save(tmp_path / f"m{index}.png")
    out = tmp_path / "out"
    result = nst("apply", str(models["single"]), str(tmp_path / "m*.png"), "-o", str(out), "--batch-size", "2")
    assert result.returncode == 0, result.stderr
    from nstcli.apply.model import Model

    model = Model(str(models["single"]), "cpu")
    for index, size in enumerate(sizes):
        alone = model.run(np.asarray(Image.open(tmp_path / f"m{index}.png"), dtype=np.float32)[None] / 255)[0]
        written = np.asarray(Image.open(out / f"m{index}.png"), dtype=np.float32) / 255
        assert written.shape[1::-1] == size
        assert np.abs(written - alone).max() <= 1.5 / 255  # batching changes nothing


def test_an_image_name_nst_cannot_write_is_refused_and_a_trailing_slash_names_a_folder(models, tmp_path):
    """-o out.gif (or .heic) names a file nst cannot write: refused, not made a folder called out.gif; with
    --format it is written in that format; -o out.png/ is a folder, whatever its name looks like."""
    source = str(make_folder(tmp_path / "in", 1)[0])
    for output in ("out.gif", "out.heic"):
        result = nst("apply", str(models["single"]), source, "-o", str(tmp_path / output))
        assert result.returncode == 2
        assert result.stderr == (f"nst: error: {tmp_path / output}: unknown image suffix '{output[3:]}'; "
                                 "use .png, .jpg, .webp, .bmp, .tiff or --format\n")  # fmt: skip
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in"]
    assert nst("apply", str(models["single"]), source, "-o", str(tmp_path / "out.gif"), "--format", "png").returncode == 0
    assert Image.open(tmp_path / "out.gif").format == "PNG"
    result = nst("apply", str(models["single"]), source, "-o", f"{tmp_path / 'folder.png'}/")
    assert result.returncode == 0, result.stderr
    assert outputs(tmp_path / "folder.png") == {"img000.png"}


def test_globs_with_dotdot_never_write_outside_the_output_folder(models, tmp_path):
    make_folder(tmp_path / "photos" / "a", 2)
    make_folder(tmp_path / "photos" / "b", 2)  # two ways to reach each file of elsewhere/: still one output
    make_folder(tmp_path / "elsewhere", 2)
    before = {path: path.read_bytes() for path in tmp_path.rglob("*.png")}
    pattern = str(tmp_path / "photos" / "*" / ".." / ".." / "elsewhere" / "*.png")
    result = nst("apply", str(models["single"]), pattern, "-o", str(tmp_path / "out"), "--overwrite")
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["img001.png"]  # deep/img000 is not matched
    assert {path: path.read_bytes() for path in before} == before  # nothing outside out/ changed


def test_a_file_name_for_several_inputs_or_a_clashing_format_is_refused(models, tmp_path):
    """-o out.png names a file: several inputs are refused, not written into a new folder called out.png;
    and --format may not contradict the name (JPEG bytes in out.png)."""
    both = [str(path) for path in make_folder(tmp_path / "in", 2)]
    for inputs in (both, [str(tmp_path / "in")]):
        result = nst("apply", str(models["single"]), *inputs, "-o", str(tmp_path / "out.png"))
        assert result.returncode == 2
        assert result.stderr == f"nst: error: {tmp_path / 'out.png'}: an output file needs exactly one input file; for several, give a folder (-o out/)\n"
    for output in (tmp_path / "one.png", "-", tmp_path / "out"):  # a missing input is named first, whatever -o is
        missing = nst("apply", str(models["single"]), str(tmp_path / "nothere.jpg"), "-o", str(output))
        assert (missing.returncode, missing.stderr) == (1, f"nst: error: {tmp_path / 'nothere.jpg'}: no such file or folder\n")
    result = nst("apply", str(models["single"]), both[0], "-o", str(tmp_path / "one.png"), "--format", "jpg")
    assert result.returncode == 2
    assert result.stderr == f"nst: error: {tmp_path / 'one.png'}: named .png, but --format is jpg; make them match or leave --format out\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in"]
    result = nst("apply", str(models["single"]), both[0], "-o", str(tmp_path / "one.jpeg"), "--format", "jpg")
    assert result.returncode == 0, result.stderr  # .jpeg is a JPEG name
    assert Image.open(tmp_path / "one.jpeg").format == "JPEG"


def test_an_unwritable_output_folder_is_refused_before_any_work(models, tmp_path, monkeypatch):
    """Root may write anywhere, so the permission is refused the way os.access reports it for other users."""
    make_folder(tmp_path / "in", 2)
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != locked and real_access(path, mode))
    for output in (locked / "out", locked / "one.png"):
        inputs = tmp_path / "in" if output.suffix == "" else tmp_path / "in" / "img001.png"
        result = nst("apply", str(models["single"]), str(inputs), "-o", str(output))
        assert result.returncode == 1 and result.stderr.strip() == f"nst: error: {locked}: cannot write there (Permission denied)"
    assert not any(locked.iterdir())


def test_a_folder_that_cannot_be_listed_is_a_failed_input_not_a_silent_skip(models, tmp_path, monkeypatch):
    make_folder(tmp_path / "in", 2)
    hidden = tmp_path / "in" / "locked"
    hidden.mkdir()
    real_scandir = os.scandir

    def scandir(path="."):
        if Path(path) == hidden:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    result = nst("apply", str(models["single"]), str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--json")
    assert result.returncode == 1
    assert f"nst: error: {hidden}: cannot read this folder (Permission denied)" in result.stderr.splitlines()
    summary = json.loads(result.stdout)
    assert summary["written"] == 2 and summary["failed"] == 1


def test_a_backslash_in_a_file_name_is_just_a_character(models, tmp_path):
    make_folder(tmp_path / "in", 2)
    photo(48, 32, seed=9).save(tmp_path / "in" / "odd\\name.png")
    result = nst("apply", str(models["single"]), str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["written"] == 3 and (tmp_path / "out" / "odd\\name.png").is_file()


def test_a_fifo_input_with_a_file_output_stays_a_file(models, tmp_path):
    """A FIFO is read like a file (as cat reads it): -o out.png is the output file, not a folder."""
    make_folder(tmp_path / "in", 2)
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    writer = subprocess.Popen(["sh", "-c", f"cat {tmp_path / 'in' / 'img001.png'} > {fifo}"])
    result = nst("apply", str(models["single"]), str(fifo), "-o", str(tmp_path / "out.png"))
    writer.wait(timeout=30)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.png").is_file()
