"""Chapter 8's computed sentences: gains from debugging, the rankings' hits, and the verdict on Table 3's claim.

Every function reads the tables of :func:`mislabel.book.debugging.study` (``runs``: one row per
training; ``labels``: one row per corrected label set) and returns Markdown text.
"""
from __future__ import annotations

from typing import Mapping

import pandas as pd

from .debugging import LEARNERS, PROTOCOL_NAMES
from .paper import TABLE3
from .style import METHOD_NAMES

__all__ = ["gains", "gain_text", "paper_gain_range", "claim_verdict", "ranking_text", "protocol_text",
           "alone_text", "paper_ranges_text", "differences_text"]


def _shown(name: str) -> str:
    return METHOD_NAMES.get(name, name)


def gains(runs: pd.DataFrame, learner: str, ranking: str, protocol: str, column: str = "best") -> pd.Series:
    """Test accuracy after debugging minus alone, in percentage points, indexed by the share debugged.

    Raises
    ------
    ValueError
        If ``runs`` has no row of ``learner`` alone.
    """
    sub = runs[runs["learner"] == learner]
    alone = sub.loc[sub["ranking"] == "", column]
    if alone.empty:
        raise ValueError(f"runs has no row of learner {learner!r} alone (ranking ''); run it first")
    rows = sub[(sub["ranking"] == ranking) & (sub["protocol"] == protocol)].sort_values("share")
    return pd.Series(100 * (rows[column].to_numpy() - float(alone.iloc[0])), index=rows["share"].to_numpy())


def gain_text(runs: pd.DataFrame, learner: str, ranking: str, protocol: str) -> str:
    """E.g. ``"+0.4 points (top 5%) and +1.1 points (top 10%)"``: best accuracy after debugging minus alone."""
    parts = [f"{v:+.1f} points (top {s:.0%})" for s, v in gains(runs, learner, ranking, protocol).items()]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def paper_gain_range(learner: str, column: int = 0) -> tuple[float, float]:
    """Smallest and largest change of a :data:`~mislabel.book.paper.TABLE3` column (0: CUB Best, 2: WebVision
    Top1) after 5% and 10% debugging against the learner alone, in points."""
    alone = TABLE3[learner, 0.0][column]
    changes = [TABLE3[learner, s][column] - alone for s in (0.05, 0.10)]
    return round(min(changes), 2), round(max(changes), 2)


def paper_ranges_text() -> str:
    """Table 3's changes after 5% and 10% debugging, e.g. ``"on CUB-200 (best accuracy) +0.1 to +0.8 points
    for DivideMix and -0.1 to +0.5 for DM-AugDesc; on mini WebVision (top-1) ..."``."""
    out = []
    for column, where in ((0, "on CUB-200 (best accuracy)"), (2, "on mini WebVision (top-1)")):
        (a, b), (c, d) = paper_gain_range("DivideMix", column), paper_gain_range("DM-AugDesc", column)
        out.append(f"{where} {a:+.1f} to {b:+.1f} points for DivideMix and {c:+.1f} to {d:+.1f} for DM-AugDesc")
    return "; ".join(out)


def claim_verdict(runs: pd.DataFrame, ranking: str, protocol: str = "truth") -> str:
    """Whether debugging with ``ranking`` raised the best accuracy of DivideMix and DM-AugDesc, as Table 3 says.

    Counts the (learner, share) cells whose best test accuracy after debugging is above the learner's
    alone, and sets the range of changes beside the paper's (CUB-200 Best for the true-label
    protocol, mini WebVision Top1 for the retrained model's, as the paper pairs them).

    Returns
    -------
    str
        One sentence ending with the verdict: "agrees with", "partly agrees with" or "does not
        support" the paper's claim.
    """
    values, papers = [], []
    column = 0 if protocol == "truth" else 2
    for learner in ("dividemix", "augdesc"):
        if (runs["learner"] == learner).any():
            values += list(gains(runs, learner, ranking, protocol).to_numpy())
            lo, hi = paper_gain_range(LEARNERS[learner], column)
            papers.append(f"{lo:+.1f} to {hi:+.1f} for {LEARNERS[learner]}")
    if not values:
        raise ValueError("runs has no DivideMix or DM-AugDesc rows; the claim is about them")
    up = sum(v > 0 for v in values)
    verdict = ("agrees with" if up == len(values) else "does not support" if up == 0 else "partly agrees with")
    where = "CUB-200" if protocol == "truth" else "mini WebVision"
    return (f"correcting with the {PROTOCOL_NAMES[protocol]} raised the best test accuracy in {up} of "
            f"{len(values)} cases, by {min(values):+.1f} to {max(values):+.1f} points (the paper, on {where}: "
            f"{' and '.join(papers)}); this {verdict} the paper's claim")


