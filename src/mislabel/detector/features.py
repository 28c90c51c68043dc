"""The detector's input: named channels computed from recorded dynamics, and sequence resampling.

Every channel is a function ``fn(dynamics, shared) -> ndarray of shape (N, T, k), float32`` listed by
name in :data:`CHANNEL_FUNCTIONS`; ``shared`` (:class:`Shared`) holds the arrays several channels read.
A feature set is a tuple of channel names, in the order the channels are stacked. Its string form joins
the names with "+" (``"prob+margin+rank"``); it is what ``NoiseDetector(features=...)`` takes and what
checkpoints store, and :func:`parse_features` turns it into the tuple. The supported sets are listed in
:data:`FEATURES`.

Channels
--------
``prob``
    The given-label probability (the paper's detector reads only this one).
``margin``
    ``sigmoid(margin)``, the margin being the given-label logit minus the largest other logit (the
    quantity AUM averages). ``sigmoid(z_y - z_k)`` equals ``p_y / (p_y + p_k)``: the given label's
    probability against its strongest competitor, in (0, 1) and free of the logit scale.
``aum``
    The sigmoid of the margin's running mean; its last value is the sigmoid of AUM.
``rank``
    The margin's percentile within the run at each epoch (:func:`percentile_rank`).
``pairs``
    Two channels about the pair of classes a sample sits between at each epoch, its given class ``y``
    and its runner-up class ``r``: ``M_t[y, r]`` and ``M_t[r, y]`` (:func:`pair_confusion`). Noise that
    maps one class onto another makes the first large and the second small for the flipped samples.
``aumrank``
    The percentile within the run of the margin's running mean; its last value is AUM's own rank.

Every channel but ``prob`` needs ``Dynamics.margins``; ``pairs`` also needs ``Dynamics.runner_up``
(both recorded by ``DynamicsRecorder(margins=True)``, the default). ``rank``, ``pairs`` and ``aumrank``
are computed over the samples scored together: a sample's values depend on the others in the run, so
score a whole run at once.
"""
from __future__ import annotations

from functools import cached_property

import numpy as np
import torch

from .._validation import check_positive_int
from ..dynamics import Dynamics


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.clip(x, -50, 50)))).astype(np.float32)


def percentile_rank(values: np.ndarray) -> np.ndarray:
    """Each entry's percentile within its column: its average rank divided by the column length.

    Parameters
    ----------
    values : ndarray of shape (N, T), float

    Returns
    -------
    ndarray of shape (N, T), float32
        In (0, 1]; the column's smallest value gets 1/N and its largest 1. Tied values
        share their average rank, so the result does not depend on sample order.

    Raises
    ------
    ValueError
        If ``values`` is not 2-D.
    """
    from scipy.stats import rankdata   # a dependency of scikit-learn
    v = np.asarray(values)
    if v.ndim != 2:
        raise ValueError(f"expected an (N, T) array, got shape {v.shape}")
    if len(v) == 0:
        return v.astype(np.float32)
    return (rankdata(v, method="average", axis=0) / len(v)).astype(np.float32)


