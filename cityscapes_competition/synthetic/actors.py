"""Vehicles and people standing on the ground plane, seen from the front, the back or the side."""

from __future__ import annotations

import numpy as np

from .dataset import BICYCLE, BUS, CAR, CARAVAN, MOTORCYCLE, PERSON, RGB, RIDER, TRAILER, TRAIN, TRUCK
from .ground import xz_quad
from .palettes import (
    BUS_COLORS,
    CAR_COLORS,
    CARAVAN_COLORS,
    CLOTHES,
    GLASS,
    HAIR,
    HEAD,
    PANTS,
    PLATE,
    RIM,
    SKIN,
    TAIL,
    TRAILER_COLORS,
    TRAIN_COLORS,
    TRUCK_COLORS,
    TYRE,
    pick,
    shade,
    vary,
)
from .primitives import Part, Plane, Scene, Surface, disc, poly, rect


def _front(z: float, x: float = 0.0, direction: float = 1.0) -> Plane:
    return Plane(Surface.FRONT, z, x, direction)


def vehicle_dims(rng: np.random.Generator, kind: str) -> tuple[float, float, float]:
    ranges = {
        "car": ((1.7, 1.95), (1.38, 1.6), (3.9, 4.9)),
        "van": ((1.9, 2.05), (1.9, 2.5), (4.8, 5.9)),
        "truck": ((2.4, 2.55), (2.8, 3.8), (6.5, 12.0)),
        "bus": ((2.5, 2.55), (2.95, 3.3), (11.0, 18.0)),
        "caravan": ((2.1, 2.4), (2.5, 3.1), (5.5, 7.5)),
        "trailer": ((1.6, 2.3), (1.0, 2.6), (2.5, 5.5)),
        "train": ((2.3, 2.65), (3.3, 3.7), (25.0, 40.0)),
    }[kind]
    w, h, length = (float(rng.uniform(lo, hi)) for lo, hi in ranges)
    return w, h, length


_VEHICLE_LABEL = {
    "car": CAR,
    "van": CAR,
    "truck": TRUCK,
    "bus": BUS,
    "caravan": CARAVAN,
    "trailer": TRAILER,
    "train": TRAIN,
}


def _vehicle_color(rng: np.random.Generator, kind: str) -> RGB:
    palette = {
        "car": CAR_COLORS,
        "van": CAR_COLORS,
        "truck": TRUCK_COLORS,
        "bus": BUS_COLORS,
        "caravan": CARAVAN_COLORS,
        "trailer": TRAILER_COLORS,
        "train": TRAIN_COLORS,
    }[kind]
    return vary(rng, pick(rng, palette), 0.06)


def _wheel(cs: float, r: float) -> list[Part]:
    return [Part(disc(cs, r, r, n=12), TYRE), Part(disc(cs, r, r * 0.55, n=10), RIM)]


