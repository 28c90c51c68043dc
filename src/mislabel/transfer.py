"""Transfer of a trained detector to new data (paper Sec 3.3 and Fig. 5).

:func:`compare` ranks the samples of one *evaluation* capture of a target
setting with five methods:

* ``off-the-shelf`` — the source detector as it is;
* ``fine-tuned`` — a copy of the source detector fine-tuned on a *different*
  noise draw of the target (paper: learning rate 0.03 for a 0.1 base rate);
* ``in-domain`` — a fresh detector trained on that target draw only;
* ``shipped`` — the package's pretrained detector (:meth:`NoiseDetector.pretrained`);
* ``AUM`` — the hand-crafted baseline on the evaluation run itself.

The fine-tuning and in-domain detectors never see the evaluation draw.
"""
from __future__ import annotations

import copy

import numpy as np

from . import baselines as _baselines
from . import metrics as _metrics
from .detector import NoiseDetector
from .dynamics import Dynamics

METHODS = ("off-the-shelf", "fine-tuned", "in-domain", "shipped", "AUM")


def compare(source: NoiseDetector, target_train: Dynamics, target_eval: Dynamics, *, fine_tune_epochs: int = 5,
            fine_tune_lr: float = 0.003, epochs: int = 10, lr: float = 0.01, seed: int = 0,
            include_shipped: bool = True) -> dict[str, np.ndarray]:
    """Scores of every method on ``target_eval``.

    Parameters
    ----------
    source : NoiseDetector
        Trained on the source setting; it is copied, never modified.
    target_train : Dynamics
        Target-setting dynamics with ``is_flipped``, used for fine-tuning and in-domain training.
    target_eval : Dynamics
        An independent noise draw of the target setting, to be ranked.
    fine_tune_epochs, fine_tune_lr : int, float
        Fine-tuning budget; the default ratio fine-tune/base lr (0.3) is the paper's 0.03/0.1.
    epochs, lr : int, float
        Training of the in-domain detector (the architecture of ``source``: width, depth, input
        channels, sequence length and number of members).
    seed : int
    include_shipped : bool
        Add the shipped pretrained detector (needs ``target_eval.margins``, recorded by default).

    Returns
    -------
    dict of str -> ndarray of shape (N,), float32
        Keys from :data:`METHODS` (``shipped`` only with ``include_shipped``).

    Raises
    ------
    TypeError
        If ``source`` is not a :class:`NoiseDetector` or a target is not a :class:`Dynamics` (e.g. a bare
        array of probabilities).
    ValueError
        If ``target_train`` carries no ``is_flipped``.
    """
    if not isinstance(source, NoiseDetector):
        raise TypeError("source must be a trained NoiseDetector (e.g. NoiseDetector.load(path) or "
                        f"NoiseDetector().fit(dynamics)), got {type(source).__name__}")
    for name, value in (("target_train", target_train), ("target_eval", target_eval)):
        if not isinstance(value, Dynamics):
            raise TypeError(f"{name} must be a Dynamics, e.g. the .dynamics of a capture or Dynamics.load(path) "
                            "(wrap arrays as Dynamics(probs, labels, is_flipped, margins): AUM reads the margins), "
                            f"got {type(value).__name__}")
    if target_train.is_flipped is None:
        raise ValueError("target_train must carry is_flipped (a synthesized noise draw)")
    tuned = copy.deepcopy(source).fine_tune(target_train, epochs=fine_tune_epochs, lr=fine_tune_lr, seed=seed,
                                            progress=False)
    c = source.config   # same architecture; like a fine-tuned one, it has read whole runs of this data: no guard
    fresh = NoiseDetector(c["hidden_size"], c["num_layers"], seq_len=c["seq_len"], resample=c["resample"],
                          features=c["features"], members=len(source.nets), device=source.device)
    fresh.fit(target_train, epochs=epochs, lr=lr, seed=seed, progress=False)
    out = {"off-the-shelf": source.score(target_eval), "fine-tuned": tuned.score(target_eval),
           "in-domain": fresh.score(target_eval)}
    if include_shipped:
        out["shipped"] = NoiseDetector.pretrained().score(target_eval)
    out["AUM"] = _baselines.aum(target_eval)
    return out


def evaluate(scores: dict[str, np.ndarray], is_flipped) -> list[dict]:
    """:func:`mislabel.metrics.evaluate` per method, as rows ``{"method": ..., "map": ..., ...}``."""
    return [{"method": name, **_metrics.evaluate(s, is_flipped)} for name, s in scores.items()]

