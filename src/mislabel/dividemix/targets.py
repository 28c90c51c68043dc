"""DivideMix's arithmetic on one batch: sharpening, label co-refinement and co-guessing, MixMatch's
mixing, the semi-supervised loss, its ramp-up, and the two regularisers.

Every function here is pure (no model, no global state): the training loop
(:mod:`~mislabel.dividemix.loop`) composes them, and the tests check each on hand-computed cases.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["sharpen", "co_refine", "co_guess", "mix_lambda", "mixmatch", "semi_loss", "rampup_weight",
           "uniform_prior_penalty", "confidence_penalty"]


def sharpen(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """Temperature sharpening: ``p ** (1 / T)``, renormalised over classes.

    Parameters
    ----------
    probs : Tensor of shape (B, C), float
        Non-negative rows (probabilities).
    temperature : float
        ``T`` in (0, 1]; lower is sharper (DivideMix: 0.5).

    Returns
    -------
    Tensor of shape (B, C), float, rows summing to 1
    """
    p = probs.pow(1.0 / temperature)
    return p / p.sum(dim=1, keepdim=True)


def co_refine(labels_onehot: torch.Tensor, own_probs: torch.Tensor, clean_prob: torch.Tensor,
              temperature: float) -> torch.Tensor:
    """Label co-refinement of labeled samples: ``sharpen(w * y + (1 - w) * p, T)``.

    Parameters
    ----------
    labels_onehot : Tensor of shape (B, C), float
        The given labels ``y``, one-hot.
    own_probs : Tensor of shape (B, C), float
        ``p``: the trained network's softmax averaged over the sample's augmented views.
    clean_prob : Tensor of shape (B,), float
        ``w``: each sample's clean probability from the *other* network's mixture (co-divide).
    temperature : float
        Sharpening temperature ``T``.

    Returns
    -------
    Tensor of shape (B, C), float, rows summing to 1
    """
    w = clean_prob.reshape(-1, 1).to(own_probs.dtype)
    return sharpen(w * labels_onehot + (1.0 - w) * own_probs, temperature)


def co_guess(probs, temperature: float) -> torch.Tensor:
    """Label co-guessing of unlabeled samples: the mean of both networks' softmax over the
    augmented views, sharpened.

    Parameters
    ----------
    probs : sequence of K Tensors of shape (B, C), or Tensor of shape (K, B, C), float
        DivideMix averages K = 4: two views through each of the two networks.
    temperature : float
        Sharpening temperature ``T``.

    Returns
    -------
    Tensor of shape (B, C), float, rows summing to 1
    """
    stacked = probs if isinstance(probs, torch.Tensor) else torch.stack(list(probs))
    return sharpen(stacked.mean(0), temperature)


def mix_lambda(alpha: float, rng: np.random.Generator) -> float:
    """MixMatch's mixing weight: ``l ~ Beta(alpha, alpha)``, returned as ``max(l, 1 - l)`` (>= 0.5),
    so that a mixed input stays closer to its first ingredient.

    Parameters
    ----------
    alpha : float
        Positive (DivideMix: 4).
    rng : numpy.random.Generator

    Returns
    -------
    float in [0.5, 1]
    """
    lam = float(rng.beta(alpha, alpha))
    return max(lam, 1.0 - lam)


def mixmatch(inputs: torch.Tensor, targets: torch.Tensor, lam: float,
             perm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix every input and target with a shuffled partner: ``lam * a + (1 - lam) * a[perm]``.

    Parameters
    ----------
    inputs : Tensor of shape (M, ...), float
        Labeled views first, then unlabeled views (DivideMix: 2 b labeled, 2 b unlabeled).
    targets : Tensor of shape (M, C), float
        Rows summing to 1.
    lam : float
        Mixing weight, from :func:`mix_lambda`.
    perm : Tensor of shape (M,), int64
        A permutation of ``range(M)``: the partners, drawn across labeled and unlabeled rows.

    Returns
    -------
    mixed_inputs : Tensor of shape (M, ...)
    mixed_targets : Tensor of shape (M, C), rows summing to 1
    """
    mixed_inputs = lam * inputs + (1.0 - lam) * inputs.index_select(0, perm)
    mixed_targets = lam * targets + (1.0 - lam) * targets.index_select(0, perm)
    return mixed_inputs, mixed_targets


