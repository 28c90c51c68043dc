"""The learned noise detector: an LSTM that reads each sample's training dynamics and scores its label.

Modules, by job:

* :mod:`~mislabel.detector.model` — :class:`NoiseDetector` (fit, fine_tune, adapt, score) and :func:`detect`;
* :mod:`~mislabel.detector.network` — the LSTM and how an ensemble's members combine their scores;
* :mod:`~mislabel.detector.features` — the input channels, a registry of named functions, and resampling;
* :mod:`~mislabel.detector.guard` — the memorisation guard (when a classifier starts to fit wrong labels);
* :mod:`~mislabel.detector.checkpoint` — saving, loading and the shipped pretrained weights;
* :mod:`~mislabel.detector.training` and :mod:`~mislabel.detector.threads` — the training loop and its CPU threads.

Typical use::

    scores = mislabel.detect(dynamics)                       # the shipped detector
    det = mislabel.NoiseDetector(features="prob+margin").fit(dynamics, is_flipped)
"""
from .checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION
from .features import (CHANNEL_FUNCTIONS, CHANNELS, FEATURES, _sigmoid, features_of,  # noqa: F401
                       pair_confusion, parse_features, percentile_rank, resample)
from .guard import GUARD_MIN_FIT, GUARD_MIN_RISE, GUARD_RATIO, GUARD_WINDOW, memorisation_onset, prediction_changes
from .model import NoiseDetector, detect
from .network import _LSTMNet  # noqa: F401
from .threads import _GradWorkers, _intra_op_threads, resolve_workers  # noqa: F401

__all__ = [
    "NoiseDetector", "detect", "features_of", "parse_features", "resample", "percentile_rank", "pair_confusion",
    "prediction_changes", "memorisation_onset", "resolve_workers", "CHANNEL_FUNCTIONS", "CHANNELS", "FEATURES",
    "GUARD_WINDOW", "GUARD_MIN_RISE", "GUARD_MIN_FIT", "GUARD_RATIO", "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION",
]
