"""The learned noise detector: an LSTM over given-label probability sequences.

Architecture (paper Sec 3.2/4.1): a 2-layer LSTM with 64 hidden units reads
the sequence ``probs[i, :]`` (one feature per epoch, or several: see "Input
features" below); a linear head on the last step gives two logits (clean,
mislabeled), trained with cross-entropy and AdamW.

Sequence length
---------------
An LSTM accepts any length, but what it learned about *when* things happen is
tied to the length it was trained on (the learning-rate drops at 50%/75% of
training, for example). The detector therefore stores the training length
``seq_len`` and, by default (``resample=True``), linearly resamples every
input sequence onto ``seq_len`` points spread over the same relative training
time (:func:`resample`). A 10-epoch and a 200-epoch run are thus both read as
"from start to end of training". With ``resample=False`` sequences are fed as
they are.

Input features
--------------
``features="prob"`` (the paper's choice, default) feeds the given-label
probability only. ``features="prob+margin"`` adds a second channel,
``sigmoid(margin)`` where margin is the given-label logit minus the largest
other logit (the quantity AUM averages). ``sigmoid(z_y - z_k)`` equals
``p_y / (p_y + p_k)``: the given label's probability against its strongest
competitor, bounded in (0, 1) and free of the logit scale, so it transfers
across models. It costs one number per sample and epoch whatever the number of
classes, and is recorded by default (``DynamicsRecorder(margins=True)``).
``features="prob+margin+aum"`` adds a third channel, the sigmoid of the
margin's running mean, whose last value is the sigmoid of AUM itself. Trained
on the shipped detector's recipe it measured no better than "prob+margin" on
the held-out settings of the model card (within +-0.015 mAP either way).
``features="prob+margin+rank"`` instead adds the margin's *percentile within
the run* at each epoch: the fraction of the samples scored together whose
margin at that epoch is at most this sample's (ties share the average rank).
It says "this sample is among the 5% least learned right now", which means
the same on an easy data set, where every margin is large, and on a hard one;
it transferred best of those four. Its one condition: the scores depend on
which samples are scored together, so score a whole run at once, not sample by
sample.

``features="prob+margin+rank+pairs"`` (new in 0.2) adds two
channels about the *pair* of classes each sample sits between at each epoch:
its given class ``y`` and its runner-up class ``r`` (the largest other logit,
``Dynamics.runner_up``, recorded together with the margin). With
``M_t[a, b]`` the share of the samples labelled ``a`` that the model predicts
as ``b`` at epoch t, the channels are ``M_t[y, r]`` and ``M_t[r, y]``
(:func:`pair_confusion`). A single trajectory cannot tell a flipped sample
from a hard clean one when the noise maps one class onto another: both sit
between the same two classes. The pair shares can: noise that flips class
``i`` into ``i + 1`` leaves many samples labelled ``i + 1`` predicted as
``i`` and few the other way round, whereas symmetric noise and the natural
confusion between similar classes spread the predictions thinly. Like the
percentile, these channels depend on the whole run; score it at once.
``features="prob+margin+rank+pairs+aumrank"`` (the shipped detector's, from
0.2) adds a sixth channel: the percentile within the run of the margin's
running mean, whose last value is AUM's own rank. A detector with the pair
channels ranked at chance on short runs whose predictions had collapsed onto a
few classes until such runs entered its training pool (model card).

Ensembles
---------
``NoiseDetector(members=K)`` trains K detectors of the same architecture on
the same sequences, member ``i`` with seed ``seed + i`` (its own
initialisation, batch order and validation split), and scores a sample by the
mean of the members' log-odds ``logit[mislabeled] - logit[clean]``, mapped
back to (0, 1) by a sigmoid. One member's ranking moves with its seed about as
much as the gaps between methods on the model card's held-out settings; the
mean of several moves less (measured in the book's model card). A one-member
detector scores exactly as before (``softmax`` of its two logits).

Memorisation guard
------------------
A classifier that can memorise its training labels (a wide MLP on a small
tabular set, for example) learns the clean samples within a few epochs and
then fits the wrong labels too. From then on the flipped samples' dynamics look
like those of hard clean samples, and a detector that reads the whole run
misses them, although the first epochs separate them well. The number of
samples whose predicted class changes from one epoch to the next
(:func:`prediction_changes`) shows when this starts. It falls while the model
learns the clean samples, reaches a minimum, and rises again while it fits the
wrong labels. The early-stopping method *Label Wave* (Yuan, Feng and Liu,
ICLR 2025) stops training at that minimum; :func:`memorisation_onset` finds it
in recorded dynamics. Only a minimum reached once the model predicts the given
label of at least half of the samples (``GUARD_MIN_FIT``) counts: the counts
can also dip and jump during the first epochs of a model that is still
learning. On 500-epoch MLP runs on digits (30% symmetric noise, SGD with
momentum at learning rate 0.1) such a dip at epoch 4, with a quarter of the
labels fit, made the guard read only 4 epochs (mAP 0.60 to 0.78 in three of
four seeds, against 0.93 to 0.97 for the whole run); with the condition it
finds the turn at epochs 11 to 17 (mAP 0.983 to 0.992). The price: where half
or more of the labels are wrong, fewer than half are fit at the turn, so the
guard never fires there and the whole run is scored (the shipped detector's
pool and model card stay below 50% noise).

With ``NoiseDetector(memorisation_guard=True)`` (the shipped detector's
setting), :meth:`NoiseDetector.score` scores both the whole run and the epochs
up to the onset. It keeps the early view only when the whole run gives
clearly fewer samples a score of 0.5 or more: the early view must flag at
least ``GUARD_RATIO`` times as many. This is how the shipped detector behaves
on runs unlike its training data once their wrong labels are being learned
(StatLog DNA in the model card: 6 to 25 times as many on its draws 0-2). On
runs it reads well, both views flag about as many samples (0.8 to 1.1 times as
many on the model card's other held-out draws), and the whole run is scored
as before.
Fine-tuning (:meth:`fine_tune`, :meth:`adapt`) switches the guard off: the
detector has then seen whole runs of the user's data.
:meth:`NoiseDetector.scored_epochs` tells which view was used.
"""
from __future__ import annotations

