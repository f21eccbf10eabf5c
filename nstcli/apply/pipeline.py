"""The threaded pipeline of ``nst apply`` and ``run_apply``, which runs it.

Flow of one run (``run_apply``):
  plan_jobs   inputs (files, folders, globs, '-') -> jobs (source, target), sharded, resumable
  decode      worker threads: read, orient (EXIF), downscale (--max-size) -> bounded queue
  inference   this thread: equal sizes batched; large images tiled (``tiling``) -> bounded queue
  encode      worker threads: strength, preserve-colour, encode, atomic write
Bounded queues keep memory flat whatever the folder size. Progress goes to a callback.
Videos among the inputs go, one after another once the images are done, through ``video`` with
the same ``Renderer`` and ``finish``.
"""

from __future__ import annotations

import contextlib
import functools
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from nstcli import color, images, regions
from nstcli.apply.config import ApplyConfig, Job, Progress, Summary, validate
from nstcli.apply.jobs import EXT_FOR_FORMAT, image_format, is_video, plan_jobs
from nstcli.apply.model import Model
from nstcli.apply.runtime import provider_warning
from nstcli.apply.universal import UniversalModel
from nstcli.errors import NstError


@dataclass
class _Decoded:
    job: Job
    pixels: np.ndarray  # (H, W, 3) float32 0..1
    source_format: str | None
    icc_profile: bytes | None


@dataclass
class _Stylised:
    item: _Decoded
    pixels: np.ndarray


_DONE = object()


def put(target: queue.Queue[object], item: object, stop: threading.Event, force: bool = False) -> bool:
    """Put ``item`` unless ``stop`` is set; ``force``: even then (into a full queue that nobody reads any
    more, by dropping its oldest item). False when stopped."""
    while force or not stop.is_set():
        try:
            target.put(item, timeout=0.1)
            return True
        except queue.Full:
            if force and stop.is_set():
                with contextlib.suppress(queue.Empty):
                    target.get_nowait()
    return False


def describe(error: Exception, where: str) -> str:
    """One line for a failure: NstError messages as they are, anything else prefixed with ``where``."""
    if isinstance(error, NstError):
        return str(error)
    if isinstance(error, OSError) and error.strerror:
        return f"{where}: {error.filename + ': ' if error.filename else ''}{error.strerror}"
    text = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
    return f"{where}: {text}"


@dataclass
class _RegionPlan:
    style_weights: list[np.ndarray | None]  # per region, the model's style weights (None: a one-style model)
    shares: regions.RegionWeights


class Renderer:
    """The model run on a batch of equal-sized images: tiled when large, one rendering per region with --region."""

    def __init__(self, model: Model | UniversalModel, config: ApplyConfig, region_plan: _RegionPlan | None = None) -> None:
        self.model, self.config, self.region_plan = model, config, region_plan
        self.batch_size = config.batch_size or (8 if model.on_gpu else 1)

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

    def _run(self, batch: np.ndarray, tiled: bool) -> list[np.ndarray]:
        if tiled:
            return [self.model.run_tiled(batch[0], self.config.tile or 1024, self.config.tile_overlap, self.batch_size)]
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


