"""Size presets for the book's chapters, defined once.

``smoke`` runs every chapter in seconds (tests), ``cpu`` renders the book on
2 CPU cores within the build budget, and ``paper`` follows the paper's set-up
(CIFAR with ResNet-32 for 200 epochs; needs the data and a GPU to be practical).
"""
from __future__ import annotations

import os

PROFILES: dict[str, dict] = {
    "smoke": {
        "dataset": "fashion-mnist", "subset": 1200, "test_subset": 500, "model": "cnn", "epochs": 6,
        "batch_size": 128, "lr": 0.05, "detector_epochs": 3, "detector_lr": 0.01, "rates": [0.2, 0.4],
        "noise_kinds": ["symmetric", "asymmetric"], "transfer_dataset": "digits",
        "fine_tune_epochs": 2, "tutorial_subset": 1000, "tutorial_epochs": 4, "cv_folds": 3, "dna_epochs": 10,
        "analyses_subset": 1200, "analyses_underlying": [0.0, 0.3], "analyses_synthesized": [0.4],
        "analyses_superclass_dataset": "fashion-mnist", "analyses_superclass_rates": [0.4], "analyses_lime_samples": 6,
        "analyses_lime_perturbations": 100,
    },
    "cpu": {
        "dataset": "fashion-mnist", "subset": 8000, "test_subset": 2000, "model": "cnn", "epochs": 16,
        "batch_size": 128, "lr": 0.05, "detector_epochs": 10, "detector_lr": 0.01, "rates": [0.2, 0.4, 0.6, 0.8],
        "noise_kinds": ["symmetric", "asymmetric"], "transfer_dataset": "digits",
        "fine_tune_epochs": 5, "tutorial_subset": 6000, "tutorial_epochs": 12, "cv_folds": 5, "dna_epochs": 30,
        "analyses_subset": 4000, "analyses_underlying": [0.0, 0.1, 0.2, 0.3], "analyses_synthesized": [0.2, 0.4],
        "analyses_superclass_dataset": "fashion-mnist", "analyses_superclass_rates": [0.2, 0.4],
        "analyses_lime_samples": 60, "analyses_lime_perturbations": 500,
    },
    "paper": {
        "dataset": "cifar10", "subset": None, "test_subset": None, "model": "resnet32", "epochs": 200,
        "batch_size": 128, "lr": 0.1, "detector_epochs": 10, "detector_lr": 0.1, "rates": [0.2, 0.4, 0.6, 0.8],
        "noise_kinds": ["symmetric", "asymmetric"], "transfer_dataset": "digits",
        "fine_tune_epochs": 5, "tutorial_subset": 6000, "tutorial_epochs": 12, "cv_folds": 5, "dna_epochs": 30,
        "analyses_subset": None, "analyses_underlying": [0.0, 0.1, 0.2, 0.3], "analyses_synthesized": [0.2, 0.4, 0.6],
        "analyses_superclass_dataset": "cifar100", "analyses_superclass_rates": [0.2, 0.4, 0.6, 0.8],
        "analyses_lime_samples": 200, "analyses_lime_perturbations": 1000,
    },
}

# Chapter 7 (Sec. 4.2, retraining after removal; mislabel.book.retraining). retrain_subset, _test_subset, _model,
# _run_epochs (the recorded run and every training a method runs), _lr: None = the profile's subset, test_subset,
# model, epochs, lr. retrain_epochs and retrain_batch_size: the retraining after removal (None = the run's).
# retrain_methods are retrained under both removal rules, retrain_scored only scored (quality and cost).
_PAPER_ROWS = ["standard", "oracle", "aum_threshold", "dy_bootstrap", "data_parameters", "incv", "detector", "shipped"]
_FROM_RUN = ["aum", "forgetting", "datamaps", "mean_loss", "el2n", "ctrl"]
_ON_ORIGINAL = ["standard", "shipped", "aum_threshold", "dy_bootstrap", "data_parameters", "incv", "cleanlab"]
_RETRAIN = {
    "smoke": {"retrain_subset": 400, "retrain_test_subset": 300, "retrain_model": "mlp", "retrain_run_epochs": 4,
              "retrain_epochs": None, "retrain_lr": 0.05, "retrain_batch_size": None, "retrain_rates": [0.4],
              "retrain_seeds": 1, "retrain_methods": [*_PAPER_ROWS, "cleanlab"], "retrain_scored": _FROM_RUN,
              "retrain_folds": 2, "retrain_original": ["digits"], "retrain_original_methods": _ON_ORIGINAL},
    "cpu": {"retrain_subset": 2000, "retrain_test_subset": 2000, "retrain_model": "mlp", "retrain_run_epochs": 10,
            "retrain_epochs": None, "retrain_lr": 0.05, "retrain_batch_size": None,
            "retrain_rates": [0.2, 0.4, 0.6, 0.8], "retrain_seeds": 2, "retrain_methods": [*_PAPER_ROWS, "cleanlab"],
            "retrain_scored": _FROM_RUN, "retrain_folds": 5, "retrain_original": ["fashion-mnist", "digits"],
            "retrain_original_methods": _ON_ORIGINAL},
    "paper": {"retrain_subset": None, "retrain_test_subset": None, "retrain_model": None, "retrain_run_epochs": None,
              "retrain_epochs": 300, "retrain_lr": None, "retrain_batch_size": 256,
              "retrain_rates": [0.2, 0.4, 0.6, 0.8], "retrain_seeds": 2,
              "retrain_methods": [*_PAPER_ROWS, "cleanlab", *_FROM_RUN], "retrain_scored": [], "retrain_folds": 5,
              "retrain_original": ["cifar10", "cifar100"], "retrain_original_methods": [*_ON_ORIGINAL, "ctrl"]},
}
for _name, _keys in _RETRAIN.items():
    PROFILES[_name].update(_keys)

