"""Sentences and verdicts of chapters 1 to 5, computed from their results.

Each function returns Markdown text that a chapter glues into its prose, so
that what the prose says follows the numbers of the run it shows. The model
card's sentences are in :mod:`mislabel.book.card_sentences`.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import pandas as pd

from . import profiles as _profiles
from .rules import TIE
from .tables import METRIC_LABELS, tally

__all__ = ["signed", "listing", "memorisation_verdict", "map_verdict", "comparison_sentence",
           "high_asymmetric_sentence", "largest_gaps", "grid_verdict", "tally_phrase", "per_rate", "low_rate_means",
           "profile_note", "fine_tune_per_target", "dna_adapt_text"]


def signed(value: float, digits: int = 3) -> str:
    """``value`` with its sign and ``digits`` decimals, as ``f"{value:+.3f}"`` but never ``"-0.000"``: a
    difference that rounds to zero reads ``"+0.000"``."""
    return f"{round(float(value), digits) + 0.0:+.{digits}f}"


def listing(words: Iterable[str]) -> str:
    """Join words as prose: ``"a"``, ``"a and b"``, ``"a, b and c"`` (``""`` for none)."""
    words = list(words)
    return ", ".join(words[:-1]) + " and " + words[-1] if len(words) > 1 else "".join(words)


# --------------------------------------------------------------------------- chapter 1
def memorisation_verdict(train_acc: float, ceiling: float) -> str:
    """Whether the classifier of a run has memorised wrong labels (chapter 1), as a phrase.

    Parameters
    ----------
    train_acc : float
        The classifier's final accuracy on the given (noisy) training labels.
    ceiling : float
        The share of correct training labels (see :func:`mislabel.book.tables.label_levels`); a training
        accuracy more than 0.01 above it means the classifier memorises wrong labels.

    Returns
    -------
    str
        ``"above the share of correct labels: ..."`` or ``"no higher than the share of correct labels: ..."``.
    """
    if train_acc > ceiling + 0.01:
        return "above the share of correct labels: it has started to memorise wrong labels"
    return "no higher than the share of correct labels: it fits the correct labels and essentially none of the wrong ones"


# --------------------------------------------------------------------------- chapter 2
def map_verdict(diff: float, tol: float = TIE) -> str:
    """The detector's mAP against AUM's: ``"above AUM's (+0.0100)"``, ``"below AUM's (...)"`` or
    ``"level with AUM's (difference ...)"`` when ``|diff| <= tol``."""
    if diff > tol:
        return f"above AUM's ({signed(diff, 4)})"
    if diff < -tol:
        return f"below AUM's ({signed(diff, 4)})"
    return f"level with AUM's (difference {signed(diff, 4)})"


# --------------------------------------------------------------------------- chapter 3
def comparison_sentence(diff: pd.DataFrame, kind: str, metric: str = "map", tol: float = TIE) -> str:
    """One sentence saying how the detector fares against AUM for one noise kind.

    Parameters
    ----------
    diff : pandas.DataFrame
        Output of :func:`mislabel.book.tables.method_comparison`.
    kind : str
        Noise kind to summarise.
    metric : str
        Metric column, default ``"map"``.
    tol : float
        Differences within ``tol`` count as ties.

    Returns
    -------
    str
        E.g. ``"the detector is ahead at 2 of 4 rates (0.6, 0.8), tied (within 0.002) at 1 and
        behind at 1 (0.2); mean mAP difference +0.0040"``.
    """
    d = diff[diff["kind"] == kind]
    if d.empty:
        return f"no {kind} settings were run"
    ahead = d[d[metric] > tol]
    behind = d[d[metric] < -tol]
    tied = len(d) - len(ahead) - len(behind)
    fmt = lambda rows: ", ".join(f"{r:g}" for r in rows["rate"])  # noqa: E731
    parts = [f"the detector is ahead at {len(ahead)} of {len(d)} rates" + (f" ({fmt(ahead)})" if len(ahead) else "")]
    parts.append(f"tied (within {tol:g}) at {tied}")
    parts.append(f"behind at {len(behind)}" + (f" ({fmt(behind)})" if len(behind) else ""))
    label = METRIC_LABELS.get(metric, metric)
    return ", ".join(parts[:-1]) + " and " + parts[-1] + f"; mean {label} difference {signed(d[metric].mean(), 4)}"


def high_asymmetric_sentence(table: pd.DataFrame) -> str:
    """Both methods' mAP at the highest asymmetric rate above 0.5 of a :func:`~mislabel.book.runs.run_grid`
    table, against a random ranking's; or that the run has no such rate."""
    high = table[(table["kind"] == "asymmetric") & (table["rate"] > 0.5)]
    if not len(high):
        return "This run has no asymmetric rate above 0.5."
    r = high["rate"].max()
    at = high[high["rate"] == r].set_index("method")
    return (f"At {r:g} asymmetric noise in this run, AUM reaches an mAP of {at.loc['AUM', 'map']:.3f} "
            f"and the detector {at.loc['LSTM detector', 'map']:.3f}, where a random ranking would score {r:g}.")


