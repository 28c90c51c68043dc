"""The per-batch arithmetic of :class:`~mislabel.dynamics.DynamicsRecorder`: softmax of the given
label, AUM margin, runner-up class and class probabilities from a batch of logits, in torch
(:func:`batch_values`, any device) and in NumPy (:func:`batch_values_np`, faster on the CPU)."""
from __future__ import annotations

import numpy as np
import torch


def batch_values(zt: torch.Tensor, labels: torch.Tensor, margins: bool, full: bool):
    """The values the recorder keeps for a batch of B samples.

    Parameters
    ----------
    zt : Tensor of shape (C, B), float32, contiguous
        The logits, transposed; overwritten (the reductions over classes run along the outer
        axis, vectorised across samples, with no large temporaries). A NaN column stays NaN.
    labels : Tensor of shape (B,), int64
    margins, full : bool
        Whether to compute the margins with the runner-up classes, and the class probabilities.

    Returns
    -------
    given : Tensor of shape (B,), float32
        Softmax probability of the given label.
    margin, runner : Tensor of shape (B,), float32, or None
        Given-label logit minus the largest other logit, and the class of that logit (as float32).
    probs : Tensor of shape (B, C), float16, or None
        All class probabilities.
    """
    lab = labels[None, :]
    zy = zt.gather(0, lab)               # (1, B) given-label logits
    m = zt.amax(0)
    margin = runner = probs = None
    if margins:
        zt.scatter_(0, lab, float("-inf"))
        top, idx = zt.max(0)
        margin = (zy - top).squeeze(0)
        runner = idx.to(torch.float32)
        zt.scatter_(0, lab, zy)
    e = zt.sub_(m).exp_()                # a NaN column (unseen sample) stays NaN
    s = e.sum(0)
    given = e.gather(0, lab).squeeze(0).div_(s)
    if full:
        probs = e.div_(s).t().to(torch.float16)
    return given, margin, runner, probs


def _first_weights(C: int):
    """(C, 1) weights C, C-1, ..., 1 in the smallest unsigned dtype holding C: the largest weight among the
    classes equal to a column's maximum marks the first of them."""
    dtype = np.uint8 if C < 256 else np.uint16 if C < 65536 else np.uint32
    return np.arange(C, 0, -1, dtype=dtype)[:, None]


def batch_values_np(zt, labels, margins: bool, full: bool, finite: bool = False):
    """:func:`batch_values` in NumPy, for the CPU: the same values (to float32 rounding), about twice as fast
    there (NumPy's exp, transposes and comparisons are faster on the CPU than torch's at one thread).

    Without ``full``, the given label's probability is ``1 / sum_c exp(z_c - z_y)``: one pass fewer than
    subtracting the maximum, and as stable (the sum is >= 1; a term that overflows gives 0, the limit).

    Parameters
    ----------
    zt : ndarray of shape (C, B), float32, C-contiguous
        The logits, transposed; overwritten.
    labels : ndarray of shape (B,), int64, in [0, C)
    margins, full : bool
        As :func:`batch_values`.
    finite : bool
        Whether every logit is known to be finite (checked): then no NaN is looked for.

    Returns
    -------
    given, margin, runner, probs : ndarrays
        As :func:`batch_values` (``runner`` is NaN wherever ``margin`` is: a NaN logit); ``margin``, ``runner``
        and ``probs`` are None unless asked for.
    """
    C, B = zt.shape
    flat = labels * B
    flat += np.arange(B)                 # positions of the given labels in zt
    zf = zt.reshape(-1)
    zy = zf[flat]
    margin = runner = probs = top = None
    if margins:
        zf[flat] = -np.inf               # the other classes only, until restored (full) or for good
        top = zt.max(0)                  # NaN propagates: a NaN column stays NaN
        # the first class at the maximum, as torch.max (argmax along the short axis is slow in NumPy)
        first = zt == top
        if C < 256:
            first = first.view(np.uint8)
            first *= _first_weights(C)
        else:
            first = first * _first_weights(C)
        runner = (C - first.max(0)).astype(np.float32)
        margin = zy - top
        if not finite:
            runner[np.isnan(margin)] = np.nan
        if full:
            zf[flat] = zy
    with np.errstate(over="ignore", invalid="ignore"):
        if full:
            zt -= zt.max(0) if top is None else np.maximum(zy, top)   # minus the column's maximum (NaN stays)
            np.exp(zt, out=zt)
            s = zt.sum(0)
            given = zf[flat] / s
            zt /= s
            probs = zt.T.astype(np.float16)
        else:
            zt -= zy                     # (with margins, the given label's entry is -inf: exp gives 0)
            np.exp(zt, out=zt)
            s = zt.sum(0)
            if margins:
                s += 1.0
            given = np.reciprocal(s, out=s)
    return given, margin, runner, probs
