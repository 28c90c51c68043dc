"""Data debugging (the paper's Sec 4.3): correct the labels of the samples a ranking puts first.

A ranking (``scores``, higher = more likely mislabeled; e.g. ``mislabel.methods.run(name, task).scores``)
is cut at its top ``share`` of the samples, and the labels of those samples are replaced, either

* by the **true label** (:func:`correct_with_truth`): a simulated human check, possible where
  the ground truth is known (the paper's CUB-200 protocol); or
* by the **prediction of a model retrained without the suspects** (:func:`retrained_predictions`
  and :func:`correct_with_model`): a model of the same architecture trained on the samples
  that remain after the ranking's top ``exclude_share`` is left out, so that it never saw the
  labels it is asked to replace (the paper's mini-WebVision protocol).

The corrected labels then go to any learner unchanged (:func:`mislabel.train.fit`,
:func:`mislabel.dividemix.dividemix`)::

    from mislabel import debug, methods
    scores = methods.run("shipped", task).scores
    fixed = debug.correct_with_truth(task.labels, scores, 0.05, true_labels=clean)
    pred = debug.retrained_predictions(task, scores, exclude_share=0.25)
    guessed = debug.correct_with_model(task.labels, scores, 0.10, predictions=pred)
    fixed.summary(clean, task.labels)       # how many labels were checked, fixed, broken
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import train as _train
from ._validation import as_int_labels, check_share
from .methods.core import Task
from .methods.retrain import remove_top, shrunk_batch_size

__all__ = ["Debugged", "PROTOCOLS", "top_share", "correct_top", "correct_with_truth", "correct_with_model",
           "retrained_predictions"]

#: How a checked label is replaced: the true label, or the retrained model's prediction.
PROTOCOLS = ("truth", "retrain")


@dataclass(frozen=True)
class Debugged:
    """A label set after debugging.

    Attributes
    ----------
    labels : ndarray of shape (N,), int64
        The given labels with the checked ones replaced.
    checked : ndarray of shape (N,), bool
        The top ``share`` of the ranking: the samples whose label was looked at.
    changed : ndarray of shape (N,), bool
        The checked samples whose label the replacement changed.
    share : float
        Share of samples checked.
    protocol : str
        ``"truth"`` or ``"retrain"`` (see :data:`PROTOCOLS`).
    """

    labels: np.ndarray
    checked: np.ndarray
    changed: np.ndarray
    share: float
    protocol: str

    def summary(self, true_labels, given_labels) -> dict:
        """How the debugging changed the label noise, against the truth.

        Parameters
        ----------
        true_labels : array-like of shape (N,), int
            The correct labels.
        given_labels : array-like of shape (N,), int
            The labels before debugging.

        Returns
        -------
        dict
            ``checked`` (samples checked), ``wrong_checked`` (checked samples whose given label was
            wrong: the ranking's hits), ``fixed`` (wrong labels made right), ``broken`` (right labels
            made wrong), ``noise_before`` and ``noise_after`` (share of wrong labels in the set).

        Raises
        ------
        ValueError
            If either label array is not of shape (N,) with non-negative integers.
        """
        truth = as_int_labels(true_labels, "true_labels")
        given = as_int_labels(given_labels, "given_labels")
        n = len(self.labels)
        if len(truth) != n or len(given) != n:
            raise ValueError(f"true_labels and given_labels must have {n} entries, one per sample, got "
                             f"{len(truth)} and {len(given)}")
        wrong_before, wrong_after = given != truth, self.labels != truth
        return {"checked": int(self.checked.sum()), "wrong_checked": int((wrong_before & self.checked).sum()),
                "fixed": int((wrong_before & ~wrong_after).sum()), "broken": int((~wrong_before & wrong_after).sum()),
                "noise_before": float(wrong_before.mean()), "noise_after": float(wrong_after.mean())}


def top_share(scores, share: float) -> np.ndarray:
    """The top ``share`` of a ranking: ``round(share * N)`` samples with the highest scores.

    Parameters
    ----------
    scores : array-like of shape (N,), float
        Finite; higher = more likely mislabeled. Ties keep the sample order.
    share : float
        In (0, 1).

    Returns
    -------
    ndarray of shape (N,), bool

    Raises
    ------
    ValueError
        If ``scores`` is not finite and 1-D or ``share`` is not in (0, 1).
    """
    share = check_share(share, "share", hint=" (the share of samples whose label is checked)")
    s = np.asarray(scores, dtype=np.float64)
    return remove_top(s, int(round(share * len(s))))


def correct_top(labels, scores, share: float, replacement, *, protocol: str = "truth") -> Debugged:
    """Replace the labels of the top ``share`` of a ranking by ``replacement``'s.

    Parameters
    ----------
    labels : array-like of shape (N,), int
        The given labels.
    scores : array-like of shape (N,), float
        The ranking (higher = more suspicious).
    share : float
        In (0, 1): the paper uses 0.05 and 0.10.
    replacement : array-like of shape (N,), int
        The label each sample gets if it is checked (only the checked entries are read).
    protocol : {"truth", "retrain"}
        Recorded in the result.

    Returns
    -------
    Debugged

    Raises
    ------
    ValueError
        If the arrays do not all have N entries, labels are not non-negative integers, ``share``
        is out of range or ``protocol`` is unknown.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(map(repr, PROTOCOLS))}, got {protocol!r}")
    given = as_int_labels(labels, "labels")
    new = as_int_labels(replacement, "replacement")
    s = np.asarray(scores)
    if len(new) != len(given) or s.shape != given.shape:
        raise ValueError(f"scores and replacement must have shape ({len(given)},), one entry per label, got "
                         f"{s.shape} and ({len(new)},)")
    checked = top_share(s, share)
    out = given.astype(np.int64).copy()
    out[checked] = new[checked]
    return Debugged(out, checked, checked & (out != given), float(share), protocol)


