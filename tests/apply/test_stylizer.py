"""The Stylizer: arrays in, the pixels ``nst apply`` writes out."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import nstcli
from nstcli.apply.stylizer import Stylizer
from nstcli.errors import UsageError
from tests.conftest import gradient_image, nst


def test_arrays_come_out_as_nst_apply_writes_them(models, tmp_path):
    photo = gradient_image(40, 30, seed=3)
    photo.save(tmp_path / "photo.png")
    settings = {"strength": 0.7, "preserve_color": "luminance"}
    result = nst("apply", str(models["multi"]), str(tmp_path / "photo.png"), "-o", str(tmp_path / "out.png"),
                 "--style", "oil", "--strength", "0.7", "--preserve-color", "luminance")  # fmt: skip
    assert result.returncode == 0, result.stderr
    stylizer = Stylizer.open(str(models["multi"]), style="oil", **settings)
    painted = stylizer(np.asarray(photo))
    assert painted.dtype == np.uint8 and painted.shape == (30, 40, 3)
    assert np.array_equal(painted, np.asarray(Image.open(tmp_path / "out.png")))


def test_a_batch_of_mixed_sizes_keeps_order_and_equals_one_by_one(models):
    stylizer = Stylizer.open(str(models["single"]), batch_size=2)
    photos = [np.asarray(gradient_image(w, h, seed=i)) for i, (w, h) in enumerate([(32, 24), (20, 20), (32, 24), (32, 24)])]
    batch = stylizer.stylize_batch(photos)
    assert [image.shape for image in batch] == [photo.shape for photo in photos]
    for photo, painted in zip(photos, batch):
        assert np.abs(painted.astype(int) - stylizer(photo).astype(int)).max() <= 1  # batched inference: float rounding
    assert not np.array_equal(batch[0], batch[2])  # different photos, different paintings


def test_a_bundled_style_by_name_and_the_package_level_name():
    assert nstcli.Stylizer is Stylizer
    painted = nstcli.Stylizer.open("starry-night")(np.asarray(gradient_image(64, 48)))
    assert painted.shape == (48, 64, 3) and painted.std() > 5


def test_bad_arrays_and_settings_are_one_line_errors(models):
    with pytest.raises(UsageError, match="unknown settings output"):
        Stylizer.open(str(models["single"]), output="x.png")
    with pytest.raises(UsageError, match="--strength must be in 0..1"):
        Stylizer.open(str(models["single"]), strength=2.0)
    with pytest.raises(UsageError, match="pick with --style"):
        Stylizer.open(str(models["multi"]))
    stylizer = Stylizer.open(str(models["single"]))
    with pytest.raises(UsageError, match="HxWx3 uint8"):
        stylizer(np.zeros((8, 8, 3), dtype=np.float32))
    with pytest.raises(UsageError, match="HxWx3 uint8"):
        stylizer(np.zeros((8, 8), dtype=np.uint8))