class _Pipeline:
    """Decode workers -> batched inference (caller's thread) -> encode workers, with bounded queues."""

    def __init__(self, renderer: Renderer, config: ApplyConfig, jobs: list[Job], report: Callable[[Job, str | None], None]):
        self.renderer, self.config, self.jobs, self.report = renderer, config, jobs, report
        self.batch_size = renderer.batch_size
        self.stop = threading.Event()
        depth = self.batch_size * 2
        self.decoded: queue.Queue[object] = queue.Queue(maxsize=depth)
        self.stylised: queue.Queue[object] = queue.Queue(maxsize=depth)
        self.next_job = iter(jobs)
        self.lock = threading.Lock()

    def run(self) -> None:
        workers = min(self.config.workers, max(1, len(self.jobs)))
        decoders = [threading.Thread(target=self._decode_loop, daemon=True) for _ in range(workers)]
        encoders = [threading.Thread(target=self._encode_loop, daemon=True) for _ in range(workers)]
        for thread in decoders + encoders:
            thread.start()
        try:
            self._infer_loop(len(decoders))
        except BaseException:
            self.stop.set()  # e.g. Ctrl-C: workers drop what is queued
            raise
        finally:
            for _ in encoders:
                self._put(self.stylised, _DONE, force=True)
            for thread in encoders:
                while thread.is_alive():
                    thread.join(0.1)
            self.stop.set()

    def _put(self, target: queue.Queue[object], item: object, force: bool = False) -> bool:
        return put(target, item, self.stop, force)

    def _decode_loop(self) -> None:
        try:
            while not self.stop.is_set():
                with self.lock:
                    job = next(self.next_job, None)
                if job is None:
                    break
                try:
                    item = self._decode(job)
                except Exception as error:  # one bad file must not stop the others
                    self.report(job, describe(error, job.source))
                    continue
                if not self._put(self.decoded, item):
                    break
        finally:
            self._put(self.decoded, _DONE)

    def _decode(self, job: Job) -> _Decoded:
        decoded = images.decode_image(job.source)
        image = decoded.image
        if self.config.max_size and max(image.size) > self.config.max_size:
            image = images.resize_long_side(image, self.config.max_size)
        return _Decoded(job, images.to_array(image), decoded.format, decoded.icc_profile)

    def _infer_loop(self, producers: int) -> None:
        buckets: dict[tuple[int, int], list[_Decoded]] = {}
        finished = 0
        while finished < producers and not self.stop.is_set():
            try:
                item = self.decoded.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is _DONE:
                finished += 1
                continue
            assert isinstance(item, _Decoded)
            if self.renderer.needs_tiles(item.pixels):
                self._infer([item], tiled=True)
                continue
            shape = item.pixels.shape[:2]
            buckets.setdefault(shape, []).append(item)
            if len(buckets[shape]) >= self.batch_size:
                self._infer(buckets.pop(shape), tiled=False)
            elif sum(map(len, buckets.values())) > self.batch_size * 2:
                # Many different sizes: run the fullest partial batch rather than hold more images.
                self._infer(buckets.pop(max(buckets, key=lambda key: len(buckets[key]))), tiled=False)
        for items in buckets.values():
            if not self.stop.is_set():
                self._infer(items, tiled=False)

    def _infer(self, items: list[_Decoded], tiled: bool) -> None:
        try:
            batch = items[0].pixels[None] if tiled else np.stack([item.pixels for item in items])
            outputs = self.renderer.render(batch, tiled)
        except Exception as error:  # onnxruntime errors (e.g. out of memory), a refused size: fail these images only
            for item in items:
                where = item.job.source if isinstance(error, NstError) else f"{item.job.source}: inference failed"
                self.report(item.job, f"{where}: {error}" if isinstance(error, NstError) else describe(error, where))
            return
        for item, pixels in zip(items, outputs):
            if not self._put(self.stylised, _Stylised(item, pixels)):
                return

    def _encode_loop(self) -> None:
        while True:
            try:
                result = self.stylised.get(timeout=0.1)
            except queue.Empty:
                continue
            if result is _DONE:
                return
            assert isinstance(result, _Stylised)
            if self.stop.is_set():
                continue
            job = result.item.job
            try:
                self._encode(result)
            except Exception as error:  # e.g. a full disk: count it, keep the worker alive
                self.report(job, describe(error, job.target))
                continue
            self.report(job, None)

    def _encode(self, result: _Stylised) -> None:
        pixels = finish(self.config, result.pixels, result.item.pixels)
        job = result.item.job
        requested = image_format(self.config.image_format)
        if job.target == images.STDIO and not requested:
            format_name = result.item.source_format if result.item.source_format in EXT_FOR_FORMAT else "PNG"
        else:
            format_name = images.format_for(job.target, requested)
        data = images.encode_image(images.from_array(pixels), format_name, self.config.quality, result.item.icc_profile)
        if job.target != images.STDIO:
            Path(job.target).parent.mkdir(parents=True, exist_ok=True)
        images.write_bytes_atomic(data, job.target)


