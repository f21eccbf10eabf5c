"""StyleBank (Chen et al. 2017): K-style training with the (T+1) alternation, incremental banks,
export with a style_weights input, and nst apply --style/--mix on the exported graph."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from PIL import Image

from nstcli import checkpoint, export, generators, model_format, settings, train, train_plan
from nstcli.errors import UsageError
from tests.conftest import nst



pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Three photos, three style images and a random-initialised VGG16 (fast descriptor)."""
    from torchvision.models import vgg

    root = tmp_path_factory.mktemp("stylebank")
    rng = np.random.default_rng(0)
    (root / "photos").mkdir()
    for index in range(3):
        Image.fromarray((rng.random((40, 40, 3)) * 255).astype(np.uint8)).save(root / "photos" / f"p{index}.png")
    for index, name in enumerate(("red", "green", "blue")):
        array = (rng.random((32, 32, 3)) * 80).astype(np.uint8)
        array[..., index] += 170  # three distinct colour statistics
        Image.fromarray(array).save(root / f"{name}.png")
    torch.manual_seed(0)
    features = vgg.make_layers(vgg.cfgs["D"])
    torch.save({f"features.{key}": value for key, value in features.state_dict().items()}, root / "vgg16.pth")
    return root


def bank_config(root: Path, names: tuple[str, ...] = ("red", "green"), **changes) -> train.TrainConfig:
    values = dict(
        style=[str(root / f"{name}.png") for name in names], names=list(names), data=str(root / "photos"),
        arch="stylebank", arch_options={"styles": len(names), "width": 0.25, "bank_layers": 1}, image_size=32,
        batch_size=2, steps=12, workers=0, net="vgg16", weights=str(root / "vgg16.pth"),
        content_layers=["relu1_2"], style_layers=["relu1_2", "relu2_2"], precision="fp32", checkpoint_every=0,
        log_every=1, lr=1e-2,
    )  # fmt: skip
    values.update(changes)
    return settings.with_settings(train.TrainConfig(), values)


@pytest.fixture(scope="module")
def bank(folder) -> Path:
    path = folder / "bank.pt"
    train.run_train(train_plan.TrainPlan(bank_config(folder), path))
    return path


def parameters(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in model.named_parameters()}


def test_generator_shapes_and_fusion_is_a_convex_combination_of_banks():
    options = generators.make_options("stylebank", {"styles": 3, "width": 0.25})
    model = generators.build_generator("stylebank", options).eval()
    image = torch.rand(2, 3, 20, 28)
    with torch.no_grad():
        one_hot = model(image, torch.tensor([0.0, 1.0, 0.0]))
        assert one_hot.shape == image.shape and 0 <= one_hot.min() and one_hot.max() <= 1
        assert torch.allclose(one_hot, model.branch(image, 1), atol=1e-6)
        features = model.encoder(image)
        weights = torch.tensor([0.6, 0.0, 0.4])
        by_hand = torch.sigmoid(model.decoder(0.6 * model.banks[0](features) + 0.4 * model.banks[2](features)))
        assert torch.allclose(model(image, weights), by_hand, atol=1e-6)
        assert not torch.allclose(model(image, weights), model.branch(image, 0), atol=1e-3)  # a real mix


def test_a_bank_with_weight_zero_is_not_run_in_pytorch_nor_in_onnx():
    options = generators.make_options("stylebank", {"styles": 3, "width": 0.25})
    model = generators.build_generator("stylebank", options).eval()
    with torch.no_grad():
        model.banks[1][0][1].weight.fill_(float("nan"))  # 0 * NaN is NaN: only a skipped bank leaves no trace
    image, weights = torch.rand(1, 3, 16, 20), torch.tensor([0.4, 0.0, 0.6])
    with torch.no_grad():
        expected = model(image, weights)
        assert torch.isfinite(expected).all() and not torch.isfinite(model(image, torch.tensor([0.0, 1.0, 0.0]))).all()
    proto = export._to_onnx(model, options.size_multiple(), styles=3)
    assert [node.op_type for node in proto.graph.node].count("If") == 3  # one guarded bank per style
    session = onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    result = session.run(None, {"image": image.numpy(), "style_weights": weights.numpy()})[0]
    assert np.abs(result - expected.numpy()).max() < 1e-5


