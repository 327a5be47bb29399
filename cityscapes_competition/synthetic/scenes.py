"""Synthetic street scenes in the exact layout of the Cityscapes dataset.

Real Cityscapes cannot be downloaded here, so the project embeds a deterministic generator of
look-alike frames: a straight street seen from a car (the real camera geometry of the dataset),
with buildings, sidewalks, vegetation, poles, signs, lights, and traffic participants standing on
the ground plane in perspective. Every frame has the files of the real dataset::

    leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png        RGB
    gtFine/<split>/<city>/<stem>_gtFine_labelIds.png         L, label ids 0..33
    gtFine/<split>/<city>/<stem>_gtFine_instanceIds.png      I;16, labelId*1000+k or labelId
    gtFine/<split>/<city>/<stem>_gtFine_color.png            RGBA, label colours
    disparity/<split>/<city>/<stem>_disparity.png            I;16, 0 = invalid, else 256*d+1
    camera/<split>/<city>/<stem>_camera.json

The scene is built in metres in the world (x right, y up, z forward, camera ``mount`` metres above
the road) and projected with the dataset's intrinsics, so depth, disparity and the size and height
of objects in the image agree with each other. Everything is painted with Pillow on a canvas of
primitive ids (far things first), then looked up into label, instance, depth and colour tables
with numpy, so no Python loop runs per pixel.

A frame depends only on (seed, split, frame name) and the image size: the scene itself is drawn
from a random stream that never sees the size, so the same frame at two sizes shows the same
street. Edge cases the evaluation has to handle are put in on purpose: group regions (crowds,
clusters of parked cars or bicycles: instanceIds = bare labelId), void regions (ego vehicle,
rectification border, out of roi, static, dynamic, ground, parking, rail track, guard rail,
bridge, tunnel, polegroup, unlabeled), tiny and distant instances (beyond 100 m), instances split
by occluders, caravans and trailers, and stereo holes, including instances whose disparity is
mostly invalid.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from enum import IntEnum
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from ..core.atomic import write_bytes_atomic, write_text_atomic
from ..core.labels import LABEL_IDS, LABEL_NAMES, NUM_LABEL_IDS, color_of, id2label
from ..core.naming import (
    CAMERA_SUFFIX,
    DISPARITY_SUFFIX,
    GT_COLOR_SUFFIX,
    GT_INSTANCE_IDS_SUFFIX,
    GT_LABEL_IDS_SUFFIX,
    IMAGE_SUFFIX,
    FrameId,
)
from ..png.png_write import encode_png

DEFAULT_SIZE: tuple[int, int] = (2048, 1024)  # (width, height) of the real dataset
REFERENCE_WIDTH = 2048
DEFAULT_TEST_COUNT = 500
DEFAULT_TRAIN_COUNT = 300

# The competition evaluates on "val" (as organisers with the real dataset would use its val split).
SPLIT_CITIES: dict[str, tuple[str, ...]] = {
    "train": (
        "aachen",
        "bochum",
        "bremen",
        "cologne",
        "darmstadt",
        "dusseldorf",
        "erfurt",
        "hamburg",
        "hanover",
        "jena",
        "krefeld",
        "monchengladbach",
        "strasbourg",
        "stuttgart",
        "tubingen",
        "ulm",
        "weimar",
        "zurich",
    ),
    "val": ("frankfurt", "lindau", "munster"),
    "test": ("berlin", "bielefeld", "bonn", "leverkusen", "mainz", "munich"),
}
FRAME_NUMBER = "000019"

# A real camera file of the dataset (intrinsics for 2048 pixels of width).
CAMERA_EXTRINSIC: dict[str, float] = {
    "baseline": 0.209313,
    "pitch": 0.038,
    "roll": 0.0,
    "x": 1.7,
    "y": 0.1,
    "yaw": -0.0195,
    "z": 1.22,
}
CAMERA_INTRINSIC: dict[str, float] = {
    "fx": 2262.52,
    "fy": 2265.3017905988554,
    "u0": 1096.98,
    "v0": 513.137,
}

_NAME_TO_ID = {name: label_id for label_id, name in enumerate(LABEL_NAMES)}


def _label(name: str) -> int:
    return _NAME_TO_ID[name]


UNLABELED = _label("unlabeled")
EGO_VEHICLE = _label("ego vehicle")
RECTIFICATION_BORDER = _label("rectification border")
OUT_OF_ROI = _label("out of roi")
STATIC = _label("static")
DYNAMIC = _label("dynamic")
GROUND = _label("ground")
ROAD = _label("road")
SIDEWALK = _label("sidewalk")
PARKING = _label("parking")
RAIL_TRACK = _label("rail track")
BUILDING = _label("building")
WALL = _label("wall")
FENCE = _label("fence")
GUARD_RAIL = _label("guard rail")
BRIDGE = _label("bridge")
TUNNEL = _label("tunnel")
POLE = _label("pole")
POLEGROUP = _label("polegroup")
TRAFFIC_LIGHT = _label("traffic light")
TRAFFIC_SIGN = _label("traffic sign")
VEGETATION = _label("vegetation")
TERRAIN = _label("terrain")
SKY = _label("sky")
PERSON = _label("person")
RIDER = _label("rider")
CAR = _label("car")
TRUCK = _label("truck")
BUS = _label("bus")
CARAVAN = _label("caravan")
TRAILER = _label("trailer")
TRAIN = _label("train")
MOTORCYCLE = _label("motorcycle")
BICYCLE = _label("bicycle")

_FAR = 5000.0  # metres: the depth of anything farther (and of the horizon)

HAS_INSTANCES: frozenset[int] = frozenset(i for i in LABEL_IDS if id2label[i].hasInstances)

# gtFine_color: the label table's colours, alpha 255.
_PALETTE = np.array([(*color_of(i), 255) for i in range(NUM_LABEL_IDS)], dtype=np.uint8)

RGB = tuple[float, float, float]

# zlib levels: the noisy photo and the disparity barely compress, so little time goes to them.
_PHOTO_PNG_LEVEL = 1
_DISPARITY_PNG_LEVEL = 2
_LABEL_PNG_LEVEL = 6

# ----------------------------------------------------------------------------------- splits, names


@dataclass(frozen=True)
class SplitSpec:
    """One split to generate: its name, number of frames and the cities its frames are named after."""

    name: str
    count: int
    cities: tuple[str, ...]

    def frame(self, index: int) -> FrameId:
        """Frame ``index`` of the split; names do not depend on ``count``."""
        return FrameId(self.cities[index % len(self.cities)], f"{index // len(self.cities):06d}", FRAME_NUMBER)

    @property
    def frames(self) -> list[FrameId]:
        return [self.frame(index) for index in range(self.count)]


def split_spec(split: str, count: int) -> SplitSpec:
    """The spec of a known split (train, val, test), with the real dataset's cities."""
    if split not in SPLIT_CITIES:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLIT_CITIES)}")
    if count < 0:
        raise ValueError("count must be >= 0")
    return SplitSpec(split, count, SPLIT_CITIES[split])


def camera_parameters(size: tuple[int, int] = DEFAULT_SIZE) -> dict[str, dict[str, float]]:
    """The content of a camera file for images of ``size`` (intrinsics scale with the width)."""
    scale = size[0] / REFERENCE_WIDTH
    intrinsic = {key: value * scale for key, value in CAMERA_INTRINSIC.items()}
    return {"extrinsic": dict(CAMERA_EXTRINSIC), "intrinsic": intrinsic}


def _frame_seed(seed: int, split: str, frame: FrameId) -> np.random.SeedSequence:
    digest = hashlib.sha256(f"{split}/{frame.stem}".encode()).digest()
    words = np.frombuffer(digest[:16], dtype="<u4").tolist()
    return np.random.SeedSequence([int(seed), *words])


# ------------------------------------------------------------------------------------------ camera


