"""Detection metrics: treat "is this sample mislabeled?" as a ranking problem.

``evaluate(scores, is_flipped)`` returns mAP (average precision), ROC AUC,
Precision@95 (paper, Appendix A) and precision/recall at k = number of
flipped samples.

Average precision and ROC AUC are computed here in NumPy, with the same
definitions (and tie handling) as scikit-learn's ``average_precision_score``
and ``roc_auc_score``: importing scikit-learn costs about 1.7 s, which every
``import mislabel`` (and every CLI call) used to pay.
"""
from __future__ import annotations

import numpy as np


def _check(scores, is_flipped) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores.detach().cpu() if hasattr(scores, "detach") else scores, dtype=np.float64)
    y = np.asarray(is_flipped.detach().cpu() if hasattr(is_flipped, "detach") else is_flipped)
    if s.ndim != 1 or y.ndim != 1:
        raise ValueError(f"scores and is_flipped must be 1-D (N,), got shapes {s.shape} and {y.shape}")
    if len(s) != len(y):
        raise ValueError(f"scores has {len(s)} entries but is_flipped has {len(y)}; they must match")
    if len(s) == 0:
        raise ValueError("scores is empty: need at least one sample")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or inf; fix the scorer before evaluating")
    if y.dtype != bool:
        if not np.isin(y, (0, 1)).all():
            raise ValueError("is_flipped must be boolean (or 0/1)")
        y = y.astype(bool)
    return s, y


