"""images.py: decoding every kind of input, refusing bad ones, writing atomically."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nstcli import images
from nstcli.errors import InputError, UsageError
from tests.conftest import gradient_image


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` but carries (almost) no pixel data: a bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def saved(image: Image.Image, path: Path, **options) -> Path:
    image.save(path, **options)
    return path


@pytest.mark.parametrize("mode", ["L", "RGBA", "LA", "P", "CMYK", "I;16", "1"])
def test_every_mode_becomes_rgb(tmp_path: Path, mode: str) -> None:
    source = gradient_image().convert("RGBA" if mode in ("LA",) else "RGB")
    converted = source.convert(mode) if mode != "I;16" else Image.fromarray(
        np.asarray(source.convert("L"), dtype=np.uint16) * 257
    )
    suffix = ".tiff" if mode == "CMYK" else ".png"
    image = images.read_image(saved(converted, tmp_path / f"in{suffix}"))
    assert image.mode == "RGB" and image.size == (48, 32)


def test_sixteen_bit_keeps_full_range(tmp_path: Path) -> None:
    ramp = np.linspace(0, 65535, 64, dtype=np.uint16).reshape(8, 8)
    image = images.read_image(saved(Image.fromarray(ramp), tmp_path / "deep.png"))
    values = np.asarray(image)[..., 0]
    assert values.min() == 0 and values.max() == 255


def test_alpha_is_composited_over_white(tmp_path: Path) -> None:
    clear = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert np.asarray(images.read_image(saved(clear, tmp_path / "clear.png"))).min() == 255


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = saved(gradient_image(48, 32), tmp_path / "rotated.jpg", exif=exif.tobytes())
    assert images.read_image(path).size == (32, 48)


def test_animated_gif_gives_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    assert np.asarray(images.read_image(path))[0, 0].tolist() == [255, 0, 0]


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "empty file"),
        (b"hello, I am text", "not a recognised image"),
        (None, "cannot decode"),  # truncated PNG, filled in below
    ],
)
def test_bad_files_raise_input_error(tmp_path: Path, data: bytes | None, fragment: str) -> None:
    if data is None:
        buffer = io.BytesIO()
        gradient_image().save(buffer, "PNG")
        data = buffer.getvalue()[: len(buffer.getvalue()) // 2]
    path = tmp_path / "bad.jpg"
    path.write_bytes(data)
    with pytest.raises(InputError, match=fragment):
        images.read_image(path)


def test_missing_and_directory_inputs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        images.read_image(tmp_path / "missing.png")
    with pytest.raises(InputError, match="is a directory"):
        images.read_image(tmp_path)


def test_decompression_bomb_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(100_000, 100_000))
    with pytest.raises(InputError, match="over the limit"):
        images.read_image(path)


def test_resize_long_side_keeps_aspect() -> None:
    assert images.resize_long_side(gradient_image(300, 200), 150).size == (150, 100)
    assert images.resize_long_side(gradient_image(20, 1000), 100).size == (2, 100)


def test_write_is_atomic_and_refuses_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    images.write_image(gradient_image(), out)
    assert Image.open(out).size == (48, 32)
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]  # no temporary files left
    with pytest.raises(UsageError, match="already exists"):
        images.check_output_path(out, [], overwrite=False)
    images.check_output_path(out, [], overwrite=True)
    with pytest.raises(UsageError, match="also an input"):
        images.check_output_path(out, [out], overwrite=True)


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot write"):
        images.write_bytes_atomic(b"data", Path("/proc/nst-cannot-write-here.png"))
    with pytest.raises(UsageError, match="does not exist"):
        images.check_output_path(tmp_path / "no" / "such" / "out.png", [], overwrite=False)


def test_format_by_suffix_or_flag() -> None:
    assert images.format_for("a.JPG") == "JPEG"
    assert images.format_for("-") == "PNG"
    assert images.format_for("a.bin", "webp") == "WEBP"
    with pytest.raises(UsageError, match="unknown image suffix"):
        images.format_for("a.xyz")


def test_png_written_fast_is_still_lossless(tmp_path: Path) -> None:
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8), "RGB")
    images.write_image(noisy, tmp_path / "out.png")
    with Image.open(tmp_path / "out.png") as written:
        assert written.format == "PNG"
        assert np.array_equal(np.asarray(written.convert("RGB")), np.asarray(noisy))
