"""Helpers for the book's chapters: shared captures, summary tables, verdicts, metrics files.

The chapters (``notebooks/*.ipynb``) only set parameters, call the library,
plot and comment; everything they compute lives here so that it is tested and
documented in one place. The module needs pandas (the ``book`` extra); it is
not imported by ``import mislabel``.

Shared captures
---------------
:func:`capture_for` passes *every* size setting of a profile (see
:mod:`mislabel.profiles`) to :func:`mislabel.pipeline.capture`, so two chapters
asking for the same noise setting hit the same cache entry and the classifier
is trained once per book build.

Output folders
--------------
:func:`chapter_out_dir` resolves a chapter's ``out_dir`` parameter: an explicit
path wins, then ``$MISLABEL_OUT/<chapter>``, then
``<repository>/runs/book/<chapter>``.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from . import baselines as _baselines
from . import metrics as _metrics
from . import pipeline as _pipeline
from . import profiles as _profiles
from ._utils import atomic_path, repo_root
from .dynamics import Dynamics, _row_index

__all__ = [
    "METHODS", "METRIC_LABELS", "as_list", "repo_root", "chapter_out_dir", "settings_note", "check_noise_rate",
    "capture_for", "detector_for", "epoch_summary", "late_epoch_contrast", "long_probs", "pick_trajectories",
    "score_methods", "evaluate_methods", "run_grid", "metrics_long", "method_comparison", "comparison_sentence", "tally",
    "to_jsonable", "write_metrics",
]

#: Display names of the two rankings compared throughout the book.
METHODS = ("LSTM detector", "AUM")

#: Column name -> display name of the detection metrics (paper, Appendix A).
METRIC_LABELS = {"map": "mAP", "roc_auc": "ROC AUC", "precision_at_95": "Precision@95"}


# --------------------------------------------------------------------------- parameters
def as_list(value, cast=float) -> list | None:
    """Normalise a notebook parameter that holds several values.

    papermill's ``-p rates "[0.3]"`` passes the *string* ``"[0.3]"`` and
    ``-p rates 0.3`` a float; this accepts both, plus lists and
    comma-separated strings.

    Parameters
    ----------
    value : None, scalar, list/tuple, or str
        A JSON list (``"[0.2, 0.4]"``), a comma-separated string
        (``"0.2,0.4"`` or ``"symmetric, asymmetric"``), one value, or a sequence.
    cast : callable
        Applied to every element (``float`` for rates, ``str`` for noise kinds).

    Returns
    -------
    list or None
        None stays None (meaning "take the profile's value").

    Examples
    --------
    >>> as_list("[0.3]")
    [0.3]
    >>> as_list("symmetric,asymmetric", str)
    ['symmetric', 'asymmetric']
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = [part.strip().strip("'\"") for part in text.strip("[]()").split(",") if part.strip()]
    if not isinstance(value, (list, tuple, np.ndarray)):
        value = [value]
    return [cast(v) for v in value]


# --------------------------------------------------------------------------- locations
def chapter_out_dir(chapter: str, out_dir: str | os.PathLike | None = None) -> Path:
    """Folder a chapter writes ``metrics.json`` into (created if missing).

    Parameters
    ----------
    chapter : str
        Chapter name, e.g. ``"01_training_dynamics"``.
    out_dir : path-like, optional
        The notebook's ``out_dir`` parameter; when given it is used as is.
        Otherwise ``$MISLABEL_OUT/<chapter>`` if that variable is set, else
        ``<repo>/runs/book/<chapter>`` (``runs/`` is ignored by git and the book).

    Returns
    -------
    pathlib.Path
    """
    if out_dir is not None:
        path = Path(out_dir)
    elif os.environ.get("MISLABEL_OUT"):
        path = Path(os.environ["MISLABEL_OUT"]) / chapter
    else:
        path = repo_root() / "runs" / "book" / chapter
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def settings_note(cfg: Mapping, keys: Sequence[str] | None = None, **params) -> str:
    """A Markdown note for a chapter run with other settings than the rendered book's, else ``""``.

    The chapters' prose describes the book's own run (profile ``cpu``, the
    chapter's default parameters); a reader's re-run keeps that prose, so the
    note says which settings differ and that the figures and numbers are the
    run's own.

    Parameters
    ----------
    cfg : mapping
        Settings from :func:`mislabel.profiles.get`.
    keys : sequence of str, optional
        The settings the chapter uses; default all of them.
    **params
        The chapter's own parameters as ``name=(value, book_value)``.

    Returns
    -------
    str
    """
    diff = _profiles.book_differences(dict(cfg), keys, **params)
    if not diff:
        return ""
    items = "; ".join(f"`{k}` {v!r} (book: {b!r})" for k, (v, b) in diff.items())
    return (f"*This run's settings differ from the rendered book's: {items}. The figures, tables and numbers are "
            "this run's; sentences that name the book's data set, model or sizes describe the book's run.*")