def test_a_k_style_step_trains_one_bank_and_the_auto_encoder_step_no_bank(folder):
    trainer = train.Trainer(bank_config(folder, steps=3, steps_per_identity=2))
    batch = torch.rand(2, 3, 32, 32)
    model = trainer.model
    before = parameters(model)
    style = trainer.objective.branch(0)
    trainer.step = 0
    torch.manual_seed(1)
    terms = trainer._train_step(batch)
    after = parameters(model)
    changed = {name.split(".")[0] + ("." + name.split(".")[1] if name.startswith("banks") else "")
               for name in before if not torch.equal(before[name], after[name])}  # fmt: skip
    assert "identity" not in terms and terms["style"] > 0  # a style step: style loss, no identity term
    assert {"encoder", "decoder"} <= changed and sum(name.startswith("banks") for name in changed) == 1
    trainer.step = 2  # steps_per_identity=2: the third step of each cycle is the auto-encoder step
    assert trainer.objective.branch(2) is None and style in (0, 1)
    terms = trainer._train_step(batch)
    final = parameters(model)
    assert set(terms) == {"identity"} and terms["identity"] > 0
    assert all(torch.equal(after[name], final[name]) for name in after if name.startswith("banks"))
    assert not torch.equal(after["encoder.0.1.weight"], final["encoder.0.1.weight"])


def test_style_blend_weighs_each_banks_style_loss(folder):
    batch = torch.rand(2, 3, 32, 32)
    style_terms = []
    for weights in (None, [3.0, 0.5]):
        trainer = train.Trainer(bank_config(folder, style_blend=weights))
        loss_fn = trainer.objective.loss_fn
        loss_fn.set_content(batch)
        row = []
        for style in (0, 1):  # same seed: both trainers' models are the same
            with torch.no_grad():
                row.append(loss_fn(trainer.model.branch(batch, style), style).style)
        style_terms.append(row)
    (plain_0, plain_1), (weighted_0, weighted_1) = style_terms
    assert torch.isclose(weighted_0, 3.0 * plain_0) and torch.isclose(weighted_1, 0.5 * plain_1)


def test_add_style_weighs_only_the_new_banks(folder, bank):
    saved = train.TrainConfig.from_dict(checkpoint.load_checkpoint(bank)["config"])
    blue = [str(folder / "blue.png")]
    assert train_plan.add_styles_config(saved, blue, ["blue"], {}).loss.style_blend is None
    # orientation counts: the new styles take the given count, else the model's one count
    eights = replace(saved, loss=replace(saved.loss, style_orientations=[8]))
    assert train_plan.add_styles_config(eights, blue, ["blue"], {}).loss.style_orientations == [8]
    per_style = train_plan.add_styles_config(eights, blue, ["blue"], {"style_orientations": [1]})
    assert per_style.loss.style_orientations == [8, 8, 1]
    with pytest.raises(UsageError, match="one --style-orientations count per style; give the new styles'"):
        train_plan.add_styles_config(per_style, blue, ["cyan"], {})
    grown = train_plan.add_styles_config(saved, blue, ["blue"], {"style_blend": [2.0]})
    assert grown.loss.style_blend == [1.0, 1.0, 2.0]
    weighted = settings.with_settings(saved, {"style_blend": [0.5, 1.5]})
    assert train_plan.add_styles_config(weighted, blue, ["blue"], {}).loss.style_blend == [0.5, 1.5, 1.0]
    with pytest.raises(UsageError, match="one weight per style it trains"):
        train_plan.add_styles_config(saved, blue, ["blue"], {"style_blend": [1.0, 2.0]})
    with pytest.raises(UsageError, match=f"--add-style: the model has a style named '{saved.style_names()[0]}' already"):
        train_plan.add_styles_config(saved, blue, [saved.style_names()[0]], {})


def test_training_logs_style_and_identity_and_lowers_each_banks_style_loss(folder, bank):
    state = checkpoint.load_checkpoint(bank)
    history = state["history"]
    assert len(history) == 12 and all("identity" in row for row in history)
    assert state["config"]["names"] == ["red", "green"]
    assert history[-1]["identity"] < history[2]["identity"]  # steps 3, 6, 9, 12 are the auto-encoder steps
    model, config, _ = checkpoint.build_trained_generator(state)
    assert len(model.banks) == 2 and config.style_names() == ["red", "green"]
    trainer = train.Trainer(config)  # its fresh model is the trained one's initial state (same seed)
    photos = torch.stack([trainer.dataset[0, index][0] for index in range(3)])
    loss_fn = trainer.objective.loss_fn
    loss_fn.set_content(photos)
    for style in range(trainer.objective.styles):
        with torch.no_grad():
            before = loss_fn(trainer.model.eval().branch(photos, style), style).style
            after = loss_fn(model.branch(photos, style), style).style
        assert after < before, style


