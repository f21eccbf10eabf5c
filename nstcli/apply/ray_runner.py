"""``nst apply --ray``: the same run as a Ray Data pipeline over the machines of a Ray cluster.

Flow (``run_apply_ray``), the driver first:
  plan        make_stylizer checks the settings against the model; plan_jobs lists the jobs, names,
              --skip-existing: the same jobs as a local run
  dataset     the jobs' paths (never pixels) as rows, ROWS_PER_TASK to a block
  map         an actor pool, one actor per CPU of the cluster: each loads the model once
              (``make_stylizer``), then per block reads, paints and writes its images atomically
              (``pipeline.decode_job``, ``Stylizer.paint``, ``pipeline.write_result``: the local code),
              a chunk of ``Stylizer.batch_size`` images at a time, and returns one small row per image
  report      the driver streams those rows back: progress, failures, the summary
Ray Data's streaming executor runs a few blocks ahead per actor and no more, so a node holds at most
(its actors) x (batch_size) images in memory whatever the number of inputs. An actor that dies (a
lost node, a killed process) is restarted and its block retried; outputs are atomic renames, so a
retried image replaces its own identical file and every input is written and counted once.
Every node needs nst with the ray extra installed and the inputs and -o folder at the same paths
(a shared file system).
"""

from __future__ import annotations

import logging
import math
import socket
import time
from dataclasses import replace
from typing import Callable

import numpy as np
import ray
import ray.data

from nstcli import images
from nstcli.apply.config import ApplyConfig, Job, Progress, Summary
from nstcli.apply.jobs import is_video, plan_jobs
from nstcli.apply.pipeline import describe, decode_job, write_result
from nstcli.apply.stylizer import make_stylizer
from nstcli.errors import InputError, UsageError, first_line

LOCAL = "local"  # --ray local: start a Ray instance on this machine for the run
ROWS_PER_TASK = 16  # images per block: the unit Ray schedules and retries
REACH_TIMEOUT_S = 5.0  # --ray ADDRESS: how long to wait for its head node to answer at all


class Worker:
    """One per actor: the model loaded once, then the blocks of jobs the pipeline hands it."""

    def __init__(self, config: ApplyConfig) -> None:
        self.config = config
        # One CPU per actor: onnxruntime's default (all cores) would oversubscribe the node.
        self.stylizer = make_stylizer(replace(config, threads=config.threads or 1))
        self.provider = self.stylizer.model.providers[0]

    def __call__(self, rows: dict[str, np.ndarray]) -> dict[str, list[str]]:
        jobs = [Job(str(source), str(target), str(key)) for source, target, key in zip(rows["source"], rows["target"], rows["key"])]
        errors: dict[str, str] = {}
        size = self.stylizer.batch_size
        for start in range(0, len(jobs), size):
            errors.update(self.paint(jobs[start : start + size]))
        return {"source": [job.source for job in jobs], "error": [errors.get(job.key, "") for job in jobs],
                "provider": [self.provider] * len(jobs)}  # fmt: skip

    def paint(self, jobs: list[Job]) -> dict[str, str]:
        """Read, paint and write these images; the failures by job key (one bad file stops no other)."""
        errors, decoded = {}, []
        for job in jobs:
            try:
                decoded.append(decode_job(self.config, job))
            except Exception as error:
                errors[job.key] = describe(error, job.source)
        try:
            painted = self.stylizer.paint([item.pixels for item in decoded])
        except Exception as error:  # onnxruntime errors (e.g. out of memory): these images only
            return errors | {item.job.key: describe(error, f"{item.job.source}: inference failed") for item in decoded}
        for item, pixels in zip(decoded, painted):
            try:
                write_result(self.config, item, self.stylizer.finish(pixels, item.pixels))
            except Exception as error:
                errors[item.job.key] = describe(error, item.job.target)
        return errors


def connect(address: str) -> bool:
    """Join the cluster at ``address`` (``auto``: the one this machine belongs to; ``local``: a new one here)
    unless this process already has; True when this call started Ray (so the run shuts it down)."""
    if ray.is_initialized():
        return False
    if address not in (LOCAL, "auto"):
        check_reachable(address)
    try:
        ray.init(address=None if address == LOCAL else address, logging_level=logging.ERROR, log_to_driver=False,
                 include_dashboard=False)  # fmt: skip
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise UsageError(f"--ray {address}: cannot start or join a Ray cluster ({first_line(error)})") from None
    return True