def _descending(s: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores and flips in ranking order: highest score first, ties in sample order (a stable sort)."""
    order = np.argsort(-s, kind="stable")
    return s[order], y[order]


def _thresholds(s_sorted: np.ndarray, y_sorted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True and false positives above each distinct threshold of a ranking (:func:`_descending`'s order).

    Returns
    -------
    tp, fp : ndarrays of shape (B,), int64
        Cumulative counts at the last sample of each of the B blocks of tied scores.
    """
    # last index of each block of tied scores: only there can a threshold sit
    ends = np.r_[np.nonzero(np.diff(s_sorted))[0], len(s_sorted) - 1]
    tp = np.cumsum(y_sorted, dtype=np.int64)[ends]
    return tp, ends + 1 - tp


def _counts(scores, is_flipped) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_thresholds` of raw inputs (checked, then ranked)."""
    return _thresholds(*_descending(*_check(scores, is_flipped)))


def average_precision(scores, is_flipped) -> float:
    """Average precision: the mean over flipped samples of the precision at their score.

    Precision and recall are taken at every distinct score (tied samples enter
    together); AP is the sum of ``(R_k - R_{k-1}) * P_k`` over those thresholds,
    scikit-learn's ``average_precision_score``.

    Parameters
    ----------
    scores : array-like of shape (N,), float
        Higher means more likely mislabeled.
    is_flipped : array-like of shape (N,), bool

    Returns
    -------
    float
        NaN when there is no flipped sample.

    Examples
    --------
    >>> average_precision([0.9, 0.8, 0.7, 0.1], [True, False, True, False])  # (1/1 + 2/3) / 2
    0.8333333333333333
    """
    return _average_precision(*_counts(scores, is_flipped))


def _average_precision(tp: np.ndarray, fp: np.ndarray) -> float:
    if tp[-1] == 0:
        return float("nan")
    precision = tp / (tp + fp)
    recall_gain = np.diff(tp, prepend=0) / tp[-1]
    return float(np.sum(recall_gain * precision))


def roc_auc(scores, is_flipped) -> float:
    """Area under the ROC curve: the chance that a random flipped sample scores above a random clean one.

    Ties between a flipped and a clean sample count one half (the trapezoid
    rule over the distinct scores, as scikit-learn's ``roc_auc_score``).

    Parameters
    ----------
    scores : array-like of shape (N,), float
    is_flipped : array-like of shape (N,), bool

    Returns
    -------
    float
        NaN unless both flipped and clean samples are present.

    Examples
    --------
    >>> roc_auc([0.9, 0.5, 0.5, 0.1], [True, True, False, False])  # pairs won: 1 + 1 + 0.5 + 1 of 4
    0.875
    """
    return _roc_auc(*_counts(scores, is_flipped))


def _roc_auc(tp: np.ndarray, fp: np.ndarray) -> float:
    if tp[-1] == 0 or fp[-1] == 0:
        return float("nan")
    tpr = np.r_[0, tp] / tp[-1]
    fpr = np.r_[0, fp] / fp[-1]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1])) / 2)


def precision_at_recall(scores, is_flipped, recall: float = 0.95) -> float:
    """Precision at the first threshold (walking down from the highest score) where recall >= ``recall``.

    Samples with equal scores enter together, so ties never favour either class.

    Parameters
    ----------
    scores : array-like of shape (N,), float
        Higher means more likely mislabeled.
    is_flipped : array-like of shape (N,), bool
    recall : float
        Target recall in (0, 1].

    Returns
    -------
    float
        NaN when there is no flipped sample.
    """
    if isinstance(recall, bool) or not isinstance(recall, (int, float, np.integer, np.floating)) \
            or not 0 < recall <= 1:
        raise ValueError(f"recall must be a number in (0, 1], got {recall!r} (e.g. 0.95 for Precision@95)")
    return _precision_at_recall(*_counts(scores, is_flipped), recall)


def _precision_at_recall(tp: np.ndarray, fp: np.ndarray, recall: float) -> float:
    positives = int(tp[-1])
    if positives == 0:
        return float("nan")
    hit = np.nonzero(tp >= recall * positives - 1e-9)[0][0]
    return float(tp[hit] / (tp[hit] + fp[hit]))


def evaluate(scores, is_flipped) -> dict:
    """Score a mislabel ranking against the known flips.

    Parameters
    ----------
    scores : array-like of shape (N,), float
        Higher means more likely mislabeled.
    is_flipped : array-like of shape (N,), bool
        Ground truth: True for samples whose label was changed.

    Returns
    -------
    dict
        ``map`` (average precision), ``roc_auc``, ``precision_at_95``,
        ``precision_at_k`` and ``recall_at_k`` with k = number of flipped samples
        (equal to each other by construction), ``k``, ``n`` and ``noise_rate``.
        Where tied scores straddle the k-th place, the tied samples share the
        remaining places evenly (the expected precision over random orders of
        the tie), so a tie never favours either class, as in the other metrics.
        ROC AUC is NaN unless both classes are present; the other metrics are
        NaN without flipped samples.
    """
    s, y = _check(scores, is_flipped)
    k = int(y.sum())
    s_sorted, y_sorted = _descending(s, y)   # one sort for every metric below
    tp, fp = _thresholds(s_sorted, y_sorted)
    out = {
        "map": _average_precision(tp, fp),
        "roc_auc": _roc_auc(tp, fp),
        "precision_at_95": _precision_at_recall(tp, fp, 0.95),
    }
    if k > 0:
        hits = _hits_at(s_sorted, y_sorted, k)
        out["precision_at_k"] = hits / k
        out["recall_at_k"] = hits / k
    else:
        out["precision_at_k"] = out["recall_at_k"] = float("nan")
    out.update(k=k, n=int(len(y)), noise_rate=k / len(y))
    return out


def _hits_at(s_sorted: np.ndarray, y_sorted: np.ndarray, k: int) -> float:
    """Expected number of flipped samples among the first ``k`` of a ranking (:func:`_descending`'s order)
    when the samples tied with the k-th share the places left for them evenly."""
    cut = s_sorted[k - 1]
    above = int(np.count_nonzero(s_sorted > cut))
    tied = s_sorted == cut
    return float(y_sorted[:above].sum() + y_sorted[tied].sum() * (k - above) / np.count_nonzero(tied))
