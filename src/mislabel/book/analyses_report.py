"""Chapter 9 (the paper's Sec. 4.4 analyses): run settings, tables, the paper's claims and computed sentences.

The computations are :mod:`mislabel.analyses`; this module turns their rows into the tables and the
sentences the chapter shows next to the paper's statements.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .. import analyses as _analyses
from .sentences import signed
from .style import METHOD_NAMES

__all__ = ["PAPER", "capture_options", "detector_options", "heatmap_table", "underlying_observation",
           "harm_sentence", "underlying_claims", "groups_table", "superclass_table", "superclass_vs_symmetric",
           "superclass_sentence", "superclass_verdict", "split_epoch", "lime_comparison", "lime_verdict"]

#: the paper's statements on Sec. 4.4 (its figures print no numbers in the text)
PAPER = {
    "harm": "under the same synthesized rate, more underlying noise harms the detector (Fig. 6)",
    "tolerance": "still satisfactory with up to about 20% underlying noise (Figs. 6 and 10)",
    "tolerance_rate": 0.2,
    "superclass": "detector ahead of AUM in mAP and ROC AUC at every noise rate (Fig. 7)",
    "lime": "the first half of the dynamics, before the learning rate drops, matters more than the second (Fig. 8)",
    "setup": "CIFAR-10, ResNet-32, 200 epochs; evaluated on Caltech-256 with 40% symmetric noise",
}

_METRIC_NAMES = {"map": "mAP", "roc_auc": "ROC AUC", "precision_at_95": "Precision@95"}


def capture_options(cfg: Mapping, *, dataset: str | None = None, seed: int = 0) -> dict:
    """Keyword arguments of :func:`mislabel.pipeline.capture` for the chapter's runs.

    Parameters
    ----------
    cfg : mapping
        Profile dict (:func:`mislabel.book.profiles.get`): ``dataset``, ``analyses_subset``,
        ``test_subset``, ``model``, ``epochs``, ``batch_size``, ``lr``.
    dataset : str, optional
        Another data set (the super-class runs); its sizes are then the whole split up to the preset's.
    seed : int
        Seed of the classifier runs.

    Returns
    -------
    dict
    """
    opts = dict(dataset=cfg["dataset"] if dataset is None else dataset, subset=cfg["analyses_subset"],
                test_subset=cfg["test_subset"], model=cfg["model"], epochs=int(cfg["epochs"]),
                batch_size=int(cfg["batch_size"]), lr=float(cfg["lr"]), seed=int(seed))
    if dataset is not None and dataset != cfg["dataset"]:
        from .profiles import split_lengths

        lengths = split_lengths(dataset)
        for key in ("subset", "test_subset"):
            size = opts[key]
            opts[key] = None if size is None or size >= lengths[key] else int(size)
    return opts


def detector_options(cfg: Mapping, *, seed: int = 0) -> dict:
    """Keyword arguments of :func:`mislabel.pipeline.train_detector`: the profile's epochs and rate."""
    return dict(epochs=int(cfg["detector_epochs"]), lr=float(cfg.get("detector_lr", 0.01)), seed=int(seed))


# --------------------------------------------------------------------------- underlying noise (Figs. 6, 10)
def heatmap_table(rows, metric: str = "map") -> pd.DataFrame:
    """One metric of the grid as underlying rate (rows, largest first, as in the paper) x synthesized rate.

    Parameters
    ----------
    rows : sequence of dict
        :attr:`mislabel.analyses.UnderlyingGrid.rows`.
    metric : {"map", "roc_auc", "precision_at_95"}

    Returns
    -------
    pandas.DataFrame
        Index "underlying noise rate", columns "synthesized noise rate", float64 values.
    """
    if metric not in _METRIC_NAMES:
        raise ValueError(f"metric must be one of {', '.join(_METRIC_NAMES)}, got {metric!r}")
    df = pd.DataFrame(list(rows))
    table = df.pivot(index="underlying_rate", columns="synthesized_rate", values=metric).sort_index(ascending=False)
    table.index.name, table.columns.name = "underlying noise rate", "synthesized noise rate"
    return table


