"""The dataset's camera: projecting world points (metres; x right, y up, z forward) into the image."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .dataset import CAMERA_EXTRINSIC, camera_parameters


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
