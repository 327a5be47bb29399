"""Street furniture (trees, poles, lights, signs, objects, bridges) and the placing of every actor and
object along the street."""

from __future__ import annotations

import math
from functools import partial

import numpy as np

from .actors import _front, _person, _rider_parts, bicycle_parts, crossing_vehicle, cyclist, vehicle, vehicle_dims
from .dataset import (
    BICYCLE,
    BRIDGE,
    BUILDING,
    CAR,
    DYNAMIC,
    PERSON,
    POLE,
    POLEGROUP,
    RIDER,
    STATIC,
    TRAFFIC_LIGHT,
    TRAFFIC_SIGN,
    TUNNEL,
    UNLABELED,
    VEGETATION,
)
from .palettes import BUILDING_COLORS, CLOTHES, GLASS, SIGN_COLORS, TYRE, pick, shade, vary
from .primitives import Part, Pattern, Plane, Scene, Surface, disc, poly, rect
from .sides import jagged
from .street import Side, Street


def _tree(scene: Scene, x: float, z: float) -> None:
    rng = scene.rng
    height = float(rng.uniform(5, 12))
    crown = float(rng.uniform(1.2, min(2.8, height / 3.5)))
    green = vary(rng, (62, 100, 40), 0.15)
    parts = [Part(rect(-0.15, 0.0, 0.15, height - crown), vary(rng, (80, 65, 50)), texture=0.1)]
    for _ in range(int(rng.integers(3, 6))):
        cs, cy = rng.normal(0, crown * 0.4), height - crown + rng.normal(0, crown * 0.3)
        parts.append(
            Part(
                disc(cs, cy, crown * rng.uniform(0.6, 1.0), n=14),
                shade(green, rng.uniform(0.85, 1.15)),
                Pattern.LEAVES,
            )
        )
    scene.ground_shadow(disc(x, z, crown, crown * 0.7, 10), 0.35)
    scene.schedule(z, lambda: scene.parts(_front(z, x), parts, VEGETATION))


def _pole(scene: Scene, x: float, z: float, sign_side: int, with_sign: float, with_light: float, lamp: bool) -> None:
    """A pole, maybe a street lamp (arm over the road), with traffic signs and lights on it."""
    rng = scene.rng
    height = float(rng.uniform(3, 4.5) if not lamp else rng.uniform(6, 9))
    color = vary(rng, (78, 80, 86), 0.2)
    pole_parts = [Part(rect(-0.07, 0.0, 0.07, height), color)]
    if lamp:
        reach = float(rng.uniform(1.0, 2.5)) * -sign_side
        pole_parts.append(
            Part(poly((0, height - 0.1), (reach, height + 0.2), (reach, height + 0.3), (0, height)), color)
        )
        pole_parts.append(Part(rect(reach - 0.3, height - 0.05, reach + 0.3, height + 0.25), shade(color, 1.3)))
    sign_parts: list[Part] = []
    if rng.random() < with_sign:
        y = float(rng.uniform(2.0, 2.8))
        sc = pick(rng, SIGN_COLORS)
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
                Part(disc(0.0, y + 0.15 + 0.3 * i, 0.1, n=10), lamp_color if on else shade(lamp_color, 0.25))
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
    color = vary(rng, (78, 80, 86), 0.2)
    pole_parts = [Part(rect(-0.1, 0.0, 0.1, 6.0), color), Part(rect(min(0, reach), 5.6, max(0, reach), 5.75), color)]
    state = int(rng.integers(3))
    lights = []
    for end in (reach * 0.55, reach * 0.95):
        lights.append(Part(rect(end - 0.17, 4.5, end + 0.17, 5.6), (32, 34, 32)))
        for i, lamp_color in enumerate(((40, 200, 90), (240, 180, 30), (230, 40, 30))):
            on = 2 - i == state
            lights.append(Part(disc(end, 4.7 + 0.33 * i, 0.11, n=10), lamp_color if on else shade(lamp_color, 0.25)))
    scene.schedule(
        z, lambda: (scene.parts(_front(z, x), pole_parts, POLE), scene.parts(_front(z - 0.1, x), lights, TRAFFIC_LIGHT))
    )