@dataclass(frozen=True)
class Camera:
    """Pinhole camera over a flat road; ``uc``/``vh`` are the street's vanishing column and horizon."""

    width: int
    height: int
    fx: float
    fy: float
    uc: float
    vh: float
    mount: float = CAMERA_EXTRINSIC["z"]
    baseline: float = CAMERA_EXTRINSIC["baseline"]

    @staticmethod
    def for_size(size: tuple[int, int], heading: float) -> Camera:
        intrinsic = camera_parameters(size)["intrinsic"]
        fx, fy = intrinsic["fx"], intrinsic["fy"]
        uc = intrinsic["u0"] + fx * math.tan(CAMERA_EXTRINSIC["yaw"] + heading)
        vh = intrinsic["v0"] - fy * math.tan(CAMERA_EXTRINSIC["pitch"])
        return Camera(size[0], size[1], fx, fy, uc, vh)

    def project(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> list[float]:
        """Flat [u0, v0, u1, v1, ...] of world points, as ImageDraw takes them."""
        z = np.maximum(z, 0.05)
        u = self.uc + self.fx * x / z
        v = self.vh + self.fy * (self.mount - y) / z
        return np.column_stack([u, v]).ravel().tolist()


# ------------------------------------------------------------------------------------ primitives


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


# -------------------------------------------------------------------------------------- palettes

_BUILDING_COLORS: tuple[RGB, ...] = (
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
_CAR_COLORS: tuple[RGB, ...] = (
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
_TRUCK_COLORS: tuple[RGB, ...] = ((235, 235, 235), (190, 30, 30), (30, 70, 150), (240, 190, 40), (90, 90, 95))
_BUS_COLORS: tuple[RGB, ...] = ((240, 200, 40), (232, 232, 232), (200, 40, 40), (40, 110, 70), (60, 90, 170))
_TRAIN_COLORS: tuple[RGB, ...] = ((215, 40, 40), (240, 240, 240), (245, 200, 40), (40, 120, 80))
_CARAVAN_COLORS: tuple[RGB, ...] = ((235, 232, 220), (242, 242, 238), (225, 215, 190))
_TRAILER_COLORS: tuple[RGB, ...] = ((150, 150, 150), (95, 95, 95), (200, 200, 200), (60, 80, 120))
_SKIN: tuple[RGB, ...] = ((224, 172, 140), (198, 134, 100), (141, 85, 54), (240, 200, 170), (170, 115, 80))
_HAIR: tuple[RGB, ...] = ((30, 25, 20), (90, 60, 30), (200, 170, 110), (60, 60, 60), (150, 150, 150))
_CLOTHES: tuple[RGB, ...] = (
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
_PANTS: tuple[RGB, ...] = ((30, 35, 60), (40, 40, 40), (70, 70, 80), (110, 90, 70), (20, 20, 25), (60, 80, 120))
_SIGN_COLORS: tuple[RGB, ...] = ((30, 70, 170), (200, 30, 30), (238, 238, 238), (240, 200, 20), (20, 110, 60))
_GLASS: RGB = (55, 65, 80)
_TYRE: RGB = (22, 22, 24)
_RIM: RGB = (140, 140, 145)
_TAIL: RGB = (190, 25, 25)
_HEAD: RGB = (240, 240, 225)
_PLATE: RGB = (232, 232, 222)


def _pick(rng: np.random.Generator, options: Sequence[RGB]) -> RGB:
    return options[int(rng.integers(len(options)))]


def _vary(rng: np.random.Generator, color: RGB, amount: float = 0.12) -> RGB:
    scale = rng.uniform(1 - amount, 1 + amount)
    shift = rng.normal(0.0, 40 * amount, 3)
    r, g, b = (float(np.clip(c * scale + s, 0, 255)) for c, s in zip(color, shift, strict=True))
    return (r, g, b)


def _shade(color: RGB, factor: float) -> RGB:
    r, g, b = (float(min(255.0, c * factor)) for c in color)
    return (r, g, b)


# ------------------------------------------------------------------------------------- the street


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


def _environment(rng: np.random.Generator) -> Environment:
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


# ---------------------------------------------------------------------------------- ground layers


def _ground_layers(scene: Scene, street: Street) -> None:
    rng = scene.rng
    far = street.far
    road_color = _vary(rng, (92, 84, 98), 0.1)
    for side in (street.left, street.right):
        s = side.sign
        # what lies behind the building line (seen through gaps and across crossings)
        urban_outer = SIDEWALK if rng.random() < 0.6 else GROUND
        outer_label = TERRAIN if side.style in ("green", "open") else urban_outer
        outer_color = {TERRAIN: (120, 140, 70), SIDEWALK: (165, 155, 150), GROUND: (130, 118, 100)}[outer_label]
        scene.ground(_xz_quad(s * side.facade, s * 400, 1.0, far), outer_label, _vary(rng, outer_color))
        if side.sidewalk_width > 0:
            scene.ground(
                _xz_quad(s * side.sidewalk_inner, s * side.facade, 1.0, far),
                SIDEWALK,
                _vary(rng, (168, 156, 160), 0.1),
            )
            # curb stones: lighter band of the sidewalk
            scene.ground(
                _xz_quad(s * side.sidewalk_inner, s * (side.sidewalk_inner + 0.25), 1.0, far),
                SIDEWALK,
                _vary(rng, (190, 185, 185), 0.05),
                pattern=Pattern.PLAIN,
            )
        if side.strip == "terrain":
            scene.ground(
                _xz_quad(s * side.road_edge, s * side.sidewalk_inner, 1.0, far), TERRAIN, _vary(rng, (110, 135, 60))
            )
        elif side.strip == "parking":
            scene.ground(
                _xz_quad(s * side.road_edge, s * side.sidewalk_inner, 1.0, far),
                PARKING,
                _vary(rng, (125, 118, 124), 0.08),
            )
            for z in np.arange(rng.uniform(2, 6), 120, 5.5):
                scene.ground(
                    _xz_quad(s * side.road_edge, s * side.sidewalk_inner, z, z + 0.12), PARKING, (200, 200, 200)
                )
        # ground patches (driveways, dirt) on the sidewalk: void
        for _ in range(int(rng.poisson(0.6))):
            z0 = float(rng.uniform(4, 80))
            inner = side.sidewalk_inner + rng.uniform(0, side.sidewalk_width * 0.5)
            scene.ground(
                _xz_quad(s * inner, s * (side.facade + 0.1), z0, z0 + rng.uniform(2, 8)),
                GROUND,
                _vary(rng, (120, 105, 85)),
            )
    scene.ground(_xz_quad(-street.left.road_edge, street.right.road_edge, 1.0, far), ROAD, road_color)
    if street.cross is not None:
        scene.ground(_xz_quad(-400, 400, *street.cross), ROAD, _shade(road_color, 1.02))
    if street.rail is not None:
        x0, x1 = street.rail
        prim_rail = scene.ground(_xz_quad(x0, x1, 1.0, far), RAIL_TRACK, _vary(rng, (105, 92, 84)))
        scene.p_param[prim_rail] = (x0 + x1) / 2
    _lane_markings(scene, street)
    # manholes and patches on the road (still road)
    for _ in range(int(rng.poisson(2))):
        z = float(rng.uniform(5, 60))
        x = float(rng.uniform(-street.left.road_edge, street.right.road_edge))
        pts = disc(x, z, 0.35, 0.35, 10)
        scene.ground(pts, ROAD, _shade(road_color, rng.uniform(0.7, 1.2)))


def _xz_quad(x0: float, x1: float, z0: float, z1: float) -> np.ndarray:
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
            scene.ground(_xz_quad(x - 0.07, x + 0.07, z, z + dash), ROAD, white, texture=0.02, grain=0.02)
    for x in (-street.left.road_edge + 0.3, street.right.road_edge - 0.3):
        if rng.random() < 0.5:
            z0 = 1.0
            stops = [street.cross[0] - 1, street.cross[1] + 1] if street.cross else []
            for z1 in [*stops, end]:
                if z1 > z0 and not street.on_cross((z0 + z1) / 2):
                    scene.ground(_xz_quad(x - 0.06, x + 0.06, z0, z1), ROAD, white, texture=0.02, grain=0.02)
                z0 = z1
    if street.crosswalk is not None:
        z = street.crosswalk
        for x in np.arange(-street.left.road_edge + 0.3, street.right.road_edge - 0.3, 1.0):
            scene.ground(_xz_quad(x, x + 0.5, z, z + 3.5), ROAD, white, texture=0.02, grain=0.02)
    if street.cross is not None and rng.random() < 0.7:  # stop line
        z = street.cross[0] - 1.0
        scene.ground(_xz_quad(0.0 - 1.5, street.right.road_edge, z - 0.4, z), ROAD, white)


# ------------------------------------------------------------------------------------ side planes


def _side_planes(scene: Scene, street: Street, env: Environment) -> None:
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
    color = _shade(_vary(rng, _pick(rng, _BUILDING_COLORS), 0.1), light)
    parts = [Part(rect(z0, 0, z1, height), color)]
    if rng.random() < 0.6:  # cornice / roof band
        parts.append(Part(rect(z0, height - 0.6, z1, height), _shade(color, 0.8)))
    if rng.random() < 0.5:  # ground floor in another colour
        parts.append(Part(rect(z0, 0, z1, 3.2), _shade(_vary(rng, color, 0.15), 0.85)))
    scene.parts(plane, parts, BUILDING)
    # windows: draw random values first so the scene does not depend on the image size
    spacing = float(rng.uniform(2.2, 3.4))
    width = float(rng.uniform(0.9, 1.5)) * spacing / 2.8
    floor = float(rng.uniform(3.0, 3.6))
    win_h = float(rng.uniform(1.2, 1.7))
    glass = _shade(_vary(rng, _GLASS, 0.2), light)
    frame_prim_color = _shade(color, 0.7)
    columns = np.arange(z0 + spacing / 2, z1 - width, spacing)
    floors = np.arange(3.6, height - win_h - 0.5, floor)
    shop = rng.random() < 0.5
    lit = rng.random(size=(len(floors), len(columns))) < 0.1
    no_stereo = rng.random() < 0.5
    door = float(rng.uniform(z0, max(z0, z1 - 1.5)))
    if door > 1.0:
        scene.parts(plane, [Part(rect(door, 0, door + 1.2, 2.3), _shade(color, 0.45))], BUILDING)
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
                _shade(_vary(rng, _pick(rng, _BUILDING_COLORS)), light * 0.9),
            )
        ],
        BUILDING,
    )
    plane = Plane(Surface.SIDE, x, 0.0)
    choice = rng.random()
    if choice < 0.4:
        scene.parts(plane, [Part(_jagged(rng, z0, z1, rng.uniform(2, 6)), _vary(rng, (70, 105, 45)))], VEGETATION)
    elif choice < 0.7:
        scene.parts(
            plane, [Part(rect(z0, 0, z1, rng.uniform(1.2, 2.5)), _shade(_vary(rng, (150, 146, 138)), light))], WALL
        )
    else:
        scene.parts(
            plane, [Part(rect(z0, 0, z1, rng.uniform(1.2, 2.0)), _shade(_vary(rng, (110, 105, 95)), light))], FENCE
        )


def _jagged(rng: np.random.Generator, s0: float, s1: float, height: float, step: float = 1.5) -> np.ndarray:
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
        color = _shade(_vary(rng, (65, 105, 42), 0.15), light)
        scene.parts(plane, [Part(_jagged(rng, start, stop, height, 1.5 + distance / 10), color)], VEGETATION)


def _low_wall(scene: Scene, street: Street, side: Side, distance: float, kind: int, light: float) -> None:
    rng = scene.rng
    plane = Plane(Surface.SIDE, side.sign * distance, 0.0)
    base = (150, 146, 138) if kind == WALL else (112, 104, 92)
    height = rng.uniform(0.8, 2.5)
    for start, stop in _segments(street, 1.0, street.end):
        color = _shade(_vary(rng, base), light)
        parts = [Part(rect(start, 0, stop, height), color)]
        if kind == WALL and rng.random() < 0.5:
            parts.append(Part(rect(start, height - 0.15, stop, height), _shade(color, 1.15)))
        scene.parts(plane, parts, kind)


def _guard_rail(scene: Scene, street: Street, side: Side, light: float) -> None:
    plane = Plane(Surface.SIDE, side.sign * (side.road_edge + 0.4), 0.0)
    color = _shade((175, 178, 182), light)
    for start, stop in _segments(street, 1.0, min(street.end, 400)):
        parts = [Part(rect(start, 0.45, stop, 0.8), color)]
        for z in np.arange(start, stop, 2.0):
            parts.append(Part(rect(z, 0.0, z + 0.12, 0.75), _shade(color, 0.7)))
        scene.parts(plane, parts, GUARD_RAIL)


# ------------------------------------------------------------------------------ frontal objects


def _front(z: float, x: float = 0.0, direction: float = 1.0) -> Plane:
    return Plane(Surface.FRONT, z, x, direction)


def _vehicle_dims(rng: np.random.Generator, kind: str) -> tuple[float, float, float]:
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
        "car": _CAR_COLORS,
        "van": _CAR_COLORS,
        "truck": _TRUCK_COLORS,
        "bus": _BUS_COLORS,
        "caravan": _CARAVAN_COLORS,
        "trailer": _TRAILER_COLORS,
        "train": _TRAIN_COLORS,
    }[kind]
    return _vary(rng, _pick(rng, palette), 0.06)


