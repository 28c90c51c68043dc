"""The per-batch arithmetic of :class:`~mislabel.dynamics.DynamicsRecorder`: softmax of the given
label, AUM margin, runner-up class and class probabilities from a batch of logits."""
from __future__ import annotations

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
