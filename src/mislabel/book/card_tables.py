"""The model card's tables, read from the shipped detector's ``detector.json``.

``scripts/train_pretrained.py`` writes that file next to the weights; every
function here takes it as a dict (:func:`load_card`) and returns a pandas
table or a dict of plain numbers. Settings are labelled ``"20% symmetric"``
and data sets ``"digits/train"`` as in the card. The sentences built from
these tables are in :mod:`mislabel.book.card_sentences`.
"""
from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import pandas as pd

from .. import pipeline as _pipeline
from . import rules
from .tables import METRIC_LABELS

__all__ = ["load_card", "member_stages", "config_table", "recipe_table", "recipe_summary", "held_out_table",
           "setting_labels", "held_out_wide", "draw_spread", "per_draw_table", "held_out_counts", "guard_table", "early_views",
           "guard_check_table", "member_table", "with_above_aum_counts", "in_domain_table", "in_domain_gaps",
           "adapt_table", "length_study", "length_long", "length_numbers"]

#: the held-out methods: display name -> key of a held-out row of the card
HELD_OUT_METHODS = {"shipped detector": "detector", "AUM": "aum", "cleanlab (5-fold)": "cleanlab_cv5"}

#: columns of the length study -> display name
LENGTH_METHODS = {"resampled_map": "detector (as shipped)", "whole_run_map": "detector, whole run",
                  "raw_length_map": "detector, raw length", "aum_map": "AUM"}


def _setting(row: dict) -> str:
    return f"{row['rate']:.0%} {row['noise']}"


def load_card(path: str | Path | None = None) -> dict:
    """The card of the shipped detector (default: ``mislabel/weights/detector.json``) as a dict."""
    if path is None:
        path = Path(__file__).resolve().parents[1] / "weights" / "detector.json"
    return json.loads(Path(path).read_text())


def member_stages(card: dict) -> list[dict]:
    """The training record of each member (one entry for a one-member detector)."""
    return card.get("member_training", [card["training"]])


def config_table(card: dict, detector) -> pd.DataFrame:
    """Architecture, versions, machine and script wall time of the shipped detector.

    Parameters
    ----------
    card : dict
    detector : NoiseDetector
        The shipped detector, to count its parameters.

    Returns
    -------
    pandas.DataFrame
        One column ``value``, one row per property.
    """
    timings = "".join(f"; {flag}: {card[key] / 60:.1f} min" for key, flag in (
        ("rescore_seconds", "--rescore-only"), ("guard_check_seconds", "--guard-only"),
        ("length_study_seconds", "--length-only")) if key in card)
    wall = (f"{card['seconds'] / 60:.0f} min"
            + (f" ({', '.join(card['evaluated_datasets'])} measured again with --evaluate-only: "
               f"{card['evaluate_seconds'] / 60:.0f} min)" if "evaluate_seconds" in card else "") + timings)
    return pd.DataFrame(
        {"value": [str(card["config"].get(k, 1)) for k in ("hidden_size", "num_layers", "seq_len", "features",
                                                           "resample", "members")] +
         [sum(p.numel() for net in detector.nets for p in net.parameters()), card["library_version"], card["torch"],
          card["machine"] + (f", {card['cpu']}" if "cpu" in card else ""), wall]},
        index=["hidden size", "layers", "sequence length", "features", "resample", "members",
               "parameters (all members)", "library version", "torch", "trained on", "script wall time"])


def recipe_table(card: dict) -> pd.DataFrame:
    """The runs of the detector's training pool, one row each, with schedule and augmentation spelled out.

    Returns
    -------
    pandas.DataFrame
        Columns ``dataset``, ``noise``, ``rate``, ``epochs``, ``model``, ``subset`` (``"all"`` for a whole
        split), ``batch_size`` (the pipeline's default where the run names none), ``lr``, ``schedule`` and
        ``augmentation``.
    """
    data = card["training_data"]
    recipe = pd.DataFrame(data)
    recipe["schedule"] = ["constant lr" if r.get("milestones") == [] else "step decay" for r in data]
    recipe["augmentation"] = ["none" if r.get("augment") is False else "crop + flip" for r in data]
    recipe["subset"] = recipe["subset"].map(lambda v: "all" if pd.isna(v) else int(v))
    default_batch = inspect.signature(_pipeline.capture).parameters["batch_size"].default
    recipe["batch_size"] = (recipe["batch_size"].fillna(default_batch) if "batch_size" in recipe else default_batch)
    recipe["batch_size"] = recipe["batch_size"].astype(int)
    return recipe[["dataset", "noise", "rate", "epochs", "model", "subset", "batch_size", "lr", "schedule",
                   "augmentation"]]


