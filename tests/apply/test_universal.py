"""``nst apply --style-image``: universal style transfer on tiny generated images with real (untrained) graphs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nstcli import wct
from nstcli.apply import painting_cache
from nstcli.apply.config import ApplyConfig
from nstcli.apply.pipeline import run_apply
from nstcli.apply.universal import UniversalModel, load_painting_stats, read_painting, save_painting_stats
from nstcli.errors import UsageError
from tests.apply.test_cli import make_folder, photo
from tests.conftest import assert_one_line_error, nst, stripes_image


@pytest.fixture
def painting(tmp_path: Path) -> Path:
    path = tmp_path / "painting.png"
    stripes_image(64, 48).save(path)
    return path


def test_a_folder_is_stylised_with_any_painting(tmp_path, universal_models, painting):
    make_folder(tmp_path / "in", 3, size=(45, 30))
    result = nst("apply", "--style-image", str(painting), "--universal-model", str(universal_models), "--style-size", "64",
                 str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--threads", "1")  # fmt: skip
    assert result.returncode == 0, result.stderr
    written = sorted((tmp_path / "out").rglob("*.png"))
    assert len(written) == 3
    for path in written:
        with Image.open(path) as image:
            assert image.size == (45, 30) and image.mode == "RGB"


def test_stdin_to_stdout(tmp_path, universal_models, painting):
    source = tmp_path / "photo.png"
    photo(40, 24).save(source)
    result = nst("apply", "--style-image", str(painting), "--universal-model", str(universal_models), "--style-size", "64", "-", "-o", "-",
                 stdin=source.read_bytes())  # fmt: skip
    assert result.returncode == 0, result.stderr
    with Image.open(__import__("io").BytesIO(result.stdout)) as image:
        assert image.size == (40, 24)


def test_the_paintings_statistics_are_computed_once_per_run(tmp_path, universal_models, painting, monkeypatch):
    calls = []
    real = wct.style_stats
    monkeypatch.setattr(wct, "style_stats", lambda features: calls.append(features.shape) or real(features))
    make_folder(tmp_path / "in", 4)
    config = ApplyConfig(str(universal_models), [str(tmp_path / "in")], str(tmp_path / "out"), style_images=[str(painting)],
                         levels=[4, 2], style_size=64, threads=1)  # fmt: skip
    summary = run_apply(config)
    assert summary.written == 4
    assert [shape[0] for shape in calls] == [512, 128]  # one painting at two levels, whatever the number of photos


def test_a_painting_measured_once_is_read_from_the_cache_by_later_runs(tmp_path, universal_models, painting, monkeypatch):
    image = np.asarray(photo(48, 32), dtype=np.float32) / 255
    first = UniversalModel(str(universal_models), [str(painting)], 64, threads=1, levels=[3, 1])
    again = UniversalModel(str(universal_models), [str(painting)], 64, threads=1, levels=[3, 1])
    assert (first.style_passes, again.style_passes) == (1, 0)
    assert np.array_equal(first.stylise(image), again.stylise(image))  # kept in float32: bit for bit
    assert len(list(Path(painting_cache.cache_folder()).glob("*.npz"))) == 1
    # what the statistics depend on: another style size, another painting, a level not measured yet
    assert UniversalModel(str(universal_models), [str(painting)], 96, threads=1, levels=[3, 1]).style_passes == 1
    assert UniversalModel(str(universal_models), [str(painting)], 64, threads=1, levels=[3, 2]).style_passes == 1
    assert UniversalModel(str(universal_models), [str(painting)], 64, threads=1, levels=[3, 2, 1]).style_passes == 0  # merged
    assert UniversalModel(str(universal_models), [str(painting)], 64, threads=1, levels=[2]).style_passes == 1  # other stages
    stripes_image(64, 48, period=4).save(painting)
    assert UniversalModel(str(universal_models), [str(painting)], 64, threads=1, levels=[3, 1]).style_passes == 1


def test_the_cache_keeps_the_paintings_used_last_and_can_be_turned_off(tmp_path, universal_models, monkeypatch):
    monkeypatch.setattr(painting_cache, "MAX_ENTRIES", 2)
    paintings = []
    for period in (3, 4, 5):
        paintings.append(tmp_path / f"p{period}.png")
        stripes_image(32, 32, period=period).save(paintings[-1])
        UniversalModel(str(universal_models), [str(paintings[-1])], 32, threads=1, levels=[1])
    assert len(list(Path(painting_cache.cache_folder()).glob("*.npz"))) == 2
    assert UniversalModel(str(universal_models), [str(paintings[0])], 32, threads=1, levels=[1]).style_passes == 1  # dropped
    assert UniversalModel(str(universal_models), [str(paintings[2])], 32, threads=1, levels=[1]).style_passes == 0
    monkeypatch.setenv("NST_CACHE_DIR", "")
    assert painting_cache.cache_folder() is None
    assert UniversalModel(str(universal_models), [str(paintings[2])], 32, threads=1, levels=[1]).style_passes == 1


def test_a_cache_that_cannot_be_used_is_passed_over(tmp_path, universal_models, painting, monkeypatch):
    (tmp_path / "a file").write_text("not a folder")
    monkeypatch.setenv("NST_CACHE_DIR", str(tmp_path / "a file" / "cache"))  # cannot be made
    photo(40, 24).save(tmp_path / "photo.png")
    run = ("apply", "--style-image", str(painting), "--universal-model", str(universal_models), "--style-size", "64",
           str(tmp_path / "photo.png"), "--threads", "1", "-o")  # fmt: skip
    assert nst(*run, str(tmp_path / "unwritable.png")).returncode == 0
    monkeypatch.setenv("NST_CACHE_DIR", str(tmp_path / "cache"))
    assert nst(*run, str(tmp_path / "fresh.png")).returncode == 0
    (entry,) = (tmp_path / "cache").glob("*.npz")
    entry.write_bytes(b"PK\x03\x04 damaged")
    result = nst(*run, str(tmp_path / "damaged.png"))
    assert result.returncode == 0 and result.stderr.count("\n") <= 1, result.stderr
    expected = (tmp_path / "fresh.png").read_bytes()
    assert (tmp_path / "unwritable.png").read_bytes() == expected == (tmp_path / "damaged.png").read_bytes()
    assert np.load(entry)["colouring_1"].shape == (64, 64)  # measured again and kept


def test_levels_strength_and_blend_change_the_picture(tmp_path, universal_models, painting):
    other = tmp_path / "other.png"
    photo(50, 40, seed=5).save(other)
    image = np.asarray(photo(48, 32), dtype=np.float32)[None] / 255

    def render(**options) -> np.ndarray:
        model = UniversalModel(str(universal_models), [str(painting), str(other)], 64, threads=1, **options)
        result = model.run(image)
        assert result.shape == image.shape and np.isfinite(result).all()
        assert result.min() >= 0 and result.max() <= 1
        return result

    full = render(blend=[1, 0])
    assert not np.allclose(full, render(blend=[1, 0], levels=[4, 1]), atol=1e-3)
    assert not np.allclose(full, render(blend=[1, 0], strength=0.2), atol=1e-3)
    assert not np.allclose(full, render(blend=[0.5, 0.5]), atol=1e-3)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Image.new("RGB", (80, 60), (120, 40, 200)),  # one colour: a singular covariance
        lambda: Image.new("RGB", (2, 3), (10, 200, 30)),  # tiny
        lambda: Image.fromarray((np.random.default_rng(0).random((40, 30)) * 255).astype(np.uint8), "L"),  # greyscale
        lambda: Image.new("RGBA", (40, 40), (255, 0, 0, 0)),  # fully transparent
        lambda: Image.new("RGB", (1, 700), (90, 90, 90)),  # a line
    ],
    ids=["flat", "tiny", "grey", "transparent", "thin"],
)
def test_odd_paintings_still_give_a_picture(tmp_path, universal_models, make):
    style = tmp_path / "style.png"
    make().save(style)
    source = tmp_path / "photo.png"
    photo().save(source)
    result = nst("apply", "--style-image", str(style), "--universal-model", str(universal_models), "--style-size", "64", str(source),
                 "-o", str(tmp_path / "out.png"), "--levels", "4,1")  # fmt: skip
    assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "out.png") as image:
        assert np.isfinite(np.asarray(image, dtype=np.float32)).all() and image.size == (48, 32)


@pytest.mark.parametrize("size", [(1, 1), (3, 2), (9, 1), (17, 5)])
def test_tiny_photos_go_through_every_level(universal_models, painting, size):
    """relu4_1 is 1/8 of the (padded) photo: padded to 16 px at least, it stays 2 x 2 for the decoders' reflection."""
    image = np.asarray(photo(*size), dtype=np.float32) / 255
    model = UniversalModel(str(universal_models), [str(painting)], 64, threads=1, levels=[4, 3, 2, 1])
    result = model.stylise(image)
    assert result.shape == image.shape and np.isfinite(result).all()