import contextlib
import copy
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import fast_lstm as _fast
from . import metrics as _metrics
from . import noise as _noise
from ._utils import atomic_path, check_positive_int, flush_denormal, resolve_device, set_seed
from .dynamics import Dynamics

CHECKPOINT_FORMAT = "mislabel-detector"
#: version 2 stores a list of member weights (ensembles); version 1 files (one ``state_dict``) still load
CHECKPOINT_VERSION = 2


#: moving-average window (epochs) over the prediction-change counts in :func:`memorisation_onset`
GUARD_WINDOW = 2
#: least rise after the minimum, as a share of the samples, that counts as memorisation
GUARD_MIN_RISE = 0.02
#: least share of the samples predicted as their given label at the minimum, for it to count as the onset: the
#: turn this guard looks for comes after the model has fit the clean majority, not during the first epochs' wobble
#: (added 2026-11-23: a 500-epoch digits MLP dipped at epoch 4 with 24% fit, and the guard then read 4 epochs).
#: An absolute share: with half or more of the labels wrong the guard does not fire (module docs)
GUARD_MIN_FIT = 0.5
#: the early view is kept when it flags at least this many times as many samples as the whole run
#: (2.0 until 2026-11-22; lowered so that short memorising runs, 8 to 15 epochs, are guarded too: model card)
GUARD_RATIO = 1.25


def prediction_changes(dynamics: Dynamics) -> np.ndarray:
    """How many samples change their predicted class from one epoch to the next.

    The predicted class is the given label where the margin is at least 0 (ties
    count as given) and the runner-up class elsewhere, as in :func:`pair_confusion`.

    Parameters
    ----------
    dynamics : Dynamics
        With ``margins`` and ``runner_up`` of shape (N, T) (recorded by default).

    Returns
    -------
    ndarray of shape (T - 1,), int64
        Entry t counts the samples whose prediction at epoch t + 2 differs from
        that at epoch t + 1 (epochs counted from 1).
    """
    if not isinstance(dynamics, Dynamics) or dynamics.margins is None or dynamics.runner_up is None:
        raise ValueError("prediction_changes needs Dynamics with margins and runner_up "
                         "(record with DynamicsRecorder(margins=True), the default)")
    pred = np.where(dynamics.margins >= 0, dynamics.labels[:, None], dynamics.runner_up)
    return (pred[:, 1:] != pred[:, :-1]).sum(0).astype(np.int64)


def memorisation_onset(dynamics: Dynamics, *, window: int = GUARD_WINDOW,
                       min_rise: float = GUARD_MIN_RISE, min_fit: float = GUARD_MIN_FIT) -> int | None:
    """Number of epochs before the model starts to fit wrong labels, or None if the run shows no such turn.

    The prediction-change counts (:func:`prediction_changes`) are smoothed by
    a trailing moving average of ``window`` epochs. The onset is their first
    local minimum after which they rise again by at least ``min_rise`` times
    the number of samples, at an epoch where the model already predicts the
    given label of at least ``min_fit`` of the samples (earlier minima are the
    wobble of a model still learning, not the turn to memorisation). The
    returned count keeps the epoch of the minimum.

    Parameters
    ----------
    dynamics : Dynamics
        With ``margins`` and ``runner_up``.
    window : int
        Moving-average length, at least 1.
    min_rise : float
        Least rise after the minimum, as a share of the N samples; must be positive.
    min_fit : float
        Least share of samples whose given label is the predicted class (margin >= 0)
        at the epoch of the minimum, in [0, 1].

    Returns
    -------
    int or None
        In ``3 .. T - 1`` (a minimum needs a smoothed count on either side of it).
    """
    check_positive_int(window, "window")
    if not min_rise > 0:
        raise ValueError(f"min_rise must be positive, got {min_rise!r}")
    if not 0 <= min_fit <= 1:
        raise ValueError(f"min_fit must be in [0, 1], got {min_fit!r}")
    pc = prediction_changes(dynamics).astype(np.float64)
    fit = (dynamics.margins >= 0).mean(axis=0)      # (T,) share predicted as the given label, per epoch
    c = np.concatenate([[0.0], np.cumsum(pc)])
    lo = np.maximum(np.arange(len(pc)) - window + 1, 0)
    smooth = (c[1:] - c[lo]) / (np.arange(len(pc)) + 1 - lo)
    for i in range(1, len(smooth) - 1):
        if smooth[i] <= smooth[i - 1] and smooth[i] < smooth[i + 1] and fit[i + 1] >= min_fit:
            if smooth[i + 1:].max() - smooth[i] >= min_rise * dynamics.num_samples:
                return i + 2
    return None


