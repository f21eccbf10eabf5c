"""Which model nst apply runs: a model file given first, or the bundled model of --style / --mix / --region."""

from __future__ import annotations

from pathlib import Path

import pytest

from nstcli.apply.bundled import resolve_model, resolve_universal, resolve_universal_styles
from nstcli.errors import UsageError
from tests.conftest import REPO

BANK = REPO / "styles" / "stylebank.onnx"


def test_a_model_file_first_is_the_model_and_the_flags_pass_through():
    resolved = resolve_model(["my.ONNX", "a.png", "photos"], "oil", None, None, None)
    assert resolved.model == "my.ONNX" and resolved.inputs == ["a.png", "photos"]
    assert resolved.style == "oil" and resolved.regions is None
    mixed = resolve_model(["my.onnx", "a.png"], None, {"ink": 1.0}, None, None)
    assert mixed.model == "my.onnx" and mixed.style is None and mixed.regions is None
    regions = [("oil", "sky.png"), ("1", None)]
    painted = resolve_model(["my.onnx", "a.png"], None, None, regions, None)
    assert painted.model == "my.onnx" and painted.regions == regions and painted.style is None


def test_a_bundled_style_runs_the_bank_or_its_own_single_style_model():
    bank = resolve_model(["a.png", "photos"], "starry-night", None, None, None)
    assert Path(bank.model) == BANK and bank.inputs == ["a.png", "photos"]
    assert bank.style == "starry-night" and bank.regions is None
    johnson = resolve_model(["a.png"], "starry-night", None, None, "johnson")
    assert Path(johnson.model) == REPO / "styles" / "starry-night" / "johnson.onnx"
    assert johnson.style is None  # the model has one style


def test_a_mix_of_bundled_styles_runs_the_bank():
    resolved = resolve_model(["a.png"], None, {"starry-night": 0.5, "the-kiss": 0.5}, None, None)
    assert Path(resolved.model) == BANK and resolved.inputs == ["a.png"] and resolved.style is None
    with pytest.raises(UsageError, match="--mix: these bundled styles are not in one multi-style model"):
        resolve_model(["a.png"], None, {"starry-night": 0.5, "the-kiss": 0.5}, None, "johnson")


def test_region_names_pick_the_bundled_model_and_become_its_style_names():
    regions = [("starry-night", "sky.png"), ("the-kiss", None)]
    bank = resolve_model(["a.png"], None, None, regions, None)
    assert Path(bank.model) == BANK and bank.regions == regions and bank.style is None
    johnson = resolve_model(["a.png"], None, None, [("the-kiss", "sky.png")], "johnson")
    assert Path(johnson.model) == REPO / "styles" / "the-kiss" / "johnson.onnx"
    assert johnson.regions == [("0", "sky.png")]  # a single-style model's only style


def test_kind_with_a_model_file_is_a_usage_error():
    with pytest.raises(UsageError, match="--kind picks among bundled models"):
        resolve_model(["my.onnx", "a.png"], None, None, None, "johnson")


def test_no_inputs_or_no_model_is_a_usage_error():
    with pytest.raises(UsageError, match="no input images given"):
        resolve_model(["my.onnx"], None, None, None, None)
    with pytest.raises(UsageError, match="no input images given"):
        resolve_model([], "starry-night", None, None, None)
    with pytest.raises(UsageError, match="give a model \\(FILE.onnx\\) or a bundled style"):
        resolve_model(["a.png"], None, None, None, None)
    with pytest.raises(UsageError, match="no bundled style 'nope'"):
        resolve_model(["a.png"], "nope", None, None, None)


def test_kind_universal_paints_with_the_bundled_styles_statistics():
    one = resolve_universal_styles(["a.png"], None, "starry-night", None, None, None)
    assert Path(one.model) == REPO / "styles" / "universal" and one.inputs == ["a.png"] and one.style is None
    assert one.style_images == [str(REPO / "styles" / "starry-night" / "starry-night.npz")] and one.style_blend is None
    mixed = resolve_universal_styles(["a.png"], None, None, {"starry-night": 0.7, "the-kiss": 0.3}, None, None)
    assert [Path(path).stem for path in mixed.style_images] == ["starry-night", "the-kiss"] and mixed.style_blend == [0.7, 0.3]
    regions = [("great-wave", "sky.png"), ("the-kiss", None)]
    painted = resolve_universal_styles(["a.png"], "my-decoders", None, None, regions, None)
    assert painted.model == "my-decoders" and painted.regions == regions
    assert [Path(path).stem for path in painted.style_images] == ["great-wave", "the-kiss"]


def test_kind_universal_needs_a_bundled_painting_and_takes_no_style_blend():
    with pytest.raises(UsageError, match="name bundled styles with --style, --mix or --region"):
        resolve_universal_styles(["a.png"], None, None, None, None, None)
    with pytest.raises(UsageError, match="--mix blends bundled styles"):
        resolve_universal_styles(["a.png"], None, "starry-night", None, None, [1.0])
    with pytest.raises(UsageError, match="'swirls' has no trained model"):  # a procedural image, no painting measured
        resolve_universal_styles(["a.png"], None, "swirls", None, None, None)
    with pytest.raises(UsageError, match="no bundled style 'nope'"):
        resolve_universal_styles(["a.png"], None, "nope", None, None, None)
    with pytest.raises(UsageError, match="--kind picks among bundled models; --style-image paints with the images given"):
        resolve_universal(["a.png"], None, None, None, "universal")


@pytest.mark.parametrize("checkpoint", ["starry.pt", "runs/bank.ckpt"])
def test_a_training_checkpoint_as_the_model_points_to_nst_export(checkpoint: str) -> None:
    for style in (None, "starry-night"):
        with pytest.raises(UsageError, match=rf"^{checkpoint}: a training checkpoint; apply runs ONNX models: nst export {checkpoint} -o MODEL.onnx$"):
            resolve_model([checkpoint, "photo.jpg"], style, None, None, None)
