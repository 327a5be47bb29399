"""The synthetic dataset's fixed facts: image sizes, the cities of each split, the real camera file,
label ids by name, and each split's frame names and seeds."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from ..core.labels import LABEL_IDS, LABEL_NAMES, NUM_LABEL_IDS, color_of, id2label
from ..core.naming import (
    FrameId,
)

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

FAR = 5000.0  # metres: the depth of anything farther (and of the horizon)

HAS_INSTANCES: frozenset[int] = frozenset(i for i in LABEL_IDS if id2label[i].hasInstances)

# gtFine_color: the label table's colours, alpha 255.
PALETTE = np.array([(*color_of(i), 255) for i in range(NUM_LABEL_IDS)], dtype=np.uint8)

RGB = tuple[float, float, float]

# zlib levels: the noisy photo and the disparity barely compress, so little time goes to them.
PHOTO_PNG_LEVEL = 1
DISPARITY_PNG_LEVEL = 2
LABEL_PNG_LEVEL = 6

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


def frame_seed(seed: int, split: str, frame: FrameId) -> np.random.SeedSequence:
    digest = hashlib.sha256(f"{split}/{frame.stem}".encode()).digest()
    words = np.frombuffer(digest[:16], dtype="<u4").tolist()
    return np.random.SeedSequence([int(seed), *words])