def load_model(config: ApplyConfig) -> Model | UniversalModel:
    """The model file, or with --style-image the universal models and the paintings' statistics."""
    if config.style_images:
        return UniversalModel(
            config.model, config.style_images, config.style_size, config.style_blend, config.strength, config.levels,
            config.provider, config.threads,
        )  # fmt: skip
    return Model(config.model, config.provider, config.threads)


def _video_engine() -> Callable:
    """``video.stylise_video``, once PyAV and OpenCV are known to be there (UsageError naming the extra)."""
    from nstcli.apply import video

    video.require_av()
    return video.stylise_video


def run_apply(
    config: ApplyConfig,
    on_progress: Callable[[Progress], None] | None = None,
    on_failure: Callable[[str], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> Summary:
    """Stylise every planned input; failures are reported and counted, the rest proceed.

    Callbacks are called from worker threads, one at a time.
    """
    validate(config)
    started = time.perf_counter()
    model = load_model(config)
    warning = provider_warning(config.provider, model.providers)
    if warning and on_warning:
        on_warning(warning)
    region_plan = None
    if config.regions:
        loaded = regions.load_regions(config.regions)
        style_weights, label = model.region_styles([region.style for region in loaded])
        region_plan = _RegionPlan(style_weights, regions.RegionWeights(loaded))
    else:
        label = model.select_style(config.style, config.mix)
    plan = plan_jobs(config, label)
    jobs, skipped = plan.jobs, plan.skipped
    shard = f"{config.shard[0]}/{config.shard[1]}" if config.shard else None
    total = len(jobs) + skipped + len(plan.unreadable)
    summary = Summary(config.model, model.providers[0], model.info.styles, total, skipped=skipped, shard=shard)
    progress = Progress(total=len(jobs) + len(plan.unreadable))
    lock = threading.Lock()
    pipeline: _Pipeline

    def report(job: Job, error: str | None) -> None:
        with lock:
            if error is None:
                progress.written += 1
            else:
                progress.failed += 1
                summary.failures.append({"input": job.source, "error": error})
                if on_failure:
                    on_failure(error)
                if config.fail_fast:
                    pipeline.stop.set()
            progress.last = job.source
            if on_progress:
                on_progress(progress)

    for folder_error in plan.unreadable:  # counted as failed inputs, like unreadable files
        report(Job(folder_error.partition(": ")[0], "", ""), folder_error)
    videos = [job for job in jobs if is_video(job.source)]
    stylise_video = _video_engine() if videos else None  # the one-line "pip install" error before any work
    renderer = Renderer(model, config, region_plan)
    pipeline = _Pipeline(renderer, config, [job for job in jobs if not is_video(job.source)], report)
    try:
        pipeline.run()
    finally:
        pipeline.stop.set()
    for job in videos:
        if config.fail_fast and progress.failed:
            break

        def on_frame(done: int, total: int) -> None:
            with lock:
                progress.frames, progress.frame_total, progress.last = done, total, job.source
                if on_progress:
                    on_progress(progress)

        progress.frames, progress.frame_total, progress.video_started = 0, 0, time.perf_counter()
        try:
            result = stylise_video(job, config, renderer, functools.partial(finish, config), on_frame)
        except Exception as error:  # one bad video must not stop the others
            progress.frames = progress.frame_total = 0
            report(job, describe(error, job.source))
            continue
        progress.frames = progress.frame_total = 0
        summary.videos.append(result.to_dict())
        for message in result.warnings:
            if on_warning:
                on_warning(f"{job.source}: {message}")
        report(job, None)
    summary.written, summary.failed = progress.written, progress.failed
    summary.seconds = time.perf_counter() - started
    summary.images_per_second = summary.written / summary.seconds if summary.seconds > 0 else 0.0
    return summary