def check_noise_rate(value, name: str = "noise_rate") -> float:
    """A chapter's noise-rate parameter as a float in (0, 1), or one clear error.

    The library accepts a rate of 0 (a clean run), but the chapters compare
    flipped with clean samples and need both.

    Parameters
    ----------
    value : float
    name : str
        The parameter's name, for the message.

    Returns
    -------
    float
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not 0.0 < float(value) < 1.0:
        raise ValueError(f"{name} must be a share strictly between 0 and 1 (the chapter compares flipped with clean "
                         f"samples, so it needs both), got {value!r}")
    return float(value)


# --------------------------------------------------------------------------- shared pipeline calls
def capture_for(cfg: Mapping, *, noise: str = "symmetric", rate: float = 0.4, noise_seed: int = 0, seed: int = 0,
                progress: bool = False) -> _pipeline.Capture:
    """:func:`mislabel.pipeline.capture` with every size setting taken from a profile dict.

    Parameters
    ----------
    cfg : mapping
        A dict from :func:`mislabel.profiles.get` (keys ``dataset``, ``subset``,
        ``test_subset``, ``model``, ``epochs``, ``batch_size``, ``lr``; optional
        ``data_seed``, default 0).
    noise : {"none", "symmetric", "asymmetric", "superclass"}
    rate : float
        Share of flipped labels.
    noise_seed : int
        Seed of the noise draw: the book trains detectors on ``noise_seed=0``
        and evaluates on ``noise_seed=1``.
    seed : int
        Seed of the classifier's training run.
    progress : bool
        Progress bar (off in the book).

    Returns
    -------
    mislabel.pipeline.Capture
        Cached on disk: identical arguments in another chapter reuse it.
    """
    return _pipeline.capture(
        cfg["dataset"], subset=cfg["subset"], data_seed=int(cfg.get("data_seed", 0)), noise=noise,
        rate=float(rate), noise_seed=int(noise_seed), mapping="next", model=cfg["model"],
        epochs=int(cfg["epochs"]), record="train", seed=int(seed), batch_size=int(cfg["batch_size"]),
        lr=float(cfg["lr"]), test_subset=cfg["test_subset"], progress=progress)


def detector_for(cfg: Mapping, captures, *, seed: int = 0, progress: bool = False):
    """:func:`mislabel.pipeline.train_detector` with the profile's detector settings.

    Parameters
    ----------
    cfg : mapping
        Profile dict; uses ``detector_epochs`` and ``detector_lr`` (default 0.01).
    captures : Capture or list of Capture
        Training dynamics with known flips.
    seed : int
    progress : bool

    Returns
    -------
    mislabel.detector.NoiseDetector
        Cached on disk; ``.history`` holds ``epoch``, ``train_loss``, ``val_ap`` lists.
    """
    return _pipeline.train_detector(captures, epochs=int(cfg["detector_epochs"]),
                                    lr=float(cfg.get("detector_lr", 0.01)), seed=int(seed), progress=progress)


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
        With ``is_flipped``.
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


# --------------------------------------------------------------------------- chapters 2-3: scoring and tables
def score_methods(dynamics: Dynamics, detector) -> dict[str, np.ndarray]:
    """Both rankings of one set of dynamics: the learned detector and AUM.

    Parameters
    ----------
    dynamics : Dynamics
        ``probs`` (N, T) and ``margins`` (N, T).
    detector : NoiseDetector
        A trained detector.

    Returns
    -------
    dict
        ``{"LSTM detector": (N,) float32, "AUM": (N,) float32}``; higher = more suspicious.
    """
    return {METHODS[0]: np.asarray(detector.score(dynamics), dtype=np.float32),
            METHODS[1]: np.asarray(_baselines.aum(dynamics), dtype=np.float32)}


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


def run_grid(cfg: Mapping, kinds: Iterable[str], rates: Iterable[float], *, seed: int = 0,
             train_noise_seed: int = 0, eval_noise_seed: int = 1, progress: bool = False) -> pd.DataFrame:
    """Detector vs AUM over noise kinds and rates (paper Sec 4.1, Figs 3, 4, 9).

    For each (kind, rate): capture dynamics with ``train_noise_seed`` and fit a
    detector on them; capture an independent noisy copy with
    ``eval_noise_seed``; score that copy with the detector and with AUM
    (computed from the same evaluation run) and evaluate both rankings against
    its known flips. All captures and detectors are cached.

    Parameters
    ----------
    cfg : mapping
        Profile dict (:func:`mislabel.profiles.get`).
    kinds : iterable of str
        Noise kinds, e.g. ``["symmetric", "asymmetric"]`` (asymmetric uses the
        ``"next"`` mapping ``k -> k + 1``).
    rates : iterable of float
        Noise rates, e.g. ``[0.2, 0.4, 0.6, 0.8]``.
    seed : int
        Training seed of the classifiers and the detectors.
    train_noise_seed, eval_noise_seed : int
        Noise draws of the detector's training set and of the evaluated set.
    progress : bool

    Returns
    -------
    pandas.DataFrame
        One row per (kind, rate, method) with columns ``kind`` (str), ``rate``
        (float64), ``method`` (str, one of :data:`METHODS`), the metrics of
        :func:`evaluate_methods`, ``test_acc`` (float64, the evaluated run's
        final test accuracy; NaN without a test split) and
        ``detector_val_ap`` (float64, the detector's best validation AP on its
        own training set; NaN for AUM).
    """
    frames = []
    for kind in kinds:
        for rate in rates:
            train = capture_for(cfg, noise=kind, rate=rate, noise_seed=train_noise_seed, seed=seed,
                                progress=progress)
            det = detector_for(cfg, train, seed=seed, progress=progress)
            held = capture_for(cfg, noise=kind, rate=rate, noise_seed=eval_noise_seed, seed=seed,
                               progress=progress)
            table = evaluate_methods(score_methods(held.dynamics, det), held.dynamics.is_flipped)
            test_acc = held.history.get("test_acc", [float("nan")])
            stages = det.info.get("stages", [{}])
            table.insert(0, "rate", float(rate))
            table.insert(0, "kind", kind)
            table["test_acc"] = float(test_acc[-1]) if len(test_acc) else float("nan")
            table["detector_val_ap"] = [float(stages[-1].get("best_val_ap", float("nan"))), float("nan")]
            frames.append(table)
    return pd.concat(frames, ignore_index=True)


def metrics_long(table: pd.DataFrame, metrics: Sequence[str] = tuple(METRIC_LABELS)) -> pd.DataFrame:
    """Melt a :func:`run_grid` table to one row per (kind, rate, method, metric) for plotting.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`run_grid`.
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
        Output of :func:`run_grid` (or any table with ``kind``, ``rate``,
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


def comparison_sentence(diff: pd.DataFrame, kind: str, metric: str = "map", tol: float = 0.002) -> str:
    """One Markdown sentence saying how the detector fares against AUM for one noise kind.

    Parameters
    ----------
    diff : pandas.DataFrame
        Output of :func:`method_comparison`.
    kind : str
        Noise kind to summarise.
    metric : str
        Metric column, default ``"map"``.
    tol : float
        Differences within ``tol`` count as ties.

    Returns
    -------
    str
        E.g. ``"the detector is ahead at 2 of 4 rates (0.6, 0.8), tied at 1 and
        behind at 1 (0.2); mean difference +0.004"``.
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
    return ", ".join(parts[:-1]) + " and " + parts[-1] + f"; mean {label} difference {d[metric].mean():+.4f}"


def tally(diff: pd.DataFrame, kind: str, metrics: Sequence[str] = tuple(METRIC_LABELS), max_rate: float | None = None,
          tol: float = 0.002) -> dict:
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


# --------------------------------------------------------------------------- metrics files
def to_jsonable(obj):
    """Convert NumPy / pandas values to JSON builtins; NaN and infinities become ``None``.

    Parameters
    ----------
    obj : any
        Nested dicts, lists, tuples, NumPy scalars/arrays, DataFrames (as a
        list of records) and builtins.

    Returns
    -------
    object
        Something :func:`json.dumps` accepts with ``allow_nan=False``.
    """
    if isinstance(obj, pd.DataFrame):
        return to_jsonable(obj.to_dict(orient="records"))
    if isinstance(obj, pd.Series):
        return to_jsonable(obj.tolist())
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def write_metrics(out_dir: str | os.PathLike, payload: Mapping, name: str = "metrics.json") -> Path:
    """Write ``payload`` as indented JSON into ``out_dir/name`` atomically.

    Parameters
    ----------
    out_dir : path-like
        Created if missing.
    payload : mapping
        Converted with :func:`to_jsonable`.
    name : str

    Returns
    -------
    pathlib.Path
        The file written.
    """
    path = Path(out_dir) / name
    text = json.dumps(to_jsonable(payload), indent=1, allow_nan=False)
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n")
    return path
