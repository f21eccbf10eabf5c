"""Loss logs (CSV/JSON), loss-curve plots and contact sheets (PNG, drawn with Pillow: no plotting dependency)."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from nstcli.errors import UsageError
from nstcli.images import encode_image, write_bytes_atomic

CURVES = {"total": (20, 20, 20), "content": (31, 119, 180), "style": (214, 39, 40), "tv": (44, 160, 44)}
LOG_SUFFIXES = (".csv", ".json")


def check_log_path(path: str | Path) -> None:
    if Path(path).suffix.lower() not in LOG_SUFFIXES:
        raise UsageError(f"{path}: loss log must end in .csv or .json")


def write_loss_log(rows: list[dict[str, float]], path: str | Path, config: dict | None = None) -> None:
    """Rows of {step or evaluation, content, style, tv, total, ...} as CSV, or JSON with the config."""
    check_log_path(path)
    if Path(path).suffix.lower() == ".json":
        data = json.dumps({"config": config, "rows": rows}, indent=1).encode()
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["total"])
        writer.writeheader()
        writer.writerows(rows)
        data = buffer.getvalue().encode()
    write_bytes_atomic(data, path)


def _ticks(low: float, high: float) -> list[float]:
    return [10.0**power for power in range(math.floor(low), math.ceil(high) + 1)]


def _x_ticks(low: float, high: float) -> list[float]:
    """Four to ten ticks at round numbers (1, 2 or 5 times a power of ten; whole numbers: steps and evaluations
    are counted) between ``low`` and ``high``, each labelled where it is."""
    rough = (high - low) / 8
    power = 10.0 ** math.floor(math.log10(rough))
    step = max(1.0, next(factor * power for factor in (1, 2, 5, 10) if factor * power >= rough))
    return [index * step for index in range(math.ceil(low / step), math.floor(high / step) + 1)]


def plot_losses(rows: list[dict[str, float]], path: str | Path, x_key: str = "evaluation") -> None:
    """Loss curves on a log scale (one line per term that is ever positive), written as PNG."""
    if Path(path).suffix.lower() != ".png":
        raise UsageError(f"{path}: plots are written as .png")
    width, height, margin = 900, 540, 70
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    curves = {name: colour for name, colour in CURVES.items() if any(row.get(name, 0) > 0 for row in rows)}
    values = [math.log10(row[name]) for row in rows for name in curves if row.get(name, 0) > 0]
    if not rows or not values:
        draw.text((margin, height // 2), "no positive losses to plot", fill="black")
        write_bytes_atomic(encode_image(image, "PNG"), path)
        return
    xs = [row[x_key] for row in rows]
    x_low, x_high = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y_low, y_high = math.floor(min(values)), math.ceil(max(values)) + (min(values) == max(values))

    def point(x: float, log_y: float) -> tuple[float, float]:
        px = margin + (x - x_low) / (x_high - x_low) * (width - 2 * margin)
        py = height - margin - (log_y - y_low) / (y_high - y_low) * (height - 2 * margin)
        return px, py

    draw.rectangle([margin, margin, width - margin, height - margin], outline="black")
    for tick in _ticks(y_low, y_high):
        _, py = point(x_low, math.log10(tick))
        draw.line([margin, py, width - margin, py], fill=(225, 225, 225))
        draw.text((5, py - 6), f"{tick:.0e}", fill="black")
    for x in _x_ticks(x_low, x_high):
        px, _ = point(x, y_low)
        draw.line([px, height - margin, px, height - margin + 4], fill="black")
        draw.text((px - 10, height - margin + 8), f"{x:.0f}", fill="black")
    draw.text((width // 2 - 30, height - 30), x_key, fill="black")
    for index, (name, colour) in enumerate(curves.items()):
        line = [point(row[x_key], math.log10(row[name])) for row in rows if row.get(name, 0) > 0]
        if len(line) > 1:
            draw.line(line, fill=colour, width=2)
        draw.text((width - margin - 90, margin + 8 + 16 * index), f"- {name}", fill=colour)
    for index, name in enumerate(name for name in CURVES if name not in curves and any(name in row for row in rows)):
        # a term that is always 0 (e.g. --tv-weight 0) has no place on a log scale: said, not silently left out
        draw.text((width - margin - 90, margin + 8 + 16 * (len(curves) + index)), f"  {name}: 0", fill=CURVES[name])
    write_bytes_atomic(encode_image(image, "PNG"), path)



Tile = tuple[Image.Image, list[str]]  # an image and its caption lines
SHEET_FONT_SIZE = 13
SHEET_GAP = 8


def _fit(image: Image.Image, cell: int) -> Image.Image:
    """Scale up or down so the long side is ``cell`` (small results stay readable)."""
    scale = cell / max(image.size)
    return image.convert("RGB").resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """Split ``text`` into lines at most ``width`` pixels wide: after a '+' or ',' where possible, else anywhere."""
    lines = [""]
    for piece in re.split(r"(?<=[+,])", text):
        if lines[-1] and font.getlength(lines[-1] + piece) > width:
            lines.append("")
        lines[-1] += piece
    wrapped = []
    for line in lines:
        while len(line) > 1 and font.getlength(line) > width:
            cut = max((i for i in range(1, len(line)) if font.getlength(line[:i]) <= width), default=1)
            wrapped.append(line[:cut])
            line = line[cut:]
        wrapped.append(line)
    return wrapped


def contact_sheet(rows: list[list[Tile]], cell: int = 256, title: str | None = None) -> Image.Image:
    """A grid of captioned thumbnails: each image scaled to fit a ``cell`` x ``cell`` square, its caption below."""
    font = ImageFont.load_default(size=SHEET_FONT_SIZE)
    line = SHEET_FONT_SIZE + 4
    fitted = [
        [(_fit(image, cell), [part for text in caption for part in _wrap(text, font, cell)]) for image, caption in row]
        for row in rows
    ]
    heights = [max((thumb.height for thumb, _ in row), default=0) for row in fitted]  # each row as tall as needed
    captions = [max((len(caption) for _, caption in row), default=0) * line for row in fitted]
    columns = max((len(row) for row in rows), default=1)
    top = line + SHEET_GAP if title else 0
    total = sum(height + text + 2 * SHEET_GAP for height, text in zip(heights, captions))
    sheet = Image.new("RGB", (SHEET_GAP + columns * (cell + SHEET_GAP), SHEET_GAP + top + total), "white")
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((SHEET_GAP, SHEET_GAP), title, fill="black", font=font)
    y = SHEET_GAP + top
    for row, height, text in zip(fitted, heights, captions):
        for c, (thumb, caption) in enumerate(row):
            x = SHEET_GAP + c * (cell + SHEET_GAP)
            sheet.paste(thumb, (x + (cell - thumb.width) // 2, y + (height - thumb.height) // 2))
            for i, words in enumerate(caption):
                draw.text((x, y + height + SHEET_GAP // 2 + i * line), words, fill="black", font=font)
        y += height + text + 2 * SHEET_GAP
    return sheet


def write_contact_sheet(rows: list[list[Tile]], path: str | Path, cell: int = 256, title: str | None = None) -> None:
    if Path(path).suffix.lower() != ".png":
        raise UsageError(f"{path}: contact sheets are written as .png")
    write_bytes_atomic(encode_image(contact_sheet(rows, cell, title), "PNG"), path)
