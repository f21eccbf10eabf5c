"""How styles/swirls/swirls.png was made: painterly strokes along a swirling flow field.

Run from the repository root: python styles/swirls/make_swirls.py
"""

import math
import random

from PIL import Image, ImageDraw, ImageFilter

SIZE = 384
PALETTE = [(22, 45, 110), (35, 80, 160), (70, 130, 200), (240, 200, 60), (250, 230, 120), (20, 25, 60)]


def flow_angle(x: float, y: float) -> float:
    """Direction of the strokes at (x, y): a few overlapping vortices."""
    u, v = x / SIZE, y / SIZE
    return 3.0 * math.sin(4.0 * u + 2.0 * math.cos(3.0 * v)) + 2.0 * math.cos(5.0 * v - u)


def main() -> None:
    rng = random.Random(7)
    image = Image.new("RGB", (SIZE, SIZE), PALETTE[0])
    draw = ImageDraw.Draw(image)
    for _ in range(5000):
        x, y = rng.uniform(0, SIZE), rng.uniform(0, SIZE)
        colour = rng.choices(PALETTE, weights=[3, 4, 3, 2, 1, 1])[0]
        points = [(x, y)]
        for _ in range(rng.randint(4, 10)):
            angle = flow_angle(x, y)
            x, y = x + 3.0 * math.cos(angle), y + 3.0 * math.sin(angle)
            points.append((x, y))
        draw.line(points, fill=colour, width=rng.randint(2, 5), joint="curve")
    image.filter(ImageFilter.SMOOTH).save("styles/swirls/swirls.png", optimize=True)


if __name__ == "__main__":
    main()
