"""Small numpy building blocks shared by the decoders."""

from __future__ import annotations

import numpy as np


def concatenated_ranges(starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """``np.concatenate([np.arange(a, b) for a, b in zip(starts, stops)])``, without the Python loop."""
    lengths = stops - starts
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    offsets = np.cumsum(lengths) - lengths  # where each range begins in the output
    return np.arange(total) + np.repeat(starts - offsets, lengths)
