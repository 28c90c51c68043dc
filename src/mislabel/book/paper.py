"""The paper's statements next to this book's results: one table per chapter 1 to 4, and Tables 1 and 2 (Sec. 4.2).

Each function returns a small table with one column quoting the paper and one
computed from the run the chapter shows.
"""
from __future__ import annotations

from typing import Mapping

import pandas as pd

from . import rules
from .sentences import comparison_sentence, low_rate_means, signed

__all__ = ["observation_table", "detector_table", "grid_claims", "table1", "transfer_claims", "TABLE1", "TABLE1_COLUMNS",
           "TABLE2", "TABLE2_COLUMNS", "PAPER_ROWS", "PAPER_ORDER", "table1_all", "table2_all",
           "TABLE3", "TABLE3_COLUMNS", "table3"]


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
                      f"fine-tuned above off-the-shelf on {int(rules.ahead(gain).sum())} of {len(wide)} targets "
                      f"(mean mAP change {signed(gain.mean(), 3)})"],
    }, index=["source", "targets", "fine-tuning lr", "outcome"])


# --------------------------------------------------------------------------- Sec. 4.2, Tables 1 and 2
#: the paper's Table 1 (test accuracy %, mean and ± as printed; ResNet-32, symmetric noise), one row per method,
#: entries in the order of :data:`TABLE1_COLUMNS`; DY-Bootstrap "Diverged" on CIFAR-10 at 80% is None
TABLE1 = {
    "Standard": [(75.0, 0.3), (56.7, 0.4), (36.7, 0.4), (16.6, 0.2), (49.6, 0.2), (37.5, 0.2), (23.8, 0.4),
                 (8.2, 0.3)],
    "DY-Bootstrap": [(79.4, 0.1), (68.8, 1.4), (56.4, 1.7), None, (53.0, 0.4), (43.0, 0.3), (36.6, 0.5),
                     (12.8, 0.5)],
    "Data Param": [(82.1, 0.2), (70.8, 0.9), (49.3, 0.7), (18.9, 0.3), (56.3, 1.4), (46.1, 0.4), (32.8, 2.3),
                   (11.9, 1.2)],
    "INCV": [(89.5, 0.1), (86.8, 0.1), (81.1, 0.3), (53.3, 1.9), (58.6, 0.5), (55.4, 0.2), (43.7, 0.3),
             (23.7, 0.6)],
    "AUM": [(90.2, 0.0), (87.5, 0.1), (82.1, 0.0), (54.4, 1.6), (65.5, 0.2), (61.3, 0.1), (53.0, 0.5),
            (31.7, 0.7)],
    "Ours": [(91.1, 0.0), (88.9, 0.0), (83.5, 0.2), (55.5, 1.4), (65.6, 0.3), (60.8, 0.2), (54.3, 0.4),
             (30.1, 0.6)],
    "Oracle": [(91.0, 0.1), (90.3, 0.4), (89.2, 0.9), (87.4, 1.7), (64.5, 0.1), (61.0, 0.2), (55.2, 0.5),
               (44.9, 0.4)],
}

#: (data set, symmetric noise rate) of each entry of a :data:`TABLE1` row
TABLE1_COLUMNS = [(ds, rate) for ds in ("CIFAR-10", "CIFAR-100") for rate in (0.2, 0.4, 0.6, 0.8)]

#: the paper's Table 2 (test accuracy % on the original data sets, no synthesized noise; ResNet-32 for
#: CIFAR and Tiny ImageNet, ResNet-50 for the others); ± only where printed (None: a single number)
TABLE2 = {
    "Standard": [(91.9, 0.1), (67.0, 0.3), (50.7, 0.1), (78.6, None), (64.2, None)],
    "Data Param": [(91.9, 0.0), (63.6, 1.4), (51.6, 0.2), (78.5, None), (64.5, None)],
    "DY-Bootstrap": [(90.0, 0.0), (65.1, 0.1), (48.4, 0.0), (74.2, None), (61.6, None)],
    "INCV": [(90.9, 0.0), (61.8, 0.1), (43.9, 0.1), (77.9, None), (66.7, None)],
    "AUM": [(92.1, 0.0), (68.2, 0.1), (51.4, 0.1), (80.2, None), (66.5, None)],
    "Ours": [(92.5, 0.1), (68.7, 0.3), (52.2, 0.0), (81.4, None), (68.2, None)],
}

