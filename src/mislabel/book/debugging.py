"""Chapter 8 (Sec. 4.3, Table 3): data debugging before DivideMix, DM-AugDesc and plain training.

:func:`study` runs the chapter's grid from a profile's ``debug_*`` settings: one recorded run on a
copy with symmetric noise (noise draw 1), the rankings (``debug_rankings``; the first is the
chapter's "ours"; ``"detector"`` is trained on a run with noise draw 0 of the same images, as in
chapter 3, so it never sees the flips it ranks),
the corrected label sets (top ``debug_shares`` replaced by the true label or by the prediction of a
model retrained without the ranking's top ``exclude``), and each learner on each label set.
Every training is cached (:mod:`mislabel.cache`), so a second run of the chapter trains nothing.
The sentences and the verdict about the paper's claim are in :mod:`mislabel.book.debugging_text`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from .. import cache as _cache
from .. import data as _data
from .. import debug as _debug
from .. import methods as _methods
from .. import train as _train
from .._validation import check_share
from ..dividemix import dividemix
from . import runs as _runs
from .style import METHOD_NAMES

__all__ = ["LEARNERS", "PROTOCOL_NAMES", "Study", "study", "run_cfg", "accuracy_table", "labels_table"]

#: learner key -> the name tables show
LEARNERS = {"dividemix": "DivideMix", "augdesc": "DM-AugDesc", "plain": "plain training"}
#: debugging protocol -> the name tables show
PROTOCOL_NAMES = {"truth": "true label", "retrain": "retrained model"}


@dataclass
class Study:
    """What :func:`study` returns.

    Attributes
    ----------
    runs : DataFrame
        One row per training: ``learner``, ``ranking`` ("" for none), ``protocol`` ("" for none),
        ``share`` (0 for none), ``best``, ``last`` (test accuracy), ``seconds``, ``cached``.
    labels : DataFrame
        One row per corrected label set: ``ranking``, ``protocol``, ``share`` and
        :meth:`mislabel.debug.Debugged.summary`'s counts.
    retrain_acc : dict
        Ranking -> test accuracy of the model retrained without its top ``exclude``.
    noise_rate : float
        Share of wrong labels in the noisy copy.
    noisy, truth : ndarray of shape (N,), int64
        The given and the true labels.
    scores : dict
        Ranking -> (N,) float64 scores.
    """

    runs: pd.DataFrame
    labels: pd.DataFrame
    retrain_acc: dict
    noise_rate: float
    noisy: np.ndarray
    truth: np.ndarray
    scores: dict


def run_cfg(cfg: Mapping) -> dict:
    """The profile dict with the chapter's sizes in the keys :func:`mislabel.book.runs.capture_for` reads."""
    out = dict(cfg)
    out.update(subset=cfg["debug_subset"], test_subset=cfg["debug_test_subset"], epochs=cfg["debug_epochs"],
               lr=cfg["debug_lr"], batch_size=cfg["debug_batch_size"], model=cfg["debug_model"])
    return out


def _fetch_arrays(kind: str, params: dict, compute, progress: bool = False) -> tuple[dict, bool]:
    """``compute() -> dict of arrays`` cached as one ``.npz`` under ``kind``; returns (arrays, hit)."""
    def write(folder):
        arrays = compute()
        np.savez(folder / "result.npz", **arrays)

    def load(folder):
        with np.load(folder / "result.npz") as z:
            return {k: z[k] for k in z.files}

    got = _cache.fetch(kind, params, write, load=load, progress=progress)
    return got.value, got.hit


def _learner(name: str, cfg: Mapping, images, labels, test, seed: int):
    """Train learner ``name`` on ``labels``; arrays ``test_acc`` (per epoch) and ``seconds``."""
    t0 = time.perf_counter()
    common = dict(batch_size=int(cfg["debug_batch_size"]), lr=float(cfg["debug_lr"]), seed=seed, progress=False,
                  test_images=test.images, test_labels=test.labels)
    if name == "plain":
        run = _train.fit(cfg["debug_model"], images, labels, int(cfg["debug_epochs"]), record=None, **common)
        acc = run.history["test_acc"]
    else:
        res = dividemix(cfg["debug_model"], images, labels, int(cfg["debug_epochs"]),
                        warmup_epochs=int(cfg["debug_warmup"]), augmentation="augdesc-ws" if name == "augdesc"
                        else "standard", **common)
        acc = res.history["test_acc"]
    return {"test_acc": np.asarray(acc, dtype=np.float64), "seconds": np.float64(time.perf_counter() - t0)}


