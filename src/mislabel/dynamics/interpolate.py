"""Filling epochs in which a sample was not recorded (NaN), per sample along the epoch axis."""
from __future__ import annotations

import numpy as np
import torch


def interpolate_missing(values: np.ndarray, method: str = "linear") -> np.ndarray:
    """Fill NaNs in each row by interpolation along the epoch axis.

    Each sample (row) is filled from its own observed epochs only; leading and
    trailing gaps take the nearest observed value. Trailing axes (e.g. classes)
    are interpolated independently and never mixed.

    Parameters
    ----------
    values : ndarray of shape (N, T) or (N, T, C), float
        NaN marks a missing observation.
    method : {"linear", "previous"}
        "linear" blends the observations on either side of a gap; "previous"
        repeats the last observation before it (for values that must stay one of
        the observed ones, such as class indices).

    Returns
    -------
    ndarray, same shape and dtype
        Rows with no observation at all stay NaN.

    Raises
    ------
    ValueError
        If ``method`` is unknown or ``values`` has fewer than 2 dimensions.
    """
    if method not in ("linear", "previous"):
        raise ValueError(f"method must be 'linear' or 'previous', got {method!r}")
    v = np.asarray(values)
    if v.ndim < 2:
        raise ValueError(f"expected (N, T[, C]) values, got shape {v.shape}")
    missing = np.isnan(v)
    if not missing.any():
        return v.copy()
    N, T = v.shape[:2]
    t = np.arange(T).reshape((1, T) + (1,) * (v.ndim - 2))
    t = np.broadcast_to(t, v.shape)
    obs = ~missing
    # index of the previous / next observed epoch for every cell
    prev_idx = np.where(obs, t, -1)
    prev_idx = np.maximum.accumulate(prev_idx, axis=1)
    next_idx = np.where(obs, t, T)
    next_idx = np.flip(np.minimum.accumulate(np.flip(next_idx, axis=1), axis=1), axis=1)
    has_prev, has_next = prev_idx >= 0, next_idx < T
    p = np.clip(prev_idx, 0, T - 1)
    n = np.clip(next_idx, 0, T - 1)
    vp = np.take_along_axis(v, p, axis=1)
    vn = np.take_along_axis(v, n, axis=1)
    if method == "previous":
        return np.where(missing, np.where(has_prev, vp, vn), v).astype(v.dtype, copy=False)
    span = np.where(has_prev & has_next, n - p, 1)
    w = np.where(has_prev & has_next, (t - p) / np.maximum(span, 1), 0.0)
    filled = np.where(has_prev & has_next, vp + w * (vn - vp), np.where(has_prev, vp, vn))
    out = np.where(missing, filled, v).astype(v.dtype, copy=False)
    return out


def interpolated_full(epochs: list, block_elements: int = 1 << 24) -> np.ndarray:
    """Full class probabilities kept per epoch, as one (N, T, C) float16 array with gaps interpolated.

    Built a block of samples at a time (interpolation is per sample), so the only large allocation
    besides the epochs themselves is the result.

    Parameters
    ----------
    epochs : list of T Tensors of shape (N, C), float16
        One per epoch, on any device; NaN where a sample was not recorded.

    Returns
    -------
    ndarray of shape (N, T, C), float16
    """
    T = len(epochs)
    N, C = epochs[0].shape
    out = np.empty((N, T, C), dtype=np.float16)
    step = max(1, block_elements // max(1, T * C))
    for s in range(0, N, step):
        block = torch.stack([e[s:s + step] for e in epochs], 1).cpu().numpy()    # (b, T, C) float16
        if np.isnan(block).any():
            block = interpolate_missing(block.astype(np.float32)).astype(np.float16)
        out[s:s + step] = block
    return out