def test_a_huge_painting_is_measured_at_the_style_size(tmp_path):
    path = tmp_path / "huge.png"
    Image.new("RGB", (3000, 1000), (1, 2, 3)).save(path)
    assert read_painting(str(path), 512).shape == (168, 512, 3)


def test_a_large_jpeg_painting_decodes_at_a_reduced_scale_that_still_covers_the_style_size(tmp_path):
    from nstcli import images

    path = tmp_path / "huge.jpg"
    photo(3000, 1000).save(path, quality=90)
    assert images.read_image(path, at_least=256).size == (1500, 500)  # 1/2: 1/4 would leave 250 rows
    assert images.read_image(path).size == (3000, 1000)
    assert read_painting(str(path), 256).shape == (88, 256, 3)


def test_a_photo_over_the_tiling_threshold_is_painted_in_tiles_without_seams(tmp_path, universal_models, painting):
    make_folder(tmp_path / "in", 1, size=(48, 32))
    photo(80, 64).save(tmp_path / "in" / "big.png")
    outputs = {}
    for name, threshold in (("tiled", 70 * 64), ("whole", 4096 * 4096)):
        config = ApplyConfig(str(universal_models), [str(tmp_path / "in")], str(tmp_path / name), style_images=[str(painting)],
                             auto_tile_pixels=threshold, tile=None, levels=[4, 2, 1], style_size=64, threads=1)  # fmt: skip
        assert run_apply(config).written == 2
        with Image.open(tmp_path / name / "big.png") as image:
            outputs[name] = np.asarray(image, dtype=np.int16)
    assert outputs["tiled"].shape == (64, 80, 3)
    assert np.abs(outputs["tiled"] - outputs["whole"]).max() <= 1


