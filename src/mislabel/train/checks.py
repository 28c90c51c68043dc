"""Checks of the inputs and settings of :func:`mislabel.train.fit` (shared with ``fit_ddp``)."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn

from .._validation import as_int_labels, check_positive_int, check_seed

__all__ = ["RECORD_MODES", "TrainingDivergedError", "check_inputs", "check_test", "check_settings", "check_finite"]

RECORD_MODES = ("train", "eval", None)


class TrainingDivergedError(ValueError):
    """Training produced a NaN or inf loss (or weights): the learning rate is too high for the data."""


def check_inputs(images, labels, epochs, record, num_classes) -> tuple[torch.Tensor, np.ndarray, int, int]:
    """Validate the inputs of :func:`fit`.

    Parameters
    ----------
    images : array-like of shape (N, C, H, W)
    labels : array-like of shape (N,), integer
    epochs : int
    record : {"train", "eval", None}
    num_classes : int or None
        None: ``max(labels) + 1``, at least 2.

    Returns
    -------
    images : Tensor of shape (N, C, H, W)
    labels : ndarray of shape (N,), int64
    N, C : int
        Number of samples and of classes.

    Raises
    ------
    ValueError
        If ``record`` is not in :data:`RECORD_MODES`, ``epochs`` is not a positive integer,
        ``images`` is not 4-D or is empty, or ``labels`` are not valid class ids of matching length.
    """
    if record not in RECORD_MODES:
        raise ValueError(f"record must be one of 'train', 'eval' or None, got {record!r}")
    if not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    images = torch.as_tensor(images)
    if images.ndim != 4:
        raise ValueError(f"images must be 4-D (N, C, H, W), got shape {tuple(images.shape)}")
    N = images.shape[0]
    if N == 0:
        raise ValueError("images is empty: need at least one sample")
    y_np = as_int_labels(labels, "labels")
    if len(y_np) != N:
        raise ValueError(f"labels has {len(y_np)} entries but images has {N}; they must match")
    C = int(num_classes or max(int(y_np.max()) + 1, 2))
    if y_np.max() >= C:
        raise ValueError(f"labels contain class {y_np.max()} but num_classes={C}")
    return images, y_np, N, C


def check_test(images: torch.Tensor, test_images, test_labels) -> None:
    """Validate held-out data for :func:`fit`: both or neither given, same per-sample shape, equal lengths.

    Parameters
    ----------
    images : Tensor of shape (N, C, H, W)
        The training images (already checked by :func:`check_inputs`).
    test_images : array-like of shape (M, C, H, W) or None
    test_labels : array-like of shape (M,) or None

    Raises
    ------
    ValueError
        Saying which argument is wrong and how.
    """
    if test_images is None and test_labels is None:
        return
    if test_images is None or test_labels is None:
        given, missing = ("test_images", "test_labels") if test_labels is None else ("test_labels", "test_images")
        raise ValueError(f"{given} was given without {missing}: pass both (test accuracy is computed from the "
                         "pair) or neither")
    shape = tuple(test_images.shape) if hasattr(test_images, "shape") else tuple(torch.as_tensor(test_images).shape)
    if len(shape) != 4 or shape[1:] != tuple(images.shape[1:]):
        raise ValueError(f"test_images must have shape (M, {', '.join(map(str, images.shape[1:]))}) like the "
                         f"training images (N, C, H, W), got {shape}")
    n_labels = len(as_int_labels(test_labels, "test_labels"))
    if n_labels != shape[0]:
        raise ValueError(f"test_labels has {n_labels} entries but test_images has {shape[0]}; they must match")


def check_settings(batch_size, lr, seed) -> tuple[int, object, int]:
    """Validate the SGD settings of :func:`fit`.

    Returns
    -------
    batch_size : int
    lr : the given object, unchanged
        The optimiser receives exactly what the caller passed.
    seed : int

    Raises
    ------
    ValueError
        If ``batch_size`` is not a positive integer, ``lr`` not a finite number >= 0, or
        ``seed`` not a non-negative integer.
    """
    check_positive_int(batch_size, "batch_size")
    number = isinstance(lr, (int, float, np.integer, np.floating)) or (
        isinstance(lr, torch.Tensor) and lr.numel() == 1 and lr.is_floating_point())
    if isinstance(lr, (bool, np.bool_)) or not number or not math.isfinite(float(lr)) or float(lr) < 0:
        raise ValueError(f"lr must be a finite number >= 0, got {lr!r}")
    return int(batch_size), lr, check_seed(seed)


def check_finite(loss: float, epoch: int, lr, model: nn.Module | None = None) -> None:
    """Raise when training diverged: the epoch's mean loss is NaN or inf, or (with ``model``) a weight is.

    :func:`fit` calls it after every epoch with the mean loss it already brings to the host,
    and passes the model after the last epoch only.

    Parameters
    ----------
    loss : float
        Mean training loss of epoch ``epoch`` (0-based).
    epoch : int
    lr : float
        The initial learning rate, quoted in the message.
    model : nn.Module, optional
        Also check its parameters.

    Raises
    ------
    TrainingDivergedError
        Saying at which epoch training diverged and to lower the learning rate.
    """
    what = None
    if not math.isfinite(loss):
        what = f"the training loss is {loss}"
    elif model is not None:
        params = [p.detach().isfinite().all() for p in model.parameters()]
        if params and not bool(torch.stack(params).all()):
            what = "the model's weights are NaN or inf"
    if what is not None:
        raise TrainingDivergedError(f"training diverged at epoch {epoch + 1}: {what}; lower the learning rate "
                                    f"(lr={lr}) or check the inputs for NaN/inf")
