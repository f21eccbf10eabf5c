"""Conditional instance norm (Dumoulin et al. 2017): a Johnson net whose norms' scales and shifts are the
style's; K-style training, resume, add-style with everything else frozen, export with the StyleBank's
style_weights contract, and nst apply (--style, --mix, --region, tiles) on the exported graph."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from PIL import Image

from nstcli import (
    checkpoint,
    export,
    generators,
    model_format,
    settings,
    train,
    train_plan,
)
from nstcli.errors import InputError, UsageError
from nstcli.generators import cin
from tests.conftest import nst

pytestmark = pytest.mark.usefixtures("one_torch_thread")

OPTIONS = {"width": 0.25, "residual_blocks": 1, "output_kernel": 3}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Three photos, three style images and a random-initialised VGG16 (fast descriptor)."""
    from torchvision.models import vgg

    root = tmp_path_factory.mktemp("cin")
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


def cin_config(root: Path, names: tuple[str, ...] = ("red", "green"), **changes) -> train.TrainConfig:
    values = {
        "style": [str(root / f"{name}.png") for name in names], "names": list(names), "data": str(root / "photos"),
        "arch": "cin", "arch_options": {"styles": len(names), **OPTIONS}, "image_size": 32, "batch_size": 2, "steps": 12,
        "workers": 0, "net": "vgg16", "weights": str(root / "vgg16.pth"), "content_layers": ["relu1_2"],
        "style_layers": ["relu1_2", "relu2_2"], "precision": "fp32", "checkpoint_every": 0, "log_every": 1, "lr": 1e-2,
        "style_weight": 1e4,  # the random VGG16's Gram matrices are tiny: a style term that weighs as much as content
    }  # fmt: skip
    values.update(changes)
    return settings.with_settings(train.TrainConfig(), values)


@pytest.fixture(scope="module")
def model_file(folder) -> Path:
    path = folder / "cin.pt"
    train.run_train(train_plan.TrainPlan(cin_config(folder), path))
    return path


