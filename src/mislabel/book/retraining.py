"""Sec. 4.2 of the paper: remove what each method flags, retrain, and measure clean test accuracy (Tables 1, 2).

:func:`synthetic_grid` runs the Table 1 protocol over noise rates, trials and methods; :func:`original_grid`
the Table 2 protocol on data sets without synthesized noise. Every method result and every retraining is
cached through :mod:`mislabel.cache` (a retraining by the exact set of samples it removes, so two methods
that remove the same samples share it), and the recorded runs through :func:`mislabel.pipeline.capture`,
whose entries other chapters share where the settings match.

A trial ``s`` of a noise rate uses classifier seed ``s``, noise draw ``2 s + 1`` for the audited copy and
noise draw ``2 s`` for the synthesized-noise run the in-domain detector learns from (for ``s = 0`` the
draws 1 and 0 of chapter 3).
"""
from __future__ import annotations

import json
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .. import cache as _cache
from .. import data as _data
from .. import methods as _methods
from .. import metrics as _metrics
from .. import pipeline as _pipeline
from .._utils import jsonable
from ..dynamics import Dynamics
from . import profiles as _profiles
from .suspects import Suspects, predicted_labels

__all__ = ["RULES", "OWN_MODEL", "settings", "plan", "for_dataset", "method_options_key", "synthetic_grid",
           "original_grid"]

#: the two removal rules: each method's own decision, and as many as were flipped (isolates the ranking)
RULES = {"own": "each method's own rule", "flipped": "remove as many as were flipped"}

#: methods whose own rule is their own robustly trained model (the paper's protocol for these rows)
OWN_MODEL = ("dy_bootstrap", "data_parameters")

#: profile key -> settings key (None in the profile: the profile's main setting)
_KEYS = {"retrain_subset": "subset", "retrain_test_subset": "test_subset", "retrain_model": "model",
         "retrain_run_epochs": "epochs", "retrain_lr": "lr"}


def settings(cfg: Mapping) -> dict:
    """The chapter's training settings from a profile dict (:func:`mislabel.book.profiles.get`).

    Parameters
    ----------
    cfg : mapping
        Reads ``dataset``, ``batch_size``, the ``retrain_*`` keys (``retrain_subset``, ``retrain_test_subset``,
        ``retrain_model``, ``retrain_run_epochs``, ``retrain_lr``: None means the profile's ``subset``,
        ``test_subset``, ``model``, ``epochs``, ``lr``), ``retrain_epochs`` and ``retrain_batch_size`` (None:
        the run's), ``retrain_folds``, ``detector_epochs`` and ``detector_lr``.

    Returns
    -------
    dict
        ``dataset``, ``subset``, ``test_subset``, ``model``, ``epochs`` and ``batch_size`` (the recorded run
        and every training a method runs), ``lr``, ``retrain_epochs`` and ``retrain_batch_size`` (retraining
        after removal, the batch size before it shrinks), ``folds``, ``detector_epochs``, ``detector_lr``.

    Raises
    ------
    ValueError
        If an epoch count, batch size or ``retrain_folds`` is not a positive integer (folds: at least 2).
    """
    rs = {"dataset": cfg["dataset"], "batch_size": cfg["batch_size"]}
    for key, name in _KEYS.items():
        rs[name] = cfg[name] if cfg.get(key) is None else cfg[key]
    rs["retrain_epochs"] = rs["epochs"] if cfg.get("retrain_epochs") is None else cfg["retrain_epochs"]
    rs["retrain_batch_size"] = rs["batch_size"] if cfg.get("retrain_batch_size") is None else cfg["retrain_batch_size"]
    rs["folds"] = cfg.get("retrain_folds", 5)
    for name in ("epochs", "batch_size", "retrain_epochs", "retrain_batch_size", "folds"):
        value = rs[name]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < (2 if name == "folds" else 1):
            key = {"epochs": "retrain_run_epochs", "folds": "retrain_folds"}.get(name, name)
            raise ValueError(f"{key} must be a positive integer{' >= 2' if name == 'folds' else ''}, got {value!r}")
        rs[name] = int(value)
    rs.update(lr=float(rs["lr"]), detector_epochs=int(cfg["detector_epochs"]),
              detector_lr=float(cfg.get("detector_lr", 0.01)))
    return rs


