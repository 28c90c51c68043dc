"""Tolerance to underlying noise (paper Sec. 4.4, Figs. 6 and 10).

The detector is trained on *twice-contaminated* data (:func:`mislabel.noise.twice_contaminated`): a
first contamination stands for the data set's own, unknown noise (the detector is told nothing about
it and learns those samples as clean), a second, synthesized one is what it is trained to find. Every
cell (underlying rate u, synthesized rate s) of :func:`underlying_grid` captures such a run, fits a
detector on it, and scores one and the same independent evaluation run: the same data set with
another noise draw (``eval_noise_seed``), ``eval_rate`` symmetric noise and no underlying noise.
The paper evaluates on Caltech-256 at 40% symmetric noise instead (another data set).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

from .. import baselines as _baselines
from .. import metrics as _metrics
from .. import pipeline as _pipeline
from .._validation import check_seed, check_share

__all__ = ["UnderlyingGrid", "underlying_grid", "check_grid_rates", "tolerated_underlying", "RESERVED_OPTIONS"]

#: settings :func:`underlying_grid` and :func:`~mislabel.analyses.superclass_comparison` set per run, so a
#: caller's ``capture_options`` must not hold them
RESERVED_OPTIONS = ("noise", "rate", "noise_seed", "underlying_rate", "progress")

#: the metrics kept per cell (keys of :func:`mislabel.metrics.evaluate`)
METRICS = ("map", "roc_auc", "precision_at_95")


@dataclass
class UnderlyingGrid:
    """Result of :func:`underlying_grid`.

    Attributes
    ----------
    rows : list of dict
        One per cell, in grid order (underlying rate outer, synthesized rate inner): ``underlying_rate``,
        ``synthesized_rate`` (float, as asked), ``train_underlying_share`` and ``train_synthesized_share``
        (float, the shares the training run holds), ``map``, ``roc_auc``, ``precision_at_95`` (float, the
        cell's detector on the evaluation run) and ``detector_val_ap`` (float, its best validation AP on
        its own training run, where the flips it was told about are the positives).
    reference : dict
        ``{"AUM": {metric: value}}`` on the evaluation run: a ranking that needs no training, for scale.
    evaluation : mislabel.pipeline.Capture
        The evaluation run (its ``dynamics.is_flipped`` are the positives).
    detectors : dict
        ``(underlying_rate, synthesized_rate) -> NoiseDetector`` of every cell.
    """

    rows: list
    reference: dict
    evaluation: object
    detectors: dict = field(default_factory=dict)


def check_grid_rates(underlying_rates, synthesized_rates) -> tuple[list[float], list[float]]:
    """The two axes of the grid as float lists, or one clear error.

    Parameters
    ----------
    underlying_rates : sequence of float
        Each in [0, 1); 0 (no underlying noise) is the grid's reference row.
    synthesized_rates : sequence of float
        Each in (0, 1): a detector needs flips to learn from.

    Returns
    -------
    underlying, synthesized : list of float

    Raises
    ------
    ValueError
        For an empty or repeated axis, a rate outside its range, or a cell with
        ``underlying + synthesized >= 1`` (both are shares of all samples).
    """
    out = []
    for name, rates, zero in (("underlying_rates", underlying_rates, True),
                              ("synthesized_rates", synthesized_rates, False)):
        if isinstance(rates, (str, bytes)) or not isinstance(rates, Sequence) and not isinstance(rates, np.ndarray):
            raise ValueError(f"{name} must be a list of shares, e.g. [0.0, 0.1, 0.2], got {rates!r}")
        values = [check_share(r, f"each of {name}", zero=zero) for r in rates]
        if not values or len(set(values)) != len(values):
            raise ValueError(f"{name} must list at least one rate, each once, got {list(rates)!r}")
        out.append(values)
    worst = max(out[0]) + max(out[1])
    if worst >= 1.0:
        raise ValueError(f"underlying_rates and synthesized_rates: the cell {max(out[0])} + {max(out[1])} = {worst} "
                         "flips every sample or more (both are shares of all samples); lower the largest rates so "
                         "that each sum stays below 1")
    return out[0], out[1]


def _check_options(options: Mapping | None, name: str) -> dict:
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ValueError(f"{name} must be a dict of keyword arguments, got {type(options).__name__}")
    taken = sorted(set(options) & set(RESERVED_OPTIONS))
    if taken:
        raise ValueError(f"{name} must not set {taken}: the analysis sets them for every run; remove them")
    return dict(options)


def underlying_grid(underlying_rates, synthesized_rates, *, capture_options: Mapping, detector_options=None,
                    eval_rate: float = 0.4, train_noise_seed: int = 0, eval_noise_seed: int = 1,
                    progress: bool = False) -> UnderlyingGrid:
    """Train a detector on every twice-contaminated cell and score one independent noisy run with each.

    Parameters
    ----------
    underlying_rates, synthesized_rates : sequence of float
        The grid's axes (:func:`check_grid_rates`): the share of labels flipped first, unknown to the
        detector, and the share flipped second, the detector's targets. Both kinds are symmetric.
    capture_options : mapping
        Keyword arguments of :func:`mislabel.pipeline.capture` shared by every run (``dataset``,
        ``subset``, ``model``, ``epochs``, ``lr``, ``seed``, ``cache``...), none of
        :data:`RESERVED_OPTIONS`.
    detector_options : mapping, optional
        Keyword arguments of :func:`mislabel.pipeline.train_detector` (``epochs``, ``lr``, ``seed``...).
    eval_rate : float
        Symmetric noise of the evaluation run, in (0, 1) (the paper: 40%).
    train_noise_seed, eval_noise_seed : int
        Noise draws of the training cells and of the evaluation run; they must differ.
    progress : bool
        A tqdm bar over the cells.

    Returns
    -------
    UnderlyingGrid

    Raises
    ------
    ValueError
        For bad rates (:func:`check_grid_rates`), ``eval_rate`` outside (0, 1), options that set what the
        grid sets, or equal noise seeds (the evaluation run would not be independent).
    """
    under, synth = check_grid_rates(underlying_rates, synthesized_rates)
    eval_rate = check_share(eval_rate, "eval_rate")
    if check_seed(train_noise_seed, "train_noise_seed") == check_seed(eval_noise_seed, "eval_noise_seed"):
        raise ValueError(f"train_noise_seed and eval_noise_seed are both {train_noise_seed}: the evaluation run "
                         "must be an independent noise draw; give eval_noise_seed another value")
    cap_opts = _check_options(capture_options, "capture_options")
    det_opts = _check_options(detector_options, "detector_options")
    det_opts.setdefault("progress", False)
    held = _pipeline.capture(**cap_opts, noise="symmetric", rate=eval_rate, noise_seed=eval_noise_seed,
                             progress=False)
    truth = held.dynamics.is_flipped
    rows, detectors = [], {}
    cells = [(u, s) for u in under for s in synth]
    for u, s in tqdm(cells, desc="underlying grid", disable=not progress):
        cap = _pipeline.capture(**cap_opts, noise="symmetric", rate=s, underlying_rate=u,
                                noise_seed=train_noise_seed, progress=False)
        det = _pipeline.train_detector(cap, **det_opts)
        detectors[(u, s)] = det
        scores = _metrics.evaluate(det.score(held.dynamics), truth)
        stages = det.info.get("stages", [{}])
        rows.append({"underlying_rate": u, "synthesized_rate": s,
                     "train_underlying_share": float(np.mean(cap.underlying)),
                     "train_synthesized_share": float(np.mean(cap.dynamics.is_flipped)),
                     **{m: float(scores[m]) for m in METRICS},
                     "detector_val_ap": float(stages[-1].get("best_val_ap", float("nan")))})
    aum = _metrics.evaluate(_baselines.aum(held.dynamics), truth)
    return UnderlyingGrid(rows, {"AUM": {m: float(aum[m]) for m in METRICS}}, held, detectors)


def tolerated_underlying(rows, *, metric: str = "map", tolerance: float = 0.05) -> dict:
    """How much underlying noise the detector tolerates: the largest rate whose loss stays within ``tolerance``.

    For every synthesized rate the reference is the cell without underlying noise; a cell's *loss* is
    the reference minus its ``metric``. An underlying rate is tolerated when it and every smaller rate of
    the grid lose at most ``tolerance`` at every synthesized rate.

    Parameters
    ----------
    rows : sequence of dict
        :attr:`UnderlyingGrid.rows` (keys ``underlying_rate``, ``synthesized_rate`` and ``metric``).
    metric : {"map", "roc_auc", "precision_at_95"}
    tolerance : float
        Largest loss that counts as "still fine", in [0, 1).

    Returns
    -------
    dict
        ``tolerated`` (float, the largest tolerated underlying rate, 0.0 when only the reference is),
        ``first_failing`` (float or None, the smallest rate that loses more), ``loss`` (dict
        underlying rate -> largest loss over the synthesized rates), ``harmed`` (int, synthesized rates
        at which the largest underlying rate scores below the reference), ``columns`` (int, synthesized
        rates).

    Raises
    ------
    ValueError
        For an unknown ``metric``, a bad ``tolerance``, or a synthesized rate without its
        ``underlying_rate == 0`` cell.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    tolerance = check_share(tolerance, "tolerance", zero=True)
    table = {(float(r["underlying_rate"]), float(r["synthesized_rate"])): float(r[metric]) for r in rows}
    synth = sorted({s for _, s in table})
    under = sorted({u for u, _ in table})
    missing = [s for s in synth if (0.0, s) not in table]
    if not table or missing:
        raise ValueError(f"rows need a cell with underlying_rate 0 for every synthesized rate (the reference); "
                         f"missing for {missing or 'all'}: include 0.0 in underlying_rates")
    loss = {u: max(table[(0.0, s)] - table.get((u, s), float("nan")) for s in synth) for u in under}
    tolerated, failing = 0.0, None
    for u in under:
        if not loss[u] <= tolerance:          # NaN (a missing cell) counts as failing
            failing = u
            break
        tolerated = u
    top = under[-1]
    harmed = sum(table.get((top, s), float("nan")) < table[(0.0, s)] for s in synth) if top > 0 else 0
    return {"tolerated": tolerated, "first_failing": failing, "loss": loss, "harmed": int(harmed),
            "columns": len(synth)}
