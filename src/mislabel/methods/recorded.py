"""The methods that need nothing but a recorded run, called on a :class:`~mislabel.dynamics.Dynamics` alone.

What ``mislabel detect --method NAME`` runs on a ``dynamics.npz``: no images, no training, no
truth. :func:`run_only_names` lists those methods; :func:`score_run` builds the :class:`Task`
from the run and calls one of them.
"""
from __future__ import annotations

import numpy as np

from .._validation import check_num_classes
from ..dynamics import Dynamics
from .core import METHODS, MethodResult, Task

__all__ = ["RUN_NEEDS", "run_only_names", "num_classes_of", "score_run"]

#: what a recorded run can supply (keys of :data:`mislabel.methods.NEEDS`)
RUN_NEEDS = frozenset({"dynamics", "margins", "full"})


def run_only_names() -> list[str]:
    """The registered methods that rank samples from a recorded run alone, in the registry's order.

    A method qualifies when everything it needs is part of a recorded run (:data:`RUN_NEEDS`) and it
    reads the run at all; ``standard`` (no ranking) and ``oracle`` (the truth) do not.

    Returns
    -------
    list of str
        For the registry of 15 methods: ``aum``, ``detector``, ``shipped``, ``forgetting``, ``datamaps``,
        ``mean_loss``, ``el2n`` and ``ctrl``.
    """
    return [name for name, info in METHODS.items() if "dynamics" in info.needs and set(info.needs) <= RUN_NEEDS]


def num_classes_of(dynamics: Dynamics) -> int:
    """The number of classes of a recorded run.

    Read from, in this order: ``meta["num_classes"]`` (written by :func:`mislabel.train.fit`), the
    last axis of ``full``, and one more than the largest class among ``labels`` and ``runner_up``
    (a lower bound when a class never occurs).

    Parameters
    ----------
    dynamics : Dynamics

    Returns
    -------
    int
        At least 2.

    Raises
    ------
    ValueError
        If ``dynamics`` is not a :class:`Dynamics`, or the run shows fewer than 2 classes.
    """
    if not isinstance(dynamics, Dynamics):
        raise ValueError(f"dynamics must be a mislabel.Dynamics, got {type(dynamics).__name__}")
    meta = dynamics.meta.get("num_classes") if isinstance(dynamics.meta, dict) else None
    if meta is not None:
        return check_num_classes(int(meta), hint=" (dynamics.meta['num_classes'])")
    if dynamics.full is not None:
        return check_num_classes(int(dynamics.full.shape[2]), hint=" (dynamics.full's last axis)")
    top = int(dynamics.labels.max()) if len(dynamics.labels) else 0
    if dynamics.runner_up is not None and dynamics.runner_up.size:
        top = max(top, int(np.max(dynamics.runner_up)))
    return check_num_classes(top + 1, hint=" (no meta['num_classes']: pass num_classes=)")


def score_run(name: str, dynamics: Dynamics, *, num_classes: int | None = None, **options) -> MethodResult:
    """Run method ``name`` on a recorded run alone: ``methods.run(name, Task(None, labels, C, dynamics=...))``.

    Parameters
    ----------
    name : str
        One of :func:`run_only_names`.
    dynamics : Dynamics
        The recorded run; its ``labels`` are the given labels. Its ``is_flipped``, if any, is never
        read by the method (the :class:`Task` sets it aside).
    num_classes : int, optional
        Default: :func:`num_classes_of`.
    **options
        The method's options, e.g. ``detector=`` (a trained :class:`~mislabel.NoiseDetector`) for
        ``"detector"`` or ``threshold=`` for ``"shipped"``.

    Returns
    -------
    MethodResult
        ``scores`` (N,) float64, higher = more likely mislabeled; ``remove`` the method's own decision
        or None.

    Raises
    ------
    ValueError
        For an unknown name, a method that needs more than the run (images, the truth) naming the
        methods that do not, a run lacking what the method reads (margins, full probabilities), or a
        bad ``num_classes``.
    """
    if not isinstance(name, str) or name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of: {', '.join(run_only_names())}")
    if name not in run_only_names():
        raise ValueError(f"method {name!r} needs more than a recorded run (it trains, or reads the truth); "
                         f"from a run alone choose one of: {', '.join(run_only_names())}")
    if not isinstance(dynamics, Dynamics):
        raise ValueError(f"dynamics must be a mislabel.Dynamics, got {type(dynamics).__name__}")
    C = num_classes_of(dynamics) if num_classes is None else check_num_classes(num_classes)
    task = Task(None, dynamics.labels, C, dynamics=dynamics, progress=False)
    return METHODS[name].func(task, **options)
