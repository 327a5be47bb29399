"""What lines the street: buildings, gaps, hedges, low walls and guard rails."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from .dataset import BUILDING, FENCE, GUARD_RAIL, VEGETATION, WALL
from .palettes import BUILDING_COLORS, GLASS, pick, shade, vary
from .primitives import Part, Pattern, Plane, Scene, Surface, rect
from .street import Environment, Side, Street


def side_planes(scene: Scene, street: Street, env: Environment) -> None:
    """Facades, walls, hedges, fences and guard rails along the street (outermost first)."""
    planes: list[tuple[float, Callable[[], None]]] = []
    for side in (street.left, street.right):
        light = env.side_light[side.sign]
        if side.style == "urban":
            planes.append((side.facade, partial(_building_row, scene, street, side, side.facade, light)))
        elif side.style == "green":
            planes.append((side.facade, partial(_hedge_row, scene, street, side, side.facade, light, tall=True)))
        elif side.style == "wall":
            behind = side.facade + scene.rng.uniform(3, 8)
            if scene.rng.random() < 0.5:
                planes.append((behind, partial(_building_row, scene, street, side, behind, light)))
            else:
                planes.append((behind, partial(_hedge_row, scene, street, side, behind, light, tall=True)))
            kind = FENCE if scene.rng.random() < 0.5 else WALL
            planes.append((side.facade, partial(_low_wall, scene, street, side, side.facade, kind, light)))
        else:  # open: guard rail at the road edge, a tree line far away
            planes.append(
                (side.road_edge + 40, partial(_hedge_row, scene, street, side, side.road_edge + 40, light, tall=True))
            )
            planes.append((side.road_edge + 0.4, partial(_guard_rail, scene, street, side, light)))
            if scene.rng.random() < 0.5:
                planes.append(
                    (side.road_edge + 6, partial(_low_wall, scene, street, side, side.road_edge + 6, FENCE, light))
                )
    for _, draw in sorted(planes, key=lambda item: -item[0]):
        draw()


def _segments(street: Street, z0: float, z1: float) -> list[tuple[float, float]]:
    """[z0, z1] minus the crossing street."""
    if street.cross is None:
        return [(z0, z1)]
    a, b = street.cross
    return [(lo, hi) for lo, hi in ((z0, min(z1, a)), (max(z0, b), z1)) if hi - lo > 0.5]


def _building_row(scene: Scene, street: Street, side: Side, distance: float, light: float) -> None:
    rng = scene.rng
    x = side.sign * distance
    for start, stop in _segments(street, 1.0, street.end):
        z = start
        while z < stop - 0.5:
            length = float(min(rng.uniform(8, 30), stop - z))
            if rng.random() < 0.12 and z > 5:  # a gap between buildings
                gap_end = min(z + float(rng.uniform(3, 10)), stop)
                _gap(scene, side, x, z, gap_end, light)
                z = gap_end
                continue
            height = float(rng.uniform(7, 24))
            _building(scene, x, z, z + length, height, light)
            z += length


def _building(scene: Scene, x: float, z0: float, z1: float, height: float, light: float) -> None:
    rng = scene.rng
    plane = Plane(Surface.SIDE, x, 0.0)
    color = shade(vary(rng, pick(rng, BUILDING_COLORS), 0.1), light)
    parts = [Part(rect(z0, 0, z1, height), color)]
    if rng.random() < 0.6:  # cornice / roof band
        parts.append(Part(rect(z0, height - 0.6, z1, height), shade(color, 0.8)))
    if rng.random() < 0.5:  # ground floor in another colour
        parts.append(Part(rect(z0, 0, z1, 3.2), shade(vary(rng, color, 0.15), 0.85)))
    scene.parts(plane, parts, BUILDING)
    # windows: draw random values first so the scene does not depend on the image size
    spacing = float(rng.uniform(2.2, 3.4))
    width = float(rng.uniform(0.9, 1.5)) * spacing / 2.8
    floor = float(rng.uniform(3.0, 3.6))
    win_h = float(rng.uniform(1.2, 1.7))
    glass = shade(vary(rng, GLASS, 0.2), light)
    frame_prim_color = shade(color, 0.7)
    columns = np.arange(z0 + spacing / 2, z1 - width, spacing)
    floors = np.arange(3.6, height - win_h - 0.5, floor)
    shop = rng.random() < 0.5
    lit = rng.random(size=(len(floors), len(columns))) < 0.1
    no_stereo = rng.random() < 0.5
    door = float(rng.uniform(z0, max(z0, z1 - 1.5)))
    if door > 1.0:
        scene.parts(plane, [Part(rect(door, 0, door + 1.2, 2.3), shade(color, 0.45))], BUILDING)
    columns = columns[columns > 1.0]
    if len(columns) == 0 or len(floors) == 0:
        return
    if scene.pixel_size(width, max(float(columns[0]), 1.0)) * abs(x) / max(float(columns[0]), 1.0) < 0.6:
        return  # windows far away and seen at a grazing angle: thinner than a pixel
    glass_prim = scene.add_prim(
        BUILDING, glass, Surface.SIDE, x, texture=0.15, pattern=Pattern.PLAIN, no_stereo=no_stereo
    )
    lit_prim = scene.add_prim(BUILDING, (235, 215, 160), Surface.SIDE, x, pattern=Pattern.PLAIN, no_stereo=no_stereo)
    frame_prim = scene.add_prim(BUILDING, frame_prim_color, Surface.SIDE, x, pattern=Pattern.PLAIN)
    zz, yy = np.meshgrid(columns, floors)
    zz, yy, lit = zz.ravel(), yy.ravel(), lit[:, -len(columns) :].ravel()
    frames = np.column_stack([zz - 0.12, yy - 0.12, zz + width + 0.12, yy + win_h + 0.12])
    panes = np.column_stack([zz, yy, zz + width, yy + win_h])
    corners = np.stack([frames, panes], axis=1).reshape(-1, 4)
    prims = np.stack([np.full(len(zz), frame_prim), np.where(lit, lit_prim, glass_prim)], axis=1).ravel()
    scene.quads(plane, corners, prims.tolist())
    if shop:
        shops = columns[::2]
        scene.quads(
            plane,
            np.column_stack(
                [shops, np.full(len(shops), 0.4), np.minimum(shops + spacing * 1.6, z1), np.full(len(shops), 2.6)]
            ),
            [glass_prim] * len(shops),
        )


def _gap(scene: Scene, side: Side, x: float, z0: float, z1: float, light: float) -> None:
    """A gap between buildings: vegetation, a wall or a fence, with a building set back behind."""
    rng = scene.rng
    back = Plane(Surface.SIDE, x + side.sign * rng.uniform(6, 15), 0.0)
    scene.parts(
        back,
        [
            Part(
                rect(z0 - 2, 0, z1 + 2, rng.uniform(6, 18)),
                shade(vary(rng, pick(rng, BUILDING_COLORS)), light * 0.9),
            )
        ],
        BUILDING,
    )
    plane = Plane(Surface.SIDE, x, 0.0)
    choice = rng.random()
    if choice < 0.4:
        scene.parts(plane, [Part(jagged(rng, z0, z1, rng.uniform(2, 6)), vary(rng, (70, 105, 45)))], VEGETATION)
    elif choice < 0.7:
        scene.parts(
            plane, [Part(rect(z0, 0, z1, rng.uniform(1.2, 2.5)), shade(vary(rng, (150, 146, 138)), light))], WALL
        )
    else:
        scene.parts(
            plane, [Part(rect(z0, 0, z1, rng.uniform(1.2, 2.0)), shade(vary(rng, (110, 105, 95)), light))], FENCE
        )


def jagged(rng: np.random.Generator, s0: float, s1: float, height: float, step: float = 1.5) -> np.ndarray:
    """An irregular top edge: a hedge, a tree line."""
    n = max(2, int((s1 - s0) / step) + 1)
    s = np.linspace(s0, s1, n)
    top = height * (1 + 0.25 * rng.standard_normal(n)).clip(0.5, 1.6)
    return np.vstack([np.column_stack([s, top]), [(s1, 0.0), (s0, 0.0)]])


def _hedge_row(scene: Scene, street: Street, side: Side, distance: float, light: float, tall: bool) -> None:
    rng = scene.rng
    plane = Plane(Surface.SIDE, side.sign * distance, 0.0)
    for start, stop in _segments(street, 1.0, street.end + 50):
        height = rng.uniform(4, 14) if tall else rng.uniform(1.2, 2.5)
        color = shade(vary(rng, (65, 105, 42), 0.15), light)
        scene.parts(plane, [Part(jagged(rng, start, stop, height, 1.5 + distance / 10), color)], VEGETATION)


def _low_wall(scene: Scene, street: Street, side: Side, distance: float, kind: int, light: float) -> None:
    rng = scene.rng
    plane = Plane(Surface.SIDE, side.sign * distance, 0.0)
    base = (150, 146, 138) if kind == WALL else (112, 104, 92)
    height = rng.uniform(0.8, 2.5)
    for start, stop in _segments(street, 1.0, street.end):
        color = shade(vary(rng, base), light)
        parts = [Part(rect(start, 0, stop, height), color)]
        if kind == WALL and rng.random() < 0.5:
            parts.append(Part(rect(start, height - 0.15, stop, height), shade(color, 1.15)))
        scene.parts(plane, parts, kind)


def _guard_rail(scene: Scene, street: Street, side: Side, light: float) -> None:
    plane = Plane(Surface.SIDE, side.sign * (side.road_edge + 0.4), 0.0)
    color = shade((175, 178, 182), light)
    for start, stop in _segments(street, 1.0, min(street.end, 400)):
        parts = [Part(rect(start, 0.45, stop, 0.8), color)]
        for z in np.arange(start, stop, 2.0):
            parts.append(Part(rect(z, 0.0, z + 0.12, 0.75), shade(color, 0.7)))
        scene.parts(plane, parts, GUARD_RAIL)
