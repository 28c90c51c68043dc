"""Noise within super-classes (paper Sec. 4.4, Fig. 7 and Table 5).

Annotators confuse similar classes, not arbitrary ones. Superclass noise moves a flipped label to
another class of the same group (:func:`mislabel.noise.superclass`): CIFAR-100's 20 super-classes of
5 classes each (the paper's Table 5), or a grouping such as
:data:`mislabel.class_maps.FASHION_MNIST_GROUPS` (tops, footwear, others). For every rate,
:func:`superclass_comparison` fits a detector on one noise draw and ranks an independent draw with
it, with AUM, and with every other method of :mod:`mislabel.methods` that reads only the recorded
run (:func:`dynamics_peers`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

from .. import methods as _methods
from .. import metrics as _metrics
from .. import pipeline as _pipeline
from .._validation import check_seed, check_share
from .underlying import METRICS, _check_options

__all__ = ["SuperclassComparison", "superclass_comparison", "dynamics_peers", "best_peer", "NOT_PEERS"]

#: registry methods that are not peers: no ranking (standard), the truth (oracle), the two the paper
#: compares (detector, aum) and the shipped detector (the paper's method too)
NOT_PEERS = ("standard", "oracle", "aum", "detector", "shipped")

#: what a peer may need: only the recorded run (methods that train models of their own are left out)
_RUN_ONLY = {"dynamics", "margins", "full"}


@dataclass
class SuperclassComparison:
    """Result of :func:`superclass_comparison`.

    Attributes
    ----------
    rows : list of dict
        One per (rate, method): ``rate`` (float), ``method`` (str, a :mod:`mislabel.methods` registry
        name: ``"detector"``, ``"aum"`` or a peer), ``map``, ``roc_auc``, ``precision_at_95`` (float)
        and ``flip_share`` (float, the evaluated run's share of flipped labels).
    peers : list of str
        The peers that were scored, in registry order.
    groups : int
        Number of groups the noise stays within.
    evaluations : dict
        rate -> the evaluated :class:`mislabel.pipeline.Capture`.
    """

    rows: list
    peers: list
    groups: int
    evaluations: dict = field(default_factory=dict)


def dynamics_peers(task: _methods.Task) -> list[str]:
    """Registry methods other than :data:`NOT_PEERS` that ``task`` can run from its recorded run alone.

    Parameters
    ----------
    task : mislabel.methods.Task
        With ``dynamics``.

    Returns
    -------
    list of str
        In registry order; a method that needs images (it trains models) or full class probabilities
        the run did not store is left out.
    """
    have = {"dynamics", *(["margins"] if task.dynamics is not None and task.dynamics.margins is not None else []),
            *(["full"] if task.dynamics is not None and task.dynamics.full is not None else [])}
    return [name for name, info in _methods.METHODS.items()
            if name not in NOT_PEERS and set(info.needs) <= _RUN_ONLY and set(info.needs) <= have]


def best_peer(rows, peers: Sequence[str], *, metric: str = "map") -> str:
    """The peer with the highest mean ``metric`` over the rates (the first in ``peers`` on a tie).

    Parameters
    ----------
    rows : sequence of dict
        :attr:`SuperclassComparison.rows`.
    peers : sequence of str
        Candidate method names.
    metric : {"map", "roc_auc", "precision_at_95"}

    Returns
    -------
    str

    Raises
    ------
    ValueError
        For an unknown ``metric`` or when no row belongs to any of ``peers``.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    means = {p: float(np.mean([r[metric] for r in rows if r["method"] == p]))
             for p in peers if any(r["method"] == p for r in rows)}
    if not means:
        raise ValueError(f"no row belongs to any of peers {list(peers)!r}; pass the peers the rows were scored with")
    return max(means, key=lambda p: (means[p], -list(peers).index(p)))


def superclass_comparison(rates, *, capture_options: Mapping, detector_options=None, peers=None,
                          train_noise_seed: int = 0, eval_noise_seed: int = 1,
                          progress: bool = False) -> SuperclassComparison:
    """Detector, AUM and the run-only peers on superclass noise, one independent evaluation run per rate.

    Parameters
    ----------
    rates : sequence of float
        Superclass noise rates, each in (0, 1) and each once.
    capture_options : mapping
        Keyword arguments of :func:`mislabel.pipeline.capture` (``dataset`` must have groups: CIFAR-100
        or Fashion-MNIST), none of :data:`~mislabel.analyses.underlying.RESERVED_OPTIONS`.
    detector_options : mapping, optional
        Keyword arguments of :func:`mislabel.pipeline.train_detector`.
    peers : sequence of str, optional
        Registry names to score besides the detector and AUM; default :func:`dynamics_peers`.
    train_noise_seed, eval_noise_seed : int
        Noise draws of the detector's training run and of the evaluated run; they must differ.
    progress : bool
        A tqdm bar over the rates.

    Returns
    -------
    SuperclassComparison

    Raises
    ------
    ValueError
        For bad rates, equal seeds, options that set what the comparison sets, a data set without
        groups, or an unknown peer.
    """
    if isinstance(rates, (str, bytes)) or not isinstance(rates, (Sequence, np.ndarray)):
        raise ValueError(f"rates must be a list of shares, e.g. [0.2, 0.4], got {rates!r}")
    rates = [check_share(r, "each of rates") for r in rates]
    if not rates or len(set(rates)) != len(rates):
        raise ValueError(f"rates must list at least one rate, each once, got {rates!r}")
    if check_seed(train_noise_seed, "train_noise_seed") == check_seed(eval_noise_seed, "eval_noise_seed"):
        raise ValueError(f"train_noise_seed and eval_noise_seed are both {train_noise_seed}: the evaluated run "
                         "must be an independent noise draw; give eval_noise_seed another value")
    if peers is not None:
        unknown = [p for p in peers if p not in _methods.METHODS]
        if unknown:
            raise ValueError(f"peers {unknown} are not in mislabel.methods; choose from {', '.join(_methods.METHODS)}")
    cap_opts = _check_options(capture_options, "capture_options")
    det_opts = _check_options(detector_options, "detector_options")
    det_opts.setdefault("progress", False)
    dataset = str(cap_opts.get("dataset", "fashion-mnist")).lower()
    groups = _pipeline._groups_for(_load_small(dataset, cap_opts.get("root")), cap_opts.get("root"))
    if groups is None:
        raise ValueError(f"capture_options['dataset'] = {dataset!r} has no class groups; use 'cifar100' "
                         "(20 super-classes) or 'fashion-mnist' (mislabel.class_maps.FASHION_MNIST_GROUPS)")
    rows, evaluations, chosen = [], {}, None
    for rate in tqdm(rates, desc="superclass noise", disable=not progress):
        fit_cap = _pipeline.capture(**cap_opts, noise="superclass", rate=rate, noise_seed=train_noise_seed,
                                    progress=False)
        det = _pipeline.train_detector(fit_cap, **det_opts)
        held = _pipeline.capture(**cap_opts, noise="superclass", rate=rate, noise_seed=eval_noise_seed,
                                 progress=False)
        evaluations[rate] = held
        dyn = held.dynamics
        task = _methods.Task(images=None, labels=dyn.labels, num_classes=int(len(groups)), dynamics=dyn, progress=False)
        chosen = list(peers) if peers is not None else dynamics_peers(task)
        scores = {"detector": det.score(dyn), "aum": _methods.run("aum", task).scores}
        scores.update({p: _methods.run(p, task).scores for p in chosen})
        for method, s in scores.items():
            m = _metrics.evaluate(s, dyn.is_flipped)
            rows.append({"rate": rate, "method": method, **{k: float(m[k]) for k in METRICS},
                         "flip_share": float(np.mean(dyn.is_flipped))})
    return SuperclassComparison(rows, chosen, int(len(np.unique(groups))), evaluations)


def _load_small(dataset: str, root):
    """A one-sample view of the training split: enough for :func:`mislabel.pipeline._groups_for`."""
    from .. import data as _data

    return _data.load(dataset, split="train", root=root, subset=1, seed=0)