def underlying_observation(rows, *, metric: str = "map", tolerance: float = 0.05) -> str:
    """The paper's tolerance claim (about 20% underlying noise) checked on the grid, as one sentence.

    Parameters
    ----------
    rows : sequence of dict
        :attr:`mislabel.analyses.UnderlyingGrid.rows`.
    metric : {"map", "roc_auc", "precision_at_95"}
    tolerance : float
        Largest loss against the cell without underlying noise that counts as "still fine".

    Returns
    -------
    str
    """
    t = _analyses.tolerated_underlying(rows, metric=metric, tolerance=tolerance)
    name = _METRIC_NAMES[metric]
    top = max(t["loss"])
    paper = PAPER["tolerance_rate"]
    if t["first_failing"] is None:
        head = (f"{name} stays within {tolerance:g} of the run without underlying noise at every synthesized rate "
                f"up to the grid's largest underlying rate, {top:.0%} (largest loss {t['loss'][top]:.3f})")
        verdict = ("consistent with the paper" if top >= paper else
                   f"the grid stops below the paper's {paper:.0%}, so it can neither confirm nor refute it")
    else:
        f = t["first_failing"]
        head = (f"{name} stays within {tolerance:g} of the run without underlying noise up to "
                f"{t['tolerated']:.0%} underlying noise; at {f:.0%} it loses up to {t['loss'][f]:.3f}")
        verdict = ("consistent with the paper" if t["tolerated"] >= paper else
                   f"less tolerant than the paper's {paper:.0%}")
    return f"{head}: {verdict}."


def harm_sentence(rows, *, metric: str = "map") -> str:
    """The paper's first observation (more underlying noise, lower scores) checked on the grid.

    Returns
    -------
    str
        How many synthesized rates lose ``metric`` between no underlying noise and the largest rate.
    """
    t = _analyses.tolerated_underlying(rows, metric=metric, tolerance=0.0)
    top = max(t["loss"])
    if top == 0:
        return "the grid has no underlying noise to compare with."
    return (f"with {top:.0%} underlying noise, {_METRIC_NAMES[metric]} is lower than without at "
            f"{t['harmed']} of {t['columns']} synthesized rates (largest loss {signed(t['loss'][top], 3)}).")


def underlying_claims(rows, *, tolerance: float = 0.05, dataset: str = "") -> pd.DataFrame:
    """The paper's two observations on Figs. 6 and 10 next to this grid's, in mAP and ROC AUC.

    Returns
    -------
    pandas.DataFrame
        Three rows (harm, tolerance in mAP, tolerance in ROC AUC), columns paper and this book.
    """
    return pd.DataFrame({
        f"paper ({PAPER['setup']})": [PAPER["harm"], PAPER["tolerance"], PAPER["tolerance"]],
        f"this book{f' ({dataset})' if dataset else ''}": [
            harm_sentence(rows), underlying_observation(rows, metric="map", tolerance=tolerance),
            underlying_observation(rows, metric="roc_auc", tolerance=tolerance)],
    }, index=["more underlying noise", "tolerance (mAP)", "tolerance (ROC AUC)"])


# --------------------------------------------------------------------------- super-classes (Fig. 7)
#: names of the groups of :data:`mislabel.class_maps.FASHION_MNIST_GROUPS`
FASHION_MNIST_GROUP_NAMES = ("tops", "footwear", "other")


def groups_table(dataset: str) -> pd.DataFrame:
    """The groups superclass noise stays within, one row per group (the paper's Table 5 for CIFAR-100).

    Parameters
    ----------
    dataset : {"fashion-mnist", "cifar100"}

    Returns
    -------
    pandas.DataFrame
        Index "group", one column "classes" (comma-separated class names).

    Raises
    ------
    ValueError
        For a data set without groups.
    """
    from .. import data as _data
    from ..class_maps import FASHION_MNIST_GROUPS

    if dataset == "fashion-mnist":
        names, groups = list(_data.load(dataset, split="test", subset=1).classes), FASHION_MNIST_GROUPS
        group_names = list(FASHION_MNIST_GROUP_NAMES)
    else:
        full = _data.load(dataset, split="train")
        if full.coarse_labels is None:
            raise ValueError(f"dataset {dataset!r} has no class groups; use 'fashion-mnist' or 'cifar100'")
        from ..class_maps import groups_from_coarse

        names, group_names = list(full.classes), list(full.coarse_classes)
        groups = groups_from_coarse(full.labels, full.coarse_labels, full.num_classes)
    rows = {group_names[g]: ", ".join(n for n, k in zip(names, groups) if k == g) for g in sorted(set(groups))}
    return pd.DataFrame({"classes": list(rows.values())}, index=pd.Index(list(rows), name="group"))


