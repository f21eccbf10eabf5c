"""The threaded pipeline of ``nst apply`` and ``run_apply``, which runs it.

Flow of one run (``run_apply``):
  plan_jobs   inputs (files, folders, globs, '-') -> jobs (source, target), sharded, resumable
  decode      worker threads: read, orient (EXIF), downscale (--max-size) -> bounded queue
  inference   this thread: equal sizes batched; large images tiled (``tiling``) -> bounded queue
  encode      worker threads: strength, preserve-colour, encode, atomic write
Bounded queues keep memory flat whatever the folder size. Progress goes to a callback.
Every image is painted by a ``stylizer.Stylizer``; videos among the inputs go, one after another once
the images are done, through ``video`` with the same stylizer. ``decode_job`` and ``write_result`` are
the per-image ends the Ray workers (``ray_runner``) share.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from nstcli import images
from nstcli.apply.config import ApplyConfig, Job, Progress, Summary
from nstcli.apply.jobs import EXT_FOR_FORMAT, image_format, is_video, plan_jobs
from nstcli.apply.runtime import provider_warning
from nstcli.apply.stylizer import Stylizer, make_stylizer
from nstcli.errors import NstError, first_line


@dataclass
class Decoded:
    job: Job
    pixels: np.ndarray  # (H, W, 3) float32 0..1
    source_format: str | None
    icc_profile: bytes | None
    alpha: Image.Image | None = None  # the input's transparency (images.with_alpha fits it to the result)


@dataclass
class _Stylised:
    item: Decoded
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
    return f"{where}: {first_line(error)}"


def decode_job(config: ApplyConfig, job: Job) -> Decoded:
    """Read one input image, upright, downscaled to --max-size."""
    decoded = images.decode_image(job.source)
    image = decoded.image
    if config.max_size and max(image.size) > config.max_size:
        image = images.resize_long_side(image, config.max_size)
    return Decoded(job, images.to_array(image), decoded.format, decoded.icc_profile, decoded.alpha)


def write_result(config: ApplyConfig, item: Decoded, pixels: np.ndarray) -> None:
    """Encode the finished image of ``item`` and write it atomically to its target."""
    job = item.job
    requested = image_format(config.image_format)
    if job.target == images.STDIO and not requested:
        format_name = item.source_format if item.source_format in EXT_FOR_FORMAT else "PNG"
    else:
        format_name = images.format_for(job.target, requested)
    result = images.with_alpha(images.from_array(pixels), item.alpha, format_name)  # transparent in, transparent out
    data = images.encode_image(result, format_name, config.quality, item.icc_profile)
    if job.target != images.STDIO:
        Path(job.target).parent.mkdir(parents=True, exist_ok=True)
    images.write_bytes_atomic(data, job.target)


class _Pipeline:
    """Decode workers -> batched inference (caller's thread) -> encode workers, with bounded queues."""

    def __init__(self, stylizer: Stylizer, config: ApplyConfig, jobs: list[Job], report: Callable[[Job, str | None], None]):
        self.stylizer, self.config, self.jobs, self.report = stylizer, config, jobs, report
        self.batch_size = stylizer.batch_size
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
                    item = decode_job(self.config, job)
                except Exception as error:  # one bad file must not stop the others
                    self.report(job, describe(error, job.source))
                    continue
                if not self._put(self.decoded, item):
                    break
        finally:
            self._put(self.decoded, _DONE)

    def _infer_loop(self, producers: int) -> None:
        buckets: dict[tuple[int, int], list[Decoded]] = {}
        finished = 0
        while finished < producers and not self.stop.is_set():
            try:
                item = self.decoded.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is _DONE:
                finished += 1
                continue
            assert isinstance(item, Decoded)
            if self.stylizer.needs_tiles(item.pixels):
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

    def _infer(self, items: list[Decoded], tiled: bool) -> None:
        try:
            batch = items[0].pixels[None] if tiled else np.stack([item.pixels for item in items])
            outputs = self.stylizer.render(batch, tiled)
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
                write_result(self.config, result.item, self.stylizer.finish(result.pixels, result.item.pixels))
            except Exception as error:  # e.g. a full disk: count it, keep the worker alive
                self.report(job, describe(error, job.target))
                continue
            self.report(job, None)


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
    started = time.perf_counter()
    stylizer = make_stylizer(config)
    model = stylizer.model
    warning = provider_warning(config.provider, model.providers)
    if warning and on_warning:
        on_warning(warning)
    plan = plan_jobs(config, stylizer.label)
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
    pipeline = _Pipeline(stylizer, config, [job for job in jobs if not is_video(job.source)], report)
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
            result = stylise_video(job, config, stylizer, stylizer.finish, on_frame)
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
