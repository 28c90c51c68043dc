"""The chapters' tables: dynamics summaries, method comparisons and the numbers the prose glues in.

Every function takes results (dynamics, score tables) and returns a pandas
table or a dict of plain numbers; none of them trains anything.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .. import metrics as _metrics
from ..dynamics import Dynamics, _row_index
from . import rules
from .rules import TIE

__all__ = ["METHODS", "METRIC_LABELS", "epoch_summary", "late_epoch_contrast", "long_probs", "pick_trajectories",
           "label_levels", "transition_matrix", "evaluate_methods", "metrics_long", "method_comparison",
           "grid_table", "tally", "transfer_summary"]

#: Display names of the two rankings compared throughout the book.
METHODS = ("LSTM detector", "AUM")

#: Column name -> display name of the detection metrics (paper, Appendix A).
METRIC_LABELS = {"map": "mAP", "roc_auc": "ROC AUC", "precision_at_95": "Precision@95"}

#: how a table shows the library's column names
COLUMN_NAMES = {**METRIC_LABELS, "precision_at_k": "Precision@k", "k": "k (flipped samples)", "n": "samples",
                "noise_rate": "noise rate", "train_loss": "training loss", "val_ap": "validation AP",
                "val_loss": "validation loss", "method": "method", "epoch": "epoch", "rate": "noise rate",
                "kind": "noise", "seconds": "seconds", "dataset": "data set", "subset": "images",
                "batch_size": "batch size", "lr": "learning rate"}


def human(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with its columns (and index names) renamed by :data:`COLUMN_NAMES`; other names are kept."""
    out = table.rename(columns=COLUMN_NAMES)
    out.index = out.index.set_names([COLUMN_NAMES.get(n, n) for n in out.index.names])
    return out


# --------------------------------------------------------------------------- chapter 1: dynamics summaries
def _groups(dynamics: Dynamics) -> np.ndarray:
    if dynamics.is_flipped is None:
        raise ValueError("these dynamics carry no is_flipped; capture them with synthesized noise")
    return np.where(dynamics.is_flipped, "mislabeled", "clean")


def epoch_summary(dynamics: Dynamics) -> pd.DataFrame:
    """Mean and standard deviation of the given-label probability per epoch, clean vs mislabeled.

    Parameters
    ----------
    dynamics : Dynamics
        ``probs`` of shape (N, T) float32 and ``is_flipped`` of shape (N,) bool.

    Returns
    -------
    pandas.DataFrame
        2*T rows (fewer if a group is empty) with columns ``epoch`` (int64,
        1..T), ``group`` (str, ``"clean"`` or ``"mislabeled"``), ``mean``,
        ``std`` (float64; population std, ddof=0) and ``n`` (int64, samples
        in the group).
    """
    groups = _groups(dynamics)
    rows = []
    for name in ("clean", "mislabeled"):
        p = dynamics.probs[groups == name].astype(np.float64)
        if len(p) == 0:
            continue
        for t in range(p.shape[1]):
            rows.append({"epoch": t + 1, "group": name, "mean": float(p[:, t].mean()),
                         "std": float(p[:, t].std()), "n": len(p)})
    out = pd.DataFrame(rows)
    return out.astype({"epoch": "int64", "n": "int64"})


