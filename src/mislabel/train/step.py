"""The model's pieces of training: building it, one SGD step, and no-grad passes (accuracy, predict)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import models as _models
from .._utils import amp_enabled, resolve_device
from .augment import batch, to_float

__all__ = ["eval_batch_size", "forward", "sgd_step", "accuracy", "predict", "build_model", "sgd"]


def eval_batch_size(device: torch.device) -> int:
    """Batch size of the no-grad passes (``record="eval"``, test accuracy, :func:`predict`).

    Returns
    -------
    int
        256 on CPU, else 1024.
    """
    return 256 if device.type == "cpu" else 1024


def forward(model: nn.Module, x: torch.Tensor, use_amp: bool, cache: bool = True) -> torch.Tensor:
    """Logits of one batch, float32: ``model(x)`` under bfloat16 autocast when ``use_amp``.

    Parameters
    ----------
    model : nn.Module
    x : Tensor of shape (B, C, H, W), float32
    use_amp : bool
    cache : bool
        Autocast's cache of weights cast to bfloat16; off inside a CUDA graph capture.

    Returns
    -------
    Tensor of shape (B, num_classes), float32
    """
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=use_amp, cache_enabled=cache):
        logits = model(x)
    return logits.float()


def sgd_step(model: nn.Module, opt: torch.optim.Optimizer, x_all: torch.Tensor, y_all: torch.Tensor,
             idx: torch.Tensor, pad: int, flip: bool, generator: torch.Generator | None,
             use_amp: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One optimisation step on rows ``idx`` of the device-resident data.

    Parameters
    ----------
    model : nn.Module
    opt : torch.optim.Optimizer
    x_all : Tensor of shape (N, C, H, W), float32
    y_all : Tensor of shape (N,), int64
    idx : Tensor of shape (B,), int64
    pad, flip, generator
        Batched augmentation (:func:`~mislabel.train.random_crop_flip`).
    use_amp : bool
        bfloat16 autocast.

    Returns
    -------
    logits : Tensor of shape (B, num_classes), float32, detached
    labels : Tensor of shape (B,), int64
    loss : Tensor of shape (), detached (no host synchronisation)
    """
    xb, yb = batch(x_all, y_all, idx, pad, flip, generator)
    logits = forward(model, xb, use_amp)
    loss = F.cross_entropy(logits, yb)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return logits.detach(), yb, loss.detach()


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, use_amp: bool) -> float:
    """Fraction of rows of ``x`` whose arg-max logit is ``y``, in eval mode; leaves ``model`` in train mode.

    Parameters
    ----------
    model : nn.Module
    x : Tensor of shape (M, C, H, W), float32, normalised, on the model's device
    y : Tensor of shape (M,), int64
    use_amp : bool
        bfloat16 autocast.

    Returns
    -------
    float
    """
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=x.device)
    eb = eval_batch_size(x.device)
    for i in range(0, len(x), eb):
        correct += (forward(model, x[i:i + eb], use_amp).argmax(1) == y[i:i + eb]).sum()
    model.train()
    return int(correct) / len(x)


@torch.no_grad()
def predict(model: nn.Module, images, normalization, batch_size: int | None = None, device=None,
            amp: bool = False) -> np.ndarray:
    """Class probabilities of ``images``.

    Parameters
    ----------
    model : nn.Module
    images : Tensor of shape (N, C, H, W), uint8 (or float already scaled)
    normalization : (mean, std)
        Per-channel statistics, as in ``TrainResult.normalization``.
    batch_size : int, optional
        Default: :func:`eval_batch_size` (256 on CPU, else 1024).
    device : str, optional
        Default: where the model is.
    amp : bool
        bfloat16 autocast, as in :func:`~mislabel.train.fit`.

    Returns
    -------
    ndarray of shape (N, num_classes), float32
    """
    device = resolve_device(device) if device is not None else next(model.parameters()).device
    batch_size = batch_size or eval_batch_size(device)
    use_amp = amp_enabled(amp, device)
    was = model.training
    model.eval()
    out = []
    imgs = torch.as_tensor(images)
    for i in range(0, len(imgs), batch_size):
        xb = to_float(imgs[i:i + batch_size], *normalization, device=device).contiguous(
            memory_format=torch.channels_last)
        out.append(torch.softmax(forward(model, xb, use_amp), 1).cpu())
    model.train(was)
    return torch.cat(out).numpy()


def build_model(model, images: torch.Tensor, num_classes: int, device: torch.device) -> tuple[nn.Module, str]:
    """The module on ``device`` in channels-last format, and its name.

    Parameters
    ----------
    model : str or nn.Module
        A name for :func:`mislabel.models.build`, built for the shape of ``images``, or a module.
    images : Tensor of shape (N, C, H, W)
    num_classes : int
    device : torch.device

    Returns
    -------
    model : nn.Module
    name : str
        ``model`` if it is a name, else the module's class name.

    Raises
    ------
    ValueError
        If ``model`` is an unknown name.
    """
    name = model if isinstance(model, str) else type(model).__name__
    if isinstance(model, str):
        model = _models.build(model, in_channels=images.shape[1], num_classes=num_classes,
                              image_size=(images.shape[2], images.shape[3]))
    # channels-last: faster convolutions on CPU, and preferred by cuDNN
    return model.to(device).to(memory_format=torch.channels_last), name


def sgd(model: nn.Module, epochs: int, lr: float, momentum: float, weight_decay: float, milestones):
    """SGD (unfused) and its step schedule: the learning rate is divided by 10 at each fraction of
    ``epochs`` in ``milestones``.

    Returns
    -------
    opt : torch.optim.SGD
    sched : torch.optim.lr_scheduler.MultiStepLR
        Milestones that round to epoch 0 or to ``epochs`` or later are dropped.
    """
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    steps = sorted({int(round(m * epochs)) for m in milestones if 0 < int(round(m * epochs)) < epochs})
    return opt, torch.optim.lr_scheduler.MultiStepLR(opt, milestones=steps, gamma=0.1)
