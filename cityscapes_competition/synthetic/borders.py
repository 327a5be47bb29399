"""The ego vehicle's bonnet and the rectification border, at the image's edges as in the real dataset."""

from __future__ import annotations

import numpy as np

from .dataset import EGO_VEHICLE, OUT_OF_ROI, RECTIFICATION_BORDER
from .primitives import Scene


def ego_and_borders(scene: Scene) -> None:
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
