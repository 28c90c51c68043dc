"""What every method shares: the :class:`Task` it is given, the :class:`MethodResult` it returns, and the
registry (:data:`METHODS`, filled by the :func:`register` decorator) that checks a task and times the call."""
from __future__ import annotations

import dataclasses
import functools
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .. import models as _models
from .._validation import as_int_labels, check_num_classes, check_positive_int, check_seed
from ..dynamics import Dynamics
from ..train.loop import TrainOptions as _FIT

__all__ = ["Task", "MethodResult", "MethodCost", "MethodInfo", "METHODS", "NEEDS", "register"]

#: What a method may need from a :class:`Task`, and how to supply it (quoted in the error).
NEEDS = {
    "dynamics": "a recorded run of these labels: Task(dynamics=mislabel.train.fit(...).dynamics)",
    "margins": "dynamics with AUM margins (recorded by default: DynamicsRecorder(margins=True))",
    "full": "dynamics with full class probabilities: record with mislabel.train.fit(..., store_full=True)",
    "images": "the training images: Task(images=...) of shape (N, C, H, W)",
    "is_flipped": "the true flips: Task(is_flipped=...) (only the oracle reads them)",
}


@dataclass
class Task:
    """One data set whose labels are to be audited, and how to train on it.

    Parameters
    ----------
    images : Tensor of shape (N, C, H, W), uint8 (or float already scaled), optional
        Needed by the methods that train (``aum_threshold``, ``dy_bootstrap``, ``data_parameters``,
        ``incv``, ``cleanlab``) and by :func:`~mislabel.methods.retrain_without`.
    labels : array-like of shape (N,), int
        The given (possibly wrong) labels, in ``[0, num_classes)``.
    num_classes : int
        At least 2.
    dynamics : Dynamics, optional
        A recorded run on exactly these labels (``dynamics.labels == labels``). Its ``is_flipped``
        is moved to ``Task.is_flipped`` and removed from the copy the methods see.
    is_flipped : array-like of shape (N,), bool, optional
        The true flips. Only the ``oracle`` reads them; every other method is blind to them.
    model : str
        A name in :data:`mislabel.models.MODELS`, for every model a method trains.
    epochs, batch_size : int
        Positive.
    lr, momentum, weight_decay : float
        SGD settings, as in :func:`mislabel.train.fit` (learning rate divided by 10 at ``milestones``).
    milestones : tuple of float
        Fractions of ``epochs``.
    augment : "auto", None or (pad, flip)
        As in :func:`mislabel.train.fit`.
    seed : int
        Seeds every training a method runs (each derives its own seeds from it).
    device : str, optional
        Default: CUDA when available.
    test_images, test_labels : optional
        Held-out data, shapes (M, C, H, W) and (M,): the accuracy of a method's own model
        (``MethodResult.test_acc``) and of :func:`~mislabel.methods.retrain_without`.
    progress : bool
        tqdm progress bars for the trainings.

    Raises
    ------
    ValueError
        Naming the first argument that is wrong, and how to fix it.
    """

    images: object
    labels: object
    num_classes: int
    dynamics: Dynamics | None = None
    is_flipped: object = None
    model: str = "cnn"
    epochs: int = 10
    batch_size: int = _FIT.batch_size    # (fit's defaults: one place for them)
    lr: float = _FIT.lr
    momentum: float = _FIT.momentum
    weight_decay: float = _FIT.weight_decay
    milestones: tuple = _FIT.milestones
    augment: object = _FIT.augment
    seed: int = _FIT.seed
    device: object = None
    test_images: object = None
    test_labels: object = None
    progress: bool = True

    def __post_init__(self) -> None:
        self.num_classes = check_num_classes(self.num_classes)
        self.labels = as_int_labels(self.labels, "labels", self.num_classes)
        n = len(self.labels)
        if self.images is not None:
            self.images = torch.as_tensor(self.images)
            if self.images.ndim != 4 or len(self.images) != n:
                raise ValueError(f"images must have shape ({n}, C, H, W), one image per label, got "
                                 f"{tuple(self.images.shape)}")
        if self.is_flipped is not None:
            self.is_flipped = _as_mask(self.is_flipped, n, "is_flipped")
        if self.dynamics is not None:
            self.dynamics = self._check_dynamics(self.dynamics, n)
        if not isinstance(self.model, str) or self.model not in _models.MODELS:
            raise ValueError(f"model must be one of {', '.join(_models.MODELS)} (methods build fresh models), "
                             f"got {self.model!r}")
        check_positive_int(self.epochs, "epochs")
        check_positive_int(self.batch_size, "batch_size")
        for name, ok, rule in (("lr", lambda v: v > 0, "> 0"), ("weight_decay", lambda v: v >= 0, ">= 0"),
                               ("momentum", lambda v: 0 <= v < 1, "in [0, 1)")):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
                    or not math.isfinite(value) or not ok(value):
                raise ValueError(f"{name} must be a finite number {rule}, got {value!r}")
        self.seed = check_seed(self.seed)
        if (self.test_images is None) != (self.test_labels is None):
            raise ValueError("test_images and test_labels go together: pass both or neither")
        if self.test_images is not None:
            self.test_images = torch.as_tensor(self.test_images)
            self.test_labels = as_int_labels(self.test_labels, "test_labels", self.num_classes)
            if self.test_images.ndim != 4 or len(self.test_images) != len(self.test_labels):
                raise ValueError(f"test_images must have shape ({len(self.test_labels)}, C, H, W), one per test "
                                 f"label, got {tuple(self.test_images.shape)}")
            if self.images is not None and self.test_images.shape[1:] != self.images.shape[1:]:
                raise ValueError(f"test_images must be shaped like the training images {tuple(self.images.shape[1:])}"
                                 f" per sample, got {tuple(self.test_images.shape[1:])}")

    def _check_dynamics(self, dyn, n: int) -> Dynamics:
        if not isinstance(dyn, Dynamics):
            raise ValueError(f"dynamics must be a mislabel.Dynamics, got {type(dyn).__name__}")
        if dyn.num_samples != n:
            raise ValueError(f"dynamics has {dyn.num_samples} samples but labels has {n}; record the run on "
                             "this task's samples")
        if not np.array_equal(dyn.labels, self.labels):
            i = int(np.flatnonzero(dyn.labels != self.labels)[0])
            raise ValueError(f"dynamics were recorded with other labels (sample {i}: {dyn.labels[i]} vs "
                             f"{self.labels[i]}); record the run on this task's labels")
        if dyn.is_flipped is not None:
            if self.is_flipped is None:
                self.is_flipped = dyn.is_flipped
            elif not np.array_equal(dyn.is_flipped, self.is_flipped):
                raise ValueError("is_flipped differs from dynamics.is_flipped; pass one of them")
            dyn = dataclasses.replace(dyn, is_flipped=None)    # the methods never see the truth
        return dyn

    @property
    def num_samples(self) -> int:
        return len(self.labels)

    def fit_options(self, **override) -> dict:
        """Keyword arguments of :func:`mislabel.train.fit` for this task's settings (``override`` wins)."""
        opts = dict(batch_size=self.batch_size, lr=self.lr, momentum=self.momentum,
                    weight_decay=self.weight_decay, milestones=tuple(self.milestones), augment=self.augment,
                    seed=self.seed, device=self.device, num_classes=self.num_classes, progress=self.progress)
        opts.update(override)
        return opts


