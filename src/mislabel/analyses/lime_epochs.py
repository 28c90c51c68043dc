"""Which epochs a detector reads: LIME with epochs as features (paper Sec. 4.4, Fig. 8).

LIME (Ribeiro, Singh and Guestrin 2016) explains one prediction by a linear model fitted, around it,
to the predictions of perturbed copies. Here a copy switches some epochs *off*: every input channel
of a switched-off epoch is replaced by its mean over the scored run at that epoch (what an
unremarkable sample shows then); the channels of the other epochs stay. The fitted weight of an
epoch is how much having that epoch's own values moves the detector's probability of "mislabeled"
(positive: towards mislabeled). As in LIME's text and image explainers, a copy switches off a
uniformly drawn number of epochs (1 to L - 1) chosen uniformly, copies are weighted by the kernel
``sqrt(exp(-d**2 / kernel_width**2))`` of their cosine distance ``d`` to the unperturbed mask, and
the fit is LIME's own (:class:`lime.lime_base.LimeBase`, ridge regression with every epoch kept).

The explained view is the one :meth:`mislabel.NoiseDetector.score` reads: the whole run, or its
epochs before the memorisation onset where the detector's guard keeps them
(:meth:`~mislabel.NoiseDetector.scored_epochs`); epochs after that view get weight 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from .._validation import check_positive_int, check_seed
from ..detector import NoiseDetector
from ..detector.features import features_of, resample
from ..detector.network import score_nets
from ..dynamics import Dynamics

__all__ = ["EpochExplanation", "explain_epochs", "found_mislabeled", "mean_abs_importance", "lr_drops",
           "early_late_importance"]


@dataclass
class EpochExplanation:
    """Result of :func:`explain_epochs` for K samples of a run of T epochs.

    Attributes
    ----------
    samples : ndarray of shape (K,), int64
        Row of each explained sample in the run.
    weights : ndarray of shape (K, T), float64
        LIME weight of each epoch; 0 for epochs after ``epochs_read``.
    intercept : ndarray of shape (K,), float64
        The local model's value with every epoch switched off.
    scores : ndarray of shape (K,), float32
        The detector's score of each sample (no epoch switched off).
    fit_r2 : ndarray of shape (K,), float64
        Weighted R^2 of each local fit on its perturbed copies (1: the linear model explains them).
    epochs_read : int
        Epochs the detector reads (T, or the memorisation guard's onset).
    seed : int
        Seed of the perturbations.
    """

    samples: np.ndarray
    weights: np.ndarray
    intercept: np.ndarray
    scores: np.ndarray
    fit_r2: np.ndarray
    epochs_read: int
    seed: int

    @property
    def num_epochs(self) -> int:
        """T, the run's number of epochs."""
        return int(self.weights.shape[1])


def found_mislabeled(scores, is_flipped, *, count: int | None = None, seed: int = 0) -> np.ndarray:
    """Mislabeled samples the ranking found: flipped and among its top k, k the number of flipped samples.

    Parameters
    ----------
    scores : array-like of shape (N,), float
        Higher = more likely mislabeled (ties keep sample order).
    is_flipped : array-like of shape (N,), bool
    count : int, optional
        Keep this many of them, drawn uniformly with ``numpy.random.default_rng(seed)``; default all.
    seed : int

    Returns
    -------
    ndarray of shape (M,), int64
        Sorted sample rows; M = min(count, found).

    Raises
    ------
    ValueError
        For mismatched shapes, no flipped sample, or a bad ``count`` or ``seed``.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(is_flipped, dtype=bool)
    if s.ndim != 1 or s.shape != y.shape:
        raise ValueError(f"scores and is_flipped must both have shape (N,), got {s.shape} and {y.shape}")
    k = int(y.sum())
    if k == 0:
        raise ValueError("is_flipped marks no sample: there is no mislabeled sample to find")
    top = np.argsort(-s, kind="stable")[:k]
    found = np.sort(top[y[top]]).astype(np.int64)
    if count is None:
        return found
    check_positive_int(count, "count")
    if count >= found.size:
        return found
    return np.sort(np.random.default_rng(check_seed(seed)).choice(found, size=count, replace=False))


def _masks(rng: np.random.Generator, num: int, length: int) -> np.ndarray:
    """(num, length) float64 masks: row 0 all ones, each other row with 1 .. length-1 epochs off."""
    z = np.ones((num, length))
    off = rng.integers(1, length, size=num - 1)
    for row, n_off in enumerate(off, start=1):
        z[row, rng.choice(length, size=n_off, replace=False)] = 0.0
    return z


def explain_epochs(detector: NoiseDetector, dynamics: Dynamics, samples, *, num_perturbations: int = 500,
                   kernel_width: float = 0.25, seed: int = 0, batch_size: int = 8192,
                   progress: bool = False) -> EpochExplanation:
    """LIME weights of every epoch for the detector's score of each of ``samples``.

    Parameters
    ----------
    detector : NoiseDetector
        Trained; any input channels (the shipped detector's included).
    dynamics : Dynamics
        The scored run, with T >= 2 epochs (and margins where the detector reads them). Channels that
        depend on the whole run (percentiles, pair shares) are computed on the whole run, as
        :meth:`~mislabel.NoiseDetector.score` does.
    samples : array-like of shape (K,), int
        Rows to explain, e.g. from :func:`found_mislabeled`.
    num_perturbations : int
        Perturbed copies per sample, at least 10 (the same masks for every sample).
    kernel_width : float
        Positive; LIME's default for cosine distances is 0.25.
    seed : int
        Seed of the masks and of LIME's regressor: the same seed gives the same weights.
    batch_size : int
        Sequences scored per step.
    progress : bool
        A tqdm bar over the samples.

    Returns
    -------
    EpochExplanation

    Raises
    ------
    ImportError
        Without the ``lime`` package.
    ValueError
        For an untrained detector, dynamics that are not a Dynamics, fewer than 2 epochs read, empty or
        out-of-range ``samples``, or bad numbers.
    """
    try:
        from lime.lime_base import LimeBase
    except ImportError as exc:   # pragma: no cover - lime is pinned in requirements.txt
        raise ImportError("explain_epochs needs the lime package: pip install lime==0.2.0.1") from exc
    if not isinstance(detector, NoiseDetector) or not detector.trained:
        raise ValueError("detector must be a trained mislabel.NoiseDetector (fit, load or pretrained())")
    if not isinstance(dynamics, Dynamics):
        raise ValueError(f"dynamics must be a mislabel.Dynamics (the recorded run), got {type(dynamics).__name__}")
    rows = np.asarray(samples)
    if rows.ndim != 1 or rows.size == 0 or rows.dtype.kind not in "iu":
        raise ValueError(f"samples must be a non-empty 1-D array of sample rows (integers), got {samples!r}")
    if rows.min() < 0 or rows.max() >= dynamics.num_samples:
        raise ValueError(f"samples must lie in [0, {dynamics.num_samples}), got {rows.min()}..{rows.max()}")
    check_positive_int(num_perturbations, "num_perturbations")
    if num_perturbations < 10:
        raise ValueError(f"num_perturbations must be at least 10 (a local fit needs copies), got {num_perturbations}")
    if isinstance(kernel_width, bool) or not isinstance(kernel_width, (int, float)) or not kernel_width > 0:
        raise ValueError(f"kernel_width must be a positive number, got {kernel_width!r}")
    seed = check_seed(seed)
    check_positive_int(batch_size, "batch_size")

    T = dynamics.num_epochs
    read = detector.scored_epochs(dynamics, batch_size)
    view = dynamics if read == T else dynamics.first_epochs(read)
    if read < 2:
        raise ValueError(f"the detector reads {read} epoch(s) of this run; explaining epochs needs at least 2")
    x, _ = features_of(view, detector.config["features"])             # (N, L, F)
    baseline = x.mean(axis=0)                                          # (L, F)
    z = _masks(np.random.default_rng(seed), int(num_perturbations), read)
    distance = 1.0 - np.sqrt(z.sum(1) / read)                          # cosine distance to the all-on mask
    width = float(kernel_width)
    explainer = LimeBase(lambda d: np.sqrt(np.exp(-(d ** 2) / width ** 2)), random_state=seed)
    seq_len = detector.seq_len if detector.config.get("resample", True) else None

    K = rows.size
    weights = np.zeros((K, T))
    intercept, fit_r2 = np.zeros(K), np.zeros(K)
    scores = np.zeros(K, dtype=np.float32)
    for k, i in enumerate(tqdm(rows, desc="LIME", disable=not progress)):
        copies = z[:, :, None] * x[i][None] + (1.0 - z)[:, :, None] * baseline[None]   # (M, L, F)
        if seq_len is not None:
            copies = resample(copies, seq_len)
        p = score_nets(detector.nets, torch.as_tensor(copies, dtype=torch.float32, device=detector.device),
                       detector.device, batch_size).astype(np.float64)
        b, pairs, r2, _ = explainer.explain_instance_with_data(z, np.stack([1.0 - p, p], axis=1), distance,
                                                               label=1, num_features=read,
                                                               feature_selection="none")
        for epoch, w in pairs:
            weights[k, epoch] = w
        intercept[k], fit_r2[k], scores[k] = float(b), float(r2), np.float32(p[0])
    return EpochExplanation(rows.astype(np.int64), weights, intercept, scores, fit_r2, int(read), seed)


def mean_abs_importance(explanation: EpochExplanation) -> np.ndarray:
    """Mean absolute LIME weight of each epoch over the explained samples.

    Returns
    -------
    ndarray of shape (T,), float64
    """
    return np.abs(explanation.weights).mean(axis=0)


def lr_drops(lrs) -> list[int]:
    """Where the learning rate drops: the number of epochs trained before each drop.

    Parameters
    ----------
    lrs : sequence of float
        Learning rate of each epoch, e.g. a capture's ``history["lr"]``.

    Returns
    -------
    list of int
        ``e`` such that epoch ``e + 1`` (1-based) has a lower rate than epoch ``e``.
    """
    a = np.asarray(lrs, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"lrs must be a 1-D sequence of learning rates, got shape {a.shape}")
    return [int(e) for e in np.flatnonzero(a[1:] < a[:-1]) + 1]


def early_late_importance(importance, boundary: int) -> dict:
    """Compare the mean importance of the epochs up to ``boundary`` with that of the later ones.

    Parameters
    ----------
    importance : array-like of shape (T,), float
        E.g. :func:`mean_abs_importance`; non-negative.
    boundary : int
        Number of early epochs, in 1 .. T-1 (e.g. the first :func:`lr_drops` entry).

    Returns
    -------
    dict
        ``early_mean``, ``late_mean`` (float, mean importance per epoch), ``early_share`` (float, the early
        epochs' share of the total) and ``early_dominates`` (bool, ``early_mean > late_mean``).

    Raises
    ------
    ValueError
        For a boundary outside 1 .. T-1 or negative importances.
    """
    imp = np.asarray(importance, dtype=np.float64)
    if imp.ndim != 1 or imp.size < 2 or np.any(imp < 0) or not np.all(np.isfinite(imp)):
        raise ValueError("importance must be a 1-D array of at least 2 finite, non-negative values")
    if isinstance(boundary, bool) or not isinstance(boundary, (int, np.integer)) or not 1 <= boundary < imp.size:
        raise ValueError(f"boundary must be an integer in 1..{imp.size - 1} (epochs before the split), "
                         f"got {boundary!r}")
    early, late = imp[:boundary], imp[boundary:]
    total = imp.sum()
    return {"early_mean": float(early.mean()), "late_mean": float(late.mean()),
            "early_share": float(early.sum() / total) if total > 0 else float("nan"),
            "early_dominates": bool(early.mean() > late.mean())}