def largest_gaps(diff: pd.DataFrame, kind: str = "symmetric") -> str:
    """The largest detector-minus-AUM difference in mAP and in ROC AUC among the rates of ``kind``, with the
    rate each is at; or that the run has no rate of that kind."""
    d = diff[diff["kind"] == kind]
    if not len(d):
        return f"this run has no {kind} rate"

    def gap(metric):
        row = d.loc[d[metric].abs().idxmax()]
        return f"{signed(row[metric], 3)} at {row['rate']:g}"

    return f"the largest differences, detector minus AUM, are {gap('map')} in mAP and {gap('roc_auc')} in ROC AUC"


def grid_verdict(diff: pd.DataFrame, asymmetric_below: float = 0.5) -> str:
    """Chapter 3's one verdict on the paper's Sec. 4.1 claim (the detector ranks better than AUM), from every
    metric of :data:`~mislabel.book.tables.METRIC_LABELS` under symmetric noise and under asymmetric noise below
    ``asymmetric_below`` (above it the wrong label is the majority; chapter 3 discusses that regime apart).

    Differences within :data:`~mislabel.book.rules.TIE` count as level. The claim is *consistent* with the
    grid when the detector is never behind and ahead at least once, *partly supported* when it is ahead more
    often than behind in at least one noise kind but behind somewhere, and *not supported* otherwise.

    Returns
    -------
    str
        E.g. ``"Counting mAP, ROC AUC and Precision@95, the detector is ahead in 5, level in 4 and behind in
        3 of 12 comparisons under symmetric noise, and ahead in 6, level in 0 and behind in 0 of 6 comparisons
        under asymmetric noise below 50% (differences within 0.002 count as level): partial support for the
        paper's claim, not a confirmation."``
    """
    kinds = [("symmetric", None, "under symmetric noise"),
             ("asymmetric", asymmetric_below, f"under asymmetric noise below {asymmetric_below:.0%}")]
    tallies = [(tally(diff, kind, max_rate=below), where) for kind, below, where in kinds]
    tallies = [(t, where) for t, where in tallies if t["total"]]
    if not tallies:
        return "This run has no setting to compare the detector with AUM on."
    parts = [f"{tally_phrase(t)} {where}" for t, where in tallies]
    behind = sum(t["behind"] for t, _ in tallies)
    ahead = sum(t["ahead"] for t, _ in tallies)
    if behind == 0 and ahead > 0:
        reading = "consistent with the paper's claim"
    elif any(t["ahead"] > t["behind"] for t, _ in tallies):
        reading = "partial support for the paper's claim, not a confirmation"
    else:
        reading = "the paper's claim does not hold here"
    return (f"Counting mAP, ROC AUC and Precision@95, the detector is {', and '.join(parts)} (differences within "
            f"{TIE:g} count as level): {reading}.")


def tally_phrase(t: dict) -> str:
    """A :func:`mislabel.book.tables.tally` as words: ``"ahead in 3, level in 2 and behind in 1 of 6
    comparisons"``."""
    return f"ahead in {t['ahead']}, level in {t['tied']} and behind in {t['behind']} of {t['total']} comparisons"


def per_rate(diff: pd.DataFrame, kind: str, metric: str, max_rate: float = 1.0) -> str:
    """Detector minus AUM in ``metric`` at each rate of ``kind`` below ``max_rate``: ``"+0.010 at 0.2, -0.003 at
    0.4"``, or ``"no such rate was run"``."""
    d = diff[(diff["kind"] == kind) & (diff["rate"] < max_rate)]
    return ", ".join(f"{signed(v, 3)} at {r:g}" for r, v in zip(d["rate"], d[metric])) or "no such rate was run"


def low_rate_means(table: pd.DataFrame) -> str:
    """Mean mAP of both methods over the rates below 0.5, per noise kind: ``"mean mAP at rates below 0.5,
    detector / AUM: symmetric 0.990 / 0.985, asymmetric ..."`` (kinds without such a rate are left out)."""
    low = table[table.rate < 0.5].groupby(["kind", "method"])["map"].mean()
    return "mean mAP at rates below 0.5, detector / AUM: " + ", ".join(
        f"{kind} {low.loc[(kind, 'LSTM detector')]:.3f} / {low.loc[(kind, 'AUM')]:.3f}"
        for kind in ("symmetric", "asymmetric") if (kind, "AUM") in low.index)


