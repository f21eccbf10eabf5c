"""The bundled styles: every model loads, runs on the CPU provider and matches its preset; the CLI uses them by name."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nstcli import model_format, styles
from nstcli.apply.model import Model
from nstcli.apply.bundled import UNIVERSAL_KIND
from nstcli.errors import UsageError
from tests.conftest import REPO, assert_one_line_error, gradient_image, nst

PRESETS = styles.list_presets()
# trained models (the universal kind is a painting's statistics for the shared universal models: tests/apply/test_universal.py)
MODELS = [(preset, kind) for preset in PRESETS for kind in preset.models if kind != UNIVERSAL_KIND]


def test_the_bundle_holds_a_stylebank_of_at_least_six_paintings_and_johnson_models():
    bank_users = [preset for preset in PRESETS if "stylebank" in preset.models]
    assert len(bank_users) >= 6
    assert len({preset.model("stylebank").path for preset in bank_users}) == 1  # one file, the default
    assert any("johnson" in preset.models for preset in PRESETS)
    for preset in PRESETS:  # the metadata every preset must carry
        assert preset.title and preset.artist and preset.year and preset.data["licence"]
        for kind in set(preset.models) - {UNIVERSAL_KIND}:
            training = preset.data["training"][kind]
            assert training["command"].startswith("nst train") and training["steps"] > 0 and training["card"]
            assert set(preset.data["judged"][kind]) == {"content", "style", "total"}


@pytest.mark.parametrize(("preset", "kind"), MODELS, ids=[f"{preset.name}-{kind}" for preset, kind in MODELS])
def test_every_bundled_model_loads_runs_on_the_cpu_and_matches_its_preset(preset, kind):
    bundled = preset.model(kind)
    model = Model(str(bundled.path), "cpu")
    assert model.providers[0] == "CPUExecutionProvider"
    assert model.info.arch == kind and model.info.size_multiple == 4
    assert model.info.precision == ("fp32" if kind == "stylebank" else "fp16")
    if kind == "stylebank":
        assert bundled.style in model.info.styles and model.info.has_style_weights
    else:
        assert len(model.info.styles) == 1 and not model.info.has_style_weights
    model.select_style(bundled.style, None)
    photo = np.asarray(gradient_image(40, 28), dtype=np.float32)[None] / 255
    out = model.run(photo)
    assert out.shape == photo.shape and 0 <= out.min() and out.max() <= 1
    assert np.abs(out - photo).mean() > 0.02  # it stylises


def test_bank_styles_are_exactly_the_presets_that_use_it():
    users = {preset.model("stylebank").style for preset in PRESETS if "stylebank" in preset.models}
    bank = Model(str(next(preset for preset in PRESETS if "stylebank" in preset.models).model("stylebank").path), "cpu")
    assert set(bank.info.styles) == users


def test_listing_reads_only_the_toml_files(monkeypatch):
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail(f"read {self}"))  # models stay unread
    assert {preset.name for preset in styles.list_presets()} >= {"starry-night", "swirls"}


def test_lookups_and_their_errors():
    assert styles.style_image("swirls").is_file()
    with pytest.raises(UsageError, match="ships no style image"):
        styles.style_image("starry-night")
    with pytest.raises(UsageError, match="no bundled style 'nope'"):
        styles.get_preset("nope")
    bank_model = styles.BundledModel("stylebank", Path("bank.onnx"), "a-style")
    bank_only = styles.Preset("bank-only", "Title", "Artist", "1900", Path("."), None, {"stylebank": bank_model})
    with pytest.raises(UsageError, match="has no johnson model"):
        bank_only.model("johnson")
    with pytest.raises(UsageError, match="has no trained model"):
        styles.get_preset("swirls").model()
    assert styles.bundled_model(["starry-night", "great-wave"], None, "--mix").style == "starry-night"
    with pytest.raises(UsageError, match="--region: these bundled styles are not in one multi-style model"):
        styles.bundled_model(["starry-night", "great-wave"], "johnson", "--region")


def test_nst_styles_lists_every_preset_with_its_kinds():
    text = nst("styles")
    assert text.returncode == 0
    lines = text.stdout.decode().splitlines()
    assert len(lines) == len(PRESETS)
    assert any(line.startswith("starry-night") and "stylebank, johnson" in line for line in lines)
    rows = json.loads(nst("styles", "--json").stdout)
    assert {row["name"]: row["models"] for row in rows}["swirls"] == []


def test_apply_a_bundled_style_without_a_model_path(tmp_path):
    photo = tmp_path / "photo.png"
    gradient_image(40, 28).save(photo)
    original = np.asarray(Image.open(photo), dtype=np.float32)
    for index, extra in enumerate((["--style", "starry-night"], ["--style", "the-kiss", "--kind", "johnson"],
                                   ["--mix", "starry-night=0.5,great-wave=0.5"])):  # fmt: skip
        output = tmp_path / f"out{index}.png"
        result = nst("apply", *extra, str(photo), "-o", str(output), "-q")
        assert result.returncode == 0, result.stderr
        stylised = np.asarray(Image.open(output), dtype=np.float32)
        assert stylised.shape == original.shape and np.abs(stylised - original).mean() > 5


def test_apply_bundled_errors_are_one_line(tmp_path):
    photo = tmp_path / "photo.png"
    gradient_image(40, 28).save(photo)
    out = str(tmp_path / "o.png")
    assert_one_line_error(nst("apply", "--style", "nope", str(photo), "-o", out), 2, "no bundled style 'nope'")
    assert_one_line_error(nst("apply", str(photo), "-o", out), 2, "give a model (FILE.onnx) or a bundled style")
    assert_one_line_error(nst("apply", "--style", "swirls", str(photo), "-o", out), 2, "has no trained model")
    model = str(styles.get_preset("starry-night").model().path)
    assert_one_line_error(nst("apply", model, str(photo), "-o", out, "--kind", "johnson"), 2, "--kind")
    assert_one_line_error(nst("apply", model, "-o", out), 2, "no input images")
    assert not Path(out).exists()


def test_optimize_takes_a_bundled_style_name(tmp_path):
    content = tmp_path / "content.png"
    gradient_image(32, 24).save(content)
    output = tmp_path / "out.png"
    result = nst("optimize", str(content), "swirls", "-o", str(output), "--size", "32", "--iterations", "2", "-q")
    assert result.returncode == 0, result.stderr
    assert Image.open(output).size == (32, 24)
    failed = nst("optimize", str(content), "starry-night", "-o", str(tmp_path / "no.png"), "--size", "32")
    assert_one_line_error(failed, 2, "ships no style image")


def test_presets_name_files_that_ship_in_the_wheel():
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["nst_styles"]
    root = styles.styles_root()
    for preset in PRESETS:
        for bundled in preset.models.values():
            relative = bundled.path.relative_to(root)
            assert any(relative.match(pattern) for pattern in package_data), relative
    assert model_format.INPUT_STYLE_WEIGHTS == "style_weights"
