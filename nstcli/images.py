"""Reading and writing images: the only place that touches image files.

Torch is not imported at module level so that commands that never need it (``nst apply``,
``nst --help``) start fast; the two tensor helpers import it when called.
"""

from __future__ import annotations

import errno
import io
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from nstcli.errors import InputError, UsageError

if TYPE_CHECKING:
    import torch

STDIO = "-"
# The temporary file write_bytes_atomic renames into place: .NAME.nst-XXXXXXXX.part (tempfile's 8 characters).
TEMP_NAME = re.compile(r"\.(?P<target>.+)\.nst-[a-z0-9_]{8}\.part")
# Larger images are refused before decoding (decompression bombs); 16k x 16k.
MAX_PIXELS = 16384 * 16384
# Pillow's own bomb check would raise a different error first; ours is the one that counts.
Image.MAX_IMAGE_PIXELS = None

# mkstemp creates files readable by their owner only; outputs get the usual 0666 & ~umask instead.
# Read once at import, while single-threaded (os.umask can only be read by setting it).
_UMASK = os.umask(0o022)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK

FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}
# Image suffixes nst reads or meets but does not write: a new -o named so is a mistake, not a folder's name.
OTHER_IMAGE_SUFFIXES = frozenset({".gif", ".heic", ".heif", ".avif", ".jxl", ".jp2", ".ico", ".svg", ".tga", ".psd", ".ppm", ".pgm", ".pbm", ".exr", ".hdr", ".dng"})  # fmt: skip
IMAGE_EXTENSIONS = frozenset(FORMATS) | OTHER_IMAGE_SUFFIXES


def _read_bytes(source: str | Path) -> bytes:
    if str(source) == STDIO:
        data = sys.stdin.buffer.read()
        if not data:
            raise InputError("stdin: no image data")
        return data
    path = Path(source)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not an image") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read ({error.strerror or error})") from None
    if not data:
        raise InputError(f"{path}: empty file")
    return data


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any mode (palette, grayscale, 16-bit, CMYK, alpha) to 8-bit RGB; alpha goes over white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        wide = np.asarray(image, dtype=np.float64)
        top = 65535.0 if wide.max() > 255 else 255.0
        image = Image.fromarray(np.clip(wide / top * 255.0 + 0.5, 0, 255).astype(np.uint8))
    elif image.mode == "F":
        image = Image.fromarray(np.clip(np.asarray(image) * 255.0 + 0.5, 0, 255).astype(np.uint8))
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def transparency(image: Image.Image) -> Image.Image | None:
    """The alpha channel (mode L) of an image that has one and uses it, else None."""
    if image.mode not in ("RGBA", "LA", "PA", "RGBa", "La") and not (image.mode == "P" and "transparency" in image.info):
        return None
    alpha = image.convert("RGBA").getchannel("A")
    return None if alpha.getextrema() == (255, 255) else alpha


# Output formats that keep an alpha channel (a transparent input's transparency is carried over to them).
ALPHA_FORMATS = ("PNG", "WEBP", "TIFF")


def with_alpha(image: Image.Image, alpha: Image.Image | None, format_name: str) -> Image.Image:
    """``image`` made transparent where ``alpha`` (an input's, resized to it) says, when ``format_name`` can
    store that; else ``image`` as it is (JPEG, BMP: the white ground the input was stylised over)."""
    if alpha is None or format_name not in ALPHA_FORMATS:
        return image
    rgba = image.convert("RGBA")
    rgba.putalpha(alpha if alpha.size == image.size else alpha.resize(image.size, Image.Resampling.LANCZOS))
    return rgba


@dataclass(frozen=True)
class Decoded:
    """An upright 8-bit RGB image plus what a writer may want to carry over from the source."""

    image: Image.Image
    format: str | None  # Pillow format of the source, e.g. "JPEG"
    icc_profile: bytes | None  # the source's ICC profile when it describes RGB data, else None
    alpha: Image.Image | None = None  # the source's transparency (mode L) when some pixel has any, else None