def recipe_summary(recipe: pd.DataFrame) -> pd.DataFrame:
    """The training pool in one row per data set: what :func:`recipe_table` lists run by run.

    Parameters
    ----------
    recipe : pandas.DataFrame
        Output of :func:`recipe_table`.

    Returns
    -------
    pandas.DataFrame
        Indexed by data set (in the pool's order), columns ``runs`` (int), ``noise`` (kinds, comma-separated),
        ``noise rates``, ``epochs`` (``"lo-hi"`` or one value), ``models``, ``schedules`` and
        ``augmentation``.
    """
    def span(values) -> str:
        lo, hi = min(values), max(values)
        return f"{lo:g}" if lo == hi else f"{lo:g}-{hi:g}"

    def kinds(values) -> str:
        return ", ".join(dict.fromkeys(values))

    rows = {name: {"runs": len(g), "noise": kinds(g["noise"]), "noise rates": span(g["rate"]),
                   "epochs": span(g["epochs"]), "models": kinds(g["model"]), "schedules": kinds(g["schedule"]),
                   "augmentation": kinds(g["augmentation"])}
            for name, g in recipe.groupby("dataset", sort=False)}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("data set")


# --------------------------------------------------------------------------- quality on held-out data
def held_out_table(card: dict) -> pd.DataFrame:
    """Mean metrics over draws of every held-out setting and method, one row per (setting, method).

    Returns
    -------
    pandas.DataFrame
        Columns ``data``, ``noise``, ``model``, ``epochs``, ``method`` (a key of :data:`HELD_OUT_METHODS`) and
        the metrics of :data:`~mislabel.book.tables.METRIC_LABELS`.
    """
    return pd.DataFrame([{"data": r["dataset"], "noise": _setting(r), "model": r["model"], "epochs": r["epochs"],
                          "method": method, **{m: r[key][m] for m in METRIC_LABELS}}
                         for r in card["held_out"] for method, key in HELD_OUT_METHODS.items()])


def setting_labels(held: pd.DataFrame) -> pd.Series:
    """Short two-line labels of the held-out settings for a figure's axis (``"digits\\n20% sym."``)."""
    return (held["data"].str.replace("fashion-mnist/test", "F-MNIST test").str.replace("/train", "")
            + "\n" + held["noise"].str.replace("symmetric", "sym."))


def held_out_wide(held: pd.DataFrame) -> pd.DataFrame:
    """mAP of :func:`held_out_table` with one column per method, index (data, noise) in the card's order."""
    return held.pivot_table(index=["data", "noise"], columns="method", values="map", sort=False)


def draw_spread(card: dict) -> pd.Series:
    """Per held-out setting with more than one draw, the largest distance of a draw's detector mAP from the
    setting's mean (index (data, noise); empty with one draw per setting)."""
    return pd.Series({(r["dataset"], _setting(r)):
                      np.abs(np.subtract([d["detector"]["map"] for d in r["draws"]], r["detector"]["map"])).max()
                      for r in card["held_out"] if len(r.get("draws", [])) > 1})


def per_draw_table(card: dict) -> pd.DataFrame:
    """Detector mAP minus AUM's per held-out setting (rows) and draw (columns ``"draw <seed>"``), and their
    ``mean``; empty when the card records no draws."""
    per_draw = pd.DataFrame([{"data": r["dataset"], "noise": _setting(r),
                              f"draw {d['seed']}": d["detector"]["map"] - d["aum"]["map"]}
                             for r in card["held_out"] for d in r.get("draws", [])])
    if len(per_draw):
        per_draw = per_draw.groupby(["data", "noise"], sort=False).first()
        per_draw["mean"] = per_draw.mean(axis=1)
    return per_draw


