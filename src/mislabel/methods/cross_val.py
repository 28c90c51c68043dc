"""Methods that judge each sample by a model that never trained on it: INCV and confident learning."""
from __future__ import annotations

import math

import numpy as np

from .. import baselines as _baselines
from .. import train as _train
from .._validation import check_positive_int
from .core import MethodCost, MethodResult, Task, register

__all__ = ["incv", "cleanlab", "estimate_noise_ratio"]


def estimate_noise_ratio(accuracy: float, num_classes: int) -> float:
    """Symmetric noise ratio ``e`` that makes a cross-validated accuracy against noisy labels equal ``accuracy``.

    With noise ``e`` spread uniformly over the other classes, a model that learned the true classes
    agrees with the given label with probability ``(1 - e)^2 + e^2 / (C - 1)`` (Chen et al. 2019); this
    solves it for ``e`` in ``[0, (C - 1) / C]``.

    Parameters
    ----------
    accuracy : float
        In [0, 1]; below ``1 / C`` (worse than chance) gives the largest ratio ``(C - 1) / C``.
    num_classes : int

    Returns
    -------
    float

    Examples
    --------
    >>> round(estimate_noise_ratio(0.6 ** 2 + 0.4 ** 2 / 9, 10), 12)
    0.4
    """
    k = num_classes / (num_classes - 1)
    disc = 1.0 - k * (1.0 - accuracy)
    return (1.0 - math.sqrt(disc)) / k if disc > 0 else 1.0 / k


def _train_and_predict(task: Task, train_idx: np.ndarray, held: np.ndarray, seed: int) -> np.ndarray:
    """Class probabilities (M, C) of samples ``held`` from a fresh model trained on samples ``train_idx``."""
    run = _train.fit(task.model, task.images[train_idx], task.labels[train_idx], task.epochs, record=None,
                     **task.fit_options(seed=seed))
    return _train.predict(run.model, task.images[held], run.normalization).astype(np.float64)


@register("incv", needs=("images",), summary="iterative noisy cross-validation (clean-subset selection)",
          decision="not in the selected clean subset", reference="Chen et al. 2019")
def incv(task: Task, *, iterations: int = 4) -> MethodResult:
    """INCV: grow a clean subset by cross-validation on the remaining candidates.

    Every iteration splits the candidates (at first: all samples) randomly into halves A and B. A
    fresh model trained on the selected set plus A predicts B; the samples of B whose given label
    is the predicted class are selected, and the ``r`` times as many samples of B with the largest
    loss are discarded from the candidates; then the same with A and B swapped. The noise ratio
    ``e`` is estimated once, from the first held-out half's accuracy (:func:`estimate_noise_ratio`),
    and ``r = min(2, e / (1 - e))``. The authors run 4 iterations; each trains 2 models for
    ``task.epochs`` (the authors' Adam schedule and best-epoch checkpoints are replaced by the task's
    SGD settings and the last epoch, and discarding is always on, not only for symmetric noise).

    Parameters
    ----------
    iterations : int
        Stops early when fewer than 2 candidates are left.

    Returns
    -------
    MethodResult
        ``remove``: not selected. ``scores``: ``1 - p(given label)`` from the last model that held the
        sample out, plus 1 for a sample not selected (so the ranking agrees with ``remove``).
        ``details``: ``noise_ratio`` (estimated), ``selected_per_iteration``.

    Raises
    ------
    ValueError
        If ``iterations`` is not a positive integer.
    """
    check_positive_int(iterations, "iterations")
    rng = np.random.default_rng(task.seed)
    N, C = task.num_samples, task.num_classes
    selected = np.zeros(N, dtype=bool)
    candidate = np.ones(N, dtype=bool)
    oos = np.zeros(N)                       # 1 - p(given) out of sample
    noise = ratio = None
    trainings, sizes = 0, []
    for _ in range(iterations):
        cand = rng.permutation(np.flatnonzero(candidate))
        if len(cand) < 2:
            break
        halves = (np.sort(cand[:len(cand) // 2]), np.sort(cand[len(cand) // 2:]))
        picked, dropped = [], []
        for train_half, held in (halves, halves[::-1]):
            p = _train_and_predict(task, np.concatenate([np.flatnonzero(selected), train_half]), held,
                                   task.seed + trainings)
            trainings += 1
            y = task.labels[held]
            p_given = p[np.arange(len(held)), y]
            match = p.argmax(axis=1) == y
            oos[held] = 1.0 - p_given
            if noise is None:
                noise = estimate_noise_ratio(float(match.mean()), C)
                ratio = min(2.0, noise / (1.0 - noise))
            n_drop = min(len(held), int(ratio * match.sum()))
            picked.append(held[match])
            if n_drop:
                dropped.append(held[np.argsort(p_given, kind="stable")[:n_drop]])     # the largest losses
        picked = np.concatenate(picked)
        selected[picked] = True
        candidate[picked] = False
        if dropped:
            candidate[np.concatenate(dropped)] = False
        sizes.append(int(selected.sum()))
    remove = ~selected
    cost = MethodCost(trainings=trainings, epochs=trainings * task.epochs)
    return MethodResult(oos + remove, remove, cost,
                        details={"noise_ratio": noise, "selected_per_iteration": sizes})


@register("cleanlab", needs=("images",), summary="confident learning on K-fold out-of-sample probabilities",
          decision="cleanlab.filter.find_label_issues (prune by noise rate)", reference="Northcutt et al. 2021")
def cleanlab(task: Task, *, folds: int = 5) -> MethodResult:
    """Confident learning: K models, each predicting the fold it did not train on.

    Out-of-sample probabilities come from :func:`mislabel.baselines.cross_val_probs` (``folds``
    trainings of ``task.epochs`` with the task's settings); the decision is cleanlab's
    ``find_label_issues`` with its defaults, the score ``1 - self-confidence``
    (:func:`mislabel.baselines.cleanlab_scores`).

    Parameters
    ----------
    folds : int
        K >= 2.

    Returns
    -------
    MethodResult
        ``details["pred_probs"]``: the (N, C) out-of-sample probabilities.

    Raises
    ------
    ImportError
        Without the ``cleanlab`` package.
    ValueError
        For a bad ``folds``.
    """
    try:
        from cleanlab.filter import find_label_issues
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("method 'cleanlab' needs the cleanlab package: pip install cleanlab") from err
    opts = task.fit_options()
    for key in ("seed", "num_classes", "progress"):
        opts.pop(key)
    probs = _baselines.cross_val_probs(task.model, task.images, task.labels, folds=folds, epochs=task.epochs,
                                       seed=task.seed, num_classes=task.num_classes, progress=task.progress, **opts)
    remove = find_label_issues(task.labels, probs, n_jobs=1)
    scores = _baselines.cleanlab_scores(probs, task.labels).astype(np.float64)
    return MethodResult(scores, remove, MethodCost(trainings=folds, epochs=folds * task.epochs),
                        details={"pred_probs": probs})
