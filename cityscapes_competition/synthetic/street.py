"""The street a frame shows: its environment (light, weather), its two sides and the road between them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Environment:
    weather: str
    side_light: dict[int, float]
    exposure: float
    tint: np.ndarray
    haze_distance: float
    haze_color: np.ndarray
    sky_top: np.ndarray
    sky_horizon: np.ndarray
    cloudiness: float
    shadow: float  # darkness of cast shadows


def environment(rng: np.random.Generator) -> Environment:
    weather = str(rng.choice(["sunny", "overcast", "hazy", "evening"], p=[0.45, 0.35, 0.1, 0.1]))
    lit = int(rng.choice([-1, 1]))
    if weather == "sunny":
        light = {lit: rng.uniform(1.05, 1.2), -lit: rng.uniform(0.55, 0.75)}
        sky_top, sky_horizon = np.array([70, 120, 205]), np.array([170, 200, 235])
        haze, shadow, clouds = rng.uniform(600, 1500), rng.uniform(0.35, 0.5), rng.uniform(0.0, 0.4)
    elif weather == "overcast":
        light = {lit: rng.uniform(0.95, 1.05), -lit: rng.uniform(0.85, 0.95)}
        sky_top, sky_horizon = np.array([170, 178, 190]), np.array([215, 218, 222])
        haze, shadow, clouds = rng.uniform(400, 900), rng.uniform(0.1, 0.2), rng.uniform(0.5, 1.0)
    elif weather == "hazy":
        light = {lit: rng.uniform(0.95, 1.05), -lit: rng.uniform(0.8, 0.9)}
        sky_top, sky_horizon = np.array([175, 190, 210]), np.array([225, 228, 230])
        haze, shadow, clouds = rng.uniform(150, 350), rng.uniform(0.1, 0.25), rng.uniform(0.2, 0.6)
    else:
        light = {lit: rng.uniform(1.0, 1.15), -lit: rng.uniform(0.5, 0.7)}
        sky_top, sky_horizon = np.array([80, 100, 160]), np.array([235, 180, 130])
        haze, shadow, clouds = rng.uniform(500, 1200), rng.uniform(0.3, 0.45), rng.uniform(0.1, 0.5)
    tint = {"evening": np.array([1.08, 0.97, 0.85])}.get(weather, np.ones(3)) * rng.uniform(0.97, 1.03, 3)
    horizon = sky_horizon * rng.uniform(0.95, 1.05, 3)
    return Environment(
        weather=weather,
        side_light={int(k): float(v) for k, v in light.items()},
        exposure=float(rng.uniform(0.8, 1.1)),
        tint=tint.astype(np.float32),
        haze_distance=float(haze),
        haze_color=np.clip(horizon * 0.95, 0, 255).astype(np.float32),
        sky_top=(sky_top * rng.uniform(0.9, 1.1, 3)).astype(np.float32),
        sky_horizon=horizon.astype(np.float32),
        cloudiness=float(clouds),
        shadow=float(shadow),
    )


@dataclass
class Side:
    """One side of the street: road edge, optional strip (terrain/parking), sidewalk, then a facade."""

    sign: int  # -1 left, +1 right
    style: str  # urban | green | wall | open
    road_edge: float  # |x| of the road edge
    strip: str  # none | terrain | parking
    strip_width: float
    sidewalk_width: float
    trees: bool
    parked: float  # density of parked cars along the road edge (0..1)

    @property
    def sidewalk_inner(self) -> float:
        return self.road_edge + self.strip_width

    @property
    def facade(self) -> float:
        return self.road_edge + self.strip_width + self.sidewalk_width

    def x(self, distance: float) -> float:
        """World x of a point ``distance`` metres beyond the road edge (negative: on the road)."""
        return self.sign * (self.road_edge + distance)


@dataclass
class Street:
    lane_width: float
    lanes: list[tuple[float, bool]]  # (centre x, oncoming)
    left: Side
    right: Side
    end: float  # where the street ends (a block, trees, or open view)
    end_style: str  # block | trees | open | tunnel
    cross: tuple[float, float] | None  # z range of a crossing street
    rail: tuple[float, float] | None  # x range of a rail track in the road
    crosswalk: float | None
    far: float = 900.0

    def on_cross(self, z: float, margin: float = 0.0) -> bool:
        return self.cross is not None and self.cross[0] - margin <= z <= self.cross[1] + margin


def _side(rng: np.random.Generator, sign: int, road_edge: float) -> Side:
    style = str(rng.choice(["urban", "green", "wall", "open"], p=[0.62, 0.14, 0.14, 0.10]))
    strip = str(rng.choice(["none", "terrain", "parking"], p=[0.55, 0.25, 0.2]))
    if style == "open":
        strip = "terrain"
    sidewalk = float(rng.uniform(1.8, 5.0)) if style != "open" else 0.0
    return Side(
        sign=sign,
        style=style,
        road_edge=road_edge,
        strip=strip,
        strip_width=float(rng.uniform(1.5, 3.0)) if strip == "terrain" else (2.3 if strip == "parking" else 0.0),
        sidewalk_width=sidewalk,
        trees=bool(rng.random() < (0.45 if style == "urban" else 0.7)),
        parked=float(rng.choice([0.0, rng.uniform(0.3, 0.95)], p=[0.4, 0.6])),
    )


def _street(rng: np.random.Generator) -> Street:
    lane = float(rng.uniform(2.9, 3.5))
    oncoming = int(rng.choice([0, 1, 2], p=[0.2, 0.6, 0.2]))
    same_left = int(rng.choice([0, 1], p=[0.75, 0.25]))
    same_right = int(rng.choice([0, 1], p=[0.8, 0.2]))
    offset = float(rng.uniform(-0.4, 0.4))
    lanes = [(offset + lane * k, False) for k in range(-same_left, same_right + 1)]
    lanes += [(offset - lane * (same_left + 1 + k), True) for k in range(oncoming)]
    left_edge = -min(x for x, _ in lanes) + lane / 2 + rng.uniform(0.0, 0.6)
    right_edge = max(x for x, _ in lanes) + lane / 2 + rng.uniform(0.0, 0.6)
    left, right = _side(rng, -1, float(left_edge)), _side(rng, 1, float(right_edge))
    end_style = str(rng.choice(["block", "trees", "open", "tunnel"], p=[0.35, 0.2, 0.43, 0.02]))
    end = float(rng.uniform(60, 250)) if end_style != "open" else float(rng.uniform(300, 600))
    cross = None
    if rng.random() < 0.4:
        start = float(rng.uniform(12, 60))
        cross = (start, start + float(rng.uniform(8, 16)))
    rail = None
    if rng.random() < 0.1:
        centre = float(rng.choice([x for x, _ in lanes]))
        rail = (centre - 1.5, centre + 1.5)
    crosswalk = None
    if cross is not None and rng.random() < 0.7:
        crosswalk = cross[0] - 4.5
    elif rng.random() < 0.15:
        crosswalk = float(rng.uniform(10, 40))
    return Street(lane, lanes, left, right, end, end_style, cross, rail, crosswalk)
