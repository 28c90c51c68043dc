"""Input checks shared by the whole library, in one place.

Every public function of :mod:`mislabel` that takes labels, a class count, a
share (noise rate), a seed, a count or an output file checks it with one of
these, so a wrong value gives the same clear error wherever it is passed. Each
check raises ``ValueError`` naming the argument (``name``) and what was given,
and returns the value in its canonical type.

================================  ============================================
check                             accepts
================================  ============================================
:func:`as_int_labels`             1-D non-empty integer class indices
:func:`check_num_classes`         an integer >= 2
:func:`check_share`               a real number in [0, 1) or (0, 1)
:func:`check_positive_int`        an integer >= 1
:func:`check_seed`                an integer >= 0
:func:`check_output_file`         a path that can be written as a file
================================  ============================================

A ``bool`` is refused wherever a number is expected: ``True`` passed as a count
or a seed is almost always a mistaken argument.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

__all__ = ["as_int_labels", "check_num_classes", "check_share", "check_positive_int", "check_seed",
           "check_output_file"]


def _is_int(value) -> bool:
    return not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, np.integer))


def as_int_labels(labels, name: str = "labels", num_classes: int | None = None) -> np.ndarray:
    """Validate class labels and return them as a 1-D int64 NumPy array.

    Parameters
    ----------
    labels : array-like or torch.Tensor, shape (N,)
        Integer class indices (integer-valued floats are accepted).
    name : str
        Argument name used in the error message.
    num_classes : int, optional
        When given, every label must be below it.

    Returns
    -------
    numpy.ndarray, shape (N,), int64

    Raises
    ------
    ValueError
        If ``labels`` is not 1-D, empty, not integer-valued, negative, or >= ``num_classes``.
    """
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D of shape (N,), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty: need at least one sample")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} must hold integer class indices, got non-integer floats")
    elif arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.min() < 0:
        raise ValueError(f"{name} has negative class index {arr.min()}; labels must be in [0, num_classes)")
    if num_classes is not None and arr.max() >= num_classes:
        raise ValueError(
            f"{name} has class index {arr.max()} but num_classes={num_classes}; labels must be in [0, {num_classes})"
        )
    return arr


def check_num_classes(value, name: str = "num_classes", hint: str = "") -> int:
    """Return ``value`` as an int if it is an integer >= 2.

    Parameters
    ----------
    value : int or numpy integer
    name : str
        Argument name used in the error message.
    hint : str
        Appended to "must be an integer >= 2", e.g. ``" (or None to take it from the logits)"``.

    Raises
    ------
    ValueError
        If ``value`` is not an integer >= 2 (a bool is refused).
    """
    if not _is_int(value) or value < 2:
        raise ValueError(f"{name} must be an integer >= 2{hint}, got {value!r}")
    return int(value)


def check_share(value, name: str, *, zero: bool = False, hint: str = "") -> float:
    """Return ``value`` as a float if it is a share: in [0, 1) with ``zero=True``, else in (0, 1).

    Parameters
    ----------
    value : int or float
    name : str
        Argument name used in the error message.
    zero : bool
        Whether 0 is allowed (a noise rate of 0 flips nothing; a detector needs some flips).
    hint : str
        Appended to the message, e.g. ``" (the chapter compares flipped with clean samples)"``.

    Raises
    ------
    ValueError
        If ``value`` is not a real number in the range (NaN, a bool or a string is refused too).
    """
    interval = "[0, 1)" if zero else "(0, 1)"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be in {interval}{hint}, got {value!r}")
    out = float(value)
    if not ((0.0 <= out if zero else 0.0 < out) and out < 1.0):   # also rejects NaN
        raise ValueError(f"{name} must be in {interval}{hint}, got {value!r}")
    return out


def check_positive_int(value, name: str, hint: str = "") -> None:
    """Raise ValueError unless ``value`` is a positive int or NumPy integer (a bool is refused).

    Parameters
    ----------
    value : object
    name : str
        Argument name used in the error message.
    hint : str
        Appended to "must be a positive integer" in the message, e.g. " (the size of the training set)".

    Raises
    ------
    ValueError
        If ``value`` is not a positive integer.
    """
    if not _is_int(value) or value < 1:
        raise ValueError(f"{name} must be a positive integer{hint}, got {value!r}")


def check_seed(seed, name: str = "seed") -> int:
    """Validate a random seed and return it as a Python int.

    Parameters
    ----------
    seed : int or numpy integer
        Non-negative.
    name : str
        Argument name used in the error message.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        If ``seed`` is not a non-negative integer (a bool is refused).
    """
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {seed!r}")
    return int(seed)


def check_output_file(path: str | os.PathLike, example: str) -> Path:
    """Refuse, before anything is written, a file path that cannot be written as a file.

    Parameters
    ----------
    path : str or Path
        Where a file is about to be written (missing folders above it may be created later).
    example : str
        A file name to suggest inside ``path`` when it is a folder, e.g. ``"dynamics.npz"``.

    Returns
    -------
    pathlib.Path
        ``path`` as a :class:`~pathlib.Path`.

    Raises
    ------
    ValueError
        If ``path`` is an existing folder, or one of the folders above it is an existing file.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give the path of a file to write, such as {path / example}")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"cannot write {path}: {parent} is a file, not a folder; give a path whose "
                                 f"folders are folders (e.g. {parent.parent / path.name})")
            break
    return path
