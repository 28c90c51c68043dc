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
    },
    "cpu": {
        "dataset": "fashion-mnist", "subset": 8000, "test_subset": 2000, "model": "cnn", "epochs": 16,
        "batch_size": 128, "lr": 0.05, "detector_epochs": 10, "detector_lr": 0.01, "rates": [0.2, 0.4, 0.6, 0.8],
        "noise_kinds": ["symmetric", "asymmetric"], "transfer_dataset": "digits",
        "fine_tune_epochs": 5, "tutorial_subset": 6000, "tutorial_epochs": 12, "cv_folds": 5, "dna_epochs": 30,
    },
    "paper": {
        "dataset": "cifar10", "subset": None, "test_subset": None, "model": "resnet32", "epochs": 200,
        "batch_size": 128, "lr": 0.1, "detector_epochs": 10, "detector_lr": 0.1, "rates": [0.2, 0.4, 0.6, 0.8],
        "noise_kinds": ["symmetric", "asymmetric"], "transfer_dataset": "digits",
        "fine_tune_epochs": 5, "tutorial_subset": 6000, "tutorial_epochs": 12, "cv_folds": 5, "dna_epochs": 30,
    },
}


def get(profile: str | None = None, **overrides) -> dict:
    """Settings of ``profile`` with every non-None keyword in ``overrides`` replacing its entry.

    ``profile=None`` reads the environment variable ``MISLABEL_PROFILE``
    (default ``"cpu"``), which is how ``make smoke-book`` shrinks every chapter.

    Examples
    --------
    >>> cfg = get("cpu", epochs=30, subset=None)   # subset=None keeps the preset's value
    """
    if profile is None:
        profile = os.environ.get("MISLABEL_PROFILE", "cpu")
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    cfg = dict(PROFILES[profile])
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    cfg["profile"] = profile
    return cfg
