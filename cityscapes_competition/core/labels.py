"""The Cityscapes label table, as the official evaluation reads it.

Everything here derives from ``cityscapesscripts.helpers.labels``; only the average instance
sizes of the pixel-level iIoU live in the official evaluation script rather than the table,
so they are restated here (a test checks them against that script).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from cityscapesscripts.helpers.labels import Label, category2labels, id2label, labels

# Label ids present in images: 0..33 (license plate, id -1, never appears in a labelIds image).
LABEL_IDS: tuple[int, ...] = tuple(label.id for label in labels if label.id >= 0)
NUM_LABEL_IDS = max(LABEL_IDS) + 1
assert tuple(range(NUM_LABEL_IDS)) == LABEL_IDS

LABEL_NAMES: tuple[str, ...] = tuple(id2label[i].name for i in LABEL_IDS)

# The 19 classes scored by the pixel-level task.
EVAL_CLASS_IDS: tuple[int, ...] = tuple(i for i in LABEL_IDS if not id2label[i].ignoreInEval)

# The 8 classes of the instance-level task, in the official order.
INSTANCE_CLASS_IDS: tuple[int, ...] = tuple(
    label.id for label in labels if label.hasInstances and not label.ignoreInEval
)
INSTANCE_CLASS_NAMES: tuple[str, ...] = tuple(id2label[i].name for i in INSTANCE_CLASS_IDS)

# Categories in the official order.
CATEGORY_NAMES: tuple[str, ...] = tuple(category2labels)

# Instance-level void for AP: raw instanceIds values of ignored labels (ids >= 1000 never are).
VOID_LABEL_IDS: tuple[int, ...] = tuple(label.id for label in labels if label.ignoreInEval)

# Pixel-level iIoU weights: the class's average instance size, from evalPixelLevelSemanticLabeling.py.
AVERAGE_INSTANCE_SIZE: dict[str, float] = {
    "bicycle": 4672.3249222261,
    "caravan": 36771.8241758242,
    "motorcycle": 6298.7200839748,
    "rider": 3930.4788056518,
    "bus": 35732.1511111111,
    "train": 67583.7075812274,
    "car": 12794.0202738185,
    "person": 3462.4756337644,
    "truck": 27855.1264367816,
    "trailer": 16926.9763313609,
}


@dataclass(frozen=True)
class Category:
    """One category and the label ids each of its scores counts."""

    name: str
    iou_label_ids: tuple[int, ...]  # scored labels of the category (for IoU)
    iiou_label_ids: tuple[int, ...] | None  # all its labels if every one has instances, else None

    @property
    def has_iiou(self) -> bool:
        return self.iiou_label_ids is not None


def _category(name: str) -> Category:
    members: list[Label] = [label for label in category2labels[name] if label.id >= 0]
    iou_ids = tuple(label.id for label in members if not label.ignoreInEval)
    all_instances = all(label.hasInstances for label in members)
    return Category(name, iou_ids, tuple(label.id for label in members) if all_instances else None)


CATEGORIES: tuple[Category, ...] = tuple(_category(name) for name in CATEGORY_NAMES)


def label_lookup(values: dict[int, float | int], default: float | int, dtype: type) -> np.ndarray:
    """A table indexed by label id (0..33), for vectorized per-pixel lookups."""
    table = np.full(NUM_LABEL_IDS, default, dtype=dtype)
    for label_id, value in values.items():
        table[label_id] = value
    return table


def name_of(label_id: int) -> str:
    return id2label[label_id].name


def color_of(label_id: int) -> tuple[int, int, int]:
    return id2label[label_id].color