def test_tiles_share_the_whole_images_statistics(universal_models, painting):
    image = np.asarray(photo(72, 56), dtype=np.float32) / 255
    model = UniversalModel(str(universal_models), [str(painting)], 64, threads=1, levels=[4, 3, 2, 1])
    whole = model.stylise(image)
    for tile in (16, 40):  # many tiles, each far smaller than a level-4 margin, and a few
        difference = np.abs(model.run_tiled(image, tile, 8, 1) - whole)
        # Untrained decoders on a tiny photo amplify rounding (the statistics summed tile by tile) to a few
        # 1/255 at some pixels; margins too narrow for the networks' reach (8 px) give a mean of 0.13 and p99 of 1.
        assert difference.shape == whole.shape and difference.mean() < 3e-3 and np.percentile(difference, 99) < 0.03


def test_level_one_runs_in_tiles_as_one_piece_would(universal_models, painting, monkeypatch):
    """Every photo's level 1 goes through FINE_TILE tiles (the full-size relu1_1 map never exists whole): no seams."""
    from nstcli.apply import universal

    image = np.asarray(photo(2 * universal.FINE_TILE + 40, universal.FINE_TILE + 24), dtype=np.float32) / 255  # six tiles
    model = UniversalModel(str(universal_models), [str(painting)], 64, threads=1, levels=[1])
    tiled = model.stylise(image)
    monkeypatch.setattr(universal, "FINE_TILE", 10**6)
    whole = model.stylise(image)
    # The statistics summed tile by tile round differently, which the whitening amplifies at a few pixels to
    # about 1/255 (Kodak photos at 512 px: 76-80 dB, max 1/255); a seam would differ along whole tile borders
    difference = np.abs(tiled - whole)
    assert tiled.shape == whole.shape and difference.max() < 0.01 and difference.mean() < 1e-3


