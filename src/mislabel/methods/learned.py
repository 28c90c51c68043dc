"""The paper's method: an LSTM noise detector that reads the recorded run (:mod:`mislabel.detector`).

* ``detector``: in-domain. A detector trained on a run with synthesized noise, which the caller
  hands over trained, or as that run and its flips (it is then trained here). Never the task's
  own flips: those are the truth the method is judged against.
* ``shipped``: the detector shipped with the package, off the shelf (:meth:`NoiseDetector.pretrained`).

Both call a sample mislabeled when its score reaches ``threshold`` (0.5: the detector's own
two-class decision), a rule that needs no noise rate.
"""
from __future__ import annotations

from .._validation import check_share
from ..detector import NoiseDetector
from .core import MethodCost, MethodResult, Task, register

__all__ = ["detector", "shipped"]


def _decide(task: Task, det: NoiseDetector, threshold: float, note: str) -> MethodResult:
    """Score with ``det`` (what ``det.score`` gives) and flag scores >= ``threshold``; ``details`` holds the
    threshold and ``scored_epochs``, the epochs the detector read (fewer than the run's where its
    memorisation guard keeps only the epochs before the onset)."""
    threshold = check_share(threshold, "threshold", hint=" (a score is a probability of being mislabeled)")
    epochs, scores = det._view(task.dynamics)      # det.score's scores and the epochs they read, in one pass
    return MethodResult(scores, scores >= threshold, MethodCost(recorded_run=True, note=note),
                        details={"threshold": threshold, "scored_epochs": int(epochs)})


@register("detector", needs=("dynamics",), summary="LSTM detector trained on a synthesized-noise run",
          decision="score >= 0.5", reference="Jia, Li et al. 2023 (this paper)")
def detector(task: Task, *, detector: NoiseDetector | None = None, train_dynamics=None, train_flips=None,
             features: str = "prob", epochs: int = 10, lr: float = 0.01, seed: int | None = None,
             threshold: float = 0.5) -> MethodResult:
    """Score the task's run with a detector trained on synthesized noise (pass one of the two).

    Parameters
    ----------
    detector : NoiseDetector, optional
        Already trained.
    train_dynamics : Dynamics or list of Dynamics, optional
        A run (or runs) with synthesized noise, to train a fresh ``NoiseDetector(features=features)`` on.
    train_flips : array-like of shape (N_train,), bool, or a list of them, optional
        Its flips; default ``train_dynamics.is_flipped``.
    features : str
        Input channels of the fresh detector ("prob" is the paper's).
    epochs, lr, seed
        Its training (:meth:`NoiseDetector.fit`); ``seed`` defaults to ``task.seed``.
    threshold : float
        In (0, 1).

    Returns
    -------
    MethodResult
        ``cost.note`` says where the detector came from; its training time is in ``cost.seconds``,
        the classifier run it was trained on is not. ``details``: ``threshold`` and ``scored_epochs``
        (the epochs the detector read).

    Raises
    ------
    ValueError
        If neither or both of ``detector`` and ``train_dynamics`` are given, ``detector`` is
        untrained, or ``threshold`` is not in (0, 1).
    """
    check_share(threshold, "threshold", hint=" (a score is a probability of being mislabeled)")
    if (detector is None) == (train_dynamics is None):
        raise ValueError("method 'detector' needs exactly one of detector= (a trained NoiseDetector) or "
                         "train_dynamics= (a run with synthesized noise, and train_flips=) to train one on")
    if detector is not None:
        if not isinstance(detector, NoiseDetector) or not detector.trained:
            raise ValueError("detector must be a trained mislabel.NoiseDetector (fit or load it first)")
        return _decide(task, detector, threshold, "a detector trained before the call")
    det = NoiseDetector(features=features).fit(train_dynamics, train_flips, epochs=epochs, lr=lr,
                                               seed=task.seed if seed is None else seed, progress=task.progress)
    return _decide(task, det, threshold, "detector trained here on the given synthesized-noise run")


@register("shipped", needs=("dynamics", "margins"), summary="the shipped pretrained detector, off the shelf",
          decision="score >= 0.5", reference="Jia, Li et al. 2023 (this paper)")
def shipped(task: Task, *, threshold: float = 0.5) -> MethodResult:
    """Score the task's run with the detector shipped with the package (:func:`mislabel.detect`).

    Parameters
    ----------
    threshold : float
        In (0, 1).

    Returns
    -------
    MethodResult
        ``details``: ``threshold`` and ``scored_epochs`` (the epochs the detector read: fewer than the
        run's where its memorisation guard keeps only the epochs before the onset).

    Raises
    ------
    ValueError
        If ``threshold`` is not in (0, 1).
    """
    return _decide(task, NoiseDetector.pretrained(), threshold, "the shipped pretrained detector")
