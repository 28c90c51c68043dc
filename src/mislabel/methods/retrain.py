"""Sec 4.2 of the paper: remove the suspected samples, retrain, and measure test accuracy.

:func:`retrain_without` retrains on the kept samples with the batch size shrunk in proportion
(:func:`shrunk_batch_size`, the paper's Appendix B.2); :func:`remove_top` turns any ranking into
"remove exactly k" (e.g. k = the number of flipped samples, when comparing rankings rather than
each method's own decision).
"""
from __future__ import annotations

import numpy as np
import torch

from .. import train as _train
from .._validation import as_int_labels, check_positive_int, check_seed
from .core import Task, _as_mask

__all__ = ["retrain_without", "remove_top", "shrunk_batch_size"]


def shrunk_batch_size(batch_size: int, kept: int, total: int) -> int:
    """The batch size after removing samples: ``max(1, round(batch_size * kept / total))``.

    The paper (Appendix B.2, after Pleiss et al.) retrains with batch size 256 on the full set and
    "let[s] the batch size shrink proportionally after discarding suspected samples", so that every
    epoch takes the same number of SGD steps whatever is removed.

    Examples
    --------
    >>> shrunk_batch_size(256, 40000, 50000)
    205
    """
    return max(1, int(round(batch_size * kept / total)))


def remove_top(scores, k: int) -> np.ndarray:
    """Mark the ``k`` highest-scoring samples for removal.

    Parameters
    ----------
    scores : array-like of shape (N,), float
        Higher = more likely mislabeled.
    k : int
        In ``0 .. N``.

    Returns
    -------
    ndarray of shape (N,), bool
        Exactly ``k`` True; among equal scores the earlier sample goes first.

    Raises
    ------
    ValueError
        If ``scores`` is not 1-D and finite or ``k`` is out of range.

    Examples
    --------
    >>> remove_top([0.2, 0.9, 0.5, 0.9], 2).tolist()
    [False, True, False, True]
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or not np.all(np.isfinite(s)):
        raise ValueError(f"scores must be finite, of shape (N,), got shape {s.shape}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= len(s):
        raise ValueError(f"k must be an integer in [0, {len(s)}] (how many samples to remove), got {k!r}")
    out = np.zeros(len(s), dtype=bool)
    out[np.argsort(-s, kind="stable")[:k]] = True
    return out


def retrain_without(task: Task, remove, *, model: str | None = None, epochs: int | None = None,
                    batch_size: int | None = None, lr: float | None = None, seed: int | None = None,
                    test_images=None, test_labels=None) -> float:
    """Test accuracy of a fresh model trained on the samples not removed (the paper's Sec 4.2).

    The model trains with :func:`mislabel.train.fit` on ``task.labels`` of the kept samples, with the
    task's other settings (momentum, weight decay, learning-rate milestones, augmentation, device),
    and batch size ``shrunk_batch_size(batch_size, kept, N)``. The paper retrains with SGD with
    Nesterov momentum, learning rate 0.1, batch size 256 (on all samples), 300 epochs and the
    rate divided by 10 at epochs 150 and 225 (``milestones=(0.5, 0.75)``, the default); ``fit``'s
    SGD uses classical momentum, not Nesterov's.

    Parameters
    ----------
    task : Task
        Needs images and, unless given here, test data.
    remove : array-like of shape (N,), bool
        True = drop the sample (e.g. ``MethodResult.remove`` or :func:`remove_top`).
    model, epochs, batch_size, lr, seed : optional
        Default: the task's. ``batch_size`` is the batch size for the full set.
    test_images, test_labels : optional
        Default: the task's.

    Returns
    -------
    float
        Test accuracy of the model after the last epoch (the test set is scored once, at the end).

    Raises
    ------
    ValueError
        If the task has no images or test data, ``remove`` is not a mask of shape (N,), it removes
        every sample, or a setting is invalid.
    """
    if task.images is None:
        raise ValueError("retrain_without needs the training images: Task(images=...)")
    mask = _as_mask(remove, task.num_samples, "remove")
    keep = np.flatnonzero(~mask)
    if len(keep) == 0:
        raise ValueError("remove marks every sample; keep at least one to retrain on")
    if test_images is None and test_labels is None:
        test_images, test_labels = task.test_images, task.test_labels
    if test_images is None or test_labels is None:
        raise ValueError("retrain_without needs test data: pass test_images and test_labels (here or to Task)")
    epochs = task.epochs if epochs is None else epochs
    batch_size = task.batch_size if batch_size is None else batch_size
    check_positive_int(epochs, "epochs")
    check_positive_int(batch_size, "batch_size")
    seed = check_seed(task.seed if seed is None else seed)
    test_labels = as_int_labels(test_labels, "test_labels", task.num_classes)
    test_images = torch.as_tensor(test_images)
    if test_images.ndim != 4 or len(test_images) != len(test_labels):
        raise ValueError(f"test_images must have shape ({len(test_labels)}, C, H, W), one per test label, got "
                         f"{tuple(test_images.shape)}")
    bs = shrunk_batch_size(batch_size, len(keep), task.num_samples)
    run = _train.fit(task.model if model is None else model, task.images[keep], task.labels[keep], epochs,
                     record=None, **task.fit_options(batch_size=bs, lr=task.lr if lr is None else lr, seed=seed))
    # scored once, after the last epoch (the per-epoch test pass of fit would cost as much as the training
    # itself on a small retraining set)
    probs = _train.predict(run.model, test_images, run.normalization)
    return float(np.mean(probs.argmax(axis=1) == test_labels))
