"""The paper's Sec. 4.4 analyses of the noise detector, as library calls.

* :mod:`~mislabel.analyses.underlying` — tolerance to noise the detector is not told about: a grid of
  twice-contaminated runs (underlying rate x synthesized rate), each cell's detector scored on one
  independent noisy run (paper Figs. 6 and 10);
* :mod:`~mislabel.analyses.superclass` — noise that stays within groups of similar classes: the
  detector against AUM and the other rankings of :mod:`mislabel.methods` that read only the recorded
  run, across noise rates (paper Fig. 7);
* :mod:`~mislabel.analyses.lime_epochs` — which epochs a detector reads: LIME (Ribeiro, Singh and
  Guestrin 2016) with epochs as the explained features, per sample and averaged (paper Fig. 8).

Typical use::

    from mislabel import analyses
    opts = dict(dataset="fashion-mnist", subset=4000, epochs=16, lr=0.05)
    grid = analyses.underlying_grid([0.0, 0.2], [0.4], capture_options=opts)
    expl = analyses.explain_epochs(grid.detectors[(0.0, 0.4)], grid.evaluation.dynamics,
                                   samples=[3, 17], seed=0)

The results are plain lists of row dicts and NumPy arrays (no pandas), ready for ``pandas.DataFrame``.
"""
from __future__ import annotations

from .lime_epochs import (EpochExplanation, early_late_importance, explain_epochs, found_mislabeled, lr_drops,
                          mean_abs_importance)
from .superclass import SuperclassComparison, best_peer, dynamics_peers, superclass_comparison
from .underlying import UnderlyingGrid, check_grid_rates, tolerated_underlying, underlying_grid

__all__ = [
    "UnderlyingGrid", "underlying_grid", "check_grid_rates", "tolerated_underlying",
    "SuperclassComparison", "superclass_comparison", "dynamics_peers", "best_peer",
    "EpochExplanation", "explain_epochs", "found_mislabeled", "mean_abs_importance", "lr_drops",
    "early_late_importance",
]
