"""``nst apply --style-image PAINTING``: universal style transfer (Li et al. 2017) with any painting, torch-free.

A folder of ONNX graphs (:mod:`nstcli.universal_export`; the bundled one is ``styles/universal``) holds
the VGG19 encoder in stages and one decoder per level. For each photo, coarse to fine over the chosen
levels (relu4_1 first): encode the current image down to the level, whiten its features and colour
them with the paintings' statistics (:mod:`nstcli.wct`, numpy, blended by ``strength``), decode back
to an image. The paintings' statistics are computed once, when the model is built, for the whole run, and kept
for later runs (:mod:`nstcli.apply.painting_cache`: a shell loop measures its painting once); a painting given as a
statistics file (``.npz``, :func:`save_painting_stats`: a bundled style's, for ``--kind
universal``) is read instead, so the painting itself is not needed.

:class:`UniversalModel` offers what :class:`nstcli.apply.stylizer.Stylizer` uses of a model (``run``,
``run_tiled``, ``info``, ``providers``), so files, folders, globs, stdin and videos work as with any
model. Photos above the tiling threshold go level by level in tiles: at each level the tiles are encoded once
to gather the whole image's statistics (``wct.Moments``), then again through the one WCT map to be decoded,
each with a margin wider than the networks' reach, so the tiles show no seams.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nstcli import images, model_format as fmt, regions as regions_, wct
from nstcli.apply.bundled import UNIVERSAL_FOLDER
from nstcli.apply import painting_cache
from nstcli.apply.level_one import FirstStage, LinearDecoder
from nstcli.apply.model import LABEL_JOIN, safe_label
from nstcli.apply.runtime import GPU_PROVIDERS, load_session
from nstcli.errors import InputError, UsageError
from nstcli.settings import check_blend_length
from nstcli.styles import styles_root

ALL_LEVELS = (4, 3, 2, 1)  # coarse to fine
# relu4_1 is left out by default: its bundled decoder is the least trained (18 dB on held-out photos), and
# through it the photo's shapes dissolve; --levels 4,3,2,1 asks for it.
DEFAULT_LEVELS = (3, 2, 1)
SIZE_MULTIPLE = 8
# The least side an image is padded to: its relu4_1 map (1/8 of it) must be 2 x 2 at least, for the decoders'
# reflection padding (a 1 x 1 map made onnxruntime refuse a photo of 16 px or less at --levels 4)
MIN_SIDE = 16
# Levels from COARSE_LEVEL up run on the photo at COARSE_SCALE of its size: their features are coarse (a
# relu4_1 position covers 8 x 8 pixels), decoding them is blurry at any size, and the finer levels that
# follow at full size paint the detail; it takes three quarters of the work off the two costliest levels.
COARSE_LEVEL = 3
COARSE_SCALE = 0.5
# Tiles (photos over the tiling threshold) are encoded and decoded with at least this margin, in pixels of the
# level's image, around the part they paint: more than the encoder's and decoder's reach at that level (by
# counting their 3x3 convs and poolings, about 2, 10, 25 and 80 px; level 1's is the least a multiple of 8 allows),
# so a tile's core is what the whole image gives there (tests/apply/test_universal.py compares tiles with the whole image).
TILE_MARGIN = {1: 8, 2: 32, 3: 64, 4: 128}
# Level 1 runs in tiles of this side on every photo: its relu1_1 map (64 channels at full size: 46 MB at 512 px,
# 0.7 GB at 2048 px) never exists whole, and each tile's piece is encoded and decoded while it is in the cache:
# a 512 px photo's level 1 took 61-65 ms instead of 83-92 ms in a one-photo run (docs/universal.md). Its
# statistics come from the sample grid alone (apply/level_one.FirstStage), or, without that, from a first pass
# over the tiles.
FINE_TILE = 176
# A painting's statistics stored in a file (numpy's .npz) instead of the painting: per level its features' mean
# (float32) and colouring matrix (float16: 77 dB from float32 on a stylised photo, half the bytes), and the
# style size it was measured at.
STATS_SUFFIX = ".npz"


@dataclass
class UniversalInfo:
    path: str
    styles: list[str]  # the paintings' file stems (a statistics file's stem: the style it holds)
    levels: list[int]  # the decoders the folder has
    precision: str
    arch: str = "universal"
    size_multiple: int = SIZE_MULTIPLE
    has_style_weights: bool = False


def available_levels(folder: str | Path) -> list[int]:
    """The levels with both their decoder and every encoder stage down to them, deepest first."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder of universal models")
    stages = {level for level in range(1, 5) if (folder / fmt.universal_file("encoder", level)).is_file()}
    found = [level for level in ALL_LEVELS if (folder / fmt.universal_file("decoder", level)).is_file() and set(range(1, level + 1)) <= stages]
    if not found:
        raise InputError(f"{folder}: no universal models (encoder_K.onnx and decoder_K.onnx; see nst train --arch universal)")
    return found


