"""Planning an optimize run (nstcli.optimize_plan): every file it writes is checked before work starts."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from PIL import Image

from nstcli.errors import InputError, UsageError
from nstcli.optimize_plan import plan_optimize, snapshot_paths
from nstcli.settings import OptimizeConfig
from tests.conftest import gradient_image, stripes_image


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    gradient_image().save("c.png")
    stripes_image().save("s.png")
    return tmp_path


def plan(**options):
    return plan_optimize(OptimizeConfig(size=32, iterations=5), "c.png", ["s.png"], options.pop("output", "r.png"), **options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"plot": "c.png"}, "output is also an input"),
        ({"loss_log": "s.png.csv", "plot": "r.png"}, "written twice"),
        ({"output": "-", "save_config": "-"}, "only one output can go to stdout"),
        ({"plot": "curves.jpg"}, "plots are written as .png"),
        ({"save_config": "missing/config.json"}, "output folder does not exist"),
        ({"loss_log": "c.png/log.csv"}, "c.png: output folder is a file, not a folder"),
    ],
)
def test_side_outputs_follow_the_same_rule_as_the_result(files, options, message):
    with pytest.raises(UsageError, match=message):
        plan(**options)


def test_existing_side_outputs_and_snapshots_need_overwrite(files):
    (files / "r.00002.png").write_bytes(b"mine")
    with pytest.raises(UsageError, match=r"r\.00002\.png: already exists"):
        plan(save_every=2)
    (files / "log.csv").write_text("mine")
    with pytest.raises(UsageError, match="log.csv: already exists"):
        plan(loss_log="log.csv")
    assert (files / "log.csv").read_text() == "mine" and (files / "r.00002.png").read_bytes() == b"mine"
    checked = plan(save_every=2, loss_log="log.csv", overwrite=True)
    assert [path.name for path in checked.snapshots.values()] == ["r.00002.png", "r.00004.png"]


def test_snapshots_are_named_up_front():
    assert snapshot_paths("out/r.png", 3, 10) == {3: Path("out/r.00003.png"), 6: Path("out/r.00006.png"),
                                                  9: Path("out/r.00009.png")}  # fmt: skip
    assert snapshot_paths("r.png", 0, 10) == {}


def test_an_unwritable_folder_is_refused_before_work(files, monkeypatch):
    import os

    (files / "locked").mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path).name != "locked" and real_access(path, mode))
    with pytest.raises(InputError, match="locked: cannot write there"):
        plan(loss_log="locked/log.csv")


def test_a_folder_that_takes_no_new_files_is_refused_before_work(files):
    """Root passes every permission check, yet /proc takes no new files: a file made there finds it."""
    with pytest.raises(InputError, match="^/proc: cannot write there"):
        plan(loss_log="/proc/log.csv")
    assert not [path for path in files.iterdir() if path.name.startswith(".nst-probe")]
    plan(loss_log="log.csv")  # a folder that takes files: the probe leaves nothing behind
    assert not [path for path in files.iterdir() if path.name.startswith(".nst-probe")]


def test_init_universal_starts_from_the_one_pass_painting(files):
    import numpy as np

    from nstcli import images
    from nstcli.optimize_plan import read_inputs

    config = OptimizeConfig(size=32, iterations=5, init="universal")
    inputs = read_inputs(config, "c.png", ["s.png"])
    painted = inputs.start_image(config)
    start = images.to_array(painted)
    content = images.to_array(images.resize_long_side(inputs.content, 32))
    assert painted.size == (32, 21)  # the content at the output size, painted
    assert np.abs(start - content).mean() > 0.05  # not the content: the stripes' statistics painted over it
    with pytest.raises(UsageError, match="--init universal reads the style images from files"):
        read_inputs(config, "c.png", ["-"])


def test_a_flat_style_image_is_run_with_a_warning(files):
    Image.new("RGB", (40, 30), (200, 120, 40)).save("flat.png")
    with pytest.warns(UserWarning, match="^flat.png: the style image is one flat colour"):
        flat = plan_optimize(OptimizeConfig(size=32, iterations=5), "c.png", ["s.png", "flat.png"], "r.png")
    assert len(flat.inputs.styles) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a painting with texture: no warning
        plan()
