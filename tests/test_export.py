"""nst export: the ONNX contract of model_format.py, parity with PyTorch, fp16, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from PIL import Image

from nstcli import checkpoint, export, generators, model_format, settings, tiling, train, train_plan
from nstcli.errors import InputError
from tests.conftest import nst



pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """Tiny johnson (nearest and bilinear upsampling, batch norm) and texture models, trained 2 steps against a random-initialised VGG16."""
    from torchvision.models import vgg

    folder = tmp_path_factory.mktemp("export")
    rng = np.random.default_rng(0)
    (folder / "photos").mkdir()
    for index in range(3):
        Image.fromarray((rng.random((40, 40, 3)) * 255).astype(np.uint8)).save(folder / "photos" / f"p{index}.png")
    Image.fromarray((rng.random((32, 32, 3)) * 255).astype(np.uint8)).save(folder / "my_style.png")
    torch.manual_seed(0)
    weights = folder / "vgg16.pth"
    features = vgg.make_layers(vgg.cfgs["D"])
    torch.save({f"features.{key}": value for key, value in features.state_dict().items()}, weights)
    models = {}
    variants = {
        "johnson": ("johnson", {"width": 0.25, "residual_blocks": 1}),
        "johnson-bilinear": ("johnson", {"width": 0.25, "residual_blocks": 1, "upsample": "bilinear"}),
        "johnson-batch": ("johnson", {"width": 0.25, "residual_blocks": 1, "norm": "batch"}),
        "texture": ("texture", {"scales": 3}),
    }
    for name, (arch, options) in variants.items():
        config = settings.with_settings(train.TrainConfig(), dict(
            style=[str(folder / "my_style.png")], data=str(folder / "photos"), arch=arch, arch_options=options,
            image_size=32, batch_size=2, steps=2, workers=0, net="vgg16", weights=str(weights),
            content_layers=["relu1_2"], style_layers=["relu1_2"], precision="fp32", checkpoint_every=0,
        ))  # fmt: skip
        models[name] = folder / f"{name}.pt"
        train.run_train(train_plan.TrainPlan(config, models[name]))
    return models


def run_onnx(path: Path, image: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {model_format.INPUT_IMAGE: image})[0]


@pytest.mark.parametrize(
    ("name", "arch"), [("johnson", "johnson"), ("johnson-bilinear", "johnson"), ("johnson-batch", "johnson"), ("texture", "texture")]
)
def test_export_writes_the_contract(tmp_path, trained, name, arch):
    state = checkpoint.load_checkpoint(trained[name])
    result = export.export_model(state, str(tmp_path / "m.onnx"))
    assert result.max_abs_diff <= export.TOLERANCE["fp32"]

    proto = onnx.load(tmp_path / "m.onnx")
    (image_input,), (output,) = proto.graph.input, proto.graph.output
    assert (image_input.name, output.name) == (model_format.INPUT_IMAGE, model_format.OUTPUT_IMAGE)
    for value in (image_input, output):
        assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        assert [dim.dim_param or dim.dim_value for dim in value.type.tensor_type.shape.dim] == ["batch", 3, "height", "width"]
    meta = {entry.key: entry.value for entry in proto.metadata_props}
    model, config, multiple = checkpoint.build_trained_generator(state)
    assert meta[model_format.META_FORMAT] == model_format.FORMAT_VERSION
    assert meta[model_format.META_ARCH] == arch
    assert json.loads(meta[model_format.META_STYLES]) == ["my_style"]
    assert json.loads(meta[model_format.META_CONFIG]) == config.to_dict()
    assert meta[model_format.META_SIZE_MULTIPLE] == str(multiple)
    assert meta[model_format.META_PRECISION] == "fp32"
    assert meta[model_format.META_INPUT] == model_format.INPUT_CONVENTION
    assert model_format.META_VERSION in meta

    # any batch and any size that is a multiple: same result as PyTorch
    image = torch.rand(3, 3, 3 * multiple, 5 * multiple)
    result_onnx = run_onnx(tmp_path / "m.onnx", image.numpy())
    with torch.no_grad():
        expected = model(image).numpy()
    assert result_onnx.shape == expected.shape and result_onnx.dtype == np.float32
    assert np.abs(result_onnx - expected).max() < 1e-4
    assert 0 <= result_onnx.min() and result_onnx.max() <= 1


def test_batch_norm_is_folded_into_the_convs(tmp_path, trained):
    export.export_model(checkpoint.load_checkpoint(trained["johnson-batch"]), str(tmp_path / "m.onnx"))
    operators = {node.op_type for node in onnx.load(tmp_path / "m.onnx").graph.node}
    assert "Conv" in operators and not operators & {"BatchNormalization", "InstanceNormalization"}
    assert tiling.pin_instance_norm((tmp_path / "m.onnx").read_bytes()) is None  # tiles share no statistics


def test_fp16_keeps_float32_io_and_stays_close(tmp_path, trained):
    state = checkpoint.load_checkpoint(trained["johnson"])
    full = export.export_model(state, str(tmp_path / "full.onnx"), "fp32")
    half = export.export_model(state, str(tmp_path / "half.onnx"), "fp16")
    assert half.bytes < full.bytes * 0.75
    assert 0 < half.max_abs_diff <= export.TOLERANCE["fp16"]
    proto = onnx.load(tmp_path / "half.onnx")
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(init.data_type == onnx.TensorProto.FLOAT16 for init in proto.graph.initializer)
    assert {entry.key: entry.value for entry in proto.metadata_props}[model_format.META_PRECISION] == "fp16"
    image = np.random.default_rng(1).random((1, 3, 16, 24), dtype=np.float32)
    assert np.abs(run_onnx(tmp_path / "half.onnx", image) - run_onnx(tmp_path / "full.onnx", image)).max() < 1e-2


def test_a_parity_failure_is_loud_and_writes_nothing(tmp_path, trained, monkeypatch):
    monkeypatch.setitem(export.TOLERANCE, "fp32", -1.0)
    with pytest.raises(InputError, match="does not match PyTorch"):
        export.export_model(checkpoint.load_checkpoint(trained["johnson"]), str(tmp_path / "m.onnx"))
    assert list(tmp_path.iterdir()) == []


def test_parity_pads_odd_sizes_like_apply(trained):
    model, _, multiple = checkpoint.build_trained_generator(checkpoint.load_checkpoint(trained["texture"]))
    assert export.PARITY_SIZE[0] % multiple and export.PARITY_SIZE[1] % multiple
    padded = generators.pad_to_multiple(torch.rand(1, 3, *export.PARITY_SIZE), multiple)
    assert padded.shape[-2] % multiple == 0 and padded.shape[-1] % multiple == 0


def test_exported_models_apply_to_tiny_and_odd_images(tmp_path, trained):
    sizes = [(1, 1), (3, 5), (17, 9)]
    for index, size in enumerate(sizes):
        Image.new("RGB", size, (200, 120, 40)).save(tmp_path / f"in{index}.png")
    for arch in ("johnson", "texture"):
        export.export_model(checkpoint.load_checkpoint(trained[arch]), str(tmp_path / f"{arch}.onnx"))
        inputs = [f"in{index}.png" for index in range(len(sizes))]
        result = nst("apply", f"{arch}.onnx", *inputs, "-o", f"out_{arch}", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        for index, size in enumerate(sizes):
            assert Image.open(tmp_path / f"out_{arch}" / f"in{index}.png").size == size


def test_cli_export_and_its_errors(tmp_path, trained):
    result = nst("export", str(trained["texture"]), "-o", "m.onnx", "--precision", "fp16", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b""
    assert "wrote m.onnx (fp16" in result.stderr and "max abs diff vs PyTorch" in result.stderr
    again = nst("export", str(trained["texture"]), "-o", "m.onnx", cwd=tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr
    (tmp_path / "junk.pt").write_bytes(b"junk")
    junk = nst("export", "junk.pt", "-o", "j.onnx", cwd=tmp_path)
    assert junk.returncode == 1 and junk.stderr.strip() == "nst: error: junk.pt: not an nst model or checkpoint"
    suffix = nst("export", str(trained["texture"]), "-o", "m.bin", cwd=tmp_path)
    assert suffix.returncode == 2 and "FILE.onnx" in suffix.stderr
    precision = nst("export", str(trained["texture"]), "-o", "p.onnx", "--precision", "int4", cwd=tmp_path)
    assert precision.returncode == 2 and "unknown --precision 'int4'" in precision.stderr
