"""Planning a training run (nstcli.train_plan.plan_train): modes, flag rules and outputs, in-process."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from nstcli.errors import InputError, UsageError
from nstcli.settings import TrainConfig
from nstcli.train_plan import plan_train
from tests.conftest import stripes_image


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TrainConfig:
    monkeypatch.chdir(tmp_path)
    stripes_image().save("style.png")
    Path("photos").mkdir()
    return TrainConfig(style=["style.png"], data="photos")


def test_a_fresh_run_resolves_paths_and_names_its_files(config):
    plan = plan_train(config, "m.pt", loss_log="log.csv", plot="curves.png", export="m.onnx")
    assert plan.config.style == [str(Path("style.png").resolve())] and plan.config.data == str(Path("photos").resolve())
    assert plan.checkpoint == Path("m.ckpt") and plan.preview_dir is None
    assert plan.resume_state is None and plan.base_state is None


def test_inputs_are_named_as_typed_and_a_bundled_style_gives_its_image(config):
    for changes, message in (({"style": ["gone.png"]}, "^gone.png: no such file$"), ({"style": ["photos"]}, "^photos: is a directory, not an image$"),
                             ({"data": "nowhere"}, "^nowhere: no such folder$"), ({"data": "style.png"}, "^style.png: not a folder$")):  # fmt: skip
        with pytest.raises(InputError, match=message):
            plan_train(replace(config, **changes), "m.pt")
    bundled = plan_train(replace(config, style=["swirls"]), "m.pt")
    assert Path(bundled.config.style[0]).name == "swirls.png" and Path(bundled.config.style[0]).is_file()


def test_stylebank_names_come_from_name_equals_image(config):
    bank = TrainConfig(style=["red=style.png", "style.png"], data="photos", arch="stylebank")
    plan = plan_train(bank, "bank.pt")
    assert plan.config.names == ["red", "style"] and plan.config.arch_options == {"styles": 2}


@pytest.mark.parametrize(
    ("changes", "options", "message"),
    [
        ({"style": []}, {}, "--style-image and --data are required"),
        ({}, {"add_styles": ["b=style.png"]}, "--add-style needs --resume"),
        ({}, {"add_styles": ["b=style.png"], "tune_styles": ["a"], "resume": "m.pt"}, "separate runs"),
        ({}, {"tune_styles": ["a"], "resume": "bank.pt"}, "give no --style-image"),
        ({}, {"output": "m.onnx"}, "the model is written as FILE.pt"),
        ({}, {"plot": "curves.svg"}, "plots are written as .png"),
        ({}, {"loss_log": "style.png"}, "loss log must end in .csv or .json"),
        ({}, {"export": "style.png.onnx", "plot": "style.png"}, "output is also an input"),
        ({"weight_init": "zeros"}, {}, "unknown --weight-init"),
    ],
)
def test_bad_runs_are_refused_before_any_work(config, changes, options, message):
    output = options.pop("output", "m.pt")
    with pytest.raises(UsageError, match=message):
        plan_train(replace(config, **changes), output, **options)


def test_existing_outputs_and_a_preview_file_are_refused(config):
    Path("m.preview").write_text("not a folder")
    with pytest.raises(UsageError, match="previews go into this folder"):
        plan_train(replace(config, preview="style.png"), "m.pt")
    Path("m.ckpt").write_bytes(b"an old checkpoint")
    with pytest.raises(UsageError, match="m.ckpt: already exists"):
        plan_train(config, "m.pt")
    assert plan_train(config, "m.pt", overwrite=True).output == Path("m.pt")


def test_resume_needs_a_real_checkpoint(config):
    Path("junk.pt").write_bytes(b"junk")
    with pytest.raises(InputError, match="not an nst model"):
        plan_train(TrainConfig(), "m.pt", resume="junk.pt")


def test_training_photos_and_the_preview_image_are_inputs_even_with_overwrite(config):
    stripes_image().save("photos/p1.png")
    stripes_image().save("preview.png")
    with pytest.raises(UsageError, match="photos/p1.png: output is also an input"):
        plan_train(config, "m.pt", plot="photos/p1.png", overwrite=True)
    with pytest.raises(UsageError, match="preview.png: output is also an input"):
        plan_train(replace(config, preview="preview.png"), "m.pt", plot="preview.png", overwrite=True)
