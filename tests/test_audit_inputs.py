"""Release-gate audit (issue 7): bad inputs, hostile model files and faults, across every command.

Each case must end in a correct result or a one-line error with the documented exit code
(1 bad input, 2 usage): no traceback, no hang (timeouts), no partial or lost file.

The CLI runs in-process (``nst``: ``cli.main`` in this process, one torch import instead of one per
case). Real subprocesses (``run_nst``) run apply and train over the corpus folder, whose FIFO would
hang a run that opened it (the timeout ends it), and a sample of optimize and score errors, where a
fresh interpreter would show anything its imports print on stderr.
Runs as root cannot test unreadable permissions (root reads mode 000 files): that case is skipped.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from nstcli import images
from nstcli import model_format as fmt
from nstcli.errors import InputError
from tests.bad_inputs import corpus, encode, picture, write_corpus
from tests.conftest import nst, run_nst

CASES = {case.name: case for case in corpus()}
OK = sorted(name for name, case in CASES.items() if case.expect == "ok")
BAD = sorted(name for name, case in CASES.items() if case.expect == "error")


def one_line(stderr: str) -> bool:
    return "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1


def leftovers(folder: Path) -> list[str]:
    """Temporary files of write_bytes_atomic that a failed write left behind."""
    return [path.name for path in folder.rglob("*.part")]


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    write_corpus(folder)
    return folder


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("good") / "good.png"
    picture(32, 32, seed=3).save(path)
    return path


def identity_model(path: Path, styles: list[str] | None = None, extra_input: str | None = None,
                   size_multiple: str = "1") -> Path:  # fmt: skip
    """A tiny nst-contract ONNX model (stylised = image), optionally with hostile metadata or a foreign input."""
    import onnx
    from onnx import TensorProto, helper

    image = helper.make_tensor_value_info(fmt.INPUT_IMAGE, TensorProto.FLOAT, ["n", 3, "h", "w"])
    out = helper.make_tensor_value_info(fmt.OUTPUT_IMAGE, TensorProto.FLOAT, ["n", 3, "h", "w"])
    inputs = [image]
    if extra_input:
        inputs.append(helper.make_tensor_value_info(extra_input, TensorProto.FLOAT, [1]))
    graph = helper.make_graph([helper.make_node("Identity", [fmt.INPUT_IMAGE], [fmt.OUTPUT_IMAGE])], "id", inputs, [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = {fmt.META_FORMAT: fmt.FORMAT_VERSION, fmt.META_STYLES: json.dumps(styles or ["plain"]),
            fmt.META_SIZE_MULTIPLE: size_multiple}  # fmt: skip
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return identity_model(tmp_path_factory.mktemp("model") / "id.onnx")


# ---------------------------------------------------------------- the reader


@pytest.mark.parametrize("name", sorted(CASES))
def test_reader_decodes_or_refuses_each_case(bad, name):
    if CASES[name].expect == "error":
        with pytest.raises(InputError, match=r"\S"):
            images.read_image(bad / name)
        return
    image = images.read_image(bad / name)
    assert image.mode == "RGB" and image.width >= 1 and image.height >= 1
    if name == "exif-rotated.jpg":
        assert image.size == (16, 24)  # EXIF orientation 6 applied: upright


def test_unreadable_permissions(tmp_path):
    path = tmp_path / "locked.png"
    picture().save(path)
    path.chmod(0)
    if os.geteuid() == 0:
        pytest.skip("running as root: mode 000 does not stop reads, so this case cannot be produced")
    with pytest.raises(InputError, match="permission denied"):
        images.read_image(path)


# ---------------------------------------------------------------- optimize and score


def test_optimize_and_score_over_the_corpus(bad, good, tmp_path):
    """Every case as content, as style and in score: a result or exit 1 with one line, and no output file."""
    tried = 0
    for name in sorted(CASES):
        source, expect_ok = str(bad / name), CASES[name].expect == "ok"
        for role in ("content", "style"):
            output = tmp_path / f"{role}-{len(name)}-{tried}.png"
            pair = [source, str(good)] if role == "content" else [str(good), source]
            result = nst("optimize", *pair, "-o", str(output), "--size", "32", "--iterations", "1", "-q")
            tried += 1
            if expect_ok:
                assert result.returncode == 0, (name, role, result.stderr)
                assert max(Image.open(output).size) == 32
            else:
                assert result.returncode == 1 and one_line(result.stderr) and not output.exists(), (name, role, result.stderr)
        result = nst("score", str(good), source, source, "--size", "32")
        if expect_ok:
            assert result.returncode == 0 and set(json.loads(result.stdout)) >= {"content", "style"}, (name, result.stderr)
        else:
            assert result.returncode == 1 and one_line(result.stderr) and result.stdout == b"", (name, result.stderr)
    assert tried == 2 * len(CASES) and leftovers(tmp_path) == []


def test_subprocess_sample_of_optimize_and_score(bad, good, tmp_path):
    result = run_nst("optimize", str(bad / "bomb.png"), str(good), "-o", "out.png", "--size", "32", "--iterations", "1",
                     cwd=tmp_path, timeout=120)  # fmt: skip
    stderr = result.stderr.decode()
    assert result.returncode == 1 and one_line(stderr) and "decompression bomb" in stderr
    assert not (tmp_path / "out.png").exists()
    result = run_nst("score", str(good), str(bad / "text.jpg"), str(good), "--size", "32", cwd=tmp_path, timeout=120)
    stderr = result.stderr.decode()
    assert result.returncode == 1 and one_line(stderr) and "not a recognised image" in stderr


# ---------------------------------------------------------------- apply


def corpus_folder(root: Path) -> Path:
    """The corpus in a folder with spaces and unicode in its name, plus a symlink loop and a FIFO."""
    folder = root / "in put ✓"
    folder.mkdir()
    write_corpus(folder)
    (folder / "loop").symlink_to(folder, target_is_directory=True)
    os.mkfifo(folder / "pipe.png")  # reading it would block forever
    return folder


def test_apply_over_the_corpus_folder(model, tmp_path):
    folder = corpus_folder(tmp_path)
    result = run_nst("apply", str(model), str(folder), "-o", "out", "--json", cwd=tmp_path, timeout=60)
    summary, stderr = json.loads(result.stdout), result.stderr.decode()
    assert result.returncode == 1, stderr
    failed = sorted(Path(failure["input"]).name for failure in summary["failures"])
    suffixed = [name for name in BAD if Path(name).suffix]  # folders are walked by image suffix
    assert failed == suffixed and summary["written"] == len([n for n in OK if Path(n).suffix])
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if not line.startswith(("nst: warning", f"{summary['written']} written"))]
    assert len(lines) == len(failed)  # one line per failed file
    out = tmp_path / "out"
    for name in OK:
        if not Path(name).suffix:
            continue
        written = next(out.glob(f"{Path(name).stem}.*"))
        assert Image.open(written).size == images.read_image(folder / name).size
        assert stat.S_IMODE(written.stat().st_mode) == images.FILE_MODE  # not mkstemp's 0600
    assert leftovers(out) == []
    assert not any(out.rglob("loop*")) and not any(out.rglob("pipe*"))


def test_apply_single_bad_file_exit_codes(model, bad, tmp_path):
    result = nst("apply", str(model), str(bad / "truncated.png"), "-o", "x.png", cwd=tmp_path)
    assert result.returncode == 1 and "truncated" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "x.png").exists() and leftovers(tmp_path) == []
    result = nst("apply", str(model), str(bad / "one-pixel.png"), "-o", "y.png", cwd=tmp_path)
    assert result.returncode == 0 and Image.open(tmp_path / "y.png").size == (1, 1)


@pytest.mark.parametrize(
    "template",
    ["../{stem}.{ext}", "{stem}/../../x.{ext}", "/tmp/{stem}.{ext}", "..", "{stem:%s}.{ext}", "{stem!x}.{ext}",
     "{stem.__class__}", "{stem[0]}.{ext}", "{0}.{ext}", "{ext"],
)  # fmt: skip
def test_apply_name_templates_cannot_escape_or_crash(model, good, tmp_path, template):
    source = tmp_path / "in"
    source.mkdir()
    images.write_image(images.read_image(good), source / "a.png")
    result = nst("apply", str(model), str(source), "-o", str(tmp_path / "out"), "--name", template)
    assert result.returncode == 2 and one_line(result.stderr), result.stderr
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["a.png"]


def test_empty_path_arguments_are_usage_errors(model, good, tmp_path):
    # Path('') means '.', so '' (an unset shell variable) used to walk the whole current folder.
    for args in ([str(good), ""], ["", "-o", "out"], [str(good), "-o", ""]):
        args = args if "-o" in args else [*args, "-o", str(tmp_path / "out")]
        result = nst("apply", str(model), *args, cwd=tmp_path)  # a relative "out" lands in tmp_path
        assert result.returncode == 2 and one_line(result.stderr) and "empty string" in result.stderr, result.stderr
    assert list(tmp_path.iterdir()) == []


def test_hostile_onnx_files(tmp_path, good):
    truncated = tmp_path / "cut.onnx"
    truncated.write_bytes(identity_model(tmp_path / "full.onnx").read_bytes()[:60])
    foreign = identity_model(tmp_path / "foreign.onnx", extra_input="payload")
    zero = identity_model(tmp_path / "zero.onnx", size_multiple="0")
    for path, message in [(truncated, "cannot load as an ONNX model"), (foreign, "not an nst model"),
                          (zero, "bad nst metadata")]:  # fmt: skip
        result = nst("apply", str(path), str(good), "-o", str(tmp_path / "o.png"))
        assert result.returncode == 1 and one_line(result.stderr) and message in result.stderr, result.stderr
    assert not (tmp_path / "o.png").exists()
    # Style names from metadata end up in file names: path-like ones are flattened, never followed.
    traversal = identity_model(tmp_path / "trav.onnx", styles=["../../escaped"])
    out = tmp_path / "deep" / "out"
    out.parent.mkdir()
    result = nst("apply", str(traversal), str(good), "-o", str(out), "--name", "{style}-{stem}.{ext}")
    assert result.returncode == 0, result.stderr
    written = [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.png")]
    assert len(written) == 1 and written[0].startswith("deep/out/") and written[0].endswith("escaped-good.png")


# ---------------------------------------------------------------- train, export: data folder and hostile checkpoints


def test_train_over_the_corpus_folder(tmp_path, good):
    folder = corpus_folder(tmp_path)
    result = run_nst("train", "--style-image", str(good), "--data", str(folder), "-o", "m.pt", "--width", "0.25",
                     "--residual-blocks", "1", "--image-size", "32", "--batch-size", "2", "--workers", "0",
                     "--steps", "2", cwd=tmp_path, timeout=120)  # fmt: skip
    stderr = result.stderr.decode()
    assert result.returncode == 0, stderr
    assert "Traceback" not in stderr and "unreadable image files were left out" in stderr
    from nstcli import checkpoint

    assert checkpoint.load_checkpoint(tmp_path / "m.pt")["step"] == 2


class _Payload:
    """Unpickling this calls open(MARKER, 'w'): it creates a file if any loader runs pickled code."""

    marker = ""

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_payload_never_runs(tmp_path, good):
    import torch

    marker = tmp_path / "PWNED"
    _Payload.marker = str(marker)
    evil = tmp_path / "evil.pt"
    torch.save({"format": "nst-train", "version": 1, "payload": _Payload()}, evil)
    for args in (["export", str(evil), "-o", "e.onnx"], ["train", "--resume", str(evil), "-o", "r.pt", "--steps", "1"]):
        result = nst(*args, cwd=tmp_path)
        assert result.returncode == 1 and one_line(result.stderr) and "not an nst model" in result.stderr
    result = nst("optimize", str(good), str(good), "-o", str(tmp_path / "w.png"), "--net", "vgg16",
                 "--weights", str(evil), "--size", "32", "--iterations", "1")  # fmt: skip
    assert result.returncode == 1 and one_line(result.stderr) and "cannot load weights" in result.stderr
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.pt"]


def valid_checkpoint() -> dict:
    from nstcli import checkpoint, generators

    config = {"arch": "johnson", "arch_options": {"width": 0.25, "residual_blocks": 1}}
    options = generators.make_options("johnson", config["arch_options"])
    net = generators.build_generator("johnson", options)
    return {"format": checkpoint.CHECKPOINT_FORMAT, "version": checkpoint.CHECKPOINT_VERSION, "config": config,
            "model": net.state_dict()}  # fmt: skip


def test_damaged_checkpoints_are_one_line_errors(tmp_path):
    import torch

    from nstcli import checkpoint

    state = valid_checkpoint()
    torch.save(state, tmp_path / "valid.pt")
    checkpoint.load_checkpoint(tmp_path / "valid.pt")  # the hand-made checkpoint itself is fine
    damaged = {
        "no-model": {key: value for key, value in state.items() if key != "model"},
        "wrong-shapes": dict(state, model={key: value[:1] for key, value in state["model"].items()}),
        "other-config": dict(state, config={"arch": "johnson"}),  # default width: weights do not fit
        # safe to load (plain values), but of the wrong types: refused when read, not a crash later
        "options-a-string": dict(state, config={**state["config"], "arch_options": "wide"}),
        "option-a-string": dict(state, config={**state["config"], "arch_options": {"width": "big"}}),
        "loss-a-string": dict(state, config={**state["config"], "loss": "x"}),
        "weight-a-string": dict(state, config={**state["config"], "loss": {"style_weight": "x"}}),
        "styles-a-number": dict(state, config={**state["config"], "style": 5}),
    }
    for name, value in damaged.items():
        torch.save(value, tmp_path / f"{name}.pt")
    (tmp_path / "truncated.pt").write_bytes((tmp_path / "valid.pt").read_bytes()[:500])
    for name in [*damaged, "truncated"]:
        result = nst("export", str(tmp_path / f"{name}.pt"), "-o", str(tmp_path / f"{name}.onnx"))
        assert result.returncode == 1 and one_line(result.stderr), (name, result.stderr)
        assert not (tmp_path / f"{name}.onnx").exists()


def test_training_state_of_the_wrong_types_is_a_one_line_error(tmp_path):
    import torch

    state = dict(valid_checkpoint(), optimizer={}, step="x", items_seen=0, world=1, rng=[], cuda_rng=None, history=[],
                 seconds=0.0, data={}, style_digests=[])  # fmt: skip
    torch.save(state, tmp_path / "odd.pt")
    result = nst("train", "--resume", str(tmp_path / "odd.pt"), "-o", str(tmp_path / "more.pt"))
    assert result.returncode == 1 and one_line(result.stderr), result.stderr
    assert "training state step, data.count" in result.stderr and not (tmp_path / "more.pt").exists()


def test_resuming_weights_without_training_state_is_a_one_line_error(tmp_path):
    import torch

    torch.save(valid_checkpoint(), tmp_path / "weights.pt")  # exportable (see above), but no optimiser, step, RNG
    result = nst("train", "--resume", str(tmp_path / "weights.pt"), "-o", str(tmp_path / "more.pt"))
    assert result.returncode == 1 and one_line(result.stderr), result.stderr
    assert "holds no training state (optimizer," in result.stderr and "can be exported, not resumed" in result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["weights.pt"]


# ---------------------------------------------------------------- faults: disk full, read-only, out of memory


def test_injected_disk_full_leaves_no_file(good, tmp_path, monkeypatch):
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(images.os, "fsync", full)
    with pytest.raises(InputError, match="No space left"):
        images.write_bytes_atomic(b"x" * 1000, tmp_path / "a.png")
    output = tmp_path / "out.png"
    result = nst("optimize", str(good), str(good), "-o", str(output), "--size", "32", "--iterations", "1")
    assert result.returncode == 1 and one_line(result.stderr) and "No space left" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@contextlib.contextmanager
def small_mount(path: Path, options: str):
    """A tmpfs at ``path`` (root only); skips the test where mounting is not allowed."""
    path.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                                           capture_output=True).returncode != 0:  # fmt: skip
        pytest.skip("needs permission to mount a tmpfs")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


def test_real_disk_full_and_read_only_folder(model, tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    for index in range(6):
        picture(64, 64, seed=index).save(source / f"p{index}.png")
    with small_mount(tmp_path / "full", "size=24k") as full:
        result = nst("apply", str(model), str(source), "-o", str(full), "--format", "bmp", cwd=tmp_path)
        assert result.returncode == 1 and "Traceback" not in result.stderr and "No space left" in result.stderr
        for written in full.iterdir():  # what fitted is complete; nothing partial remains
            assert not written.name.endswith(".part") and Image.open(written).size == (64, 64)
    with small_mount(tmp_path / "ro", "ro,size=64k") as read_only:
        result = nst("apply", str(model), str(source), "-o", str(read_only), cwd=tmp_path)
        assert result.returncode == 1 and "Traceback" not in result.stderr and "Read-only" in result.stderr
        assert list(read_only.iterdir()) == []


def test_out_of_memory_is_one_line(good, tmp_path, monkeypatch):
    import torch

    from nstcli import optimize_plan

    def exhausted(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(optimize_plan, "run_optimize", exhausted)
    result = nst("optimize", str(good), str(good), "-o", str(tmp_path / "o.png"), "--size", "32")
    assert result.returncode == 1 and one_line(result.stderr) and "out of memory" in result.stderr
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- seeded fuzz slices (the long run: bench/fuzz.py)

SEEDS = [encode(picture(), "PNG"), encode(picture(), "JPEG"), encode(picture(), "GIF"), encode(picture(), "WEBP")]


def mutate(data: bytes, edits: list[tuple[int, int]], cut: int) -> bytes:
    buffer = bytearray(data[: max(1, len(data) - cut)])
    for position, value in edits:
        buffer[position % len(buffer)] = value
    return bytes(buffer)


mutations = st.tuples(
    st.sampled_from(range(len(SEEDS))),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8),
    st.integers(0, 200),
)


def check_reader(mutation) -> None:
    """Mutated image bytes decode to an RGB image or fail with InputError, nothing else (also used by
    bench/fuzz.py)."""
    index, edits, cut = mutation
    try:
        image = images.read_image(mutate(SEEDS[index], edits, cut))
    except InputError:
        return
    assert image.mode == "RGB" and image.width * image.height >= 1
    assert np.asarray(image).shape == (image.height, image.width, 3)


@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(mutations)
def test_fuzz_reader_on_mutated_bytes(mutation):
    check_reader(mutation)


APPLY_FLAGS = ["--name", "--format", "--quality", "--strength", "--max-size", "--tile", "--tile-overlap", "--shard",
               "--mix", "--style", "--batch-size", "--workers", "--threads", "--preserve-color", "--provider"]  # fmt: skip
tokens = st.one_of(st.sampled_from(APPLY_FLAGS + ["--skip-existing", "--overwrite", "--fail-fast", "-q", "--json"]),
                   st.sampled_from(["0", "-1", "1", "2/1", "1/0", "a=1", "{stem}.png", "png", "jpg", "nan", "1e9", ""]),
                   st.text(max_size=6))  # fmt: skip


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(st.lists(tokens, max_size=6))
def test_fuzz_apply_arguments(tmp_path_factory, model, good, argv):
    out = tmp_path_factory.mktemp("fuzz")
    result = nst("apply", str(model), str(good), "-o", str(out / "o.png"), *argv)
    assert result.returncode in (0, 1, 2), result.stderr
    if result.returncode != 0:
        assert "Traceback" not in result.stderr and result.stderr.strip(), result.stderr
    assert leftovers(out) == []