def test_regions_in_tiles_are_fused_with_the_whole_images_region_statistics(tmp_path, universal_models, two_paintings):
    from nstcli import regions

    painting, other, mask = two_paintings
    image = np.asarray(photo(72, 56), dtype=np.float32) / 255
    loaded = regions.load_regions([("painting", str(mask)), ("other", None)])
    model = UniversalModel(str(universal_models), [str(painting), str(other)], 64, threads=1, levels=[2, 1], regions=loaded)
    whole = model.stylise(image)
    difference = np.abs(model.run_tiled(image, 16, 8, 1) - whole)
    assert difference.shape == whole.shape and difference.mean() < 3e-3 and np.percentile(difference, 99) < 0.03


@pytest.mark.parametrize(
    "extra, code, fragment",
    [
        (["--style", "starry-night"], 2, "no --style or --mix"),
        (["--levels", "5"], 2, "--levels: choose among 4,3,2,1"),
        (["--style-blend", "1,2"], 2, "--style-blend has 2 weights for 1 style image"),
        (["--style-blend", "nan"], 2, "--style-blend must be a finite number, got nan"),
        (["--style-blend", "0"], 2, "blend weights (--style-blend, or --mix with --kind universal) must not be negative"),
    ],
)
def test_refused_combinations(tmp_path, universal_models, painting, extra, code, fragment):
    source = tmp_path / "photo.png"
    photo().save(source)
    result = nst("apply", "--style-image", str(painting), "--universal-model", str(universal_models), "--style-size", "64", str(source),
                 "-o", str(tmp_path / "out.png"), *extra)  # fmt: skip
    assert_one_line_error(result, code, fragment)
    assert not (tmp_path / "out.png").exists()


def test_unreadable_painting_and_missing_levels(tmp_path, universal_models):
    source = tmp_path / "photo.png"
    photo().save(source)
    (tmp_path / "painting.png").write_text("not an image")
    base = ("apply", str(source), "-o", str(tmp_path / "out.png"), "--style-size", "64", "--universal-model")
    assert_one_line_error(nst(*base, str(universal_models), "--style-image", str(tmp_path / "painting.png")), 1,
                          "not a recognised image file")  # fmt: skip
    partial = tmp_path / "partial"
    partial.mkdir()
    for name in ("encoder_1.onnx", "decoder_1.onnx"):
        (partial / name).write_bytes((universal_models / name).read_bytes())
    assert_one_line_error(nst(*base, str(partial), "--style-image", str(source), "--levels", "4,1"), 2,
                          "has levels 1, not 4")  # fmt: skip
    assert_one_line_error(nst(*base, str(tmp_path), "--style-image", str(source)), 1, "no universal models")