def plan(cfg: Mapping) -> dict:
    """Check a profile dict's chapter-7 settings up front and return them resolved.

    Returns
    -------
    dict
        :func:`settings` plus ``rates`` (list of float), ``seeds`` (int), ``methods``, ``scored``,
        ``original`` and ``original_methods`` (lists of str), from the ``retrain_*`` keys.

    Raises
    ------
    ValueError
        Naming the parameter: a rate not strictly between 0 and 1, ``seeds`` not a positive integer, an
        unknown method, or a method on the original data that needs synthesized flips.
    """
    rs = settings(cfg)
    rates = [float(r) for r in cfg["retrain_rates"]]
    if not rates or any(not 0.0 < r < 1.0 for r in rates):
        raise ValueError(f"each of rates must be a share strictly between 0 and 1, got {cfg['retrain_rates']!r}")
    seeds = cfg["retrain_seeds"]
    if isinstance(seeds, bool) or not isinstance(seeds, (int, np.integer)) or seeds < 1:
        raise ValueError(f"seeds must be a positive integer (trials per rate), got {seeds!r}")
    lists = {key: list(cfg[f"retrain_{key}"]) for key in ("methods", "scored", "original", "original_methods")}
    for key in ("methods", "scored", "original_methods"):
        unknown = [m for m in lists[key] if m not in _methods.METHODS]
        if unknown:
            raise ValueError(f"methods {unknown} in {key} are not registered; choose from {', '.join(_methods.names())}")
    if any(m in ("oracle", "detector") for m in lists["original_methods"]):
        raise ValueError("original_methods cannot hold 'oracle' or 'detector': they need synthesized flips")
    return {**rs, "rates": rates, "seeds": int(seeds), **lists}


def for_dataset(rs: Mapping, dataset: str) -> dict:
    """``rs`` for another data set: its sizes become upper bounds (a smaller split is used whole).

    Returns
    -------
    dict
        A copy of ``rs`` with ``dataset`` replaced and ``subset``/``test_subset`` capped at the split sizes.
    """
    out = dict(rs, dataset=dataset)
    if dataset != rs["dataset"]:
        lengths = _profiles.split_lengths(dataset)
        for key in ("subset", "test_subset"):
            if out[key] is not None and out[key] >= lengths[key]:
                out[key] = None
    return out


# --------------------------------------------------------------------------- data, runs and the Task
_LOADED: dict = {}


def _load(dataset: str, split: str, subset):
    key = (dataset, split, subset)
    if key not in _LOADED:
        _LOADED[key] = _data.load(dataset, split=split, subset=subset, seed=0)
    return _LOADED[key]


def _capture(rs: Mapping, *, noise: str, rate: float, noise_seed: int, seed: int, store_full: bool = False):
    """The recorded run, with exactly the arguments of :func:`mislabel.book.runs.capture_for` (shared cache)."""
    return _pipeline.capture(rs["dataset"], subset=rs["subset"], data_seed=0, noise=noise, rate=float(rate),
                             noise_seed=int(noise_seed), mapping="next", model=rs["model"], epochs=rs["epochs"],
                             record="train", seed=int(seed), batch_size=rs["batch_size"], lr=rs["lr"],
                             test_subset=rs["test_subset"], store_full=store_full, progress=False)


def _run_key(cap) -> str:
    """What identifies a recorded run in the keys of this module's cache entries."""
    if cap.folder is not None:
        return cap.folder.name
    return _cache.digest(cap.dynamics.probs, cap.dynamics.labels)


def _task(rs: Mapping, cap, seed: int, progress: bool) -> _methods.Task:
    train, test = _load(rs["dataset"], "train", rs["subset"]), _load(rs["dataset"], "test", rs["test_subset"])
    if not np.array_equal(np.asarray(cap.clean_labels), train.labels.numpy()):
        raise RuntimeError("the recorded run was made on other images than the loaded subset; clear the cache")
    return _methods.Task(train.images, cap.dynamics.labels, train.num_classes, dynamics=cap.dynamics,
                         model=rs["model"], epochs=rs["epochs"], batch_size=rs["batch_size"], lr=rs["lr"],
                         augment=None if rs["dataset"] in _data.NO_AUGMENT else "auto", seed=int(seed),
                         test_images=test.images, test_labels=test.labels, progress=progress)


