"""Content photos for training: a folder scanned recursively, decoded robustly, cropped.

Unreadable files never crash a run: files whose header cannot be read are dropped (and counted)
when the folder is scanned; a file that fails later, while decoding, is replaced by the next
readable one and counted in the batch (``skipped``), so the trainer can report it.

Randomness is a pure function of (seed, epoch, index): the order of each epoch comes from
:class:`EpochSampler` and each crop from its own generator. So a run is reproducible whatever
the number of workers, and resuming at a data position continues exactly.

Each crop is a random square of the photo, between ``crop_scale`` and all of its short side,
resized to the training size: with a small folder, crops at several scales are what keep the
generator from learning its few photos by heart. Decoded photos are kept in memory (per worker)
up to :data:`CACHE_PIXELS`, as decoding a PNG costs more than the crop itself.
"""

from __future__ import annotations

import hashlib
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset, Sampler

from nstcli import images
from nstcli.errors import InputError, NstError

SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
CACHE_PIXELS = 32 * 2**20  # decoded photos kept per data worker (~100 MB of RGB)


@dataclass
class ScanResult:
    files: list[Path]
    unreadable: int  # files with an image suffix whose header could not be read

    def fingerprint(self, root: Path) -> str:
        """Identifies the file list, so a resumed run can check it trains on the same data."""
        names = "\n".join(str(path.relative_to(root)) for path in self.files)
        return hashlib.sha1(names.encode()).hexdigest()[:16]


def _header_ok(path: Path) -> bool:
    try:
        with Image.open(path) as image:
            width, height = image.size
        return width * height <= images.MAX_PIXELS and path.stat().st_size > 0
    except (OSError, ValueError, SyntaxError, UnidentifiedImageError):
        return False


def scan_folder(folder: str | Path, max_images: int | None = None) -> ScanResult:
    """Image files under ``folder`` (recursive, sorted), the first ``max_images`` readable ones."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    candidates = sorted(path for path in root.rglob("*") if path.suffix.lower() in SUFFIXES and path.is_file())
    if not candidates:
        raise InputError(f"{root}: no images ({', '.join(SUFFIXES)}) found")
    files, unreadable = [], 0
    for path in candidates:
        if max_images is not None and len(files) >= max_images:
            break
        if _header_ok(path):
            files.append(path)
        else:
            unreadable += 1
    if not files:
        raise InputError(f"{root}: none of the {len(candidates)} image files could be read")
    return ScanResult(files, unreadable)


def random_crop(image: Image.Image, size: int, generator: torch.Generator, crop_scale: float = 1.0) -> Image.Image:
    """A random square covering ``crop_scale``..1 of the short side (uniform), resized to ``size`` x ``size``."""
    width, height = image.size
    short = min(width, height)
    fraction = 1.0
    if crop_scale < 1:
        fraction = crop_scale + (1 - crop_scale) * float(torch.rand((), generator=generator))
    side = max(1, round(short * fraction))
    left = int(torch.randint(0, width - side + 1, (1,), generator=generator))
    top = int(torch.randint(0, height - side + 1, (1,), generator=generator))
    box = (left, top, left + side, top + side)
    return image.resize((size, size), Image.Resampling.BILINEAR, box=box, reducing_gap=2.0)


class ContentImages(Dataset):
    """Item ``(epoch, index)`` -> (image tensor (3, size, size) in 0..1, number of files skipped)."""

    def __init__(self, files: list[Path], size: int, seed: int, crop_scale: float = 1.0):
        self.files = files
        self.size = size
        self.seed = seed
        self.crop_scale = crop_scale
        self.decoded: dict[Path, Image.Image] = {}
        self.decoded_pixels = 0

    def __len__(self) -> int:
        return len(self.files)

    def read(self, path: Path) -> Image.Image:
        """``path`` decoded, from memory when it was read before and the cache had room."""
        if path in self.decoded:
            return self.decoded[path]
        image = images.read_image(path)
        pixels = image.width * image.height
        if self.decoded_pixels + pixels <= CACHE_PIXELS:
            self.decoded[path] = image
            self.decoded_pixels += pixels
        return image

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        epoch, index = key
        for attempt in range(len(self.files)):
            path = self.files[(index + attempt) % len(self.files)]
            try:
                image = self.read(path)
            except NstError:
                continue
            generator = torch.Generator().manual_seed(((self.seed * 1_000_003 + epoch) * 1_000_003 + index) % 2**63)
            crop = random_crop(image, self.size, generator, self.crop_scale)
            return images.to_tensor(crop)[0], attempt
        raise InputError("none of the training images could be decoded")


class StreamSampler(Sampler):
    """An endless stream of keys (epoch, index): each epoch a seeded random order, this rank's share.

    ``start`` counts the items this rank has already consumed, so a resumed run continues at the
    same place. With several ranks each epoch's order is padded (repeating its start) to a multiple
    of ``world``, so every rank sees the same number of items, as torch's DistributedSampler does.
    """

    def __init__(self, count: int, seed: int, start: int = 0, rank: int = 0, world: int = 1):
        self.count, self.seed, self.start, self.rank, self.world = count, seed, start, rank, world

    def per_rank(self) -> int:
        """Items each rank sees per epoch."""
        return -(-self.count // self.world)

    def epoch_keys(self, epoch: int) -> list[tuple[int, int]]:
        generator = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) % 2**63)
        order = torch.randperm(self.count, generator=generator).tolist()
        order = (order * self.world)[: self.per_rank() * self.world]
        return [(epoch, index) for index in order[self.rank :: self.world]]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, position = divmod(self.start, self.per_rank())
        while True:
            yield from self.epoch_keys(epoch)[position:]
            epoch, position = epoch + 1, 0


def collate(items: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, int]:
    return torch.stack([image for image, _ in items]), sum(skipped for _, skipped in items)


def ignore_stop_signals(worker_id: int) -> None:  # noqa: ARG001 - DataLoader's worker_init_fn signature
    """Leave Ctrl-C and SIGTERM to the trainer: a terminal's Ctrl-C (or ``kill -TERM -PGID``) signals the
    whole process group, and a worker that died of it would end the run with a lost-worker error
    before the trainer could write its checkpoint. Workers still exit when the trainer does."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
