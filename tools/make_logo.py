"""Draw the competition's logo: a street scene as a Cityscapes segmentation, in the dataset's own colours.

    python tools/make_logo.py                   # writes cityscapes_competition/logo.png (300x200)
    python tools/make_logo.py --out other.png

The scene is a small 3D street (road, sidewalks, buildings, trees, poles, cars, a bus, people and a
cyclist) projected through a pinhole camera, drawn at 4x and downsampled for smooth edges.
Deterministic: the same code always draws the same picture.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import matplotlib
from cityscapesscripts.helpers.labels import name2label
from PIL import Image, ImageDraw, ImageFilter, ImageFont

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "cityscapes_competition" / "logo.png"
SIZE = (300, 200)
SCALE = 4  # drawn at 4x, then downsampled
HORIZON, CENTER_X, FOCAL = 96.0, 150.0, 220.0  # output pixels
CAMERA_X, CAMERA_HEIGHT = 1.5, 1.6  # metres: in the right-hand lane, at a car roof's height

Point3 = tuple[float, float, float]  # (x right, y up, z forward) in metres


def colour(name: str) -> tuple[int, int, int]:
    return tuple(name2label[name].color)


def project(point: Point3) -> tuple[float, float]:
    """Pinhole projection to canvas pixels (at SCALE)."""
    x, y, z = point
    return ((CENTER_X + FOCAL * (x - CAMERA_X) / z) * SCALE, (HORIZON + FOCAL * (CAMERA_HEIGHT - y) / z) * SCALE)


def polygon(draw: ImageDraw.ImageDraw, points: Sequence[Point3], name: str) -> None:
    draw.polygon([project(p) for p in points], fill=colour(name))


def box(draw: ImageDraw.ImageDraw, x: tuple[float, float], y: tuple[float, float], z: float, name: str) -> None:
    """An upright rectangle facing the camera at depth z."""
    polygon(draw, [(x[0], y[0], z), (x[1], y[0], z), (x[1], y[1], z), (x[0], y[1], z)], name)


def ellipse(draw: ImageDraw.ImageDraw, centre: Point3, radius: tuple[float, float], name: str) -> None:
    (cx, cy), (rx, ry) = project(centre), (FOCAL * SCALE * radius[0] / centre[2], FOCAL * SCALE * radius[1] / centre[2])
    draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=colour(name))


def draw_ground(draw: ImageDraw.ImageDraw) -> None:
    near, far = 0.8, 2000.0
    draw.rectangle((0, 0, SIZE[0] * SCALE, HORIZON * SCALE + 1), fill=colour("sky"))
    for (left, right), name in (((-40, 40), "terrain"), ((-9, 9), "sidewalk"), ((-6, 6), "road")):
        polygon(draw, [(left, 0, near), (right, 0, near), (right, 0, far), (left, 0, far)], name)


def draw_facades(draw: ImageDraw.ImageDraw) -> None:
    """Rows of buildings on both sides, farthest first, with a wall and a fence in front of some."""
    rows = {-12.0: [(5, 26, 14), (26, 44, 19), (44, 70, 12), (70, 120, 17), (120, 400, 13)]}
    rows[12.0] = [(5, 20, 17), (20, 38, 11), (38, 62, 20), (62, 105, 13), (105, 400, 16)]
    for x, segments in rows.items():
        for z0, z1, height in reversed(segments):
            polygon(draw, [(x, 0, z0), (x, height, z0), (x, height, z1), (x, 0, z1)], "building")
    polygon(draw, [(-12, 0, 26), (-12, 2.2, 26), (-12, 2.2, 44), (-12, 0, 44)], "wall")
    polygon(draw, [(9.2, 0, 20), (9.2, 1.3, 20), (9.2, 1.3, 38), (9.2, 0, 38)], "fence")


def draw_tree(draw: ImageDraw.ImageDraw, x: float, z: float, height: float) -> None:
    box(draw, (x - 0.15, x + 0.15), (0, height * 0.6), z, "vegetation")
    ellipse(draw, (x, height * 0.7, z), (height * 0.28, height * 0.3), "vegetation")


def draw_pole(draw: ImageDraw.ImageDraw, x: float, z: float) -> None:
    box(draw, (x - 0.09, x + 0.09), (0, 5.2), z, "pole")
    side = -1 if x > 0 else 1
    box(draw, (min(x, x + side * 1.4), max(x, x + side * 1.4)), (4.9, 5.05), z, "pole")
    box(draw, (x + side * 1.4 - 0.22, x + side * 1.4 + 0.22), (4.0, 5.1), z, "traffic light")
    box(draw, (x - 0.4, x + 0.4), (2.3, 3.1), z - 0.05, "traffic sign")


def draw_vehicle(draw: ImageDraw.ImageDraw, x: float, z: float, width: float, height: float, name: str) -> None:
    """A vehicle seen from behind: body, cabin and the visible part of its side towards the centre."""
    half, length = width / 2, 4.4 if name == "car" else 11.0
    inner = x - half if x > CAMERA_X else x + half
    polygon(
        draw,
        [(inner, 0.25, z), (inner, height * 0.6, z), (inner, height * 0.6, z + length), (inner, 0.25, z + length)],
        name,
    )
    if name == "car":
        box(draw, (x - half, x + half), (0.25, height * 0.6), z, name)
        box(draw, (x - half * 0.8, x + half * 0.8), (height * 0.6, height), z + 0.5, name)
    else:
        box(draw, (x - half, x + half), (0.3, height), z, name)
    for wheel in (x - half * 0.7, x + half * 0.7):
        box(draw, (wheel - 0.18, wheel + 0.18), (0, 0.35), z, name)


def draw_person(draw: ImageDraw.ImageDraw, x: float, z: float, name: str = "person", lift: float = 0.0) -> None:
    ellipse(draw, (x, 1.62 + lift, z), (0.12, 0.13), name)
    polygon(
        draw,
        [(x - 0.22, 0.85 + lift, z), (x + 0.22, 0.85 + lift, z), (x + 0.18, 1.5 + lift, z), (x - 0.18, 1.5 + lift, z)],
        name,
    )
    if lift == 0.0:
        polygon(draw, [(x - 0.2, 0, z), (x - 0.04, 0, z), (x, 0.9, z), (x - 0.18, 0.9, z)], name)
        polygon(draw, [(x + 0.04, 0, z), (x + 0.2, 0, z), (x + 0.18, 0.9, z), (x, 0.9, z)], name)


def draw_cyclist(draw: ImageDraw.ImageDraw, x: float, z: float) -> None:
    box(draw, (x - 0.07, x + 0.07), (0.0, 0.7), z + 0.01, "bicycle")
    box(draw, (x - 0.3, x + 0.3), (0.62, 0.72), z + 0.01, "bicycle")
    draw_person(draw, x, z, "rider", lift=0.05)
    polygon(draw, [(x - 0.17, 0.55, z), (x + 0.17, 0.55, z), (x + 0.2, 0.95, z), (x - 0.2, 0.95, z)], "rider")


def draw_scene() -> Image.Image:
    canvas = Image.new("RGB", (SIZE[0] * SCALE, SIZE[1] * SCALE))
    draw = ImageDraw.Draw(canvas)
    draw_ground(draw)
    draw_facades(draw)
    for x, z, height in ((-7.6, 75, 7), (7.6, 58, 8), (-7.6, 46, 8), (7.6, 40, 9), (-7.6, 26, 8), (10.5, 28, 10)):
        draw_tree(draw, x, z, height)
    for x, z in ((6.9, 24), (-6.9, 30)):
        draw_pole(draw, x, z)
    draw_vehicle(draw, -3.2, 58, 2.6, 3.2, "bus")
    draw_vehicle(draw, 4.6, 40, 1.8, 1.5, "car")
    draw_vehicle(draw, -3.0, 30, 1.8, 1.5, "car")
    draw_vehicle(draw, 4.6, 26, 1.8, 1.5, "car")
    draw_vehicle(draw, 1.6, 15, 1.8, 1.5, "car")
    draw_cyclist(draw, 4.9, 12)
    draw_person(draw, -7.0, 19)
    draw_person(draw, -6.4, 25)
    draw_person(draw, 7.6, 16)
    return canvas


def draw_title(image: Image.Image, text: str = "CITYSCAPES") -> Image.Image:
    """The name across the road, white with a soft shadow."""
    font = ImageFont.truetype(
        str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"), 30 * SCALE
    )
    width = image.width
    shadow = Image.new("L", image.size, 0)
    ImageDraw.Draw(shadow).text((width / 2 + SCALE, 178 * SCALE + SCALE), text, font=font, anchor="ms", fill=190)
    shadow = shadow.filter(ImageFilter.GaussianBlur(3 * SCALE))
    image = Image.composite(Image.new("RGB", image.size, (20, 12, 40)), image, shadow)
    ImageDraw.Draw(image).text((width / 2, 178 * SCALE), text, font=font, anchor="ms", fill=(255, 255, 255))
    return image


def draw_logo() -> Image.Image:
    return draw_title(draw_scene()).resize(SIZE, Image.Resampling.LANCZOS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the PNG to write")
    args = parser.parse_args(argv)
    draw_logo().save(args.out, optimize=True)
    print(f"wrote {args.out} ({SIZE[0]}x{SIZE[1]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