def _side_profile(kind: str, h: float, length: float, color: RGB) -> list[Part]:
    """A vehicle seen from the side, rear at s = 0, front at s = length."""
    L = length
    dark = shade(color, 0.55)
    if kind == "car":
        parts = [
            Part(poly((0, 0.25), (L, 0.25), (L, 0.68), (0.96 * L, 0.82), (0.75 * L, 0.9), (0, 0.92)), color),
            Part(poly((0.06 * L, 0.9), (0.24 * L, h), (0.6 * L, h), (0.78 * L, 0.9)), color),
            Part(
                poly((0.11 * L, 0.95), (0.26 * L, h - 0.06), (0.58 * L, h - 0.06), (0.72 * L, 0.95)),
                GLASS,
                no_stereo=True,
            ),
            Part(rect(0.0, 0.6, 0.03 * L, 0.78), TAIL),
            Part(rect(0.97 * L, 0.58, L, 0.68), HEAD),
        ]
        return parts + _wheel(0.18 * L, 0.31) + _wheel(0.8 * L, 0.31)
    if kind in ("van", "caravan"):
        parts = [
            Part(poly((0, 0.3), (L, 0.3), (L, 0.9), (0.92 * L, h * 0.8), (0.82 * L, h), (0, h)), color),
            Part(rect(0.0, 0.3, L, 0.45), dark),
            Part(poly((0.84 * L, h * 0.62), (0.91 * L, h * 0.62), (0.84 * L, h * 0.95)), GLASS, no_stereo=True),
        ]
        if kind == "caravan":
            parts += [
                Part(rect(0.0, h * 0.45, 0.82 * L, h * 0.5), shade(color, 0.6)),
                Part(rect(0.2 * L, h * 0.55, 0.4 * L, h * 0.8), GLASS),
                Part(rect(0.5 * L, 0.45, 0.62 * L, h * 0.85), shade(color, 0.85)),
            ]
        else:
            parts.append(Part(rect(0.3 * L, h * 0.55, 0.75 * L, h * 0.85), GLASS, no_stereo=True))
        return parts + _wheel(0.2 * L, 0.33) + _wheel(0.82 * L, 0.33)
    if kind == "truck":
        cab = 2.3
        parts = [
            Part(rect(0, 0.5, L - cab - 0.2, h), color),
            Part(rect(0, 0.4, L, 0.7), TYRE),
            Part(poly((L - cab, 0.5), (L, 0.5), (L, 2.2), (L - 0.3, 2.9), (L - cab, 2.95)), shade(color, 0.9)),
            Part(poly((L - 1.2, 1.7), (L - 0.05, 1.7), (L - 0.35, 2.7), (L - 1.2, 2.75)), GLASS, no_stereo=True),
        ]
        return parts + _wheel(0.18 * L, 0.5) + _wheel(0.3 * L, 0.5) + _wheel(L - 1.3, 0.5)
    if kind in ("bus", "train"):
        floor = 0.35 if kind == "bus" else 0.9
        parts = [Part(rect(0, floor, L, h), color), Part(rect(0, floor + 0.75, L, h - 0.45), GLASS, no_stereo=True)]
        for s in np.arange(0.6, L - 0.4, 1.6):
            parts.append(Part(rect(s, floor + 0.7, s + 0.15, h - 0.4), color))
        for s in np.arange(L * 0.15, L - 1.5, 7.0 if kind == "bus" else 6.5):
            parts.append(Part(rect(s, floor + 0.05, s + 1.2, h - 0.35), shade(color, 0.6)))
        parts.append(Part(rect(0, floor, L, floor + 0.15), shade(color, 0.5)))
        if kind == "train":
            parts.append(Part(poly((L * 0.4, h), (L * 0.45, h + 1.2), (L * 0.5, h + 1.2), (L * 0.42, h)), TYRE))
            parts.append(Part(rect(L * 0.2, 0.0, L * 0.8, floor), TYRE))
            return parts
        return parts + _wheel(0.2 * L, 0.5) + _wheel(0.8 * L, 0.5)
    # trailer
    parts = [Part(rect(0, 0.45, L - 0.8, h), color), Part(rect(L - 0.8, 0.45, L, 0.55), TYRE)]
    return parts + _wheel(0.5 * L, 0.32)


