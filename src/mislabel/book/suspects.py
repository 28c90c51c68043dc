"""The top-ranked suspects of an audit, for a grid of images with their given and predicted labels."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..dynamics import Dynamics

__all__ = ["Suspects", "predicted_labels"]


@dataclass
class Suspects:
    """The top-ranked samples of one data set under one method (for a grid of images).

    Attributes
    ----------
    images : Tensor of shape (K, C, H, W), uint8
    index : ndarray of shape (K,), int64
        Positions in the audited training subset, highest score first.
    given, predicted : ndarray of shape (K,), int64
        Given label, and the class the recorded run predicted at its last epoch (-1 where unknown).
    scores : ndarray of shape (K,), float64
    classes : list of str
    """

    images: object
    index: np.ndarray
    given: np.ndarray
    predicted: np.ndarray
    scores: np.ndarray
    classes: list = field(default_factory=list)


def predicted_labels(dynamics: Dynamics) -> np.ndarray:
    """The class a recorded run predicted for each sample at its last epoch.

    From ``full`` (argmax) when stored, else from the margin: the given label where the last margin is
    positive, the runner-up class otherwise.

    Returns
    -------
    ndarray of shape (N,), int64
        -1 for every sample when the run holds neither ``full`` nor ``margins`` with ``runner_up``.

    Examples
    --------
    >>> d = Dynamics(np.full((2, 1), 0.5, np.float32), [0, 1], margins=np.array([[1.0], [-2.0]], np.float32),
    ...              runner_up=np.array([[2], [0]], np.int32))
    >>> predicted_labels(d).tolist()
    [0, 0]
    """
    if dynamics.full is not None:
        return np.asarray(dynamics.full[:, -1, :], dtype=np.float32).argmax(axis=1).astype(np.int64)
    if dynamics.margins is None or dynamics.runner_up is None:
        return np.full(dynamics.num_samples, -1, dtype=np.int64)
    last = dynamics.margins[:, -1]
    return np.where(last > 0, dynamics.labels, dynamics.runner_up[:, -1]).astype(np.int64)