def _polegroup(scene: Scene, x: float, z: float) -> None:
    rng = scene.rng
    parts = []
    for _ in range(int(rng.integers(3, 7))):
        s = float(rng.uniform(-1.0, 1.0))
        parts.append(Part(rect(s - 0.06, 0.0, s + 0.06, rng.uniform(2.5, 5.0)), vary(rng, (80, 82, 88), 0.2)))
        if rng.random() < 0.5:
            y = float(rng.uniform(2.0, 3.0))
            parts.append(Part(rect(s - 0.3, y, s + 0.3, y + 0.5), pick(rng, SIGN_COLORS)))
    scene.schedule(z, lambda: scene.parts(_front(z, x), parts, POLEGROUP))


def _static_object(scene: Scene, x: float, z: float) -> None:
    """Bins, benches, bollards, planters, boxes: void class "static"."""
    rng = scene.rng
    kind = int(rng.integers(4))
    color = vary(rng, [(70, 95, 70), (100, 100, 105), (140, 100, 60), (60, 60, 70)][kind], 0.2)
    if kind == 0:  # bin
        parts = [Part(rect(-0.3, 0.0, 0.3, 1.0), color), Part(rect(-0.33, 0.95, 0.33, 1.1), shade(color, 0.8))]
    elif kind == 1:  # bench
        parts = [
            Part(rect(-0.9, 0.4, 0.9, 0.5), color),
            Part(rect(-0.9, 0.55, 0.9, 0.9), color),
            Part(rect(-0.8, 0.0, -0.7, 0.4), TYRE),
            Part(rect(0.7, 0.0, 0.8, 0.4), TYRE),
        ]
    elif kind == 2:  # planter / box
        parts = [Part(rect(-0.6, 0.0, 0.6, 0.7), color)]
    else:  # bollards
        parts = [Part(rect(s - 0.08, 0.0, s + 0.08, 0.9), color) for s in np.arange(-1.5, 1.6, 1.0)]
    scene.schedule(z, lambda: scene.parts(_front(z, x), parts, STATIC))


def _dynamic_object(scene: Scene, x: float, z: float) -> None:
    """Strollers, carts, a wheelie bin being moved: void class "dynamic"."""
    rng = scene.rng
    color = vary(rng, pick(rng, CLOTHES), 0.2)
    parts = [
        Part(rect(-0.35, 0.3, 0.35, 0.95), color),
        Part(disc(-0.25, 0.12, 0.12, n=8), TYRE),
        Part(disc(0.25, 0.12, 0.12, n=8), TYRE),
    ]
    scene.schedule(z, lambda: scene.parts(_front(z, x), parts, DYNAMIC))


def _unlabeled_object(scene: Scene, x: float, z: float) -> None:
    rng = scene.rng
    pts = disc(0.0, 0.5, rng.uniform(0.3, 1.0), rng.uniform(0.3, 0.6), n=7)
    pts[:, 1] = np.maximum(pts[:, 1], 0.0)
    color = vary(rng, (120, 110, 100), 0.3)
    scene.schedule(z, lambda: scene.parts(_front(z, x), [Part(pts, color)], UNLABELED))


def _bridge(scene: Scene, street: Street, z: float) -> None:
    rng = scene.rng
    bottom = float(rng.uniform(4.5, 6.5))
    thickness = float(rng.uniform(1.0, 2.5))
    color = vary(rng, (140, 136, 130), 0.15)
    span = street.left.facade + street.right.facade + 60
    parts = [
        Part(rect(-span, bottom, span, bottom + thickness), color),
        Part(rect(-span, bottom + thickness, span, bottom + thickness + 1.0), shade(color, 0.8), Pattern.BARS),
        Part(rect(-street.left.road_edge - 1.5, 0.0, -street.left.road_edge - 0.5, bottom), shade(color, 0.9)),
        Part(rect(street.right.road_edge + 0.5, 0.0, street.right.road_edge + 1.5, bottom), shade(color, 0.9)),
    ]
    scene.schedule(z, lambda: scene.parts(_front(z), parts, BRIDGE))