def _end_profile(kind: str, w: float, h: float, front: bool, color: RGB) -> list[Part]:
    """A vehicle seen from behind (or from the front when ``front``), centred on s = 0."""
    hw = w / 2
    dark = shade(color, 0.5)
    lamp = HEAD if front else TAIL
    wheels = [Part(rect(-hw + 0.02, 0.0, -hw + 0.3, 0.35), TYRE), Part(rect(hw - 0.3, 0.0, hw - 0.02, 0.35), TYRE)]
    if kind == "car":
        glass_top = h - 0.06
        parts = [
            Part(rect(-hw, 0.22, hw, 0.92), color),
            Part(poly((-0.44 * w, 0.9), (0.44 * w, 0.9), (0.36 * w, h), (-0.36 * w, h)), color),
            Part(
                poly(
                    (-0.38 * w, 0.97 if not front else 0.93),
                    (0.38 * w, 0.97 if not front else 0.93),
                    (0.31 * w, glass_top),
                    (-0.31 * w, glass_top),
                ),
                GLASS,
                no_stereo=True,
            ),
            Part(rect(-hw, 0.22, hw, 0.36), dark),
            Part(rect(-hw + 0.05, 0.62, -hw + 0.38, 0.76), lamp),
            Part(rect(hw - 0.38, 0.62, hw - 0.05, 0.76), lamp),
            Part(rect(-0.26, 0.38, 0.26, 0.5), PLATE),
        ]
        if front:
            parts += [Part(rect(-hw - 0.12, 0.95, -hw, 1.05), color), Part(rect(hw, 0.95, hw + 0.12, 1.05), color)]
        return wheels + parts
    if kind in ("van", "caravan", "truck", "bus", "trailer", "train"):
        floor = {"train": 0.9, "truck": 0.5, "trailer": 0.45}.get(kind, 0.3)
        parts = [
            Part(rect(-hw, floor, hw, h), color),
            Part(rect(-hw + 0.1, floor - 0.15, hw - 0.1, floor + 0.1), TYRE),
        ]
        if kind in ("bus", "train") or (front and kind in ("truck", "van")):
            top = h - 0.3 if kind != "truck" else min(h, 2.8) - 0.2
            parts.append(Part(rect(-hw + 0.1, 1.2 if kind != "train" else 1.7, hw - 0.1, top), GLASS, no_stereo=True))
        elif kind == "caravan":
            parts.append(Part(rect(-0.4 * w, h * 0.5, 0.4 * w, h * 0.78), GLASS))
            parts.append(Part(rect(-hw, h * 0.42, hw, h * 0.47), shade(color, 0.6)))
        else:  # rear doors
            parts.append(Part(rect(-0.01, floor + 0.1, 0.01, h - 0.1), dark))
        parts += [
            Part(rect(-hw + 0.05, floor + 0.2, -hw + 0.3, floor + 0.4), lamp),
            Part(rect(hw - 0.3, floor + 0.2, hw - 0.05, floor + 0.4), lamp),
        ]
        return (wheels if kind != "train" else []) + parts
    raise ValueError(kind)


def vehicle(
    scene: Scene,
    kind: str,
    x: float,
    z: float,
    oncoming: bool,
    inst: int | None = None,
    dims: tuple[float, float, float] | None = None,
) -> None:
    """A box vehicle driving along the street, its near end at depth ``z``, centred on ``x``."""
    rng = scene.rng
    w, h, length = dims or vehicle_dims(rng, kind)
    color = _vehicle_color(rng, kind)
    label = _VEHICLE_LABEL[kind]
    inst = scene.instance(label) if inst is None else inst

    def draw() -> None:
        x0, x1 = x - w / 2, x + w / 2
        side_x = x1 if x1 < -0.3 else (x0 if x0 > 0.3 else None)
        if side_x is not None:
            plane = Plane(Surface.SIDE, side_x, z + length if oncoming else z, -1.0 if oncoming else 1.0)
            scene.parts(plane, _side_profile(kind, h, length, color), label, inst)
        scene.parts(_front(z, x), _end_profile(kind, w, h, oncoming, color), label, inst)

    _vehicle_shadow(scene, x, z, w, length)
    scene.schedule(z, draw)


def _vehicle_shadow(scene: Scene, x: float, z: float, w: float, length: float) -> None:
    scene.ground_shadow(xz_quad(x - w / 2 - 0.1, x + w / 2 + 0.1, z - 0.2, z + length), 0.55)