def semi_loss(logits_x: torch.Tensor, targets_x: torch.Tensor, logits_u: torch.Tensor,
              targets_u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two terms of DivideMix's loss on a mixed batch.

    Parameters
    ----------
    logits_x : Tensor of shape (Bx, C), float
        Logits of the mixed labeled rows.
    targets_x : Tensor of shape (Bx, C), float
        Their mixed (soft) targets.
    logits_u : Tensor of shape (Bu, C), float
        Logits of the mixed unlabeled rows (Bu may be 0).
    targets_u : Tensor of shape (Bu, C), float

    Returns
    -------
    loss_x : Tensor of shape ()
        Cross-entropy with soft targets: ``-mean_i sum_c t_ic log softmax(z_i)_c``.
    loss_u : Tensor of shape ()
        Mean squared error between ``softmax(z_u)`` and ``t_u`` over all B_u x C entries;
        0 when there is no unlabeled row.
    """
    loss_x = -(F.log_softmax(logits_x, dim=1) * targets_x).sum(dim=1).mean()
    if logits_u.shape[0] == 0:
        return loss_x, logits_u.new_zeros(())
    loss_u = (torch.softmax(logits_u, dim=1) - targets_u).pow(2).mean()
    return loss_x, loss_u


def rampup_weight(progress: float, warmup_epochs: int, lambda_u: float, rampup_epochs: int = 16) -> float:
    """Weight of the unlabeled loss: ``lambda_u`` times a linear ramp from 0 at the end of the
    warm-up to 1 ``rampup_epochs`` epochs later.

    Parameters
    ----------
    progress : float
        Epochs done, with the fraction of the current one (``epoch + batch / batches``, 0-based epoch).
    warmup_epochs : int
    lambda_u : float
    rampup_epochs : int
        Length of the ramp (DivideMix: 16).

    Returns
    -------
    float
        ``lambda_u * clip((progress - warmup_epochs) / rampup_epochs, 0, 1)``.
    """
    return lambda_u * min(max((progress - warmup_epochs) / rampup_epochs, 0.0), 1.0)


def uniform_prior_penalty(logits: torch.Tensor) -> torch.Tensor:
    """Regulariser towards a uniform prior: ``sum_c pi_c log(pi_c / mean_i softmax(z_i)_c)``, pi_c = 1 / C.

    The Kullback-Leibler divergence from the batch's mean prediction to the uniform distribution;
    it keeps the network from assigning every sample to one class (the predictions of a batch
    drawn from balanced classes should average to roughly uniform).

    Parameters
    ----------
    logits : Tensor of shape (B, C), float

    Returns
    -------
    Tensor of shape (), >= 0; 0 when the mean prediction is uniform
    """
    C = logits.shape[1]
    mean_pred = torch.softmax(logits, dim=1).mean(0)
    return (math.log(1.0 / C) - mean_pred.log()).sum() / C


def confidence_penalty(logits: torch.Tensor) -> torch.Tensor:
    """Negative entropy of the predictions, ``mean_i sum_c p_ic log p_ic``: added to the warm-up loss
    for asymmetric noise, it penalises over-confident predictions (DivideMix's warm-up option).

    Parameters
    ----------
    logits : Tensor of shape (B, C), float

    Returns
    -------
    Tensor of shape (), in [-log C, 0]
    """
    log_p = F.log_softmax(logits, dim=1)
    return (log_p.exp() * log_p).sum(dim=1).mean()
