"""Methods that read one recorded run and train nothing: statistics of each sample's training dynamics.

Plus the two reference points of the paper's tables, ``standard`` (remove nothing) and ``oracle``
(remove exactly the flipped samples).
"""
from __future__ import annotations

import math

import numpy as np

from .. import baselines as _baselines
from .core import MethodCost, MethodResult, Task, register

__all__ = ["standard", "oracle", "aum", "forgetting", "forgetting_events", "datamaps", "mean_loss", "el2n"]

#: probabilities are clipped to this before taking logs
_EPS = 1e-12


def _given_loss(probs: np.ndarray) -> np.ndarray:
    """Cross-entropy of the given label, -log p, of probabilities of any shape (float64)."""
    return -np.log(np.clip(np.asarray(probs, dtype=np.float64), _EPS, 1.0))


@register("standard", summary="train on everything", decision="removes nothing",
          reference="the paper's 'Standard' row")
def standard(task: Task) -> MethodResult:
    """Remove nothing: the baseline of the paper's Tables 1 and 2.

    Returns
    -------
    MethodResult
        ``scores`` all zero (no ranking), ``remove`` all False.
    """
    n = task.num_samples
    return MethodResult(np.zeros(n), np.zeros(n, dtype=bool), MethodCost())


@register("oracle", needs=("is_flipped",), summary="the true flips", decision="removes exactly the flipped samples",
          reference="the paper's 'Oracle' row")
def oracle(task: Task) -> MethodResult:
    """Remove exactly the flipped samples (needs the truth, ``Task.is_flipped``): the upper reference.

    Returns
    -------
    MethodResult
        ``scores`` 1.0 on flipped samples and 0.0 elsewhere, ``remove`` = ``is_flipped``.
    """
    return MethodResult(task.is_flipped.astype(np.float64), task.is_flipped.copy(), MethodCost())


@register("aum", needs=("dynamics", "margins"), summary="-mean margin over epochs (AUM, no threshold)",
          decision="none (a ranking; see aum_threshold)", reference="Pleiss et al. 2020")
def aum(task: Task) -> MethodResult:
    """Area Under the Margin of the recorded run, as a ranking (:func:`mislabel.baselines.aum`).

    The margin is the given label's logit minus the largest other logit; AUM is its mean over
    epochs, and the score is ``-AUM``. Without threshold samples AUM defines no cut-off, so
    ``remove`` is None (the paper's "AUM without threshold strategy").

    Returns
    -------
    MethodResult
    """
    return MethodResult(_baselines.aum(task.dynamics).astype(np.float64), None, MethodCost(recorded_run=True))


def forgetting_events(learned: np.ndarray) -> np.ndarray:
    """Forgetting events of each sample: epochs where it goes from learned to not learned.

    Parameters
    ----------
    learned : array-like of shape (N, T), bool
        Whether the sample's given label was predicted at each epoch.

    Returns
    -------
    ndarray of shape (N,), int64
        Count of ``t`` with ``learned[:, t-1]`` and not ``learned[:, t]``; ``T`` (more than any
        count) for a sample never learned, as Toneva et al. count them as forgotten infinitely often.

    Examples
    --------
    >>> forgetting_events([[1, 0, 1, 0], [0, 0, 0, 0], [0, 1, 1, 1]]).tolist()
    [2, 4, 0]
    """
    a = np.asarray(learned).astype(bool)
    if a.ndim != 2:
        raise ValueError(f"learned must be 2-D of shape (N, T), got shape {a.shape}")
    events = (a[:, :-1] & ~a[:, 1:]).sum(axis=1).astype(np.int64)
    events[~a.any(axis=1)] = a.shape[1]
    return events


@register("forgetting", needs=("dynamics", "margins"), summary="forgetting events (never learned = most)",
          decision="none (a ranking)", reference="Toneva et al. 2019")
def forgetting(task: Task) -> MethodResult:
    """Count of forgetting events per sample (:func:`forgetting_events`).

    A sample is "learned" at an epoch when its margin is positive, i.e. the given label is the
    predicted class. Recorded once per epoch (Toneva et al. look after every step that sees the
    sample; in the built-in loop each sample is seen once per epoch, so with ``record="train"`` this
    is the same count). The score is the count itself: many samples tie (at 0). Defines no cut-off.

    Returns
    -------
    MethodResult
    """
    events = forgetting_events(task.dynamics.margins > 0)
    return MethodResult(events.astype(np.float64), None, MethodCost(recorded_run=True))


@register("datamaps", needs=("dynamics",), summary="1 - confidence (mean given-label probability)",
          decision="none (a ranking)", reference="Swayamdipta et al. 2020")
def datamaps(task: Task) -> MethodResult:
    """Dataset cartography: confidence is the mean given-label probability over epochs, variability its std.

    Hard-to-learn samples (low confidence, low variability) are the likely label errors; the score is
    ``1 - confidence``. Data maps draw regions rather than a cut-off, so ``remove`` is None.

    Returns
    -------
    MethodResult
        ``details``: ``confidence`` and ``variability``, each (N,) float64.
    """
    p = task.dynamics.probs.astype(np.float64)
    conf, var = p.mean(axis=1), p.std(axis=1)
    return MethodResult(1.0 - conf, None, MethodCost(recorded_run=True),
                        details={"confidence": conf, "variability": var})


@register("mean_loss", needs=("dynamics",), summary="mean cross-entropy of the given label over epochs",
          decision="none (a ranking)", reference="small-loss criterion (e.g. Arazo et al. 2019)")
def mean_loss(task: Task) -> MethodResult:
    """Mean over epochs of ``-log p(given label)`` (probabilities clipped at 1e-12).

    Returns
    -------
    MethodResult
    """
    return MethodResult(_given_loss(task.dynamics.probs).mean(axis=1), None, MethodCost(recorded_run=True))


@register("el2n", needs=("dynamics", "full"), summary="||softmax - one-hot||_2 over the first epochs",
          decision="none (a ranking)", reference="Paul et al. 2021")
def el2n(task: Task, *, epochs: int | None = None) -> MethodResult:
    """Error L2-norm early in training: ``||p - onehot(given)||_2`` averaged over the first epochs.

    Paul et al. average over several runs at one early epoch; from one run we average over its
    first ``epochs`` epochs instead.

    Parameters
    ----------
    epochs : int, optional
        How many of the first epochs; default a tenth of the run (at least 1).

    Returns
    -------
    MethodResult

    Raises
    ------
    ValueError
        If ``epochs`` is not in ``1 .. T``.
    """
    dyn = task.dynamics
    T = dyn.num_epochs
    k = max(1, math.ceil(T / 10)) if epochs is None else epochs
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= T:
        raise ValueError(f"epochs must be an integer in [1, {T}] (the run's epochs), got {epochs!r}")
    full = np.asarray(dyn.full[:, :k, :], dtype=np.float64)          # (N, k, C)
    if full.shape[2] < task.num_classes:
        raise ValueError(f"dynamics.full has {full.shape[2]} classes but the task has {task.num_classes}")
    onehot = np.zeros((full.shape[0], full.shape[2]))
    onehot[np.arange(len(onehot)), task.labels] = 1.0
    err = np.linalg.norm(full - onehot[:, None, :], axis=2)         # (N, k)
    return MethodResult(err.mean(axis=1), None, MethodCost(recorded_run=True), details={"epochs": int(k)})
