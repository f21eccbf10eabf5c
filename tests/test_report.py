"""Loss plots: where the step axis is labelled."""

from __future__ import annotations

import pytest

from nstcli.report import _x_ticks


@pytest.mark.parametrize("low, high", [(1, 6), (10, 20), (1, 20), (1, 330), (1, 450), (0, 100_000)])
def test_the_step_axis_is_labelled_at_round_whole_numbers_inside_the_range(low, high):
    ticks = _x_ticks(low, high)
    step = ticks[1] - ticks[0]
    assert 3 <= len(ticks) <= 10 and all(low <= tick <= high and tick == int(tick) for tick in ticks)
    assert all(b - a == step for a, b in zip(ticks, ticks[1:]))
    assert str(int(step)).rstrip("0") in ("1", "2", "5")  # 1, 2 or 5 times a power of ten