def superclass_table(rows, methods: Sequence[str]) -> pd.DataFrame:
    """The comparison's rows for ``methods`` (registry names), with the book's shown names.

    Returns
    -------
    pandas.DataFrame
        Columns ``rate``, ``method`` (shown name), ``mAP``, ``ROC AUC``, ``Precision@95``.
    """
    df = pd.DataFrame(list(rows))
    df = df[df["method"].isin(list(methods))].copy()
    df["method"] = pd.Categorical(df["method"].map(lambda m: METHOD_NAMES.get(m, m)),
                                  [METHOD_NAMES.get(m, m) for m in methods], ordered=True)
    return (df.rename(columns=_METRIC_NAMES)[["rate", "method", *_METRIC_NAMES.values()]]
            .sort_values(["rate", "method"]).reset_index(drop=True))


def superclass_sentence(rows, *, peer: str, metric: str = "map") -> str:
    """Detector against AUM and against the best peer on one metric, over the rates, as one sentence.

    Parameters
    ----------
    rows : sequence of dict
        :attr:`mislabel.analyses.SuperclassComparison.rows`.
    peer : str
        Registry name of the best peer (:func:`mislabel.analyses.best_peer`).
    metric : {"map", "roc_auc", "precision_at_95"}

    Returns
    -------
    str
    """
    df = pd.DataFrame(list(rows)).pivot(index="rate", columns="method", values=metric)
    parts = []
    for other in ("aum", peer):
        diff = df["detector"] - df[other]
        ahead = int((diff > 0).sum())
        parts.append(f"ahead of {METHOD_NAMES.get(other, other)} at {ahead} of {len(diff)} rates "
                     f"(mean difference {signed(diff.mean(), 3)})")
    return f"in {_METRIC_NAMES[metric]}, the detector is " + " and ".join(parts)


def superclass_verdict(rows) -> str:
    """Whether the paper's Fig. 7 claim (detector ahead of AUM in mAP and ROC AUC at every rate) holds here.

    Parameters
    ----------
    rows : sequence of dict
        :attr:`mislabel.analyses.SuperclassComparison.rows`.

    Returns
    -------
    str
        One sentence.
    """
    df = pd.DataFrame(list(rows))
    ahead = {m: (df[df.method == "detector"].set_index("rate")[m] > df[df.method == "aum"].set_index("rate")[m])
             for m in ("map", "roc_auc")}
    cells = sum(int(a.sum()) for a in ahead.values())
    total = sum(len(a) for a in ahead.values())
    if cells == total:
        return "The paper's claim holds here: the detector is ahead of AUM in both metrics at every rate."
    return (f"The paper's claim does not hold here: the detector is ahead of AUM in {cells} of {total} "
            "(rate, metric) pairs, not in all of them.")


def superclass_vs_symmetric(superclass_rows, grid_rows, *, eval_rate: float) -> str:
    """The detector's mAP under superclass noise against symmetric noise at the same rate, as one sentence.

    The symmetric reference is the underlying-noise grid's cell without underlying noise whose
    synthesized rate is ``eval_rate``, scored on the evaluation run (``eval_rate`` symmetric noise).

    Parameters
    ----------
    superclass_rows : sequence of dict
        :attr:`mislabel.analyses.SuperclassComparison.rows`.
    grid_rows : sequence of dict
        :attr:`mislabel.analyses.UnderlyingGrid.rows`.
    eval_rate : float
        Noise rate of the grid's evaluation run.

    Returns
    -------
    str
        Empty when the superclass rates or the grid's synthesized rates do not include ``eval_rate``.
    """
    sc = [r["map"] for r in superclass_rows if r["method"] == "detector" and abs(r["rate"] - eval_rate) < 1e-9]
    sym = [r["map"] for r in grid_rows if r["underlying_rate"] == 0 and abs(r["synthesized_rate"] - eval_rate) < 1e-9]
    if not sc or not sym:
        return ""
    relation = "below" if sc[0] < sym[0] else "not below"
    return (f"At {eval_rate:.0%} noise the detector's mAP is {sc[0]:.3f} within super-classes against "
            f"{sym[0]:.3f} under symmetric noise (the first section's cell without underlying noise): {relation}.")


