"""A scene drawn into a frame: the canvas of primitive ids painted far to near, then looked up into
labels, instances, depth, disparity, colours and the photo."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from .borders import ego_and_borders
from .camera import Camera
from .dataset import FAR, REFERENCE_WIDTH, SKY
from .furniture import populate
from .ground import ground_layers
from .primitives import Pattern, Scene, Surface
from .sides import side_planes
from .street import Environment, _street, environment


@dataclass
class FrameData:
    image: np.ndarray  # (H, W, 3) uint8
    label_ids: np.ndarray  # (H, W) uint8
    instance_ids: np.ndarray  # (H, W) uint16
    disparity: np.ndarray  # (H, W) uint16
    depth: np.ndarray  # (H, W) float32, inf where unknown


def build_scene(size: tuple[int, int], rng: np.random.Generator) -> tuple[Scene, Environment]:
    """Draw the whole scene (labels only) for one frame."""
    env = environment(rng)
    heading = float(rng.normal(0.0, 0.02))
    cam = Camera.for_size(size, heading)
    scene = Scene(cam, rng)
    street = _street(rng)
    scene.add_prim(SKY, tuple(env.sky_horizon.tolist()), Surface.NONE)  # id 0: the sky under everything
    ground_layers(scene, street)
    side_planes(scene, street, env)
    populate(scene, street)
    scene.paint_objects()
    ego_and_borders(scene)
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
    ground = np.where(ground_rows > 0.25, ground, np.float32(FAR))
    offset = (cols + (0.5 - cam.uc)).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        side = np.float32(cam.fx) * param / offset
    side = np.where((side > 0) & (side < FAR), side, np.float32(FAR))
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