def profile_note(cfg: Mapping, keys: Sequence[str] | None = None, **params) -> str:
    """Whether the numbers of a chapter come from the rendered book's run, for a paragraph that describes it.

    Parameters
    ----------
    cfg, keys, **params
        As for :func:`mislabel.book.chapter.settings_note`.

    Returns
    -------
    str
        A plain sentence for the book's own run, an italic warning naming the profile otherwise.
    """
    if not _profiles.book_differences(dict(cfg), keys, **params):
        return "The numbers above come from the default `cpu` profile, the run this paragraph describes."
    return (f"*This page was built with other settings (profile `{cfg['profile']}`), so the numbers above are not "
            "the ones this paragraph describes, which come from the default `cpu` profile.*")


# --------------------------------------------------------------------------- chapter 4
def fine_tune_per_target(table: pd.DataFrame) -> str:
    """mAP of fine-tuned minus off-the-shelf per target of a :func:`~mislabel.book.runs.transfer_grid` table,
    targets in alphabetical order: ``"a → b (30% symmetric) +0.012; ..."``."""
    wide = table.pivot(index="target", columns="method", values="map")
    gain = wide["fine-tuned"] - wide["off-the-shelf"]
    noise_of = table.groupby("target")["noise"].first()
    return "; ".join(f"{t} ({noise_of[t]}) {signed(g, 3)}" for t, g in gain.items())


# --------------------------------------------------------------------------- chapter 5
def dna_adapt_text(maps: Mapping[str, float], scored_epochs: int, epochs: int, left_out: int,
                   cleanlab: str) -> str:
    """What the shipped and the adapted detector reach on chapter 5's DNA run.

    Parameters
    ----------
    maps : mapping of str to float
        mAP per method, with keys ``"shipped detector"``, ``"shipped, whole run"``, ``"adapted detector"``,
        ``"AUM"`` and ``cleanlab``.
    scored_epochs : int
        Epochs the shipped detector read (:meth:`NoiseDetector.scored_epochs`).
    epochs : int
        Epochs of the run.
    left_out : int
        Samples ``adapt`` kept out of the clean examples.
    cleanlab : str
        The key of cleanlab's mAP in ``maps``.

    Returns
    -------
    str
    """
    m = maps
    if scored_epochs < epochs:
        text = (f"Off the shelf the detector read only the first {scored_epochs} of the {epochs} epochs here: "
                "the memorisation guard (model card) saw the predictions settle and then change again as the wrong "
                f"labels were learned, and the whole run left the detector unsure. That gives "
                f"{m['shipped detector']:.3f} mAP, against {m['shipped, whole run']:.3f} for the whole run, "
                f"{m['AUM']:.3f} for AUM and {m[cleanlab]:.3f} for cleanlab.")
    else:
        text = (f"Off the shelf the detector read the whole run (the memorisation guard of the model card did not "
                f"step in) and reaches {m['shipped detector']:.3f} mAP, against {m['AUM']:.3f} for AUM and "
                f"{m[cleanlab]:.3f} for cleanlab.")
    return text + (f" One extra run and a few seconds of fine-tuning give {m['adapted detector']:.3f} "
                   f"({left_out} samples it already suspected were kept out of the clean examples).")


def metric_disagreement(results: pd.DataFrame, method: str) -> str:
    """Where another metric than mAP disagrees with mAP's verdict on ``method``.

    Parameters
    ----------
    results : pandas.DataFrame
        One row per method (column ``method``) with the columns of :data:`~mislabel.book.tables.METRIC_LABELS`.
    method : str
        The method the chapter's headline is about.

    Returns
    -------
    str
        ``""`` when every metric ranks ``method`` against each other method as mAP does (ahead, level or
        behind, by :mod:`~mislabel.book.rules`); otherwise one sentence per disagreement, e.g.
        ``"By Precision@95, AUM is ahead of the shipped detector (0.520 against 0.480)."``.
    """
    from . import rules

    res = results.set_index("method")
    if method not in res.index:
        raise ValueError(f"method {method!r} is not in the results ({', '.join(res.index)})")
    out = []
    for other in res.index.drop(method):
        headline = rules.call(res.loc[method, "map"] - res.loc[other, "map"])
        for metric, label in METRIC_LABELS.items():
            if metric == "map":
                continue
            call = rules.call(res.loc[method, metric] - res.loc[other, metric])
            if call == headline:
                continue
            a, b = float(res.loc[method, metric]), float(res.loc[other, metric])
            if call == "level":
                out.append(f"By {label}, {method} and {other} are level ({a:.3f} and {b:.3f}).")
            elif call == "ahead":
                out.append(f"By {label}, the {method} is ahead of {other} ({a:.3f} against {b:.3f}).")
            else:
                out.append(f"By {label}, {other} is ahead of the {method} ({b:.3f} against {a:.3f}).")
    return " ".join(out)