def random_styles(model: cin.CINNet, seed: int = 0) -> None:
    """Distinct per-style scales and shifts (fresh ones are all 1 and 0: every style the same)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bank in model.banks:
            bank.scale.copy_(1 + 0.3 * torch.randn(bank.scale.shape, generator=generator))
            bank.shift.copy_(0.3 * torch.randn(bank.shift.shape, generator=generator))


def test_shapes_and_parameters_per_style():
    options = generators.make_options("cin", {"styles": 3, **OPTIONS})
    model = generators.build_generator("cin", options).eval()
    random_styles(model)
    image = torch.rand(2, 3, 20, 28)
    with torch.no_grad():
        one_hot = model(image, torch.tensor([0.0, 1.0, 0.0]))
        assert one_hot.shape == image.shape and 0 <= one_hot.min() and one_hot.max() <= 1
        assert torch.allclose(one_hot, model.branch(image, 1), atol=1e-6)
        assert torch.equal(model(image), model.branch(image, 0))
    # width 0.25: 8/16/32 channels; norms: encoder 8+16+32, one residual block 2x32, decoder 16+8
    assert model.norm_channels == [8, 16, 32, 32, 32, 16, 8] and cin.parameters_per_style(options) == 2 * 144
    shared = sum(p.numel() for name, p in model.named_parameters() if not name.startswith("banks."))
    assert generators.count_parameters(model) == shared + 3 * cin.parameters_per_style(options)
    # at the paper's width and depth: 1,600 normalised channels, 3,200 parameters a style
    assert cin.parameters_per_style(cin.CINOptions()) == 3200
    assert not any(isinstance(m, torch.nn.InstanceNorm2d) for m in model.modules())  # every norm is the style's


def test_styles_mix_linearly_in_the_norm_parameters():
    options = generators.make_options("cin", {"styles": 3, **OPTIONS})
    model = generators.build_generator("cin", options).eval()
    random_styles(model)
    weights = torch.tensor([0.6, 0.0, 0.4])
    scale, shift = model.norm_parameters(weights)
    banks = model.banks
    assert torch.allclose(scale, 0.6 * banks[0].scale + 0.4 * banks[2].scale, atol=1e-6)
    assert torch.allclose(shift, 0.6 * banks[0].shift + 0.4 * banks[2].shift, atol=1e-6)
    a, b = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 0.3, 0.7])
    for t in (0.25, 0.5):  # linear along any line between two mixes
        for mixed, ends in zip(model.norm_parameters((1 - t) * a + t * b), zip(model.norm_parameters(a), model.norm_parameters(b))):
            assert torch.allclose(mixed, (1 - t) * ends[0] + t * ends[1], atol=1e-6)
    image = torch.rand(1, 3, 16, 20)
    with torch.no_grad():
        by_hand = model._run(image, 0.6 * banks[0].scale + 0.4 * banks[2].scale, 0.6 * banks[0].shift + 0.4 * banks[2].shift)
        assert torch.allclose(model(image, weights), by_hand, atol=1e-6)
        assert not torch.allclose(model(image, weights), model.branch(image, 0), atol=1e-3)  # a real mix


def test_a_step_trains_one_styles_norms_and_the_shared_convs(folder):
    trainer = train.Trainer(cin_config(folder, steps=3))
    assert trainer.objective.term_names == ("content", "style", "tv", "total")  # no auto-encoder steps
    model = trainer.model
    before = {name: value.detach().clone() for name, value in model.named_parameters()}
    terms = trainer._train_step(torch.rand(2, 3, 32, 32))
    changed = {name for name, value in model.named_parameters() if not torch.equal(before[name], value)}
    assert terms["style"] > 0 and "body.0.1.weight" in changed
    assert len({name.split(".")[1] for name in changed if name.startswith("banks.")}) == 1  # one style's norms


def test_training_lowers_each_styles_total_loss(folder, model_file):
    state = checkpoint.load_checkpoint(model_file)
    assert len(state["history"]) == 12 and "identity" not in state["history"][-1]
    model, config, _ = checkpoint.build_trained_generator(state)
    assert len(model.banks) == 2 and config.style_names() == ["red", "green"]
    trainer = train.Trainer(config)  # its fresh model is the trained one's initial state (same seed)
    photos = torch.stack([trainer.dataset[0, index][0] for index in range(3)])
    loss_fn = trainer.objective.loss_fn
    loss_fn.set_content(photos)
    for style in range(2):
        with torch.no_grad():
            before = loss_fn(trainer.model.eval().branch(photos, style), style)
            after = loss_fn(model.branch(photos, style), style)
        assert after.total < before.total, style  # content + weighted style


def test_resume_continues_exactly(folder):
    straight, first, resumed = folder / "straight.pt", folder / "first.pt", folder / "resumed.pt"
    train.run_train(train_plan.TrainPlan(cin_config(folder, steps=4), straight))
    train.run_train(train_plan.TrainPlan(cin_config(folder, steps=2), first))
    plan = train_plan.plan_train(cin_config(folder, steps=4), resumed, given=frozenset({"steps"}), resume=str(first))
    train.run_train(plan)
    a, b = checkpoint.load_checkpoint(straight), checkpoint.load_checkpoint(resumed)
    assert b["step"] == 4 and all(torch.equal(a["model"][key], b["model"][key]) for key in a["model"])


def test_add_style_trains_only_its_norms_and_leaves_the_other_styles_bit_identical(folder, model_file):
    base = checkpoint.load_checkpoint(model_file)
    saved = train.TrainConfig.from_dict(base["config"])
    config = train_plan.add_styles_config(saved, [str(folder / "blue.png")], ["blue"], {"steps": 3, "workers": 0})
    assert config.style_names() == ["red", "green", "blue"] and config.train_banks == [2]
    output = folder / "cin3.pt"
    result = train.run_train(train_plan.TrainPlan(config, output, base_state=base))
    grown = checkpoint.load_checkpoint(output)["model"]
    for key, value in base["model"].items():  # shared convs and the old styles' norms: not a bit moved
        assert torch.equal(value, grown[key]), key
    assert set(grown) - set(base["model"]) == {"banks.2.scale", "banks.2.shift"} and "identity" not in result.history[-1]
    assert not torch.equal(grown["banks.2.scale"], torch.ones_like(grown["banks.2.scale"]))  # the new style did train
    old, _, _ = checkpoint.build_trained_generator(base)
    new, _, _ = checkpoint.build_trained_generator(checkpoint.load_checkpoint(output))
    image = torch.rand(1, 3, 24, 28)
    with torch.no_grad():
        for style in (0, 1):  # the old styles paint exactly as before
            assert torch.equal(old.branch(image, style), new.branch(image, style))
        assert torch.equal(old(image, torch.tensor([0.3, 0.7])), new(image, torch.tensor([0.3, 0.7, 0.0])))
    tuned = folder / "cin3-tuned.pt"
    config = train_plan.tune_styles_config(train.TrainConfig.from_dict(checkpoint.load_checkpoint(output)["config"]),
                                           ["red"], {"steps": 2, "workers": 0})  # fmt: skip
    train.run_train(train_plan.TrainPlan(config, tuned, base_state=checkpoint.load_checkpoint(output)))
    after = checkpoint.load_checkpoint(tuned)["model"]
    assert {key for key in grown if not torch.equal(grown[key], after[key])} == {"banks.0.scale", "banks.0.shift"}


def test_export_has_the_stylebank_interface_and_matches_pytorch_mixes(folder, model_file, caplog):
    output = folder / "cin.onnx"
    state = checkpoint.load_checkpoint(model_file)
    result = export.export_model(state, str(output))
    assert result.max_abs_diff <= export.TOLERANCE["fp32"]
    proto = onnx.load(output)
    inputs = {value.name: value for value in proto.graph.input}
    assert list(inputs) == [model_format.INPUT_IMAGE, model_format.INPUT_STYLE_WEIGHTS]
    assert [dim.dim_value for dim in inputs[model_format.INPUT_STYLE_WEIGHTS].type.tensor_type.shape.dim] == [2]
    meta = {entry.key: entry.value for entry in proto.metadata_props}
    assert json.loads(meta[model_format.META_STYLES]) == ["red", "green"] and meta[model_format.META_ARCH] == "cin"
    norms = [node for node in proto.graph.node if node.op_type == "InstanceNormalization"]
    assert len(norms) == 7  # plain InstanceNormalization nodes: apply's tiling pins their statistics
    session = onnxruntime.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    model, _, _ = checkpoint.build_trained_generator(state)
    image = torch.rand(1, 3, 24, 28)
    run = lambda w: session.run(None, {"image": image.numpy(), "style_weights": np.array(w, np.float32)})[0]
    with torch.no_grad():
        for w in ([1.0, 0.0], [0.0, 1.0], [0.3, 0.7]):
            assert np.abs(run(w) - model(image, torch.tensor(w)).numpy()).max() < 1e-4
    assert np.abs(run([1.0, 0.0]) - run([0.0, 1.0])).max() > 1e-3  # the styles differ
    single = folder / "green.onnx"
    with caplog.at_level(logging.INFO):
        export.export_model(state, str(single), style="green")
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]  # the optimiser's notes
    proto = onnx.load(single)
    assert [value.name for value in proto.graph.input] == [model_format.INPUT_IMAGE]
    green = onnxruntime.InferenceSession(str(single), providers=["CPUExecutionProvider"])
    assert np.abs(green.run(None, {"image": image.numpy()})[0] - run([0.0, 1.0])).max() < 1e-4
    fp16 = export.export_model(state, str(folder / "cin16.onnx"), precision="fp16")
    assert fp16.max_abs_diff <= export.TOLERANCE["fp16"]


def test_bad_settings_are_one_line_errors(folder, model_file):
    with pytest.raises(UsageError, match="2 styles for 1 style images"):
        train_plan.validate(cin_config(folder, ("red",), arch_options={"styles": 2, **OPTIONS}))
    with pytest.raises(UsageError, match="--bank-layers does not apply to --arch cin"):
        generators.make_options("cin", {"bank_layers": 2})
    with pytest.raises(UsageError, match="--upsample does not apply to --arch cin"):
        generators.make_options("cin", {"upsample": "deconv"})
    johnson = settings.with_settings(cin_config(folder), {"arch": "johnson", "arch_options": {}})
    with pytest.raises(UsageError, match=r"--add-style needs a multi-style model, --arch stylebank or cin \(this one is --arch johnson\)"):
        train_plan.add_styles_config(johnson, [str(folder / "blue.png")], ["blue"], {})
    saved = train.TrainConfig.from_dict(checkpoint.load_checkpoint(model_file)["config"])
    with pytest.raises(UsageError, match=r"--residual-blocks cannot change with --add-style \(the checkpoint has 1\)"):
        train_plan.add_styles_config(saved, [str(folder / "blue.png")], ["blue"], {"arch_options": {"residual_blocks": 5}})
    base = checkpoint.load_checkpoint(model_file)
    base["model"] = {key: value for key, value in base["model"].items() if key != "banks.0.shift"}
    with pytest.raises(InputError, match="does not match its own configuration"):
        train.Trainer(train_plan.add_styles_config(saved, [str(folder / "blue.png")], ["blue"], {"steps": 1}), base=base)


def test_cli_trains_with_the_embedded_vgg19_adds_a_style_exports_and_applies(tmp_path, folder):
    photos = str(folder / "photos")
    red, green, blue = (str(folder / f"{name}.png") for name in ("red", "green", "blue"))
    common = ["--image-size", "32", "--batch-size", "1", "--workers", "0", "--max-images", "2", "-q"]
    done = nst("train", "--arch", "cin", "--style-image", f"red={red}", "--style-image", f"green={green}", "--data", photos,
               "--steps", "3", "--width", "0.25", "--residual-blocks", "1", "--output-kernel", "3", "-o", "cin.pt",
               *common, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    done = nst("train", "--arch", "johnson", "--style-image", red, "--data", photos, "--steps", "1", "--width", "0.25",
               "-o", "johnson.pt", *common, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    bad = nst("train", "--resume", "johnson.pt", "--add-style", f"blue={blue}", "-o", "x.pt", cwd=tmp_path)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert "--add-style needs a multi-style model, --arch stylebank or cin (this one is --arch johnson)" in bad.stderr
    done = nst("train", "--resume", "cin.pt", "--add-style", f"blue={blue}", "--steps", "2", "-o", "cin3.pt",
               "--export", "cin3.onnx", "--workers", "0", "-q", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    pixels = np.random.default_rng(1).integers(0, 256, (80, 100, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "photo.png")  # not flat: instance norm maps a flat image to flat grey
    left = np.zeros((80, 100), np.uint8)
    left[:, :50] = 255
    Image.fromarray(left).save(tmp_path / "left.png")
    runs = {
        "blue.png": ["--style", "blue"],
        "mix.png": ["--mix", "red=0.5,blue=0.5"],
        "region.png": ["--region", "red=left.png", "--region", "blue"],
        "tiled.png": ["--style", "blue", "--tile", "64", "--tile-overlap", "16"],
    }
    for name, flags in runs.items():
        done = nst("apply", "cin3.onnx", "photo.png", "-o", name, *flags, cwd=tmp_path)
        assert done.returncode == 0, (name, done.stderr)
    out = {name: np.asarray(Image.open(tmp_path / name), np.float32) for name in runs}
    assert all(array.shape == (80, 100, 3) for array in out.values())
    assert np.abs(out["blue.png"] - out["mix.png"]).max() > 0
    assert np.abs(out["region.png"][:, 70:] - out["blue.png"][:, 70:]).max() <= 1  # right of the mask: blue alone
    assert np.abs(out["tiled.png"] - out["blue.png"]).mean() < 8  # pinned norm statistics: the tiles agree
    bad = nst("apply", "cin3.onnx", "photo.png", "-o", "x.png", "--style", "purple", cwd=tmp_path)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
