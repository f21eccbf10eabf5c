"""Every path flag of every command, drawn by hypothesis from hostile choices (an input, another
output, an existing file, '..', '-', '', a name too long, a missing folder, a folder, /proc):
exit 0, 1 or 2, one stderr line on failure, no traceback, no existing file changed (no run here
passes --overwrite), and nothing written outside -o by apply.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.conftest import gradient_image, nst, stripes_image

TINY_OPTIMIZE = ["--size", "16", "--iterations", "1", "--device", "cpu"]
TINY_TRAIN = ["--image-size", "16", "--batch-size", "1", "--steps", "1", "--workers", "0", "--width", "0.25",
              "--residual-blocks", "1", "--checkpoint-every", "0"]  # fmt: skip

# (command, the flag drawn, the other arguments); each run would succeed with a fresh output path.
CASES = {
    "optimize -o": ["optimize", "content.png", "style.png", *TINY_OPTIMIZE, "-o"],
    "optimize --plot": ["optimize", "content.png", "style.png", "-o", "result.png", *TINY_OPTIMIZE, "--plot"],
    "optimize --loss-log": ["optimize", "content.png", "style.png", "-o", "result.png", *TINY_OPTIMIZE, "--loss-log"],
    "optimize --save-config": ["optimize", "content.png", "style.png", "-o", "result.png", *TINY_OPTIMIZE,
                               "--save-config"],  # fmt: skip
    "optimize --content-mask": ["optimize", "content.png", "style.png", "-o", "result.png", *TINY_OPTIMIZE,
                                "--content-mask"],  # fmt: skip
    "score content": ["score", "style.png", "style.png"],
    "demo -o": ["demo", "--size", "16", "-o"],
    "apply -o": ["apply", "--style", "starry-night", "photos", "-o"],
    "apply input": ["apply", "--style", "starry-night", "-o", "styled"],
    "train -o": ["train", "--style-image", "style.png", "--data", "photos", *TINY_TRAIN, "-o"],
    "train --loss-log": ["train", "--style-image", "style.png", "--data", "photos", *TINY_TRAIN, "-o", "m.pt",
                         "--loss-log"],  # fmt: skip
    "train --preview": ["train", "--style-image", "style.png", "--data", "photos", *TINY_TRAIN, "-o", "m.pt",
                        "--preview"],  # fmt: skip
    "export -o": ["export", "trained.pt", "-o"],
}
PATHS = st.sampled_from([
    "content.png", "style.png", "keep.txt", "result.png", "photos", "photos/a.png", "-", "", ".", "..",
    "../outside/new.png", "missing/folder/x.png", "x" * 300 + ".png", "/proc/nst.png", "out.png", "log.csv",
    "config.json", "plot.png", "m.onnx", "m.pt", "new.pt", "styled", "a\\b.png", "line\nbreak.png",
])  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained model, for export's input."""
    folder = tmp_path_factory.mktemp("trained")
    _fill(folder)
    result = nst("train", "--style-image", "style.png", "--data", "photos", *TINY_TRAIN, "-o", "t.pt", cwd=folder)
    assert result.returncode == 0, result.stderr
    return folder / "t.pt"


def _fill(folder: Path) -> None:
    gradient_image(24, 16).save(folder / "content.png")
    stripes_image(24, 24).save(folder / "style.png")
    (folder / "photos").mkdir()
    for index in range(2):
        gradient_image(24, 24, seed=index).save(folder / "photos" / f"{'ab'[index]}.png")
    (folder / "keep.txt").write_text("a user's own file")


def _snapshot(root: Path) -> dict[Path, str]:
    return {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in root.rglob("*") if path.is_file()}


@pytest.mark.parametrize("case", list(CASES))
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=PATHS)
def test_a_path_flag_never_crashes_or_replaces_a_file(tmp_path_factory, trained, case, path):
    root = tmp_path_factory.mktemp("paths")
    sandbox, outside = root / "sandbox", root / "outside"
    sandbox.mkdir()
    outside.mkdir()
    (outside / "theirs.png").write_bytes(b"someone else's")
    _fill(sandbox)
    (sandbox / "trained.pt").write_bytes(trained.read_bytes())
    args = CASES[case] + [path] if not case.startswith("apply input") else CASES[case][:3] + [path] + CASES[case][3:]
    before = _snapshot(root)
    result = nst(*args, cwd=sandbox)
    lines = result.stderr.strip().splitlines()
    assert result.returncode in (0, 1, 2), result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    if result.returncode:
        errors = [line for line in lines if line.startswith("nst: error:")]
        assert errors or case.startswith("apply"), result.stderr  # apply: per-file lines and a summary
        assert len(lines) == 1 or case.startswith("apply"), result.stderr
    after = _snapshot(root)
    changed = [str(file) for file, digest in before.items() if after.get(file) != digest]
    assert not changed, (args, changed)  # nothing existing replaced or removed without --overwrite
    if case == "apply -o" and result.returncode == 0:
        target = (sandbox / path).resolve()
        assert all(file.resolve().is_relative_to(target) for file in after if file not in before), args
    assert not list(root.rglob("*.part"))
