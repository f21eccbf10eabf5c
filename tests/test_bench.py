"""nst bench: the study's timing table (tiny settings: the figures are only checked for shape and sign)."""

from __future__ import annotations

import json

from nstcli.bench import BenchConfig, BenchReport, BenchRow, format_table
from tests.conftest import assert_one_line_error, nst


def test_bench_json_has_a_row_per_family() -> None:
    tiny = ["--size", "32", "--iterations", "2", "--train-size", "32", "--train-steps", "2", "--repeats", "1"]
    result = nst("bench", *tiny, "--arch", "texture", "--device", "cpu", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["device"].startswith("CPU")
    rows = {row["method"]: row for row in report["rows"]}
    assert set(rows) == {"gatys", "texture"}
    assert rows["gatys"]["seconds_per_step_per_style"] is None and rows["gatys"]["seconds_per_image"] > 0
    row = rows["texture"]
    assert row["incremental"] is False and row["family"] == "one model, one style"
    assert 0 < row["seconds_per_step_per_style"] < row["training_seconds"]
    assert row["seconds_per_image"] > 0
    assert "timing gatys" in result.stderr


def test_table_layout() -> None:
    from dataclasses import asdict

    rows = [BenchRow("image optimisation", "gatys", None, None, None, 12.5),
            BenchRow("one model, one style", "johnson", 0.25, 3.0, False, 0.05)]  # fmt: skip
    lines = format_table(BenchReport("CPU test", asdict(BenchConfig(arches=["johnson"])), rows)).splitlines()
    assert lines[0] == "device: CPU test"
    assert "s/step/style (batch 4, 128 px)" in lines[1] and "s/image (256x256)" in lines[1]
    assert lines[2].split()[-3:] == ["12.500", "(10", "evals)"]
    assert lines[3].split()[-4:] == ["0.250", "3.0", "no", "0.050"]


def test_bad_flags() -> None:
    assert_one_line_error(nst("bench", "--train-steps", "1"), 2, "--train-steps must be in 2..100000, got 1")
    assert_one_line_error(nst("bench", "--arch", "nope"), 2, "unknown --arch")
