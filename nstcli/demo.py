"""``nst demo``: a generated landscape stylised with a bundled style, offline, on any machine.

By default a bundled model paints it (onnxruntime: the light install, under a second on a CPU);
``--optimize`` runs Gatys optimisation against the bundled ``swirls`` style image instead (the torch extra).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from PIL import Image, ImageDraw

from nstcli import images, styles

if TYPE_CHECKING:
    from nstcli.optimize import Progress  # the engine imports torch: the demo's default path does not

APPLY_STYLE = "starry-night"  # nst demo: a bundled model
DEMO_STYLE = "swirls"  # nst demo --optimize: the bundled style image (the paintings' images are not shipped)


def demo_scene(size: int = 384) -> Image.Image:
    """A simple landscape (sky, sun, hills, trees, lake) drawn by code, ``size`` wide, 3:2."""
    width, height = size, size * 2 // 3
    scene = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(scene)
    for y in range(height):  # sky gradient
        t = y / height
        draw.line([(0, y), (width, y)], fill=(int(90 + 120 * t), int(150 + 80 * t), int(235 - 40 * t)))
    sun = width * 0.75, height * 0.25, width * 0.08
    draw.ellipse([sun[0] - sun[2], sun[1] - sun[2], sun[0] + sun[2], sun[1] + sun[2]], fill=(255, 225, 90))
    draw.polygon([(0, height * 0.6), (width * 0.35, height * 0.35), (width * 0.7, height * 0.62)], fill=(90, 110, 140))
    draw.rectangle([0, height * 0.6, width, height], fill=(70, 150, 70))
    draw.ellipse([width * 0.45, height * 0.72, width * 0.95, height * 0.92], fill=(60, 110, 190))
    for index in range(6):
        x = width * (0.05 + 0.07 * index)
        top, base = height * (0.5 + 0.02 * (index % 2)), height * 0.8
        draw.polygon([(x, top), (x - width * 0.04, base), (x + width * 0.04, base)], fill=(25, 90, 40))
    return scene


@dataclass
class DemoResult:
    image: Image.Image
    seconds: float


def run_demo(size: int, style: str = APPLY_STYLE, provider: str = "auto") -> DemoResult:
    """The demo scene, ``size`` wide, stylised by the bundled model of ``style`` (no torch)."""
    from nstcli.apply.model import Model

    bundled = styles.bundled_model([style], None, "--style")
    start = time.perf_counter()
    model = Model(str(bundled.path), provider)
    model.select_style(bundled.style, None)
    pixels = model.run(images.to_array(demo_scene(size))[None])[0]
    return DemoResult(images.from_array(pixels), time.perf_counter() - start)


def run_optimize_demo(size: int, iterations: int, on_progress: Callable[[Progress], None] | None = None) -> DemoResult:
    """The demo scene optimised against the ``swirls`` style image for ``iterations`` evaluations (torch);
    ``on_progress`` as :func:`nstcli.optimize.run_optimize` reports it."""
    from nstcli.optimize import run_optimize
    from nstcli.settings import OptimizeConfig

    style = images.read_image(styles.style_image(DEMO_STYLE))
    config = OptimizeConfig(size=size, iterations=iterations, seed=0)
    result = run_optimize(demo_scene(), [style], config, on_progress=on_progress)
    return DemoResult(result.image, result.seconds)