def _run_seconds(cap) -> float:
    return float(np.sum(cap.history.get("seconds", [0.0])))


# --------------------------------------------------------------------------- cached method results
def method_options_key(name: str, options: Mapping) -> dict:
    """The JSON-able part of a method's options for a cache key (a Dynamics is named by its digest).

    Examples
    --------
    >>> method_options_key("cleanlab", {"folds": 5})
    {'method': 'cleanlab', 'folds': 5}
    """
    out = {"method": name}
    for key, value in options.items():
        out[key] = _cache.digest(value.probs, value.labels) if isinstance(value, Dynamics) else value
    return out


def _small(details: Mapping) -> dict:
    """The scalar entries of a method's ``details`` (what the cache keeps besides scores and decision)."""
    return {k: float(v) if isinstance(v, (float, np.floating)) else v for k, v in details.items()
            if isinstance(v, (int, float, str, bool, np.integer, np.floating)) and not isinstance(v, np.ndarray)}


def _method(task, name: str, options: Mapping, base: Mapping) -> dict:
    """Method ``name`` on ``task`` (cached): ``scores``, ``remove``, ``test_acc``, ``cost`` and scalar details."""
    params = {**base, **method_options_key(name, options)}

    def compute(folder):
        res = _methods.run(name, task, **options)
        arrays = {"scores": res.scores}
        if res.remove is not None:
            arrays["remove"] = res.remove
        np.savez(folder / "result.npz", **arrays)
        info = {"test_acc": res.test_acc, "trainings": res.cost.trainings, "epochs": res.cost.epochs,
                "recorded_run": res.cost.recorded_run, "seconds": res.cost.seconds, "details": _small(res.details)}
        (folder / "result.json").write_text(json.dumps(jsonable(info, "method result")))

    folder = _cache.cached("method-result", params, compute)
    info = json.loads((folder / "result.json").read_text())
    with np.load(folder / "result.npz") as z:
        info["scores"] = z["scores"]
        info["remove"] = z["remove"] if "remove" in z.files else None
    return info


def _retrain(task, remove: np.ndarray, rs: Mapping, base: Mapping) -> float:
    """Test accuracy after removing ``remove`` and retraining (cached by the removed set)."""
    params = {**base, "remove": _cache.digest(np.asarray(remove, bool)), "retrain_epochs": rs["retrain_epochs"],
              "retrain_batch_size": rs["retrain_batch_size"]}

    def compute(folder):
        acc = _methods.retrain_without(task, remove, epochs=rs["retrain_epochs"], batch_size=rs["retrain_batch_size"])
        (folder / "acc.txt").write_text(repr(float(acc)))

    return float((_cache.cached("retrain", params, compute) / "acc.txt").read_text())


def _quality(scores, flipped) -> dict:
    if flipped is None or flipped.all() or not flipped.any():
        return {"map": np.nan, "roc_auc": np.nan, "precision_at_95": np.nan}
    m = _metrics.evaluate(scores, flipped)
    return {"map": m["map"], "roc_auc": m["roc_auc"], "precision_at_95": m["precision_at_95"]}


