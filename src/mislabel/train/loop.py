"""The epoch loop shared by :func:`fit` and :func:`mislabel.distributed.fit_ddp`, and :func:`fit`."""
from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from .._utils import amp_enabled, jsonable, resolve_device, set_seed
from ..dynamics import Dynamics, DynamicsRecorder
from . import checkpoint as _ckpt
from .augment import device_data
from .checks import check_finite, check_inputs, check_settings, check_test
from .graphs import GraphedStep, check_cuda_graphs
from .sizes import check_recording_size
from .step import accuracy, build_model, eval_batch_size, forward, sgd, sgd_step

__all__ = ["TrainResult", "TrainOptions", "Training", "HISTORY_KEYS", "log_epoch", "run_meta", "fit"]

HISTORY_KEYS = ("epoch", "lr", "train_loss", "train_acc", "test_acc", "seconds")


@dataclass
class TrainResult:
    """What :func:`fit` returns.

    Attributes
    ----------
    dynamics : Dynamics or None
        Recorded dynamics, ``probs`` of shape (N, epochs); None when ``record=None``.
    model : torch.nn.Module
        The trained model (in eval mode, on the training device).
    history : dict of lists
        Per epoch: ``epoch``, ``lr``, ``train_loss``, ``train_acc`` (against the
        given labels), ``test_acc`` (NaN without test data), ``seconds``.
    normalization : tuple of (mean, std)
        Per-channel statistics used to scale the inputs; :func:`predict` reuses them.
    """

    dynamics: Dynamics | None
    model: nn.Module
    history: dict = field(default_factory=dict)
    normalization: tuple = ((), ())


@dataclass(frozen=True, eq=False)
class TrainOptions:
    """The keyword arguments that :func:`fit` and :func:`mislabel.distributed.fit_ddp` share, with
    :func:`fit`'s defaults; see :func:`fit` for each. They are validated by :class:`Training`."""

    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    milestones: tuple = (0.5, 0.75)
    augment: object = "auto"
    record: str | None = "train"
    seed: int = 0
    amp: bool = False
    num_classes: int | None = None
    test_images: object = None
    test_labels: object = None
    is_flipped: object = None
    store_full: bool = False
    full_path: object = None
    meta: dict | None = None
    progress: bool = True
    checkpoint_dir: object = None
    resume: bool = True

    @classmethod
    def from_kwargs(cls, caller: str, kwargs: dict) -> "TrainOptions":
        """The options named in ``kwargs``, the others at their defaults.

        Raises
        ------
        TypeError
            For a name that is not an option, as Python says it for ``caller``'s own arguments.
        """
        names = {f.name for f in fields(cls)}
        for name in kwargs:
            if name not in names:
                raise TypeError(f"{caller}() got an unexpected keyword argument {name!r}")
        return cls(**kwargs)