def test_incremental_learning_freezes_encoder_decoder_and_old_banks_bit_for_bit(folder, bank):
    base = checkpoint.load_checkpoint(bank)
    saved = train.TrainConfig.from_dict(base["config"])
    given = {"steps": 3, "workers": 0, "preview": str(folder / "photos" / "p0.png"), "preview_every": 3}
    config = train_plan.add_styles_config(saved, [str(folder / "blue.png")], ["blue"], given)
    assert config.style_names() == ["red", "green", "blue"] and config.train_banks == [2]
    output = folder / "bank3.pt"
    result = train.run_train(train_plan.TrainPlan(config, output, base_state=base))
    assert (folder / "bank3.preview" / "step_0000003.png").is_file()  # the new bank's style
    grown = checkpoint.load_checkpoint(output)["model"]
    for key, value in base["model"].items():
        assert torch.equal(value, grown[key]), key
    new = [key for key in grown if key.startswith("banks.2.")]
    assert new and "identity" not in result.history[-1]
    fresh = generators.build_generator("stylebank", generators.make_options("stylebank", config.arch_options))
    torch.manual_seed(config.seed)  # the new bank did train: it is not its initial value
    assert any(not torch.equal(grown[key], value) for key, value in fresh.state_dict().items() if key in new)


def test_tuning_trains_one_existing_bank_from_its_weights_and_freezes_the_rest(folder, bank):
    base = checkpoint.load_checkpoint(bank)
    saved = train.TrainConfig.from_dict(base["config"])
    config = train_plan.tune_styles_config(saved, ["green"], {"steps": 3, "workers": 0, "style_blend": [4.0]})
    assert config.train_banks == [1] and config.loss.style_blend == [1.0, 4.0] and config.style_names() == ["red", "green"]
    trainer = train.Trainer(config, base=base)
    for key, value in trainer.model.state_dict().items():  # it starts from the trained weights, not a fresh bank
        assert torch.equal(value, base["model"][key]), key
    assert trainer.objective.loss_fn.style_blend == [1.0, 4.0]
    trainer.close()
    output = folder / "tuned.pt"
    result = train.run_train(train_plan.TrainPlan(config, output, base_state=base))
    tuned = checkpoint.load_checkpoint(output)["model"]
    assert set(tuned) == set(base["model"]) and "identity" not in result.history[-1]
    for key, value in base["model"].items():
        assert torch.equal(value, tuned[key]) != key.startswith("banks.1."), key  # only green's bank moved
    with pytest.raises(UsageError, match="one weight per style it trains"):
        train_plan.tune_styles_config(saved, ["green"], {"style_blend": [1.0, 2.0]})
    # --style-orientations with --tune-style: the tuned styles' counts, the others keep theirs
    assert train_plan.tune_styles_config(saved, ["green"], {"style_orientations": [8]}).loss.style_orientations == [1, 8]
    eights = replace(saved, loss=replace(saved.loss, style_orientations=[8]))
    assert train_plan.tune_styles_config(eights, ["red"], {"style_orientations": [1]}).loss.style_orientations == [1, 8]
    assert train_plan.tune_styles_config(eights, ["red"], {}).loss.style_orientations == [8]
    with pytest.raises(UsageError, match="--style-orientations with --tune-style: one count, or one per style it trains"):
        train_plan.tune_styles_config(saved, ["green"], {"style_orientations": [8, 1]})
    with pytest.raises(UsageError, match="each style once"):
        train_plan.tune_styles_config(saved, ["red", "red"], {})
    with pytest.raises(UsageError, match="--net cannot change with --tune-style"):
        train_plan.tune_styles_config(saved, ["red"], {"net": "vgg19"})
    with pytest.raises(UsageError, match=r"--width cannot change with --tune-style \(the checkpoint has 0.25\)"):
        train_plan.tune_styles_config(saved, ["red"], {"arch_options": {"width": 1.0}})
    # the same values again are fine, defaults included (the bank was trained without --output-kernel)
    same = train_plan.tune_styles_config(saved, ["red"], {"arch_options": {"width": 0.25, "bank_layers": 1, "output_kernel": 9}})
    assert same.device == "auto" and same.steps is None and same.checkpoint_every == 1000  # run flags: new defaults
    assert saved.steps == 12 and saved.checkpoint_every == 0


