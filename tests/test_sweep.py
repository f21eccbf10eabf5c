"""Parameter sweeps: parsing, planning, the contact sheet and the CSV (nst optimize --sweep)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from PIL import Image

from nstcli.errors import UsageError
from nstcli.settings import OptimizeConfig
from nstcli.report import contact_sheet
from nstcli.sweep import parse_axes, parse_axis, plan_sweep
from tests.conftest import assert_one_line_error, gradient_image, nst, stripes_image


def test_axes_parse_by_field_type() -> None:
    assert parse_axis("style-weight=1e-4,1,1e11").values == [1e-4, 1.0, 1e11]
    assert parse_axis("net=vgg19,vgg16").values == ["vgg19", "vgg16"]
    assert parse_axis("iterations=5,10").values == [5, 10]
    assert parse_axis("style-layers=relu1_1,relu1_1+relu2_1").values == [["relu1_1"], ["relu1_1", "relu2_1"]]
    assert parse_axis("style-blend=1+0,0.5+0.5").values == [[1.0, 0.0], [0.5, 0.5]]
    for bad, message in [("size=big", "does not fit"), ("colour=1,2", "cannot vary"), ("style-weight", "expected")]:
        with pytest.raises(UsageError, match=message):
            parse_axis(bad)
    with pytest.raises(UsageError, match="given twice"):
        parse_axes(["tv-weight=0,1", "tv-weight=2"])


def test_plan_is_the_cartesian_product_validated_up_front(tmp_path: Path) -> None:
    axes = parse_axes(["style-weight=1,10,100", "noise-ratio=0,1"])
    plan = plan_sweep(OptimizeConfig(), axes, tmp_path / "sheet.png")
    assert len(plan.runs) == 6
    assert [(run.config.loss.style_weight, run.config.noise_ratio) for run in plan.runs[:2]] == [(1.0, 0.0), (1.0, 1.0)]
    assert plan.runs[0].path.name == "sheet.01_style-weight=1_noise-ratio=0.png"
    assert plan.csv == tmp_path / "sheet.csv"
    with pytest.raises(UsageError, match="sweep run 2 .*noise-ratio"):
        plan_sweep(OptimizeConfig(), parse_axes(["noise-ratio=0,2"]), tmp_path / "sheet.png")


def test_contact_sheet_grid_size() -> None:
    tile = (Image.new("RGB", (40, 20), "red"), ["a=1", "content 1"])
    sheet = contact_sheet([[tile], [tile, tile, tile]], cell=64, title="t")
    assert sheet.width > 3 * 64 and sheet.height > 2 * 64
    long = (tile[0], ["style-layers=" + "+".join(f"relu{i}_1" for i in range(1, 6)) * 2])
    assert contact_sheet([[long]], cell=64).height > contact_sheet([[tile]], cell=64).height  # wrapped, not cut


def test_cli_sweep_writes_results_sheet_and_csv(tmp_path: Path) -> None:
    gradient_image(48, 32).save(tmp_path / "c.png")
    stripes_image().save(tmp_path / "s.png")
    args = ["optimize", "c.png", "s.png", "--size", "32", "--iterations", "6", "--device", "cpu", "--judge-size", "32",
            "--sweep", "style-weight=1,1e5", "--sweep", "tv-weight=0,1", "-o", "sheet.png"]  # fmt: skip
    result = nst(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b""
    outputs = sorted(path.name for path in tmp_path.glob("sheet.0*.png"))
    assert len(outputs) == 4 and outputs[-1] == "sheet.04_style-weight=1e5_tv-weight=1.png"
    rows = list(csv.DictReader(open(tmp_path / "sheet.csv")))
    assert [row["style-weight"] for row in rows] == ["1", "1", "1e5", "1e5"]
    assert float(rows[2]["style"]) < float(rows[0]["style"])  # more style weight: lower judged style loss
    sheet = Image.open(tmp_path / "sheet.png")
    assert sheet.width > 2 * 256 and sheet.height > 3 * 170  # header row + 2x2 grid of 256x171 tiles
    again = nst(*args, cwd=tmp_path)
    assert_one_line_error(again, 2, "already exists")
    bad = nst(*args[:-2], "-o", "-", cwd=tmp_path)
    assert_one_line_error(bad, 2, "--sweep writes a contact sheet")