def decode_image(source: str | Path | bytes, max_pixels: int = MAX_PIXELS, at_least: int | None = None) -> Decoded:
    """Like ``read_image``, but also return the source format and its RGB ICC profile.

    ``at_least``: the caller shrinks the image to fit a square of this side anyway, so a JPEG may be decoded
    at a reduced scale (1/2, 1/4, 1/8, in the DCT) that still covers it; other formats decode in full."""
    name = "image data" if isinstance(source, bytes) else ("stdin" if str(source) == STDIO else str(source))
    data = source if isinstance(source, bytes) else _read_bytes(source)
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise InputError(f"{name}: not a recognised image file") from None
    except (OSError, ValueError, SyntaxError) as error:
        raise InputError(f"{name}: cannot decode image ({error})") from None
    width, height = image.size
    if width * height > max_pixels:
        raise InputError(
            f"{name}: {width}x{height} is over the limit of {max_pixels} pixels (possible decompression bomb)"
        )
    source_format = image.format
    icc_profile = image.info.get("icc_profile")
    # A CMYK or grey profile would mislabel the RGB pixels we produce: keep only RGB ones.
    if not (isinstance(icc_profile, bytes) and icc_profile[16:20] == b"RGB "):
        icc_profile = None
    try:
        image.seek(0)  # animated images: the first frame
        if at_least is not None and image.format == "JPEG":
            image.draft(image.mode, (at_least, at_least))
        image.load()
        image = ImageOps.exif_transpose(image)
        return Decoded(_to_rgb(image), source_format, icc_profile, transparency(image))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise InputError(f"{name}: cannot decode image ({error})") from None


def read_image(source: str | Path | bytes, max_pixels: int = MAX_PIXELS, at_least: int | None = None) -> Image.Image:
    """Decode a file, '-' (stdin) or raw bytes into an upright 8-bit RGB image (``at_least``: see ``decode_image``).

    Raises InputError with a one-line message for anything that is not a usable image.
    """
    return decode_image(source, max_pixels, at_least).image


def resize_long_side(image: Image.Image, size: int) -> Image.Image:
    """Scale so that the longer side is ``size`` pixels (aspect kept, at least 1 px a side)."""
    width, height = image.size
    scale = size / max(width, height)
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if new_size == image.size:
        return image
    return image.resize(new_size, Image.Resampling.LANCZOS)


def format_for(path: str | Path, format_name: str | None = None) -> str:
    """Pillow format name from an explicit --format or the output suffix ('-' defaults to PNG); a --format
    that contradicts the name's image suffix (``-o out.png --format jpg``) is refused, not written as JPEG."""
    suffix = Path(path).suffix.lower() if str(path) != STDIO else ""
    if format_name:
        key = "." + format_name.lower().lstrip(".")
        if key not in FORMATS:
            raise UsageError(f"unknown image format {format_name!r} (choose from png, jpg, webp, bmp, tiff)")
        if suffix in FORMATS and FORMATS[suffix] != FORMATS[key]:
            raise UsageError(f"{path}: named {suffix}, but --format is {format_name}; make them match or leave --format out")
        return FORMATS[key]
    if str(path) == STDIO:
        return "PNG"
    if suffix not in FORMATS:
        raise UsageError(f"{path}: unknown image suffix {suffix or '(none)'!r}; use .png, .jpg, .webp, .bmp, .tiff or --format")
    return FORMATS[suffix]


# zlib level 1, as OpenCV writes PNG: on stylised images 2.5x faster to encode than Pillow's default 6
# (32 against 79 ms at 768x512), for 6.5% more bytes
PNG_COMPRESS_LEVEL = 1


def encode_image(image: Image.Image, format_name: str, quality: int = 95, icc_profile: bytes | None = None) -> bytes:
    buffer = io.BytesIO()
    options: dict[str, object] = {"quality": quality} if format_name in ("JPEG", "WEBP") else {}
    if format_name == "PNG":
        options["compress_level"] = PNG_COMPRESS_LEVEL
    if icc_profile and format_name in ("JPEG", "PNG", "WEBP", "TIFF"):
        options["icc_profile"] = icc_profile
    image.save(buffer, format=format_name, **options)
    return buffer.getvalue()


def check_output_path(output: str | Path, inputs: list[str | Path], overwrite: bool) -> None:
    """Refuse to write over an input (or a file inside an input folder), or over an existing file
    without ``overwrite``."""
    if str(output) == STDIO:
        return
    out = Path(output)
    for source in inputs:
        if str(source) == STDIO or not Path(source).exists() or not out.exists():
            continue
        inside_folder = Path(source).is_dir() and out.resolve().is_relative_to(Path(source).resolve())
        if inside_folder or out.samefile(source):  # a folder of inputs (training photos) counts whole
            raise UsageError(f"{out}: output is also an input; choose another output path")
    if out.exists() and not overwrite:
        raise UsageError(f"{out}: already exists (use --overwrite to replace it)")
    if not out.parent.is_dir() and str(out.parent) != "":
        missing = "is a file, not a folder" if out.parent.exists() else "does not exist"
        raise UsageError(f"{out.parent}: output folder {missing}")
    check_writable_folder(out.parent)