def test_bad_stylebank_settings_are_usage_errors(folder, bank):
    with pytest.raises(UsageError, match="unique"):
        train_plan.validate(bank_config(folder, ("a", "a"), style=[str(folder / "red.png")] * 2))
    with pytest.raises(UsageError, match="--style-blend has 3 weights for 2 style images"):
        train_plan.validate(bank_config(folder, style_blend=[0.5, 0.5, 1.0]))
    with pytest.raises(UsageError, match="2 styles for 1 style images"):
        train_plan.validate(bank_config(folder, style=[str(folder / "red.png")], names=["red"], arch_options={"styles": 2}))
    johnson = settings.with_settings(bank_config(folder), {"arch": "johnson", "arch_options": {}})
    with pytest.raises(UsageError, match="needs a multi-style model"):
        train_plan.add_styles_config(johnson, [str(folder / "blue.png")], ["blue"], {})
    saved = train.TrainConfig.from_dict(checkpoint.load_checkpoint(bank)["config"])
    with pytest.raises(UsageError, match="--net cannot change"):
        train_plan.add_styles_config(saved, [str(folder / "blue.png")], ["blue"], {"net": "vgg19"})


def test_export_has_a_style_weights_input_and_matches_pytorch_mixes(folder, bank):
    output = folder / "bank.onnx"
    result = export.export_model(checkpoint.load_checkpoint(bank), str(output))
    assert result.max_abs_diff <= export.TOLERANCE["fp32"]
    proto = onnx.load(output)
    inputs = {value.name: value for value in proto.graph.input}
    weights_shape = [dim.dim_value for dim in inputs[model_format.INPUT_STYLE_WEIGHTS].type.tensor_type.shape.dim]
    assert weights_shape == [2]
    meta = {entry.key: entry.value for entry in proto.metadata_props}
    assert json.loads(meta[model_format.META_STYLES]) == ["red", "green"] and meta[model_format.META_ARCH] == "stylebank"
    session = onnxruntime.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    model, _, _ = checkpoint.build_trained_generator(checkpoint.load_checkpoint(bank))
    image = torch.rand(1, 3, 24, 28)
    run = lambda w: session.run(None, {"image": image.numpy(), "style_weights": np.array(w, np.float32)})[0]  # noqa: E731
    with torch.no_grad():
        features = model.encoder(image)
        for w in ([1.0, 0.0], [0.0, 1.0], [0.3, 0.7]):
            expected = torch.sigmoid(model.decoder(w[0] * model.banks[0](features) + w[1] * model.banks[1](features)))
            assert np.abs(run(w) - expected.numpy()).max() < 1e-4
    assert np.abs(run([1.0, 0.0]) - run([0.0, 1.0])).max() > 1e-3  # the styles differ
    single = folder / "green.onnx"
    export.export_model(checkpoint.load_checkpoint(bank), str(single), style="green")
    proto = onnx.load(single)
    assert [value.name for value in proto.graph.input] == [model_format.INPUT_IMAGE]
    assert json.loads({entry.key: entry.value for entry in proto.metadata_props}[model_format.META_STYLES]) == ["green"]
    green = onnxruntime.InferenceSession(str(single), providers=["CPUExecutionProvider"])
    assert np.abs(green.run(None, {"image": image.numpy()})[0] - run([0.0, 1.0])).max() < 1e-4


