"""Detection metrics: treat "is this sample mislabeled?" as a ranking problem.

``evaluate(scores, is_flipped)`` returns mAP (average precision), ROC AUC,
Precision@95 (paper, Appendix A) and precision/recall at k = number of
flipped samples.
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score


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
    s, y = _check(scores, is_flipped)
    positives = int(y.sum())
    if positives == 0:
        return float("nan")
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    tp = np.cumsum(y_sorted)
    # last index of each block of tied scores: only there can a threshold sit
    ends = np.r_[np.nonzero(np.diff(s_sorted))[0], len(s_sorted) - 1]
    tp_at = tp[ends]
    hit = np.nonzero(tp_at >= recall * positives - 1e-9)[0][0]
    return float(tp_at[hit] / (ends[hit] + 1))


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
        Metrics that need both classes are NaN when one is absent.
    """
    s, y = _check(scores, is_flipped)
    k = int(y.sum())
    both = 0 < k < len(y)
    out = {
        "map": float(average_precision_score(y, s)) if both else float("nan"),
        "roc_auc": float(roc_auc_score(y, s)) if both else float("nan"),
        "precision_at_95": precision_at_recall(s, y, 0.95),
    }
    if k > 0:
        top = np.argsort(-s, kind="stable")[:k]
        hits = int(y[top].sum())
        out["precision_at_k"] = hits / k
        out["recall_at_k"] = hits / k
    else:
        out["precision_at_k"] = out["recall_at_k"] = float("nan")
    out.update(k=k, n=int(len(y)), noise_rate=k / len(y))
    return out
