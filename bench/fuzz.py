"""Bounded fuzzing of the image reader and of ``nst apply``'s argument parsing (issue 7); prints a table.

    python bench/fuzz.py --seconds 120 --seed 1

The CI runs a short seeded slice of the same properties (tests/test_audit_inputs.py). Here each
target gets ``--seconds`` of random examples. A finding is any outcome other than a decoded RGB
image / an InputError (reader), or exit 0/1/2 with no traceback and no leftover temp file (CLI).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.bad_inputs import picture  # noqa: E402 - after the path tweak
from tests.conftest import nst  # noqa: E402
from tests.test_audit_inputs import check_reader, identity_model, leftovers, mutations, tokens  # noqa: E402


def fuzz(name: str, strategy, check, seconds: float, seed: int) -> dict[str, object]:
    """Run ``check`` on examples of ``strategy`` until ``seconds`` pass; count examples and findings."""
    counts = {"examples": 0, "findings": 0}
    findings: list[str] = []
    deadline = time.monotonic() + seconds

    @settings(max_examples=10**9, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(example):
        if time.monotonic() > deadline:
            raise TimeoutError
        counts["examples"] += 1
        try:
            check(example)
        except Exception as error:  # noqa: BLE001 - a finding, recorded and shown
            counts["findings"] += 1
            findings.append(f"{example!r:.120}: {type(error).__name__}: {error}")

    run._hypothesis_internal_use_seed = seed
    started = time.monotonic()
    try:
        run()
    except* TimeoutError:  # hypothesis reports the deadline as a group of failures, one per example it tried
        pass
    return {"target": name, **counts, "seconds": time.monotonic() - started, "first": findings[:3]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="per target")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nst-fuzz-"))
    model = identity_model(work / "id.onnx")
    good = work / "good.png"
    picture(32, 32).save(good)

    def check_apply(argv: list[str]) -> None:
        out = Path(tempfile.mkdtemp(dir=work))
        result = nst("apply", str(model), str(good), "-o", str(out / "o.png"), *argv)
        assert result.returncode in (0, 1, 2), f"exit {result.returncode}: {result.stderr[-300:]}"
        assert "Traceback" not in result.stderr, result.stderr[-300:]
        assert leftovers(out) == [], "temp file left"

    rows = [
        fuzz("images.read_image (mutated png/jpeg/gif/webp)", mutations, check_reader, args.seconds, args.seed),
        fuzz("nst apply arguments", st.lists(tokens, max_size=8), check_apply, args.seconds, args.seed),
    ]
    print(f"{'target':48} {'examples':>9} {'findings':>9} {'seconds':>8}")
    for row in rows:
        print(f"{row['target']:48} {row['examples']:>9} {row['findings']:>9} {row['seconds']:>8.1f}")
        for line in row["first"]:
            print(f"    {line}")


if __name__ == "__main__":
    main()