def ranking_text(labels: pd.DataFrame, share: float) -> str:
    """How many wrong labels each ranking put in its top ``share``, e.g.
    ``"the shipped detector 180 of 200, AUM 190 of 200"``.

    Raises
    ------
    ValueError
        If no label set has this share.
    """
    rows = labels[(labels["share"] == share) & (labels["protocol"] == "truth")]
    if rows.empty:
        raise ValueError(f"labels has no set with share {share!r}")
    return ", ".join(f"{_shown(r.ranking)} {r.wrong_checked} of {r.checked}" for r in rows.itertuples())


def protocol_text(labels: pd.DataFrame, ranking: str, share: float, retrain_acc: float) -> str:
    """What the retrained model's predictions did to the top ``share``, against the true labels."""
    sub = labels[(labels["ranking"] == ranking) & (labels["share"] == share)].set_index("protocol")
    m, t = sub.loc["retrain"], sub.loc["truth"]
    return (f"the model retrained without the suspects ranked by {_shown(ranking)} (test accuracy "
            f"{100 * retrain_acc:.1f}%) "
            f"fixed {m.fixed} of the {m.wrong_checked} wrong labels in the top {share:.0%} and broke {m.broken} "
            f"right ones, leaving {100 * m.noise_after:.1f}% of the labels wrong (from {100 * m.noise_before:.1f}%; "
            f"{100 * t.noise_after:.1f}% with the true labels)")


def alone_text(runs: pd.DataFrame) -> str:
    """Each learner's best test accuracy on the noisy labels, and whether DivideMix beat plain training.

    E.g. ``"DivideMix 68.9%, DM-AugDesc 69.0% and plain training 73.6%; plain training is ahead of both"``.
    """
    alone = runs[runs["ranking"] == ""].set_index("learner")["best"]
    order = [k for k in LEARNERS if k in alone.index]
    parts = [f"{LEARNERS[k]} {100 * alone[k]:.1f}%" for k in order]
    text = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    if "plain" not in alone.index or len(order) < 2:
        return text
    semi = [k for k in order if k != "plain"]
    ahead = [k for k in semi if alone[k] > alone["plain"]]
    if len(ahead) == len(semi):
        verdict = "both" if len(semi) == 2 else LEARNERS[semi[0]]
        return f"{text}; {verdict} ahead of plain training, as in the papers that introduced them"
    if not ahead:
        return f"{text}; plain training is ahead of {'both' if len(semi) == 2 else LEARNERS[semi[0]]}"
    return f"{text}; only {LEARNERS[ahead[0]]} is ahead of plain training"


def differences_text(cfg: Mapping, num_samples: int, num_test: int) -> str:
    """Why our numbers cannot match Table 3's: the set-up, from the chapter's settings."""
    one = 100.0 / num_test
    return (f"we train the `{cfg['debug_model']}` on {num_samples:,} {cfg['dataset']} images for "
            f"{cfg['debug_epochs']} epochs ({cfg['debug_warmup']} of warm-up) on a CPU, where the paper trains a "
            f"ResNet-50 on CUB-200-2011 (5,994 images of 200 bird species) with DivideMix's and DM-AugDesc's own "
            f"set-ups (DivideMix's is 300 epochs on CIFAR); each cell is one run, and one test image is "
            f"{one:.2f} points of accuracy on our {num_test:,} test images")
