"""A training loop with a method's own loss: what DY-Bootstrap and Data Parameters train with.

The same pieces as :func:`mislabel.train.fit` (model, device-resident data, batched augmentation,
SGD with a step schedule, seeding), but the loss of each batch comes from the method
(``loss_fn``), which may also act before every epoch (``before_epoch``) and after every SGD step
(``after_step``). Records no dynamics.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
from tqdm.auto import tqdm

from .._utils import resolve_device, set_seed
from ..train import accuracy, batch, build_model, check_finite, device_data, eval_batch_size, forward, sgd
from .core import Task

__all__ = ["CustomRun", "train_custom", "eval_logits", "per_sample_loss"]


@dataclass
class CustomRun:
    """What :func:`train_custom` returns.

    Attributes
    ----------
    model : nn.Module
        Trained, in eval mode.
    x_all : Tensor of shape (N, C, H, W), float32
        The normalised training images, on the training device (un-augmented).
    y_all : Tensor of shape (N,), int64
    test_acc : float or None
        Final test accuracy (None without test data).
    train_loss : list of float
        Mean loss of each epoch.
    """

    model: nn.Module
    x_all: torch.Tensor
    y_all: torch.Tensor
    test_acc: float | None
    train_loss: list


@torch.no_grad()
def eval_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Logits of ``x`` (N, C, H, W) float32 in eval mode, in no-grad batches; shape (N, num_classes).

    Leaves the model in the mode it was in.
    """
    was = model.training
    model.eval()
    eb = eval_batch_size(x.device)
    out = torch.cat([forward(model, x[i:i + eb], False) for i in range(0, len(x), eb)])
    model.train(was)
    return out


def train_custom(task: Task, *, loss_fn, before_epoch=None, after_step=None, desc: str = "train") -> CustomRun:
    """Train a fresh ``task.model`` on ``task.images`` / ``task.labels`` with a custom loss.

    Parameters
    ----------
    task : Task
        Its images, labels, model name and SGD settings (``epochs``, ``batch_size``, ``lr``,
        ``momentum``, ``weight_decay``, ``milestones``, ``augment``, ``seed``, ``device``).
    loss_fn : callable
        ``loss_fn(logits, labels, idx, epoch) -> Tensor ()``: logits (B, C) float32 with gradient,
        labels (B,) int64, idx (B,) int64 sample indices, epoch 0-based.
    before_epoch : callable, optional
        ``before_epoch(epoch, model, x_all, y_all)``, before each epoch's first batch.
    after_step : callable, optional
        ``after_step(idx, labels)``, after each SGD step of the model.
    desc : str
        Progress-bar label.

    Returns
    -------
    CustomRun

    Raises
    ------
    TrainingDivergedError
        If an epoch's mean loss is NaN or inf (lower ``task.lr``).
    """
    set_seed(task.seed)
    device = resolve_device(task.device)
    images = task.images
    C, N, bs = task.num_classes, task.num_samples, task.batch_size
    model, _ = build_model(task.model, images, C, device)
    _, x_all, y_all, pad, flip, test = device_data(images, task.labels, C, device, task.augment,
                                                   task.test_images, task.test_labels)
    opt, sched = sgd(model, task.epochs, task.lr, task.momentum, task.weight_decay, task.milestones)
    gen = torch.Generator(device=device)
    gen.manual_seed(task.seed)
    losses = []
    for epoch in tqdm(range(task.epochs), desc=desc, disable=not task.progress, leave=False):
        if before_epoch is not None:
            before_epoch(epoch, model, x_all, y_all)
        model.train()
        total = torch.zeros((), device=device)
        perm = torch.randperm(N, device=device, generator=gen)
        for i in range(0, N, bs):
            idx = perm[i:i + bs]
            xb, yb = batch(x_all, y_all, idx, pad, flip, gen)
            loss = loss_fn(forward(model, xb, False), yb, idx, epoch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if after_step is not None:
                after_step(idx, yb)
            total += loss.detach() * len(idx)
        sched.step()
        losses.append(float(total) / N)
        check_finite(losses[-1], epoch, task.lr, model if epoch == task.epochs - 1 else None)
    test_acc = accuracy(model, *test, False) if test is not None else None   # leaves the model in train mode
    model.eval()
    return CustomRun(model, x_all, y_all, test_acc, losses)


def per_sample_loss(model: nn.Module, x_all: torch.Tensor, y_all: torch.Tensor) -> np.ndarray:
    """Cross-entropy of each sample's given label in eval mode on un-augmented inputs: (N,) float64."""
    logits = eval_logits(model, x_all)
    return torch.nn.functional.cross_entropy(logits, y_all, reduction="none").double().cpu().numpy()
