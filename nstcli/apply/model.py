"""A loaded nst ONNX model (the contract is in ``model_format``): its metadata, style selection and mixing,
padding to the size multiple, IO binding on GPU providers, and tiled runs of large images."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nstcli import model_format as fmt, tiling
from nstcli.apply.runtime import GPU_PROVIDERS, create_session, load_session
from nstcli.errors import InputError, UsageError


@dataclass
class ModelInfo:
    path: str
    styles: list[str]
    size_multiple: int
    precision: str
    arch: str
    has_style_weights: bool


class Model:
    """A loaded nst model: pads to the size multiple, runs a batch, crops back."""

    # Tiled images take their instance-norm statistics from the whole image shrunk to this long side.
    guide_size = 2048

    def __init__(self, path: str, provider: str = "auto", threads: int = 0) -> None:
        source = Path(path)
        if not source.is_file():
            raise InputError(f"{path}: no such model file")
        self.session, self.providers = load_session(str(source), provider, threads)
        self.info = read_model_info(path, self.session)
        self.style_weights: np.ndarray | None = None
        self.on_gpu = self.providers[0] in GPU_PROVIDERS
        self.threads = threads
        self._pinned: tuple | None = None

    def select_style(self, style: str | None, mix: dict[str, float] | None) -> str:
        """Set the style weights from --style / --mix; returns a label for file names."""
        styles = self.info.styles
        if not self.info.has_style_weights:
            if mix:
                raise UsageError(f"--mix: this model has one style ({styles[0]}); mixing needs a multi-style model")
            if style is not None and style_index(style, styles) != 0:
                raise UsageError(f"--style: this model has one style ({styles[0]}), not {style!r}")
            return safe_label(styles[0])
        if style is not None and mix:
            raise UsageError("use either --style or --mix, not both")
        weights = np.zeros(len(styles), dtype=np.float32)
        if mix:
            for key, value in mix.items():
                if value < 0:
                    raise UsageError(f"--mix: weights must not be negative ({key}={value})")
                weights[style_index(key, styles)] += value
            if weights.sum() <= 0:
                raise UsageError("--mix: the weights must not all be zero")
            weights /= weights.sum()
            label = LABEL_JOIN.join(f"{safe_label(styles[i])}{round(w * 100)}" for i, w in enumerate(weights) if w > 0)
        elif style is not None:
            index = style_index(style, styles)
            weights[index] = 1.0
            label = safe_label(styles[index])
        else:
            raise UsageError(f"this model has {len(styles)} styles ({', '.join(styles)}); pick with --style, --mix or --region")
        self.style_weights = weights
        return label

    def region_styles(self, names: list[str]) -> tuple[list[np.ndarray | None], str]:
        """--region: each region's style weights (one-hot; None for a one-style model) and a label for file names."""
        styles = self.info.styles
        indices = [style_index(name, styles) for name in names]
        if len(set(indices)) != len(indices):
            raise UsageError("--region: each style once")
        label = LABEL_JOIN.join(safe_label(styles[index]) for index in indices)
        if not self.info.has_style_weights:
            return [None], label
        return [np.eye(len(styles), dtype=np.float32)[index] for index in indices], label

    def run(self, batch: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) float32 in 0..1 -> stylised (N, H, W, 3), any H and W."""
        return self._stylise(self.session, batch, {})

    def run_tiled(self, image: np.ndarray, tile: int, overlap: int, batch_size: int) -> np.ndarray:
        """A large (H, W, 3) image in blended tiles, normalised with whole-image statistics (see tiling)."""
        pinned = self._pinned_sessions()
        if pinned is None:  # no instance norm: tiles need no shared statistics
            return tiling.run_tiled(image, self.run, tile, overlap, batch_size)
        stats_session, tiles_session, epsilons = pinned
        guide = tiling.resize_array(image, self.guide_size)
        names = tiling.stats_outputs(len(epsilons))
        stats = dict(zip(names, self._session_run(stats_session, self._feeds(guide[None])[0], names)))
        extra = tiling.gains_and_shifts(stats, epsilons)
        return tiling.run_tiled(image, lambda batch: self._stylise(tiles_session, batch, extra), tile, overlap, batch_size)

    def _pinned_sessions(self) -> tuple[object, object, list[float]] | None:
        if self._pinned is None:
            pinned = tiling.pin_instance_norm(Path(self.info.path).read_bytes())
            self._pinned = (False,) if pinned is None else (
                create_session(pinned.stats, self.providers[0], self.threads)[0],
                create_session(pinned.tiles, self.providers[0], self.threads)[0],
                pinned.epsilons,
            )  # fmt: skip
        return None if self._pinned == (False,) else self._pinned

    def _feeds(self, batch: np.ndarray) -> tuple[dict[str, np.ndarray], tuple[int, int]]:
        """NHWC batch -> the model's feeds (NCHW, padded as model_format says) and the size to crop back to."""
        height, width = batch.shape[1:3]
        multiple = self.info.size_multiple
        # at least two multiples: the generators' reflection pads need more pixels than they pad
        pad_h = max(2 * multiple, height + -height % multiple) - height
        pad_w = max(2 * multiple, width + -width % multiple) - width
        nchw = np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)
        if pad_h or pad_w:
            mode = "reflect" if height > pad_h and width > pad_w else "edge"
            nchw = np.pad(nchw, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)), mode=mode)
        feeds = {fmt.INPUT_IMAGE: nchw}
        if self.style_weights is not None:
            feeds[fmt.INPUT_STYLE_WEIGHTS] = self.style_weights
        return feeds, (height, width)

    def _stylise(self, session: object, batch: np.ndarray, extra: dict[str, np.ndarray]) -> np.ndarray:
        feeds, (height, width) = self._feeds(batch)
        output = self._session_run(session, {**feeds, **extra}, [fmt.OUTPUT_IMAGE])[0]
        return np.ascontiguousarray(output[:, :, :height, :width].transpose(0, 2, 3, 1), dtype=np.float32)

    def _session_run(self, session: object, feeds: dict[str, np.ndarray], outputs: list[str]) -> list[np.ndarray]:
        if not self.on_gpu:
            return session.run(outputs, feeds)
        # GPU providers: IO binding lets onnxruntime allocate outputs on the device and copy once.
        binding = session.io_binding()
        for name, value in feeds.items():
            binding.bind_cpu_input(name, value)
        for name in outputs:
            binding.bind_output(name, "cuda")
        session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()