def crossing_vehicle(scene: Scene, kind: str, x: float, z: float, direction: float, inst: int | None = None) -> None:
    """A vehicle on the crossing street, seen from the side (its side is a plane z = const)."""
    rng = scene.rng
    w, h, length = vehicle_dims(rng, kind)
    color = _vehicle_color(rng, kind)
    label = _VEHICLE_LABEL[kind]
    inst = scene.instance(label) if inst is None else inst
    rear = x - direction * length / 2
    plane = _front(z, rear, direction)
    scene.ground_shadow(xz_quad(x - length / 2, x + length / 2, z - 0.1, z + w), 0.5)
    scene.schedule(z, lambda: scene.parts(plane, _side_profile(kind, h, length, color), label, inst))


def _person_parts(rng: np.random.Generator, height: float, pose: str) -> list[Part]:
    """A pedestrian, centred on s = 0, feet at y = 0. pose: front | walk (side view)."""
    H = height
    skin, hair = pick(rng, SKIN), pick(rng, HAIR)
    shirt, pants = vary(rng, pick(rng, CLOTHES), 0.1), vary(rng, pick(rng, PANTS), 0.1)
    shoes = shade(pants, 0.5)
    hip, shoulder = 0.52 * H, 0.81 * H
    head_y, head_r = 0.925 * H, 0.064 * H
    if pose == "front":
        legs = [
            Part(poly((-0.095 * H, 0.02), (-0.02 * H, 0.02), (-0.005 * H, hip), (-0.095 * H, hip)), pants),
            Part(poly((0.02 * H, 0.02), (0.095 * H, 0.02), (0.095 * H, hip), (0.005 * H, hip)), pants),
            Part(rect(-0.1 * H, 0.0, -0.02 * H, 0.04 * H), shoes),
            Part(rect(0.02 * H, 0.0, 0.1 * H, 0.04 * H), shoes),
        ]
        torso = poly(
            (-0.13 * H, shoulder), (0.13 * H, shoulder), (0.105 * H, hip - 0.03 * H), (-0.105 * H, hip - 0.03 * H)
        )
        arms = [
            Part(
                poly(
                    (-0.165 * H, shoulder - 0.01 * H),
                    (-0.115 * H, shoulder),
                    (-0.125 * H, 0.49 * H),
                    (-0.17 * H, 0.49 * H),
                ),
                shirt,
            ),
            Part(
                poly(
                    (0.115 * H, shoulder), (0.165 * H, shoulder - 0.01 * H), (0.17 * H, 0.49 * H), (0.125 * H, 0.49 * H)
                ),
                shirt,
            ),
            Part(disc(-0.148 * H, 0.47 * H, 0.025 * H, n=6), skin),
            Part(disc(0.148 * H, 0.47 * H, 0.025 * H, n=6), skin),
        ]
    else:
        stride = float(rng.uniform(0.08, 0.2)) * H
        legs = [
            Part(
                poly((-stride - 0.03 * H, 0.0), (-stride + 0.04 * H, 0.0), (0.04 * H, hip), (-0.04 * H, hip)),
                shade(pants, 0.85),
            ),
            Part(poly((stride - 0.04 * H, 0.0), (stride + 0.05 * H, 0.0), (0.04 * H, hip), (-0.04 * H, hip)), pants),
            Part(rect(stride - 0.04 * H, 0.0, stride + 0.08 * H, 0.035 * H), shoes),
        ]
        torso = poly(
            (-0.06 * H, shoulder), (0.07 * H, shoulder), (0.06 * H, hip - 0.03 * H), (-0.06 * H, hip - 0.03 * H)
        )
        swing = float(rng.uniform(-0.1, 0.1)) * H
        arms = [
            Part(
                poly(
                    (-0.03 * H, shoulder),
                    (0.03 * H, shoulder),
                    (swing + 0.03 * H, 0.5 * H),
                    (swing - 0.03 * H, 0.5 * H),
                ),
                shade(shirt, 0.85),
            )
        ]
    parts = [*legs, Part(torso, shirt), *arms]
    parts.append(Part(rect(-0.025 * H, shoulder - 0.01 * H, 0.025 * H, head_y - head_r * 0.5), skin))
    parts.append(Part(disc(0.0, head_y, head_r, head_r * 1.15, n=12), skin))
    parts.append(
        Part(
            poly((-head_r, head_y + 0.1 * head_r), (head_r, head_y + 0.1 * head_r), (0.0, head_y + head_r * 1.25)), hair
        )
    )
    if rng.random() < 0.25:  # a bag or backpack
        parts.append(Part(rect(0.1 * H, 0.45 * H, 0.2 * H, 0.6 * H), vary(rng, pick(rng, CLOTHES))))
    return parts


