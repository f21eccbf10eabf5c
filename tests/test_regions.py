"""Region fusion (nst apply --region NAME=MASK): per-pixel shares, mask errors, and real runs of the bundled models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nstcli import regions
from nstcli.apply.config import ApplyConfig
from nstcli.apply.pipeline import run_apply
from nstcli.errors import InputError, UsageError
from tests.conftest import assert_one_line_error, gradient_image, nst

LEFT = np.array([[255, 255, 0, 0]] * 2, np.uint8)  # left half white


def grey(array: np.ndarray) -> Image.Image:
    return Image.fromarray(array.astype(np.uint8), "L")


def test_shares_sum_to_one_the_rest_fills_in_and_the_photo_shows_where_nothing_is_painted():
    with_rest = regions.RegionWeights([regions.Region("a", grey(LEFT)), regions.Region("b", None)]).at(2, 4)
    assert with_rest.shape == (3, 2, 4)
    assert np.array_equal(with_rest[0], LEFT / 255) and np.array_equal(with_rest[1], 1 - LEFT / 255)
    assert not with_rest[2].any()  # a style without a mask leaves nothing to the photo
    half = regions.RegionWeights([regions.Region("a", grey(np.full((2, 4), 128)))]).at(2, 4)
    assert np.allclose(half[0], 128 / 255) and np.allclose(half[1], 1 - 128 / 255)
    overlap = regions.RegionWeights([regions.Region("a", grey(LEFT)), regions.Region("b", grey(LEFT))]).at(2, 4)
    assert np.allclose(overlap[:2, :, :2], 0.5) and np.allclose(overlap[2, :, 2:], 1.0)  # normalised; photo outside
    for shares in (with_rest, half, overlap):
        assert np.allclose(shares.sum(axis=0), 1.0)
    stretched = regions.RegionWeights([regions.Region("a", grey(LEFT))]).at(8, 16)
    assert stretched.shape == (2, 8, 16) and stretched[0, :, 0].min() == 1.0 and stretched[0, :, -1].max() == 0.0


def test_bad_regions_are_one_line_errors(tmp_path):
    black = tmp_path / "black.png"
    grey(np.zeros((4, 4))).save(black)
    with pytest.raises(InputError, match="all black"):
        regions.load_regions([("a", str(black))])
    with pytest.raises(InputError, match="--region a: .*missing.png"):
        regions.load_regions([("a", str(tmp_path / "missing.png"))])
    with pytest.raises(UsageError, match="at least one NAME=MASK"):
        regions.load_regions([("a", None)])
    grey(LEFT).save(tmp_path / "left.png")
    with pytest.raises(UsageError, match="at most one style without a mask"):
        regions.load_regions([("a", str(tmp_path / "left.png")), ("b", None), ("c", None)])
    with pytest.raises(UsageError, match="a mask must be a file"):
        regions.split_region("a=-")
    for text in ("=left.png", "a="):
        with pytest.raises(UsageError, match="expected NAME=MASK.png or NAME"):
            regions.split_region(text)
    assert regions.split_region("a=b=c.png") == ("a", "b=c.png") and regions.split_region("a") == ("a", None)


def stylise(tmp_path: Path, name: str, model: str, **options) -> np.ndarray:
    output = tmp_path / f"{name}.png"
    config = ApplyConfig(model=model, inputs=[str(tmp_path / "photo.png")], output=str(output), **options)
    summary = run_apply(config)
    assert summary.written == 1 and summary.failed == 0
    return np.asarray(Image.open(output), dtype=np.int16)


@pytest.mark.parametrize("tile", [0, 64], ids=["whole", "tiled"])
def test_each_region_is_its_style_exactly_away_from_the_seam(tmp_path, tile):
    from nstcli import styles

    width, height = 160, 96
    gradient_image(width, height).save(tmp_path / "photo.png")
    mask = np.zeros((height, width), np.uint8)
    mask[:, : width // 2] = 255
    grey(mask).save(tmp_path / "left.png")
    bank = str(styles.get_preset("starry-night").model("stylebank").path)
    common = {"tile": tile, "tile_overlap": 16}
    fused = stylise(tmp_path, "fused", bank, regions=[("starry-night", str(tmp_path / "left.png")), ("great-wave", None)],
                    **common)  # fmt: skip
    starry = stylise(tmp_path, "starry", bank, style="starry-night", **common)
    wave = stylise(tmp_path, "wave", bank, style="great-wave", **common)
    assert np.abs(starry - wave).mean() > 5  # two different styles, so the check below means something
    half = width // 2
    assert np.array_equal(fused[:, : half - 1], starry[:, : half - 1])
    assert np.array_equal(fused[:, half + 1 :], wave[:, half + 1 :])


def test_a_single_style_model_paints_inside_its_mask_and_leaves_the_photo_outside(tmp_path):
    from nstcli import styles

    gradient_image(64, 48).save(tmp_path / "photo.png")
    mask = np.zeros((48, 64), np.uint8)
    mask[10:30, 20:50] = 255
    grey(mask).save(tmp_path / "box.png")
    johnson = str(styles.get_preset("the-kiss").model("johnson").path)
    fused = stylise(tmp_path, "fused", johnson, regions=[("0", str(tmp_path / "box.png"))])
    whole = stylise(tmp_path, "whole", johnson)
    photo = np.asarray(Image.open(tmp_path / "photo.png"), dtype=np.int16)
    outside = mask == 0
    outside[9:31, 19:51] = False  # one pixel of margin round the box
    assert np.array_equal(fused[outside], photo[outside])
    assert np.array_equal(fused[11:29, 21:49], whole[11:29, 21:49])


def test_cli_region_fusion_with_bundled_styles_and_its_errors(tmp_path):
    photo, left, out = tmp_path / "photo.png", tmp_path / "left.png", tmp_path / "out.png"
    gradient_image(64, 48).save(photo)
    grey(LEFT).save(left)
    done = nst("apply", str(photo), "--region", f"starry-night={left}", "--region", "great-wave", "-o", str(out), "-q")
    assert done.returncode == 0, done.stderr
    assert Image.open(out).size == (64, 48)
    johnson = nst("apply", str(photo), "--kind", "johnson", "--region", f"the-kiss={left}", "-o", str(tmp_path / "j.png"))
    assert johnson.returncode == 0, johnson.stderr
    errors = [
        (["--region", f"starry-night={left}", "--style", "great-wave"], 2, "give no --style or --mix"),
        (["--kind", "johnson", "--region", f"starry-night={left}", "--region", "great-wave"], 2,
         "--region: these bundled styles are not in one multi-style model"),
        (["--region", f"starry-night={left}", "--region", "starry-night"], 2, "--region: each style once"),
        (["--region", f"starry-night={tmp_path / 'none.png'}"], 1, "none.png"),
    ]  # fmt: skip
    for extra, code, message in errors:
        assert_one_line_error(nst("apply", str(photo), *extra, "-o", str(tmp_path / "x.png")), code, message)
    assert not (tmp_path / "x.png").exists()


def test_an_output_never_replaces_a_region_mask(tmp_path):
    photo, left = tmp_path / "in" / "photo.png", tmp_path / "left.png"
    photo.parent.mkdir()
    gradient_image(48, 32).save(photo)
    Image.new("L", (48, 32), 255).save(left)
    before = left.read_bytes()
    regions = ["--region", f"starry-night={left}", "--region", "great-wave", "--overwrite"]
    as_file = nst("apply", str(photo), *regions, "-o", str(left))
    in_folder = nst("apply", str(photo.parent), *regions, "-o", str(tmp_path), "--name", "left.png")
    for result in (as_file, in_folder):
        assert result.returncode == 2, result.stderr
        assert "is also an input" in result.stderr or "would overwrite an input" in result.stderr
    assert left.read_bytes() == before