@dataclass
class MethodCost:
    """What a method spent.

    Attributes
    ----------
    trainings : int
        Classifier trainings the method ran itself (not counting the task's recorded run).
    epochs : int
        Their epochs, summed.
    recorded_run : bool
        Whether it reads the task's recorded run (one more training, shared by all such methods).
    seconds : float
        Wall-clock time of the call.
    note : str
        Anything else (e.g. the detector's own training).
    """

    trainings: int = 0
    epochs: int = 0
    recorded_run: bool = False
    seconds: float = 0.0
    note: str = ""


@dataclass
class MethodResult:
    """What every method returns.

    Attributes
    ----------
    scores : ndarray of shape (N,), float64
        Higher = more likely mislabeled. Finite.
    remove : ndarray of shape (N,), bool, or None
        The method's own decision of which samples to drop, where it defines one (see each method).
    cost : MethodCost
    test_acc : float or None
        Test accuracy of the method's own trained model (DY-Bootstrap, Data Parameters), with test data.
    details : dict
        Method-specific extras (estimated noise ratio, cut-offs, per-sample statistics, ...).
    method : str
        The registered name, set by the registry.
    """

    scores: np.ndarray
    remove: np.ndarray | None
    cost: MethodCost = field(default_factory=MethodCost)
    test_acc: float | None = None
    details: dict = field(default_factory=dict)
    method: str = ""

    def __post_init__(self) -> None:
        self.scores = np.asarray(self.scores, dtype=np.float64)
        if self.scores.ndim != 1 or not np.all(np.isfinite(self.scores)):
            raise ValueError(f"scores must be finite, of shape (N,), got shape {self.scores.shape}")
        if self.remove is not None:
            self.remove = _as_mask(self.remove, len(self.scores), "remove")