def _street_end(scene: Scene, street: Street) -> None:
    rng = scene.rng
    z = street.end
    span = 600.0
    if street.end_style == "block":
        height = float(rng.uniform(10, 30))
        color = shade(vary(rng, pick(rng, BUILDING_COLORS)), 0.9)
        parts = [Part(rect(-span, 0, span, height), color)]
        for s in np.arange(-40, 40, rng.uniform(2.5, 3.5)):
            for y in np.arange(3.6, height - 2, 3.3):
                parts.append(Part(rect(s, y, s + 1.2, y + 1.5), GLASS))
        scene.schedule(z, lambda: scene.parts(_front(z), parts, BUILDING))
    elif street.end_style == "trees":
        parts = [Part(jagged(rng, -span, span, rng.uniform(8, 20), 4.0), vary(rng, (60, 95, 40)), Pattern.LEAVES)]
        scene.schedule(z, lambda: scene.parts(_front(z), parts, VEGETATION))
    elif street.end_style == "tunnel":
        height = float(rng.uniform(6, 9))
        color = vary(rng, (120, 115, 110))
        hw = (street.left.road_edge + street.right.road_edge) / 2 + 1
        mid = (street.right.road_edge - street.left.road_edge) / 2
        parts = [
            Part(rect(-span, 0, span, height + 6), vary(rng, (80, 110, 50)), Pattern.LEAVES),
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
            skyline.append((BUILDING, Part(rect(s, 0, s + width, rng.uniform(10, 60)), vary(rng, (150, 150, 160)))))
        else:
            skyline.append(
                (VEGETATION, Part(jagged(rng, s, s + width, rng.uniform(10, 30), 10.0), vary(rng, (80, 100, 70))))
            )
        s += width
    scene.schedule(far, lambda: [scene.parts(_front(far), [part], label) for label, part in skyline])


def populate(scene: Scene, street: Street) -> None:
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
        cyclist(
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
            bike, _ = bicycle_parts(rng, "side", motor=False)
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
            dims = vehicle_dims(rng, kind)
            inst = group if z >= cluster_from and kind in ("car", "van") else None
            vehicle(
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
                    cyclist(scene, x + rng.normal(0, 0.3), z, "back", motor=True)
                    z += 4
                    continue
                dims = vehicle_dims(rng, kind)
                jitter = float(rng.normal(0, 0.2))
                if kind != "car" and abs(x) < street.lane_width / 2:
                    z = max(z, 15.0)  # a bus right in front would hide the whole scene
                if kind == "trailer":  # a car towing a trailer: car farther, trailer in front of us
                    car_dims = vehicle_dims(rng, "car")
                    near = oncoming
                    tz = z if not near else z + car_dims[2] + 0.6
                    cz = z + dims[2] + 0.6 if not near else z
                    vehicle(scene, "car", x + jitter, cz, oncoming, dims=car_dims)
                    vehicle(scene, "trailer", x + jitter, tz, oncoming, dims=dims)
                    z += dims[2] + car_dims[2] + 0.6
                else:
                    vehicle(scene, kind, x + jitter, z, oncoming, dims=dims)
                    z += dims[2]
            z += float(rng.exponential(15 + 30 * (1 - density))) + 3
    if street.rail is not None and rng.random() < 0.6:
        x = (street.rail[0] + street.rail[1]) / 2
        vehicle(scene, "train", x, float(rng.uniform(8, 80)), oncoming=rng.random() < 0.5)
    if street.cross is not None:
        a, b = street.cross
        for lane_z, direction in ((a + (b - a) * 0.3, 1.0), (a + (b - a) * 0.7, -1.0)):
            for _ in range(int(rng.poisson(1.2))):
                kind = str(rng.choice(["car", "van", "truck", "bus"], p=[0.8, 0.1, 0.05, 0.05]))
                crossing_vehicle(scene, kind, float(rng.uniform(-40, 40)), lane_z, direction)
            if rng.random() < 0.15:
                cyclist(scene, float(rng.uniform(-20, 20)), lane_z - 1, "side", motor=rng.random() < 0.4)


def _cyclists(scene: Scene, street: Street) -> None:
    rng = scene.rng
    for _ in range(int(rng.poisson(1.0))):
        x = street.right.road_edge - rng.uniform(0.6, 1.2)
        cyclist(scene, x, float(rng.uniform(5, 80)), "back", motor=False)
    if rng.random() < 0.15:
        cyclist(
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
            bike, _ = bicycle_parts(rng, "back", motor=False)
            bike_inst = scene.instance(BICYCLE)
            x = street.right.road_edge - 1.0 - 0.5 * k
            zk = z + 0.8 * k
            scene.schedule(zk, partial(_draw_pair, scene, _front(zk, x), bike, bike_inst, rider, group))


def _draw_pair(
    scene: Scene, plane: Plane, bike: list[Part], bike_inst: int, rider: list[Part], rider_inst: int
) -> None:
    scene.parts(plane, bike, BICYCLE, bike_inst)
    scene.parts(plane, rider, RIDER, rider_inst)
