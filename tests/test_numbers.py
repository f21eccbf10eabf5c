"""Every numeric flag of every command, drawn by hypothesis: NaN, infinities, zero, negatives and
absurdly large values end in one stderr line and exit 1 or 2, never a traceback or a file.

Each command gets inputs that do not exist, so a value in range ends at the missing input (after
all checks) and no run does real work; a value out of range must be refused first, naming its flag.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import typer
from hypothesis import HealthCheck, given, settings, strategies as st

from nstcli.cli import app
from tests.conftest import nst

# Per command: arguments that pass parsing but can never start work (missing inputs, or an
# unknown --arch for bench, which checks its numbers before its architectures).
BASE_ARGS = {
    "optimize": ["missing.png", "missing.png", "-o", "out.png"],
    "score": ["missing.png", "missing.png", "missing.png"],
    "demo": ["--optimize", "-o", "missing-folder/out.png"],  # --iterations counts only with --optimize
    "apply": ["missing.png", "-o", "out.png", "--style", "starry-night"],
    "train": ["-o", "m.pt", "--style-image", "missing.png", "--data", "missing-folder"],
    "bench": ["--arch", "nope"],
}


def numeric_flags() -> list[tuple[str, str, bool]]:
    """(command, flag, is an integer) for every int or float option of every command."""
    group = typer.main.get_command(app)
    found = []
    for name in BASE_ARGS:
        for param in group.commands[name].params:
            kind = getattr(param.type, "name", "")
            if param.param_type_name == "option" and kind in ("int", "integer", "float"):
                found.append((name, max(param.opts, key=len), kind in ("int", "integer")))
    return found


FLAGS = numeric_flags()
NUMBERS = st.one_of(
    st.sampled_from([0, -1, 2**63, 10**30, math.nan, math.inf, -math.inf, 1e-300]),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
)


def test_every_command_has_numeric_flags_under_test():
    commands = {command for command, _, _ in FLAGS}
    assert commands == set(BASE_ARGS) and len(FLAGS) >= 55


@pytest.mark.parametrize(("command", "flag", "integer"), FLAGS, ids=[f"{c} {f}" for c, f, _ in FLAGS])
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=NUMBERS)
def test_a_numeric_flag_never_crashes_or_writes(tmp_path: Path, command: str, flag: str, integer: bool, value):
    text = str(int(value)) if integer and isinstance(value, float) and math.isfinite(value) else str(value)
    result = nst(command, *BASE_ARGS[command], flag, text, cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode in (1, 2), result.stderr
    assert len(lines) == 1 and lines[0].startswith("nst: error:"), result.stderr
    assert "Traceback" not in result.stderr and result.stdout == b""
    if isinstance(value, float) and not math.isfinite(value) and not integer:
        assert flag in lines[0], lines[0]  # refused by its range check, not by what came after
    assert not any(tmp_path.iterdir())  # nothing written
