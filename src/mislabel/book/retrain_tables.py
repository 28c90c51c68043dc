"""Chapter 7's tables and sentences: accuracy after removal beside the paper's Tables 1 and 2, identification
quality and cost, and where our order of the methods differs from the paper's.

Every function reads the frames of :func:`mislabel.book.retraining.synthetic_grid` and
:func:`~mislabel.book.retraining.original_grid`; none trains anything. Accuracies are shown in percent.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from . import paper as _paper
from . import rules as _rules
from .sentences import listing
from .style import METHOD_NAMES

__all__ = ["shown_name", "summary", "best_mask", "accuracy_table", "bold", "quality_table", "ordering",
           "ordering_sentence", "oracle_sentence", "original_table", "methods_table", "coverage_sentence",
           "gap_sentence", "empty_sentence", "quality_sentence"]

#: the registry name of each paper row's method -> the paper's row name
_PAPER_NAME = {v: k for k, v in _paper.PAPER_ROWS.items()}


def shown_name(name: str) -> str:
    """The book's name of a registry name, with the paper's row name where it differs (e.g. "LSTM detector (Ours)").

    Examples
    --------
    >>> shown_name("aum_threshold"), shown_name("detector"), shown_name("ctrl")
    ('AUM (threshold samples)', 'LSTM detector, in-domain (Ours)', 'CTRL')
    """
    if name == "detector":
        return "LSTM detector, in-domain (Ours)"
    if name == "shipped":
        return "shipped detector, off the shelf"
    return METHOD_NAMES.get(name, name)


def summary(acc: pd.DataFrame, rule: str, *, by: str = "rate") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Mean and spread over trials of the test accuracy under one removal rule, in percent.

    Parameters
    ----------
    acc : pandas.DataFrame
        Columns ``method``, ``rule``, ``seed``, ``test_acc`` (0..1) and ``by``.
    rule : str
        ``"own"`` or ``"flipped"``.
    by : str
        The column that becomes the table's columns (``"rate"``, or ``"dataset"`` for Table 2).

    Returns
    -------
    mean, spread : pandas.DataFrame
        Index: methods in order of first appearance; columns: the values of ``by``. The spread is the
        standard deviation over trials (ddof=1), NaN with a single trial. A mean is NaN when any trial
        has no accuracy (its rule removed every sample).

    Raises
    ------
    ValueError
        If no row has ``rule``.
    """
    rows = acc[acc["rule"] == rule]
    if rows.empty:
        raise ValueError(f"rule {rule!r} has no rows; the frame holds {sorted(acc['rule'].unique())}")
    order = list(dict.fromkeys(rows["method"]))
    cols = list(dict.fromkeys(rows[by]))
    g = rows.groupby(["method", by])["test_acc"]
    mean = (100 * g.apply(lambda x: x.mean(skipna=False))).unstack(by).reindex(index=order, columns=cols)
    spread = (100 * g.std(ddof=1)).unstack(by).reindex(index=order, columns=cols)
    return mean, spread


def best_mask(mean: pd.DataFrame, exclude: Sequence[str] = ("oracle",)) -> pd.DataFrame:
    """Where each column's highest mean is (ties all marked), ignoring the rows ``exclude`` and NaN.

    Examples
    --------
    >>> m = pd.DataFrame({0.2: [80.0, 81.0, 95.0], 0.4: [70.0, 70.0, np.nan]}, index=["a", "b", "oracle"])
    >>> best_mask(m)[0.2].tolist(), best_mask(m)[0.4].tolist()
    ([False, True, False], [True, True, False])
    """
    ranked = mean.drop(index=[r for r in exclude if r in mean.index])
    top = ranked.max(axis=0)
    return mean.eq(top, axis=1) & ~mean.index.isin(list(exclude))[:, None] & mean.notna()


def _cells(mean: pd.DataFrame, spread: pd.DataFrame) -> pd.DataFrame:
    def one(m, s):
        if m != m:
            return "—"
        return f"{m:.1f}" if s != s else f"{m:.1f} ± {s:.1f}"
    return pd.DataFrame([[one(m, s) for m, s in zip(mr, sr)] for mr, sr in zip(mean.values, spread.values)],
                        index=mean.index, columns=mean.columns)