def pair_confusion(labels: np.ndarray, margins: np.ndarray, runner_up: np.ndarray,
                   num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """How often the model, at each epoch, mistakes a sample's given class for its runner-up class and back.

    At epoch t the model predicts the given label where the margin is at least 0
    and the runner-up class elsewhere. With ``M_t[a, b]`` the share of the samples
    labelled ``a`` that are predicted as ``b`` at epoch t, sample i with label ``y``
    and runner-up ``r`` gets ``forward = M_t[y, r]`` and ``backward = M_t[r, y]``.

    Parameters
    ----------
    labels : ndarray of shape (N,), int
        Class indices, at least 0.
    margins : ndarray of shape (N, T), float
    runner_up : ndarray of shape (N, T), int
        Class indices, at least 0.
    num_classes : int, optional
        Number of classes C, more than every class index in ``labels`` and ``runner_up``.
        Default: one more than the largest class index seen.

    Returns
    -------
    forward, backward : ndarrays of shape (N, T), float32, in [0, 1]

    Raises
    ------
    ValueError
        On mismatched shapes, negative class indices, or a ``num_classes`` not above every index.
    """
    y = np.asarray(labels, dtype=np.int64)
    m = np.asarray(margins)
    r = np.asarray(runner_up, dtype=np.int64)
    if m.ndim != 2 or r.shape != m.shape or y.shape != (m.shape[0],):
        raise ValueError(f"expected labels (N,), margins and runner_up (N, T) of one N and T; got "
                         f"{y.shape}, {m.shape} and {r.shape}")
    if min(int(y.min(initial=0)), int(r.min(initial=0))) < 0:
        raise ValueError("labels and runner_up must hold class indices >= 0, got negative ones")
    largest = max(int(y.max(initial=0)), int(r.max(initial=0)))
    if num_classes is not None:
        check_positive_int(num_classes, "num_classes")
        if largest >= num_classes:
            raise ValueError(f"num_classes={num_classes} but labels or runner_up hold class {largest}: pass "
                             f"num_classes >= {largest + 1} (the number of classes), or None to infer it")
    C = int(num_classes or largest + 1)
    N, T = m.shape
    per_class = np.maximum(np.bincount(y, minlength=C), 1).astype(np.float64)
    forward = np.empty((N, T), dtype=np.float32)
    backward = np.empty((N, T), dtype=np.float32)
    for t in range(T):
        pred = np.where(m[:, t] >= 0, y, r[:, t])
        M = (np.bincount(y * C + pred, minlength=C * C).reshape(C, C) / per_class[:, None]).ravel()
        forward[:, t] = M[y * C + r[:, t]]
        backward[:, t] = M[r[:, t] * C + y]
    return forward, backward


class Shared:
    """Arrays that several channels read, computed at most once per :func:`features_of` call.

    Parameters
    ----------
    dynamics : Dynamics
    """

    def __init__(self, dynamics: Dynamics) -> None:
        self.dynamics = dynamics

    @cached_property
    def margins(self) -> np.ndarray:
        """``dynamics.margins`` as float64, shape (N, T)."""
        return self.dynamics.margins.astype(np.float64)

    @cached_property
    def running_margin(self) -> np.ndarray:
        """The margin's running mean over the epochs so far (AUM up to each epoch), float64, shape (N, T)."""
        m = self.margins
        return np.cumsum(m, axis=1) / np.arange(1, m.shape[1] + 1)


def given_prob(dynamics: Dynamics, shared: Shared) -> np.ndarray:
    """Channel ``prob``: the given-label probability, (N, T, 1) float32."""
    return dynamics.probs[:, :, None]


def sigmoid_margin(dynamics: Dynamics, shared: Shared) -> np.ndarray:
    """Channel ``margin``: the sigmoid of the margin, (N, T, 1) float32."""
    return _sigmoid(shared.margins)[:, :, None]


def sigmoid_running_margin(dynamics: Dynamics, shared: Shared) -> np.ndarray:
    """Channel ``aum``: the sigmoid of the margin's running mean, (N, T, 1) float32."""
    return _sigmoid(shared.running_margin)[:, :, None]


def margin_rank(dynamics: Dynamics, shared: Shared) -> np.ndarray:
    """Channel ``rank``: the margin's percentile among the N samples at each epoch, (N, T, 1) float32."""
    return percentile_rank(shared.margins)[:, :, None]


def pair_shares(dynamics: Dynamics, shared: Shared) -> np.ndarray:
    """Channel ``pairs``: the two :func:`pair_confusion` shares, (N, T, 2) float32; needs ``runner_up``."""
    return np.stack(pair_confusion(dynamics.labels, shared.margins, dynamics.runner_up), axis=2)


def running_margin_rank(dynamics: Dynamics, shared: Shared) -> np.ndarray:
    """Channel ``aumrank``: the percentile of the margin's running mean at each epoch, (N, T, 1) float32."""
    return percentile_rank(shared.running_margin)[:, :, None]


#: the input channels by name: ``fn(dynamics, shared) -> (N, T, k) float32``
CHANNEL_FUNCTIONS = {"prob": given_prob, "margin": sigmoid_margin, "aum": sigmoid_running_margin,
                     "rank": margin_rank, "pairs": pair_shares, "aumrank": running_margin_rank}
#: number of columns k that each channel function returns
CHANNEL_WIDTHS = {"prob": 1, "margin": 1, "aum": 1, "rank": 1, "pairs": 2, "aumrank": 1}
#: the supported feature sets, in their string form (as ``NoiseDetector.config["features"]`` and checkpoints hold them)
FEATURES = ("prob", "prob+margin", "prob+margin+aum", "prob+margin+rank", "prob+margin+rank+pairs",
            "prob+margin+rank+pairs+aumrank")
#: input channels per epoch of each feature set
CHANNELS = {f: sum(CHANNEL_WIDTHS[name] for name in f.split("+")) for f in FEATURES}


def parse_features(features) -> tuple[str, ...]:
    """The channel names of a feature set.

    Parameters
    ----------
    features : str or sequence of str
        ``"prob+margin+rank"`` or ``("prob", "margin", "rank")``; one of :data:`FEATURES`.

    Returns
    -------
    tuple of str
        Channel names, keys of :data:`CHANNEL_FUNCTIONS`, in stacking order; ``"+".join`` of it is the
        string form.

    Raises
    ------
    ValueError
        For an unknown channel name (naming it and the valid ones), or a combination of channels
        that is not one of :data:`FEATURES`.
    """
    if isinstance(features, str):
        names = tuple(features.split("+"))
    elif isinstance(features, (tuple, list)) and all(isinstance(n, str) for n in features):
        names = tuple(features)
    else:
        raise ValueError(f"unknown features {features!r}; choose one of {', '.join(FEATURES)}")
    for name in names:
        if name not in CHANNEL_FUNCTIONS:
            raise ValueError(f"unknown input channel {name!r} in features {features!r}; valid channels: "
                             f"{', '.join(CHANNEL_FUNCTIONS)}")
    if "+".join(names) not in FEATURES:
        raise ValueError(f"features {features!r} is not a supported combination of channels; choose one of "
                         f"{', '.join(FEATURES)}")
    return names


def features_of(dynamics, features="prob") -> tuple[np.ndarray, np.ndarray | None]:
    """Detector input of ``dynamics``: the channels of a feature set, stacked in its order.

    Parameters
    ----------
    dynamics : Dynamics, or ndarray or Tensor of shape (N, T)
        A bare array is read as given-label probabilities (only ``features="prob"``).
    features : str or sequence of str
        A feature set (:func:`parse_features`), e.g. ``"prob+margin+rank+pairs+aumrank"``.

    Returns
    -------
    x : ndarray of shape (N, T, F), float32
        F = :data:`CHANNELS` ``[features]``: the channel blocks side by side.
    is_flipped : ndarray of shape (N,), bool, or None

    Raises
    ------
    ValueError
        For unknown features, input that is neither Dynamics nor an (N, T) probability array, or
        dynamics without the margins (or runner-up classes) that the channels read.
    """
    names = parse_features(features)
    if isinstance(dynamics, torch.Tensor):
        dynamics = dynamics.detach().cpu().numpy()
    if isinstance(dynamics, np.ndarray):
        dynamics = Dynamics(dynamics, np.zeros(len(dynamics), dtype=np.int64))  # validates shape and range
    elif not isinstance(dynamics, Dynamics):
        raise ValueError(f"expected a Dynamics or an (N, T) array of probabilities, got {type(dynamics).__name__}")
    if names != ("prob",) and dynamics.margins is None:
        raise ValueError(f"this detector reads margins (features={features!r}) but the dynamics carry none "
                         "(a bare array holds only probabilities); pass the Dynamics of "
                         "DynamicsRecorder(margins=True), the default, or use a features='prob' detector")
    if "pairs" in names and dynamics.runner_up is None:
        raise ValueError("this detector reads the runner-up class of every epoch (features="
                         f"{features!r}) but the dynamics carry none (recorded before mislabel 0.2?); "
                         "record again with DynamicsRecorder (margins=True, the default) or use a detector "
                         "with features='prob+margin+rank'")
    shared = Shared(dynamics)
    blocks = [CHANNEL_FUNCTIONS[name](dynamics, shared) for name in names]
    x = blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=2).astype(np.float32, copy=False)
    return x, dynamics.is_flipped


def resample(probs: np.ndarray, length: int) -> np.ndarray:
    """Linearly resample sequences along the epoch axis onto ``length`` evenly spaced points.

    The points span the same relative training time as the input (first to last epoch).

    Parameters
    ----------
    probs : ndarray of shape (N, T) or (N, T, F), float
    length : int
        Target number of points L.

    Returns
    -------
    ndarray of shape (N, L) or (N, L, F), float32
        Unchanged (as float32) when ``T == L``. A single-epoch input is repeated.
    """
    p = np.asarray(probs, dtype=np.float32)
    T = p.shape[1]
    if T == length:
        return p
    if T == 1:
        return np.repeat(p, length, axis=1)
    pos = np.linspace(0.0, T - 1, length)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, T - 1)
    w = (pos - lo).astype(np.float32).reshape((1, length) + (1,) * (p.ndim - 2))
    return p[:, lo] * (1.0 - w) + p[:, hi] * w
