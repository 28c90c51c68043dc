"""The chapters' runs: captures, detectors, the detector-vs-AUM grid and the transfer targets.

:func:`capture_for` passes *every* size setting of a profile (see
:mod:`mislabel.book.profiles`) to :func:`mislabel.pipeline.capture`, so two
chapters asking for the same noise setting hit the same cache entry and the
classifier is trained once per book build.
"""
from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from .. import baselines as _baselines
from .. import pipeline as _pipeline
from .. import transfer as _transfer
from ..detector import NoiseDetector
from ..dynamics import Dynamics
from . import profiles as _profiles
from .tables import METHODS, evaluate_methods

__all__ = ["capture_for", "detector_for", "score_methods", "run_grid", "transfer_targets", "transfer_grid"]


def capture_for(cfg: Mapping, *, noise: str = "symmetric", rate: float = 0.4, noise_seed: int = 0, seed: int = 0,
                progress: bool = False) -> _pipeline.Capture:
    """:func:`mislabel.pipeline.capture` with every size setting taken from a profile dict.

    Parameters
    ----------
    cfg : mapping
        A dict from :func:`mislabel.book.profiles.get` (keys ``dataset``, ``subset``,
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


def detector_for(cfg: Mapping, captures, *, seed: int = 0, progress: bool = False) -> NoiseDetector:
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


def score_methods(dynamics: Dynamics, detector: NoiseDetector) -> dict[str, np.ndarray]:
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
        Profile dict (:func:`mislabel.book.profiles.get`).
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
        (float64), ``method`` (str, one of :data:`~mislabel.book.tables.METHODS`), the
        metrics of :func:`~mislabel.book.tables.evaluate_methods`, ``test_acc`` (float64,
        the evaluated run's final test accuracy; NaN without a test split) and
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


def transfer_targets(cfg: Mapping) -> list[tuple[str, dict, str, float]]:
    """Target settings of the book's transfer chapter for a profile dict.

    Parameters
    ----------
    cfg : mapping
        Profile dict (:func:`mislabel.book.profiles.get`); reads ``dataset``, ``model``, ``profile`` and
        ``transfer_dataset`` (default ``"digits"``).

    Returns
    -------
    list of (name, profile overrides, noise kind, noise rate)
        Each target is captured twice (noise draws 0 and 1) with the profile's
        settings updated by the overrides. The source is the profile's data set and
        model with 40% symmetric noise (chapter 2's detector). The other data set
        (``transfer_dataset``) is used whole, up to the profile's preset sizes
        (the rule of :func:`mislabel.book.profiles.get` for a data set the preset was
        not sized for): scikit-learn digits whole, 8,000 images of CIFAR-10 with
        the ``cpu`` profile.

    Raises
    ------
    ValueError
        ``cfg["transfer_dataset"]`` is the source data set itself.
    """
    target = cfg.get("transfer_dataset", "digits")
    if target == cfg["dataset"]:
        suggestion = "letter" if target != "letter" else "digits"
        raise ValueError(f"transfer_dataset is the source data set itself ({target!r}): that is no transfer; pick "
                         f"another one, e.g. transfer_dataset={suggestion!r}")
    preset = _profiles.PROFILES.get(cfg.get("profile"), {})
    lengths = _profiles.split_lengths(target)
    sizes = {key: None if preset.get(key) is None or preset[key] >= n else int(preset[key])   # None: whole split
             for key, n in lengths.items()}
    other = "mlp" if cfg["model"] != "mlp" else "cnn"
    return [
        (f"{cfg['dataset']} → {target}", {"dataset": target, **sizes}, "symmetric", 0.3),
        ("symmetric → asymmetric", {}, "asymmetric", 0.4),
        (f"{cfg['model']} → {other}", {"model": other}, "symmetric", 0.4),
    ]


def shipped_in_pool(cfg: Mapping, targets) -> dict[str, bool]:
    """For each target of :func:`transfer_targets`: whether its images were in the shipped detector's training
    pool (:func:`mislabel.book.recipe.in_pool`), so its *shipped* column is not a held-out result."""
    from .recipe import in_pool

    return {name: in_pool(overrides.get("dataset", cfg["dataset"]), "train") for name, overrides, _, _ in targets}


def transfer_grid(cfg: Mapping, source: NoiseDetector, targets, *, fine_tune_lr: float = 0.003,
                  seed: int = 0) -> pd.DataFrame:
    """Every method of :func:`mislabel.transfer.compare` on every target of :func:`transfer_targets`.

    Each target is captured twice with the profile's settings updated by its overrides: the fine-tuned and
    in-domain detectors learn from noise draw 0, every method is scored on draw 1.

    Parameters
    ----------
    cfg : mapping
        Profile dict; uses ``fine_tune_epochs``, ``detector_epochs`` and ``detector_lr``.
    source : NoiseDetector
        The detector being transferred; never modified.
    targets : list of (name, overrides, kind, rate)
        From :func:`transfer_targets`.
    fine_tune_lr : float
    seed : int
        Seed of the classifier runs and of the fine-tuning and in-domain training.

    Returns
    -------
    pandas.DataFrame
        One row per (target, method): ``target`` (str), ``noise`` (str, e.g. ``"40% symmetric"``),
        ``samples`` (int, evaluated samples), ``method`` (one of :data:`mislabel.transfer.METHODS`) and the
        keys of :func:`mislabel.metrics.evaluate`.
    """
    rows = []
    for name, overrides, kind, rate in targets:
        tcfg = dict(cfg, **overrides)
        fit_cap = capture_for(tcfg, noise=kind, rate=rate, noise_seed=0, seed=seed)
        eval_cap = capture_for(tcfg, noise=kind, rate=rate, noise_seed=1, seed=seed)
        scores = _transfer.compare(source, fit_cap.dynamics, eval_cap.dynamics, fine_tune_lr=fine_tune_lr,
                                   fine_tune_epochs=int(cfg["fine_tune_epochs"]), epochs=int(cfg["detector_epochs"]),
                                   lr=float(cfg["detector_lr"]), seed=seed)
        for row in _transfer.evaluate(scores, eval_cap.dynamics.is_flipped):
            rows.append({"target": name, "noise": f"{rate:.0%} {kind}", "samples": len(eval_cap.dynamics), **row})
    return pd.DataFrame(rows)