def _audit(task, rs, names, retrained, *, options, base, extra_cost, row) -> tuple[list, list]:
    """Every method of ``names`` on one task; ``retrained``: those whose removals are retrained."""
    acc_rows, q_rows = [], []
    flipped = task.is_flipped if task.is_flipped is not None and task.is_flipped.any() else None
    k = None if flipped is None else int(flipped.sum())
    for name in names:
        res = _method(task, name, options.get(name, {}), base)
        trainings, seconds = extra_cost(name, res)
        flagged = None if res["remove"] is None else int(res["remove"].sum())
        details = {f"detail_{key}": value for key, value in res["details"].items()}
        q_rows.append({**row, "method": name, "samples": task.num_samples, **_quality(res["scores"], flipped),
                       "flagged": flagged, "trainings": trainings, "seconds": seconds, **details})
        if name not in retrained:
            continue
        removals = {}
        if name in OWN_MODEL and res["test_acc"] is not None:
            acc_rows.append({**row, "method": name, "rule": "own", "removed": 0,
                             "removed_flipped": None if flipped is None else 0,
                             "test_acc": float(res["test_acc"]), "source": "own model"})
        elif res["remove"] is not None:
            removals["own"] = res["remove"]
        if k is not None:     # standard removes nothing under either rule; the oracle's top k are its flips
            if name == "standard":
                removals["flipped"] = res["remove"]
            elif name == "oracle":
                removals["flipped"] = flipped
            else:
                removals["flipped"] = _methods.remove_top(res["scores"], k)
        for rule, mask in removals.items():
            everything = bool(mask.all())          # nothing left to train on: no accuracy
            acc_rows.append({**row, "method": name, "rule": rule, "removed": int(mask.sum()),
                             "removed_flipped": None if flipped is None else int((mask & flipped).sum()),
                             "test_acc": np.nan if everything else _retrain(task, mask, rs, base),
                             "source": "removed every sample" if everything else "retrained"})
    return acc_rows, q_rows


def _base(rs: Mapping, cap, seed: int) -> dict:
    return {"run": _run_key(cap), "model": rs["model"], "epochs": rs["epochs"], "batch_size": rs["batch_size"],
            "lr": rs["lr"], "seed": int(seed), "test_subset": rs["test_subset"]}