def check_reachable(address: str) -> None:
    """Ray retries an address where nothing answers for minutes; one line in seconds instead."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=REACH_TIMEOUT_S).close()
    except (OSError, ValueError):
        raise UsageError(f"--ray {address}: nothing answers there (give the head node's HOST:PORT, auto or local)") from None


def quiet_ray_data() -> None:
    """Ray Data's progress bars and start-up notes would interleave with nst's own progress line."""
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)


def run_apply_ray(
    config: ApplyConfig,
    address: str = LOCAL,
    on_progress: Callable[[Progress], None] | None = None,
    on_failure: Callable[[str], None] | None = None,
    worker: type[Worker] = Worker,
) -> Summary:
    """Stylise every planned input on the Ray cluster at ``address``; failures are reported and counted,
    the rest proceed. ``worker``: the actor class (tests give one that dies on purpose)."""
    started = time.perf_counter()
    stylizer = make_stylizer(config)
    if images.STDIO in (config.output, *config.inputs):
        raise UsageError("--ray reads and writes files: no - (stdin or stdout)")
    plan = plan_jobs(config, stylizer.label)
    if any(is_video(job.source) for job in plan.jobs):
        raise UsageError("--ray stylises images; run videos without --ray")
    shard = f"{config.shard[0]}/{config.shard[1]}" if config.shard else None
    summary = Summary(config.model, "", stylizer.model.info.styles, len(plan.jobs) + plan.skipped + len(plan.unreadable),
                      skipped=plan.skipped, shard=shard)  # fmt: skip
    progress = Progress(total=len(plan.jobs) + len(plan.unreadable))

    def report(source: str, error: str) -> None:
        if error:
            progress.failed += 1
            summary.failures.append({"input": source, "error": error})
            if on_failure:
                on_failure(error)
        else:
            progress.written += 1
        progress.last = source
        if on_progress:
            on_progress(progress)

    for folder_error in plan.unreadable:  # counted as failed inputs, as in a local run
        report(folder_error.partition(": ")[0], folder_error)
    providers: set[str] = set()
    if plan.jobs:
        started_ray = connect(address)
        try:
            progress.started = time.perf_counter()  # images/s of the cluster, from its first image on
            for batch in _results(config, plan.jobs, worker):
                for source, error, provider in zip(batch["source"], batch["error"], batch["provider"]):
                    providers.add(str(provider))
                    report(str(source), str(error))
                if config.fail_fast and progress.failed:
                    break
        finally:
            if started_ray:
                ray.shutdown()
    summary.provider = ", ".join(sorted(providers)) or stylizer.model.providers[0]
    summary.written, summary.failed = progress.written, progress.failed
    summary.seconds = time.perf_counter() - started
    summary.images_per_second = summary.written / summary.seconds if summary.seconds > 0 else 0.0
    return summary


def _results(config: ApplyConfig, jobs: list[Job], worker: type[Worker]):
    """The per-image result rows, streamed back as the actors finish their blocks."""
    quiet_ray_data()
    actors = max(1, min(int(ray.cluster_resources().get("CPU", 1)), math.ceil(len(jobs) / ROWS_PER_TASK)))
    rows = [{"source": job.source, "target": job.target, "key": job.key} for job in jobs]
    dataset = ray.data.from_items(rows, override_num_blocks=math.ceil(len(rows) / ROWS_PER_TASK))
    painted = dataset.map_batches(
        worker, fn_constructor_args=(config,), batch_size=ROWS_PER_TASK, batch_format="numpy", num_cpus=1,
        compute=ray.data.ActorPoolStrategy(size=actors, max_tasks_in_flight_per_actor=2),  # one running, one queued
    )  # fmt: skip
    try:
        yield from painted.iter_batches(batch_size=None, batch_format="numpy")
    except ray.exceptions.RayError as error:
        raise InputError(f"the Ray run stopped ({first_line(error)}); outputs written so far are complete: resume with --skip-existing") from None
