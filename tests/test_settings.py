"""Settings declared once (nstcli.settings): defaults per command, flag parsing, resume roles, and
old configs (checkpoint format 1, the bundled models' metadata and preset records) still load."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import onnx
import pytest

from nstcli import settings
from nstcli.errors import UsageError
from nstcli.options import replace_deprecated
from nstcli.settings import OptimizeConfig, TrainConfig

STYLES = Path(__file__).resolve().parent.parent / "styles"


def test_each_command_has_its_own_default_from_one_declaration():
    assert settings.declaration(OptimizeConfig, "style_weight")[1] == 10.0
    assert settings.declaration(TrainConfig, "style_weight")[1] == 0.05
    help_texts = {settings.declaration(config, "style_weight")[2]["help"] for config in (OptimizeConfig, TrainConfig)}
    assert len(help_texts) == 1  # the same text, not one copied per command
    # where a shared setting means something else in each command, each --help names only its own
    assert "--size" in settings.help_of(OptimizeConfig, "style_scale") and "train" not in settings.help_of(OptimizeConfig, "style_scale")
    assert "--image-size" in settings.help_of(TrainConfig, "style_scale")
    assert "relu2_2" in settings.help_of(TrainConfig, "content_layers") and "relu2_2" not in settings.help_of(OptimizeConfig, "content_layers")


def test_flags_become_a_nested_config_and_lists_are_parsed():
    flags = {"style_weight": 3.0, "style_layers": "relu1_1, relu2_1", "style_blend": "0.7,0.3", "size": 64, "quiet": True}
    config = settings.from_flags(OptimizeConfig, flags)
    assert config.loss.style_weight == 3.0 and config.size == 64
    assert config.loss.style_layers == ["relu1_1", "relu2_1"] and config.loss.style_blend == [0.7, 0.3]
    assert settings.from_flags(TrainConfig, {"style": None}).style == []  # a repeatable flag given no time
    with pytest.raises(UsageError, match="--style-blend: expected"):
        settings.from_flags(OptimizeConfig, {"style_blend": "0.7,x"})


def test_resume_roles_are_declared_with_the_settings():
    assert settings.roles(TrainConfig, settings.RUN) == {
        "steps", "epochs", "workers", "device", "log_every", "checkpoint_every", "preview", "preview_every"
    }  # fmt: skip
    assert {"lr", "style_weight", "data", "style_blend"} <= settings.roles(TrainConfig, settings.BANK)
    assert "net" not in settings.roles(TrainConfig, settings.BANK) | settings.roles(TrainConfig, settings.RUN)


def test_a_format_1_config_migrates():
    old = {"style": ["a.png"], "arch": "stylebank", "style_weight": 0.4, "net": "vgg16", "init": "he", "t": 3,
           "style_blend": [1.0, 2.0], "steps": 5, "unknown_future_field": 1}  # fmt: skip
    config = TrainConfig.from_dict(old)
    assert config.loss.style_weight == 0.4 and config.loss.net == "vgg16" and config.loss.style_blend == [1.0, 2.0]
    assert config.weight_init == "he" and config.steps_per_identity == 3 and config.steps == 5
    assert config.loss.content_weight == 1.0  # unset: today's default
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_bundled_models_and_preset_records_load_as_configs():
    """Every bundled ONNX model carries its training config (format 1): it must still read."""
    models = sorted(STYLES.rglob("*.onnx"))
    assert models
    for path in models:
        meta = {entry.key: entry.value for entry in onnx.load(path, load_external_data=False).metadata_props}
        config = TrainConfig.from_dict(json.loads(meta["nst.config"]))
        assert config.arch in ("johnson", "stylebank") and config.loss.style_weight > 0, path
    for path in sorted(STYLES.glob("*/preset.toml")):
        preset = tomllib.loads(path.read_text())
        for kind, record in preset.get("training", {}).items():
            config = TrainConfig.from_dict(record["config"])
            assert config.arch == kind and config.loss.style_weight == record["config"]["style_weight"], path
            # The record describes the model shipped beside it: same shape, same loss.
            model = path.parent / preset["models"][kind]["file"]
            meta = {entry.key: entry.value for entry in onnx.load(model, load_external_data=False).metadata_props}
            shipped = TrainConfig.from_dict(json.loads(meta["nst.config"]))
            assert config.arch_options == shipped.arch_options and config.loss == shipped.loss, path


def test_deprecated_flags_are_renamed_with_one_warning_each():
    argv, warnings = replace_deprecated(["train", "--style", "a.png", "--style", "b.png", "--log=l.csv", "--t", "3"])
    assert argv == ["train", "--style-image", "a.png", "--style-image", "b.png", "--loss-log=l.csv",
                    "--steps-per-identity", "3"]  # fmt: skip
    assert warnings == [
        "nst: warning: train --style is deprecated; use --style-image",
        "nst: warning: train --log is deprecated; use --loss-log",
        "nst: warning: train --t is deprecated; use --steps-per-identity",
    ]
    assert replace_deprecated(["apply", "--style", "starry-night"]) == (["apply", "--style", "starry-night"], [])


def test_a_replaced_flag_is_one_line_saying_what_replaces_it(tmp_path):
    from tests.conftest import nst

    result = nst("optimize", "a.png", "b.png", "-o", str(tmp_path / "o.png"), "--scales", "3")
    assert result.returncode == 2 and not (tmp_path / "o.png").exists()
    assert result.stderr.startswith("nst: error: --scales N was replaced by --min-size PX") and result.stderr.count("\n") == 1
    assert nst("train", "--scales", "3", "--help").returncode == 0  # train's --scales is a deprecated rename, still taken