def check_writable_folder(folder: str | Path) -> None:
    """The folder (or the nearest part of it that exists, where it will be created) accepts new files.

    Permissions say no for most folders that refuse files; a file made and removed there finds the rest
    (root passes every permission check, yet /proc or /sys take no new files), before any work is done."""
    existing = Path(folder).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        read_only = existing.is_dir() and os.statvfs(existing).f_flag & os.ST_RDONLY
        reason = os.strerror(errno.EROFS if read_only else errno.EACCES)  # name the real cause
        raise InputError(f"{existing}: cannot write there ({reason})")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".nst-probe-"):
            pass
    except OSError as error:
        raise InputError(f"{existing}: cannot write there (a new file there failed: {error.strerror or error})") from None


def check_outputs(outputs: list[str | Path], inputs: list[str | Path], overwrite: bool) -> None:
    """The rule for every set of files one command writes, checked before any work starts: each is
    not an input, not another of the outputs, not an existing file unless ``overwrite``, in a folder
    that exists; at most one of them is stdout."""
    if [str(output) for output in outputs].count(STDIO) > 1:
        raise UsageError("only one output can go to stdout")
    seen: dict[Path, str] = {}
    for output in outputs:
        if str(output) == STDIO:
            continue
        resolved = Path(output).resolve()
        if resolved in seen:
            raise UsageError(f"{output}: written twice by this run (also as {seen[resolved]}); choose distinct paths")
        seen[resolved] = str(output)
        check_output_path(output, inputs, overwrite)


def write_bytes_atomic(data: bytes, path: str | Path) -> None:
    """Write to a temporary file beside ``path`` and rename it into place: never a partial file."""
    if str(path) == STDIO:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    temp_name = None
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{target.name}.nst-", suffix=".part", delete=False) as temp:
            temp_name = temp.name
            os.fchmod(temp.fileno(), FILE_MODE)
            temp.write(data)
            temp.flush()
            os.fsync(temp.fileno())
        os.replace(temp_name, target)
    except BaseException as error:  # a failed write or an interrupt (Ctrl-C, SIGTERM): no part file stays
        if temp_name is not None and os.path.exists(temp_name):
            os.unlink(temp_name)
        if isinstance(error, OSError):
            raise InputError(f"{target}: cannot write ({error.strerror or error})") from None
        raise


def write_image(image: Image.Image, path: str | Path, format_name: str | None = None, quality: int = 95) -> None:
    """Encode by suffix (or ``format_name``) and write atomically; '-' writes to stdout."""
    write_bytes_atomic(encode_image(image, format_for(path, format_name), quality), path)


def to_array(image: Image.Image) -> np.ndarray:
    """RGB image -> float32 array (H, W, 3) in 0..1."""
    return np.asarray(image, dtype=np.float32) / 255.0


def mask_array(mask: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """A mask image (white = inside; colour images count by luminance) as (H, W) float32 in 0..1 at ``size`` (W, H)."""
    grey = mask.convert("L").resize(size, Image.Resampling.BILINEAR)
    return np.asarray(grey, dtype=np.float32) / 255.0


def from_array(array: np.ndarray) -> Image.Image:
    """Float array (H, W, 3) in 0..1 -> RGB image (values clipped, rounded). Non-finite values are
    an error: a NaN would silently become a black pixel."""
    if not np.isfinite(array).all():
        raise InputError("the result has non-finite pixels (NaN or infinity); nothing was written")
    return Image.fromarray(np.clip(array * 255.0 + 0.5, 0, 255).astype(np.uint8), "RGB")


def to_tensor(image: Image.Image) -> "torch.Tensor":
    """RGB image -> float32 tensor (1, 3, H, W) in 0..1."""
    import torch

    return torch.from_numpy(to_array(image)).permute(2, 0, 1).unsqueeze(0).contiguous()


def from_tensor(tensor: "torch.Tensor") -> Image.Image:
    """Tensor (1, 3, H, W) or (3, H, W) in 0..1 -> RGB image."""
    array = tensor.detach().float().cpu().squeeze(0).permute(1, 2, 0).numpy()
    return from_array(array)