def padded_size(height: int, width: int) -> tuple[int, int]:
    """The size :func:`pad` gives an image: each side a multiple of 8, and at least MIN_SIDE."""
    return max(MIN_SIDE, -(-height // SIZE_MULTIPLE) * SIZE_MULTIPLE), max(MIN_SIDE, -(-width // SIZE_MULTIPLE) * SIZE_MULTIPLE)


def pad(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> (1, 3, H', W') of :func:`padded_size` (reflect; edge when too small to reflect)."""
    height, width = image.shape[:2]
    padded_height, padded_width = padded_size(height, width)
    pad_h, pad_w = padded_height - height, padded_width - width
    nchw = np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32)
    if pad_h or pad_w:
        mode = "reflect" if height > pad_h and width > pad_w else "edge"
        nchw = np.pad(nchw, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)), mode=mode)
    return nchw


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A float (H, W, 3) image at ``size`` (width, height), bilinear (antialiased when shrinking)."""
    if image.shape[1::-1] == size:
        return image
    channels = [
        np.asarray(images.Image.fromarray(np.ascontiguousarray(image[..., c]), mode="F").resize(size, images.Image.Resampling.BILINEAR))
        for c in range(image.shape[2])
    ]  # fmt: skip
    return np.stack(channels, axis=-1)


def read_painting(path: str, size: int) -> np.ndarray:
    """A painting as (H, W, 3) in 0..1, resized so its long side is ``size`` and both sides are multiples of 8.

    Tiny paintings are enlarged and huge ones reduced alike, so every level has features to measure;
    greyscale and transparent images arrive as RGB (on white) from :func:`nstcli.images.read_image`.
    """
    image = images.read_image(path, at_least=size)  # a large JPEG decodes at 1/2, 1/4 or 1/8 scale (>= size a side)
    scale = size / max(image.size)
    width, height = (max(SIZE_MULTIPLE, round(side * scale / SIZE_MULTIPLE) * SIZE_MULTIPLE) for side in image.size)
    return images.to_array(image.resize((width, height), images.Image.Resampling.LANCZOS))


class UniversalModel:
    """The encoder stages and decoders of one folder, and the paintings' statistics at every level used."""

    def __init__(self, folder: str, paintings: list[str], style_size: int, blend: list[float] | None = None,
                 strength: float = 1.0, levels: list[int] | None = None, provider: str = "auto", threads: int = 0,
                 regions: list[regions_.Region] | None = None, int8: bool = True) -> None:  # fmt: skip
        found = available_levels(folder)
        levels = sorted(set(levels or [level for level in DEFAULT_LEVELS if level in found] or found), reverse=True)
        missing = [level for level in levels if level not in found]
        if missing:
            raise UsageError(f"--levels: {folder} has levels {','.join(map(str, found))}, not {','.join(map(str, missing))}")
        self.levels, self.strength = levels, strength
        self.weights = _blend_weights(blend, len(paintings))
        # --region: each region's painting (index into paintings) and the masks' shares, fused per level
        self.region_paintings = region_paintings(regions, paintings, blend) if regions else None
        self.shares = regions_.RegionWeights(regions) if regions else None
        folder_path = Path(folder)
        self.decoders = {level: self._load(folder_path / fmt.universal_file("decoder", level), provider, threads) for level in levels}
        self.providers = self.decoders[levels[0]].get_providers()
        self.on_gpu = self.providers[0] in GPU_PROVIDERS
        # on the CPU, the stages the folder has in int8 compute in int8 (universal_export: faster, 34-46 dB from
        # the float32 stages' result); GPUs run the float32 ones
        stages = [self._stage(folder_path, level, int8 and not self.on_gpu) for level in range(1, levels[0] + 1)]
        self.encoders = [self._load(path, provider, threads) for path in stages]
        self.int8_levels = [level for level, path in enumerate(stages, 1) if path.name == fmt.universal_file("encoder", level, True)]
        meta = self.decoders[levels[0]].get_modelmeta().custom_metadata_map
        self.info = UniversalInfo(folder, [Path(path).stem for path in paintings], found, meta.get(fmt.META_PRECISION, "?"))
        self.style_passes = 0  # paintings measured (not read from a statistics file or the cache)
        self.stats = self._style_statistics(paintings, style_size, stages)
        # Level 1 in numpy where it saves work (apply/level_one): relu1_1 on the statistics' sample grid only, and
        # the decoder (one 3x3 conv) with the WCT map folded in
        self.first_stage = FirstStage.from_session(self.encoders[0]) if 1 in self.decoders else None
        self.linear = LinearDecoder.probe(self.decoders[1], wct_channels(1)) if 1 in self.decoders else None

    @staticmethod
    def _stage(folder: Path, level: int, int8: bool) -> Path:
        """Encoder stage ``level``'s file: its int8-compute twin when wanted and there, else the float32 one."""
        twin = folder / fmt.universal_file("encoder", level, int8_compute=True)
        return twin if int8 and twin.is_file() else folder / fmt.universal_file("encoder", level)

    def _load(self, path: Path, provider: str, threads: int) -> object:
        # not spinning: between the runs numpy works (WCT), and spinning threads took its core (on 2 busy
        # cores, in-process, one 512 px photo's set-up and stylising took 1.6-2x as long; see the README)
        session = load_session(str(path), provider, threads, spin=False)[0]
        meta = session.get_modelmeta().custom_metadata_map
        if meta.get(fmt.META_ARCH) != "universal":
            raise InputError(f"{path}: not an nst universal model ({fmt.META_ARCH} is {meta.get(fmt.META_ARCH)!r})")
        return session

    def _style_statistics(self, paintings: list[str], size: int, stages: list[Path]) -> dict[int, list[wct.StyleStats]]:
        """Every painting's statistics at every level used: computed once for the run (read from a statistics file,
        or from the cache of paintings measured by earlier runs: apply/painting_cache)."""
        stats: dict[int, list[wct.StyleStats]] = {level: [] for level in self.levels}
        for path in paintings:
            if path.lower().endswith(STATS_SUFFIX):
                measured = load_painting_stats(path, self.levels, size)
            else:
                measured = self._measure_painting(path, size, stages)
            for level in self.levels:
                stats[level].append(measured[level])
        return stats

    def _measure_painting(self, path: str, size: int, stages: list[Path]) -> dict[int, wct.StyleStats]:
        """One painting's statistics: from the cache when it holds every level used, else measured and kept."""
        key = painting_cache.painting_key(path, size, stages, self.providers[0])
        kept = painting_cache.load(key) if key else {}
        if all(level in kept for level in self.levels):
            return kept
        self.style_passes += 1
        features = self._encode(pad(read_painting(path, size)), self.levels[0])
        measured = {level: wct.style_stats(features[level - 1][0]) for level in self.levels}
        if key:
            painting_cache.store(key, {**kept, **measured})
        return measured

    def _encode(self, x: np.ndarray, deepest: int) -> list[np.ndarray]:
        features = []
        for session in self.encoders[:deepest]:
            x = session.run([fmt.UNIVERSAL_OUTPUT], {fmt.UNIVERSAL_INPUT: x})[0]
            features.append(x)
        return features

    def select_style(self, style: str | None, mix: dict[str, float] | None) -> str:
        """The label for output file names: the paintings' stems."""
        if style is not None or mix:
            raise UsageError("--style-image paints with the images given: no --style or --mix with it")
        return LABEL_JOIN.join(safe_label(name) for name in self.info.styles)

    def stylise(self, image: np.ndarray) -> np.ndarray:
        """One (H, W, 3) photo in 0..1 -> stylised (H, W, 3) in 0..1."""
        height, width = image.shape[:2]
        x = image
        for level in self.levels:
            at_size = resize(x, _level_size(level, width, height))
            x = self._level_tiled(at_size, level, FINE_TILE, 0) if level == 1 else self._level(at_size, level)
        return np.ascontiguousarray(resize(x, (width, height)))

    def _level(self, x: np.ndarray, level: int) -> np.ndarray:
        """One level of the cascade on a whole (h, w, 3) image: encode, WCT, decode; the next 0..1 image, same size."""
        features = self._encode(pad(x), level)[level - 1][0]
        if self.region_paintings is None:
            decoded = self._decode(level, features, *wct.affine(features, self.stats[level], self.weights, self.strength))
        else:
            shares = _pool_shares(self.shares.at(*x.shape[:2]), level, features.shape[1:])
            styles = [self.stats[level][index] for index in self.region_paintings]
            coloured = wct.transfer_regions(features, styles, shares, self.strength)
            decoded = self.decoders[level].run([fmt.UNIVERSAL_OUTPUT], {fmt.UNIVERSAL_INPUT: coloured[None]})[0][0]
        # the next encoder, like the photo, sees a 0..1 image of the size it was given
        return np.clip(decoded[:, : x.shape[0], : x.shape[1]].transpose(1, 2, 0), 0.0, 1.0)

    def _decode(self, level: int, features: np.ndarray, matrix: np.ndarray, bias: np.ndarray) -> np.ndarray:
        """(C, h, w) features through the WCT map (matrix, bias) and the level's decoder -> (3, h, w)."""
        if level == 1 and self.linear is not None:
            return self.linear.decode(features, matrix, bias)
        mixed = matrix @ features.reshape(features.shape[0], -1)
        mixed += bias[:, None]
        return self.decoders[level].run([fmt.UNIVERSAL_OUTPUT], {fmt.UNIVERSAL_INPUT: mixed.reshape(1, *features.shape)})[0][0]

    def run_tiled(self, image: np.ndarray, tile: int, overlap: int, batch_size: int) -> np.ndarray:
        """A large photo in tiles, each level's WCT map from the whole image's statistics (gathered tile by tile), so
        the tiles share one map; each tile is encoded and decoded with a margin wider than the networks' reach, so
        its core is what the whole image would give there: no seams."""
        height, width = image.shape[:2]
        x = image
        for level in self.levels:
            x = self._level_tiled(resize(x, _level_size(level, width, height)), level, tile, overlap)
        return np.ascontiguousarray(resize(x, (width, height)))

    def _level_tiled(self, x: np.ndarray, level: int, tile: int, overlap: int) -> np.ndarray:
        height, width = x.shape[:2]
        factor = 2 ** (level - 1)  # pixels per feature position
        core = max(SIZE_MULTIPLE, tile // SIZE_MULTIPLE * SIZE_MULTIPLE)
        margin = max(-(-overlap // SIZE_MULTIPLE) * SIZE_MULTIPLE, TILE_MARGIN[level])
        padded = padded_size(height, width)
        tiles = [((top, left, min(top + core, height), min(left + core, width)),
                  (max(0, top - margin), max(0, left - margin), min(height, top + core + margin), min(width, left + core + margin)))
                 for top in range(0, height, core) for left in range(0, width, core)]  # fmt: skip

        regions = self.region_paintings is not None
        shares = self.shares.at(height, width) if regions else None  # the masks' shares at this level's size

        def encode(window: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray | None]:
            """A window's features and, with --region, the shares on their grid."""
            features = self._encode(pad(x[window[0] : window[2], window[1] : window[3]]), level)[level - 1][0]
            if not regions:
                return features, None
            return features, _pool_shares(shares[:, window[0] : window[2], window[1] : window[3]], level, features.shape[1:])

        # 1. the whole image's statistics (each region's, with --region)
        stride = wct.sample_stride(padded[0] // factor, padded[1] // factor)
        if level == 1 and self.first_stage is not None and not regions:
            # relu1_1 on the sample grid only, in numpy, for the whole image at once (its mean too is the grid's)
            measured = [wct.mean_covariance(self.first_stage.sampled(pad(x), stride))]
        else:  # each tile's core (the bottom and right ones with the padding, as the whole image is padded)
            moments = [wct.Moments(wct_channels(level), stride) for _ in (self.region_paintings if regions else [None])]
            for (top, left, bottom, right), window in tiles:
                features, window_shares = encode(window)
                end = (padded[0] if bottom == height else bottom, padded[1] if right == width else right)
                rows = slice((top - window[0]) // factor, (end[0] - window[0]) // factor)
                columns = slice((left - window[1]) // factor, (end[1] - window[1]) // factor)
                for index, accumulator in enumerate(moments):
                    weights = window_shares[index, rows, columns] if regions else None
                    accumulator.add(features[:, rows, columns], (top // factor, left // factor), weights)
            measured = [accumulator.finish() for accumulator in moments]
        if regions:
            styles = [self.stats[level][index] for index in self.region_paintings]
        else:
            matrix, bias = wct.affine(None, self.stats[level], self.weights, self.strength, measured[0])
        # 2. every tile through the one map (one per region); its core into the next image
        result = np.empty_like(x)
        for (top, left, bottom, right), window in tiles:
            features, window_shares = encode(window)
            if regions:
                coloured = wct.transfer_regions(features, styles, window_shares, self.strength, measured)
                decoded = self.decoders[level].run([fmt.UNIVERSAL_OUTPUT], {fmt.UNIVERSAL_INPUT: coloured[None]})[0][0]
            else:
                decoded = self._decode(level, features, matrix, bias)
            rows, columns = slice(top - window[0], bottom - window[0]), slice(left - window[1], right - window[1])
            result[top:bottom, left:right] = decoded[:, rows, columns].transpose(1, 2, 0)
        return np.clip(result, 0.0, 1.0)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) -> stylised (N, H, W, 3); each photo is whitened with its own statistics."""
        return np.stack([self.stylise(image) for image in batch])


def paint_once(photo: images.Image.Image, paintings: list[str], blend: list[float] | None = None) -> images.Image.Image:
    """``photo`` painted with ``paintings`` in one pass by the bundled decoders at their defaults (what
    ``nst apply --style-image`` gives): the start image of ``nst optimize --init universal``."""
    model = UniversalModel(str(styles_root() / UNIVERSAL_FOLDER), paintings, fmt.UNIVERSAL_STYLE_SIZE, blend)
    return images.from_array(model.stylise(images.to_array(photo)))


def save_painting_stats(path: str | Path, stats: dict[int, wct.StyleStats], style_size: int) -> None:
    """Write one painting's statistics (``stats``: level -> its StyleStats) measured at ``style_size``, atomically."""
    arrays = {"style_size": np.array(style_size), **wct.stats_arrays(stats, colouring_dtype=np.float16)}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    images.write_bytes_atomic(buffer.getvalue(), path)


def load_painting_stats(path: str, levels: list[int], style_size: int) -> dict[int, wct.StyleStats]:
    """A painting's statistics at ``levels`` from a file of :func:`save_painting_stats`.

    InputError when the file cannot be read; UsageError when it lacks a level or was measured at another
    style size than ``style_size`` (the painting is not there to measure again)."""
    try:
        with open(path, "rb") as file, np.load(file) as stored:  # numpy left a damaged file open
            measured_at = int(stored["style_size"])
            found = wct.stored_levels(stored)
            stats = wct.stats_from_arrays(stored, [level for level in levels if level in found])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise InputError(f"{path}: not a painting's statistics file ({error})") from None
    if measured_at != style_size:
        raise UsageError(f"{path} was measured at --style-size {measured_at}, not {style_size}: leave --style-size out")
    missing = [level for level in levels if level not in stats]
    if missing:
        raise UsageError(f"--levels: {path} holds levels {','.join(map(str, found))}, not {','.join(map(str, missing))}")
    for level, level_stats in stats.items():
        channels = wct_channels(level)
        if level_stats.mean.shape != (channels,) or level_stats.colouring.shape != (channels, channels):
            raise InputError(f"{path}: level {level} has the wrong shape for the encoder's {channels} channels")
    return stats


def wct_channels(level: int) -> int:
    return (64, 128, 256, 512)[level - 1]


def _pool_shares(shares: np.ndarray, level: int, grid: tuple[int, int]) -> np.ndarray:
    """Region shares (K + 1, H, W) of an image on its level's feature grid: padded as the image is (to the grid
    times 2^(level-1)), averaged over each feature position's 2^(level-1) x 2^(level-1) pixels."""
    factor = 2 ** (level - 1)
    height, width = shares.shape[1:]
    padded = np.pad(shares, ((0, 0), (0, grid[0] * factor - height), (0, grid[1] * factor - width)), mode="edge")
    return padded.reshape(len(shares), grid[0], factor, grid[1], factor).mean(axis=(2, 4))


def _level_size(level: int, width: int, height: int) -> tuple[int, int]:
    """The (width, height) a level works at: half the photo's from COARSE_LEVEL up."""
    scale = COARSE_SCALE if level >= COARSE_LEVEL else 1.0
    return max(1, round(width * scale)), max(1, round(height * scale))


def region_paintings(regions: list[regions_.Region], paintings: list[str], blend: list[float] | None) -> list[int]:
    """For --region with --style-image: the painting each region names (its path as given, or its file stem).

    Every painting must paint a region, and --style-blend has no meaning there (each region has its one painting)."""
    if blend is not None:
        raise UsageError("--style-blend does not apply with --region: each region paints with its own --style-image")
    stems = [Path(path).stem for path in paintings]
    chosen = []
    for region in regions:
        matches = [i for i, path in enumerate(paintings) if path == region.style] or [i for i, stem in enumerate(stems) if stem == region.style]
        if not matches:
            raise UsageError(f"--region {region.style}: no --style-image by that name (give a painting's file name without its suffix: {', '.join(stems)})")
        if len(matches) > 1:
            raise UsageError(f"--region {region.style}: names {len(matches)} --style-image files; give the painting's path as on the command line")
        if matches[0] in chosen:  # as with a model: one mask per painting (paint one mask with both shapes)
            raise UsageError("--region: each painting once")
        chosen.append(matches[0])
    unused = [paintings[i] for i in range(len(paintings)) if i not in chosen]
    if unused:
        raise UsageError(f"--style-image {unused[0]} paints no --region (each painting given must name one)")
    return chosen


def _blend_weights(blend: list[float] | None, count: int) -> list[float]:
    if blend is None:
        return [1.0 / count] * count
    check_blend_length(blend, count)
    if any(weight < 0 for weight in blend) or sum(blend) <= 0:
        raise UsageError("the paintings' blend weights (--style-blend, or --mix with --kind universal) must not be negative nor all zero")
    return [weight / sum(blend) for weight in blend]