class Training:
    """One training run in this process: checked inputs, the model, device-resident data and SGD.

    :meth:`run` trains all epochs: each one draws :meth:`batches`, takes a
    :meth:`step` on each, hands every step's logits to :meth:`record_batch`,
    steps the learning-rate schedule, calls :meth:`record_epoch`, reduces the
    epoch's loss and accuracy with :meth:`totals`, and logs them with the test
    accuracy. :func:`fit` runs this class as it is;
    :func:`mislabel.distributed.fit_ddp` runs a subclass whose hooks shard the
    batches across ranks and gather what each rank records.

    Parameters
    ----------
    model, images, labels, epochs, device, cuda_graphs, recorder
        As in :func:`fit`.
    options : TrainOptions

    Attributes
    ----------
    model : nn.Module
        The module being trained; ``net`` is what takes the steps (the same
        module, or a wrapper of it such as ``DistributedDataParallel``).
    x_all, y_all : Tensor of shape (N, C, H, W) float32, and (N,) int64
        The training data on ``device``.
    test : (x_test, y_test) or None
    rec : DynamicsRecorder or None
    count : int
        Samples per epoch that the mean loss and accuracy are taken over (N).
    rank : int
        0 here. A subclass running as another rank skips the test data, the
        recorder and the progress bar, and augments from its own random stream.
    start : int
        Epochs already done: those of the checkpoint resumed from (``options.checkpoint_dir``), else 0.

    Raises
    ------
    ValueError
        Bad inputs or settings (the message says which and how to fix it).
    """

    rank = 0

    def __init__(self, model, images, labels, epochs, options: TrainOptions, device=None, *,
                 cuda_graphs: bool | None = False, recorder: DynamicsRecorder | None = None) -> None:
        o = self.options = options
        self.epochs, self.record = epochs, o.record
        images, self.y_np, self.N, self.C = check_inputs(images, labels, epochs, o.record, o.num_classes)
        check_test(images, o.test_images, o.test_labels)
        self.batch_size, self.lr, self.seed = check_settings(o.batch_size, o.lr, o.seed)
        self.device = dev = resolve_device(device if device is not None else self.default_device())
        graphs = check_cuda_graphs(cuda_graphs, dev, isinstance(model, str))
        set_seed(self.seed)
        self.model, self.model_name = build_model(model, images, self.C, dev)
        self.net = self.model
        self.use_amp = amp_enabled(o.amp, dev)
        main = self.rank == 0
        self.norm, self.x_all, self.y_all, self.pad, self.flip, self.test = device_data(
            images, self.y_np, self.C, dev, o.augment, o.test_images if main else None, o.test_labels)
        self.opt, self.sched = sgd(self.model, epochs, self.lr, o.momentum, o.weight_decay, o.milestones)
        self.gen = torch.Generator(device=dev)
        self.gen.manual_seed(int(self.seed) if main else int(self.seed) + (self.rank << 32))
        self.rec = recorder
        if o.record is not None and self.rec is None and main:
            check_recording_size(self.N, self.C, epochs, o.store_full and o.full_path is None, dev)
            self.rec = DynamicsRecorder(self.N, num_classes=self.C, store_full=o.store_full, device=dev, check=False,
                                        capacity=epochs, full_path=o.full_path)
        self.graphed = GraphedStep(self.model, self.opt, self.batch_size, self.use_amp) if graphs else None
        self.count = self.N
        self.desc = f"train {self.model_name}"
        self.start, self.history = 0, {k: [] for k in HISTORY_KEYS}
        self.checkpoint = None if o.checkpoint_dir is None else Path(o.checkpoint_dir) / _ckpt.CHECKPOINT
        if self.checkpoint is not None:
            if o.full_path is not None:
                raise ValueError("full_path cannot be combined with checkpoint_dir: a run that streams its full "
                                 "probabilities to a file cannot be resumed; use store_full=True (kept in memory "
                                 "and in the checkpoint) or checkpoint_dir=None")
            self.settings = _ckpt.settings_of(self, images, o.test_images, o.test_labels)
            state = self.read_checkpoint() if o.resume else None
            if state is not None:
                _ckpt.check_settings(state, self.settings, self.checkpoint)
                _ckpt.restore(self, state)
                self.start, self.history = state["epoch"], state["history"]

    # ------------------------------------------------------------------ hooks
    def default_device(self):
        """The device when none is given: None here (CUDA when available, see :func:`mislabel.resolve_device`)."""
        return None

    def batches(self) -> list[torch.Tensor]:
        """This epoch's batches: a fresh permutation of the N rows, in slices of ``batch_size`` (int64 tensors)."""
        perm = torch.randperm(self.N, device=self.device, generator=self.gen)
        return [perm[i:i + self.batch_size] for i in range(0, self.N, self.batch_size)]

    def step(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One optimisation step of ``net`` on rows ``idx``: (logits, labels, loss) as :func:`sgd_step` returns."""
        if self.graphed is not None:
            return self.graphed(self.x_all, self.y_all, idx, self.pad, self.flip, self.gen)
        return sgd_step(self.net, self.opt, self.x_all, self.y_all, idx, self.pad, self.flip, self.gen,
                        self.use_amp)

    def record_batch(self, logits: torch.Tensor, labels: torch.Tensor, idx: torch.Tensor) -> None:
        """After each step, without gradients: ``record="train"`` records the step's logits (B, C)."""
        if self.record == "train":
            self.rec.update(logits, labels, idx)

    def record_epoch(self) -> None:
        """After each epoch: ``record="eval"`` records an eval-mode pass over the training set; then the
        recorder moves on to the next epoch."""
        if self.record == "eval":
            self.model.eval()
            with torch.no_grad():
                eb = eval_batch_size(self.device)
                for i in range(0, self.N, eb):
                    self.rec.update(forward(self.model, self.x_all[i:i + eb], self.use_amp), self.y_all[i:i + eb],
                                    torch.arange(i, min(i + eb, self.N), device=self.device))
        if self.record is not None:
            self.rec.next_epoch()

    def totals(self, loss_sum: torch.Tensor, correct: torch.Tensor) -> tuple[float, float]:
        """The epoch's summed loss and number of correct predictions as Python numbers."""
        return float(loss_sum), int(correct)

    def rank_streams(self) -> list[dict]:
        """Every rank's own random streams (:func:`~mislabel.train.checkpoint.rank_streams`): this one's here."""
        return [_ckpt.rank_streams(self)]

    def read_checkpoint(self) -> dict | None:
        """The checkpoint in ``checkpoint_dir`` (None when there is none); stale temporary files are removed."""
        _ckpt.remove_stale(self.checkpoint.parent)
        return _ckpt.read(self.checkpoint)

    def save_checkpoint(self, epoch: int, history: dict) -> None:
        """Write the state after ``epoch`` complete epochs into ``checkpoint_dir`` (rank 0), atomically."""
        state = _ckpt.state_of(self, epoch, history, self.rank_streams())
        if self.rank == 0:
            _ckpt.write(self.checkpoint, state)

    # ------------------------------------------------------------------ the loop
    def run(self) -> dict:
        """Train all epochs; return the history (see :class:`TrainResult`) and leave the model in eval mode.

        Raises
        ------
        TrainingDivergedError
            If an epoch's mean loss, or the final weights, are NaN or inf.
        """
        hist = self.history
        bar = tqdm(range(self.start, self.epochs), desc=self.desc, initial=self.start, total=self.epochs,
                   disable=not self.options.progress or self.rank != 0, leave=False)
        for epoch in bar:
            t0 = time.perf_counter()
            self.net.train()
            batches = self.batches()
            loss_sum = torch.zeros((), device=self.device)
            correct = torch.zeros((), device=self.device, dtype=torch.int64)
            for idx in batches:
                logits, yb, loss = self.step(idx)
                with torch.no_grad():
                    loss_sum += loss * len(idx)
                    correct += (logits.argmax(1) == yb).sum()
                    self.record_batch(logits, yb, idx)
            current_lr = self.opt.param_groups[0]["lr"]
            self.sched.step()
            self.record_epoch()
            loss_total, n_correct = self.totals(loss_sum, correct)
            test_acc = accuracy(self.model, *self.test, self.use_amp) if self.test is not None else float("nan")
            log_epoch(hist, bar, epoch, current_lr, loss_total / self.count, n_correct / self.count, test_acc, t0)
            check_finite(hist["train_loss"][-1], epoch, self.lr, self.model if epoch == self.epochs - 1 else None)
            if self.checkpoint is not None:
                self.save_checkpoint(epoch + 1, hist)
        self.model.eval()
        return hist

    def result(self, history: dict, **extra) -> TrainResult:
        """The :class:`TrainResult`; ``extra`` entries go into the dynamics' meta (:func:`run_meta`)."""
        dyn = None
        if self.record is not None and self.rec is not None:
            o = self.options
            info = run_meta(self.model_name, self.epochs, self.record, self.seed, self.batch_size, self.lr,
                            o.weight_decay, self.C, o.meta, **extra)
            dyn = self.rec.result(labels=self.y_np, is_flipped=o.is_flipped, meta=info)
        return TrainResult(dyn, self.model, history, self.norm)


def log_epoch(hist: dict, bar, epoch: int, lr: float, train_loss: float, train_acc: float, test_acc: float,
              t0: float) -> None:
    """Append one epoch to a history dict of lists (keys :data:`HISTORY_KEYS`) and update the progress bar.

    ``epoch`` is 0-based and stored 1-based; ``seconds`` is the time since ``t0`` (``time.perf_counter()``).
    """
    for key, value in (("epoch", epoch + 1), ("lr", float(lr)), ("train_loss", train_loss),
                       ("train_acc", train_acc), ("test_acc", test_acc), ("seconds", time.perf_counter() - t0)):
        hist[key].append(value)
    bar.set_postfix(loss=f"{train_loss:.3f}", acc=f"{train_acc:.3f}")


def run_meta(model_name, epochs, record, seed, batch_size, lr, weight_decay, num_classes, meta=None,
             **extra) -> dict:
    """The ``Dynamics.meta`` of a training run: its settings, ``extra`` entries, then the caller's ``meta``.

    NumPy and 0-d torch numbers among the settings are stored as Python numbers (the meta is saved as JSON).

    Raises
    ------
    TypeError
        If a setting or ``extra`` value cannot be stored as JSON.
    """
    from .. import __version__
    info = jsonable({"model": model_name, "epochs": int(epochs), "record": record, "seed": int(seed),
                     "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay, "num_classes": num_classes,
                     "library_version": __version__, **extra}, "run settings")
    info.update(meta or {})
    return info


def fit(model, images, labels, epochs: int = 10, *, batch_size: int = 128, lr: float = 0.1,
        momentum: float = 0.9, weight_decay: float = 5e-4, milestones=(0.5, 0.75), augment="auto",
        record: str | None = "train", seed: int = 0, device=None, amp: bool = False,
        num_classes: int | None = None, test_images=None, test_labels=None, is_flipped=None,
        store_full: bool = False, meta: dict | None = None, progress: bool = True,
        recorder: DynamicsRecorder | None = None, full_path=None, cuda_graphs: bool | None = None,
        checkpoint_dir=None, resume: bool = True) -> TrainResult:
    """Train a classifier with SGD and record each sample's given-label probability per epoch.

    Parameters
    ----------
    model : str or torch.nn.Module
        A name for :func:`mislabel.models.build` ("cnn", "mlp", "resnet32") or a module
        mapping float (B, C, H, W) to logits (B, num_classes).
    images : Tensor of shape (N, C, H, W), uint8 (or float already scaled)
    labels : array-like of shape (N,), int64
        The labels to train on (usually noisy).
    epochs : int
    batch_size : int
    lr, momentum, weight_decay : float
        SGD settings; the learning rate is divided by 10 at each fraction of
        ``epochs`` in ``milestones`` (default 50% and 75%, as in the paper's 100/150 of 200).
    augment : "auto", None or (pad, flip)
        Batched random crop (zero padding ``pad``) and horizontal flip; "auto" picks them
        from the image size (:func:`default_augment`: none below 8 px). Data whose meaning a
        crop or flip changes (:data:`mislabel.data.NO_AUGMENT`) need ``augment=None``;
        :func:`mislabel.pipeline.capture` does that by data set name.
    record : {"train", "eval", None}
        How to record dynamics (see :mod:`mislabel.train`).
    seed : int
        Seeds initialisation, shuffling and augmentation; on CPU the run is bit-for-bit repeatable.
    device : str, optional
        "cpu", "cuda", or None for CUDA when available.
    amp : bool
        bfloat16 autocast (mixed precision). On CUDA; on CPU only where bfloat16
        is native (AVX512-BF16/AMX), ignored with a warning elsewhere. Default
        False: float32, bit-for-bit repeatable on any CPU.
    num_classes : int, optional
        Default: ``max(labels) + 1`` (at least 2).
    test_images, test_labels : optional
        Held-out data, shapes (M, C, H, W) and (M,); test accuracy is computed after every epoch.
    is_flipped : array-like of shape (N,), bool, optional
        Ground-truth flips, attached to the returned dynamics.
    store_full : bool
        Also record all class probabilities (N, T, C) as float16.
    full_path : str or Path, optional
        Stream those full probabilities to this ``.npy`` epoch by epoch instead of
        keeping them in memory (implies ``store_full``; see :class:`DynamicsRecorder`).
    meta : dict, optional
        Extra metadata merged into ``dynamics.meta``.
    progress : bool
        Show a tqdm progress bar over epochs.
    recorder : DynamicsRecorder, optional
        Use this recorder instead of a fresh one.
    cuda_graphs : bool, optional
        Replay forward, loss and backward of full batches as one CUDA graph
        (:class:`GraphedStep`; see the book's performance page). Default (None):
        on for a model given by name on a CUDA device; off for your own module
        (its forward must not synchronise with the host) and on CPU. True on a
        CPU device is an error. The numbers are the eager steps' (identical with
        cuDNN in deterministic mode).
    checkpoint_dir : str or Path, optional
        Write a checkpoint (``checkpoint.pt``: model, optimiser, schedule, every random
        stream, recorder and history; :mod:`mislabel.train.checkpoint`) into this folder
        at the end of every epoch, atomically. A call with the same folder and settings
        resumes after the last complete epoch and returns bit for bit what an
        uninterrupted run returns (on the same machine; the ``seconds`` of the history
        excepted); a finished run trains nothing. A checkpoint of other settings (data,
        labels, model or any option) is an error. Not with ``full_path``. The checkpoint
        is kept after the run; one process per folder.
    resume : bool
        With ``checkpoint_dir``: False ignores a checkpoint there and starts over.

    Returns
    -------
    TrainResult

    Raises
    ------
    ValueError
        Bad inputs or settings (the message says which and how to fix it), e.g. a recorder
        larger than the device's memory, or a checkpoint of another run in ``checkpoint_dir``.
    TrainingDivergedError
        Training diverged (NaN or inf loss): lower ``lr``. A subclass of ValueError.
    RuntimeError
        With ``cuda_graphs=True``, if the model's training step cannot be captured as a CUDA graph.
    """
    options = TrainOptions(batch_size=batch_size, lr=lr, momentum=momentum, weight_decay=weight_decay,
                           milestones=milestones, augment=augment, record=record, seed=seed, amp=amp,
                           num_classes=num_classes, test_images=test_images, test_labels=test_labels,
                           is_flipped=is_flipped, store_full=store_full, full_path=full_path, meta=meta,
                           progress=progress, checkpoint_dir=checkpoint_dir, resume=resume)
    training = Training(model, images, labels, epochs, options, device, cuda_graphs=cuda_graphs, recorder=recorder)
    return training.result(training.run())