def test_runs_without_torch(tmp_path, universal_models, painting):
    from tests.test_light_install import without_torch

    photo().save(tmp_path / "photo.png")
    result = without_torch("apply", "--style-image", str(painting), "--universal-model", str(universal_models), "--style-size",
                           "64", "--preserve-color", "luminance", "photo.png", "-o", "out.png", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert Image.open(tmp_path / "out.png").size == (48, 32)


def test_the_bundled_decoders_run_by_default(tmp_path, painting):
    from nstcli.apply.universal import DEFAULT_LEVELS, available_levels
    from nstcli.styles import styles_root

    assert available_levels(styles_root() / "universal") == [4, 3, 2, 1]
    photo(40, 32).save(tmp_path / "photo.png")
    result = nst("apply", "--style-image", str(painting), "--style-size", "64", str(tmp_path / "photo.png"),
                 "-o", str(tmp_path / "out.png"), "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert __import__("json").loads(result.stdout)["styles"] == ["painting"]
    assert DEFAULT_LEVELS == (3, 2, 1) and Image.open(tmp_path / "out.png").size == (40, 32)


def test_the_bundled_encoder_stages_compute_in_int8_on_the_cpu_close_to_float32(tmp_path, painting):
    from nstcli.apply.universal import UNIVERSAL_FOLDER
    from nstcli.styles import styles_root

    folder = str(styles_root() / UNIVERSAL_FOLDER)
    image = np.asarray(photo(96, 64), np.float32) / 255
    quantised = UniversalModel(folder, [str(painting)], 64, levels=[3, 1], provider="cpu")
    exact = UniversalModel(folder, [str(painting)], 64, levels=[3, 1], provider="cpu", int8=False)
    assert quantised.int8_levels == [2, 3] and exact.int8_levels == []
    found, expected = quantised.stylise(image), exact.stylise(image)

    def psnr(a: np.ndarray, b: np.ndarray) -> float:
        return float(10 * np.log10(1 / np.mean((a - b) ** 2)))

    # int8 moves the result a little (here 23 dB on a tiny generated photo, 38-46 dB on Kodak photos, README),
    # far less than painting with another picture does (12 dB)
    other = tmp_path / "other.png"
    photo(64, 48, seed=3).save(other)
    elsewhere = UniversalModel(folder, [str(other)], 64, levels=[3, 1], provider="cpu", int8=False).stylise(image)
    assert found.shape == expected.shape and np.isfinite(found).all()
    assert psnr(found, expected) < 60 and psnr(found, expected) > psnr(elsewhere, expected) + 8


@pytest.fixture
def two_paintings(tmp_path: Path, painting: Path) -> tuple[Path, Path, Path]:
    """Two paintings and a mask of the photo's left half."""
    other = tmp_path / "other.png"
    photo(50, 40, seed=5).save(other)
    mask = tmp_path / "left.png"
    Image.fromarray(np.repeat(np.where(np.arange(48) < 24, 255, 0).astype(np.uint8)[None], 32, axis=0)).save(mask)
    return painting, other, mask


def test_regions_paint_each_painting_where_its_mask_is(tmp_path, universal_models, two_paintings):
    painting, other, mask = two_paintings
    source = tmp_path / "photo.png"
    photo().save(source)
    base = ("apply", "--style-image", str(painting), "--style-image", str(other), "--universal-model", str(universal_models),
            "--style-size", "64", "--threads", "1", str(source))  # fmt: skip
    results = {}
    for name, extra in {"regions": ["--region", f"painting={mask}", "--region", "other"],
                        "swapped": ["--region", f"other={mask}", "--region", "painting"],
                        "blend": []}.items():  # fmt: skip
        out = tmp_path / f"{name}.png"
        result = nst(*base, "-o", str(out), *extra)
        assert result.returncode == 0, result.stderr
        with Image.open(out) as image:
            assert image.size == (48, 32) and image.mode == "RGB"
            results[name] = np.asarray(image, dtype=np.float32)
    assert np.abs(results["regions"] - results["swapped"]).mean() > 1
    assert np.abs(results["regions"] - results["blend"]).mean() > 1


def test_regions_fuse_in_feature_space_with_the_masks_on_every_level(universal_models, two_paintings):
    from nstcli import regions

    painting, other, mask = two_paintings
    image = np.asarray(photo(), dtype=np.float32)[None] / 255
    loaded = regions.load_regions([("painting", str(mask)), ("other", None)])
    model = UniversalModel(str(universal_models), [str(painting), str(other)], 64, threads=1, levels=[4, 2, 1], regions=loaded)
    calls = []
    real = wct.transfer_regions
    # level 1 runs in tiles (FINE_TILE), which pass the whole image's moments too: this photo is one tile
    wct.transfer_regions = lambda features, styles, shares, strength, *moments: calls.append(shares) or real(
        features, styles, shares, strength, *moments
    )
    try:
        result = model.run(image)
    finally:
        wct.transfer_regions = real
    assert result.shape == image.shape and np.isfinite(result).all() and 0 <= result.min() and result.max() <= 1
    # one call per level, each with the shares on that level's grid (photo 48 x 32 and level 4 at half size)
    assert [shares.shape for shares in calls] == [(3, 2, 3), (3, 16, 24), (3, 32, 48)]
    for shares in calls:
        np.testing.assert_allclose(shares.sum(axis=0), 1, atol=1e-5)
        assert shares[0, :, 0].min() > 0.99 and shares[1, :, -1].min() > 0.99  # left: the painting, right: the other


@pytest.mark.parametrize(
    "regions, extra, fragment",
    [
        (["nope=MASK"], [], "--region nope: no --style-image by that name"),
        (["painting=MASK"], [], "--style-image OTHER paints no --region"),
        (["painting=MASK", "other"], ["--style-blend", "1,2"], "--style-blend does not apply with --region"),
        (["painting"], [], "--region: give at least one NAME=MASK.png"),
        (["painting=MASK", "painting=MASK", "other"], [], "--region: each painting once"),
    ],
)
def test_refused_regions(tmp_path, universal_models, two_paintings, regions, extra, fragment):
    painting, other, mask = two_paintings
    source = tmp_path / "photo.png"
    photo().save(source)
    result = nst("apply", "--style-image", str(painting), "--style-image", str(other), "--universal-model", str(universal_models),
                 "--style-size", "64", str(source), "-o", str(tmp_path / "out.png"),
                 *[arg for spec in regions for arg in ("--region", spec.replace("MASK", str(mask)))], *extra)  # fmt: skip
    assert_one_line_error(result, 2, fragment.replace("OTHER", str(other)))
    assert not (tmp_path / "out.png").exists()


def test_two_paintings_with_one_stem_are_told_apart_by_their_paths(tmp_path, universal_models, two_paintings):
    painting, _, mask = two_paintings
    twin = tmp_path / "twin" / painting.name
    twin.parent.mkdir()
    photo(30, 30, seed=9).save(twin)
    source = tmp_path / "photo.png"
    photo().save(source)
    base = ("apply", "--style-image", str(painting), "--style-image", str(twin), "--universal-model", str(universal_models),
            "--style-size", "64", str(source), "-o", str(tmp_path / "out.png"))  # fmt: skip
    assert_one_line_error(nst(*base, "--region", f"painting={mask}", "--region", str(twin)), 2, "names 2 --style-image files")
    result = nst(*base, "--region", f"{painting}={mask}", "--region", str(twin))
    assert result.returncode == 0, result.stderr


def test_the_relu1_1_decoder_is_read_back_as_one_conv_and_decodes_as_its_session(universal_models):
    from nstcli.apply.level_one import LinearDecoder
    from nstcli.apply.runtime import create_session

    session = create_session(str(universal_models / "decoder_1.onnx"), "cpu", 1)[0]
    decoder = LinearDecoder.probe(session, 64)
    assert decoder is not None and decoder.kernel.shape == (3, 64, 3, 3)
    rng = np.random.default_rng(3)
    features = rng.random((64, 16, 24), dtype=np.float32) * 40
    matrix, offset = (rng.normal(size=(64, 64)) * 0.3).astype(np.float32), rng.normal(size=64).astype(np.float32) * 5
    mapped = (matrix @ features.reshape(64, -1) + offset[:, None]).reshape(1, 64, 16, 24)
    expected = session.run(["y"], {"x": mapped})[0][0]
    np.testing.assert_allclose(decoder.decode(features, matrix, offset), expected, atol=1e-4 * np.abs(expected).max())
    # a decoder with ReLUs inside is not one conv: it keeps decoding in onnxruntime
    assert LinearDecoder.probe(create_session(str(universal_models / "decoder_2.onnx"), "cpu", 1)[0], 128) is None


def test_relu1_1_on_a_grid_is_the_sessions_map_at_those_positions(universal_models):
    from nstcli.apply.level_one import FirstStage
    from nstcli.apply.runtime import create_session

    session = create_session(str(universal_models / "encoder_1.onnx"), "cpu", 1)[0]
    stage = FirstStage.from_session(session)
    assert stage is not None  # the export stored the conv in the metadata
    image = np.random.default_rng(5).random((1, 3, 40, 56), dtype=np.float32)
    whole = session.run(["y"], {"x": image})[0][0]
    for stride in (1, 2, 3, 7):  # the borders (zero padding after the preprocessing) included
        grid = stage.sampled(image, stride)
        assert grid.shape == whole[:, ::stride, ::stride].shape
        np.testing.assert_allclose(grid, whole[:, ::stride, ::stride], atol=1e-5 * np.abs(whole).max())
    # any other stage has no such metadata: it keeps running in onnxruntime
    assert FirstStage.from_session(create_session(str(universal_models / "encoder_2.onnx"), "cpu", 1)[0]) is None


def without_first_stage(folder: Path, copy: Path) -> Path:
    """``folder`` as an export before the first stage's conv was stored: encoder_1 without that metadata."""
    import shutil

    import onnx

    from nstcli import model_format as fmt

    shutil.copytree(folder, copy)
    proto = onnx.load(str(copy / "encoder_1.onnx"))
    kept = [entry for entry in proto.metadata_props if entry.key != fmt.META_FIRST_STAGE]
    assert len(kept) == len(proto.metadata_props) - 1
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    onnx.save(proto, str(copy / "encoder_1.onnx"))
    return copy


def test_a_folder_without_the_first_stages_weights_measures_level_one_in_tiles(tmp_path, universal_models, painting):
    """The sample grid's statistics (mean included) against the tiles' (the whole map's mean): the same picture."""
    image = np.asarray(photo(300, 200), dtype=np.float32) / 255
    grid = UniversalModel(str(universal_models), [str(painting)], 64, threads=1, levels=[1])
    tiles = UniversalModel(str(without_first_stage(universal_models, tmp_path / "older")), [str(painting)], 64, threads=1, levels=[1])
    assert grid.first_stage is not None and tiles.first_stage is None
    difference = np.abs(grid.stylise(image) - tiles.stylise(image))
    assert difference.mean() < 2e-3 and difference.max() < 0.03


def test_a_statistics_file_paints_as_its_painting_did(tmp_path, universal_models, painting):
    image = np.asarray(photo(48, 32), dtype=np.float32) / 255
    measured = UniversalModel(str(universal_models), [str(painting)], 64, threads=1, levels=[4, 3, 2, 1])
    stored = tmp_path / "painting.npz"
    save_painting_stats(stored, {level: measured.stats[level][0] for level in (4, 3, 2, 1)}, 64)
    read = UniversalModel(str(universal_models), [str(stored)], 64, threads=1, levels=[3, 1])
    assert read.info.styles == ["painting"]
    expected = UniversalModel(str(universal_models), [str(painting)], 64, threads=1, levels=[3, 1]).stylise(image)
    # the colouring matrices are stored in float16: a rounding, nothing that shows
    assert np.abs(read.stylise(image) - expected).max() < 0.02


def test_a_statistics_file_is_checked_against_the_run(tmp_path, universal_models, painting):
    measured = UniversalModel(str(universal_models), [str(painting)], 64, threads=1, levels=[2, 1])
    stored = tmp_path / "painting.npz"
    save_painting_stats(stored, {level: measured.stats[level][0] for level in (2, 1)}, 64)
    with pytest.raises(UsageError, match="measured at --style-size 64, not 256"):
        load_painting_stats(str(stored), [2, 1], 256)
    with pytest.raises(UsageError, match="holds levels 1,2, not 3"):
        load_painting_stats(str(stored), [3, 1], 64)
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 not a zip")
    photo().save(tmp_path / "photo.png")
    base = ("apply", "--universal-model", str(universal_models), "--style-size", "64", str(tmp_path / "photo.png"),
            "-o", str(tmp_path / "out.png"))  # fmt: skip
    assert_one_line_error(nst(*base, "--style-image", str(tmp_path / "broken.npz")), 1, "not a painting's statistics file")
    assert_one_line_error(nst(*base, "--style-image", str(stored), "--levels", "3,1"), 2, "holds levels 1,2, not 3")
    assert not (tmp_path / "out.png").exists()


def test_bundled_styles_paint_through_the_universal_models(tmp_path):
    photo(40, 32).save(tmp_path / "photo.png")
    outputs = {}
    for label, flags in {"one": ["--style", "starry-night"], "mix": ["--mix", "starry-night=0.5,the-kiss=0.5"],
                         "regions": ["--region", "starry-night=" + str(tmp_path / "left.png"), "--region", "the-kiss"]}.items():  # fmt: skip
        Image.fromarray(np.repeat(np.where(np.arange(40) < 20, 255, 0).astype(np.uint8)[None], 32, axis=0)).save(tmp_path / "left.png")
        result = nst("apply", "--kind", "universal", *flags, "--levels", "2,1", str(tmp_path / "photo.png"), "-o", str(tmp_path / "out"),
                     "--name", "{style}.png", "--json")  # fmt: skip
        assert result.returncode == 0, result.stderr
        outputs[label] = next((tmp_path / "out").glob("*.png"))
        with Image.open(outputs[label]) as image:
            assert image.size == (40, 32)
            outputs[label] = (outputs[label].name, np.asarray(image, dtype=np.float32))
        for path in (tmp_path / "out").glob("*.png"):
            path.unlink()
    assert outputs["one"][0] == "starry-night.png" and outputs["mix"][0] == outputs["regions"][0] == "starry-night+the-kiss.png"
    assert np.abs(outputs["one"][1] - outputs["mix"][1]).mean() > 1
    assert np.abs(outputs["mix"][1] - outputs["regions"][1]).mean() > 1


def test_every_bundled_painting_has_its_statistics_at_every_level():
    from nstcli import model_format as fmt, styles

    painted = [preset for preset in styles.list_presets() if "painting" in preset.data]
    assert len(painted) >= 8
    for preset in painted:
        path = preset.model("universal").path
        assert path.name == f"{preset.name}.npz"
        stats = load_painting_stats(str(path), [4, 3, 2, 1], fmt.UNIVERSAL_STYLE_SIZE)
        assert all(np.isfinite(level.colouring).all() and np.abs(level.colouring).max() > 0 for level in stats.values())


def test_universal_flags_without_universal_transfer_are_refused(tmp_path):
    """--style-size, --universal-model and --int8 say how paintings are measured and painted: a trained model ignores them."""
    photo().save(tmp_path / "photo.png")
    given = ((["--style-size", "128"], "--style-size"), (["--universal-model", str(tmp_path)], "--universal-model"),
             (["--no-int8"], "--int8/--no-int8"))  # fmt: skip
    for flags, name in given:
        result = nst("apply", "--style", "starry-night", str(tmp_path / "photo.png"), "-o", str(tmp_path / "out.png"), *flags)
        assert_one_line_error(result, 2, f"{name} goes with --style-image or --kind universal")
    assert not (tmp_path / "out.png").exists()