def _wheel(cs: float, r: float) -> list[Part]:
    return [Part(disc(cs, r, r, n=12), _TYRE), Part(disc(cs, r, r * 0.55, n=10), _RIM)]


def _side_profile(kind: str, h: float, length: float, color: RGB) -> list[Part]:
    """A vehicle seen from the side, rear at s = 0, front at s = length."""
    L = length
    dark = _shade(color, 0.55)
    if kind == "car":
        parts = [
            Part(poly((0, 0.25), (L, 0.25), (L, 0.68), (0.96 * L, 0.82), (0.75 * L, 0.9), (0, 0.92)), color),
            Part(poly((0.06 * L, 0.9), (0.24 * L, h), (0.6 * L, h), (0.78 * L, 0.9)), color),
            Part(
                poly((0.11 * L, 0.95), (0.26 * L, h - 0.06), (0.58 * L, h - 0.06), (0.72 * L, 0.95)),
                _GLASS,
                no_stereo=True,
            ),
            Part(rect(0.0, 0.6, 0.03 * L, 0.78), _TAIL),
            Part(rect(0.97 * L, 0.58, L, 0.68), _HEAD),
        ]
        return parts + _wheel(0.18 * L, 0.31) + _wheel(0.8 * L, 0.31)
    if kind in ("van", "caravan"):
        parts = [
            Part(poly((0, 0.3), (L, 0.3), (L, 0.9), (0.92 * L, h * 0.8), (0.82 * L, h), (0, h)), color),
            Part(rect(0.0, 0.3, L, 0.45), dark),
            Part(poly((0.84 * L, h * 0.62), (0.91 * L, h * 0.62), (0.84 * L, h * 0.95)), _GLASS, no_stereo=True),
        ]
        if kind == "caravan":
            parts += [
                Part(rect(0.0, h * 0.45, 0.82 * L, h * 0.5), _shade(color, 0.6)),
                Part(rect(0.2 * L, h * 0.55, 0.4 * L, h * 0.8), _GLASS),
                Part(rect(0.5 * L, 0.45, 0.62 * L, h * 0.85), _shade(color, 0.85)),
            ]
        else:
            parts.append(Part(rect(0.3 * L, h * 0.55, 0.75 * L, h * 0.85), _GLASS, no_stereo=True))
        return parts + _wheel(0.2 * L, 0.33) + _wheel(0.82 * L, 0.33)
    if kind == "truck":
        cab = 2.3
        parts = [
            Part(rect(0, 0.5, L - cab - 0.2, h), color),
            Part(rect(0, 0.4, L, 0.7), _TYRE),
            Part(poly((L - cab, 0.5), (L, 0.5), (L, 2.2), (L - 0.3, 2.9), (L - cab, 2.95)), _shade(color, 0.9)),
            Part(poly((L - 1.2, 1.7), (L - 0.05, 1.7), (L - 0.35, 2.7), (L - 1.2, 2.75)), _GLASS, no_stereo=True),
        ]
        return parts + _wheel(0.18 * L, 0.5) + _wheel(0.3 * L, 0.5) + _wheel(L - 1.3, 0.5)
    if kind in ("bus", "train"):
        floor = 0.35 if kind == "bus" else 0.9
        parts = [Part(rect(0, floor, L, h), color), Part(rect(0, floor + 0.75, L, h - 0.45), _GLASS, no_stereo=True)]
        for s in np.arange(0.6, L - 0.4, 1.6):
            parts.append(Part(rect(s, floor + 0.7, s + 0.15, h - 0.4), color))
        for s in np.arange(L * 0.15, L - 1.5, 7.0 if kind == "bus" else 6.5):
            parts.append(Part(rect(s, floor + 0.05, s + 1.2, h - 0.35), _shade(color, 0.6)))
        parts.append(Part(rect(0, floor, L, floor + 0.15), _shade(color, 0.5)))
        if kind == "train":
            parts.append(Part(poly((L * 0.4, h), (L * 0.45, h + 1.2), (L * 0.5, h + 1.2), (L * 0.42, h)), _TYRE))
            parts.append(Part(rect(L * 0.2, 0.0, L * 0.8, floor), _TYRE))
            return parts
        return parts + _wheel(0.2 * L, 0.5) + _wheel(0.8 * L, 0.5)
    # trailer
    parts = [Part(rect(0, 0.45, L - 0.8, h), color), Part(rect(L - 0.8, 0.45, L, 0.55), _TYRE)]
    return parts + _wheel(0.5 * L, 0.32)


def _end_profile(kind: str, w: float, h: float, front: bool, color: RGB) -> list[Part]:
    """A vehicle seen from behind (or from the front when ``front``), centred on s = 0."""
    hw = w / 2
    dark = _shade(color, 0.5)
    lamp = _HEAD if front else _TAIL
    wheels = [Part(rect(-hw + 0.02, 0.0, -hw + 0.3, 0.35), _TYRE), Part(rect(hw - 0.3, 0.0, hw - 0.02, 0.35), _TYRE)]
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
                _GLASS,
                no_stereo=True,
            ),
            Part(rect(-hw, 0.22, hw, 0.36), dark),
            Part(rect(-hw + 0.05, 0.62, -hw + 0.38, 0.76), lamp),
            Part(rect(hw - 0.38, 0.62, hw - 0.05, 0.76), lamp),
            Part(rect(-0.26, 0.38, 0.26, 0.5), _PLATE),
        ]
        if front:
            parts += [Part(rect(-hw - 0.12, 0.95, -hw, 1.05), color), Part(rect(hw, 0.95, hw + 0.12, 1.05), color)]
        return wheels + parts
    if kind in ("van", "caravan", "truck", "bus", "trailer", "train"):
        floor = {"train": 0.9, "truck": 0.5, "trailer": 0.45}.get(kind, 0.3)
        parts = [
            Part(rect(-hw, floor, hw, h), color),
            Part(rect(-hw + 0.1, floor - 0.15, hw - 0.1, floor + 0.1), _TYRE),
        ]
        if kind in ("bus", "train") or (front and kind in ("truck", "van")):
            top = h - 0.3 if kind != "truck" else min(h, 2.8) - 0.2
            parts.append(Part(rect(-hw + 0.1, 1.2 if kind != "train" else 1.7, hw - 0.1, top), _GLASS, no_stereo=True))
        elif kind == "caravan":
            parts.append(Part(rect(-0.4 * w, h * 0.5, 0.4 * w, h * 0.78), _GLASS))
            parts.append(Part(rect(-hw, h * 0.42, hw, h * 0.47), _shade(color, 0.6)))
        else:  # rear doors
            parts.append(Part(rect(-0.01, floor + 0.1, 0.01, h - 0.1), dark))
        parts += [
            Part(rect(-hw + 0.05, floor + 0.2, -hw + 0.3, floor + 0.4), lamp),
            Part(rect(hw - 0.3, floor + 0.2, hw - 0.05, floor + 0.4), lamp),
        ]
        return (wheels if kind != "train" else []) + parts
    raise ValueError(kind)


