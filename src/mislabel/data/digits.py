"""scikit-learn's bundled 8x8 handwritten digits (nothing to download)."""
from __future__ import annotations

import numpy as np

from .core import _CACHE, _stratified_test_mask


def _load_digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, 1, 8, 8) uint8 images (pixels 0-16 scaled by 255/16 and rounded) and (N,) int64 labels of one split of
    a fixed stratified 80/20 split of the 1,797 digits (cached: callers hand out indexed copies)."""
    key = ("digits", split)
    if key in _CACHE:
        return _CACHE[key]
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8).reshape(-1, 1, 8, 8)
    labels = bunch.target.astype(np.int64)
    is_test = _stratified_test_mask(labels)
    for s, mask in (("train", ~is_test), ("test", is_test)):
        _CACHE[("digits", s)] = (images[mask].copy(), labels[mask].copy())
    return _CACHE[key]