def held_out_counts(wide: pd.DataFrame) -> dict:
    """The shipped detector against the baselines over the settings of :func:`held_out_wide`.

    Returns
    -------
    dict
        ``beats_aum`` (int, settings where it is ahead of AUM by :mod:`~mislabel.book.rules`), ``above_aum`` (int),
        ``ties_aum`` (int, level with AUM), ``beats_cl`` (int, above cleanlab), ``rows`` (int),
        ``worst_gap`` (float, its largest deficit to AUM) and ``sym_gap``, ``asym_gap`` (float, mean distance
        to AUM over the symmetric and the asymmetric settings).
    """
    d = wide["shipped detector"]
    sym = wide.index.get_level_values("noise").str.endswith(" symmetric")
    return {"beats_aum": int(rules.ahead(d - wide["AUM"]).sum()), "above_aum": int((d > wide["AUM"]).sum()),
            "ties_aum": int(rules.level(d - wide["AUM"]).sum()),
            "beats_cl": int((d > wide["cleanlab (5-fold)"]).sum()), "rows": len(wide),
            "worst_gap": float((d - wide["AUM"]).min()), "sym_gap": float((d - wide["AUM"])[sym].mean()),
            "asym_gap": float((d - wide["AUM"])[~sym].mean())}


# --------------------------------------------------------------------------- memorisation guard
def guard_table(card: dict) -> pd.DataFrame:
    """Every held-out draw: epochs, epochs the guarded detector scored, and the mAP of the detector (as
    shipped and on the whole run), AUM and cleanlab."""
    return pd.DataFrame([{"data": r["dataset"], "noise": _setting(r), "draw": d["seed"], "epochs": r["epochs"],
                          "epochs scored": d.get("scored_epochs", r["epochs"]), "mAP": d["detector"]["map"],
                          "whole run": d.get("whole_run", d["detector"])["map"], "AUM": d["aum"]["map"],
                          "cleanlab (5-fold)": d["cleanlab_cv5"]["map"]}
                         for r in card["held_out"] for d in r["draws"]])


def early_views(guard: pd.DataFrame) -> pd.DataFrame:
    """The rows of :func:`guard_table` where the guard scored fewer epochs than the run has."""
    return guard[guard["epochs scored"] < guard["epochs"]]


def guard_check_table(card: dict) -> pd.DataFrame:
    """The guard on fresh draws (the card's ``guard_check``): per setting, the draws, how many of them the guard
    cut, and mean mAP with the guard, on the whole run, and of AUM, with ``guard - whole run``; empty when the
    card has no guard check."""
    check = pd.DataFrame([{"data": r["dataset"], "noise": _setting(r),
                           "draws": ", ".join(str(d["seed"]) for d in r["draws"]),
                           "early view in": sum(d["scored_epochs"] < r["epochs"] for d in r["draws"]),
                           "with the guard": r["guarded"]["map"], "whole run": r["whole_run"]["map"],
                           "AUM": r["aum"]["map"]}
                          for r in card.get("guard_check", [])])
    if len(check):
        check["guard - whole run"] = check["with the guard"] - check["whole run"]
    return check


# --------------------------------------------------------------------------- members, in-domain, adapt
def member_table(card: dict) -> pd.DataFrame:
    """mAP minus AUM's of each member alone (``"seed <s> alone"``) and of the ensemble (``"ensemble
    (shipped)"``) per held-out setting; empty for a one-member detector."""
    seeds = [st["seed"] for st in member_stages(card)]
    return pd.DataFrame([{"data": r["dataset"], "noise": _setting(r),
                          **{f"seed {sd} alone": m["map"] - r["aum"]["map"] for sd, m in zip(seeds, r["members"])},
                          "ensemble (shipped)": r["detector"]["map"] - r["aum"]["map"]}
                         for r in card["held_out"] if "members" in r])


def with_above_aum_counts(ms: pd.DataFrame) -> pd.DataFrame:
    """:func:`member_table` indexed by (data, noise), with a last row ``("settings above AUM", "")`` counting
    the settings where each column is above AUM."""
    alone = [c for c in ms.columns if c.endswith(" alone")]
    above = (ms[alone + ["ensemble (shipped)"]] > 0).sum()
    count_row = pd.DataFrame([{"data": "settings above AUM", "noise": "", **above.to_dict()}])
    return pd.concat([ms, count_row], ignore_index=True).set_index(["data", "noise"])


