"""Distance of ground-truth regions from the camera, for AP100m and AP50m.

For each region: a pixel has a valid disparity when its raw value p > 0; its depth is
baseline * fx / ((p - 1) / 256) metres (p == 1 is disparity 0, infinitely far). The region's
distance is the median depth of its valid pixels (+inf if none); its stereo density is the share
of its pixels that are valid.
"""

from __future__ import annotations

import numpy as np

from .groundtruth import Camera, InstanceClassPixels
from .metrics.instance import RegionDistances


def depth_of(raw_disparity: np.ndarray, camera: Camera) -> np.ndarray:
    """Depth in metres of raw disparity values (all > 0)."""
    with np.errstate(divide="ignore"):
        return camera.baseline * camera.fx / ((raw_disparity - 1.0) / 256.0)


def region_distances(
    pixels: InstanceClassPixels, region_ids: np.ndarray, raw_disparity: np.ndarray, camera: Camera
) -> RegionDistances:
    """Median depth and stereo density of each region in ``region_ids`` (sorted instanceIds values).

    Depth falls as disparity rises, so the median depth is read off the raw disparities of the
    region's valid pixels: one grouping sort of small integers, then one radix sort of each region's
    uint16 disparities (cheaper than partitioning them around the two middle ranks).
    """
    # Region numbers as small unsigned integers, which numpy's stable sort sorts by radix.
    number_type = np.uint8 if len(region_ids) < np.iinfo(np.uint8).max else np.uint16
    no_region = np.iinfo(number_type).max
    region_number = np.full(len(pixels.counts), no_region, number_type)
    region_number[region_ids] = np.arange(len(region_ids))
    pixel_region = np.take(region_number, pixels.value)
    disparity = np.take(raw_disparity.ravel(), pixels.index)
    valid = disparity > 0
    valid &= pixel_region != no_region
    valid_region, valid_disparity = pixel_region[valid], disparity[valid]
    valid_counts = np.bincount(valid_region, minlength=len(region_ids))
    grouped = valid_disparity[np.argsort(valid_region, kind="stable")]
    sizes = pixels.counts[region_ids]
    density = np.divide(valid_counts, sizes, out=np.zeros(len(region_ids)), where=sizes > 0)
    return RegionDistances(median_depth=_median_depths(grouped, valid_counts, camera), density=density)


def _median_depths(grouped: np.ndarray, counts: np.ndarray, camera: Camera) -> np.ndarray:
    """np.median of each region's depths (+inf for a region without valid pixels), from its raw
    disparities: ``grouped`` holds them region after region, ``counts`` of each."""
    starts = np.concatenate([[0], np.cumsum(counts)])
    measured = np.flatnonzero(counts)
    # Ascending depth rank k is ascending disparity rank n - 1 - k: the middle two depths (the same
    # one for odd n) are the disparities of ranks n // 2 and (n - 1) // 2, the nearer one first.
    middle = np.zeros((len(measured), 2))
    for row, region in enumerate(measured):
        ascending = np.sort(grouped[starts[region] : starts[region + 1]], kind="stable")
        n = len(ascending)
        middle[row] = ascending[n // 2], ascending[(n - 1) // 2]
    nearer, farther = depth_of(middle[:, 0], camera), depth_of(middle[:, 1], camera)
    median = np.full(len(counts), np.inf)
    median[measured] = np.where(counts[measured] % 2 == 1, nearer, (nearer + farther) / 2.0)
    return median