def read_model_info(path: str, session: object) -> ModelInfo:
    """Check the graph against the nst contract and read its metadata."""
    inputs = {arg.name: arg for arg in session.get_inputs()}
    outputs = [arg.name for arg in session.get_outputs()]
    image = inputs.get(fmt.INPUT_IMAGE)
    extra = set(inputs) - {fmt.INPUT_IMAGE, fmt.INPUT_STYLE_WEIGHTS}
    if image is None or len(image.shape) != 4 or fmt.OUTPUT_IMAGE not in outputs or extra:
        found = f"inputs {sorted(inputs)}, outputs {outputs}"
        raise InputError(
            f"{path}: not an nst model: expected input '{fmt.INPUT_IMAGE}' (float32 N,3,H,W), optional "
            f"'{fmt.INPUT_STYLE_WEIGHTS}', and output '{fmt.OUTPUT_IMAGE}'; found {found}"
        )
    meta = session.get_modelmeta().custom_metadata_map
    has_weights = fmt.INPUT_STYLE_WEIGHTS in inputs
    try:
        styles = json.loads(meta[fmt.META_STYLES]) if fmt.META_STYLES in meta else [Path(path).stem]
        size_multiple = int(meta.get(fmt.META_SIZE_MULTIPLE, "4"))
    except (ValueError, TypeError):
        raise InputError(f"{path}: unreadable nst metadata ({fmt.META_STYLES} / {fmt.META_SIZE_MULTIPLE})") from None
    if isinstance(styles, str):
        styles = [styles]
    if not isinstance(styles, list) or not styles or size_multiple < 1:
        raise InputError(f"{path}: bad nst metadata: {fmt.META_STYLES} must be a non-empty list")
    styles = [str(name) for name in styles]
    if has_weights:
        declared = inputs[fmt.INPUT_STYLE_WEIGHTS].shape[0] if inputs[fmt.INPUT_STYLE_WEIGHTS].shape else None
        if isinstance(declared, int) and declared != len(styles):
            raise InputError(
                f"{path}: {fmt.META_STYLES} names {len(styles)} styles but {fmt.INPUT_STYLE_WEIGHTS} has {declared}"
            )
    return ModelInfo(
        path, styles, size_multiple, meta.get(fmt.META_PRECISION, "fp32"), meta.get(fmt.META_ARCH, "?"), has_weights
    )


def style_index(key: str, styles: list[str]) -> int:
    """The index of a style given by name or by index; UsageError listing the styles otherwise."""
    if key in styles:
        return styles.index(key)
    if key.isdigit() and int(key) < len(styles):
        return int(key)
    raise UsageError(f"unknown style {key!r}; this model has: {', '.join(f'{i}={s}' for i, s in enumerate(styles))}")


# Between the styles of a mix, regions or blended paintings in {style}: style names hold hyphens themselves
LABEL_JOIN = "+"


def safe_label(text: str) -> str:
    """A style name made safe for file names."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text).strip(".") or "style"