def resample(probs: np.ndarray, length: int) -> np.ndarray:
    """Linearly resample sequences along the epoch axis onto ``length`` evenly spaced points.

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


#: input channels per epoch of each feature set
CHANNELS = {"prob": 1, "prob+margin": 2, "prob+margin+aum": 3, "prob+margin+rank": 3, "prob+margin+rank+pairs": 5,
            "prob+margin+rank+pairs+aumrank": 6}
FEATURES = tuple(CHANNELS)


class _LSTMNet(nn.Module):
    def __init__(self, hidden_size: int, num_layers: int, input_size: int = 1) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, T, F) float32
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


def features_of(dynamics, features: str = "prob") -> tuple[np.ndarray, np.ndarray | None]:
    """Detector input of ``dynamics``.

    Parameters
    ----------
    dynamics : Dynamics or ndarray of shape (N, T)
        A bare array is read as given-label probabilities (only ``features="prob"``).
    features : {"prob", "prob+margin", "prob+margin+aum", "prob+margin+rank", "prob+margin+rank+pairs",
                "prob+margin+rank+pairs+aumrank"}

    Returns
    -------
    x : ndarray of shape (N, T, F), float32
        F = 1 (probability), 2 (probability, sigmoid of the AUM margin), 3
        (those and either the sigmoid of the margin's running mean, AUM so far, or
        the margin's percentile among the N samples at each epoch, in (0, 1]), 5
        (probability, margin, percentile and the two :func:`pair_confusion`
        channels, which need ``dynamics.runner_up``) or 6 (those five and the
        percentile of the margin's running mean).
    is_flipped : ndarray of shape (N,), bool, or None
    """
    if features not in FEATURES:
        raise ValueError(f"unknown features {features!r}; choose one of {', '.join(FEATURES)}")
    if isinstance(dynamics, torch.Tensor):
        dynamics = dynamics.detach().cpu().numpy()
    if isinstance(dynamics, np.ndarray):
        dynamics = Dynamics(dynamics, np.zeros(len(dynamics), dtype=np.int64))  # validates shape and range
    elif not isinstance(dynamics, Dynamics):
        raise ValueError(f"expected a Dynamics or an (N, T) array of probabilities, got {type(dynamics).__name__}")
    if features == "prob":
        return dynamics.probs[:, :, None], dynamics.is_flipped
    if dynamics.margins is None:
        raise ValueError(f"this detector reads margins (features={features!r}) but the dynamics carry none "
                         "(a bare array holds only probabilities); pass the Dynamics of DynamicsRecorder(margins=True), "
                         "the default, or use a features='prob' detector")
    m = dynamics.margins.astype(np.float64)
    parts = features.split("+")          # channels in this order: prob, margin, then any of the rest
    running = np.cumsum(m, axis=1) / np.arange(1, m.shape[1] + 1) if {"aum", "aumrank"} & set(parts) else None
    chans = [dynamics.probs, _sigmoid(m)]
    if "aum" in parts:                   # running mean of the margin: at the last step it is AUM itself
        chans.append(_sigmoid(running))
    if "rank" in parts:
        chans.append(percentile_rank(m))
    if "pairs" in parts:
        if dynamics.runner_up is None:
            raise ValueError("this detector reads the runner-up class of every epoch (features="
                             f"{features!r}) but the dynamics carry none (recorded before mislabel 0.2?); "
                             "record again with DynamicsRecorder (margins=True, the default) or use a detector "
                             "with features='prob+margin+rank'")
        chans.extend(pair_confusion(dynamics.labels, m, dynamics.runner_up))
    if "aumrank" in parts:               # percentile of AUM so far: at the last step, AUM's own ranking
        chans.append(percentile_rank(running))
    return np.stack(chans, axis=2).astype(np.float32), dynamics.is_flipped


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

    At epoch t the model predicts the given label where the margin is positive
    (ties count as given) and the runner-up class elsewhere. With
    ``M_t[a, b]`` the share of the samples labelled ``a`` that are predicted
    as ``b`` at epoch t, sample i with label ``y`` and runner-up ``r`` gets
    ``forward = M_t[y, r]`` and ``backward = M_t[r, y]``. Label noise that
    maps one class onto another (i -> i + 1) makes ``forward`` large and
    ``backward`` small for the flipped samples; symmetric noise and the natural
    confusion between similar classes leave the two alike.

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


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.clip(x, -50, 50)))).astype(np.float32)


class NoiseDetector:
    """LSTM noise detector: ``fit`` on dynamics with known flips, ``score`` new dynamics.

    Parameters
    ----------
    hidden_size : int
        LSTM width (paper: 64).
    num_layers : int
        LSTM depth (paper: 2).
    seq_len : int, optional
        Length every sequence is resampled to; default: the length of the training runs, set by ``fit``.
    resample : bool
        Resample inputs of other lengths onto ``seq_len`` (see module docstring).
    features : {"prob", "prob+margin", "prob+margin+aum", "prob+margin+rank", "prob+margin+rank+pairs",
                "prob+margin+rank+pairs+aumrank"}
        Input channels (see module docstring); "prob" is the paper's detector.
    device : str, optional
        Where to train and score; default CPU (the LSTM is small; CPU is fast enough).
    members : int
        Number of LSTMs averaged in an ensemble (see "Ensembles" in the module docs); 1 = the paper's
        single detector. Training and scoring cost grow in proportion.
    memorisation_guard : bool
        Score only the epochs before the classifier starts to memorise wrong labels when the whole run
        leaves the detector unsure (see "Memorisation guard" in the module docs). Stored in checkpoints.
    """

    def __init__(self, hidden_size: int = 64, num_layers: int = 2, seq_len: int | None = None,
                 resample: bool = True, features: str = "prob", device=None, members: int = 1,
                 memorisation_guard: bool = False) -> None:
        for name, value in (("hidden_size", hidden_size), ("num_layers", num_layers), ("members", members)):
            check_positive_int(value, name)
        if seq_len is not None:
            check_positive_int(seq_len, "seq_len", " (or None: the length of the training runs)")
        self._init_seq_len = None if seq_len is None else int(seq_len)   # fit() derives it from the data if None
        self.config = {"hidden_size": int(hidden_size), "num_layers": int(num_layers),
                       "seq_len": None if seq_len is None else int(seq_len), "resample": bool(resample),
                       "features": features, "members": int(members),
                       "memorisation_guard": bool(memorisation_guard)}
        if features not in FEATURES:
            raise ValueError(f"unknown features {features!r}; choose one of {', '.join(FEATURES)}")
        self.device = resolve_device(device or "cpu")
        self.nets = [self._new_net() for _ in range(members)]
        self.trained = False   # set by fit() and load(); an untrained detector refuses to score or save
        self.info: dict = {}
        self.history: dict = {}

    # -- helpers -------------------------------------------------------------
    def _new_net(self) -> _LSTMNet:
        c = self.config
        return _LSTMNet(c["hidden_size"], c["num_layers"], CHANNELS[c["features"]]).to(self.device)

    @property
    def seq_len(self) -> int | None:
        return self.config["seq_len"]

    @property
    def net(self) -> _LSTMNet:
        """The first member's network (the only one unless ``members > 1``)."""
        return self.nets[0]

    def member(self, i: int) -> "NoiseDetector":
        """Member ``i`` of an ensemble as a one-member detector (sharing its weights, not a copy).

        Parameters
        ----------
        i : int
            In ``0 .. members - 1``.
        """
        if not 0 <= i < len(self.nets):
            raise IndexError(f"member {i} out of range: this detector has {len(self.nets)} member(s)")
        one = NoiseDetector.__new__(NoiseDetector)   # no fresh network: leaves torch's random state alone
        one.config = {**self.config, "members": 1}
        one.device = self.device
        one.nets = [self.nets[i]]
        one.trained = self.trained
        one.info = {"member_of": len(self.nets), "member": int(i)}
        one.history = {}
        return one

    def _prepare(self, probs: np.ndarray, seq_len: int | None = None) -> np.ndarray:
        length = self.seq_len if seq_len is None else seq_len
        if self.config["resample"] and length is not None:
            return resample(probs, length)
        return probs

    def _collect(self, dynamics, is_flipped, seq_len: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Stack one or several training sets into (N, L, F) sequences and (N,) targets, resampled to
        ``seq_len`` (None: the first set's length)."""
        items = dynamics if isinstance(dynamics, (list, tuple)) else [dynamics]
        if not items:
            raise ValueError(f"dynamics is an empty {type(dynamics).__name__}: training needs at least one "
                             "Dynamics (or (N, T) array) with known flips")
        flips = is_flipped if isinstance(dynamics, (list, tuple)) else [is_flipped]
        if flips is None:
            flips = [None] * len(items)
        if len(flips) != len(items):
            raise ValueError("pass one is_flipped per dynamics")
        xs, ys = [], []
        for d, f in zip(items, flips):
            probs, known = features_of(d, self.config["features"])
            f = known if f is None else np.asarray(f.cpu() if isinstance(f, torch.Tensor) else f)
            if f is None:
                raise ValueError("is_flipped is required: pass it, or use Dynamics that carry is_flipped")
            if f.shape != (len(probs),):
                raise ValueError(f"is_flipped must have shape ({len(probs)},), got {f.shape}")
            if f.dtype != bool:
                off = ~np.isin(f, (0, 1)) if f.dtype.kind in "iuf" else None
                if off is None or off.any():
                    got = f"dtype {f.dtype}" if off is None else f"the value {f[off][0].item()!r}"
                    raise ValueError(f"is_flipped must be boolean, or integers or floats that are exactly 0 or 1; "
                                     f"got {got}: pass True (or 1) for a flipped label and False (or 0) for a "
                                     "clean one")
            if seq_len is None:
                seq_len = int(probs.shape[1])
            xs.append(self._prepare(probs, seq_len) if self.config["resample"] else probs)
            ys.append(f.astype(np.int64))
        lengths = {x.shape[1] for x in xs}
        if len(lengths) > 1:
            raise ValueError(f"sequences of different lengths {sorted(lengths)} with resample=False; enable resample")
        x, y = np.concatenate(xs), np.concatenate(ys)
        if y.sum() == 0 or y.sum() == len(y):
            raise ValueError("training needs both flipped and clean samples in is_flipped")
        return x, y

    # -- training ------------------------------------------------------------
    def fit(self, dynamics, is_flipped=None, *, epochs: int = 10, lr: float = 0.01, batch_size: int = 64,
            weight_decay: float = 0.01, val_fraction: float = 0.1, seed: int = 0,
            progress: bool = True, workers: int | None = None) -> "NoiseDetector":
        """Train from scratch on dynamics with known flips, keeping the epoch with the best validation AP.

        Parameters
        ----------
        dynamics : Dynamics, ndarray of shape (N, T), or a list of them
            Several training sets (e.g. different noise rates) are resampled to
            one length and pooled.
        is_flipped : array-like of shape (N,), bool, or a list of them, optional
            Targets, True for a flipped label (integers or floats exactly 0/1 also do); default:
            ``dynamics.is_flipped``.
        epochs : int
            Passes over the training sequences (paper: 10).
        lr : float
            AdamW learning rate. The paper reports 0.1; we measured 0.01 to be
            more stable for our shorter runs (see the book's method chapter).
        batch_size : int
            Positive; paper: 64.
        weight_decay : float
            AdamW weight decay.
        val_fraction : float
            Share of samples held out (stratified) to pick the best epoch by average precision.
        seed : int
        progress : bool
        workers : int, optional
            CPU only: each batch is split into this many equal parts whose
            gradients are computed in parallel threads (one core each) and
            summed in a fixed order. The result is deterministic for a given
            ``workers`` and differs from another value only by float32
            rounding. Default: 2 where two cores are available, else 1
            (1.75x faster per epoch on 2 cores, measured).

        Returns
        -------
        self
            With ``members > 1``, member ``i`` is trained with seed ``seed + i``; ``history`` is the first
            member's and ``info["stages"]`` gets one entry per member.
        """
        self._check_train_args(epochs, val_fraction, batch_size)
        x, y = self._collect(dynamics, is_flipped, self._init_seq_len)
        nets = []
        for i in range(self.config["members"]):
            set_seed(seed + i)
            net = self._new_net()
            self._train(net, x, y, epochs, lr, batch_size, weight_decay, val_fraction, seed + i, progress,
                        stage="fit", workers=workers, member=i)
            nets.append(net)
        self.nets = nets
        self.config["seq_len"] = int(x.shape[1]) if self._init_seq_len is None else self._init_seq_len
        self.trained = True
        return self

    def fine_tune(self, dynamics, is_flipped=None, *, epochs: int = 5, lr: float = 0.003, batch_size: int = 64,
                  weight_decay: float = 0.01, val_fraction: float = 0.1, seed: int = 0,
                  progress: bool = True, workers: int | None = None) -> "NoiseDetector":
        """Continue training the current weights on new dynamics (paper Sec 3.3, Fig. 5).

        Same parameters as :meth:`fit`; the paper recommends a learning rate of
        0.03 with its 0.1 base rate, i.e. 0.3x the training rate, which is our default ratio.
        The epoch-0 weights compete too: fine-tuning never returns a detector
        worse on the validation split than the one it started from. Each member
        of an ensemble is fine-tuned on its own, member ``i`` with seed ``seed + i``.
        Switches the memorisation guard off (module docs): the detector has then read whole runs of this data.
        """
        if not self.trained:
            raise RuntimeError("fine_tune() needs a trained detector; call fit() or load() first")
        self._check_train_args(epochs, val_fraction, batch_size)
        x, y = self._collect(dynamics, is_flipped, self.seq_len)
        self._continue(x, y, epochs, lr, batch_size, weight_decay, val_fraction, seed, progress, "fine_tune", workers)
        return self

    def _continue(self, x, y, epochs, lr, batch_size, weight_decay, val_fraction, seed, progress, stage,
                  workers) -> None:
        for i, net in enumerate(self.nets):   # member i continues with seed + i, as in fit
            set_seed(seed + i)
            self._train(net, x, y, epochs, lr, batch_size, weight_decay, val_fraction, seed + i, progress,
                        stage=stage, workers=workers, member=i)
        self.config["memorisation_guard"] = False   # it has now read whole runs of this data (module docs)

    def adapt(self, dynamics, train, *, num_classes: int, rate: float = 0.2, threshold: float = 0.5,
              seed: int = 0, epochs: int = 5, lr: float = 0.003, batch_size: int = 64, weight_decay: float = 0.01,
              val_fraction: float = 0.1, progress: bool = True, workers: int | None = None) -> "NoiseDetector":
        """Fine-tune on one more training run of your own data, with noise added where it is known.

        For data unlike anything the detector was trained on. ``train`` is your own
        training loop: it is called once, on a copy of the given labels in which a
        share ``rate`` has been changed to a uniformly drawn other class (symmetric
        noise, seed ``seed``), and returns that run's dynamics. The detector is then
        fine-tuned (as :meth:`fine_tune`) to tell the changed labels from the others. The
        given labels have errors of their own, which that run presents as clean: the
        samples this detector already suspects in ``dynamics`` (score >= ``threshold``)
        are therefore left out of the clean class, so that it is not taught that its
        own finds are clean. Score ``dynamics`` with the adapted detector afterwards; like
        :meth:`fine_tune`, adapting switches the memorisation guard off.

        Cost: one training run, against K for cross-validated methods such as
        cleanlab. It helps most where the classifier memorises the given labels
        early, so that AUM is weak too (StatLog DNA, in the book's chapter "Find
        label errors in your own training loop"); the model card measures it on
        all its held-out settings, where it can cost a few hundredths of mAP
        under asymmetric noise that the shipped detector already ranks well.
        Without the left-out suspects, adapting to symmetric noise cost 0.03 to
        0.3 mAP on data with asymmetric errors (digits and UCI letter, in our
        tests).

        Parameters
        ----------
        dynamics : Dynamics
            Your run on the given labels; must carry ``labels`` (``DynamicsRecorder.result()`` does).
        train : callable
            ``train(labels)`` with ``labels`` an ndarray of shape (N,), int64, in sample order; trains the
            same model the same way on those labels and returns its :class:`~mislabel.dynamics.Dynamics`
            (N samples, any number of epochs).
        num_classes : int
            Number of classes C; labels are in ``[0, C)``.
        rate : float
            Share of labels changed for the extra run, in (0, 1).
        threshold : float
            Samples of ``dynamics`` scored at least this high are not used as clean examples.
        seed : int
            Seed of the added noise and of the fine-tuning.
        epochs, lr, batch_size, weight_decay, val_fraction, progress, workers
            As in :meth:`fine_tune`.

        Returns
        -------
        NoiseDetector
            ``self``, fine-tuned; ``info["adapt"]`` records the settings and how many samples were left out.
        """
        if not self.trained:
            raise RuntimeError("adapt() needs a trained detector; call fit(), load() or pretrained() first")
        self._check_train_args(epochs, val_fraction, batch_size)
        if not callable(train):
            raise TypeError(f"train must be a function train(labels) -> Dynamics, got {type(train).__name__}")
        if not isinstance(dynamics, Dynamics) or dynamics.labels is None:
            raise ValueError("adapt() needs the Dynamics of your run with its labels (DynamicsRecorder.result())")
        if not 0.0 < rate < 1.0:
            raise ValueError(f"rate must be in (0, 1), got {rate}")
        labels = np.asarray(dynamics.labels, dtype=np.int64)
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        if labels.min() < 0 or labels.max() >= num_classes:
            raise ValueError(f"labels must lie in [0, {num_classes}); got values from {labels.min()} to "
                             f"{labels.max()}: pass the number of classes of your data")
        extra, changed = _noise.symmetric(labels, rate, num_classes, seed=seed)
        keep = changed | (self.score(dynamics) < threshold)
        if keep.sum() == changed.sum():
            raise ValueError(f"every unchanged sample scores >= threshold={threshold}, so none is left as a clean "
                             "example: raise the threshold")
        run = train(extra.copy())
        if not isinstance(run, Dynamics):
            raise TypeError(f"train(labels) must return the run's Dynamics (DynamicsRecorder.result()), "
                            f"got {type(run).__name__}")
        if run.num_samples != len(labels):
            raise ValueError(f"train(labels) returned dynamics of {run.num_samples} samples, expected "
                             f"{len(labels)} (one per label, in the same order)")
        if run.labels is not None and not np.array_equal(np.asarray(run.labels), extra):
            raise ValueError("train(labels) must train on the labels it is given: the returned dynamics carry "
                             "other labels")
        x, y = self._collect(run, changed, self.seq_len)
        self._continue(x[keep], y[keep], epochs, lr, batch_size, weight_decay, val_fraction, seed, progress,
                       "adapt", workers)
        self.info["adapt"] = {"rate": float(rate), "threshold": float(threshold), "seed": int(seed),
                              "changed": int(changed.sum()), "left_out": int((~keep).sum()),
                              "num_samples": int(len(labels))}
        return self

    @staticmethod
    def _check_train_args(epochs, val_fraction, batch_size) -> None:
        check_positive_int(batch_size, "batch_size")
        if not isinstance(epochs, (int, np.integer)) or epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")

    def _train(self, net, x, y, epochs, lr, batch_size, weight_decay, val_fraction, seed, progress,
               stage, workers=None, member=0) -> None:
        """Train ``net`` (one member) on sequences ``x`` (N, L, F) float32 with targets ``y`` (N,) int64."""
        rng = np.random.default_rng(seed)
        val_mask = np.zeros(len(y), dtype=bool)
        if val_fraction > 0:
            for cls in (0, 1):
                ids = np.nonzero(y == cls)[0]
                n_val = int(round(val_fraction * len(ids)))
                val_mask[rng.choice(ids, size=n_val, replace=False)] = True
            if not val_mask.any() or y[val_mask].min() == y[val_mask].max():
                val_mask[:] = False   # too few samples for a validation set with both classes
        tr = np.nonzero(~val_mask)[0]
        if len(tr) == 0:
            raise ValueError(f"val_fraction={val_fraction} leaves no sequences to train on ({len(y)} in all); "
                             "lower val_fraction or pass more dynamics")
        xt = torch.as_tensor(x, device=self.device)
        yt = torch.as_tensor(y, device=self.device)
        opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
        gen = torch.Generator().manual_seed(int(seed))
        hist = {"epoch": [], "train_loss": [], "val_ap": []}
        best_state, best_ap, best_epoch = None, -1.0, 0
        if stage in ("fine_tune", "adapt") and val_mask.any():   # the starting weights compete too
            best_ap = self._val_ap(xt, y, val_mask, net)
            best_state = copy.deepcopy(net.state_dict())
        workers = resolve_workers(workers, self.device)
        # small LSTM steps: one thread per operation beats two on CPU (72 s vs 106 s per 50k x 200 epoch);
        # the cores work on different parts of the batch instead (_GradWorkers)
        with flush_denormal(), _intra_op_threads(1 if self.device.type == "cpu" else None), \
                _GradWorkers(net, workers) as grads:
            name = f"detector {stage}" + (f" {member + 1}/{len(self.nets)}" if len(self.nets) > 1 else "")
            bar = tqdm(range(epochs), desc=name, disable=not progress, leave=False)
            for epoch in bar:
                net.train()
                order = torch.as_tensor(tr)[torch.randperm(len(tr), generator=gen)].to(self.device)
                total = 0.0
                for i in range(0, len(order), batch_size):
                    idx = order[i:i + batch_size]
                    opt.zero_grad(set_to_none=True)
                    loss = grads.backward(xt, yt, idx)
                    nn.utils.clip_grad_norm_(net.parameters(), 5.0)
                    opt.step()
                    total += loss * len(idx)
                ap = self._val_ap(xt, y, val_mask, net) if val_mask.any() else float("nan")
                hist["epoch"].append(epoch + 1)
                hist["train_loss"].append(total / len(tr))
                hist["val_ap"].append(ap)
                bar.set_postfix(loss=f"{total / len(tr):.4f}", val_ap=f"{ap:.4f}")
                if not val_mask.any() or ap > best_ap:
                    best_ap, best_epoch = ap, epoch + 1
                    best_state = copy.deepcopy(net.state_dict())
        net.load_state_dict(best_state)
        net.eval()
        if member == 0:
            self.history = hist
        stage_info = {
            "stage": stage, "epochs": int(epochs), "lr": lr, "batch_size": batch_size, "seed": int(seed),
            "num_sequences": int(len(y)), "flip_rate": float(y.mean()), "best_epoch": int(best_epoch),
            "best_val_ap": float(best_ap), "input_length": int(x.shape[1]), "workers": workers,
        }
        if len(self.nets) > 1 or member > 0:
            stage_info["member"] = int(member)
        self.info.setdefault("stages", []).append(stage_info)

    def _val_ap(self, xt: torch.Tensor, y: np.ndarray, val_mask: np.ndarray, net) -> float:
        s = self._score_tensor(xt[torch.as_tensor(np.nonzero(val_mask)[0], device=self.device)], nets=[net])
        return _metrics.average_precision(s, y[val_mask])

    # -- inference -----------------------------------------------------------
    @torch.no_grad()
    def _score_tensor(self, x: torch.Tensor, batch_size: int = 8192, nets=None) -> np.ndarray:
        """Scores of ``nets`` (default: all members) on ``x`` (N, L, F): one net's softmax, or the sigmoid of
        the members' mean log-odds."""
        nets = self.nets if nets is None else nets
        was = [n.training for n in nets]
        out = np.empty(len(x), dtype=np.float32)
        with flush_denormal():
            for net in nets:
                net.eval()
            for i in range(0, len(x), batch_size):
                xb = x[i:i + batch_size]
                logits = [self._logits(net, xb) for net in nets]
                if len(logits) == 1:
                    p = torch.softmax(logits[0], 1)[:, 1]
                else:
                    p = torch.sigmoid(torch.stack([z[:, 1] - z[:, 0] for z in logits]).mean(0))
                out[i:i + batch_size] = p.cpu().numpy()
        for net, w in zip(nets, was):
            net.train(w)
        return out

    def _logits(self, net: _LSTMNet, xb: torch.Tensor) -> torch.Tensor:
        # on CPU the fused inference path (mislabel.fast_lstm) equals nn.LSTM to float32 rounding, ~2x faster
        if self.device.type == "cpu" and _fast.supports(net.lstm):
            return net.head(_fast.lstm_last_hidden(net.lstm, xb))
        return net(xb)

    def score(self, dynamics, batch_size: int = 8192, *, memorisation_guard: bool | None = None) -> np.ndarray:
        """Probability that each sample is mislabeled.

        Parameters
        ----------
        dynamics : Dynamics, or ndarray of shape (N, T), float in [0, 1]
            A bare array of given-label probabilities only for ``features="prob"`` detectors;
            the others, the shipped one included, read margins: pass the recorder's Dynamics.
            Any number of epochs T (see "Sequence length" in the module docs).
        batch_size : int
            Positive; sequences scored per step.
        memorisation_guard : bool, optional
            Override the detector's own setting for this call (see "Memorisation guard" in the
            module docs); False scores the whole run.

        Returns
        -------
        ndarray of shape (N,), float32
            In sample order; higher means more likely mislabeled.

        Notes
        -----
        With the percentile and pair channels (``features`` containing "rank" or "pairs", the
        shipped detector included), a sample's score depends on the other samples scored with it:
        percentiles and pair shares are computed within the scored set (module docs). The
        memorisation guard, too, decides for the scored set as a whole. Scoring a subset, one class
        or a single sample therefore gives other scores than scoring the whole run. Score the whole
        run at once, then select the samples you want from the result.
        """
        check_positive_int(batch_size, "batch_size")
        return self._view(dynamics, batch_size, memorisation_guard)[1]

    def scored_epochs(self, dynamics, batch_size: int = 8192) -> int:
        """How many of the run's first epochs :meth:`score` reads: all T, or fewer where the memorisation
        guard (module docs) keeps the epochs before the onset.

        Parameters
        ----------
        dynamics : Dynamics, or ndarray of shape (N, T) (as in :meth:`score`)
        batch_size : int
            Positive.

        Returns
        -------
        int
        """
        check_positive_int(batch_size, "batch_size")
        return self._view(dynamics, batch_size)[0]

    def _view(self, dynamics, batch_size: int = 8192, guard: bool | None = None) -> tuple[int, np.ndarray]:
        """(epochs read, scores): the whole run, or its epochs before the memorisation onset where the guard
        (``guard``, default the detector's setting) is on, finds an onset and the early view flags
        ``GUARD_RATIO`` times as many samples (score >= 0.5)."""
        full = self._score_tensor(self._inputs(dynamics), batch_size)
        T = np.shape(dynamics.probs if isinstance(dynamics, Dynamics) else dynamics)[1]
        guard = self.config.get("memorisation_guard") if guard is None else guard
        if (not guard or not isinstance(dynamics, Dynamics)
                or dynamics.margins is None or dynamics.runner_up is None):
            return T, full
        onset = memorisation_onset(dynamics)
        if onset is None:
            return T, full
        early = self._score_tensor(self._inputs(dynamics.first_epochs(onset)), batch_size)
        if (early >= 0.5).mean() >= GUARD_RATIO * max((full >= 0.5).mean(), 1.0 / len(full)):
            return onset, early
        return T, full

    def member_scores(self, dynamics, batch_size: int = 8192) -> np.ndarray:
        """Each member's score on the epochs the ensemble's :meth:`score` reads, computing the input channels once.

        Where the detector's memorisation guard is on (module docs), the ensemble decides once, as
        :meth:`scored_epochs` tells, whether the whole run or its epochs before the onset are read,
        and every member scores that same view: row ``i`` is then what ``member(i).score`` gives
        only where that member, deciding on its own, picks the same view. ``member(i).score``
        applies the guard with member ``i``'s own scores and may read other epochs.

        Parameters
        ----------
        dynamics : Dynamics, or ndarray of shape (N, T), float in [0, 1]
            A bare array of given-label probabilities only for ``features="prob"`` detectors;
            the others, the shipped one included, read margins: pass the recorder's Dynamics.
        batch_size : int
            Positive.

        Returns
        -------
        ndarray of shape (members, N), float32
            Row ``i``: member ``i``'s scores, in sample order.
        """
        check_positive_int(batch_size, "batch_size")
        if self.config.get("memorisation_guard") and isinstance(dynamics, Dynamics):   # the view score() reads
            epochs = self.scored_epochs(dynamics, batch_size)
            if epochs < dynamics.num_epochs:
                dynamics = dynamics.first_epochs(epochs)
        x = self._inputs(dynamics)
        return np.stack([self._score_tensor(x, batch_size, nets=[net]) for net in self.nets])

    def _inputs(self, dynamics) -> torch.Tensor:
        """Input channels of ``dynamics``, resampled: (N, seq_len, F) float32 on the detector's device."""
        if not self.trained:
            raise RuntimeError("this detector is untrained; call fit(), load() or NoiseDetector.pretrained()")
        probs, _ = features_of(dynamics, self.config["features"])
        return torch.as_tensor(self._prepare(probs), device=self.device)

    # -- persistence ---------------------------------------------------------
    def save(self, path) -> Path:
        """Write a checkpoint (config, weights, training metadata) atomically; loadable with ``weights_only=True``."""
        if not self.trained:
            raise RuntimeError("refusing to save an untrained detector")
        from . import __version__
        payload = {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION,
                   "library_version": __version__, "config": dict(self.config),
                   "state_dicts": [{k: v.detach().cpu() for k, v in net.state_dict().items()} for net in self.nets],
                   "info": _plain(self.info), "history": _plain(self.history)}
        path = Path(path)
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)
        return path

    @classmethod
    def load(cls, path, device=None) -> "NoiseDetector":
        """Load a checkpoint written by :meth:`save` (``torch.load(..., weights_only=True)``).

        Raises
        ------
        FileNotFoundError, ValueError
            Missing file, or a file that is not a mislabel detector checkpoint.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no detector checkpoint at {path}; train one with NoiseDetector().fit(...).save(path)")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for foreign or corrupt files
            raise ValueError(f"{path} is not a loadable detector checkpoint ({type(exc).__name__}); "
                             "re-create it with NoiseDetector.save") from None
        if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path} is not a mislabel detector checkpoint (missing format tag {CHECKPOINT_FORMAT!r})")
        version = payload.get("format_version")
        if version not in (1, CHECKPOINT_VERSION):
            raise ValueError(f"{path} has checkpoint version {version}; "
                             f"this library reads versions 1 to {CHECKPOINT_VERSION}")
        cfg = payload.get("config")
        if not isinstance(cfg, dict):
            raise ValueError(f"{path} is damaged: its configuration is missing; re-create it with NoiseDetector.save")
        raw = payload.get("state_dict" if version == 1 else "state_dicts")   # one net, or one per member
        states = [] if raw is None else [raw] if version == 1 else list(raw)
        if not states or len(states) != cfg.get("members", 1):
            raise ValueError(f"{path}: weights do not match the stored configuration "
                             f"({len(states)} member weights for members={cfg.get('members', 1)})")
        try:
            det = cls(cfg["hidden_size"], cfg["num_layers"], cfg["seq_len"], cfg["resample"],
                      cfg.get("features", "prob"), device=device, members=len(states),
                      memorisation_guard=cfg.get("memorisation_guard", False))
            for net, state in zip(det.nets, states):
                net.load_state_dict(state)
                net.eval()
            det.trained = True
        except (RuntimeError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: weights do not match the stored configuration ({exc})") from None
        det.info = payload.get("info", {})
        det.history = payload.get("history", {})
        return det

    @classmethod
    def pretrained(cls, device=None) -> "NoiseDetector":
        """The detector shipped with the package (see the book's model card)."""
        path = Path(__file__).parent / "weights" / "detector.pt"
        if not path.is_file():
            raise FileNotFoundError(
                "this installation ships no pretrained detector (mislabel/weights/detector.pt); "
                "train one with NoiseDetector().fit(dynamics, is_flipped) or pass --detector")
        return cls.load(path, device=device)

    def __repr__(self) -> str:
        c = self.config
        extra = f", members={c['members']}" if c["members"] > 1 else ""
        return (f"NoiseDetector(hidden_size={c['hidden_size']}, num_layers={c['num_layers']}, "
                f"seq_len={c['seq_len']}{extra})")


def resolve_workers(workers: int | None, device: torch.device) -> int:
    """Number of gradient threads for detector training: ``workers``, or by default 2 on a CPU with 2+ cores."""
    if device.type != "cpu":
        return 1
    if workers is None:
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            cores = os.cpu_count() or 1
        return 2 if cores >= 2 else 1
    if not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    return int(workers)


class _GradWorkers:
    """Data-parallel gradients on one CPU: a batch is split into ``n`` parts, one thread each.

    PyTorch releases the GIL inside its operations, so threads that run one
    LSTM forward and backward each use separate cores (with one intra-op
    thread per operation). Gradients of the parts are summed in a fixed order,
    so training stays deterministic. Each thread flushes denormal floats to
    zero, a per-thread CPU setting (without it backward is ~6x slower).
    """

    def __init__(self, net: nn.Module, n: int) -> None:
        self.net, self.n = net, int(n)
        self.params = [p for p in net.parameters() if p.requires_grad]
        self.pool = None

    def __enter__(self) -> "_GradWorkers":
        if self.n > 1:
            from concurrent.futures import ThreadPoolExecutor
            self.pool = ThreadPoolExecutor(self.n - 1, thread_name_prefix="mislabel-grad",
                                           initializer=torch.set_flush_denormal, initargs=(True,))
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown()

    def _part(self, xt, yt, idx, total: int):
        loss = F.cross_entropy(self.net(xt[idx]), yt[idx], reduction="sum") / total
        grads = torch.autograd.grad(loss, self.params)
        return float(loss.detach()), grads

    def backward(self, xt: torch.Tensor, yt: torch.Tensor, idx: torch.Tensor) -> float:
        """Set ``.grad`` of the parameters to the gradient of the mean loss over rows ``idx``; return that loss."""
        if self.pool is None:
            loss = F.cross_entropy(self.net(xt[idx]), yt[idx])
            loss.backward()
            return float(loss.detach())
        parts = [c for c in idx.tensor_split(self.n) if len(c)]
        futures = [self.pool.submit(self._part, xt, yt, c, len(idx)) for c in parts[1:]]
        results = [self._part(xt, yt, parts[0], len(idx))] + [f.result() for f in futures]
        for k, p in enumerate(self.params):
            g = results[0][1][k]
            for r in results[1:]:
                g = g + r[1][k]
            p.grad = g
        return sum(r[0] for r in results)


@contextlib.contextmanager
def _intra_op_threads(n: int | None):
    """Run the block with ``n`` torch intra-op threads (None: unchanged); restore the count on exit."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _plain(obj):
    """Convert to JSON-like builtins so the checkpoint loads with weights_only=True."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj)
    if isinstance(obj, (np.integer, int, bool, np.bool_)):
        return obj.item() if hasattr(obj, "item") else obj
    if obj is None or isinstance(obj, str):
        return obj
    return str(obj)


def detect(dynamics, detector: "NoiseDetector | str | Path | None" = None) -> np.ndarray:
    """Rank samples by how likely their label is wrong.

    Parameters
    ----------
    dynamics : Dynamics
        As recorded by :class:`~mislabel.dynamics.DynamicsRecorder` (with margins, the default). A bare
        ndarray of shape (N, T) of given-label probabilities works only with a ``features="prob"`` detector.
    detector : NoiseDetector, path to a checkpoint, or None for the shipped pretrained detector

    Returns
    -------
    ndarray of shape (N,), float32
        Higher = more likely mislabeled, in sample order.

    Notes
    -----
    The shipped detector reads the margin's percentile within the run and the pair channels
    (:func:`pair_confusion`), both computed over the samples scored together, and its memorisation
    guard decides for them as a whole. A sample's score therefore depends on the other samples
    scored with it: scoring a subset, one class or a single sample gives other scores than scoring
    the whole run. Pass the whole run at once, then select the samples you want from the result.
    """
    if detector is None:
        detector = NoiseDetector.pretrained()
    elif not isinstance(detector, NoiseDetector):
        detector = NoiseDetector.load(detector)
    return detector.score(dynamics)
