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
    region's valid pixels: one grouping sort of small integers and one partition per region.
    """
    region_index = np.full(len(pixels.counts), -1, np.int16 if len(region_ids) < 2**15 else np.int64)
    region_index[region_ids] = np.arange(len(region_ids))
    pixel_region = region_index[pixels.value]
    in_region = pixel_region >= 0
    disparity = raw_disparity.ravel()[pixels.index[in_region]]
    valid = disparity > 0
    valid_region, valid_disparity = pixel_region[in_region][valid], disparity[valid]
    valid_counts = np.bincount(valid_region, minlength=len(region_ids))
    grouped = valid_disparity[np.argsort(valid_region, kind="stable")]
    starts = np.concatenate([[0], np.cumsum(valid_counts)])
    median = np.full(len(region_ids), np.inf)
    for region in np.flatnonzero(valid_counts):
        median[region] = _median_depth(grouped[starts[region] : starts[region + 1]], camera)
    sizes = pixels.counts[region_ids]
    density = np.divide(valid_counts, sizes, out=np.zeros(len(region_ids)), where=sizes > 0)
    return RegionDistances(median_depth=median, density=density)


def _median_depth(raw_disparity: np.ndarray, camera: Camera) -> float:
    """np.median of the depths, computed on the disparities (the k-th nearest is the k-th largest p)."""
    n = len(raw_disparity)
    # Ascending depth rank k is ascending disparity rank n - 1 - k.
    if n % 2:
        middle = np.partition(raw_disparity, n // 2)[n // 2]
        return float(depth_of(np.array([middle]), camera)[0])
    low_rank, high_rank = n - 1 - n // 2, n - n // 2  # disparity ranks of the two middle depths
    parted = np.partition(raw_disparity, (low_rank, high_rank))
    nearer, farther = depth_of(np.array([parted[high_rank], parted[low_rank]]), camera)
    return float((nearer + farther) / 2.0)