def study(cfg: Mapping, *, noise_rate: float = 0.2, exclude: float = 0.25, seed: int = 0,
          progress: bool = False) -> Study:
    """Run the chapter's grid (cached).

    Parameters
    ----------
    cfg : mapping
        A profile dict (:func:`mislabel.book.profiles.get`) with the ``debug_*`` keys.
    noise_rate : float
        Symmetric noise of the copy (noise draw 1, as the book's evaluated copies).
    exclude : float
        Share of each ranking's top left out of the retrained model whose predictions correct labels.
    seed : int
        Seed of every training.
    progress : bool
        Progress bars and cache messages.

    Returns
    -------
    Study
    """
    rcfg = run_cfg(cfg)
    cap = _runs.capture_for(rcfg, noise="symmetric", rate=float(noise_rate), noise_seed=1, seed=seed,
                            progress=progress)
    ds = _data.load(rcfg["dataset"], split="train", subset=rcfg["subset"], seed=int(rcfg.get("data_seed", 0)))
    test = _data.load(rcfg["dataset"], split="test", subset=rcfg["test_subset"], seed=int(rcfg.get("data_seed", 0)))
    noisy, truth = cap.dynamics.labels, cap.clean_labels
    task = _methods.Task(ds.images, noisy, ds.num_classes, dynamics=cap.dynamics, model=rcfg["model"],
                         epochs=int(rcfg["epochs"]), batch_size=int(rcfg["batch_size"]), lr=float(rcfg["lr"]),
                         seed=seed, progress=progress, test_images=test.images, test_labels=test.labels)
    base = {"data": _cache.digest(ds.images, noisy, test.images, test.labels), "seed": seed,
            "model": rcfg["model"], "epochs": int(rcfg["epochs"]), "lr": float(rcfg["lr"]),
            "batch_size": int(rcfg["batch_size"])}

    scores, retrain_acc, sets, label_rows = {}, {}, {}, []
    for name in cfg["debug_rankings"]:
        options, key = {}, {}
        if name == "cleanlab":
            options = key = {"folds": int(cfg["debug_folds"])}
        elif name == "detector":   # trained on another noise draw of the same images (chapter 3's protocol)
            train_cap = _runs.capture_for(rcfg, noise="symmetric", rate=float(noise_rate), noise_seed=0, seed=seed,
                                          progress=progress)
            options = {"detector": _runs.detector_for(rcfg, [train_cap], seed=seed, progress=progress)}
            key = {"detector_epochs": int(cfg["detector_epochs"]), "detector_lr": float(cfg.get("detector_lr", 0.01)),
                   "train_noise_seed": 0}
        got, _ = _fetch_arrays("debug-ranking", {**base, "method": name, **key},
                               lambda: {"scores": _methods.run(name, task, **options).scores}, progress)
        scores[name] = got["scores"]
        got, _ = _fetch_arrays("debug-retrained", {**base, "method": name, "exclude": float(exclude)},
                               lambda: dict(zip(("pred", "acc"), _debug.retrained_predictions(
                                   task, scores[name], exclude_share=float(exclude), test=True))), progress)
        retrain_acc[name] = float(got["acc"])
        for share in cfg["debug_shares"]:
            for protocol in _debug.PROTOCOLS:
                fixed = (_debug.correct_with_truth(noisy, scores[name], share, true_labels=truth)
                         if protocol == "truth" else
                         _debug.correct_with_model(noisy, scores[name], share, predictions=got["pred"]))
                sets[name, protocol, share] = fixed.labels
                label_rows.append({"ranking": name, "protocol": protocol, "share": float(share),
                                   **fixed.summary(truth, noisy)})

    grid = [(learner, "", "", 0.0) for learner in cfg["debug_learners"]]
    first = cfg["debug_rankings"][0]
    for name in cfg["debug_rankings"]:
        learners = cfg["debug_learners"] if name == first else cfg["debug_compare_learners"]
        grid += [(learner, name, protocol, float(share)) for learner in learners for share in cfg["debug_shares"]
                 for protocol in _debug.PROTOCOLS]
    rows = []
    for learner, name, protocol, share in grid:
        labels = noisy if not name else sets[name, protocol, share]
        params = {**base, "learner": learner, "labels": _cache.digest(labels),
                  "warmup": int(cfg["debug_warmup"]) if learner != "plain" else None}
        got, hit = _fetch_arrays("debug-learner", params,
                                 lambda: _learner(learner, cfg, ds.images, labels, test, seed), progress)
        acc = got["test_acc"]
        rows.append({"learner": learner, "ranking": name, "protocol": protocol, "share": share,
                     "best": float(acc.max()), "last": float(acc[-1]), "seconds": float(got["seconds"]),
                     "cached": bool(hit)})
    return Study(pd.DataFrame(rows), pd.DataFrame(label_rows), retrain_acc, float((noisy != truth).mean()),
                 np.asarray(noisy, np.int64), np.asarray(truth, np.int64), scores)


