"""Input checks and misuse warnings of :class:`~mislabel.dynamics.DynamicsRecorder`.

Functions of plain values, so that the recorder itself reads as its recording path. Each warning
is issued at most once per recorder: ``warned`` is the recorder's set of warning kinds already
issued. A ``stacklevel`` argument is the one the caller would pass to ``warnings.warn``.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from .._utils import jsonable
from .._validation import as_int_labels, check_num_classes, check_positive_int


def check_recorder_args(num_samples, num_classes, store_full, full_path) -> bool:
    """Validate ``DynamicsRecorder`` arguments; returns ``store_full`` (True also when ``full_path`` is given).

    Raises
    ------
    ValueError
        If ``num_samples`` is not a positive integer, ``num_classes`` is not None
        or an integer >= 2, ``full_path`` is a folder, or full probabilities are
        to be stored without ``num_classes``.
    """
    check_positive_int(num_samples, "num_samples", " (the size of the training set)")
    if num_classes is not None:
        check_num_classes(num_classes, hint=" (or None to take it from the logits)")
    if full_path is not None and Path(full_path).is_dir():
        raise ValueError(f"full_path {str(full_path)!r} is a folder; give the path of the .npy file to write, "
                         "e.g. folder/full.npy")
    store_full = bool(store_full or full_path is not None)
    if store_full and not num_classes:
        raise ValueError("store_full=True needs num_classes")
    return store_full


def warn_once(warned: set, kind: str, message: str, stacklevel: int) -> None:
    """Issue ``message`` as a UserWarning unless a warning of ``kind`` was issued already."""
    if kind not in warned:
        warned.add(kind)
        warnings.warn(message, UserWarning, stacklevel=stacklevel + 1)


def classes_changed(C: int, first: int) -> str:
    """The error message for a batch with ``C`` classes after a first batch with ``first``."""
    return (f"logits have {C} classes but the first batch had {first}; the number of classes "
            "(logits.shape[1]) must stay the same for the whole run (use one recorder per model/head)")


def check_batch(logits: torch.Tensor, labels: torch.Tensor, sample_ids: torch.Tensor, num_samples: int,
                num_classes: int | None, first_classes: int | None, warned: set) -> None:
    """Validate one ``update()`` batch (the recorder's ``check=True``).

    Parameters
    ----------
    logits : Tensor of shape (B, C)
    labels, sample_ids : Tensor of shape (B,), integer
    num_samples : int
        ``sample_ids`` must lie in ``[0, num_samples)``.
    num_classes : int or None
        The recorder's ``num_classes``, if given.
    first_classes : int or None
        C of the first non-empty batch, once there was one.
    warned : set
        Kinds of warnings issued so far (updated).

    Raises
    ------
    ValueError
        For wrong shapes or dtypes, labels or ids out of range, NaN or inf
        logits, or a number of classes other than the recorder's.

    Warns
    -----
    UserWarning
        Once per recorder, if the logits look like probabilities.
    """
    if logits.ndim != 2:
        raise ValueError(f"logits must be 2-D (B, C), got shape {tuple(logits.shape)}")
    B, C = logits.shape
    if C < 2:
        raise ValueError(f"logits need at least 2 classes, got C={C}")
    if labels.shape != (B,) or sample_ids.shape != (B,):
        raise ValueError(f"labels and sample_ids must have shape ({B},) to match logits; got "
                         f"{tuple(labels.shape)} and {tuple(sample_ids.shape)}")
    if sample_ids.dtype == torch.bool:
        raise ValueError("sample_ids is a boolean tensor (a mask?); pass the integer index of each row in the "
                         "training set, in [0, num_samples) (e.g. the index your Dataset returns with each "
                         "sample)")
    if labels.dtype == torch.bool:
        raise ValueError("labels is a boolean tensor; pass integer class indices in [0, C) (e.g. labels.long() "
                         "for two classes 0/1)")
    if labels.dtype.is_floating_point or sample_ids.dtype.is_floating_point:
        raise ValueError("labels and sample_ids must be integer tensors")
    if B == 0:
        return
    lg = logits.detach() if logits.dtype != torch.bool else logits.to(torch.uint8)
    # two host syncs for all range checks: min/max of the logits (NaN propagates), and of labels and ids
    lo, hi = torch.stack(torch.aminmax(lg)).tolist()
    ids_dev = sample_ids.to(labels.device) if sample_ids.device != labels.device else sample_ids
    ymin, ymax, imin, imax = torch.stack([*torch.aminmax(labels), *torch.aminmax(ids_dev)]
                                         ).to(torch.int64).tolist()
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError("logits contain NaN or inf (the model diverged?); lower the learning rate")
    if ymin < 0 or ymax >= C:
        raise ValueError(f"labels must be in [0, {C}) for logits with {C} classes, got range "
                         f"[{int(ymin)}, {int(ymax)}]")
    if imin < 0 or imax >= num_samples:
        raise ValueError(f"sample_ids must be in [0, {num_samples}), got range "
                         f"[{int(imin)}, {int(imax)}]")
    if num_classes and C != num_classes:
        raise ValueError(f"logits have {C} classes but the recorder was built with num_classes={num_classes}")
    if first_classes is not None and C != first_classes:
        raise ValueError(classes_changed(C, first_classes))
    if lo >= 0 and hi <= 1 + 1e-2 and "probabilities" not in warned:
        check_probabilities(lg, warned)


def check_probabilities(logits: torch.Tensor, warned: set) -> None:
    """Warn (once) if every row is non-negative and sums to 1: softmax outputs passed as logits."""
    x = logits.detach().to(torch.float32)
    tol = 1e-3 if logits.dtype in (torch.float32, torch.float64) else 1e-2
    sums_to_one = float((x.sum(1) - 1).abs().max()) <= tol
    # rows of only 0s and 1s (one-hot toy logits) are ambiguous: not reported
    if sums_to_one and bool(((x > 0) & (x < 1)).any()):
        # blames the caller of update() (update -> check_batch -> check_probabilities)
        warn_once(warned, "probabilities", (
            "update() received what look like probabilities: every row of the batch is non-negative and "
            "sums to 1. update() expects logits (the model's raw outputs, before softmax), so the recorded "
            "probabilities would be wrong; drop the final softmax from the model's output, or pass "
            "torch.log(probs)"), stacklevel=4)


def warn_if_per_batch(epoch_probs: torch.Tensor, warned: set, stacklevel: int) -> None:
    """Warn (once) if an epoch just closed updated fewer than half of the samples (N >= 8).

    ``epoch_probs``: the epoch's (N,) given-label probabilities, NaN where not updated.
    """
    num_samples = epoch_probs.shape[0]
    if "per-batch" in warned or num_samples < 8:
        return
    seen = int(torch.count_nonzero(~torch.isnan(epoch_probs)))
    if 2 * seen < num_samples:
        warn_once(warned, "per-batch", (
            f"next_epoch(): only {seen} of the {num_samples} samples were updated in the epoch it "
            "closes; call next_epoch() once per epoch, after all of the epoch's batches, not after each "
            "batch. Samples missing from an epoch are filled by interpolation, so a misplaced "
            "next_epoch() records many mostly interpolated 'epochs'"), stacklevel=stacklevel + 1)


def warn_if_no_epochs(epochs: int, rows: int, num_samples: int, warned: set, stacklevel: int) -> None:
    """Warn (once) if a single epoch received ``rows`` >= 2 N rows: ``next_epoch()`` never called."""
    if epochs == 1 and rows >= 2 * num_samples:
        warn_once(warned, "no-epochs", (
            f"result(): only one epoch was recorded, but update() received {rows} rows in it "
            f"({rows / num_samples:.1f} per sample): was next_epoch() never called? Call "
            "rec.next_epoch() at the end of every epoch, after its batches (a sample updated several times "
            "in one epoch keeps only its last value)"), stacklevel=stacklevel + 1)


def result_meta(meta) -> dict | None:
    """``result(meta=...)`` as a JSON-ready dict (None stays None).

    Raises
    ------
    TypeError
        If ``meta`` is not a mapping (or pairs), or holds a value JSON cannot store.
    """
    if meta is None:
        return None
    if not isinstance(meta, Mapping):
        try:
            meta = dict(meta)
        except (TypeError, ValueError):
            raise TypeError(f"meta must be a dict (a JSON object), got {type(meta).__name__}") from None
    return jsonable(meta, "meta")


def result_labels(labels, num_samples: int) -> np.ndarray | None:
    """``result(labels=...)`` as an (N,) int64 array (None stays None).

    Raises
    ------
    ValueError
        If the labels are not integer class indices, or not one per sample.
    """
    if labels is None:
        return None
    labels = as_int_labels(labels, "labels")
    if labels.shape != (num_samples,):
        raise ValueError(f"labels has {len(labels)} entries but the recorder has num_samples="
                         f"{num_samples}; pass one label per sample (or leave labels out)")
    return labels


def check_all_recorded(probs: np.ndarray) -> None:
    """Raise ValueError if a row of the (N, T) ``probs`` is NaN at every epoch (a sample never recorded)."""
    never = np.isnan(probs).all(axis=1)
    if never.any():
        ids = np.nonzero(never)[0]
        raise ValueError(f"{len(ids)} samples were never recorded (e.g. ids {ids[:5].tolist()}); "
                         "every sample id in [0, num_samples) must appear in at least one update(). A "
                         "DataLoader with drop_last=True and no shuffling leaves the same last samples out "
                         "of every epoch: pass every sample at least once (e.g. drop_last=False)")


def check_labels_match(labels: np.ndarray | None, recorded: np.ndarray) -> None:
    """Raise ValueError if ``labels`` (given to ``result()``) differ from those passed to ``update()``."""
    if labels is not None and not np.array_equal(labels, recorded):
        ids = np.nonzero(labels != recorded)[0]
        raise ValueError(f"labels differ from the labels passed to update() for {len(ids)} of "
                         f"{len(recorded)} samples (e.g. ids {ids[:5].tolist()}); the probabilities, "
                         "margins and runner-up classes were recorded for the labels passed to update(), so "
                         "they would not match these. Leave labels out to use the recorded ones; to use "
                         "other labels, record again, passing them to update()")