# Chapter 8 (Sec. 4.3, data debugging; mislabel.book.debugging). Every training of the chapter (the recorded run,
# the rankings' models, the retrained model, plain training, DivideMix, DM-AugDesc) uses debug_subset images,
# debug_model, debug_epochs (debug_warmup of them DivideMix's warm-up), debug_batch_size and debug_lr.
# debug_rankings: registry names, the first is the chapter's own ("detector": trained on noise draw 0 of the same
# images, as in chapter 3; the shipped one saw Fashion-MNIST's training images); debug_learners train on its
# corrected labels, debug_compare_learners on the other rankings'; debug_folds: cleanlab's cross-validation.
_DEBUG_COMMON = {"debug_shares": [0.05, 0.1], "debug_rankings": ["detector", "aum", "cleanlab"],
                 "debug_learners": ["dividemix", "augdesc", "plain"], "debug_compare_learners": ["plain"]}
_DEBUG = {
    "smoke": {"debug_subset": 200, "debug_test_subset": 100, "debug_model": "mlp", "debug_epochs": 2,
              "debug_warmup": 1, "debug_batch_size": 64, "debug_lr": 0.05, "debug_folds": 2},
    "cpu": {"debug_subset": 1000, "debug_test_subset": 1000, "debug_model": "cnn", "debug_epochs": 6,
            "debug_warmup": 2, "debug_batch_size": 32, "debug_lr": 0.02, "debug_folds": 3},
    "paper": {"debug_subset": None, "debug_test_subset": None, "debug_model": "resnet32", "debug_epochs": 300,
              "debug_warmup": 10, "debug_batch_size": 64, "debug_lr": 0.02, "debug_folds": 5},
}
for _name, _keys in _DEBUG.items():
    PROFILES[_name].update(_DEBUG_COMMON, **_keys)

#: the profile the rendered book is built with
BOOK_PROFILE = "cpu"

#: size keys of a preset and the data split each one counts
SIZES = (("subset", "train"), ("test_subset", "test"))


def get(profile: str | None = None, **overrides) -> dict:
    """Settings of ``profile`` with every non-None keyword in ``overrides`` replacing its entry.

    ``profile=None`` reads the environment variable ``MISLABEL_PROFILE``
    (default ``"cpu"``), which is how ``make smoke-book`` shrinks every chapter.

    A preset's ``subset`` and ``test_subset`` are sized for its own data set.
    When ``dataset`` names another one and the sizes are not given, they are
    taken as upper bounds: a split smaller than the preset's size (scikit-learn
    digits has 1,438 training and 359 test rows) is used whole. This looks the
    data set up, so a missing one fails here, with the loader's message. Sizes
    given explicitly are used as they are (the loader refuses one larger than
    the split).

    Examples
    --------
    >>> cfg = get("cpu", epochs=30, subset=None)   # subset=None keeps the preset's value
    >>> get("cpu", dataset="digits")["subset"]     # the preset's 8,000, capped at the split
    1438
    """
    if profile is None:
        profile = os.environ.get("MISLABEL_PROFILE", "cpu")
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    cfg = dict(PROFILES[profile])
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    cfg["profile"] = profile
    if cfg["dataset"] != PROFILES[profile]["dataset"]:
        lengths = split_lengths(cfg["dataset"])
        for key, _ in SIZES:
            if overrides.get(key) is None and cfg[key] is not None:
                cfg[key] = min(int(cfg[key]), lengths[key])
    return cfg


def split_lengths(dataset: str) -> dict:
    """Rows of ``dataset``'s splits under the size keys of a preset.

    Returns
    -------
    dict
        ``{"subset": rows of the training split, "test_subset": rows of the test split}``.
    """
    from .. import data   # loads torch; only needed for a data set a preset was not sized for

    return {key: len(data.load(dataset, split)) for key, split in SIZES}


def book_differences(cfg: dict, keys=None, **params) -> dict:
    """The settings of a run that differ from those of the rendered book.

    Parameters
    ----------
    cfg : dict
        Settings from :func:`get`.
    keys : sequence of str, optional
        Compare only these settings (those a chapter uses); default all of them.
    **params
        A chapter's own parameters as ``name=(value, book_value)``, e.g.
        ``noise_rate=(0.6, 0.4)``.

    Returns
    -------
    dict of str -> (value, book_value)
        Empty when the run is the book's.
    """
    book = get(BOOK_PROFILE)
    names = dict.fromkeys([*book, *cfg] if keys is None else keys)
    out = {k: (cfg.get(k), book.get(k)) for k in names if cfg.get(k) != book.get(k)}
    out.update({k: tuple(v) for k, v in params.items() if v[0] != v[1]})
    return out
