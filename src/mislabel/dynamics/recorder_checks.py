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
    """Validate one ``update()`` batch (the recorder's ``check=True``): :func:`check_batch_shapes`, then
    :func:`check_batch_values`.

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
    check_batch_shapes(logits, labels, sample_ids, num_classes, first_classes)
    if logits.shape[0]:
        check_batch_values(logits, labels, sample_ids, num_samples, warned)


_GOOD_DTYPES: set = set()   # (logits, labels, sample_ids) dtypes that passed the dtype checks


def check_batch_shapes(logits: torch.Tensor, labels: torch.Tensor, sample_ids: torch.Tensor,
                       num_classes: int | None, first_classes: int | None) -> None:
    """The checks of :func:`check_batch` that read no values (no kernel, no host sync): dimensions,
    shapes, dtypes and the number of classes (not checked for an empty batch)."""
    if logits.ndim != 2:
        raise ValueError(f"logits must be 2-D (B, C), got shape {tuple(logits.shape)}")
    B, C = logits.shape
    if labels.shape != (B,) or sample_ids.shape != (B,):
        raise ValueError(f"labels and sample_ids must have shape ({B},) to match logits; got "
                         f"{tuple(labels.shape)} and {tuple(sample_ids.shape)}")
    dtypes = (logits.dtype, labels.dtype, sample_ids.dtype)
    if dtypes not in _GOOD_DTYPES:
        _check_dtypes(*dtypes)
        _GOOD_DTYPES.add(dtypes)
    if C < 2:
        raise ValueError(f"logits need at least 2 classes, got C={C}")
    if B == 0:
        return
    if num_classes and C != num_classes:
        raise ValueError(f"logits have {C} classes but the recorder was built with num_classes={num_classes}")
    if first_classes is not None and C != first_classes:
        raise ValueError(classes_changed(C, first_classes))


def _check_dtypes(logits: torch.dtype, labels: torch.dtype, sample_ids: torch.dtype) -> None:
    """The dtype checks of :func:`check_batch_shapes`."""
    if logits.is_complex:
        raise ValueError(f"logits must be real numbers, got dtype {logits}")
    if sample_ids == torch.bool:
        raise ValueError("sample_ids is a boolean tensor (a mask?); pass the integer index of each row in the "
                         "training set, in [0, num_samples) (e.g. the index your Dataset returns with each "
                         "sample)")
    if labels == torch.bool:
        raise ValueError("labels is a boolean tensor; pass integer class indices in [0, C) (e.g. labels.long() "
                         "for two classes 0/1)")
    if labels.is_floating_point or sample_ids.is_floating_point or labels.is_complex or sample_ids.is_complex:
        raise ValueError("labels and sample_ids must be integer tensors")


def check_batch_values(logits: torch.Tensor, labels: torch.Tensor, sample_ids: torch.Tensor, num_samples: int,
                       warned: set, stacklevel: int = 4) -> None:
    """The checks of :func:`check_batch` that read the values of a non-empty batch whose shapes passed
    :func:`check_batch_shapes`: finite logits, labels in [0, C), ids in [0, num_samples); and the warning
    about probabilities passed as logits (by default blaming the caller of ``update()``)."""
    C = logits.shape[1]
    lg = logits.detach() if logits.dtype != torch.bool else logits.to(torch.uint8)
    # two host syncs for all range checks: min/max of the logits (NaN propagates), and of labels and ids
    lo, hi = torch.stack(torch.aminmax(lg)).tolist()
    ids_dev = sample_ids.to(labels.device) if sample_ids.device != labels.device else sample_ids
    ymin, ymax, imin, imax = torch.stack([*torch.aminmax(labels), *torch.aminmax(ids_dev)]
                                         ).to(torch.int64).tolist()
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError("logits contain NaN or inf (the model diverged?); lower the learning rate")
    problem = range_problem(ymin, ymax, imin, imax, C, num_samples)
    if problem:
        raise ValueError(problem)
    if lo >= 0 and hi <= 1 + 1e-2 and "probabilities" not in warned:
        check_probabilities(lg, warned, stacklevel + 1)


def range_problem(ymin: int, ymax: int, imin: int, imax: int, num_classes: int, num_samples: int) -> str | None:
    """The error message for labels in ``[ymin, ymax]`` or sample ids in ``[imin, imax]`` outside their
    ranges (labels first), or None if both are in range."""
    if ymin < 0 or ymax >= num_classes:
        return (f"labels must be in [0, {num_classes}) for logits with {num_classes} classes, got range "
                f"[{int(ymin)}, {int(ymax)}]")
    if imin < 0 or imax >= num_samples:
        return f"sample_ids must be in [0, {num_samples}), got range [{int(imin)}, {int(imax)}]"
    return None


def check_probabilities(logits: torch.Tensor, warned: set, stacklevel: int = 5) -> None:
    """Warn (once) if every row is non-negative and sums to 1: softmax outputs passed as logits.

    By default the warning blames the caller of ``update()`` (through ``update -> check_batch ->
    check_batch_values -> check_probabilities``)."""
    x = logits.detach().to(torch.float32)
    tol = 1e-3 if logits.dtype in (torch.float32, torch.float64) else 1e-2
    sums_to_one = float((x.sum(1) - 1).abs().max()) <= tol
    # rows of only 0s and 1s (one-hot toy logits) are ambiguous: not reported
    if sums_to_one and bool(((x > 0) & (x < 1)).any()):
        warn_once(warned, "probabilities", (
            "update() received what look like probabilities: every row of the batch is non-negative and "
            "sums to 1. update() expects logits (the model's raw outputs, before softmax), so the recorded "
            "probabilities would be wrong; drop the final softmax from the model's output, or pass "
            "torch.log(probs)"), stacklevel=stacklevel)


def warn_if_per_batch(seen: int, num_samples: int, warned: set, stacklevel: int) -> None:
    """Warn (once) if an epoch just closed updated only ``seen`` < N / 2 of the samples (N >= 8)."""
    if "per-batch" in warned or num_samples < 8:
        return
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


def never_recorded(probs: np.ndarray) -> np.ndarray:
    """The ids of the samples whose row of the (N, T) ``probs`` is NaN at every epoch (never recorded)."""
    return np.nonzero(np.isnan(probs).all(axis=1))[0]


def never_recorded_message(ids: np.ndarray, num_samples: int, coverage: list, max_batch: int) -> str:
    """The error for samples ``ids`` never passed to ``update()``, naming the likely cause.

    Parameters
    ----------
    ids : ndarray of shape (K,), int
        The never-recorded sample ids, ascending (K >= 1).
    num_samples : int
    coverage : list of (int, int)
        Per closed epoch: rows passed to ``update()`` and distinct samples among them.
    max_batch : int
        The largest batch passed to ``update()``.
    """
    k = len(ids)
    head = f"{k} samples were never recorded (e.g. ids {ids[:5].tolist()}), out of num_samples={num_samples}"
    drop = "; or pass unseen='drop' to result() to get the Dynamics of the recorded samples only"
    repeats = [(r, s) for r, s in coverage if r > s]
    tail = ids[0] == num_samples - k and ids[-1] == num_samples - 1
    if repeats:
        r, s = repeats[0]
        return (f"{head}: in {len(repeats)} of {len(coverage)} epochs update() received some samples more than "
                f"once (e.g. {r} rows for {s} distinct samples), so the loader draws samples with replacement "
                "(WeightedRandomSampler, RandomSampler(replacement=True)) and leaves others out at random. Every "
                "sample id in [0, num_samples) must appear in at least one update(): train with a sampler that "
                f"covers the dataset (or record a separate pass over all samples each epoch){drop}")
    if tail and k < max_batch:
        return (f"{head}: the last {k} sample ids never came. A DataLoader with drop_last=True and no shuffling "
                "leaves the same last samples out of every epoch: pass every sample at least once (e.g. "
                f"drop_last=False){drop}")
    if tail:
        return (f"{head}: no id >= {num_samples - k} ever came; is num_samples={num_samples} larger than the "
                f"training set? Build the recorder with num_samples=len(train_set){drop}")
    return (f"{head}: every epoch passed at most {max((s for _, s in coverage), default=0)} distinct samples to "
            "update(), so the loader covers only part of the dataset (SubsetRandomSampler, a Subset, a "
            "DistributedSampler shard recorded on one process, a filter in the loop). Every sample id in "
            "[0, num_samples) must appear in at least one update(): record every sample, or build the recorder "
            f"for the subset with its own ids in [0, len(subset)){drop}")


def as_batch_tensor(value, name: str) -> torch.Tensor:
    """``value`` as a tensor: a tensor as it is, anything else (NumPy array, list) as a fresh copy.

    A copy, because the deferred recorder keeps the batch until ``next_epoch()``: a NumPy buffer that the
    loop refills per batch would otherwise be recorded with its last contents.

    Raises
    ------
    ValueError
        If ``value`` is not numeric (``name`` names the argument).
    """
    if isinstance(value, torch.Tensor):
        return value
    try:
        arr = np.array(value, copy=True)
        if arr.dtype.kind in "biufc":
            return torch.from_numpy(arr if arr.dtype.isnative else arr.astype(arr.dtype.newbyteorder("=")))
        return torch.tensor(arr)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{name} must be a tensor or an array of numbers, got {type(value).__name__} "
                         f"({exc})") from None


def check_labels_match(labels: np.ndarray | None, recorded: np.ndarray) -> None:
    """Raise ValueError if ``labels`` (given to ``result()``) differ from those passed to ``update()``."""
    if labels is not None and not np.array_equal(labels, recorded):
        ids = np.nonzero(labels != recorded)[0]
        raise ValueError(f"labels differ from the labels passed to update() for {len(ids)} of "
                         f"{len(recorded)} samples (e.g. ids {ids[:5].tolist()}); the probabilities, "
                         "margins and runner-up classes were recorded for the labels passed to update(), so "
                         "they would not match these. Leave labels out to use the recorded ones; to use "
                         "other labels, record again, passing them to update()")
