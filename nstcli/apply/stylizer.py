"""The stylizer: an apply run's settings in, a callable on pixels out.

``make_stylizer(config)`` is the one place that turns settings into a loaded model; the local pipeline,
videos and the Ray workers all paint through the ``Stylizer`` it returns. ``Stylizer.open`` is the same
for other programs (a Ray, Spark or Dask job of their own): HxWx3 uint8 arrays in, arrays out, with the
pixels ``nst apply`` would write.
"""

from __future__ import annotations

from dataclasses import dataclass
import numpy as np

from nstcli import color, images, regions, styles
from nstcli.apply.config import ApplyConfig, tiling, validate
from nstcli.apply.model import Model
from nstcli.apply.universal import UniversalModel
from nstcli.errors import UsageError

# The ApplyConfig fields that say how pixels are painted (the rest say which files are read and written).
STYLIZER_FIELDS = (
    "style", "mix", "regions", "strength", "preserve_color", "tile", "tile_overlap", "auto_tile_pixels",
    "provider", "threads", "batch_size",
)  # fmt: skip


@dataclass
class RegionPlan:
    style_weights: list[np.ndarray | None]  # per region, the model's style weights (None: a one-style model)
    shares: regions.RegionWeights


class Stylizer:
    """A loaded model and how it paints: batches of equal-sized images, tiled when large, one rendering
    per region with --region, then --preserve-color and --strength."""

    def __init__(self, model: Model | UniversalModel, config: ApplyConfig, label: str, region_plan: RegionPlan | None = None) -> None:
        self.model, self.config, self.label, self.region_plan = model, config, label, region_plan
        self.batch_size = config.batch_size or (8 if model.on_gpu else 1)

    @classmethod
    def open(cls, model_or_style: str, **settings: object) -> Stylizer:
        """A stylizer of a model file (.onnx) or a bundled style (see ``nst styles``); ``settings`` are
        ApplyConfig's fields in STYLIZER_FIELDS, with its defaults (e.g. strength=0.8, mix={...})."""
        unknown = sorted(set(settings) - set(STYLIZER_FIELDS))
        if unknown:
            raise UsageError(f"Stylizer.open: unknown settings {', '.join(unknown)} (choose from {', '.join(STYLIZER_FIELDS)})")
        if model_or_style.lower().endswith(".onnx"):
            model = model_or_style
        else:
            if settings.get("style") is not None:
                raise UsageError("Stylizer.open: a bundled style is the style; give style= with a model file only")
            bundled = styles.bundled_model([model_or_style], None, "--style")
            model, settings = str(bundled.path), {**settings, "style": bundled.style}
        # In memory nothing is read or written: like a run from stdin to stdout.
        return make_stylizer(ApplyConfig(model=model, inputs=[images.STDIO], output=images.STDIO, **settings))

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """One HxWx3 uint8 image -> the stylised HxWx3 uint8 image."""
        return self.stylize_batch([image])[0]

    def stylize_batch(self, batch: list[np.ndarray]) -> list[np.ndarray]:
        """HxWx3 uint8 images (any sizes) -> the stylised images, in order."""
        for image in batch:
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise UsageError(f"Stylizer: expected HxWx3 uint8 arrays, got {image.dtype} {image.shape}")
        contents = [image.astype(np.float32) / 255.0 for image in batch]  # as images.to_array reads a file
        painted = self.paint(contents)
        return [np.asarray(images.from_array(self.finish(pixels, content))) for pixels, content in zip(painted, contents)]

    def paint(self, contents: list[np.ndarray]) -> list[np.ndarray]:
        """(H, W, 3) float32 0..1 images -> the model's renderings, in order: equal sizes batched, large ones tiled."""
        painted: list[np.ndarray | None] = [None] * len(contents)
        groups: dict[tuple[int, int], list[int]] = {}
        for index, pixels in enumerate(contents):
            if self.needs_tiles(pixels):
                painted[index] = self.render(pixels[None], tiled=True)[0]
            else:
                groups.setdefault(pixels.shape[:2], []).append(index)
        for indices in groups.values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                for index, pixels in zip(chunk, self.render(np.stack([contents[i] for i in chunk]), tiled=False)):
                    painted[index] = pixels
        return painted

    def needs_tiles(self, pixels: np.ndarray) -> bool:
        tile = self.config.tile
        if tile == 0:
            return False
        height, width = pixels.shape[:2]
        if tile is None:
            return height * width > self.config.auto_tile_pixels
        return max(height, width) > tile

    def render(self, batch: np.ndarray, tiled: bool) -> list[np.ndarray]:
        """The stylised batch (one image when tiled); with --region, one rendering per region, blended."""
        plan = self.region_plan
        if plan is None:
            return self._run(batch, tiled)
        renderings = []
        for weights in plan.style_weights:
            self.model.style_weights = weights
            renderings.append(self._run(batch, tiled))
        return [
            regions.blend(photo, [rendering[index] for rendering in renderings], plan.shares.at(*photo.shape[:2]))
            for index, photo in enumerate(batch)
        ]

    def finish(self, pixels: np.ndarray, content: np.ndarray) -> np.ndarray:
        return finish(self.config, pixels, content)

    def _run(self, batch: np.ndarray, tiled: bool) -> list[np.ndarray]:
        if tiled:
            return [self.model.run_tiled(batch[0], *tiling(self.config), self.batch_size)]
        return list(self.model.run(batch))


def finish(config: ApplyConfig, pixels: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The post-processes of a stylised image: --preserve-color, then --strength."""
    if config.preserve_color == "luminance":
        pixels = color.transfer_luminance(pixels, content)
    elif config.preserve_color == "histogram":
        pixels = color.match_color(pixels, content)
    if config.strength < 1.0 and not config.style_images:  # --style-image blends in feature space instead
        pixels = config.strength * pixels + (1.0 - config.strength) * content
    return pixels


def make_stylizer(config: ApplyConfig) -> Stylizer:
    """The stylizer the settings ask for (UsageError for settings that contradict the model).

    The one place a kind of model is chosen: today an nst ONNX generator with its style, mix or
    regions, or with --style-image the universal encoder and decoders (``apply.universal``), which
    take --region themselves (one painting per region, fused in feature space).
    """
    validate(config)
    if config.style_images:  # any painting: the universal encoder and decoders, the paintings measured once
        # --region: the model fuses the regions in feature space (WCT per region), so no RegionPlan here
        universal = UniversalModel(
            config.model, config.style_images, config.style_size, config.style_blend, config.strength, config.levels,
            config.provider, config.threads, regions.load_regions(config.regions) if config.regions else None, config.int8,
        )  # fmt: skip
        return Stylizer(universal, config, universal.select_style(config.style, config.mix))
    model = Model(config.model, config.provider, config.threads)
    if not config.regions:
        return Stylizer(model, config, model.select_style(config.style, config.mix))
    loaded = regions.load_regions(config.regions)
    style_weights, label = model.region_styles([region.style for region in loaded])
    return Stylizer(model, config, label, RegionPlan(style_weights, regions.RegionWeights(loaded)))