def _person(scene: Scene, x: float, z: float, inst: int | None = None, height: float | None = None) -> None:
    rng = scene.rng
    child = rng.random() < 0.08
    H = height or float(rng.uniform(1.0, 1.35) if child else rng.normal(1.74, 0.08))
    pose = "front" if rng.random() < 0.6 else "walk"
    parts = _person_parts(rng, H, pose)
    inst = scene.instance(PERSON) if inst is None else inst
    direction = float(rng.choice([-1.0, 1.0]))
    scene.ground_shadow(disc(x, z, 0.35, 0.25, 8), 0.4)
    scene.schedule(z, lambda: scene.parts(_front(z, x, direction), parts, PERSON, inst))


def bicycle_parts(rng: np.random.Generator, view: str, motor: bool) -> tuple[list[Part], float]:
    """A bicycle or motorcycle (side view: rear wheel at s = 0.35); returns parts and seat height."""
    frame = vary(rng, pick(rng, CLOTHES if not motor else CAR_COLORS), 0.1)
    if view == "side":
        if motor:
            r, wheelbase = 0.32, 1.45
            parts = [
                *_wheel(r, r),
                *_wheel(r + wheelbase, r),
                Part(poly((r, r), (r + wheelbase, r + 0.1), (r + wheelbase - 0.2, 0.95), (r + 0.2, 0.8)), frame),
                Part(rect(r - 0.1, 0.75, r + 0.6, 0.85), TYRE),
                Part(
                    poly(
                        (r + wheelbase - 0.15, 0.9),
                        (r + wheelbase, 1.15),
                        (r + wheelbase - 0.05, 1.2),
                        (r + wheelbase - 0.25, 0.95),
                    ),
                    TYRE,
                ),
            ]
            return parts, 0.82
        r, wheelbase = 0.34, 1.05
        t = 0.05
        parts = [
            *_wheel(r, r),
            *_wheel(r + wheelbase, r),
            Part(poly((r, r), (r + 0.5, r - t), (r + 0.5 + t, r + t), (r + t, r + 2 * t)), frame),
            Part(poly((r + 0.5, r), (r + 0.35, 0.95), (r + 0.35 - 2 * t, 0.95), (r + 0.5 - t, r)), frame),
            Part(
                poly((r + 0.35, 0.9), (r + wheelbase - 0.12, 0.88), (r + wheelbase - 0.1, 0.95), (r + 0.35, 0.97)),
                frame,
            ),
            Part(
                poly(
                    (r + wheelbase, r),
                    (r + wheelbase - 0.15, 1.05),
                    (r + wheelbase - 0.1, 1.05),
                    (r + wheelbase + t, r),
                ),
                frame,
            ),
            Part(rect(r + 0.22, 0.95, r + 0.45, 1.0), TYRE),
        ]
        return parts, 0.97
    half = 0.3 if not motor else 0.42
    parts = [
        Part(rect(-0.03 if not motor else -0.07, 0.0, 0.03 if not motor else 0.07, 0.68 if not motor else 0.62), TYRE),
        Part(rect(-half, 1.0 if not motor else 0.95, half, 1.05 if not motor else 1.02), frame),
    ]
    if motor:
        parts += [Part(rect(-0.25, 0.35, 0.25, 0.85), frame), Part(rect(-0.1, 0.5, 0.1, 0.6), TAIL)]
    else:
        parts.append(Part(rect(-0.02, 0.6, 0.02, 1.0), frame))
    return parts, 0.97 if not motor else 0.82


