"""The ground: road, sidewalks, parking, terrain, and the markings on the road."""

from __future__ import annotations

import itertools

import numpy as np

from .dataset import GROUND, PARKING, RAIL_TRACK, ROAD, SIDEWALK, TERRAIN
from .palettes import shade, vary
from .primitives import Pattern, Scene, disc
from .street import Street


def ground_layers(scene: Scene, street: Street) -> None:
    rng = scene.rng
    far = street.far
    road_color = vary(rng, (92, 84, 98), 0.1)
    for side in (street.left, street.right):
        s = side.sign
        # what lies behind the building line (seen through gaps and across crossings)
        urban_outer = SIDEWALK if rng.random() < 0.6 else GROUND
        outer_label = TERRAIN if side.style in ("green", "open") else urban_outer
        outer_color = {TERRAIN: (120, 140, 70), SIDEWALK: (165, 155, 150), GROUND: (130, 118, 100)}[outer_label]
        scene.ground(xz_quad(s * side.facade, s * 400, 1.0, far), outer_label, vary(rng, outer_color))
        if side.sidewalk_width > 0:
            scene.ground(
                xz_quad(s * side.sidewalk_inner, s * side.facade, 1.0, far),
                SIDEWALK,
                vary(rng, (168, 156, 160), 0.1),
            )
            # curb stones: lighter band of the sidewalk
            scene.ground(
                xz_quad(s * side.sidewalk_inner, s * (side.sidewalk_inner + 0.25), 1.0, far),
                SIDEWALK,
                vary(rng, (190, 185, 185), 0.05),
                pattern=Pattern.PLAIN,
            )
        if side.strip == "terrain":
            scene.ground(
                xz_quad(s * side.road_edge, s * side.sidewalk_inner, 1.0, far), TERRAIN, vary(rng, (110, 135, 60))
            )
        elif side.strip == "parking":
            scene.ground(
                xz_quad(s * side.road_edge, s * side.sidewalk_inner, 1.0, far),
                PARKING,
                vary(rng, (125, 118, 124), 0.08),
            )
            for z in np.arange(rng.uniform(2, 6), 120, 5.5):
                scene.ground(
                    xz_quad(s * side.road_edge, s * side.sidewalk_inner, z, z + 0.12), PARKING, (200, 200, 200)
                )
        # ground patches (driveways, dirt) on the sidewalk: void
        for _ in range(int(rng.poisson(0.6))):
            z0 = float(rng.uniform(4, 80))
            inner = side.sidewalk_inner + rng.uniform(0, side.sidewalk_width * 0.5)
            scene.ground(
                xz_quad(s * inner, s * (side.facade + 0.1), z0, z0 + rng.uniform(2, 8)),
                GROUND,
                vary(rng, (120, 105, 85)),
            )
    scene.ground(xz_quad(-street.left.road_edge, street.right.road_edge, 1.0, far), ROAD, road_color)
    if street.cross is not None:
        scene.ground(xz_quad(-400, 400, *street.cross), ROAD, shade(road_color, 1.02))
    if street.rail is not None:
        x0, x1 = street.rail
        prim_rail = scene.ground(xz_quad(x0, x1, 1.0, far), RAIL_TRACK, vary(rng, (105, 92, 84)))
        scene.p_param[prim_rail] = (x0 + x1) / 2
    _lane_markings(scene, street)
    # manholes and patches on the road (still road)
    for _ in range(int(rng.poisson(2))):
        z = float(rng.uniform(5, 60))
        x = float(rng.uniform(-street.left.road_edge, street.right.road_edge))
        pts = disc(x, z, 0.35, 0.35, 10)
        scene.ground(pts, ROAD, shade(road_color, rng.uniform(0.7, 1.2)))


def xz_quad(x0: float, x1: float, z0: float, z1: float) -> np.ndarray:
    return np.array([(x0, z0), (x1, z0), (x1, z1), (x0, z1)], dtype=float)


def _lane_markings(scene: Scene, street: Street) -> None:
    rng = scene.rng
    white = (225, 225, 220)
    xs = sorted(x for x, _ in street.lanes)
    boundaries = [(a + b) / 2 for a, b in itertools.pairwise(xs)]
    dash, gap = (3.0, 6.0) if rng.random() < 0.6 else (6.0, 12.0)
    phase = float(rng.uniform(0, dash + gap))
    end = min(street.end, 300.0)
    for x in boundaries:
        for z in np.arange(phase, end, dash + gap):
            if street.on_cross(z, 2.0) or street.on_cross(z + dash, 2.0):
                continue
            scene.ground(xz_quad(x - 0.07, x + 0.07, z, z + dash), ROAD, white, texture=0.02, grain=0.02)
    for x in (-street.left.road_edge + 0.3, street.right.road_edge - 0.3):
        if rng.random() < 0.5:
            z0 = 1.0
            stops = [street.cross[0] - 1, street.cross[1] + 1] if street.cross else []
            for z1 in [*stops, end]:
                if z1 > z0 and not street.on_cross((z0 + z1) / 2):
                    scene.ground(xz_quad(x - 0.06, x + 0.06, z0, z1), ROAD, white, texture=0.02, grain=0.02)
                z0 = z1
    if street.crosswalk is not None:
        z = street.crosswalk
        for x in np.arange(-street.left.road_edge + 0.3, street.right.road_edge - 0.3, 1.0):
            scene.ground(xz_quad(x, x + 0.5, z, z + 3.5), ROAD, white, texture=0.02, grain=0.02)
    if street.cross is not None and rng.random() < 0.7:  # stop line
        z = street.cross[0] - 1.0
        scene.ground(xz_quad(0.0 - 1.5, street.right.road_edge, z - 0.4, z), ROAD, white)