def correct_with_truth(labels, scores, share: float, *, true_labels) -> Debugged:
    """Simulated human check: the top ``share`` of the ranking gets its true label.

    Parameters
    ----------
    labels, scores, share
        As in :func:`correct_top`.
    true_labels : array-like of shape (N,), int
        The ground truth (known for synthesized noise).

    Returns
    -------
    Debugged
        ``protocol="truth"``.

    Raises
    ------
    ValueError
        As :func:`correct_top`.
    """
    return correct_top(labels, scores, share, true_labels, protocol="truth")


def correct_with_model(labels, scores, share: float, *, predictions) -> Debugged:
    """Automatic correction: the top ``share`` of the ranking gets a model's predicted class.

    Parameters
    ----------
    labels, scores, share
        As in :func:`correct_top`.
    predictions : array-like of shape (N,), int, or (N, C) float
        Predicted classes, or class probabilities (their argmax is taken), e.g. from
        :func:`retrained_predictions`.

    Returns
    -------
    Debugged
        ``protocol="retrain"``.

    Raises
    ------
    ValueError
        As :func:`correct_top`, or if ``predictions`` is neither 1-D nor 2-D.
    """
    pred = np.asarray(predictions)
    if pred.ndim == 2:
        pred = pred.argmax(axis=1)
    elif pred.ndim != 1:
        raise ValueError(f"predictions must be classes (N,) or probabilities (N, C), got shape {pred.shape}")
    return correct_top(labels, scores, share, pred, protocol="retrain")


def retrained_predictions(task: Task, scores, *, exclude_share: float = 0.25, epochs: int | None = None,
                          seed: int | None = None, test: bool = False):
    """Predicted class of every sample by a model trained without the ranking's top ``exclude_share``.

    The model (``task.model``) trains with :func:`mislabel.train.fit` on the given labels of the
    samples outside the top ``exclude_share`` of ``scores``, with the task's settings and the
    batch size shrunk in proportion (:func:`~mislabel.methods.shrunk_batch_size`), and predicts
    every training sample. Pass an ``exclude_share`` at least as large as the share to correct,
    so that no corrected label comes from a model that trained on it.

    Parameters
    ----------
    task : Task
        Needs images; its labels are the given ones.
    scores : array-like of shape (N,), float
        The ranking (higher = more suspicious).
    exclude_share : float
        In (0, 1): share of the most suspicious samples left out of the training.
    epochs, seed : int, optional
        Default: the task's.
    test : bool
        Also return the retrained model's test accuracy (needs the task's test data).

    Returns
    -------
    ndarray of shape (N,), int64
        The predicted classes; with ``test=True``, a tuple ``(classes, test_accuracy)``.

    Raises
    ------
    ValueError
        If the task has no images (or no test data with ``test=True``), ``scores`` is not of
        shape (N,) or ``exclude_share`` is out of range.
    """
    if task.images is None:
        raise ValueError("retrained_predictions needs the training images: Task(images=...)")
    if test and task.test_images is None:
        raise ValueError("test=True needs the task's test data: Task(test_images=..., test_labels=...)")
    s = np.asarray(scores)
    if s.shape != (task.num_samples,):
        raise ValueError(f"scores must have shape ({task.num_samples},), one per sample, got {s.shape}")
    check_share(exclude_share, "exclude_share", hint=" (the share of suspects left out of the retraining)")
    keep = np.flatnonzero(~top_share(s, exclude_share))
    opts = task.fit_options(batch_size=shrunk_batch_size(task.batch_size, len(keep), task.num_samples),
                            seed=task.seed if seed is None else seed)
    if test:
        opts.update(test_images=task.test_images, test_labels=task.test_labels)
    run = _train.fit(task.model, task.images[keep], task.labels[keep], task.epochs if epochs is None else epochs,
                     record=None, **opts)
    probs = _train.predict(run.model, task.images, run.normalization)
    classes = probs.argmax(axis=1).astype(np.int64)
    return (classes, float(run.history["test_acc"][-1])) if test else classes
