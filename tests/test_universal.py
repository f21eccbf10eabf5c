"""Universal style transfer, the torch side: encoder stages, decoders, training (resumable) and ONNX export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nstcli.settings import UniversalTrainConfig
from tests.conftest import assert_one_line_error, gradient_image, nst

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for seed in range(4):
        gradient_image(40, 32, seed=seed).save(folder / f"p{seed}.png")
    return folder


def tiny_config(photos: Path, **changes) -> UniversalTrainConfig:
    values = dict(data=str(photos), image_size=16, batch_size=2, level_steps=[1, 1, 1, 2], width=0.125, workers=0,
                  device="cpu", checkpoint_every=0)  # fmt: skip
    return UniversalTrainConfig(**{**values, **changes})


def test_each_decoder_gives_back_an_image_of_the_photos_size():
    import torch

    from nstcli.universal_net import build_decoder, build_encoder

    image = torch.rand(1, 3, 24, 40)
    features = build_encoder()(image)
    assert [tuple(f.shape[1:]) for f in features] == [(64, 24, 40), (128, 12, 20), (256, 6, 10), (512, 3, 5)]
    for level, feature in enumerate(features, start=1):
        assert build_decoder(level, 0.25)(feature).shape == image.shape


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path, photos):
    import torch

    from nstcli.universal_train import load, run_universal_train

    straight = run_universal_train(tiny_config(photos), tmp_path / "straight.pt")
    assert straight.steps == [1, 1, 1, 2] and not straight.interrupted
    run_universal_train(tiny_config(photos, level_steps=[1, 1, 1, 1], checkpoint_every=1), tmp_path / "first.pt")
    assert not (tmp_path / "first.ckpt").exists()  # finished: first.pt holds the last step
    resumed = run_universal_train(tiny_config(photos), tmp_path / "resumed.pt", resume=str(tmp_path / "first.pt"),
                                  given={"level_steps": [1, 1, 1, 2]})  # fmt: skip
    assert resumed.steps == [1, 1, 1, 2]
    a, b = load(tmp_path / "straight.pt"), load(tmp_path / "resumed.pt")
    for left, right in zip(a["decoders"], b["decoders"]):
        for key in left:
            assert torch.equal(left[key], right[key]), key


def test_resume_keeps_the_settings_that_define_the_decoders(tmp_path, photos):
    from nstcli.errors import UsageError
    from nstcli.universal_train import run_universal_train

    run_universal_train(tiny_config(photos, level_steps=[1, 0, 0, 0]), tmp_path / "first.pt")
    with pytest.raises(UsageError, match="--width differs from the checkpoint's"):
        run_universal_train(tiny_config(photos), tmp_path / "again.pt", resume=str(tmp_path / "first.pt"), given={"width": 0.5})


def test_held_out_psnr_is_reported_per_level(tmp_path, photos):
    from nstcli.universal_train import LEVELS, run_universal_train

    result = run_universal_train(tiny_config(photos, holdout=str(photos), eval_size=32), tmp_path / "model.pt")
    assert list(result.psnr) == list(LEVELS)
    assert all(0 < value < 60 for value in result.psnr.values())


def test_codebook_is_exact_for_256_values_and_close_otherwise():
    from nstcli.universal_export import codebook

    rng = np.random.default_rng(0)
    few = rng.choice(rng.normal(size=256).astype(np.float32), size=(8, 4, 3, 3))
    index, table = codebook(few)
    assert index.dtype == np.uint8 and table.shape == (256,)
    np.testing.assert_array_equal(table[index], few)
    many = rng.normal(size=(64, 32, 3, 3)).astype(np.float32)
    index, table = codebook(many)
    assert np.sqrt(np.mean((table[index] - many) ** 2)) < 0.01 * many.std()  # k-means: a small mean squared error


def test_export_writes_every_stage_and_decoder_with_metadata(tmp_path, photos):
    import onnx

    from nstcli import model_format as fmt
    from nstcli.universal_export import export_universal
    from nstcli.universal_train import load, run_universal_train

    run_universal_train(tiny_config(photos, level_steps=[1, 0, 1, 0]), tmp_path / "model.pt")
    state = load(tmp_path / "model.pt")
    sizes = {}
    for precision in ("fp32", "fp16", "int8"):
        result = export_universal(state, tmp_path / precision, precision)
        names = sorted(Path(path).name for path in result.files)
        assert names == ["decoder_1.onnx", "decoder_3.onnx", "encoder_1.onnx", "encoder_2.onnx", "encoder_3.onnx"]
        assert all(value < 1e-4 for key, value in result.max_abs_diff.items() if key.startswith("encoder"))
        sizes[precision] = (tmp_path / precision / "decoder_3.onnx").stat().st_size
        meta = {p.key: p.value for p in onnx.load(str(tmp_path / precision / "decoder_3.onnx")).metadata_props}
        assert (meta[fmt.META_ARCH], meta[fmt.META_UNIVERSAL_PART], meta[fmt.META_UNIVERSAL_LEVEL]) == ("universal", "decoder", "3")
        assert meta[fmt.META_PRECISION] == precision
    assert sizes["int8"] < sizes["fp16"] < sizes["fp32"]


def test_export_with_calibration_photos_adds_encoder_stages_that_compute_in_int8(tmp_path, photos):
    import onnx
    import onnxruntime

    from nstcli import model_format as fmt
    from nstcli.universal_export import export_universal
    from nstcli.universal_net import build_encoder
    from nstcli.universal_train import load, run_universal_train

    run_universal_train(tiny_config(photos, level_steps=[1, 0, 1, 0]), tmp_path / "model.pt")
    result = export_universal(load(tmp_path / "model.pt"), tmp_path / "out", "int8", calibration=photos)
    names = sorted(Path(path).name for path in result.files)
    assert names == ["decoder_1.onnx", "decoder_3.onnx", "encoder_1.onnx", "encoder_2.int8.onnx", "encoder_2.onnx",
                     "encoder_3.int8.onnx", "encoder_3.onnx"]  # fmt: skip
    assert 0 < result.max_abs_diff["encoder_2.int8"] < 0.05 and 0 < result.max_abs_diff["encoder_3.int8"] < 0.05
    proto = onnx.load(str(tmp_path / "out" / "encoder_3.int8.onnx"))
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= {node.op_type for node in proto.graph.node}
    meta = {p.key: p.value for p in proto.metadata_props}
    assert (meta[fmt.META_ARCH], meta[fmt.META_UNIVERSAL_LEVEL], meta[fmt.META_PRECISION]) == ("universal", "3", fmt.INT8_COMPUTE)
    # the stage computes relu3_1 from a photo's relu2_1 as the float32 one does, to int8's precision
    import torch

    from nstcli import images

    encoder = build_encoder()
    with torch.no_grad():
        features = encoder(images.to_tensor(gradient_image(64, 48, seed=9)), 2)[1]
    stage = encoder.stages[2]
    session = onnxruntime.InferenceSession(str(tmp_path / "out" / "encoder_3.int8.onnx"), providers=["CPUExecutionProvider"])
    found = session.run(None, {fmt.UNIVERSAL_INPUT: features.numpy()})[0]
    with torch.no_grad():
        expected = stage(features).numpy()
    assert found.shape == expected.shape and 0 < np.abs(found - expected).mean() < 0.1 * np.abs(expected).mean()


def test_cli_train_and_export(tmp_path, photos):
    common = ("train", "--arch", "universal", "--data", str(photos), "--image-size", "16", "--batch-size", "2",
              "--width", "0.125", "--workers", "0", "--device", "cpu")  # fmt: skip
    result = nst(*common, "--level-steps", "1,0,0,1", "-o", str(tmp_path / "u.pt"), "--export", str(tmp_path / "onnx"))
    assert result.returncode == 0, result.stderr
    assert "relu4_1 1 steps" in result.stderr
    assert sorted(path.name for path in (tmp_path / "onnx").iterdir())[0] == "decoder_1.onnx"
    assert (tmp_path / "onnx" / "encoder_4.int8.onnx").is_file()  # calibrated on --data
    result = nst("export", str(tmp_path / "u.pt"), "-o", str(tmp_path / "int8"), "--precision", "int8")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "int8" / "decoder_4.onnx").is_file() and not (tmp_path / "int8" / "encoder_2.int8.onnx").exists()
    result = nst("export", str(tmp_path / "u.pt"), "-o", str(tmp_path / "calibrated"), "--calibration", str(photos))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "calibrated" / "encoder_2.int8.onnx").is_file()
    assert_one_line_error(nst(*common, "--style-weight", "2", "-o", str(tmp_path / "x.pt")), 2,
                          "--style-weight does not apply to --arch universal")  # fmt: skip
    assert_one_line_error(nst(*common, "--level-steps", "1,1", "-o", str(tmp_path / "x.pt")), 2, "--level-steps needs 4")
    assert_one_line_error(nst(*common, "--image-size", "20", "-o", str(tmp_path / "x.pt")), 2, "multiple of 8")
    assert_one_line_error(
        nst("train", "--data", str(photos), "--style-image", str(photos / "p0.png"), "--level-steps", "1,1,1,1",
            "-o", str(tmp_path / "x.pt")),
        2, "--level-steps applies to --arch universal only",
    )  # fmt: skip