def late_epoch_contrast(dynamics: Dynamics, fraction: float = 0.5) -> dict:
    """Compare clean and mislabeled curves over the last ``fraction`` of training (paper Sec 3, Fig. 1).

    Parameters
    ----------
    dynamics : Dynamics
        With ``is_flipped``; both groups non-empty.
    fraction : float
        Share of the last epochs averaged over, in (0, 1]; 0.5 = "second half".

    Returns
    -------
    dict of float / int / bool
        ``first_epoch`` (1-based start of the window), ``clean_mean``,
        ``mislabeled_mean`` (mean probability over the window), ``clean_std``,
        ``mislabeled_std`` (per-epoch std averaged over the window),
        ``last_clean_mean``, ``last_mislabeled_mean`` (last epoch only),
        ``mean_lower`` (mislabeled mean < clean mean over the window) and
        ``std_higher`` (mislabeled std > clean std over the window).

    Raises
    ------
    ValueError
        If ``fraction`` is outside (0, 1], or no sample or every sample is flipped.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    flipped = int((_groups(dynamics) == "mislabeled").sum())
    if flipped in (0, len(dynamics)):
        raise ValueError(f"comparing clean with mislabeled curves needs both, but {flipped} of {len(dynamics)} "
                         "samples are flipped; record a run with a noise rate strictly between 0 and 1")
    summary = epoch_summary(dynamics)
    T = dynamics.num_epochs
    first = T - max(1, int(round(fraction * T))) + 1
    late = summary[summary["epoch"] >= first]
    by = late.groupby("group")[["mean", "std"]].mean()
    last = summary[summary["epoch"] == T].set_index("group")["mean"]
    out = {"first_epoch": int(first),
           "clean_mean": float(by.loc["clean", "mean"]), "mislabeled_mean": float(by.loc["mislabeled", "mean"]),
           "clean_std": float(by.loc["clean", "std"]), "mislabeled_std": float(by.loc["mislabeled", "std"]),
           "last_clean_mean": float(last["clean"]), "last_mislabeled_mean": float(last["mislabeled"])}
    out["mean_lower"] = bool(out["mislabeled_mean"] < out["clean_mean"])
    out["std_higher"] = bool(out["mislabeled_std"] > out["clean_std"])
    return out


def long_probs(dynamics: Dynamics, index: Sequence[int] | np.ndarray | None = None) -> pd.DataFrame:
    """Given-label probabilities in long ("tidy") form for seaborn.

    Parameters
    ----------
    dynamics : Dynamics
        With ``is_flipped``.
    index : array-like of int or bool, optional
        Rows (samples) to include, as :meth:`Dynamics.subset` takes them: integer indices in
        ``[-N, N)`` or a boolean mask of shape ``(N,)``; default all.

    Returns
    -------
    pandas.DataFrame
        One row per (sample, epoch): ``sample`` (int64, row in ``dynamics``, counted from 0 also for
        negative indices), ``epoch`` (int64, 1-based), ``group`` (str), ``prob`` (float32).

    Raises
    ------
    ValueError
        If ``index`` selects no sample, is out of range, or is neither integers nor a mask of shape ``(N,)``.
    """
    n = dynamics.num_samples
    if index is None:
        idx = np.arange(n)
    else:
        idx = _row_index(index, n)
        idx = np.flatnonzero(idx) if idx.dtype == bool else idx.astype(np.int64) % n   # rows counted from 0
    p = dynamics.probs[idx]
    T = p.shape[1]
    return pd.DataFrame({
        "sample": np.repeat(idx, T).astype(np.int64),
        "epoch": np.tile(np.arange(1, T + 1), len(idx)).astype(np.int64),
        "group": np.repeat(_groups(dynamics)[idx], T),
        "prob": p.reshape(-1).astype(np.float32),
    })


def pick_trajectories(dynamics: Dynamics, per_group: int = 3, seed: int = 0) -> np.ndarray:
    """Draw a few samples of each group to show as individual curves.

    Parameters
    ----------
    dynamics : Dynamics
        With ``is_flipped``.
    per_group : int
        Samples drawn from each of clean and mislabeled (fewer if a group is smaller).
    seed : int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    ndarray of shape (<= 2 * per_group,), int64
        Row indices, clean ones first.
    """
    rng = np.random.default_rng(seed)
    groups = _groups(dynamics)
    picked = []
    for name in ("clean", "mislabeled"):
        pool = np.flatnonzero(groups == name)
        picked.append(np.sort(rng.choice(pool, size=min(per_group, len(pool)), replace=False)))
    return np.concatenate(picked).astype(np.int64)


def label_levels(noise_rate: float, num_classes: int) -> tuple[float, float]:
    """Given-label probabilities of a classifier that predicts each image's label distribution without
    memorising single labels, under symmetric noise at ``noise_rate`` over ``num_classes`` classes.

    Returns
    -------
    (ceiling, floor) : tuple of float
        ``1 - noise_rate`` (a clean sample's given label) and ``noise_rate / (num_classes - 1)`` (a flipped
        one's).
    """
    return 1 - noise_rate, noise_rate / (num_classes - 1)


# --------------------------------------------------------------------------- chapters 2-4: scoring and tables
def transition_matrix(clean_labels, given_labels, classes: Sequence) -> pd.DataFrame:
    """Share of the samples of each true class that carry each given label.

    Parameters
    ----------
    clean_labels, given_labels : array-like of shape (N,), int
        Class indices into ``classes``.
    classes : sequence
        Class names (or indices); every one gets a row and a column, observed or not.

    Returns
    -------
    pandas.DataFrame
        Rows: true class, columns: given label; each row sums to 1 (NaN for a class without samples).
    """
    return pd.crosstab(pd.Categorical.from_codes(clean_labels, classes),
                       pd.Categorical.from_codes(given_labels, classes), normalize="index", dropna=False)


def evaluate_methods(scores: Mapping[str, np.ndarray], is_flipped) -> pd.DataFrame:
    """:func:`mislabel.metrics.evaluate` for several rankings of the same samples.

    Parameters
    ----------
    scores : mapping of str to ndarray of shape (N,), float
        Method name -> score (higher = more likely mislabeled).
    is_flipped : ndarray of shape (N,), bool

    Returns
    -------
    pandas.DataFrame
        One row per method: ``method`` (str) and every key of
        :func:`mislabel.metrics.evaluate` (``map``, ``roc_auc``,
        ``precision_at_95``, ``precision_at_k``, ``recall_at_k`` float64;
        ``k``, ``n`` int; ``noise_rate`` float64).
    """
    return pd.DataFrame([{"method": name, **_metrics.evaluate(s, is_flipped)} for name, s in scores.items()])


def metrics_long(table: pd.DataFrame, metrics: Sequence[str] = tuple(METRIC_LABELS)) -> pd.DataFrame:
    """Melt a :func:`~mislabel.book.runs.run_grid` table to one row per (kind, rate, method, metric) for plotting.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`~mislabel.book.runs.run_grid`.
    metrics : sequence of str
        Metric columns to keep.

    Returns
    -------
    pandas.DataFrame
        Columns ``kind``, ``rate``, ``method``, ``metric`` (display name from
        :data:`METRIC_LABELS`) and ``value`` (float64).
    """
    long = table.melt(id_vars=["kind", "rate", "method"], value_vars=list(metrics), var_name="metric",
                      value_name="value")
    long["metric"] = long["metric"].map(lambda m: METRIC_LABELS.get(m, m))
    return long


def method_comparison(table: pd.DataFrame, metrics: Sequence[str] = tuple(METRIC_LABELS)) -> pd.DataFrame:
    """Detector minus AUM for each (kind, rate) and metric.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`~mislabel.book.runs.run_grid` (or any table with ``kind``, ``rate``,
        ``method`` and metric columns, both methods present).
    metrics : sequence of str

    Returns
    -------
    pandas.DataFrame
        Columns ``kind``, ``rate`` and, for each metric ``m``, ``m`` holding
        (detector - AUM) as float64; positive means the detector is better.
    """
    wide = table.pivot_table(index=["kind", "rate"], columns="method", values=list(metrics), sort=False)
    out = pd.DataFrame({m: wide[(m, METHODS[0])] - wide[(m, METHODS[1])] for m in metrics})
    return out.reset_index()


def grid_table(table: pd.DataFrame) -> pd.DataFrame:
    """The grid's metrics side by side, with the evaluated classifier's final test accuracy.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`~mislabel.book.runs.run_grid`.

    Returns
    -------
    pandas.DataFrame
        Index (kind, rate); columns (metric display name, method) for each metric of
        :data:`METRIC_LABELS`, and ``("classifier", "test accuracy")``.
    """
    wide = table.pivot_table(index=["kind", "rate"], columns="method",
                             values=["map", "roc_auc", "precision_at_95"], sort=False)
    wide = wide.rename(columns=METRIC_LABELS, level=0)
    wide[("classifier", "test accuracy")] = table.groupby(["kind", "rate"], sort=False)["test_acc"].first()
    return wide


def tally(diff: pd.DataFrame, kind: str, metrics: Sequence[str] = tuple(METRIC_LABELS), max_rate: float | None = None,
          tol: float = TIE) -> dict:
    """Count the (rate, metric) comparisons the detector wins, ties and loses for one noise kind.

    Parameters
    ----------
    diff : pandas.DataFrame
        Output of :func:`method_comparison`.
    kind : str
        Noise kind.
    metrics : sequence of str
        Metric columns counted.
    max_rate : float, optional
        Only rates strictly below this value (e.g. 0.5 to leave out asymmetric
        noise where the wrong label is the majority).
    tol : float
        Differences within ``tol`` count as ties.

    Returns
    -------
    dict of int
        ``ahead``, ``tied``, ``behind`` and ``total``.
    """
    d = diff[diff["kind"] == kind]
    if max_rate is not None:
        d = d[d["rate"] < max_rate]
    values = d[list(metrics)].to_numpy(dtype=np.float64).ravel()
    ahead, behind = int((values > tol).sum()), int((values < -tol).sum())
    return {"ahead": ahead, "tied": int(values.size) - ahead - behind, "behind": behind, "total": int(values.size)}


def transfer_summary(table: pd.DataFrame, in_pool: Mapping[str, bool] | None = None) -> dict:
    """The numbers the transfer chapter's prose quotes, from a :func:`~mislabel.book.runs.transfer_grid` table.

    Returns
    -------
    dict
        ``ft_gain_mean`` (float, mean mAP of fine-tuned minus off-the-shelf over targets), ``ft_better`` (int,
        targets where fine-tuning gained more than :data:`~mislabel.book.rules.TIE`), ``targets`` (int), ``ots_min``, ``ots_max`` (float,
        off-the-shelf mAP range), ``gap_mean`` (float, mean mAP of in-domain minus off-the-shelf) and
        ``shipped_vs_aum`` (int, held-out targets where the shipped detector is more than ``TIE`` above AUM) and
        ``shipped_targets`` (int, the targets that are held out for the shipped detector: not in ``in_pool``,
        ``{target: bool}`` from :func:`~mislabel.book.runs.shipped_in_pool`; all when it is None).
    """
    wide = table.pivot(index="target", columns="method", values="map")
    gain = wide["fine-tuned"] - wide["off-the-shelf"]
    held = wide[[not (in_pool or {}).get(t, False) for t in wide.index]]
    return {"ft_gain_mean": float(gain.mean()), "ft_better": int(rules.ahead(gain).sum()), "targets": len(wide),
            "ots_min": float(wide["off-the-shelf"].min()), "ots_max": float(wide["off-the-shelf"].max()),
            "gap_mean": float((wide["in-domain"] - wide["off-the-shelf"]).mean()),
            "shipped_vs_aum": int(rules.ahead(held["shipped"] - held["AUM"]).sum()), "shipped_targets": len(held)}