# --------------------------------------------------------------------------- LIME (Fig. 8)
def split_epoch(lrs, num_epochs: int) -> int:
    """Where the paper's "first half" ends: the epochs before the first learning-rate drop, else half the run."""
    drops = [d for d in _analyses.lr_drops(lrs) if 1 <= d < num_epochs]
    return drops[0] if drops else max(1, num_epochs // 2)


def lime_comparison(dominates: Mapping[str, bool]) -> str:
    """The paper's Fig. 8 finding (early epochs matter more) against each explained detector, as one sentence.

    Parameters
    ----------
    dominates : mapping of str to bool
        Detector name -> whether its early epochs dominate
        (``early_dominates`` of :func:`mislabel.analyses.early_late_importance`).

    Returns
    -------
    str
        Which detectors agree with the paper and, where one does not, the likely reason.
    """
    agree = [n for n, d in dominates.items() if d]
    differ = [n for n, d in dominates.items() if not d]
    if not differ:
        return f"This agrees with the paper for {' and '.join(agree)}."
    text = f"This differs from the paper for {' and '.join(differ)}"
    text += f" (and agrees for {' and '.join(agree)})." if agree else "."
    return text + (" A likely reason: in our short runs the small classifier memorises few wrong labels, so a "
                   "flipped sample's probability stays low to the end, and the last epochs, where the clean samples "
                   "have converged, separate the two groups most cleanly; an LSTM that reads its last state "
                   "weighs the last steps most. In the paper's 200 epochs the late epochs are where wrong labels are "
                   "memorised and the curves look alike again.")


def lime_verdict(name: str, importance, *, boundary: int, epochs_read: int) -> str:
    """Whether a detector's early epochs dominate its LIME importance, as one sentence.

    Parameters
    ----------
    name : str
        The detector, e.g. "the in-domain detector".
    importance : array-like of shape (T,), float
        Mean |weight| per epoch (:func:`mislabel.analyses.mean_abs_importance`).
    boundary : int
        Epochs before the split (:func:`split_epoch`).
    epochs_read : int
        Epochs the detector reads (:attr:`~mislabel.analyses.EpochExplanation.epochs_read`).

    Returns
    -------
    str
    """
    imp = np.asarray(importance, dtype=np.float64)
    r = _analyses.early_late_importance(imp, boundary)
    T = imp.size
    verdict = "the early epochs dominate" if r["early_dominates"] else "the early epochs do not dominate"
    text = (f"for {name}, epochs 1-{boundary} (before the first learning-rate drop) carry a mean |weight| of "
            f"{r['early_mean']:.4f} per epoch and epochs {boundary + 1}-{T} {r['late_mean']:.4f}: {verdict} "
            f"({r['early_share']:.0%} of the total)")
    if epochs_read < T:
        text += (f"; its memorisation guard reads only the first {epochs_read} epochs of this run, so the later "
                 "ones weigh nothing")
    return text + "."


def check_settings(cfg: dict, *, eval_rate, lime_examples) -> tuple[float, int]:
    """Chapter 9's settings checked before anything is trained; ``cfg``'s super-class rates become floats.

    Returns
    -------
    eval_rate : float
    lime_examples : int

    Raises
    ------
    ValueError
        Naming the parameter: grid rates (:func:`mislabel.analyses.check_grid_rates`; ``underlying_rates`` must hold
        0.0, the reference cells), ``superclass_rates``, ``eval_rate``, ``lime_examples``, ``lime_samples`` or
        ``lime_perturbations``.
    """
    from .. import analyses
    from .._validation import check_positive_int
    from . import chapter

    analyses.check_grid_rates(cfg["analyses_underlying"], cfg["analyses_synthesized"])
    if 0.0 not in cfg["analyses_underlying"]:
        raise ValueError("underlying_rates must hold 0.0: the cells without underlying noise are the reference")
    cfg["analyses_superclass_rates"] = [chapter.check_noise_rate(r, "each of superclass_rates")
                                        for r in cfg["analyses_superclass_rates"]]
    eval_rate = chapter.check_noise_rate(eval_rate, "eval_rate")
    for name, value in (("lime_examples", lime_examples), ("lime_samples", cfg["analyses_lime_samples"]),
                        ("lime_perturbations", cfg["analyses_lime_perturbations"])):
        check_positive_int(value, name)
    return eval_rate, lime_examples