#: the data sets of :data:`TABLE2`'s columns
TABLE2_COLUMNS = ["CIFAR-10", "CIFAR-100", "Tiny ImageNet", "WebVision50", "Clothing100K"]

#: the paper's row names -> registry names of :mod:`mislabel.methods` (Table 1's "Ours" is the detector
#: trained on synthesized noise of the same data, Table 2's the detector trained on CIFAR-100, used off the shelf)
PAPER_ROWS = {"Standard": "standard", "Oracle": "oracle", "AUM": "aum_threshold", "DY-Bootstrap": "dy_bootstrap",
              "Data Param": "data_parameters", "INCV": "incv", "Ours": "detector"}

#: the order the paper's Sec. 4.2 reads from its Table 1, best first ("Ours >= AUM > INCV > ...")
PAPER_ORDER = ["detector", "aum_threshold", "incv", "data_parameters", "dy_bootstrap", "standard"]


def _paper_frame(rows: Mapping, columns, part: int) -> pd.DataFrame:
    """Entry ``part`` (0: mean, 1: ±) of every cell of a paper table, NaN where the paper has none."""
    def pick(cell):
        return float("nan") if cell is None or cell[part] is None else float(cell[part])
    return pd.DataFrame({name: [pick(c) for c in cells] for name, cells in rows.items()}, index=columns).T


def table1_all() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The paper's whole Table 1 as numbers: test accuracy (%) after removal and retraining.

    Returns
    -------
    mean, spread : pandas.DataFrame
        Index: the paper's row names (keys of :data:`TABLE1`); columns: a MultiIndex (data set, noise rate)
        from :data:`TABLE1_COLUMNS`. NaN where the paper reports "Diverged" (DY-Bootstrap, CIFAR-10, 80%).
    """
    cols = pd.MultiIndex.from_tuples(TABLE1_COLUMNS, names=["data set", "noise rate"])
    return _paper_frame(TABLE1, cols, 0), _paper_frame(TABLE1, cols, 1)


def table2_all() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The paper's Table 2 as numbers: test accuracy (%) on original data sets after removal and retraining.

    Returns
    -------
    mean, spread : pandas.DataFrame
        Index: the paper's row names (keys of :data:`TABLE2`); columns: :data:`TABLE2_COLUMNS`. The spread
        is NaN for WebVision50 and Clothing100K (single runs).
    """
    return _paper_frame(TABLE2, TABLE2_COLUMNS, 0), _paper_frame(TABLE2, TABLE2_COLUMNS, 1)


# --------------------------------------------------------------------------- Sec. 4.3, Table 3
#: the paper's Table 3 (test accuracy %): CUB-200-2011 with 20% symmetric noise (Best, Last; ResNet-50,
#: labels of the top share corrected with the true label) and mini WebVision (Top1, Top5; Inception-ResNet v2,
#: corrected with the prediction of a model retrained without the suspects). Keys: (learner, debugged share)
TABLE3 = {
    ("DM-AugDesc", 0.0): (79.65, 79.01, 78.64, 93.20),
    ("DM-AugDesc", 0.05): (79.55, 79.15, 79.32, 92.56),
    ("DM-AugDesc", 0.10): (80.14, 79.65, 78.84, 92.84),
    ("DivideMix", 0.0): (75.96, 73.89, 77.32, 91.64),
    ("DivideMix", 0.05): (76.06, 74.44, 77.84, 92.16),
    ("DivideMix", 0.10): (76.77, 74.99, 78.24, 92.72),
}

#: the columns of a :data:`TABLE3` entry
TABLE3_COLUMNS = [("CUB-200-2011 20% sym.", "Best"), ("CUB-200-2011 20% sym.", "Last"),
                  ("mini WebVision", "Top1"), ("mini WebVision", "Top5")]


def table3() -> pd.DataFrame:
    """The paper's Table 3: test accuracy (%) of DivideMix and DM-AugDesc alone and after debugging.

    Returns
    -------
    pandas.DataFrame
        Index: (learner, debugging) with debugging "alone", "+ 5% D.D." or "+ 10% D.D."; columns: a
        MultiIndex from :data:`TABLE3_COLUMNS`.
    """
    index = pd.MultiIndex.from_tuples([(learner, "alone" if share == 0 else f"+ {share:.0%} D.D.")
                                       for learner, share in TABLE3], names=["learner", "debugging"])
    return pd.DataFrame(list(TABLE3.values()), index=index, columns=pd.MultiIndex.from_tuples(TABLE3_COLUMNS))
