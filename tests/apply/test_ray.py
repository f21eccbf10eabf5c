"""``nst apply --ray`` on a local Ray cluster of 2 CPUs, started once for this module: the same files as a
local run, bit for bit, each written once, also when a worker dies or the run is killed part-way."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from nstcli import images
from nstcli.apply.config import ApplyConfig
from nstcli.apply.pipeline import run_apply
from tests.apply.test_cli import make_folder, outputs
from tests.conftest import REPO, SUBPROCESS_ENV, assert_one_line_error, gradient_image, nst, run_nst

ray = pytest.importorskip("ray")
from nstcli.apply.ray_runner import Worker, run_apply_ray  # noqa: E402  (needs ray)

CRASH_ON = "img005"  # DiesOnce's process exits on the block holding this input, once


@pytest.fixture(scope="module")
def cluster():
    """A 2-CPU Ray instance for the module; its workers import nstcli and tests from this checkout."""
    import logging

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", str(REPO))  # the raylet and its workers inherit it
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
        yield ray.get_runtime_context().gcs_address
        ray.shutdown()


def folder_config(models, tmp_path: Path, out: str, **settings) -> ApplyConfig:
    return ApplyConfig(model=str(models["multi"]), inputs=[str(tmp_path / "in")], output=str(tmp_path / out), **settings)


def files(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def test_the_same_files_as_a_local_run_bit_for_bit(models, tmp_path, cluster):
    make_folder(tmp_path / "in", 9, size=(40, 28))
    make_folder(tmp_path / "in" / "jpegs", 3, size=(36, 36), suffix=".jpg")
    make_folder(tmp_path / "in" / "large", 1, size=(150, 90))  # tiled: --tile 64
    settings = {"mix": {"ink": 0.3, "oil": 0.7}, "name": "{stem}-{style}.{ext}", "strength": 0.8, "tile": 64,
                "tile_overlap": 16, "preserve_color": "histogram"}  # fmt: skip
    local = run_apply(folder_config(models, tmp_path, "local", **settings))
    clustered = run_apply_ray(folder_config(models, tmp_path, "ray", **settings), cluster)
    assert (clustered.written, clustered.failed, clustered.planned) == (local.written, 0, 13)
    assert clustered.provider == "CPUExecutionProvider" and clustered.images_per_second > 0
    assert files(tmp_path / "ray") == files(tmp_path / "local")
    assert "large/deep/img000-ink30+oil70.png" in files(tmp_path / "ray")


def test_the_cli_counts_bad_files_and_skips_existing(models, tmp_path, cluster):
    make_folder(tmp_path / "in", 6)
    (tmp_path / "in" / "broken.jpg").write_bytes(b"not an image")
    (tmp_path / "in" / "empty.png").write_bytes(b"")
    args = ["apply", str(models["single"]), str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--ray", "local", "--json"]
    result = nst(*args)
    assert result.returncode == 1, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["written"], summary["failed"], summary["planned"]) == (6, 2, 8)
    assert sorted(Path(failure["input"]).name for failure in summary["failures"]) == ["broken.jpg", "empty.png"]
    assert "broken.jpg: not a recognised image file" in result.stderr
    assert outputs(tmp_path / "out") == outputs(tmp_path / "in") - {"broken.jpg", "empty.png"}
    again = json.loads(nst(*args, "--skip-existing").stdout)
    assert (again["written"], again["skipped"], again["failed"]) == (0, 6, 2)


class DiesOnce(Worker):
    """A worker whose process exits, the first time only, on the block holding CRASH_ON (a marker file
    beside -o remembers): as when a node is lost mid-run."""

    def __call__(self, rows):
        marker = Path(self.config.output).parent / "crashed"
        if not marker.exists() and any(CRASH_ON in str(source) for source in rows["source"]):
            marker.touch()
            os._exit(1)
        return super().__call__(rows)


def test_a_worker_killed_mid_run_is_retried_and_every_input_written_once(models, tmp_path, cluster):
    make_folder(tmp_path / "in", 40, size=(24, 24))
    config = folder_config(models, tmp_path, "ray", style="oil")
    summary = run_apply_ray(config, cluster, worker=DiesOnce)
    assert (tmp_path / "crashed").exists()  # the worker did die
    assert (summary.written, summary.failed) == (40, 0)
    run_apply(replace(config, output=str(tmp_path / "local")))
    assert files(tmp_path / "ray") == files(tmp_path / "local")  # each once, nothing partial


def test_resume_after_the_driver_is_killed(models, tmp_path, cluster):
    count = 160
    make_folder(tmp_path / "in", count, size=(96, 96))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "nstcli", "apply", str(models["single"]), str(tmp_path / "in"), "-o", str(out),
               "--ray", cluster]  # fmt: skip
    ray_env = {name: value for name, value in os.environ.items() if name.startswith("RAY_")}  # e.g. RAY_AUTH_MODE
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**SUBPROCESS_ENV, **ray_env})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None and (not out.exists() or finished_count(out) < 5):
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    _, stderr = process.communicate()
    done = settled_count(out)  # the cluster ends the dead driver's workers
    assert 5 <= done < count, f"the run must be killed part-way for this test to mean anything: {stderr.decode()[-2000:]}"
    config = ApplyConfig(model=str(models["single"]), inputs=[str(tmp_path / "in")], output=str(out), skip_existing=True)
    summary = run_apply_ray(config, cluster)
    assert summary.skipped >= done and summary.written + summary.skipped == count and summary.failed == 0
    run_apply(replace(config, output=str(tmp_path / "local"), skip_existing=False))
    assert files(out) == files(tmp_path / "local")  # every output once, complete, no temporary file left


def finished_count(folder: Path) -> int:
    """The number of outputs in ``folder``, not counting temporary files (writes still going on)."""
    return sum(not images.TEMP_NAME.fullmatch(Path(name).name) for name in outputs(folder))


def settled_count(folder: Path) -> int:
    """The number of finished outputs in ``folder`` once it has not changed for 3 seconds."""
    count, since = finished_count(folder), time.monotonic()
    while time.monotonic() - since < 3.0:  # 1 s was too short on a loaded machine: a late write raced the resume
        time.sleep(0.1)
        now = finished_count(folder)
        if now != count:
            count, since = now, time.monotonic()
    return count


@pytest.mark.parametrize(
    ("args", "message"),
    [(["-", "-o", "out.png"], "--ray reads and writes files"), (["in.png", "-o", "-"], "--ray reads and writes files"),
     (["clip.mp4", "-o", "out.mp4"], "--ray stylises images")],
)  # fmt: skip
def test_stdio_and_videos_are_refused_before_ray_starts(models, tmp_path, args, message):
    (tmp_path / "in.png").write_bytes(b"")
    (tmp_path / "clip.mp4").write_bytes(b"")
    result = nst("apply", str(models["single"]), *args, "--ray", "local", cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_an_address_where_nothing_answers_is_one_line_in_seconds(models, tmp_path):
    gradient_image(32, 24).save(tmp_path / "in.png")
    started = time.monotonic()
    result = run_nst("apply", str(models["single"]), str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"),
                     "--ray", "127.0.0.1:1")  # fmt: skip
    assert time.monotonic() - started < 30  # Ray alone retries for minutes
    assert_one_line_error(result, 2, "--ray 127.0.0.1:1: nothing answers there")
    assert not (tmp_path / "out.png").exists()
