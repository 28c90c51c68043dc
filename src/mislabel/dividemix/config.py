"""DivideMix's settings (:class:`DivideMixConfig`, checked in one place) and what a run returns
(:class:`DivideMixResult`)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch.nn as nn

from .._validation import check_positive_int, check_seed, check_share
from ..dynamics import Dynamics
from .policy import STRONG_OPS

__all__ = ["AUGMENTATIONS", "DivideMixConfig", "DivideMixResult"]

#: ``augmentation`` values: plain DivideMix, or DM-AugDesc's weak-for-guessing, strong-for-learning.
AUGMENTATIONS = ("standard", "augdesc-ws")


def _number(value, name: str, rule: str, ok) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or not ok(value):
        raise ValueError(f"{name} must be a finite number {rule}, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class DivideMixConfig:
    """The settings of :func:`~mislabel.dividemix.dividemix` (see it for each); checked on creation.

    Defaults are the reference implementation's for CIFAR-10 (batch 64, learning rate 0.02 divided
    by 10 half-way, alpha 4, lambda_u 25, 16-epoch ramp-up, p_threshold 0.5, T 0.5), except the
    length: 30 epochs, 10 of warm-up (the reference: 300 and 10).

    Raises
    ------
    ValueError
        Naming the first setting that is out of range.
    """

    epochs: int = 30
    warmup_epochs: int = 10
    batch_size: int = 64
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 5e-4
    milestones: tuple = (0.5,)
    alpha: float = 4.0
    lambda_u: float = 25.0
    rampup_epochs: int = 16
    p_threshold: float = 0.5
    temperature: float = 0.5
    confidence_penalty: bool = False
    average_loss: int = 1
    augmentation: str = "standard"
    augment: object = "auto"
    strong_ops: int = 2
    strong_magnitude: float = 1.0
    record: str | None = None
    seed: int = 0
    amp: bool = False

    def __post_init__(self) -> None:
        check_positive_int(self.epochs, "epochs")
        if isinstance(self.warmup_epochs, bool) or not isinstance(self.warmup_epochs, (int, np.integer)) \
                or not 1 <= self.warmup_epochs <= self.epochs:
            raise ValueError(f"warmup_epochs must be an integer in [1, epochs={self.epochs}] (the mixture needs "
                             f"a warmed-up network), got {self.warmup_epochs!r}")
        check_positive_int(self.batch_size, "batch_size")
        check_positive_int(self.rampup_epochs, "rampup_epochs")
        check_positive_int(self.average_loss, "average_loss", " (epochs of normalised losses averaged)")
        check_positive_int(self.strong_ops, "strong_ops")
        _number(self.lr, "lr", "> 0", lambda v: v > 0)
        _number(self.momentum, "momentum", "in [0, 1)", lambda v: 0 <= v < 1)
        _number(self.weight_decay, "weight_decay", ">= 0", lambda v: v >= 0)
        _number(self.alpha, "alpha", "> 0", lambda v: v > 0)
        _number(self.lambda_u, "lambda_u", ">= 0", lambda v: v >= 0)
        _number(self.temperature, "temperature", "in (0, 1]", lambda v: 0 < v <= 1)
        _number(self.strong_magnitude, "strong_magnitude", "in (0, 1]", lambda v: 0 < v <= 1)
        check_share(self.p_threshold, "p_threshold", hint=" (a clean probability above it = labeled)")
        try:
            bad = any(not 0 < float(m) < 1 for m in self.milestones)
        except (TypeError, ValueError):
            bad = True
        if bad:
            raise ValueError(f"milestones must be fractions of epochs in (0, 1), got {self.milestones!r}")
        if self.augmentation not in AUGMENTATIONS:
            raise ValueError(f"augmentation must be one of {', '.join(map(repr, AUGMENTATIONS))}, "
                             f"got {self.augmentation!r}")
        if self.record not in ("train", "eval", None):
            raise ValueError(f"record must be 'train', 'eval' or None, got {self.record!r}")
        if not isinstance(self.confidence_penalty, (bool, np.bool_)):
            raise ValueError(f"confidence_penalty must be True or False, got {self.confidence_penalty!r}")
        check_seed(self.seed)

    @property
    def strong(self) -> bool:
        """Whether the learning views are strongly augmented (DM-AugDesc's AugDesc-WS)."""
        return self.augmentation == "augdesc-ws"


@dataclass
class DivideMixResult:
    """What :func:`~mislabel.dividemix.dividemix` returns.

    Attributes
    ----------
    nets : tuple of two nn.Module
        The two trained networks, in eval mode; the ensemble adds their logits.
    clean_prob : ndarray of shape (N, 2), float64
        Each sample's clean probability from each network's final mixture (column k: net k+1),
        fitted on the losses after the last epoch.
    history : dict of lists
        Per epoch: ``epoch`` (1-based), ``phase`` ("warmup" or "train"), ``lr``, ``loss1``,
        ``loss2`` (mean training loss of each net), ``labeled1``, ``labeled2`` (size of the
        labeled set each net trained on; N in warm-up), ``test_acc1``, ``test_acc2``, ``test_acc``
        (the ensemble; NaN without test data), ``seconds``.
    normalization : (mean, std)
        Per-channel statistics the inputs were scaled with (:func:`mislabel.train.predict` takes them).
    dynamics : Dynamics or None
        Net 1's given-label probabilities per epoch, with ``record`` set.
    config : DivideMixConfig
    """

    nets: tuple
    clean_prob: np.ndarray
    history: dict = field(default_factory=dict)
    normalization: tuple = ((), ())
    dynamics: Dynamics | None = None
    config: DivideMixConfig | None = None

    @property
    def scores(self) -> np.ndarray:
        """``1 - mean clean probability`` of the two nets: (N,) float64, higher = more likely mislabeled."""
        return 1.0 - self.clean_prob.mean(axis=1)

    @property
    def noisy(self) -> np.ndarray:
        """DivideMix's own division after the last epoch: (N,) bool, mean clean probability <= p_threshold."""
        threshold = self.config.p_threshold if self.config is not None else 0.5
        return self.clean_prob.mean(axis=1) <= threshold

    def best(self, key: str = "test_acc") -> float:
        """Best value of a per-epoch test accuracy (``test_acc``, ``test_acc1`` or ``test_acc2``); NaN if none."""
        values = [v for v in self.history.get(key, []) if not math.isnan(v)]
        return max(values) if values else float("nan")

    def last(self, key: str = "test_acc") -> float:
        """Value of ``key`` after the last epoch (NaN without test data)."""
        values = self.history.get(key, [])
        return float(values[-1]) if values else float("nan")

    @property
    def seconds_per_epoch(self) -> dict:
        """Mean wall-clock seconds of a warm-up epoch and of a semi-supervised epoch (NaN if none ran)."""
        out = {}
        for phase in ("warmup", "train"):
            s = [t for t, p in zip(self.history["seconds"], self.history["phase"]) if p == phase]
            out[phase] = float(np.mean(s)) if s else float("nan")
        return out

    def ensemble(self) -> nn.Module:
        """The two nets as one module whose logits are their sum (as DivideMix tests)."""
        return _Ensemble(*self.nets)


class _Ensemble(nn.Module):
    def __init__(self, net1: nn.Module, net2: nn.Module) -> None:
        super().__init__()
        self.net1, self.net2 = net1, net2

    def forward(self, x):
        return self.net1(x) + self.net2(x)
