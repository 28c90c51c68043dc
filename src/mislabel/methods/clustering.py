"""CTRL (Yue & Jha 2022): cluster the per-sample training-loss curves; the high-loss cluster is noisy.

CTRL clamps each sample's loss curve, smooths it with a moving average, cuts the epochs into
windows and, per window and per given class, clusters the curves with k-means; the clusters
with the largest area under their centre's curve are called noisy, and a sample is dropped
when enough windows call it noisy.

Our version follows those steps with these simplifications (the original tunes them by the
silhouette score of the clustering):

* one loss value per epoch, ``-log p(given)`` from the recorded dynamics (CTRL records the loss
  at every step);
* two clusters per class and window, the higher-area one noisy (CTRL searches k and how many
  clusters to call noisy);
* fixed defaults: clamp at ``2 log C``, no smoothing, one window.

Two-cluster k-means splits at the hyperplane halfway between the centres, so each sample's
position along the clean-to-noisy axis, ``s = <x - c_clean, c_noisy - c_clean> / ||c_noisy - c_clean||^2``
(0 at the clean centre, 1 at the noisy one), decides exactly as the clustering does (``s > 0.5``)
and ranks the samples: the score is ``s`` averaged over windows.
"""
from __future__ import annotations

import math

import numpy as np

from .._validation import check_positive_int
from .core import MethodCost, MethodResult, Task, register
from .from_dynamics import _given_loss

__all__ = ["ctrl", "two_means", "moving_average"]


def moving_average(x: np.ndarray, width: int) -> np.ndarray:
    """Trailing moving average along axis 1, same length; the first ``width - 1`` entries repeat the first mean.

    Parameters
    ----------
    x : ndarray of shape (N, T), float
    width : int
        In ``1 .. T``.

    Returns
    -------
    ndarray of shape (N, T), float64
    """
    x = np.asarray(x, dtype=np.float64)
    if width == 1:
        return x.copy()
    c = np.cumsum(np.pad(x, ((0, 0), (1, 0))), axis=1)
    ma = (c[:, width:] - c[:, :-width]) / width             # ma[:, j] = mean of x[:, j:j + width]
    return np.concatenate([np.repeat(ma[:, :1], width - 1, axis=1), ma], axis=1)


def two_means(x: np.ndarray, max_iter: int = 100) -> np.ndarray | None:
    """Two-cluster k-means (Lloyd) of rows ``x``; each row's position on the clean-to-noisy axis.

    Deterministic: the clusters start as the rows below / above the mean row sum (area under the curve).

    Parameters
    ----------
    x : ndarray of shape (n, d), float
    max_iter : int

    Returns
    -------
    ndarray of shape (n,), float64, or None
        ``s`` (see the module docstring): ``s > 0.5`` exactly for the rows nearer the centre with the
        larger area. None when the rows do not split in two (fewer than 2 distinct rows).
    """
    x = np.asarray(x, dtype=np.float64)
    area = x.sum(axis=1)
    high = area > area.mean()
    if high.all() or not high.any():
        return None
    for _ in range(max_iter):
        c_low, c_high = x[~high].mean(axis=0), x[high].mean(axis=0)
        new = ((x - c_high) ** 2).sum(axis=1) < ((x - c_low) ** 2).sum(axis=1)
        if new.all() or not new.any():
            return None
        if np.array_equal(new, high):
            break
        high = new
    c_low, c_high = x[~high].mean(axis=0), x[high].mean(axis=0)
    if c_high.sum() < c_low.sum():
        c_low, c_high = c_high, c_low
    axis = c_high - c_low
    gap = float(axis @ axis)
    if gap == 0.0:
        return None
    return (x - c_low) @ axis / gap


@register("ctrl", needs=("dynamics",), summary="2-means of loss curves per class; high-loss cluster",
          decision="in the high-loss cluster in a majority of windows (k-means' own split)",
          reference="Yue & Jha 2022")
def ctrl(task: Task, *, clip_loss: float | None = None, smooth: int = 1, windows: int = 1,
         min_votes: int | None = None, per_class: bool = True) -> MethodResult:
    """CTRL: cluster each class's loss curves in two, call the high-loss cluster mislabeled.

    Parameters
    ----------
    clip_loss : float, optional
        Losses above are clamped to it; default ``2 log(num_classes)`` (our choice: twice the loss
        of a uniform guess keeps "confidently wrong" apart from "unsure" while bounding outliers).
    smooth : int
        Moving-average width in epochs (:func:`moving_average`); 1 = none.
    windows : int
        Equal consecutive windows of epochs, clustered separately (at most the run's epochs).
    min_votes : int, optional
        Windows that must call a sample noisy for ``remove``; default a majority.
    per_class : bool
        Cluster each given class separately (CTRL's class-dependent mode).

    Returns
    -------
    MethodResult
        ``scores``: ``s`` averaged over windows; ``remove``: noisy in at least ``min_votes`` windows;
        ``details["votes"]``: per sample, the windows that called it noisy. A class with fewer than
        two distinct curves is never called noisy (score 0).

    Raises
    ------
    ValueError
        For a bad ``clip_loss``, ``smooth``, ``windows`` or ``min_votes``.
    """
    dyn = task.dynamics
    T = dyn.num_epochs
    for name, value, top in (("smooth", smooth, T), ("windows", windows, T)):
        check_positive_int(value, name)
        if value > top:
            raise ValueError(f"{name} must be at most the run's {T} epochs, got {value}")
    votes_needed = windows // 2 + 1 if min_votes is None else min_votes
    check_positive_int(votes_needed, "min_votes")
    if votes_needed > windows:
        raise ValueError(f"min_votes must be at most windows={windows}, got {min_votes}")
    clip = 2.0 * math.log(task.num_classes) if clip_loss is None else clip_loss
    if isinstance(clip, bool) or not isinstance(clip, (int, float)) or not clip > 0 or not math.isfinite(clip):
        raise ValueError(f"clip_loss must be a positive number (or None for 2 log C), got {clip_loss!r}")
    loss = moving_average(np.minimum(_given_loss(dyn.probs), clip), smooth)
    groups = task.labels if per_class else np.zeros(task.num_samples, dtype=np.int64)
    edges = [round(i * T / windows) for i in range(windows + 1)]
    s = np.zeros((task.num_samples, windows))
    for w in range(windows):
        for c in np.unique(groups):
            rows = np.flatnonzero(groups == c)
            pos = two_means(loss[rows, edges[w]:edges[w + 1]]) if len(rows) >= 2 else None
            if pos is not None:
                s[rows, w] = pos
    votes = (s > 0.5).sum(axis=1)
    return MethodResult(s.mean(axis=1), votes >= votes_needed, MethodCost(recorded_run=True),
                        details={"votes": votes, "clip_loss": float(clip)})