def _row_name(row) -> str:
    if not row.ranking:
        return "alone"
    return f"+ {row.share:.0%} D.D. ({METHOD_NAMES.get(row.ranking, row.ranking)}, {PROTOCOL_NAMES[row.protocol]})"


def accuracy_table(runs: pd.DataFrame, *, ranking: str | None = None, learners=None) -> pd.DataFrame:
    """Table 3's layout: per learner, alone then each debugging, ``Best`` and ``Last`` in percent.

    Parameters
    ----------
    runs : DataFrame
        :attr:`Study.runs`.
    ranking : str, optional
        Keep only this ranking's debugging rows (default: all).
    learners : sequence of str, optional
        Learner keys, in order (default: those in ``runs``, in :data:`LEARNERS`' order).

    Returns
    -------
    DataFrame
        Index: (learner, debugging), debugging "alone" or "+ 5% D.D. (ranking, protocol)"; columns
        ``Best``, ``Last`` (percent), ``Best vs alone`` (percentage points).
    """
    learners = [k for k in LEARNERS if k in set(runs["learner"])] if learners is None else list(learners)
    order = {name: i for i, name in enumerate(dict.fromkeys(runs["ranking"]))}
    parts = []
    for learner in learners:
        sub = runs[runs["learner"] == learner]
        if ranking is not None:
            sub = sub[(sub["ranking"] == "") | (sub["ranking"] == ranking)]
        alone = float(sub.loc[sub["ranking"] == "", "best"].iloc[0])
        key = [(order[r.ranking], r.protocol != "truth", r.share) for r in sub.itertuples()]
        sub = sub.iloc[sorted(range(len(sub)), key=key.__getitem__)]
        parts.append(pd.DataFrame({"Best": 100 * sub["best"].to_numpy(), "Last": 100 * sub["last"].to_numpy(),
                                   "Best vs alone": 100 * (sub["best"].to_numpy() - alone)},
                                  index=pd.MultiIndex.from_tuples([(LEARNERS[learner], _row_name(r))
                                                                   for r in sub.itertuples()],
                                                                  names=["learner", "debugging"])))
    return pd.concat(parts)


def labels_table(labels: pd.DataFrame) -> pd.DataFrame:
    """What each corrected label set changed, with human column names (one row per set)."""
    out = labels.copy()
    out["ranking"] = out["ranking"].map(lambda n: METHOD_NAMES.get(n, n))
    out["protocol"] = out["protocol"].map(PROTOCOL_NAMES)
    out["share"] = out["share"].map(lambda s: f"{s:.0%}")
    out["noise_before"] = 100 * out["noise_before"]
    out["noise_after"] = 100 * out["noise_after"]
    return out.rename(columns={"ranking": "ranking", "protocol": "corrected with", "share": "top",
                               "checked": "labels checked", "wrong_checked": "of them wrong",
                               "fixed": "fixed", "broken": "broken", "noise_before": "noise before (%)",
                               "noise_after": "noise after (%)"}).set_index(["ranking", "corrected with", "top"])


def check_exclude(exclude, shares) -> float:
    """Chapter 8's ``exclude``: the share left out of the retrained model, in (0, 1) and at least the largest of
    ``shares``, so that no corrected label comes from a model trained on it.

    Raises
    ------
    ValueError
        Naming ``exclude`` and the largest share.
    """
    top = max(shares)
    hint = f" and at least the largest share {top}, so that no corrected label comes from a model trained on it"
    value = check_share(exclude, "exclude", hint=hint)
    if value < top:
        raise ValueError(f"exclude must be in (0, 1){hint}, got {exclude!r}")
    return value
