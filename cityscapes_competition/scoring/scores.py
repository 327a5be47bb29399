"""The scores of one evaluation: what the metrics produce and the reports consume."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..core.leaderboard import INSTANCE_KEYS, LEADERBOARD_KEYS, PIXEL_KEYS  # noqa: F401 (the scores' keys)


@dataclass
class PixelScores:
    """Pixel-level semantic labeling, as evalPixelLevelSemanticLabeling.py reports it."""

    iou_class: float
    iiou_class: float
    iou_category: float
    iiou_category: float
    class_iou: dict[str, float]  # the 19 scored classes
    class_iiou: dict[str, float]  # the 8 instance classes
    category_iou: dict[str, float]  # the 7 scored categories
    category_iiou: dict[str, float]  # human, vehicle
    confusion_matrix: np.ndarray  # 34x34, rows ground truth, columns prediction (label ids)

    def leaderboard(self) -> dict[str, float]:
        return {key: getattr(self, key) for key in PIXEL_KEYS}


@dataclass
class InstanceScores:
    """Instance-level semantic labeling, as evalInstanceLevelSemanticLabeling.py reports it."""

    ap: float
    ap50: float
    ap100m: float | None  # None without disparity and camera data
    ap50m: float | None
    class_scores: dict[str, dict[str, float]]  # class name -> {"ap", "ap50", ["ap100m", "ap50m"]}
    ap_matrix: np.ndarray  # (distance settings, classes, overlaps), the official resultApMatrix
    distance_note: str | None = None  # why ap100m/ap50m are absent, if they are

    def leaderboard(self) -> dict[str, float]:
        values = {"ap": self.ap, "ap50": self.ap50}
        if self.ap100m is not None and self.ap50m is not None:
            values |= {"ap100m": self.ap100m, "ap50m": self.ap50m}
        return values


@dataclass
class Scores:
    """Both tasks; a task the participant did not enter is None and scores 0 on the leaderboard."""

    pixel: PixelScores | None
    instance: InstanceScores | None
    warnings: list[str] = field(default_factory=list)
    image_count: int = 0
    distances_available: bool = True

    def leaderboard(self) -> dict[str, float]:
        """The scores.txt columns. An absent task scores 0; distance metrics without distance data are left out."""
        values: dict[str, float] = dict.fromkeys(PIXEL_KEYS, 0.0)
        if self.pixel is not None:
            values |= self.pixel.leaderboard()
        if self.instance is not None:
            values |= self.instance.leaderboard()
        else:
            absent = INSTANCE_KEYS if self.distances_available else INSTANCE_KEYS[:2]
            values |= dict.fromkeys(absent, 0.0)
        return values

    def undefined_leaderboard_keys(self) -> list[str]:
        """Leaderboard columns whose score is undefined (no ground truth of any scored class): written as 0."""
        return [key for key, value in self.leaderboard().items() if math.isnan(value)]

    def reported_warnings(self) -> list[str]:
        """The warnings, and a note for each undefined leaderboard score: what the score files and the log show."""
        notes = [
            f"{key} is undefined (the test images hold no ground truth it could be computed on): written as 0 for "
            "the leaderboard"
            for key in self.undefined_leaderboard_keys()
        ]
        return [*self.warnings, *notes]

    def leaderboard_numbers(self) -> dict[str, float]:
        """The leaderboard with an undefined score as 0: Codabench cannot store null (SubmissionScore.score),
        and 'nan' would be a string in YAML."""
        return {key: 0.0 if math.isnan(value) else float(value) for key, value in self.leaderboard().items()}


def finite_or_none(value: float | None) -> float | None:
    """JSON has no NaN: undefined scores are null."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)