def _as_mask(mask, n: int, name: str) -> np.ndarray:
    """``mask`` as a bool array of shape (n,); ValueError otherwise."""
    m = np.asarray(mask.detach().cpu() if isinstance(mask, torch.Tensor) else mask)
    if m.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), one entry per sample, got {m.shape}")
    if m.dtype != bool:
        if m.dtype.kind not in "iuf" or not np.isin(m, (0, 1)).all():
            raise ValueError(f"{name} must be boolean (or 0/1), got dtype {m.dtype}")
        m = m.astype(bool)
    return m


@dataclass(frozen=True)
class MethodInfo:
    """A registered method: its function and what it needs."""

    name: str
    func: object
    needs: tuple
    summary: str
    decision: str
    reference: str


#: name -> :class:`MethodInfo`, in the order the methods are listed (the paper's first).
METHODS: dict[str, MethodInfo] = {}


def check_needs(task: Task, name: str, needs) -> None:
    """Raise one ValueError if ``task`` lacks something method ``name`` needs (see :data:`NEEDS`)."""
    if not isinstance(task, Task):
        raise ValueError(f"task must be a mislabel.methods.Task, got {type(task).__name__}")
    have = {"dynamics": task.dynamics is not None, "images": task.images is not None,
            "is_flipped": task.is_flipped is not None,
            "margins": task.dynamics is not None and task.dynamics.margins is not None,
            "full": task.dynamics is not None and task.dynamics.full is not None}
    for need in needs:
        if not have[need]:
            raise ValueError(f"method {name!r} needs {NEEDS[need]}")


def register(name: str, *, needs=(), summary: str, decision: str, reference: str = ""):
    """Decorator: check the task's ``needs`` before, time the call, and list the method in :data:`METHODS`.

    The decorated function takes ``(task, **options)`` and returns a :class:`MethodResult`; the
    wrapper sets its ``method`` and ``cost.seconds``.

    Parameters
    ----------
    name : str
        The registered name.
    needs : tuple of str
        Keys of :data:`NEEDS` the task must supply.
    summary, decision, reference : str
        One line each: what the method does, its own keep/remove rule, where it comes from.

    Raises
    ------
    ValueError
        For an unknown entry in ``needs``.
    """
    unknown = set(needs) - set(NEEDS)
    if unknown:
        raise ValueError(f"unknown needs {sorted(unknown)}; choose from {sorted(NEEDS)}")

    def wrap(func):
        @functools.wraps(func)
        def run(task: Task, **options) -> MethodResult:
            check_needs(task, name, needs)
            t0 = time.perf_counter()
            result = func(task, **options)
            result.cost.seconds = time.perf_counter() - t0
            result.method = name
            return result

        METHODS[name] = MethodInfo(name, run, tuple(needs), summary, decision, reference)
        return run
    return wrap
