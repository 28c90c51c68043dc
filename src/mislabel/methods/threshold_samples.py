"""AUM with threshold samples (Pleiss et al. 2020): a cut-off learned from samples made wrong on purpose.

``N // (C + 1)`` samples get a fake extra class ``C`` (the model has ``C + 1`` outputs): none of
them belongs there, so their AUM shows how a surely mislabeled sample behaves. A sample whose AUM is
below the 99th percentile of the threshold samples' AUM is called mislabeled. Threshold samples
cannot be judged in their own run, so, as in the authors' protocol, there are two runs with
disjoint threshold sets; a sample is removed if it is flagged in any run in which it was not a
threshold sample, and its score is ``-AUM`` averaged over those runs. As the authors do, the
margins of the first epoch are left out (its variability comes from the random initialisation).
"""
from __future__ import annotations

import numpy as np

from .. import train as _train
from .core import MethodCost, MethodResult, Task, register

__all__ = ["aum_threshold", "threshold_sets", "threshold_flags"]


def threshold_sets(num_samples: int, num_classes: int, *, runs: int = 2, seed: int = 0) -> np.ndarray:
    """Disjoint sets of threshold samples, one per run.

    Parameters
    ----------
    num_samples, num_classes : int
    runs : int
        How many runs (each needs its own ``num_samples // (num_classes + 1)`` samples).
    seed : int

    Returns
    -------
    ndarray of shape (runs, num_samples), bool
        Row ``r`` marks the threshold samples of run ``r``.

    Raises
    ------
    ValueError
        If the runs' sets do not fit in the data, or it is too small for one threshold sample.
    """
    m = num_samples // (num_classes + 1)
    if m < 1:
        raise ValueError(f"{num_samples} samples give no threshold sample: AUM thresholds need at least "
                         f"num_classes + 1 = {num_classes + 1} samples")
    order = np.random.default_rng(seed).permutation(num_samples)
    sets = np.zeros((runs, num_samples), dtype=bool)
    for r in range(runs):
        sets[r, order[r * m:(r + 1) * m]] = True
    return sets


def threshold_flags(aum: np.ndarray, is_threshold: np.ndarray, percentile: float = 99.0) -> tuple[np.ndarray, float]:
    """Samples whose AUM is below the ``percentile``-th percentile of the threshold samples' AUM.

    Parameters
    ----------
    aum : ndarray of shape (N,), float
    is_threshold : ndarray of shape (N,), bool
    percentile : float
        In (0, 100]; the authors use 99.

    Returns
    -------
    flags : ndarray of shape (N,), bool
        False on the threshold samples themselves.
    cutoff : float

    Examples
    --------
    >>> flags, cut = threshold_flags(np.array([2.0, -2.5, 0.5, -3.0, -2.0]), np.array([0, 0, 0, 1, 1], bool), 100)
    >>> flags.tolist(), cut
    ([False, True, False, False, False], -2.0)
    """
    cutoff = float(np.percentile(aum[is_threshold], percentile))
    return (aum < cutoff) & ~is_threshold, cutoff


@register("aum_threshold", needs=("images",), summary="AUM with two runs of threshold samples",
          decision="AUM below the 99th percentile of the threshold samples' AUM in a run where it was not one",
          reference="Pleiss et al. 2020")
def aum_threshold(task: Task, *, percentile: float = 99.0, skip_first_epoch: bool = True) -> MethodResult:
    """AUM with threshold samples: two trainings with ``C + 1`` outputs (see the module docstring).

    Each run trains ``task.model`` for ``task.epochs`` with the task's settings (seed ``task.seed + r``)
    on the labels with run ``r``'s threshold samples moved to class ``C``, recording margins of the
    training passes (``record="train"``, as the ``aum`` package records them).

    Parameters
    ----------
    percentile : float
        Of the threshold samples' AUM, in (0, 100].
    skip_first_epoch : bool
        Leave the first epoch's margins out of AUM (when the run has more than one epoch).

    Returns
    -------
    MethodResult
        ``details``: ``cutoffs`` (one per run), ``aums`` (runs, N), ``threshold_sets`` (runs, N) bool.

    Raises
    ------
    ValueError
        For a bad ``percentile`` or too few samples.
    """
    if isinstance(percentile, bool) or not isinstance(percentile, (int, float)) or not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile!r}")
    C, N = task.num_classes, task.num_samples
    sets = threshold_sets(N, C, runs=2, seed=task.seed)
    aums, flags, cutoffs = [], [], []
    for r, is_thr in enumerate(sets):
        labels = np.where(is_thr, C, task.labels)
        run = _train.fit(task.model, task.images, labels, task.epochs, record="train",
                         **task.fit_options(num_classes=C + 1, seed=task.seed + r))
        margins = run.dynamics.margins
        if skip_first_epoch and margins.shape[1] > 1:
            margins = margins[:, 1:]
        a = margins.astype(np.float64).mean(axis=1)
        f, cut = threshold_flags(a, is_thr, percentile)
        aums.append(a)
        flags.append(f)
        cutoffs.append(cut)
    aums, flags, judged = np.array(aums), np.array(flags), ~sets
    remove = (flags & judged).any(axis=0)
    mean_aum = (aums * judged).sum(axis=0) / judged.sum(axis=0)
    cost = MethodCost(trainings=2, epochs=2 * task.epochs)
    return MethodResult(-mean_aum, remove, cost,
                        details={"cutoffs": cutoffs, "aums": aums, "threshold_sets": sets})