def _rider_parts(rng: np.random.Generator, view: str, seat: float) -> list[Part]:
    skin, hair = pick(rng, SKIN), pick(rng, HAIR)
    top, pants = vary(rng, pick(rng, CLOTHES), 0.1), vary(rng, pick(rng, PANTS), 0.1)
    helmet = rng.random() < 0.6
    head = vary(rng, pick(rng, CLOTHES)) if helmet else hair
    if view == "side":
        hip = (0.72, seat + 0.05)
        shoulder = (1.02, seat + 0.6)
        parts = [
            Part(
                poly(
                    (hip[0] - 0.05, hip[1]), (hip[0] + 0.12, hip[1] + 0.02), (hip[0] + 0.1, 0.35), (hip[0] + 0.0, 0.33)
                ),
                pants,
            ),
            Part(
                poly(
                    (hip[0] - 0.12, hip[1] - 0.05),
                    (hip[0] + 0.12, hip[1] - 0.05),
                    (shoulder[0] + 0.1, shoulder[1]),
                    (shoulder[0] - 0.1, shoulder[1] + 0.05),
                ),
                top,
            ),
            Part(
                poly(
                    (shoulder[0] - 0.03, shoulder[1]),
                    (shoulder[0] + 0.05, shoulder[1] - 0.05),
                    (1.3, seat + 0.1),
                    (1.25, seat + 0.08),
                ),
                top,
            ),
            Part(disc(shoulder[0] + 0.08, shoulder[1] + 0.17, 0.11, 0.13, n=10), skin),
            Part(
                poly(
                    (shoulder[0] - 0.04, shoulder[1] + 0.22),
                    (shoulder[0] + 0.2, shoulder[1] + 0.22),
                    (shoulder[0] + 0.08, shoulder[1] + 0.34),
                ),
                head,
            ),
        ]
        return parts
    parts = [
        Part(rect(-0.18, 0.3, -0.07, seat + 0.05), pants),
        Part(rect(0.07, 0.3, 0.18, seat + 0.05), pants),
        Part(poly((-0.2, seat), (0.2, seat), (0.22, seat + 0.58), (-0.22, seat + 0.58)), top),
        Part(poly((-0.22, seat + 0.55), (-0.15, seat + 0.58), (-0.28, seat + 0.1), (-0.33, seat + 0.12)), top),
        Part(poly((0.15, seat + 0.58), (0.22, seat + 0.55), (0.33, seat + 0.12), (0.28, seat + 0.1)), top),
        Part(disc(0.0, seat + 0.74, 0.11, 0.13, n=10), skin if not helmet else head),
        Part(poly((-0.12, seat + 0.75), (0.12, seat + 0.75), (0.0, seat + 0.9)), head),
    ]
    return parts


def cyclist(scene: Scene, x: float, z: float, view: str, motor: bool, rider: bool = True) -> None:
    rng = scene.rng
    vehicle_label = MOTORCYCLE if motor else BICYCLE
    bike_parts, seat = bicycle_parts(rng, view, motor)
    rider_parts = _rider_parts(rng, view, seat) if rider else []
    bike = scene.instance(vehicle_label)
    person = scene.instance(RIDER) if rider else -1
    direction = float(rng.choice([-1.0, 1.0]))
    origin = x - direction * (0.9 if view == "side" else 0.0)
    plane = _front(z, origin, direction)
    scene.ground_shadow(disc(x, z, 0.5 if view == "side" else 0.3, 0.4, 8), 0.4)

    def draw() -> None:
        scene.parts(plane, bike_parts, vehicle_label, bike)
        if rider:
            scene.parts(plane, rider_parts, RIDER, person)

    scene.schedule(z, draw)
