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


def cross_val_probs(model, images, labels, *, folds: int = 5, epochs: int = 10, seed: int = 0,
                    num_classes: int | None = None, progress: bool = True, **fit_kwargs) -> np.ndarray:
    """Out-of-sample class probabilities by K-fold cross-validation (what confident learning needs).

    Each fold trains a fresh model on the other K-1 folds with
    :func:`mislabel.train.fit` (no dynamics recorded) and predicts the held-out fold.

    Parameters
    ----------
    model : str
        Model name for :func:`mislabel.models.build`.
    images : Tensor of shape (N, C, H, W), uint8
    labels : array-like of shape (N,), int64
        The given (possibly noisy) labels.
    folds : int
        K >= 2.
    epochs, seed, num_classes, progress, **fit_kwargs
        Passed to :func:`mislabel.train.fit`.

    Returns
    -------
    ndarray of shape (N, num_classes), float32
    """
    import torch

    from . import train as _train
    from ._validation import as_int_labels

    y = as_int_labels(labels, "labels")
    if not isinstance(folds, int) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2, got {folds!r}")
    if folds > len(y):
        raise ValueError(f"folds={folds} exceeds the {len(y)} samples")
    C = int(num_classes or max(int(y.max()) + 1, 2))
    images = torch.as_tensor(images)
    order = np.random.default_rng(seed).permutation(len(y))
    out = np.zeros((len(y), C), dtype=np.float32)
    for k in range(folds):
        held = np.sort(order[k::folds])
        keep = np.setdiff1d(np.arange(len(y)), held)
        run = _train.fit(model, images[keep], y[keep], epochs=epochs, record=None, seed=seed + k,
                         num_classes=C, progress=progress, **fit_kwargs)
        out[held] = _train.predict(run.model, images[held], run.normalization)
    return out


def cleanlab_scores(pred_probs: np.ndarray, labels) -> np.ndarray:
    """Confident-learning label-quality ranking (cleanlab) as a mislabel score.

    Parameters
    ----------
    pred_probs : ndarray of shape (N, C), float
        Out-of-sample probabilities, e.g. from :func:`cross_val_probs`.
    labels : array-like of shape (N,), int64

    Returns
    -------
    ndarray of shape (N,), float32
        ``1 - label quality`` (self-confidence), higher = more likely mislabeled.
    """
    from cleanlab.rank import get_label_quality_scores

    from ._validation import as_int_labels

    y = as_int_labels(labels, "labels")
    p = np.asarray(pred_probs, dtype=np.float64)
    if p.ndim != 2 or len(p) != len(y):
        raise ValueError(f"pred_probs must have shape ({len(y)}, C), got {p.shape}")
    return (1.0 - get_label_quality_scores(y, p)).astype(np.float32)