def test_cli_trains_a_bank_with_the_embedded_vgg19_adds_a_style_exports_and_applies(tmp_path, folder):
    photos = str(folder / "photos")
    red, green, blue = (str(folder / f"{name}.png") for name in ("red", "green", "blue"))
    common = ["--image-size", "32", "--batch-size", "1", "--workers", "0", "--max-images", "2", "-q"]
    done = nst("train", "--arch", "stylebank", "--style-image", f"red={red}", "--style-image", f"green={green}", "--data", photos,
               "--steps", "3", "--width", "0.25", "--style-blend", "2,1", "--style-orientations", "8,1", "-o", "bank.pt",
               *common, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert checkpoint.load_checkpoint(tmp_path / "bank.pt")["config"]["loss"]["style_orientations"] == [8, 1]
    add = ("train", "--resume", "bank.pt", "--add-style", f"blue={blue}", "--steps", "2", "-o", "bank3.pt", "--export",
           "bank3.onnx", "--workers", "0", "-q")  # fmt: skip
    unsaid = nst(*add, cwd=tmp_path)  # the bank has a count per style: the new one's must be given
    assert unsaid.returncode == 2 and "give the new styles'" in unsaid.stderr and not (tmp_path / "bank3.pt").exists()
    done = nst(*add, "--style-orientations", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    grown = checkpoint.load_checkpoint(tmp_path / "bank3.pt")["config"]["loss"]
    assert grown["style_blend"] == [2.0, 1.0, 1.0] and grown["style_orientations"] == [8, 1, 2]
    done = nst("train", "--resume", "bank3.pt", "--tune-style", "green", "--style-blend", "3", "--style-orientations", "8",
               "--steps", "1", "-o", "tuned.pt", "--workers", "0", "-q", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    tuned = checkpoint.load_checkpoint(tmp_path / "tuned.pt")["config"]
    assert tuned["loss"]["style_blend"] == [2.0, 3.0, 1.0] and tuned["train_banks"] == [1]
    assert tuned["loss"]["style_orientations"] == [8, 8, 2]
    wrong = nst("train", "--arch", "stylebank", "--style-image", red, "--style-image", green, "--data", photos,
                "--style-orientations", "8,1,8", "--steps", "1", "-o", "x.pt", *common, cwd=tmp_path)  # fmt: skip
    assert wrong.returncode == 2 and "--style-orientations has 3 counts for 2 style images" in wrong.stderr
    pixels = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "photo.png")  # not flat: instance norm maps a flat image to flat grey
    done = nst("apply", "bank3.onnx", "photo.png", "-o", "blue.png", "--style", "blue", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    done = nst("apply", "bank3.onnx", "photo.png", "-o", "mix.png", "--mix", "red=0.5,blue=0.5", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    blue_out, mix_out = (np.asarray(Image.open(tmp_path / name), np.float32) for name in ("blue.png", "mix.png"))
    assert blue_out.shape == mix_out.shape == (20, 30, 3) and np.abs(blue_out - mix_out).max() > 0
    bad = nst("apply", "bank3.onnx", "photo.png", "-o", "x.png", "--style", "purple", cwd=tmp_path)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_cli_errors_are_one_line(tmp_path, folder, bank):
    red = str(folder / "red.png")
    cases = [
        (["train", "--add-style", f"b={red}", "-o", "x.pt"], "needs --resume"),
        (["train", "--resume", str(bank), "--add-style", f"b={red}", "--style-image", red, "-o", "x.pt"], "give no --style-image"),
        (["train", "--resume", str(bank), "--add-style", f"b={red}", "--tune-style", "red", "-o", "x.pt"], "give one"),
        (["train", "--resume", str(bank), "--tune-style", "purple", "-o", "x.pt"], "has no style 'purple'"),
        (["export", str(bank), "-o", "x.onnx", "--style", "nope"], "no style 'nope'"),
    ]
    for args, message in cases:
        done = nst(*args, cwd=tmp_path)
        assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tiles_of_an_exported_bank_keep_the_whole_images_statistics(folder, bank, precision):
    """The banks' instance norms sit in If branches of the graph (a bank runs only when its weight is not
    zero): tiling must pin them too, or each tile gets its own colours."""
    from nstcli import tiling
    from nstcli.apply.model import Model
    from tests.apply.test_tiling import scene

    output = folder / f"bank_{precision}.onnx"
    export.export_model(checkpoint.load_checkpoint(bank), str(output), precision)
    assert any(node.op_type == "If" for node in onnx.load(output).graph.node)
    model = Model(str(output), "cpu")
    for style, mix in (("green", None), (None, {"red": 0.5, "green": 0.5})):
        model.select_style(style, mix)
        image = scene(128)
        whole = model.run(image[None])[0]
        pinned = np.abs(model.run_tiled(image, 64, 16, 2) - whole).mean()
        naive = np.abs(tiling.run_tiled(image, model.run, 64, 16, 2) - whole).mean()
        assert pinned < 1 / 255 and naive > 5 * pinned, (style, pinned, naive)
