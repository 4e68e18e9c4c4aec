"""Smoothing for per-position curves (loss, key precision), as plotted in the paper."""
from __future__ import annotations

import numpy as np


def moving_average(x: np.ndarray, window: int = 100, axis: int = -1) -> np.ndarray:
    """Trailing (causal) moving average with the same length as `x`.

    out[i] = mean(x[max(0, i - window + 1) : i + 1]): near the start the available prefix
    is averaged, so early positions are never mixed with later context, which matters
    for curves over position in the sequence. Works along `axis` of any float array.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    x = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    n = x.shape[-1]
    csum = np.concatenate([np.zeros(x.shape[:-1] + (1,)), np.cumsum(x, axis=-1)], axis=-1)
    hi = np.arange(1, n + 1)
    lo = np.maximum(hi - window, 0)
    out = (csum[..., hi] - csum[..., lo]) / (hi - lo)
    return np.moveaxis(out, -1, axis)
