"""Baselines computed from the same training run: AUM and simple hand-crafted statistics."""
from __future__ import annotations

import numpy as np

from .dynamics import Dynamics


def aum(dynamics: Dynamics) -> np.ndarray:
    """Area Under the Margin (Pleiss et al. 2020) turned into a mislabel score.

    AUM averages over epochs the margin between the given label's logit and
    the largest other logit; mislabeled samples have low (negative) AUM. We
    return ``-AUM`` so that, like every score in this library, higher means
    more likely mislabeled.

    Parameters
    ----------
    dynamics : Dynamics
        Must carry ``margins`` (N, T), recorded by default.

    Returns
    -------
    ndarray of shape (N,), float32
    """
    if dynamics.margins is None:
        raise ValueError("these dynamics carry no margins; record with DynamicsRecorder(..., margins=True)")
    return (-dynamics.margins.mean(axis=1)).astype(np.float32)


def mean_probability(dynamics: Dynamics) -> np.ndarray:
    """``1 - mean_t probs`` (N,): a one-number hand-crafted feature (low confidence = suspicious)."""
    return (1.0 - dynamics.probs.mean(axis=1)).astype(np.float32)