# --------------------------------------------------------------------------- the two protocols
def synthetic_grid(cfg: Mapping, *, rates: Sequence[float], methods: Sequence[str], scored: Sequence[str] = (),
                   seeds: int = 2, seed: int = 0, progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The paper's Table 1 protocol on the profile's data set with symmetric noise.

    For every rate and trial: record a run on a noisy copy, run every method on it, and for each method
    of ``methods`` retrain after removing (a) what its own rule removes and (b) its ``k`` top-ranked
    samples, ``k`` the number of flipped ones. DY-Bootstrap and Data Parameters report their own model
    under (a). Methods in ``scored`` are only scored (identification quality and cost).

    Parameters
    ----------
    cfg : mapping
        Profile dict; see :func:`settings`.
    rates : sequence of float
        Symmetric noise rates in (0, 1).
    methods, scored : sequence of str
        Registry names of :mod:`mislabel.methods`.
    seeds : int
        Trials per rate: seeds ``seed, seed + 1, ...``.
    seed : int
    progress : bool

    Returns
    -------
    accuracy : pandas.DataFrame
        One row per (rate, seed, method, rule): ``dataset``, ``rate``, ``seed``, ``method``, ``rule``
        (a key of :data:`RULES`), ``removed``, ``removed_flipped`` (int), ``test_acc`` (float, 0..1; NaN when
        the rule removes every sample) and ``source`` ("retrained", "own model" or "removed every sample").
    quality : pandas.DataFrame
        One row per (rate, seed, method): ``map``, ``roc_auc``, ``precision_at_95``, ``flagged`` (own rule,
        None for a ranking), ``trainings`` (classifier trainings, the recorded run included) and
        ``seconds`` (measured when computed; the recorded run's training included), plus ``detail_*``.

    Raises
    ------
    ValueError
        For an unknown method name or a bad ``seeds``.
    """
    for name in [*methods, *scored]:
        _methods.get(name)
    if isinstance(seeds, bool) or not isinstance(seeds, (int, np.integer)) or seeds < 1:
        raise ValueError(f"seeds must be a positive integer (trials per rate), got {seeds!r}")
    rs = settings(cfg)
    names = list(dict.fromkeys([*methods, *scored]))
    acc, quality = [], []
    cells = [(r, s) for r in rates for s in range(seed, seed + seeds)]
    for rate, s in tqdm(cells, desc="rates x trials", disable=not progress):
        cap = _capture(rs, noise="symmetric", rate=rate, noise_seed=2 * s + 1, seed=s, store_full="el2n" in names)
        task = _task(rs, cap, s, progress=False)
        options = {"cleanlab": {"folds": rs["folds"]}}
        det_seconds = 0.0
        if "detector" in names:
            det_cap = _capture(rs, noise="symmetric", rate=rate, noise_seed=2 * s, seed=s)
            det_seconds = _run_seconds(det_cap)
            options["detector"] = {"train_dynamics": det_cap.dynamics, "epochs": rs["detector_epochs"],
                                   "lr": rs["detector_lr"], "seed": s}
        run_seconds = _run_seconds(cap)

        def extra_cost(name, res):
            runs = int(res["recorded_run"]) + (name == "detector")
            return (res["trainings"] + runs,
                    res["seconds"] + run_seconds * res["recorded_run"] + det_seconds * (name == "detector"))

        a, q = _audit(task, rs, names, set(methods), options=options, base=_base(rs, cap, s),
                      extra_cost=extra_cost, row={"dataset": rs["dataset"], "rate": float(rate), "seed": s})
        acc += a
        quality += q
    return pd.DataFrame(acc), pd.DataFrame(quality)


def original_grid(cfg: Mapping, *, datasets: Sequence[str], methods: Sequence[str], seeds: int = 1, seed: int = 0,
                  top: int = 16, suspect_method: str = "shipped", progress: bool = False):
    """The paper's Table 2 protocol: the data sets as they are (no synthesized noise), each method's own rule.

    Parameters
    ----------
    cfg : mapping
        Profile dict; see :func:`settings`. Each data set's sizes are capped at its splits (:func:`for_dataset`).
    datasets : sequence of str
        Names for :func:`mislabel.data.load`.
    methods : sequence of str
        Registry names; ``oracle`` and ``detector`` (they need synthesized flips) are refused.
    seeds : int
        Trials per data set.
    seed : int
    top : int
        How many top-ranked suspects to return per data set (from the first trial).
    suspect_method : str
        The method whose ranking picks them; must be in ``methods``.
    progress : bool

    Returns
    -------
    accuracy : pandas.DataFrame
        Columns as :func:`synthetic_grid`'s (``rate`` is 0.0, ``rule`` is ``"own"``).
    quality : pandas.DataFrame
        Flagged counts, trainings and seconds (no truth: the metrics are NaN).
    suspects : dict of str -> Suspects

    Raises
    ------
    ValueError
        For ``oracle``/``detector`` or an unknown method, or ``suspect_method`` not in ``methods``.
    """
    bad = [m for m in methods if m in ("oracle", "detector")]
    if bad:
        raise ValueError(f"methods {bad} need synthesized flips; on original data use the others (e.g. 'shipped')")
    for name in methods:
        _methods.get(name)
    if suspect_method not in methods:
        raise ValueError(f"suspect_method {suspect_method!r} must be one of methods {list(methods)}")
    rs0 = settings(cfg)
    acc, quality, suspects = [], [], {}
    cells = [(d, s) for d in datasets for s in range(seed, seed + seeds)]
    for dataset, s in tqdm(cells, desc="data sets x trials", disable=not progress):
        rs = for_dataset(rs0, dataset)
        cap = _capture(rs, noise="none", rate=0.0, noise_seed=0, seed=s)
        task = _task(rs, cap, s, progress=False)
        run_seconds = _run_seconds(cap)

        def extra_cost(name, res):
            return res["trainings"] + int(res["recorded_run"]), res["seconds"] + run_seconds * res["recorded_run"]

        base = _base(rs, cap, s)
        a, q = _audit(task, rs, list(methods), set(methods), options={"cleanlab": {"folds": rs["folds"]}},
                      base=base, extra_cost=extra_cost, row={"dataset": dataset, "rate": 0.0, "seed": s})
        acc += a
        quality += q
        if dataset not in suspects:
            scores = _method(task, suspect_method, {}, base)["scores"]
            order = np.argsort(-scores, kind="stable")[:top]
            train = _load(rs["dataset"], "train", rs["subset"])
            suspects[dataset] = Suspects(train.images[order], order, task.labels[order],
                                         predicted_labels(cap.dynamics)[order], scores[order], list(train.classes))
    return pd.DataFrame(acc), pd.DataFrame(quality), suspects
