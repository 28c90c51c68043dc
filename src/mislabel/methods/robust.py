"""Robust training methods of the paper's Table 1: each trains its own model, whose test accuracy it reports.

* ``dy_bootstrap`` (Arazo et al. 2019): a beta mixture on the per-sample losses tells, every
  epoch, how likely each sample is noisy; after a warm-up the loss bootstraps the noisy ones
  towards the model's own prediction.
* ``data_parameters`` (Saxena et al. 2019): a learnable temperature per class and per sample
  divides the logits; a wrong label's temperature grows, which softens its pull on the model.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .._validation import check_positive_int
from .beta_mixture import noise_posterior
from .core import MethodCost, MethodResult, Task, register
from .custom_loop import per_sample_loss, train_custom

__all__ = ["dy_bootstrap", "data_parameters", "bootstrap_loss", "sparse_momentum_step", "data_parameter_loss"]


def bootstrap_loss(logits: torch.Tensor, labels: torch.Tensor, noisy: torch.Tensor) -> torch.Tensor:
    """Dynamic hard bootstrapping: ``mean((1 - w) CE(z, y) + w CE(z, argmax z))``.

    Parameters
    ----------
    logits : Tensor of shape (B, C), float
    labels : Tensor of shape (B,), int64
        The given labels ``y``.
    noisy : Tensor of shape (B,), float
        ``w``, each sample's posterior of being noisy, clamped to [1e-4, 1 - 1e-4] as Arazo et al.

    Returns
    -------
    Tensor of shape ()
    """
    w = noisy.to(logits.dtype).clamp(1e-4, 1 - 1e-4)
    own = logits.detach().argmax(dim=1)
    return ((1 - w) * F.cross_entropy(logits, labels, reduction="none")
            + w * F.cross_entropy(logits, own, reduction="none")).mean()


@register("dy_bootstrap", needs=("images",), summary="beta mixture on losses + dynamic hard bootstrapping",
          decision="posterior of the high-loss component > 0.5 (final model)", reference="Arazo et al. 2019")
def dy_bootstrap(task: Task, *, warmup: int | None = None, em_iterations: int = 10) -> MethodResult:
    """DY-Bootstrap: train with dynamic hard bootstrapping guided by a per-epoch beta mixture.

    For the first ``warmup`` epochs the loss is plain cross-entropy. Before every later epoch, each
    sample's cross-entropy is computed in eval mode on its un-augmented image, normalised to
    [0, 1] between its 5th and 95th percentiles, and a two-component beta mixture is fitted by EM
    (:mod:`~mislabel.methods.beta_mixture`); its high-loss posterior ``w`` weighs the
    bootstrapping loss of that epoch (:func:`bootstrap_loss`). Arazo et al. recompute ``w`` of a
    batch from its current loss; we fix it per epoch (the mixture is refitted each epoch either way).

    Parameters
    ----------
    warmup : int, optional
        Epochs of plain cross-entropy, in ``0 .. task.epochs``; default a third of the epochs.
    em_iterations : int
        EM steps per fit.

    Returns
    -------
    MethodResult
        ``scores``: the final model's noisy posterior; ``remove``: posterior > 0.5;
        ``test_acc``: the bootstrapped model's test accuracy (with test data);
        ``details``: ``train_loss`` per epoch, ``warmup``.

    Raises
    ------
    ValueError
        For a bad ``warmup`` or ``em_iterations``.
    """
    warm = math.ceil(task.epochs / 3) if warmup is None else warmup
    if isinstance(warm, bool) or not isinstance(warm, (int, np.integer)) or not 0 <= warm <= task.epochs:
        raise ValueError(f"warmup must be an integer in [0, {task.epochs}] (the task's epochs), got {warmup!r}")
    check_positive_int(em_iterations, "em_iterations")
    state = {"w": None}

    def before_epoch(epoch, model, x_all, y_all):
        if epoch >= warm:
            post, _ = noise_posterior(per_sample_loss(model, x_all, y_all), em_iterations)
            state["w"] = torch.as_tensor(post, dtype=torch.float32, device=x_all.device)

    def loss_fn(logits, labels, idx, epoch):
        if state["w"] is None:
            return F.cross_entropy(logits, labels)
        return bootstrap_loss(logits, labels, state["w"][idx])

    run = train_custom(task, loss_fn=loss_fn, before_epoch=before_epoch, desc="dy-bootstrap")
    post, _ = noise_posterior(per_sample_loss(run.model, run.x_all, run.y_all), em_iterations)
    return MethodResult(post, post > 0.5, MethodCost(trainings=1, epochs=task.epochs), test_acc=run.test_acc,
                        details={"train_loss": run.train_loss, "warmup": int(warm)})


def sparse_momentum_step(param: torch.Tensor, buf: torch.Tensor, rows: torch.Tensor, *, lr: float,
                         momentum: float) -> None:
    """SGD with momentum on rows ``rows`` of ``param`` only, in place; the other rows and their momentum stay.

    ``buf[rows] = momentum * buf[rows] + grad[rows]``, then ``param[rows] -= lr * buf[rows]``: a sample
    outside the batch keeps its value and its momentum (Saxena et al.'s sparse SGD).

    Parameters
    ----------
    param : Tensor of shape (K,), float32, with ``.grad``
    buf : Tensor of shape (K,), float32
        Momentum buffer (zeros at the start).
    rows : Tensor of shape (R,), int64
        Distinct indices.
    lr, momentum : float
    """
    with torch.no_grad():
        buf[rows] = momentum * buf[rows] + param.grad[rows]
        param[rows] -= lr * buf[rows]


@register("data_parameters", needs=("images",), summary="learned per-class and per-sample temperatures",
          decision="the sample's temperature grew above its initial value", reference="Saxena et al. 2019")
def data_parameters(task: Task, *, learn_class: bool = True, lr_class: float = 0.1, lr_inst: float = 0.1,
                    momentum: float = 0.9, wd_class: float = 0.0, wd_inst: float = 0.0,
                    max_temperature: float = 20.0) -> MethodResult:
    """Data Parameters: train with logits divided by learned temperatures; a sample's temperature is its score.

    Every class ``c`` and sample ``i`` has a log-temperature (starting at 0, temperature 1). A batch's
    logits are divided by ``exp(class_log[y_i]) + exp(inst_log[i])`` (``exp(inst_log[i])`` alone with
    ``learn_class=False``), and the loss adds ``0.5 wd sum(log^2)`` over the batch's rows. The
    log-temperatures have their own momentum SGD that updates only the rows in the batch
    (:func:`sparse_momentum_step`) and are clamped to [-log max_temperature, log max_temperature].
    Defaults follow the authors' released code (learning rate 0.1, momentum 0.9, weight decay 0,
    temperatures within [1/20, 20]). Test accuracy is of the model alone (no temperatures at inference).

    Decision (ours; Data Parameters defines none): remove a sample whose learned log-temperature ended
    above its initial value 0. Lowering the temperature sharpens a correct prediction, raising it
    softens a wrong one, so the sign says on which side the training pushed the sample, and the rule
    needs no noise rate.

    Parameters
    ----------
    learn_class : bool
        Also learn per-class temperatures (the authors' joint curriculum).
    lr_class, lr_inst, momentum : float
        The log-temperatures' SGD.
    wd_class, wd_inst : float
        Weight decay on the log-temperatures in the batch.
    max_temperature : float
        > 1.

    Returns
    -------
    MethodResult
        ``scores``: instance log-temperatures; ``test_acc``: the model's test accuracy (with test data);
        ``details``: ``class_log_temperature`` (C,), ``train_loss`` per epoch.

    Raises
    ------
    ValueError
        For a non-positive learning rate, negative weight decay, momentum outside [0, 1) or
        ``max_temperature <= 1``.
    """
    for name, value, ok in (("lr_class", lr_class, lr_class > 0), ("lr_inst", lr_inst, lr_inst > 0),
                            ("wd_class", wd_class, wd_class >= 0), ("wd_inst", wd_inst, wd_inst >= 0),
                            ("momentum", momentum, 0 <= momentum < 1),
                            ("max_temperature", max_temperature, max_temperature > 1)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not ok:
            raise ValueError(f"{name} has an invalid value {value!r} (learning rates > 0, weight decays >= 0, "
                             "momentum in [0, 1), max_temperature > 1)")
    state = {}
    bound = math.log(max_temperature)

    def loss_fn(logits, labels, idx, epoch):
        if not state:
            dev = logits.device
            state.update(cls=torch.zeros(task.num_classes, device=dev, requires_grad=True),
                         inst=torch.zeros(task.num_samples, device=dev, requires_grad=True))
            state.update(cls_buf=torch.zeros_like(state["cls"]), inst_buf=torch.zeros_like(state["inst"]))
        return data_parameter_loss(logits, labels, state["cls"][labels] if learn_class else None,
                                   state["inst"][idx], wd_class=wd_class, wd_inst=wd_inst)

    def after_step(idx, labels):
        sparse_momentum_step(state["inst"], state["inst_buf"], torch.unique(idx), lr=lr_inst, momentum=momentum)
        if learn_class:
            sparse_momentum_step(state["cls"], state["cls_buf"], torch.unique(labels), lr=lr_class,
                                 momentum=momentum)
        for key in ("inst", "cls"):
            state[key].grad = None
            with torch.no_grad():
                state[key].clamp_(-bound, bound)

    run = train_custom(task, loss_fn=loss_fn, after_step=after_step, desc="data parameters")
    inst = state["inst"].detach().double().cpu().numpy()
    return MethodResult(inst, inst > 0, MethodCost(trainings=1, epochs=task.epochs), test_acc=run.test_acc,
                        details={"class_log_temperature": state["cls"].detach().double().cpu().numpy(),
                                 "train_loss": run.train_loss})


def data_parameter_loss(logits: torch.Tensor, labels: torch.Tensor, class_log: torch.Tensor | None,
                        inst_log: torch.Tensor, *, wd_class: float = 0.0, wd_inst: float = 0.0) -> torch.Tensor:
    """Cross-entropy of temperature-scaled logits plus weight decay on the batch's log-temperatures.

    Parameters
    ----------
    logits : Tensor of shape (B, C), float
    labels : Tensor of shape (B,), int64
    class_log : Tensor of shape (B,), float, or None
        Log-temperature of each row's given class (None: instance temperatures only).
    inst_log : Tensor of shape (B,), float
        Log-temperature of each row's sample.
    wd_class, wd_inst : float

    Returns
    -------
    Tensor of shape ()
        ``CE(logits / sigma) + 0.5 wd_inst sum(inst_log^2) + 0.5 wd_class sum(class_log^2)``,
        ``sigma = exp(class_log) + exp(inst_log)`` (or ``exp(inst_log)``).
    """
    sigma = inst_log.exp() if class_log is None else class_log.exp() + inst_log.exp()
    loss = F.cross_entropy(logits / sigma[:, None], labels)
    if wd_inst > 0:
        loss = loss + 0.5 * wd_inst * (inst_log ** 2).sum()
    if wd_class > 0 and class_log is not None:
        loss = loss + 0.5 * wd_class * (class_log ** 2).sum()
    return loss
