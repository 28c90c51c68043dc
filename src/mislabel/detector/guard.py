"""The memorisation guard: find the epoch where a classifier starts to fit wrong labels.

A classifier that can memorise its training labels learns the clean samples first and then fits the
wrong labels too; from then on the flipped samples' dynamics look like those of hard clean samples.
The number of samples whose predicted class changes from one epoch to the next
(:func:`prediction_changes`) falls while the model learns the clean samples, reaches a minimum, and
rises again while it fits the wrong labels (the signal of the early-stopping method *Label Wave*, Yuan,
Feng and Liu, ICLR 2025). :func:`memorisation_onset` finds that minimum in recorded dynamics. Only a
minimum reached once the model predicts the given label of at least ``GUARD_MIN_FIT`` of the samples
counts, so where half or more of the labels are wrong the guard does not fire and the whole run is
scored.

With ``NoiseDetector(memorisation_guard=True)``, ``score`` scores both the whole run and the epochs up
to the onset, and keeps the early view only where it flags (score >= 0.5) at least ``GUARD_RATIO``
times as many samples as the whole run (:func:`prefer_early`). ``fine_tune`` and ``adapt`` switch the
guard off; ``NoiseDetector.scored_epochs`` tells which view was used.
"""
from __future__ import annotations

import numpy as np

from .._validation import check_positive_int
from ..dynamics import Dynamics

#: moving-average window (epochs) over the prediction-change counts in :func:`memorisation_onset`
GUARD_WINDOW = 2
#: least rise after the minimum, as a share of the samples, that counts as memorisation
GUARD_MIN_RISE = 0.02
#: least share of the samples predicted as their given label at the minimum for it to count as the onset
#: (an absolute share: with half or more of the labels wrong the guard does not fire)
GUARD_MIN_FIT = 0.5
#: the early view is kept when it flags at least this many times as many samples as the whole run
GUARD_RATIO = 1.25


def prediction_changes(dynamics: Dynamics) -> np.ndarray:
    """How many samples change their predicted class from one epoch to the next.

    The predicted class is the given label where the margin is at least 0 (ties
    count as given) and the runner-up class elsewhere, as in
    :func:`~mislabel.detector.features.pair_confusion`.

    Parameters
    ----------
    dynamics : Dynamics
        With ``margins`` and ``runner_up`` of shape (N, T) (recorded by default).

    Returns
    -------
    ndarray of shape (T - 1,), int64
        Entry t counts the samples whose prediction at epoch t + 2 differs from
        that at epoch t + 1 (epochs counted from 1).

    Raises
    ------
    ValueError
        If ``dynamics`` is not a Dynamics with margins and runner-up classes.
    """
    if not isinstance(dynamics, Dynamics) or dynamics.margins is None or dynamics.runner_up is None:
        raise ValueError("prediction_changes needs Dynamics with margins and runner_up "
                         "(record with DynamicsRecorder(margins=True), the default)")
    pred = np.where(dynamics.margins >= 0, dynamics.labels[:, None], dynamics.runner_up)
    return (pred[:, 1:] != pred[:, :-1]).sum(0).astype(np.int64)


def memorisation_onset(dynamics: Dynamics, *, window: int = GUARD_WINDOW,
                       min_rise: float = GUARD_MIN_RISE, min_fit: float = GUARD_MIN_FIT) -> int | None:
    """Number of epochs before the model starts to fit wrong labels, or None if the run shows no such turn.

    The prediction-change counts (:func:`prediction_changes`) are smoothed by
    a trailing moving average of ``window`` epochs. The onset is their first
    local minimum after which they rise again by at least ``min_rise`` times
    the number of samples, at an epoch where the model already predicts the
    given label of at least ``min_fit`` of the samples. The returned count
    keeps the epoch of the minimum.

    Parameters
    ----------
    dynamics : Dynamics
        With ``margins`` and ``runner_up``.
    window : int
        Moving-average length, at least 1.
    min_rise : float
        Least rise after the minimum, as a share of the N samples; must be positive.
    min_fit : float
        Least share of samples whose given label is the predicted class (margin >= 0)
        at the epoch of the minimum, in [0, 1].

    Returns
    -------
    int or None
        In ``3 .. T - 1`` (a minimum needs a smoothed count on either side of it).

    Raises
    ------
    ValueError
        For invalid ``window``, ``min_rise`` or ``min_fit``, or dynamics without margins and runner-up classes.
    """
    check_positive_int(window, "window")
    if not min_rise > 0:
        raise ValueError(f"min_rise must be positive, got {min_rise!r}")
    if not 0 <= min_fit <= 1:
        raise ValueError(f"min_fit must be in [0, 1], got {min_fit!r}")
    pc = prediction_changes(dynamics).astype(np.float64)
    fit = (dynamics.margins >= 0).mean(axis=0)      # (T,) share predicted as the given label, per epoch
    c = np.concatenate([[0.0], np.cumsum(pc)])
    lo = np.maximum(np.arange(len(pc)) - window + 1, 0)
    smooth = (c[1:] - c[lo]) / (np.arange(len(pc)) + 1 - lo)
    for i in range(1, len(smooth) - 1):
        if smooth[i] <= smooth[i - 1] and smooth[i] < smooth[i + 1] and fit[i + 1] >= min_fit:
            if smooth[i + 1:].max() - smooth[i] >= min_rise * dynamics.num_samples:
                return i + 2
    return None


def prefer_early(full: np.ndarray, early: np.ndarray) -> bool:
    """Whether the guard keeps the early view: it flags (score >= 0.5) at least ``GUARD_RATIO`` times as many.

    Parameters
    ----------
    full, early : ndarrays of shape (N,), float32
        Scores of the whole run and of its epochs up to the onset; N >= 1.

    Returns
    -------
    bool
    """
    return bool((early >= 0.5).mean() >= GUARD_RATIO * max((full >= 0.5).mean(), 1.0 / len(full)))


def guarded_view(dynamics, score, guard: bool) -> tuple[int, np.ndarray]:
    """The epochs a guarded detector reads and their scores.

    Parameters
    ----------
    dynamics : Dynamics, or ndarray of shape (N, T)
    score : callable
        ``score(dynamics) -> ndarray of shape (N,), float32``.
    guard : bool
        False: always the whole run.

    Returns
    -------
    epochs : int
        T, or the onset where the guard keeps the early view.
    scores : ndarray of shape (N,), float32
    """
    full = score(dynamics)
    T = np.shape(dynamics.probs if isinstance(dynamics, Dynamics) else dynamics)[1]
    if (not guard or not isinstance(dynamics, Dynamics)
            or dynamics.margins is None or dynamics.runner_up is None):
        return T, full
    onset = memorisation_onset(dynamics)
    if onset is None:
        return T, full
    early = score(dynamics.first_epochs(onset))
    if prefer_early(full, early):
        return onset, early
    return T, full
