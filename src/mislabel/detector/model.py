"""The learned noise detector, :class:`NoiseDetector`, and :func:`detect`.

Architecture (paper Sec 3.2/4.1): a 2-layer LSTM with 64 hidden units reads each sample's sequence of
input channels (:mod:`mislabel.detector.features`); a linear head on the last step gives two logits
(clean, mislabeled), trained with cross-entropy and AdamW (:mod:`mislabel.detector.network`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .._utils import resolve_device, set_seed
from .._validation import check_positive_int
from ..dynamics import Dynamics
from . import checkpoint as _checkpoint
from . import training as _training
from .features import CHANNELS, features_of, parse_features, resample
from .guard import guarded_view
from .network import _LSTMNet, score_nets


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
        Resample every input onto ``seq_len`` points spread over the same relative training time
        (:func:`~mislabel.detector.features.resample`): what the LSTM learned about *when* things happen
        then holds for runs of any length. False: sequences are fed as they are.
    features : str or sequence of str
        Input channels, one of :data:`mislabel.detector.features.FEATURES` (e.g. ``"prob+margin+rank"``, or
        as a tuple of channel names); "prob" is the paper's detector. Stored in ``config`` as the string.
    device : str, optional
        Where to train and score; default CPU.
    members : int
        Number of LSTMs in an ensemble, member ``i`` trained with seed ``seed + i`` (its own initialisation,
        batch order and validation split); scores average the members' log-odds
        (:func:`~mislabel.detector.network.score_nets`). 1 = the paper's single detector. Training and
        scoring cost grow in proportion.
    memorisation_guard : bool
        Score only the epochs before the classifier starts to memorise wrong labels when the whole run
        leaves the detector unsure (:mod:`mislabel.detector.guard`). Stored in checkpoints.

    Raises
    ------
    ValueError
        For non-positive sizes, ``members`` or ``seq_len``, or unknown ``features``.
    """

    def __init__(self, hidden_size: int = 64, num_layers: int = 2, seq_len: int | None = None,
                 resample: bool = True, features="prob", device=None, members: int = 1,
                 memorisation_guard: bool = False) -> None:
        for name, value in (("hidden_size", hidden_size), ("num_layers", num_layers), ("members", members)):
            check_positive_int(value, name)
        if seq_len is not None:
            check_positive_int(seq_len, "seq_len", " (or None: the length of the training runs)")
        self._init_seq_len = None if seq_len is None else int(seq_len)   # fit() derives it from the data if None
        features = "+".join(parse_features(features))   # the string form, as checkpoints store it
        self.config = {"hidden_size": int(hidden_size), "num_layers": int(num_layers),
                       "seq_len": None if seq_len is None else int(seq_len), "resample": bool(resample),
                       "features": features, "members": int(members),
                       "memorisation_guard": bool(memorisation_guard)}
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

        Raises
        ------
        IndexError
            If ``i`` is out of range.
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
            AdamW learning rate (paper: 0.1).
        batch_size : int
            Positive; paper: 64.
        weight_decay : float
            AdamW weight decay.
        val_fraction : float
            Share of samples held out (stratified) to pick the best epoch by average precision, in [0, 1).
        seed : int
        progress : bool
        workers : int, optional
            CPU only: each batch is split into this many equal parts whose
            gradients are computed in parallel threads (one core each) and
            summed in a fixed order. The result is deterministic for a given
            ``workers`` and differs from another value only by float32
            rounding. Default: 2 where two cores are available, else 1.

        Returns
        -------
        self
            With ``members > 1``, member ``i`` is trained with seed ``seed + i``; ``history`` is the first
            member's and ``info["stages"]`` gets one entry per member.

        Raises
        ------
        ValueError
            For invalid training settings, missing or malformed targets, or dynamics the features cannot read.
        """
        _training.check_train_args(epochs, val_fraction, batch_size)
        x, y = _training.collect(self.config, dynamics, is_flipped, self._init_seq_len)
        nets = []
        for i in range(self.config["members"]):
            set_seed(seed + i)
            net = self._new_net()
            _training.train_member(self, net, x, y, epochs, lr, batch_size, weight_decay, val_fraction, seed + i,
                                   progress, stage="fit", workers=workers, member=i)
            nets.append(net)
        self.nets = nets
        self.config["seq_len"] = int(x.shape[1]) if self._init_seq_len is None else self._init_seq_len
        self.trained = True
        return self

    def fine_tune(self, dynamics, is_flipped=None, *, epochs: int = 5, lr: float = 0.003, batch_size: int = 64,
                  weight_decay: float = 0.01, val_fraction: float = 0.1, seed: int = 0,
                  progress: bool = True, workers: int | None = None) -> "NoiseDetector":
        """Continue training the current weights on new dynamics (paper Sec 3.3, Fig. 5).

        Same parameters as :meth:`fit`; the default learning rate is 0.3x that of :meth:`fit`, the
        paper's ratio. The starting weights compete too: fine-tuning never returns a detector
        worse on the validation split than the one it started from. Each member
        of an ensemble is fine-tuned on its own, member ``i`` with seed ``seed + i``.
        Switches the memorisation guard off: the detector has then read whole runs of this data.

        Raises
        ------
        RuntimeError
            If the detector is untrained.
        ValueError
            As :meth:`fit`.
        """
        if not self.trained:
            raise RuntimeError("fine_tune() needs a trained detector; call fit() or load() first")
        _training.check_train_args(epochs, val_fraction, batch_size)
        x, y = _training.collect(self.config, dynamics, is_flipped, self.seq_len)
        _training.train_members(self, x, y, epochs, lr, batch_size, weight_decay, val_fraction, seed, progress,
                                "fine_tune", workers)
        return self

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
        :meth:`fine_tune`, adapting switches the memorisation guard off. Cost: one extra training run.

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

        Raises
        ------
        RuntimeError
            If the detector is untrained.
        TypeError
            If ``train`` is not callable or does not return Dynamics.
        ValueError
            For invalid arguments, labels outside ``[0, num_classes)``, a threshold that leaves no clean
            example, or a run of other samples or labels than it was given.
        """
        _training.adapt(self, dynamics, train, num_classes=num_classes, rate=rate, threshold=threshold, seed=seed,
                        epochs=epochs, lr=lr, batch_size=batch_size, weight_decay=weight_decay,
                        val_fraction=val_fraction, progress=progress, workers=workers)
        return self

    # -- inference -----------------------------------------------------------
    def _score_tensor(self, x: torch.Tensor, batch_size: int = 8192, nets=None) -> np.ndarray:
        """Scores of ``nets`` (default: all members) on ``x`` (N, L, F) float32: (N,) float32."""
        return score_nets(self.nets if nets is None else nets, x, self.device, batch_size)

    def score(self, dynamics, batch_size: int = 8192, *, memorisation_guard: bool | None = None) -> np.ndarray:
        """Probability that each sample is mislabeled.

        Parameters
        ----------
        dynamics : Dynamics, or ndarray of shape (N, T), float in [0, 1]
            A bare array of given-label probabilities only for ``features="prob"`` detectors;
            the others, the shipped one included, read margins: pass the recorder's Dynamics.
            Any number of epochs T (resampled onto ``seq_len``, see ``resample``).
        batch_size : int
            Positive; sequences scored per step.
        memorisation_guard : bool, optional
            Override the detector's own setting for this call (:mod:`mislabel.detector.guard`);
            False scores the whole run.

        Returns
        -------
        ndarray of shape (N,), float32
            In sample order; higher means more likely mislabeled.

        Raises
        ------
        RuntimeError
            If the detector is untrained.
        ValueError
            For dynamics the detector's features cannot read.

        Notes
        -----
        With the percentile and pair channels (``features`` containing "rank" or "pairs", the
        shipped detector included), a sample's score depends on the other samples scored with it:
        percentiles and pair shares are computed within the scored set. The memorisation guard,
        too, decides for the scored set as a whole. Scoring a subset, one class or a single sample
        therefore gives other scores than scoring the whole run. Score the whole run at once, then
        select the samples you want from the result.
        """
        check_positive_int(batch_size, "batch_size")
        return self._view(dynamics, batch_size, memorisation_guard)[1]

    def scored_epochs(self, dynamics, batch_size: int = 8192) -> int:
        """How many of the run's first epochs :meth:`score` reads: all T, or fewer where the memorisation
        guard keeps the epochs before the onset.

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
        (``guard``, default the detector's setting) keeps them (:func:`~mislabel.detector.guard.guarded_view`)."""
        guard = self.config.get("memorisation_guard") if guard is None else guard
        return guarded_view(dynamics, lambda d: self._score_tensor(self._inputs(d), batch_size), guard)

    def member_scores(self, dynamics, batch_size: int = 8192) -> np.ndarray:
        """Each member's score on the epochs the ensemble's :meth:`score` reads, computing the input channels once.

        Where the detector's memorisation guard is on, the ensemble decides once, as
        :meth:`scored_epochs` tells, whether the whole run or its epochs before the onset are read,
        and every member scores that same view: row ``i`` is then what ``member(i).score`` gives
        only where that member, deciding on its own, picks the same view.

        Parameters
        ----------
        dynamics : Dynamics, or ndarray of shape (N, T), float in [0, 1]
            As in :meth:`score`.
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
        x, _ = features_of(dynamics, self.config["features"])
        if self.config["resample"] and self.seq_len is not None:
            x = resample(x, self.seq_len)
        return torch.as_tensor(x, device=self.device)

    # -- persistence (mislabel.detector.checkpoint) ---------------------------
    def save(self, path) -> Path:
        """Write a checkpoint (config, weights, training metadata) atomically; loadable with ``weights_only=True``.

        Raises RuntimeError for an untrained detector, TypeError where ``info`` or ``history`` holds
        something JSON cannot (str, int, float, bool, None, lists, dicts, NumPy scalars and arrays can).
        """
        return _checkpoint.save(self, path)

    @classmethod
    def load(cls, path, device=None) -> "NoiseDetector":
        """Load a checkpoint written by :meth:`save` (``torch.load(..., weights_only=True)``).

        Raises FileNotFoundError for a missing file, ValueError for one that is not a mislabel detector checkpoint.
        """
        return _checkpoint.load(cls, path, device)

    @classmethod
    def pretrained(cls, device=None) -> "NoiseDetector":
        """The detector shipped with the package (see the book's model card); FileNotFoundError if it ships none."""
        return _checkpoint.pretrained(cls, device)

    def __repr__(self) -> str:
        c = self.config
        extra = f", members={c['members']}" if c["members"] > 1 else ""
        return (f"NoiseDetector(hidden_size={c['hidden_size']}, num_layers={c['num_layers']}, "
                f"seq_len={c['seq_len']}{extra})")


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

    Raises
    ------
    FileNotFoundError, ValueError
        For a missing or unreadable checkpoint, or dynamics the detector cannot read.

    Notes
    -----
    The shipped detector reads the margin's percentile within the run and the pair channels
    (:func:`~mislabel.detector.features.pair_confusion`), both computed over the samples scored
    together, and its memorisation guard decides for them as a whole. A sample's score therefore
    depends on the other samples scored with it: scoring a subset, one class or a single sample gives
    other scores than scoring the whole run. Pass the whole run at once, then select the samples you
    want from the result.
    """
    if detector is None:
        detector = NoiseDetector.pretrained()
    elif not isinstance(detector, NoiseDetector):
        detector = NoiseDetector.load(detector)
    return detector.score(dynamics)
