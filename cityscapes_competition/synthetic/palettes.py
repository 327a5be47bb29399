"""The colours things are painted in: buildings, vehicles, skin, hair, clothes, signs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .dataset import RGB

BUILDING_COLORS: tuple[RGB, ...] = (
    (190, 170, 140),
    (160, 140, 120),
    (205, 195, 175),
    (150, 150, 155),
    (170, 120, 100),
    (215, 205, 185),
    (125, 115, 108),
    (185, 160, 150),
    (200, 180, 120),
    (140, 150, 160),
)
CAR_COLORS: tuple[RGB, ...] = (
    (230, 230, 232),
    (25, 25, 28),
    (150, 152, 158),
    (175, 30, 30),
    (30, 60, 140),
    (90, 95, 100),
    (200, 200, 205),
    (60, 75, 60),
    (120, 20, 25),
    (210, 190, 150),
    (40, 40, 60),
    (235, 235, 240),
)
TRUCK_COLORS: tuple[RGB, ...] = ((235, 235, 235), (190, 30, 30), (30, 70, 150), (240, 190, 40), (90, 90, 95))
BUS_COLORS: tuple[RGB, ...] = ((240, 200, 40), (232, 232, 232), (200, 40, 40), (40, 110, 70), (60, 90, 170))
TRAIN_COLORS: tuple[RGB, ...] = ((215, 40, 40), (240, 240, 240), (245, 200, 40), (40, 120, 80))
CARAVAN_COLORS: tuple[RGB, ...] = ((235, 232, 220), (242, 242, 238), (225, 215, 190))
TRAILER_COLORS: tuple[RGB, ...] = ((150, 150, 150), (95, 95, 95), (200, 200, 200), (60, 80, 120))
SKIN: tuple[RGB, ...] = ((224, 172, 140), (198, 134, 100), (141, 85, 54), (240, 200, 170), (170, 115, 80))
HAIR: tuple[RGB, ...] = ((30, 25, 20), (90, 60, 30), (200, 170, 110), (60, 60, 60), (150, 150, 150))
CLOTHES: tuple[RGB, ...] = (
    (30, 35, 60),
    (200, 40, 40),
    (230, 230, 230),
    (40, 40, 40),
    (60, 110, 170),
    (230, 190, 60),
    (90, 130, 70),
    (150, 70, 150),
    (110, 90, 70),
    (240, 130, 60),
    (20, 20, 25),
)
PANTS: tuple[RGB, ...] = ((30, 35, 60), (40, 40, 40), (70, 70, 80), (110, 90, 70), (20, 20, 25), (60, 80, 120))
SIGN_COLORS: tuple[RGB, ...] = ((30, 70, 170), (200, 30, 30), (238, 238, 238), (240, 200, 20), (20, 110, 60))
GLASS: RGB = (55, 65, 80)
TYRE: RGB = (22, 22, 24)
RIM: RGB = (140, 140, 145)
TAIL: RGB = (190, 25, 25)
HEAD: RGB = (240, 240, 225)
PLATE: RGB = (232, 232, 222)


def pick(rng: np.random.Generator, options: Sequence[RGB]) -> RGB:
    return options[int(rng.integers(len(options)))]


def vary(rng: np.random.Generator, color: RGB, amount: float = 0.12) -> RGB:
    scale = rng.uniform(1 - amount, 1 + amount)
    shift = rng.normal(0.0, 40 * amount, 3)
    r, g, b = (float(np.clip(c * scale + s, 0, 255)) for c, s in zip(color, shift, strict=True))
    return (r, g, b)


def shade(color: RGB, factor: float) -> RGB:
    r, g, b = (float(min(255.0, c * factor)) for c in color)
    return (r, g, b)