def _vehicle(
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
    w, h, length = dims or _vehicle_dims(rng, kind)
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
    scene.ground_shadow(_xz_quad(x - w / 2 - 0.1, x + w / 2 + 0.1, z - 0.2, z + length), 0.55)


def _crossing_vehicle(scene: Scene, kind: str, x: float, z: float, direction: float, inst: int | None = None) -> None:
    """A vehicle on the crossing street, seen from the side (its side is a plane z = const)."""
    rng = scene.rng
    w, h, length = _vehicle_dims(rng, kind)
    color = _vehicle_color(rng, kind)
    label = _VEHICLE_LABEL[kind]
    inst = scene.instance(label) if inst is None else inst
    rear = x - direction * length / 2
    plane = _front(z, rear, direction)
    scene.ground_shadow(_xz_quad(x - length / 2, x + length / 2, z - 0.1, z + w), 0.5)
    scene.schedule(z, lambda: scene.parts(plane, _side_profile(kind, h, length, color), label, inst))


def _person_parts(rng: np.random.Generator, height: float, pose: str) -> list[Part]:
    """A pedestrian, centred on s = 0, feet at y = 0. pose: front | walk (side view)."""
    H = height
    skin, hair = _pick(rng, _SKIN), _pick(rng, _HAIR)
    shirt, pants = _vary(rng, _pick(rng, _CLOTHES), 0.1), _vary(rng, _pick(rng, _PANTS), 0.1)
    shoes = _shade(pants, 0.5)
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
                _shade(pants, 0.85),
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
                _shade(shirt, 0.85),
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
        parts.append(Part(rect(0.1 * H, 0.45 * H, 0.2 * H, 0.6 * H), _vary(rng, _pick(rng, _CLOTHES))))
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


def _bicycle_parts(rng: np.random.Generator, view: str, motor: bool) -> tuple[list[Part], float]:
    """A bicycle or motorcycle (side view: rear wheel at s = 0.35); returns parts and seat height."""
    frame = _vary(rng, _pick(rng, _CLOTHES if not motor else _CAR_COLORS), 0.1)
    if view == "side":
        if motor:
            r, wheelbase = 0.32, 1.45
            parts = [
                *_wheel(r, r),
                *_wheel(r + wheelbase, r),
                Part(poly((r, r), (r + wheelbase, r + 0.1), (r + wheelbase - 0.2, 0.95), (r + 0.2, 0.8)), frame),
                Part(rect(r - 0.1, 0.75, r + 0.6, 0.85), _TYRE),
                Part(
                    poly(
                        (r + wheelbase - 0.15, 0.9),
                        (r + wheelbase, 1.15),
                        (r + wheelbase - 0.05, 1.2),
                        (r + wheelbase - 0.25, 0.95),
                    ),
                    _TYRE,
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
            Part(rect(r + 0.22, 0.95, r + 0.45, 1.0), _TYRE),
        ]
        return parts, 0.97
    half = 0.3 if not motor else 0.42
    parts = [
        Part(rect(-0.03 if not motor else -0.07, 0.0, 0.03 if not motor else 0.07, 0.68 if not motor else 0.62), _TYRE),
        Part(rect(-half, 1.0 if not motor else 0.95, half, 1.05 if not motor else 1.02), frame),
    ]
    if motor:
        parts += [Part(rect(-0.25, 0.35, 0.25, 0.85), frame), Part(rect(-0.1, 0.5, 0.1, 0.6), _TAIL)]
    else:
        parts.append(Part(rect(-0.02, 0.6, 0.02, 1.0), frame))
    return parts, 0.97 if not motor else 0.82


def _rider_parts(rng: np.random.Generator, view: str, seat: float) -> list[Part]:
    skin, hair = _pick(rng, _SKIN), _pick(rng, _HAIR)
    top, pants = _vary(rng, _pick(rng, _CLOTHES), 0.1), _vary(rng, _pick(rng, _PANTS), 0.1)
    helmet = rng.random() < 0.6
    head = _vary(rng, _pick(rng, _CLOTHES)) if helmet else hair
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


def _cyclist(scene: Scene, x: float, z: float, view: str, motor: bool, rider: bool = True) -> None:
    rng = scene.rng
    vehicle_label = MOTORCYCLE if motor else BICYCLE
    bike_parts, seat = _bicycle_parts(rng, view, motor)
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


# --- street furniture


def _tree(scene: Scene, x: float, z: float) -> None:
    rng = scene.rng
    height = float(rng.uniform(5, 12))
    crown = float(rng.uniform(1.2, min(2.8, height / 3.5)))
    green = _vary(rng, (62, 100, 40), 0.15)
    parts = [Part(rect(-0.15, 0.0, 0.15, height - crown), _vary(rng, (80, 65, 50)), texture=0.1)]
    for _ in range(int(rng.integers(3, 6))):
        cs, cy = rng.normal(0, crown * 0.4), height - crown + rng.normal(0, crown * 0.3)
        parts.append(
            Part(
                disc(cs, cy, crown * rng.uniform(0.6, 1.0), n=14),
                _shade(green, rng.uniform(0.85, 1.15)),
                Pattern.LEAVES,
            )
        )
    scene.ground_shadow(disc(x, z, crown, crown * 0.7, 10), 0.35)
    scene.schedule(z, lambda: scene.parts(_front(z, x), parts, VEGETATION))


def _pole(scene: Scene, x: float, z: float, sign_side: int, with_sign: float, with_light: float, lamp: bool) -> None:
    """A pole, maybe a street lamp (arm over the road), with traffic signs and lights on it."""
    rng = scene.rng
    height = float(rng.uniform(3, 4.5) if not lamp else rng.uniform(6, 9))
    color = _vary(rng, (78, 80, 86), 0.2)
    pole_parts = [Part(rect(-0.07, 0.0, 0.07, height), color)]
    if lamp:
        reach = float(rng.uniform(1.0, 2.5)) * -sign_side
        pole_parts.append(
            Part(poly((0, height - 0.1), (reach, height + 0.2), (reach, height + 0.3), (0, height)), color)
        )
        pole_parts.append(Part(rect(reach - 0.3, height - 0.05, reach + 0.3, height + 0.25), _shade(color, 1.3)))
    sign_parts: list[Part] = []
    if rng.random() < with_sign:
        y = float(rng.uniform(2.0, 2.8))
        sc = _pick(rng, _SIGN_COLORS)
        shape = rng.integers(4)
        size = float(rng.uniform(0.35, 0.5))
        facing = rng.random() < 0.75  # else we see the grey back of the sign
        col = sc if facing else (150, 150, 152)
        if shape == 0:
            sign_parts.append(Part(disc(0.0, y, size, n=16), col))
            if facing:
                sign_parts.append(
                    Part(disc(0.0, y, size * 0.7, n=16), (238, 238, 238) if sc != (238, 238, 238) else (200, 30, 30))
                )
        elif shape == 1:
            sign_parts.append(Part(poly((-size, y + size * 0.6), (size, y + size * 0.6), (0.0, y - size)), col))
        elif shape == 2:
            sign_parts.append(Part(rect(-size, y - size * 0.7, size, y + size * 0.7), col))
        else:
            sign_parts.append(Part(rect(-size * 1.6, y - size * 0.35, size * 0.6, y + size * 0.35), col))
        if rng.random() < 0.3:
            sign_parts.append(Part(rect(-size * 0.8, y - size - 0.35, size * 0.8, y - size - 0.05), (238, 238, 238)))
    light_parts: list[Part] = []
    if rng.random() < with_light:
        y = float(rng.uniform(2.2, 3.2)) if not lamp else height - 1.6
        state = int(rng.integers(3))
        light_parts.append(Part(rect(-0.16, y, 0.16, y + 0.9), (32, 34, 32)))
        for i, lamp_color in enumerate(((40, 200, 90), (240, 180, 30), (230, 40, 30))):
            on = 2 - i == state
            light_parts.append(
                Part(disc(0.0, y + 0.15 + 0.3 * i, 0.1, n=10), lamp_color if on else _shade(lamp_color, 0.25))
            )
    scene.schedule(
        z,
        lambda: (
            scene.parts(_front(z, x), pole_parts, POLE),
            scene.parts(_front(z - 0.05, x), sign_parts, TRAFFIC_SIGN),
            scene.parts(_front(z - 0.1, x), light_parts, TRAFFIC_LIGHT),
        ),
    )


def _overhead_light(scene: Scene, x: float, z: float, reach: float) -> None:
    """A traffic light hanging over the road from a mast arm."""
    rng = scene.rng
    color = _vary(rng, (78, 80, 86), 0.2)
    pole_parts = [Part(rect(-0.1, 0.0, 0.1, 6.0), color), Part(rect(min(0, reach), 5.6, max(0, reach), 5.75), color)]
    state = int(rng.integers(3))
    lights = []
    for end in (reach * 0.55, reach * 0.95):
        lights.append(Part(rect(end - 0.17, 4.5, end + 0.17, 5.6), (32, 34, 32)))
        for i, lamp_color in enumerate(((40, 200, 90), (240, 180, 30), (230, 40, 30))):
            on = 2 - i == state
            lights.append(Part(disc(end, 4.7 + 0.33 * i, 0.11, n=10), lamp_color if on else _shade(lamp_color, 0.25)))
    scene.schedule(
        z, lambda: (scene.parts(_front(z, x), pole_parts, POLE), scene.parts(_front(z - 0.1, x), lights, TRAFFIC_LIGHT))
    )


def _polegroup(scene: Scene, x: float, z: float) -> None:
    rng = scene.rng
    parts = []
    for _ in range(int(rng.integers(3, 7))):
        s = float(rng.uniform(-1.0, 1.0))
        parts.append(Part(rect(s - 0.06, 0.0, s + 0.06, rng.uniform(2.5, 5.0)), _vary(rng, (80, 82, 88), 0.2)))
        if rng.random() < 0.5:
            y = float(rng.uniform(2.0, 3.0))
            parts.append(Part(rect(s - 0.3, y, s + 0.3, y + 0.5), _pick(rng, _SIGN_COLORS)))
    scene.schedule(z, lambda: scene.parts(_front(z, x), parts, POLEGROUP))


def _static_object(scene: Scene, x: float, z: float) -> None:
    """Bins, benches, bollards, planters, boxes: void class "static"."""
    rng = scene.rng
    kind = int(rng.integers(4))
    color = _vary(rng, [(70, 95, 70), (100, 100, 105), (140, 100, 60), (60, 60, 70)][kind], 0.2)
    if kind == 0:  # bin
        parts = [Part(rect(-0.3, 0.0, 0.3, 1.0), color), Part(rect(-0.33, 0.95, 0.33, 1.1), _shade(color, 0.8))]
    elif kind == 1:  # bench
        parts = [
            Part(rect(-0.9, 0.4, 0.9, 0.5), color),
            Part(rect(-0.9, 0.55, 0.9, 0.9), color),
            Part(rect(-0.8, 0.0, -0.7, 0.4), _TYRE),
            Part(rect(0.7, 0.0, 0.8, 0.4), _TYRE),
        ]
    elif kind == 2:  # planter / box
        parts = [Part(rect(-0.6, 0.0, 0.6, 0.7), color)]
    else:  # bollards
        parts = [Part(rect(s - 0.08, 0.0, s + 0.08, 0.9), color) for s in np.arange(-1.5, 1.6, 1.0)]
    scene.schedule(z, lambda: scene.parts(_front(z, x), parts, STATIC))


def _dynamic_object(scene: Scene, x: float, z: float) -> None:
    """Strollers, carts, a wheelie bin being moved: void class "dynamic"."""
    rng = scene.rng
    color = _vary(rng, _pick(rng, _CLOTHES), 0.2)
    parts = [
        Part(rect(-0.35, 0.3, 0.35, 0.95), color),
        Part(disc(-0.25, 0.12, 0.12, n=8), _TYRE),
        Part(disc(0.25, 0.12, 0.12, n=8), _TYRE),
    ]
    scene.schedule(z, lambda: scene.parts(_front(z, x), parts, DYNAMIC))


def _unlabeled_object(scene: Scene, x: float, z: float) -> None:
    rng = scene.rng
    pts = disc(0.0, 0.5, rng.uniform(0.3, 1.0), rng.uniform(0.3, 0.6), n=7)
    pts[:, 1] = np.maximum(pts[:, 1], 0.0)
    color = _vary(rng, (120, 110, 100), 0.3)
    scene.schedule(z, lambda: scene.parts(_front(z, x), [Part(pts, color)], UNLABELED))


def _bridge(scene: Scene, street: Street, z: float) -> None:
    rng = scene.rng
    bottom = float(rng.uniform(4.5, 6.5))
    thickness = float(rng.uniform(1.0, 2.5))
    color = _vary(rng, (140, 136, 130), 0.15)
    span = street.left.facade + street.right.facade + 60
    parts = [
        Part(rect(-span, bottom, span, bottom + thickness), color),
        Part(rect(-span, bottom + thickness, span, bottom + thickness + 1.0), _shade(color, 0.8), Pattern.BARS),
        Part(rect(-street.left.road_edge - 1.5, 0.0, -street.left.road_edge - 0.5, bottom), _shade(color, 0.9)),
        Part(rect(street.right.road_edge + 0.5, 0.0, street.right.road_edge + 1.5, bottom), _shade(color, 0.9)),
    ]
    scene.schedule(z, lambda: scene.parts(_front(z), parts, BRIDGE))


def _street_end(scene: Scene, street: Street) -> None:
    rng = scene.rng
    z = street.end
    span = 600.0
    if street.end_style == "block":
        height = float(rng.uniform(10, 30))
        color = _shade(_vary(rng, _pick(rng, _BUILDING_COLORS)), 0.9)
        parts = [Part(rect(-span, 0, span, height), color)]
        for s in np.arange(-40, 40, rng.uniform(2.5, 3.5)):
            for y in np.arange(3.6, height - 2, 3.3):
                parts.append(Part(rect(s, y, s + 1.2, y + 1.5), _GLASS))
        scene.schedule(z, lambda: scene.parts(_front(z), parts, BUILDING))
    elif street.end_style == "trees":
        parts = [Part(_jagged(rng, -span, span, rng.uniform(8, 20), 4.0), _vary(rng, (60, 95, 40)), Pattern.LEAVES)]
        scene.schedule(z, lambda: scene.parts(_front(z), parts, VEGETATION))
    elif street.end_style == "tunnel":
        height = float(rng.uniform(6, 9))
        color = _vary(rng, (120, 115, 110))
        hw = (street.left.road_edge + street.right.road_edge) / 2 + 1
        mid = (street.right.road_edge - street.left.road_edge) / 2
        parts = [
            Part(rect(-span, 0, span, height + 6), _vary(rng, (80, 110, 50)), Pattern.LEAVES),
        ]
        portal = [
            Part(rect(mid - hw - 2, 0, mid + hw + 2, height + 1.5), color),
            Part(rect(mid - hw, 0, mid + hw, height), (35, 33, 30)),
        ]
        scene.schedule(z + 0.5, lambda: scene.parts(_front(z + 0.5), parts, VEGETATION))
        scene.schedule(z, lambda: scene.parts(_front(z), portal, TUNNEL))
    # far skyline on the horizon, behind everything
    far = float(rng.uniform(700, 1500))
    skyline = []
    s = -4000.0
    while s < 4000:
        width = float(rng.uniform(40, 200))
        if rng.random() < 0.5:
            skyline.append((BUILDING, Part(rect(s, 0, s + width, rng.uniform(10, 60)), _vary(rng, (150, 150, 160)))))
        else:
            skyline.append(
                (VEGETATION, Part(_jagged(rng, s, s + width, rng.uniform(10, 30), 10.0), _vary(rng, (80, 100, 70))))
            )
        s += width
    scene.schedule(far, lambda: [scene.parts(_front(far), [part], label) for label, part in skyline])


def _populate(scene: Scene, street: Street) -> None:
    rng = scene.rng
    end = street.end
    _street_end(scene, street)
    if rng.random() < 0.08:
        _bridge(scene, street, float(rng.uniform(30, min(150, end - 5))))
    for side in (street.left, street.right):
        s = side.sign
        sidewalk = side.sidewalk_width > 0
        # trees along the street
        if side.trees:
            x_tree = side.x(side.strip_width / 2) if side.strip == "terrain" else side.x(side.strip_width + 0.9)
            for z in np.arange(rng.uniform(6, 14), min(end, 200), rng.uniform(8, 16)):
                if not street.on_cross(z, 2):
                    _tree(scene, x_tree + rng.normal(0, 0.2), float(z))
        # lamps, signs, traffic lights
        if sidewalk or side.style == "open":
            x_pole = side.x(side.strip_width + 0.4)
            for z in np.arange(rng.uniform(5, 25), min(end, 250), rng.uniform(22, 40)):
                if not street.on_cross(z, 1):
                    _pole(scene, x_pole, float(z), s, with_sign=0.3, with_light=0.0, lamp=True)
            for _ in range(int(rng.poisson(1.5))):
                z = float(rng.uniform(5, min(end, 90)))
                if not street.on_cross(z, 1):
                    _pole(scene, x_pole + s * 0.3, z, s, with_sign=1.0, with_light=0.05, lamp=False)
        if street.cross is not None:
            corner = street.cross[0] - 1.0
            _pole(scene, side.x(0.6), corner, s, with_sign=0.3, with_light=1.0, lamp=False)
            _pole(scene, side.x(0.6), street.cross[1] + 1.0, s, with_sign=0.2, with_light=1.0, lamp=False)
            if s > 0 and rng.random() < 0.5:
                _overhead_light(scene, side.x(0.6), corner - 0.5, -side.road_edge - 1.0)
        if sidewalk:
            lo, hi = side.sidewalk_inner + 0.3, side.facade - 0.4
            for _ in range(int(rng.poisson(2.0))):
                _static_object(scene, side.x(rng.uniform(lo, hi) - side.road_edge), float(rng.uniform(4, 70)))
            if rng.random() < 0.2:
                _dynamic_object(scene, side.x(rng.uniform(lo, hi) - side.road_edge), float(rng.uniform(4, 50)))
            if rng.random() < 0.3:
                _unlabeled_object(scene, side.x(hi - side.road_edge), float(rng.uniform(4, 60)))
            if rng.random() < 0.15:
                _polegroup(scene, side.x(lo - side.road_edge + 0.5), float(rng.uniform(15, 90)))
            _pedestrians(scene, side, lo, hi)
            _parked_bicycles(scene, side, lo, hi)
        _parked_cars(scene, street, side)
    _traffic(scene, street)
    _cyclists(scene, street)
    if street.crosswalk is not None and rng.random() < 0.6:
        z = street.crosswalk + 1.5
        for _ in range(int(rng.integers(1, 5))):
            _person(
                scene, float(rng.uniform(-street.left.road_edge, street.right.road_edge)), z + float(rng.uniform(-1, 1))
            )


def _pedestrians(scene: Scene, side: Side, lo: float, hi: float) -> None:
    rng = scene.rng
    for _ in range(int(rng.poisson(3.5))):
        z = float(rng.uniform(3.5, 60) if rng.random() < 0.8 else rng.uniform(60, 160))
        _person(scene, side.x(rng.uniform(lo, hi) - side.road_edge), z)
    if rng.random() < 0.3:  # a crowd, annotated as one group region
        group = scene.instance(PERSON, group=True)
        zc = float(rng.uniform(8, 70))
        xc = rng.uniform(lo, hi) - side.road_edge
        for _ in range(int(rng.integers(4, 10))):
            _person(scene, side.x(xc + rng.normal(0, 0.6)), zc + float(rng.normal(0, 1.0)), inst=group)
    if rng.random() < 0.2:  # a pair of persons, one occluding the other
        z = float(rng.uniform(6, 30))
        x = rng.uniform(lo, hi) - side.road_edge
        _person(scene, side.x(x), z + 1.2)
        _person(scene, side.x(x + 0.25), z)


def _parked_bicycles(scene: Scene, side: Side, lo: float, hi: float) -> None:
    rng = scene.rng
    if rng.random() < 0.25:
        _cyclist(
            scene,
            side.x(rng.uniform(lo, hi) - side.road_edge),
            float(rng.uniform(5, 40)),
            "side",
            motor=rng.random() < 0.3,
            rider=False,
        )
    if rng.random() < 0.12:  # a row of parked bicycles: one group region
        group = scene.instance(BICYCLE, group=True)
        z0 = float(rng.uniform(8, 50))
        x = side.x(hi - side.road_edge - 0.3)
        plane = Plane(Surface.SIDE, x, 0.0)
        parts: list[Part] = []
        for k in range(int(rng.integers(3, 8))):
            bike, _ = _bicycle_parts(rng, "side", motor=False)
            for part in bike:
                part.points = part.points + np.array([z0 + 0.6 * k, 0.0])
            parts.extend(bike)
        scene.schedule(z0, lambda: scene.parts(plane, parts, BICYCLE, group))


def _parked_cars(scene: Scene, street: Street, side: Side) -> None:
    rng = scene.rng
    if side.parked <= 0:
        return
    x = side.x(side.strip_width / 2) if side.strip == "parking" else side.x(-1.15)
    if street.rail is not None and street.rail[0] - 1.5 < x < street.rail[1] + 1.5:
        return  # no parking on the tram tracks
    z = float(rng.uniform(3, 12))
    cluster_from = float(rng.uniform(40, 90)) if rng.random() < 0.35 else math.inf
    group = scene.instance(CAR, group=True) if cluster_from < math.inf else -1
    while z < min(street.end, 140):
        if street.on_cross(z, 3):
            z = street.cross[1] + 3.5 if street.cross else z + 5
            continue
        if rng.random() < side.parked:
            kind = str(rng.choice(["car", "van", "caravan", "trailer", "truck"], p=[0.86, 0.08, 0.02, 0.02, 0.02]))
            dims = _vehicle_dims(rng, kind)
            inst = group if z >= cluster_from and kind in ("car", "van") else None
            _vehicle(
                scene, kind, x + side.sign * rng.uniform(0, 0.3), z, oncoming=rng.random() < 0.3, inst=inst, dims=dims
            )
            z += dims[2] + float(rng.uniform(0.3, 2.0))
        else:
            z += float(rng.uniform(3, 10))


def _traffic(scene: Scene, street: Street) -> None:
    rng = scene.rng
    density = float(rng.uniform(0.2, 1.0))
    for x, oncoming in street.lanes:
        z = float(rng.uniform(9, 30) if x == street.lanes[0][0] else rng.uniform(5, 25))
        while z < min(street.end, 260):
            if rng.random() < density:
                kind = str(
                    rng.choice(
                        ["car", "van", "truck", "bus", "motorcycle", "caravan", "trailer", "train"],
                        p=[0.72, 0.07, 0.06, 0.05, 0.04, 0.02, 0.03, 0.01],
                    )
                )
                if kind == "train" and street.rail is None:
                    kind = "bus"
                if kind == "motorcycle":
                    _cyclist(scene, x + rng.normal(0, 0.3), z, "back", motor=True)
                    z += 4
                    continue
                dims = _vehicle_dims(rng, kind)
                jitter = float(rng.normal(0, 0.2))
                if kind != "car" and abs(x) < street.lane_width / 2:
                    z = max(z, 15.0)  # a bus right in front would hide the whole scene
                if kind == "trailer":  # a car towing a trailer: car farther, trailer in front of us
                    car_dims = _vehicle_dims(rng, "car")
                    near = oncoming
                    tz = z if not near else z + car_dims[2] + 0.6
                    cz = z + dims[2] + 0.6 if not near else z
                    _vehicle(scene, "car", x + jitter, cz, oncoming, dims=car_dims)
                    _vehicle(scene, "trailer", x + jitter, tz, oncoming, dims=dims)
                    z += dims[2] + car_dims[2] + 0.6
                else:
                    _vehicle(scene, kind, x + jitter, z, oncoming, dims=dims)
                    z += dims[2]
            z += float(rng.exponential(15 + 30 * (1 - density))) + 3
    if street.rail is not None and rng.random() < 0.6:
        x = (street.rail[0] + street.rail[1]) / 2
        _vehicle(scene, "train", x, float(rng.uniform(8, 80)), oncoming=rng.random() < 0.5)
    if street.cross is not None:
        a, b = street.cross
        for lane_z, direction in ((a + (b - a) * 0.3, 1.0), (a + (b - a) * 0.7, -1.0)):
            for _ in range(int(rng.poisson(1.2))):
                kind = str(rng.choice(["car", "van", "truck", "bus"], p=[0.8, 0.1, 0.05, 0.05]))
                _crossing_vehicle(scene, kind, float(rng.uniform(-40, 40)), lane_z, direction)
            if rng.random() < 0.15:
                _cyclist(scene, float(rng.uniform(-20, 20)), lane_z - 1, "side", motor=rng.random() < 0.4)


def _cyclists(scene: Scene, street: Street) -> None:
    rng = scene.rng
    for _ in range(int(rng.poisson(1.0))):
        x = street.right.road_edge - rng.uniform(0.6, 1.2)
        _cyclist(scene, x, float(rng.uniform(5, 80)), "back", motor=False)
    if rng.random() < 0.15:
        _cyclist(
            scene,
            float(rng.uniform(-street.left.road_edge, street.right.road_edge)),
            float(rng.uniform(8, 40)),
            "side",
            motor=False,
        )
    if rng.random() < 0.05:  # a group of cyclists annotated as one rider region
        group = scene.instance(RIDER, group=True)
        z = float(rng.uniform(15, 50))
        for k in range(3):
            rider = _rider_parts(rng, "back", 0.97)
            bike, _ = _bicycle_parts(rng, "back", motor=False)
            bike_inst = scene.instance(BICYCLE)
            x = street.right.road_edge - 1.0 - 0.5 * k
            zk = z + 0.8 * k
            scene.schedule(zk, partial(_draw_pair, scene, _front(zk, x), bike, bike_inst, rider, group))


def _draw_pair(
    scene: Scene, plane: Plane, bike: list[Part], bike_inst: int, rider: list[Part], rider_inst: int
) -> None:
    scene.parts(plane, bike, BICYCLE, bike_inst)
    scene.parts(plane, rider, RIDER, rider_inst)


# ------------------------------------------------------------------------------- ego and borders


def _ego_and_borders(scene: Scene) -> None:
    """The hood of the recording car, the rectification border and the out-of-roi strip."""
    rng = scene.rng
    W, H = scene.cam.width, scene.cam.height
    xs = np.linspace(0, W, 33)
    t = 2 * xs / W - 1
    top = H * (0.815 + 0.17 * t**4 + 0.01 * t**2)
    hood = [*np.column_stack([xs, top]).ravel().tolist(), W, H, 0, H]
    scene.screen(hood, EGO_VEHICLE, (30, 31, 35), texture=0.3)
    star = np.column_stack(
        [
            W * 0.5 + W * 0.012 * np.cos(np.linspace(0, 6.28, 10)),
            H * 0.83 + H * 0.012 * np.sin(np.linspace(0, 6.28, 10)),
        ]
    )
    scene.screen(star.ravel().tolist(), EGO_VEHICLE, (170, 170, 175))
    left = [0, 0, W * rng.uniform(0.0, 0.006), 0, W * rng.uniform(0.0, 0.008), H, 0, H]
    right = [W, 0, W * (1 - rng.uniform(0.0, 0.006)), 0, W * (1 - rng.uniform(0.0, 0.008)), H, W, H]
    scene.screen(left, RECTIFICATION_BORDER, (0, 0, 0), texture=0.0)
    scene.screen(right, RECTIFICATION_BORDER, (0, 0, 0), texture=0.0)
    if rng.random() < 0.3:
        scene.screen(
            [0, 0, W, 0, W, H * rng.uniform(0.002, 0.01), 0, H * rng.uniform(0.002, 0.01)],
            RECTIFICATION_BORDER,
            (0, 0, 0),
            texture=0.0,
        )
    bottom = H * (1 - rng.uniform(0.004, 0.012))
    scene.screen([0, bottom, W, bottom, W, H, 0, H], OUT_OF_ROI, (10, 10, 12), texture=0.0)
    corner = W * rng.uniform(0.02, 0.06)
    scene.screen([0, H * 0.93, corner, H, 0, H], OUT_OF_ROI, (10, 10, 12), texture=0.0)
    scene.screen([W, H * 0.93, W - corner, H, W, H], OUT_OF_ROI, (10, 10, 12), texture=0.0)


# ----------------------------------------------------------------------------------------- render


@dataclass
class FrameData:
    image: np.ndarray  # (H, W, 3) uint8
    label_ids: np.ndarray  # (H, W) uint8
    instance_ids: np.ndarray  # (H, W) uint16
    disparity: np.ndarray  # (H, W) uint16
    depth: np.ndarray  # (H, W) float32, inf where unknown


def build_scene(size: tuple[int, int], rng: np.random.Generator) -> tuple[Scene, Environment]:
    """Draw the whole scene (labels only) for one frame."""
    env = _environment(rng)
    heading = float(rng.normal(0.0, 0.02))
    cam = Camera.for_size(size, heading)
    scene = Scene(cam, rng)
    street = _street(rng)
    scene.add_prim(SKY, tuple(env.sky_horizon.tolist()), Surface.NONE)  # id 0: the sky under everything
    _ground_layers(scene, street)
    _side_planes(scene, street, env)
    _populate(scene, street)
    scene.paint_objects()
    _ego_and_borders(scene)
    return scene, env


def smooth_noise(rng: np.random.Generator, size: tuple[int, int], cell: float) -> np.ndarray:
    """Standard-normal-ish noise with features of about ``cell`` pixels (bilinear value noise)."""
    W, H = size
    gw, gh = max(2, round(W / cell) + 1), max(2, round(H / cell) + 1)
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    field_ = Image.fromarray(grid).resize((W, H), Image.Resampling.BILINEAR)
    return np.asarray(field_, dtype=np.float32)


def _instance_values(scene: Scene, counts: np.ndarray) -> np.ndarray:
    """The instanceIds value of every primitive; visible instances are numbered per class from 0."""
    p_inst = np.asarray(scene.p_inst, dtype=np.int64)
    p_label = np.asarray(scene.p_label, dtype=np.int64)
    visible = np.zeros(len(scene.i_label) + 1, dtype=bool)
    shown = (counts > 0) & (p_inst >= 0)
    visible[p_inst[shown]] = True
    values = np.zeros(len(scene.i_label) + 1, dtype=np.int64)
    next_k: dict[int, int] = {}
    for index, (label, group) in enumerate(zip(scene.i_label, scene.i_group, strict=True)):
        if group or not visible[index]:
            values[index] = label
        else:
            k = next_k.get(label, 0)
            next_k[label] = k + 1
            values[index] = label * 1000 + k
    return np.where(p_inst >= 0, values[p_inst], p_label).astype(np.uint16)


def render(scene: Scene, env: Environment, rng: np.random.Generator) -> FrameData:
    """Turn the painted canvases into the photo, the ground truth and the disparity."""
    cam = scene.cam
    W, H = cam.width, cam.height
    surface_table = np.asarray(scene.p_surface, dtype=np.uint8)
    param_table = np.asarray(scene.p_param, dtype=np.float32)
    ids = np.array(scene.background, dtype=np.intp)  # intp: np.take needs no conversion
    depth = _depth(cam, ids, np.arange(H)[:, None], np.arange(W)[None, :], surface_table, param_table)
    flat_ids, flat_depth = ids.reshape(-1), depth.reshape(-1)
    # objects win over the background where they are nearer
    foreground = np.asarray(scene.foreground, dtype=np.intp).reshape(-1)
    where = np.flatnonzero(foreground >= 0)
    if where.size:
        object_ids = foreground[where]
        object_depth = _depth(cam, object_ids, where // W, where % W, surface_table, param_table)
        nearer = object_depth < flat_depth[where]
        flat_ids[where[nearer]] = object_ids[nearer]
        flat_depth[where[nearer]] = object_depth[nearer]
    overlay = np.asarray(scene.overlay, dtype=np.uint8).reshape(-1)
    where = np.flatnonzero(overlay)
    flat_ids[where] = np.take(np.asarray([-1, *scene.overlay_prims], dtype=np.intp), overlay[where])
    flat_depth[where] = np.inf
    counts = np.bincount(flat_ids, minlength=len(scene.p_label))
    label_ids = np.take(np.asarray(scene.p_label, dtype=np.uint8), ids)
    instance_ids = np.take(_instance_values(scene, counts), ids)
    surface = np.take(surface_table, ids)
    noise_coarse = smooth_noise(rng, (W, H), W / 40)
    noise_fine = smooth_noise(rng, (W, H), max(2.0, W / 300))
    disparity = _disparity(scene, ids, depth, surface, noise_fine, rng)
    image = _photo(scene, env, ids, counts, surface, param_table, depth, noise_coarse, noise_fine, rng)
    return FrameData(image, label_ids, instance_ids, disparity, depth)


def _depth(
    cam: Camera,
    ids: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    surface_table: np.ndarray,
    param_table: np.ndarray,
) -> np.ndarray:
    """Depth in metres of pixels showing primitives ``ids`` at ``rows``/``cols`` (inf: sky, overlay)."""
    surface = np.take(surface_table, ids)
    param = np.take(param_table, ids)
    ground_rows = (rows + (0.5 - cam.vh)).astype(np.float32)
    ground = np.float32(cam.fy * cam.mount) / np.maximum(ground_rows, np.float32(0.25))
    ground = np.where(ground_rows > 0.25, ground, np.float32(_FAR))
    offset = (cols + (0.5 - cam.uc)).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        side = np.float32(cam.fx) * param / offset
    side = np.where((side > 0) & (side < _FAR), side, np.float32(_FAR))
    depth = np.where(surface == Surface.FRONT, param, np.float32(np.inf))
    depth = np.where(surface == Surface.SIDE, side, depth)
    return np.where(surface == Surface.GROUND, ground, depth).astype(np.float32, copy=False)


def _disparity(
    scene: Scene,
    ids: np.ndarray,
    depth: np.ndarray,
    surface: np.ndarray,
    noise: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Raw disparity as in the dataset: 0 invalid, else 256 * d + 1, with realistic holes."""
    cam = scene.cam
    H, W = depth.shape
    valid = surface != Surface.NONE
    d = np.float32(cam.fx * cam.baseline) / depth  # depth is inf (d = 0) where not valid
    d += noise * np.float32(0.08 * W / REFERENCE_WIDTH + 0.02)  # matching noise
    holes = np.take(np.asarray(scene.p_no_stereo, dtype=bool), ids)  # glass
    blobs = smooth_noise(rng, (W, H), max(2.0, W / 60))
    holes |= blobs > 2.3  # random failures: a few percent of the pixels
    # instances whose stereo mostly failed (reflective or textureless bodies)
    failing = [index for index, fraction in enumerate(scene.i_valid) if fraction < 1.0]
    if failing:
        instance_table = np.asarray(scene.p_inst, dtype=np.int32)
        instance_of = np.take(instance_table, ids)
        for index in failing:
            mask = instance_of == index
            if not mask.any():
                continue
            values = blobs[mask]
            holes[mask] |= values > np.quantile(values, scene.i_valid[index])
    # occlusions: background just left of a nearer object's left edge has no match in the right image
    jump = np.zeros_like(valid)
    jump[:, :-1] = (d[:, 1:] - d[:, :-1]) > max(1.0, 2.0 * W / REFERENCE_WIDTH)
    for k in range(1, max(1, round(3 * W / REFERENCE_WIDTH))):
        jump[:, :-k] |= jump[:, k:]
    holes |= jump
    holes[:, : max(1, round(W * rng.uniform(0.01, 0.03)))] = True  # left of the search range
    valid &= ~holes
    raw = d * np.float32(256)
    np.maximum(raw, 0, out=raw)
    np.rint(raw, out=raw)
    raw += 1
    np.minimum(raw, 65535, out=raw)
    raw[~valid] = 0
    return raw.astype(np.uint16)


def _photo(
    scene: Scene,
    env: Environment,
    ids: np.ndarray,
    counts: np.ndarray,
    surface: np.ndarray,
    param_table: np.ndarray,
    depth: np.ndarray,
    noise_coarse: np.ndarray,
    noise_fine: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """The RGB photo: colour * light (texture, patterns, shadows), blended with haze and sky."""
    cam = scene.cam
    H, W = ids.shape
    pattern_table = np.asarray(scene.p_pattern, dtype=np.uint8)
    grain = np.frombuffer(rng.bytes(H * W), dtype=np.uint8).reshape(H, W).astype(np.float32)
    grain -= 127.5
    grain *= np.float32(1 / 73.9)  # uniform, unit variance
    light = np.take(np.asarray(scene.p_texture, dtype=np.float32), ids)
    light *= noise_coarse
    light += 1.0
    grain_amp = np.take(np.asarray(scene.p_grain, dtype=np.float32), ids)
    grain_amp *= grain
    light += grain_amp
    present = set(np.unique(pattern_table[counts > 0]).tolist()) - {Pattern.PLAIN, Pattern.SKY}
    flat_light, flat_depth = light.reshape(-1), depth.reshape(-1)
    pattern = np.take(pattern_table, ids).reshape(-1) if present else None
    for kind in sorted(present):
        where = np.flatnonzero(pattern == kind)
        z = flat_depth[where]
        px = cam.fy / np.maximum(z, 0.1)  # pixels per metre, to fade patterns finer than a pixel
        if kind == Pattern.BRICK:
            y = cam.mount - ((where // W) + (0.5 - cam.vh)) * z / cam.fy
            factor = 1 - 0.12 * ((y % 0.32) < 0.05) * np.clip(px * 0.05, 0, 1)
        elif kind == Pattern.BARS:
            x = ((where % W) + (0.5 - cam.uc)) * z / cam.fx
            along = np.where(surface.reshape(-1)[where] == Surface.SIDE, z, x)
            factor = 1 - 0.4 * ((along % 0.22) < 0.09) * np.clip(px * 0.08, 0, 1)
        elif kind == Pattern.PAVERS:
            x = ((where % W) + (0.5 - cam.uc)) * z / cam.fx
            lines = ((x % 0.5) < 0.035) | ((z % 0.5) < 0.035)
            factor = 1 - 0.12 * lines * np.clip(px * 0.03, 0, 1)
        elif kind == Pattern.RAILS:
            x = ((where % W) + (0.5 - cam.uc)) * z / cam.fx
            offset = np.abs(x - param_table[ids.reshape(-1)[where]])
            factor = np.where(np.abs(offset - 0.72) < 0.05, 1.8, np.where((z % 0.6) < 0.22, 0.75, 1.0))
        elif kind == Pattern.LEAVES:
            factor = 1 + 0.3 * noise_fine.reshape(-1)[where] + 0.12 * grain.reshape(-1)[where]
        else:  # GRASS
            factor = 1 + 0.12 * noise_fine.reshape(-1)[where]
        flat_light[where] *= factor.astype(np.float32)
    # cast shadows fall on the ground only
    shadow = np.asarray(scene.shadow, dtype=np.uint8).reshape(-1)
    where = np.flatnonzero(shadow != 255)
    where = where[surface.reshape(-1)[where] == Surface.GROUND]
    flat_light[where] *= 1 - (1 - shadow[where] / np.float32(255)) * np.float32(env.shadow / 0.5)
    # haze grows with depth; the sky is a gradient from its zenith colour to the haze colour
    haze = depth * np.float32(-1 / env.haze_distance)
    np.expm1(haze, out=haze)
    np.negative(haze, out=haze)  # 1 where depth is inf
    flat_haze = haze.reshape(-1)
    flat_ids = ids.reshape(-1)
    where = np.flatnonzero(surface.reshape(-1) == Surface.NONE)
    sky = where[flat_ids[where] == 0]
    flat_haze[where[flat_ids[where] != 0]] = 0  # ego vehicle and borders
    altitude = np.clip((cam.vh - (sky // W + 0.5)) / max(cam.vh, 1.0), 0, 1).astype(np.float32)
    clouds = np.clip(noise_coarse.reshape(-1)[sky] * 0.8 - 1 + env.cloudiness, 0, 1)
    flat_haze[sky] = np.clip(1 - altitude**0.7 + clouds, 0, 1)
    rows = np.arange(H, dtype=np.float32)[:, None] + 0.5
    cols = np.arange(W, dtype=np.float32)[None, :] + 0.5
    # vignetting, darker towards the corners (separable, so one pass over the image)
    vignette = (1 - 0.09 * ((rows - H / 2) / (H / 2)) ** 2) * (1 - 0.09 * ((cols - W / 2) / (W / 2)) ** 2)
    light *= 1 - haze
    light *= vignette
    haze *= vignette
    tint = (env.exposure * env.tint).astype(np.float32)
    color_table = np.asarray(scene.p_color, dtype=np.float32) * tint
    color_table[0] = env.sky_top * tint  # the sky primitive
    haze_color = env.haze_color * tint
    image = np.empty((H, W, 3), dtype=np.uint8)
    scratch = np.empty_like(haze)
    for channel in range(3):
        plane = np.take(np.ascontiguousarray(color_table[:, channel]), ids)
        plane *= light
        np.multiply(haze, haze_color[channel], out=scratch)
        plane += scratch
        np.clip(plane, 0, 255, out=plane)
        image[..., channel] = plane
    return image


# ------------------------------------------------------------------------------------------ files


def frame_paths(root: Path, split: str, frame: FrameId) -> dict[str, Path]:
    city = frame.city
    gt = root / "gtFine" / split / city
    return {
        "image": root / "leftImg8bit" / split / city / f"{frame.stem}{IMAGE_SUFFIX}",
        "label_ids": gt / f"{frame.stem}{GT_LABEL_IDS_SUFFIX}",
        "instance_ids": gt / f"{frame.stem}{GT_INSTANCE_IDS_SUFFIX}",
        "color": gt / f"{frame.stem}{GT_COLOR_SUFFIX}",
        "disparity": root / "disparity" / split / city / f"{frame.stem}{DISPARITY_SUFFIX}",
        "camera": root / "camera" / split / city / f"{frame.stem}{CAMERA_SUFFIX}",
    }


def render_frame(split: str, frame: FrameId, seed: int, size: tuple[int, int] = DEFAULT_SIZE) -> FrameData:
    """The arrays of one frame (no files)."""
    scene_seed, texture_seed = _frame_seed(seed, split, frame).spawn(2)
    scene, env = build_scene(size, np.random.default_rng(scene_seed))
    return render(scene, env, np.random.default_rng(texture_seed))


def generate_frame(root: Path, split: str, frame: FrameId, seed: int, size: tuple[int, int] = DEFAULT_SIZE) -> None:
    """Write the six files of one frame under ``root``."""
    data = render_frame(split, frame, seed, size)
    paths = frame_paths(Path(root), split, frame)
    write_bytes_atomic(paths["image"], encode_png(data.image, _PHOTO_PNG_LEVEL, up_filter=False))
    write_bytes_atomic(paths["label_ids"], encode_png(data.label_ids, _LABEL_PNG_LEVEL))
    write_bytes_atomic(paths["instance_ids"], encode_png(data.instance_ids, _LABEL_PNG_LEVEL))
    write_bytes_atomic(paths["color"], encode_png(np.take(_PALETTE, data.label_ids, axis=0), _LABEL_PNG_LEVEL))
    write_bytes_atomic(paths["disparity"], encode_png(data.disparity, _DISPARITY_PNG_LEVEL))
    write_text_atomic(paths["camera"], json.dumps(camera_parameters(size), indent=4, sort_keys=True) + "\n")


def _generate_one(root: Path, split: str, seed: int, size: tuple[int, int], frame: FrameId) -> FrameId:
    generate_frame(root, split, frame, seed, size)
    return frame


def generate_split(
    root: Path,
    split: str,
    count: int,
    seed: int = 0,
    size: tuple[int, int] = DEFAULT_SIZE,
    workers: int | None = None,
    progress: bool = False,
) -> list[FrameId]:
    """Generate frames 0..count-1 of ``split`` (train, val or test); returns their ids in order.

    ``workers`` processes share the frames (default: one per CPU); each frame is seeded from
    (seed, split, frame name) alone, so the files do not depend on the workers or on ``count``.
    """
    frames = split_spec(split, count).frames
    work = partial(_generate_one, Path(root), split, seed, (int(size[0]), int(size[1])))
    workers = (os.cpu_count() or 1) if workers is None else workers
    with tqdm(total=len(frames), desc=split, unit="frame", disable=not progress) as bar:
        if workers <= 1 or len(frames) <= 1:
            for frame in frames:
                work(frame)
                bar.update(1)
        else:
            with ProcessPoolExecutor(max_workers=min(workers, len(frames))) as pool:
                for _ in pool.map(work, frames, chunksize=1):
                    bar.update(1)
    return frames


def generate_dataset(
    root: Path,
    test_count: int = DEFAULT_TEST_COUNT,
    train_count: int = DEFAULT_TRAIN_COUNT,
    seed: int = 0,
    size: tuple[int, int] = DEFAULT_SIZE,
    workers: int | None = None,
    progress: bool = False,
) -> None:
    """The competition's data: ``val`` (the evaluation set, ``test_count`` frames) and ``train``."""
    generate_split(root, "val", test_count, seed, size, workers, progress)
    generate_split(root, "train", train_count, seed, size, workers, progress)
