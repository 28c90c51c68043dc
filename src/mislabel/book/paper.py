"""The paper's statements next to this book's results: one table per chapter 1 to 4.

Each function returns a small table with one column quoting the paper and one
computed from the run the chapter shows.
"""
from __future__ import annotations

from typing import Mapping

import pandas as pd

from .sentences import comparison_sentence, low_rate_means

__all__ = ["observation_table", "detector_table", "grid_claims", "table1", "transfer_claims"]


def observation_table(late: Mapping, dataset: str, num_samples: int, num_epochs: int) -> pd.DataFrame:
    """Paper Fig. 1 against chapter 1's run: mean and spread of the mislabeled samples' curves.

    Parameters
    ----------
    late : mapping
        Output of :func:`mislabel.book.tables.late_epoch_contrast`.
    dataset : str
    num_samples, num_epochs : int
        Size of the run, for the column's title.

    Returns
    -------
    pandas.DataFrame
        Two rows (mean, std of the mislabeled samples), two columns (paper, this book).
    """
    return pd.DataFrame({
        "paper (Fig. 1, Caltech-256, 1000 random samples)": [
            "lower than for clean samples",
            "higher than for clean samples, especially in the second half of training",
        ],
        f"this book ({dataset}, {num_samples} samples, epochs {late['first_epoch']}-{num_epochs})": [
            f"{late['mislabeled_mean']:.3f} vs {late['clean_mean']:.3f} for clean: "
            + ("lower" if late["mean_lower"] else "NOT lower"),
            f"{late['mislabeled_std']:.3f} vs {late['clean_std']:.3f} for clean: "
            + ("higher" if late["std_higher"] else "NOT higher"),
        ],
    }, index=["mean p(given label), mislabeled", "std across mislabeled samples"])


def detector_table(cfg: Mapping, num_train: int, noise_rate: float, det_map: float, aum_map: float,
                   eval_rate: float) -> pd.DataFrame:
    """The paper's set-up of Algorithm 1 against chapter 2's run.

    Parameters
    ----------
    cfg : mapping
        Profile dict (``dataset``, ``model``, ``epochs``, ``detector_epochs``, optional ``detector_lr``).
    num_train : int
        Samples of the detector's training run.
    noise_rate : float
        The chapter's symmetric noise rate.
    det_map, aum_map : float
        mAP of the detector and of AUM on the evaluated run.
    eval_rate : float
        Share of flipped labels in the evaluated run.

    Returns
    -------
    pandas.DataFrame
        Five rows (data for steps 1-2, detector, detector training, data for step 3, outcome).
    """
    return pd.DataFrame({
        "paper": ["CIFAR-10/100 (ResNet-32, 200 epochs); off-the-shelf detector: CIFAR-100, 30% symmetric",
                  "2-layer LSTM, 64 units", "AdamW, lr 0.1, batch 64, 10 epochs",
                  "other data sets (Tiny ImageNet, CUB-200, Caltech-256, WebVision, Clothing1M)",
                  "precise detection without retraining (Sec. 3.3, 4.2, 4.3)"],
        "this book": [f"{cfg['dataset']} subset of {num_train}, {cfg['model']}, {cfg['epochs']} epochs, "
                      f"{noise_rate:.0%} symmetric",
                      "2-layer LSTM, 64 units",
                      f"AdamW, lr {cfg.get('detector_lr', 0.01)}, batch 64, {cfg['detector_epochs']} epochs",
                      "same images, independent noise draw",
                      f"mAP {det_map:.3f} (AUM {aum_map:.3f}) at {eval_rate:.0%} noise"],
    }, index=["data for steps 1-2", "detector", "detector training", "data for step 3", "outcome"])


def grid_claims(table: pd.DataFrame, diff: pd.DataFrame, cfg: Mapping) -> pd.DataFrame:
    """The paper's Sec. 4.1 claims against chapter 3's grid.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`mislabel.book.runs.run_grid`.
    diff : pandas.DataFrame
        Output of :func:`mislabel.book.tables.method_comparison` for ``table``.
    cfg : mapping
        Profile dict (``dataset``, ``model``, ``epochs``).

    Returns
    -------
    pandas.DataFrame
        Three rows (symmetric noise, asymmetric noise, symmetric vs asymmetric).
    """
    return pd.DataFrame({
        "paper (CIFAR-10/100, ResNet-32, 200 epochs)": [
            "detector ahead of AUM in mAP, ROC AUC and Precision@95 (Fig. 3)",
            "detector ahead of AUM (Figs. 4 and 9)",
            "asymmetric noise is harder to detect than symmetric noise (App. B.1)",
        ],
        f"this book ({cfg['dataset']}, {cfg['model']}, {cfg['epochs']} epochs)": [
            comparison_sentence(diff, "symmetric", "map"),
            comparison_sentence(diff, "asymmetric", "map"),
            low_rate_means(table),
        ],
    }, index=["symmetric noise", "asymmetric noise", "symmetric vs asymmetric"])


def table1() -> pd.DataFrame:
    """The paper's Table 1: test accuracy (%) of a ResNet-32 retrained after removing the samples AUM or the
    detector flags, CIFAR-10 and CIFAR-100 with symmetric noise (Sec. 4.2), as printed in the paper."""
    out = pd.DataFrame(
        {("CIFAR-10", 0.2): [90.2, 91.1], ("CIFAR-10", 0.4): [87.5, 88.9], ("CIFAR-10", 0.6): [82.1, 83.5],
         ("CIFAR-10", 0.8): [54.4, 55.5], ("CIFAR-100", 0.2): [65.5, 65.6], ("CIFAR-100", 0.4): [61.3, 60.8],
         ("CIFAR-100", 0.6): [53.0, 54.3], ("CIFAR-100", 0.8): [31.7, 30.1]},
        index=["AUM", "detector (paper's 'Ours')"])
    out.columns.names = ["paper, Table 1: test accuracy (%) after removal", "symmetric noise rate"]
    return out


def transfer_claims(cfg: Mapping, table: pd.DataFrame, fine_tune_lr: float) -> pd.DataFrame:
    """The paper's Fig. 5 set-up and outcome against chapter 4's transfer grid.

    Parameters
    ----------
    cfg : mapping
        Profile dict (``dataset``, ``model``, ``epochs``, ``detector_lr``).
    table : pandas.DataFrame
        Output of :func:`mislabel.book.runs.transfer_grid`.
    fine_tune_lr : float

    Returns
    -------
    pandas.DataFrame
        Four rows (source, targets, fine-tuning lr, outcome).
    """
    wide = table.pivot(index="target", columns="method", values="map")
    gain = wide["fine-tuned"] - wide["off-the-shelf"]
    return pd.DataFrame({
        "paper (Fig. 5)": ["CIFAR-100, 30% symmetric, ResNet-32, 200 epochs", "CUB-200-2011, Caltech-256",
                           "0.03 (base 0.1)", "fine-tuned above off-the-shelf on both targets"],
        "this book": [f"{cfg['dataset']} subset, 40% symmetric, {cfg['model']}, {cfg['epochs']} epochs",
                      ", ".join(wide.index), f"{fine_tune_lr} (base {cfg['detector_lr']})",
                      f"fine-tuned above off-the-shelf on {int((gain > 0.001).sum())} of {len(wide)} targets "
                      f"(mean mAP change {gain.mean():+.3f})"],
    }, index=["source", "targets", "fine-tuning lr", "outcome"])