def accuracy_table(mean: pd.DataFrame, spread: pd.DataFrame, label: str,
                   paper: Mapping[str, tuple[pd.DataFrame, pd.DataFrame]] | None = None
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Our accuracies ("mean ± spread") beside the paper's, one block of columns each.

    Parameters
    ----------
    mean, spread : pandas.DataFrame
        From :func:`summary`; index registry names.
    label : str
        Title of our block, e.g. ``"this book: Fashion-MNIST"``.
    paper : mapping of str -> (mean, spread), optional
        Title -> the paper's block (index: the paper's row names, as :func:`mislabel.book.paper.table1_all`
        with one data set selected); its rows are matched through :data:`mislabel.book.paper.PAPER_ROWS`.

    Returns
    -------
    table : pandas.DataFrame of str
        Index: :func:`shown_name` of our methods; columns: (block, column) MultiIndex. "—" where a block
        has no number (a method beyond the paper; the paper's "Diverged").
    best : pandas.DataFrame of bool
        Same shape: the best method of each column, Oracle excluded (:func:`best_mask`).
    """
    blocks, masks = {label: _cells(mean, spread)}, {label: best_mask(mean)}
    for title, (pm, ps) in (paper or {}).items():
        rows = [_PAPER_NAME.get(name, "") for name in mean.index]       # "": a method beyond the paper
        m = pm.reindex(rows).set_axis(mean.index, axis=0).astype(float)
        s = ps.reindex(rows).set_axis(mean.index, axis=0).astype(float)
        blocks[title], masks[title] = _cells(m, s), best_mask(m)
    table = pd.concat(blocks, axis=1)
    best = pd.concat(masks, axis=1)
    table.index = best.index = [shown_name(n) for n in mean.index]
    table.index.name = best.index.name = "method"
    return table, best


def bold(table: pd.DataFrame, best: pd.DataFrame):
    """A pandas Styler that shows ``table`` with the cells marked in ``best`` in bold, noise rates as percentages."""
    styler = table.style.apply(lambda _: np.where(best.values, "font-weight: bold", ""), axis=None)
    rate = (lambda r: f"{r:.0%}" if isinstance(r, float) else str(r))
    if isinstance(table.columns, pd.MultiIndex):
        return styler.format_index(rate, axis=1, level=table.columns.nlevels - 1)
    return styler.format_index(rate, axis=1)


def quality_table(quality: pd.DataFrame, accuracy: pd.DataFrame | None = None) -> pd.DataFrame:
    """Identification quality and cost of every method that ranks, averaged over rates and trials.

    Parameters
    ----------
    quality : pandas.DataFrame
        From :func:`~mislabel.book.retraining.synthetic_grid` (``map``, ``roc_auc``, ``precision_at_95``,
        ``flagged``, ``samples``, ``trainings``, ``seconds``, ``rate``).
    accuracy : pandas.DataFrame, optional
        Its accuracy frame: adds the mean test accuracy (%) after removing as many as were flipped.

    Returns
    -------
    pandas.DataFrame
        Index: :func:`shown_name`, best mAP first; columns ``mAP``, ``ROC AUC``, ``Precision@95``,
        ``flagged by own rule / flipped`` (NaN for a ranking), ``trainings`` (classifier trainings, the
        recorded run included), ``seconds`` (per audited run, measured when first computed), and with
        ``accuracy`` ``accuracy, as many as flipped (%)``. Standard and Oracle (no ranking) are left out.
    """
    q = quality[~quality["method"].isin(["standard", "oracle"])].copy()
    q["flag_ratio"] = q["flagged"].astype(float) / (q["rate"] * q["samples"])
    out = q.groupby("method", sort=False).agg(**{
        "mAP": ("map", "mean"), "ROC AUC": ("roc_auc", "mean"), "Precision@95": ("precision_at_95", "mean"),
        "flagged by own rule / flipped": ("flag_ratio", "mean"), "trainings": ("trainings", "mean"),
        "seconds": ("seconds", "mean")})
    if accuracy is not None:
        a = accuracy[accuracy["rule"] == "flipped"].groupby("method")["test_acc"].mean() * 100
        out["accuracy, as many as flipped (%)"] = a.reindex(out.index)
    out = out.sort_values("mAP", ascending=False)
    out.index = [shown_name(n) for n in out.index]
    out.index.name = "method"
    return out


def ordering(mean: pd.DataFrame, order: Sequence[str] = tuple(_paper.PAPER_ORDER)) -> pd.DataFrame:
    """Each adjacent pair of ``order`` compared column by column: the difference and the book's call.

    Parameters
    ----------
    mean : pandas.DataFrame
        Accuracy (%) by method (index, registry names) and column (rate or data set), e.g. from :func:`summary`.
    order : sequence of str
        Best first, as the paper reads it; pairs of methods missing from ``mean`` are skipped.

    Returns
    -------
    pandas.DataFrame
        One row per (pair, column): ``upper``, ``lower`` (registry names), ``column``, ``diff`` (points,
        upper minus lower) and ``call`` ("ahead", "level", "behind", or "missing" where either is NaN),
        by :mod:`mislabel.book.rules` on accuracies as shares (level: within 0.2 points).
    """
    rows = []
    mean = mean.rename(index=_paper.PAPER_ROWS)        # the paper's own tables read with the same rule
    present = [m for m in order if m in mean.index]
    for upper, lower in zip(present, present[1:]):
        for col in mean.columns:
            d = float(mean.at[upper, col] - mean.at[lower, col])
            rows.append({"upper": upper, "lower": lower, "column": col, "diff": d,
                         "call": "missing" if d != d else _rules.call(d / 100)})
    return pd.DataFrame(rows, columns=["upper", "lower", "column", "diff", "call"])


def _col(c) -> str:
    return f"{c:.0%}" if isinstance(c, float) else str(c)


def ordering_sentence(mean: pd.DataFrame, order: Sequence[str] = tuple(_paper.PAPER_ORDER),
                      weak: Sequence[str] = ("detector",)) -> str:
    """Where the order of ``mean`` differs from the paper's "Ours >= AUM > INCV > Data Param > DY-Bootstrap > Standard".

    A pair agrees in a column when the upper method is ahead, or, for a pair whose upper method is in
    ``weak`` (the paper's "Ours >= AUM"), ahead or level.

    Parameters
    ----------
    mean : pandas.DataFrame
        Accuracy (%) by method (registry names) and column.
    order, weak : sequence of str

    Returns
    -------
    str
        E.g. "the paper's order holds in 14 of 20 comparisons; it differs for INCV above Data Parameters
        (behind at 20%, level at 40%), ...". Empty when fewer than two methods of ``order`` are present.

    Examples
    --------
    >>> m = pd.DataFrame({0.2: [90.0, 85.0, 86.0], 0.4: [80.0, 79.0, 70.0]}, index=["aum_threshold", "incv",
    ...                  "data_parameters"])
    >>> ordering_sentence(m)
    "the paper's order holds in 3 of 4 comparisons; it differs for INCV above Data Parameters (behind at 20%)"
    """
    table = ordering(mean, order)
    if table.empty:
        return ""
    table = table[table["call"] != "missing"]
    ok = (table["call"] == "ahead") | ((table["call"] == "level") & table["upper"].isin(list(weak)))
    text = f"the paper's order holds in {int(ok.sum())} of {len(table)} comparisons"
    if ok.all():
        return text
    parts = []
    for (upper, lower), g in table[~ok].groupby(["upper", "lower"], sort=False):
        calls = ", ".join(f"{call} at {listing(_col(c) for c in gg['column'])}"
                          for call, gg in g.groupby("call", sort=False))
        sign = "at or above" if upper in weak else "above"
        parts.append(f"{shown_name(upper).replace(', in-domain (Ours)', ' (Ours)')} {sign} {shown_name(lower)} "
                     f"({calls})")
    return f"{text}; it differs for {listing(parts)}"


def oracle_sentence(mean: pd.DataFrame, method: str = "detector", column=0.2) -> str:
    """Whether ``method`` is above Oracle in ``column`` (the paper: Ours above Oracle at 20% noise).

    Returns
    -------
    str
        E.g. "at 20% noise the LSTM detector (Ours) is 1.3 points below Oracle (the paper: above, on
        CIFAR-10 and CIFAR-100)", or "" when either row or the column is missing.

    Examples
    --------
    >>> oracle_sentence(pd.DataFrame({0.2: [80.0, 81.0]}, index=["detector", "oracle"]))
    'at 20% noise the LSTM detector (Ours) is 1.0 points below Oracle (the paper: above, on CIFAR-10 and CIFAR-100)'
    """
    mean = mean.rename(index=_paper.PAPER_ROWS)
    if method not in mean.index or "oracle" not in mean.index or column not in mean.columns:
        return ""
    d = float(mean.at[method, column] - mean.at["oracle", column])
    if d != d:
        return ""
    call = _rules.call(d / 100)
    where = {"ahead": f"{d:.1f} points above", "behind": f"{-d:.1f} points below", "level": "level with"}[call]
    name = shown_name(method).replace(", in-domain (Ours)", " (Ours)")
    return f"at {_col(column)} noise the {name} is {where} Oracle (the paper: above, on CIFAR-10 and CIFAR-100)"


def original_table(acc: pd.DataFrame, names: Mapping[str, str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table 2's analog: accuracy on each original data set beside the paper's Table 2.

    Parameters
    ----------
    acc : pandas.DataFrame
        The accuracy frame of :func:`~mislabel.book.retraining.original_grid` (rule "own").
    names : mapping, optional
        Data set name -> column title (default: the names as they are).

    Returns
    -------
    table, best : pandas.DataFrame
        As :func:`accuracy_table`, our block first, then the paper's Table 2 (whose "Ours" is the shipped
        detector's row here: the paper's detector was used off the shelf).
    """
    mean, spread = summary(acc, "own", by="dataset")
    mean, spread = mean.rename(columns=names or {}), spread.rename(columns=names or {})
    pm, ps = _paper.table2_all()
    table, best = accuracy_table(mean.rename(index={"shipped": "detector"}),
                                 spread.rename(index={"shipped": "detector"}), "this book",
                                 {"paper, Table 2": (pm, ps)})
    rename = {shown_name("detector"): shown_name("shipped") + " (Ours)"}
    return table.rename(index=rename), best.rename(index=rename)


def methods_table(names: Sequence[str]) -> pd.DataFrame:
    """What each method does, its own removal rule and where it comes from (from the registry).

    Returns
    -------
    pandas.DataFrame
        Index: :func:`shown_name`; columns ``what it does``, ``own rule``, ``reference``.
    """
    from .. import methods as _methods

    info = [_methods.METHODS[n] for n in names]
    return pd.DataFrame({"what it does": [i.summary for i in info], "own rule": [i.decision for i in info],
                         "reference": [i.reference for i in info]},
                        index=pd.Index([shown_name(n) for n in names], name="method"))


def coverage_sentence(rates: Sequence[float], seeds: int, retrained: Sequence[str], scored: Sequence[str],
                      total: int) -> str:
    """What a run covers, e.g. "4 noise rates (20%, 40%, 60% and 80%), 2 trials each; 9 methods retrained ...".

    Examples
    --------
    >>> coverage_sentence([0.2, 0.4], 2, ["standard", "oracle"], ["aum"], 15)
    '2 noise rates (20% and 40%), 2 trials each; 2 methods retrained under both rules (Standard and Oracle), 1 more only scored (AUM), 12 of the 15 registered methods not run'
    """
    n = len(rates)
    text = (f"{n} noise rate{'s' * (n != 1)} ({listing(_col(float(r)) for r in rates)}), {seeds} "
            f"trial{'s' * (seeds != 1)} each; {len(retrained)} methods retrained under both rules "
            f"({listing(shown_name(m) for m in retrained)})")
    if scored:
        text += f", {len(scored)} more only scored ({listing(shown_name(m) for m in scored)})"
    rest = total - len(retrained) - len(scored)
    if rest > 0:
        text += f", {rest} of the {total} registered methods not run"
    return text


def gap_sentence(mean: pd.DataFrame) -> str:
    """Oracle minus Standard at each rate here and in the paper's CIFAR-10 column (the room removal has).

    Examples
    --------
    >>> gap_sentence(pd.DataFrame({0.2: [70.0, 75.0], 0.3: [60.0, 59.0]}, index=["standard", "oracle"]))
    'Oracle minus Standard is +5.0 points at 20% and -1.0 at 30% here; on CIFAR-10 the paper has +16.0 at 20%'
    """
    if "standard" not in mean.index or "oracle" not in mean.index:
        return ""
    ours = mean.loc["oracle"] - mean.loc["standard"]
    pm, _ = _paper.table1_all()
    here = [f"{d:+.1f}{' points' * (i == 0)} at {_col(c)}" for i, (c, d) in enumerate(ours.items())]
    theirs = [f"{pm.at['Oracle', ('CIFAR-10', c)] - pm.at['Standard', ('CIFAR-10', c)]:+.1f} at {_col(c)}"
              for c in ours.index if ("CIFAR-10", c) in pm.columns]
    text = f"Oracle minus Standard is {listing(here)} here"
    return text + (f"; on CIFAR-10 the paper has {listing(theirs)}" if theirs else "")


def empty_sentence(acc: pd.DataFrame) -> str:
    """Which rules removed every sample, leaving nothing to retrain on (a "—" in the tables).

    Examples
    --------
    >>> acc = pd.DataFrame({"method": ["detector", "detector", "incv"], "rule": ["own", "own", "own"],
    ...                     "rate": [0.8, 0.8, 0.8], "seed": [0, 1, 0], "test_acc": [np.nan, 0.3, 0.4]})
    >>> empty_sentence(acc)
    'the own rule of LSTM detector, in-domain (Ours) removed every sample at 80% in 1 of 2 trials'
    >>> empty_sentence(acc.fillna(0.1))
    ''
    """
    parts = []
    for (method, rule, rate), g in acc.groupby(["method", "rule", "rate"], sort=False):
        empty = int(g["test_acc"].isna().sum())
        if empty:
            what = "the own rule of" if rule == "own" else "removing as many as were flipped with"
            parts.append(f"{what} {shown_name(method)} removed every sample at {_col(float(rate))} in {empty} of "
                         f"{len(g)} trials")
    return listing(parts)


def quality_sentence(qual: pd.DataFrame) -> str:
    """The best ranking, the ones level with it, and what the most expensive method buys (from :func:`quality_table`).

    Examples
    --------
    >>> q = pd.DataFrame({"mAP": [0.95, 0.949, 0.90], "trainings": [1.0, 5.0, 8.0]}, index=["a", "b", "c"])
    >>> quality_sentence(q)
    "the best ranking is a's (mAP 0.950, 1 training); level with it (within 0.002) is b (5 trainings); the most expensive method, c (8 trainings per audited set), reaches mAP 0.900"
    """
    def runs(n):
        return f"{n:.0f} training{'s' * (round(n) != 1)}"
    best = qual["mAP"].idxmax()
    top = float(qual.at[best, "mAP"])
    text = f"the best ranking is {best}'s (mAP {top:.3f}, {runs(qual.at[best, 'trainings'])})"
    level = [m for m in qual.index if m != best and _rules.level(float(qual.at[m, "mAP"]) - top)]
    if level:
        verb = "is" if len(level) == 1 else "are"
        named = [f"{m} ({runs(qual.at[m, 'trainings'])})" for m in level]
        text += f"; level with it (within {_rules.TIE:g}) {verb} {listing(named)}"
    costly = qual["trainings"].idxmax()
    if costly != best:
        text += (f"; the most expensive method, {costly} ({runs(qual.at[costly, 'trainings'])} per audited set), "
                 f"reaches mAP {qual.at[costly, 'mAP']:.3f}")
    return text
