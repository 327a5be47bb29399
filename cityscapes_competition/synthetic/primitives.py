"""What a scene is made of: surfaces with their labels and looks, planes and parts drawn as polygons,
and the scene that collects them far to near."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from PIL import Image, ImageDraw

from .camera import Camera
from .dataset import (
    BRIDGE,
    BUILDING,
    FENCE,
    GROUND,
    GUARD_RAIL,
    PARKING,
    RAIL_TRACK,
    RGB,
    ROAD,
    SIDEWALK,
    SKY,
    TERRAIN,
    TUNNEL,
    VEGETATION,
    WALL,
)


class Surface(IntEnum):
    """How a primitive's depth is known: from the ground plane, a plane x = c, or a plane z = c."""

    NONE = 0  # no depth (sky, ego vehicle, borders)
    GROUND = 1
    SIDE = 2  # param = x of the plane
    FRONT = 3  # param = z of the plane


class Pattern(IntEnum):
    PLAIN = 0
    SKY = 1
    BRICK = 2
    BARS = 3
    LEAVES = 4
    PAVERS = 5
    RAILS = 6
    GRASS = 7


@dataclass(frozen=True)
class Plane:
    """A vertical plane with a 2-D coordinate system (s along the plane, y up), in metres."""

    surface: Surface
    coord: float  # x of a SIDE plane, z of a FRONT plane
    origin: float  # where s = 0: z on a SIDE plane, x on a FRONT plane
    direction: float = 1.0

    def world(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        along = self.origin + self.direction * pts[:, 0]
        fixed = np.full(len(pts), self.coord)
        if self.surface == Surface.SIDE:
            return fixed, pts[:, 1], along
        return along, pts[:, 1], fixed


@dataclass
class Part:
    """A flat polygon of an object, in its plane's (s, y) coordinates."""

    points: np.ndarray
    color: RGB
    pattern: Pattern = Pattern.PLAIN
    texture: float | None = None
    no_stereo: bool = False


def rect(s0: float, y0: float, s1: float, y1: float) -> np.ndarray:
    return np.array([(s0, y0), (s1, y0), (s1, y1), (s0, y1)], dtype=float)


def disc(cs: float, cy: float, rs: float, ry: float | None = None, n: int = 14) -> np.ndarray:
    angles = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    return np.column_stack([cs + rs * np.cos(angles), cy + (ry if ry is not None else rs) * np.sin(angles)])


def poly(*points: tuple[float, float]) -> np.ndarray:
    return np.array(points, dtype=float)


# Per label: default (coarse texture, fine grain, pattern).
_LOOK: dict[int, tuple[float, float, Pattern]] = {
    ROAD: (0.05, 0.03, Pattern.PLAIN),
    SIDEWALK: (0.05, 0.02, Pattern.PAVERS),
    PARKING: (0.06, 0.03, Pattern.PLAIN),
    RAIL_TRACK: (0.08, 0.04, Pattern.RAILS),
    GROUND: (0.12, 0.05, Pattern.PLAIN),
    BUILDING: (0.05, 0.0, Pattern.BRICK),
    WALL: (0.06, 0.02, Pattern.BRICK),
    FENCE: (0.04, 0.0, Pattern.BARS),
    GUARD_RAIL: (0.03, 0.0, Pattern.PLAIN),
    BRIDGE: (0.06, 0.02, Pattern.PLAIN),
    TUNNEL: (0.05, 0.02, Pattern.PLAIN),
    VEGETATION: (0.15, 0.08, Pattern.LEAVES),
    TERRAIN: (0.12, 0.06, Pattern.GRASS),
    SKY: (0.0, 0.0, Pattern.SKY),
}
_DEFAULT_LOOK = (0.03, 0.0, Pattern.PLAIN)


class Scene:
    """Canvases of primitive ids and the tables describing each primitive and instance.

    Three layers are painted: the background (sky, ground, planes along the street; inner planes
    after outer ones), the objects (painted far to near), and the overlay (ego vehicle, borders).
    ``render`` composites background and objects with a per-pixel depth test, so an object behind
    a fence or a facade is hidden where it should be. An empty object pixel is -1; the overlay
    holds 1 + an index into ``overlay_prims`` (0: empty).
    """

    def __init__(self, cam: Camera, rng: np.random.Generator):
        self.cam = cam
        self.rng = rng
        size = (cam.width, cam.height)
        self.background = Image.new("I", size, 0)
        self.foreground = Image.new("I", size, -1)
        self.overlay = Image.new("L", size, 0)  # 1 + index into overlay_prims
        self.overlay_prims: list[int] = []
        self.pen = ImageDraw.Draw(self.background)
        self.overlay_pen = ImageDraw.Draw(self.overlay)
        self.shadow = Image.new("L", (cam.width, cam.height), 255)
        self.shadow_pen = ImageDraw.Draw(self.shadow)
        # primitive table
        self.p_label: list[int] = []
        self.p_inst: list[int] = []
        self.p_color: list[RGB] = []
        self.p_surface: list[int] = []
        self.p_param: list[float] = []
        self.p_texture: list[float] = []
        self.p_grain: list[float] = []
        self.p_pattern: list[int] = []
        self.p_no_stereo: list[bool] = []
        # instance table
        self.i_label: list[int] = []
        self.i_group: list[bool] = []
        self.i_valid: list[float] = []  # fraction of valid disparity (1 = normal stereo)
        self.i_glass_holes: list[bool] = []  # no stereo match on its windows
        # frontal objects, painted far to near
        self.objects: list[tuple[float, int, Callable[[], None]]] = []

    # --- tables
    def add_prim(
        self,
        label: int,
        color: RGB,
        surface: Surface,
        param: float = 0.0,
        inst: int = -1,
        pattern: Pattern | None = None,
        texture: float | None = None,
        grain: float | None = None,
        no_stereo: bool = False,
    ) -> int:
        look_texture, look_grain, look_pattern = _LOOK.get(label, _DEFAULT_LOOK)
        self.p_label.append(label)
        self.p_inst.append(inst)
        self.p_color.append(color)
        self.p_surface.append(int(surface))
        self.p_param.append(float(param))
        self.p_texture.append(look_texture if texture is None else texture)
        self.p_grain.append(look_grain if grain is None else grain)
        self.p_pattern.append(int(look_pattern if pattern is None else pattern))
        self.p_no_stereo.append(no_stereo)
        return len(self.p_label) - 1

    def instance(self, label: int, group: bool = False) -> int:
        """A new instance (or group region) of an instance class; some get poor stereo."""
        self.i_label.append(label)
        self.i_group.append(group)
        fails = self.rng.random() < 0.05
        valid = float(self.rng.uniform(0.05, 0.45))
        self.i_valid.append(valid if fails else 1.0)
        self.i_glass_holes.append(bool(self.rng.random() < 0.35))
        return len(self.i_label) - 1

    def schedule(self, z: float, draw: Callable[[], None]) -> None:
        self.objects.append((z, len(self.objects), draw))

    def paint_objects(self) -> None:
        self.pen = ImageDraw.Draw(self.foreground)
        for _, _, draw in sorted(self.objects, key=lambda item: (-item[0], item[1])):
            draw()
        self.objects.clear()

    # --- painting
    def fill(self, flat: list[float], prim: int) -> None:
        self.pen.polygon(flat, fill=prim)

    def ground(self, pts_xz: np.ndarray, label: int, color: RGB, **look) -> int:
        prim = self.add_prim(label, color, Surface.GROUND, **look)
        pts = np.asarray(pts_xz, dtype=float)
        self.fill(self.cam.project(pts[:, 0], np.zeros(len(pts)), pts[:, 1]), prim)
        return prim

    def ground_shadow(self, pts_xz: np.ndarray, darkness: float) -> None:
        pts = np.asarray(pts_xz, dtype=float)
        flat = self.cam.project(pts[:, 0], np.zeros(len(pts)), pts[:, 1])
        self.shadow_pen.polygon(flat, fill=round(255 * (1 - darkness)))

    def screen(self, flat: list[float], label: int, color: RGB, **look) -> int:
        """A polygon in image coordinates (ego vehicle, borders): no depth."""
        prim = self.add_prim(label, color, Surface.NONE, **look)
        self.overlay_prims.append(prim)
        self.overlay_pen.polygon(flat, fill=len(self.overlay_prims))
        return prim

    def parts(self, plane: Plane, parts: Sequence[Part], label: int, inst: int = -1) -> None:
        if not parts:
            return
        flat = self.cam.project(*plane.world(np.concatenate([part.points for part in parts])))
        start = 0
        for part in parts:
            prim = self.add_prim(
                label,
                part.color,
                plane.surface,
                plane.coord,
                inst,
                pattern=part.pattern if part.pattern != Pattern.PLAIN else None,
                texture=part.texture,
                no_stereo=part.no_stereo and (inst < 0 or self.i_glass_holes[inst]),
            )
            stop = start + 2 * len(part.points)
            self.fill(flat[start:stop], prim)
            start = stop

    def quads(self, plane: Plane, corners: np.ndarray, prims: Sequence[int]) -> None:
        """Many rectangles at once: ``corners`` (n, 4) of s0, y0, s1, y1; one primitive each."""
        s0, y0, s1, y1 = corners.T
        pts = np.stack([np.column_stack(c) for c in ((s0, y0), (s1, y0), (s1, y1), (s0, y1))], axis=1)
        flat = np.asarray(self.cam.project(*plane.world(pts.reshape(-1, 2)))).reshape(len(corners), 8)
        for row, prim in zip(flat.tolist(), prims, strict=True):
            self.fill(row, prim)

    def pixel_size(self, metres: float, z: float) -> float:
        """How many pixels ``metres`` spans at depth ``z``."""
        return self.cam.fx * metres / max(z, 0.05)
