"""mislabel: identify mislabeled training samples from their training dynamics.

A reproduction (and extension) of Jia, Li et al., "Learning from Training
Dynamics: Identifying Mislabeled Data Beyond Manually Designed Features",
AAAI 2023.  Typical use::

    import mislabel
    ds = mislabel.data.load("fashion-mnist", split="train", subset=4000, seed=0)
    noisy, flipped = mislabel.noise.symmetric(ds.labels, rate=0.4, num_classes=10, seed=0)
    run = mislabel.train.fit("cnn", ds.images, noisy, epochs=10, record="train", seed=0)
    det = mislabel.NoiseDetector().fit(run.dynamics, flipped)
    scores = det.score(run.dynamics)          # (N,) probability of being mislabeled
"""
__version__ = "0.2.0"

import os as _os

# OpenMP threads that spin while waiting make small CPU workloads 2-10x slower on 2-core and
# shared machines (measured: benchmarks/, book/performance.md). Only effective if torch was not
# imported before mislabel; an explicit user setting always wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import data, noise, models, metrics, dynamics, train, detector, baselines, methods, cache, pipeline, transfer  # noqa: E402
from ._utils import set_seed, resolve_device  # noqa: E402
from .dynamics import Dynamics, DynamicsRecorder  # noqa: E402
from .detector import NoiseDetector, detect  # noqa: E402

__all__ = [
    "__version__", "data", "noise", "models", "metrics", "dynamics", "train", "detector",
    "baselines", "methods", "cache", "pipeline", "transfer", "set_seed", "resolve_device", "Dynamics",
    "DynamicsRecorder", "NoiseDetector", "detect",
]
