"""A corpus of awkward and broken image files, generated in code (no committed binaries).

Each case is a file name, its bytes and what a reader must do with it: ``"ok"`` (decode to a
usable RGB image) or ``"error"`` (refuse with an InputError). Used by tests/test_audit_inputs.py
and bench/fuzz.py.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageCms


@dataclass(frozen=True)
class Case:
    name: str  # file name, suffix included
    data: bytes
    expect: str  # "ok" or "error"


def picture(width: int = 24, height: int = 16, seed: int = 0) -> Image.Image:
    """A small colourful RGB picture."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(width, height, 1)
    pixels = np.stack([x, y, 0.5 + 0.4 * np.sin(6 * x)], axis=-1) + rng.normal(0, 0.03, (height, width, 3))
    return Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8), "RGB")


def encode(image: Image.Image, format_name: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format_name, **options)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares ``width`` x ``height`` (RGB, 8-bit) with one empty IDAT: a bomb's header."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def animated(format_name: str) -> bytes:
    frames = [picture(seed=seed) for seed in range(3)]
    return encode(frames[0], format_name, save_all=True, append_images=frames[1:], duration=50, loop=0)


def exif_rotated() -> bytes:
    """A 24x16 JPEG whose EXIF orientation (6: rotate 90 CW) makes it 16x24 upright."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(picture(), "JPEG", exif=exif.tobytes())


def huge_icc_jpeg(megabytes: float = 1.0) -> bytes:
    """A JPEG carrying an RGB ICC profile padded to about ``megabytes`` (split over many APP2 segments)."""
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    padded = srgb + b"\0" * int(megabytes * 1e6)
    return encode(picture(), "JPEG", icc_profile=padded)


def sixteen_bit() -> bytes:
    ramp = (np.arange(16 * 24, dtype=np.uint16).reshape(16, 24) * 170).astype(np.uint16)
    return encode(Image.fromarray(ramp), "PNG")  # uint16 -> mode I;16


def cmyk_jpeg() -> bytes:
    return encode(picture().convert("CMYK"), "JPEG")


def palette_png() -> bytes:
    image = picture().convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    return encode(image, "PNG", transparency=0)


def corpus() -> list[Case]:
    """Every case, in a fixed order."""
    png = encode(picture(), "PNG")
    jpeg = encode(picture(), "JPEG")
    return [
        Case("zero-byte.png", b"", "error"),
        Case("truncated.jpg", jpeg[: len(jpeg) // 2], "error"),
        Case("truncated.png", png[: len(png) // 2], "error"),
        Case("text.jpg", b"this is a text file, not a JPEG\n" * 4, "error"),
        Case("png-named.jpg", png, "ok"),
        Case("no-suffix", png, "ok"),
        Case("bomb.png", png_header_only(100_000, 100_000), "error"),
        Case("bomb-wide.png", png_header_only(2**31 - 1, 1), "error"),
        Case("one-pixel.png", encode(picture(1, 1), "PNG"), "ok"),
        Case("thin-1x10000.png", encode(picture(1, 10_000), "PNG"), "ok"),
        Case("sixteen-bit.png", sixteen_bit(), "ok"),
        Case("cmyk.jpg", cmyk_jpeg(), "ok"),
        Case("palette.png", palette_png(), "ok"),
        Case("grey-alpha.png", encode(picture().convert("LA"), "PNG"), "ok"),
        Case("rgba.png", encode(picture().convert("RGBA"), "PNG"), "ok"),
        Case("animated.gif", animated("GIF"), "ok"),
        Case("animated.webp", animated("WEBP"), "ok"),
        Case("exif-rotated.jpg", exif_rotated(), "ok"),
        Case("huge-icc.jpg", huge_icc_jpeg(), "ok"),
        Case("ünïcödé name ☃.png", png, "ok"),
    ]


def write_corpus(folder) -> dict[str, Case]:
    """Write every case into ``folder``; returns them by name."""
    cases = {case.name: case for case in corpus()}
    for case in cases.values():
        (folder / case.name).write_bytes(case.data)
    return cases