def in_domain_table(card: dict) -> pd.DataFrame:
    """The card's in-domain reference: per held-out setting, what the detector was fitted on and the mAP of
    the in-domain, fine-tuned and shipped detectors and of AUM, with each detector's distance to AUM
    (``"<name> - AUM"``); empty when the card has none."""
    indom = pd.DataFrame([{"data": r["dataset"], "noise": _setting(r),
                           "fitted on": f"{r['fit_on']}, {r['fit_run_count']} runs",
                           "in-domain detector": r["in_domain"]["map"], "fine-tuned": r["fine_tuned"]["map"],
                           "shipped detector": r["detector"]["map"], "AUM": r["aum"]["map"]}
                          for r in card.get("in_domain", [])])
    if len(indom):
        for col, name in (("in-domain detector", "in-domain"), ("fine-tuned", "fine-tuned"),
                          ("shipped detector", "shipped")):
            indom[f"{name} - AUM"] = indom[col] - indom["AUM"]
    return indom


def in_domain_gaps(indom: pd.DataFrame) -> dict:
    """Mean (and range) distance to AUM of the in-domain and the shipped detector, symmetric and asymmetric
    settings apart: keys ``in_sym_gap``, ``in_sym_min``, ``in_sym_max``, ``in_ship_sym_gap``, ``in_asym_gap``
    and ``in_ship_asym_gap`` (float)."""
    isym = indom["noise"].str.endswith(" symmetric")
    return {"in_sym_gap": float(indom["in-domain - AUM"][isym].mean()),
            "in_sym_min": float(indom["in-domain - AUM"][isym].min()),
            "in_sym_max": float(indom["in-domain - AUM"][isym].max()),
            "in_ship_sym_gap": float(indom["shipped - AUM"][isym].mean()),
            "in_asym_gap": float(indom["in-domain - AUM"][~isym].mean()),
            "in_ship_asym_gap": float(indom["shipped - AUM"][~isym].mean())}


def adapt_table(card: dict) -> pd.DataFrame:
    """The detector adapted with one extra run (``NoiseDetector.adapt``) per held-out setting, index (data,
    noise): mAP of the shipped and adapted detectors, AUM and cleanlab, the share of samples ``adapt`` left out
    of the clean examples (mean over draws) and the share flipped; empty when the card has no adapted rows."""
    arows = [r for r in card["held_out"] if "adapted" in r]
    if not arows:
        return pd.DataFrame()
    return pd.DataFrame([{"data": r["dataset"], "noise": _setting(r),
                          "shipped detector": r["detector"]["map"], "adapted (1 extra run)": r["adapted"]["map"],
                          "AUM": r["aum"]["map"], "cleanlab (5-fold)": r["cleanlab_cv5"]["map"],
                          "left out": np.mean([d["adapt_left_out"] for d in r["draws"]]) / r["n"],
                          "flipped": r["adapted"]["noise_rate"]}
                         for r in arows]).set_index(["data", "noise"])


# --------------------------------------------------------------------------- run length
def length_study(card: dict, dataset: str | None = None) -> pd.DataFrame:
    """The card's length study (one run per data set and length), or only ``dataset``'s rows, renumbered."""
    length = pd.DataFrame(card["length_study"])
    if dataset is None:
        return length
    return length[length["dataset"] == dataset].reset_index(drop=True)


def length_long(length: pd.DataFrame) -> pd.DataFrame:
    """:func:`length_study` in long form for plotting: ``dataset``, ``epochs``, ``method`` (display names of
    :data:`LENGTH_METHODS`) and ``mAP``."""
    long = length.melt(id_vars=["dataset", "epochs"], value_vars=list(LENGTH_METHODS), var_name="method",
                       value_name="mAP")
    long["method"] = long["method"].map(LENGTH_METHODS)
    return long


def length_numbers(card: dict) -> dict:
    """What resampling does on the shortest and longest digits runs of the length study.

    Returns
    -------
    dict
        ``short_gain``, ``long_gain`` (float, mAP as shipped minus mAP fed at its raw length, rounded to 3
        decimals, never ``-0.0``), ``shortest``, ``longest`` (int, their epochs) and ``pool_epochs`` (str,
        ``"<min> to <max>"`` epochs of the training pool's runs).
    """
    digits = length_study(card, "digits/train")
    gain = digits["resampled_map"] - digits["raw_length_map"]
    pool_epochs = [r["epochs"] for r in card["training_data"]]
    return {"short_gain": round(float(gain.iloc[0]), 3) + 0.0, "shortest": int(digits["epochs"].iloc[0]),
            "long_gain": round(float(gain.iloc[-1]), 3) + 0.0, "longest": int(digits["epochs"].iloc[-1]),
            "pool_epochs": f"{min(pool_epochs)} to {max(pool_epochs)}"}
