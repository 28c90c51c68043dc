"""DivideMix's division: a two-component 1-D Gaussian mixture on per-sample losses, fitted by EM in NumPy.

The reference implementation of DivideMix fits ``sklearn.mixture.GaussianMixture`` (two
components, ``reg_covar=5e-4``, k-means initialisation with a random state). This module fits the
same model with its own EM and a deterministic start (the samples below the mean loss form the
low component, the others the high one), so the division needs no random state and no
scikit-learn: the same losses always give the same clean probabilities.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import check_positive_int

__all__ = ["TwoGaussians", "fit_two_gaussians", "normalise_losses", "clean_probability"]

_LOG_2PI = float(np.log(2.0 * np.pi))


@dataclass(frozen=True)
class TwoGaussians:
    """A fitted two-component mixture; component 0 has the lower mean.

    Attributes
    ----------
    means, variances, weights : ndarray of shape (2,), float64
    iterations : int
        EM iterations run.
    converged : bool
        Whether the mean log-likelihood changed by less than ``tol`` before ``max_iter``.
    """

    means: np.ndarray
    variances: np.ndarray
    weights: np.ndarray
    iterations: int
    converged: bool

    def posterior_low(self, values) -> np.ndarray:
        """Posterior probability of the low-mean component for each value: (N,) float64 in [0, 1]."""
        x = np.asarray(values, dtype=np.float64).reshape(-1, 1)
        return np.exp(_log_resp(x, self.means, self.variances, self.weights)[:, 0])


def _log_joint(x: np.ndarray, means: np.ndarray, variances: np.ndarray, weights: np.ndarray):
    """Log of weight times density (N, 2) of each component at values ``x`` (N, 1), and its
    log-sum over the components (N, 1)."""
    log_p = (np.log(np.maximum(weights, 1e-300)) - 0.5 * (_LOG_2PI + np.log(variances))
             - 0.5 * (x - means) ** 2 / variances)
    return log_p, np.logaddexp(log_p[:, :1], log_p[:, 1:])


def _log_resp(x: np.ndarray, means: np.ndarray, variances: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Log responsibilities (N, 2) of the components for values ``x`` (N, 1)."""
    log_p, norm = _log_joint(x, means, variances, weights)
    return log_p - norm


def _m_step(x: np.ndarray, resp: np.ndarray, reg_covar: float):
    counts = resp.sum(0) + 10 * np.finfo(np.float64).eps
    means = (resp * x).sum(0) / counts
    variances = (resp * (x - means) ** 2).sum(0) / counts + reg_covar
    return means, variances, counts / counts.sum()


def fit_two_gaussians(values, *, max_iter: int = 100, tol: float = 1e-4, reg_covar: float = 5e-4) -> TwoGaussians:
    """Fit a two-component Gaussian mixture to 1-D values by expectation-maximisation.

    Parameters
    ----------
    values : array-like of shape (N,), float
        Finite; N >= 2.
    max_iter : int
        Most EM iterations.
    tol : float
        Stop when the mean log-likelihood per value changes by less than this.
    reg_covar : float
        Added to each variance (as scikit-learn's ``reg_covar``; DivideMix uses 5e-4), so that a
        component collapsing onto one value keeps a finite likelihood.

    Returns
    -------
    TwoGaussians
        Component 0 is the one with the lower mean.

    Raises
    ------
    ValueError
        If ``values`` is not 1-D and finite with at least 2 entries, or a setting is out of range.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or len(x) < 2 or not np.all(np.isfinite(x)):
        raise ValueError(f"values must be finite, of shape (N,) with N >= 2, got shape {x.shape}")
    check_positive_int(max_iter, "max_iter")
    if not (np.isfinite(tol) and tol > 0) or not (np.isfinite(reg_covar) and reg_covar > 0):
        raise ValueError(f"tol and reg_covar must be positive numbers, got tol={tol!r}, reg_covar={reg_covar!r}")
    x = x.reshape(-1, 1)
    # deterministic start: hard split at the mean (at the median when that leaves one side empty)
    low = x[:, 0] < x.mean()
    if low.all() or not low.any():
        low = x[:, 0] <= np.median(x)
    resp = np.stack([low, ~low], 1).astype(np.float64)
    means, variances, weights = _m_step(x, resp, reg_covar)
    previous, converged, it = -np.inf, False, 0
    for it in range(1, max_iter + 1):
        log_p, norm = _log_joint(x, means, variances, weights)
        resp = np.exp(log_p - norm)
        means, variances, weights = _m_step(x, resp, reg_covar)
        loglik = float(norm.mean())
        if abs(loglik - previous) < tol:
            converged = True
            break
        previous = loglik
    order = np.argsort(means, kind="stable")
    return TwoGaussians(means[order], variances[order], weights[order], it, converged)


def normalise_losses(losses) -> np.ndarray:
    """Min-max scale per-sample losses to [0, 1], as DivideMix does before the mixture.

    Parameters
    ----------
    losses : array-like of shape (N,), float

    Returns
    -------
    ndarray of shape (N,), float64
        All zeros when every loss is the same.

    Raises
    ------
    ValueError
        If ``losses`` is not 1-D, non-empty and finite.
    """
    x = np.asarray(losses, dtype=np.float64)
    if x.ndim != 1 or len(x) == 0 or not np.all(np.isfinite(x)):
        raise ValueError(f"losses must be finite, of shape (N,) with N >= 1, got shape {x.shape}")
    span = x.max() - x.min()
    return (x - x.min()) / span if span > 0 else np.zeros_like(x)


def clean_probability(losses, *, max_iter: int = 100, tol: float = 1e-4, reg_covar: float = 5e-4) -> np.ndarray:
    """Each sample's probability of being clean: the low-loss component's posterior.

    The losses are scaled to [0, 1] (:func:`normalise_losses`), a two-component mixture is fitted
    (:func:`fit_two_gaussians`), and the posterior of its low-mean component is returned. When all
    losses are equal there is nothing to divide: every sample gets 1.0.

    Parameters
    ----------
    losses : array-like of shape (N,), float
        Per-sample losses (e.g. cross-entropy of the given label), finite.
    max_iter, tol, reg_covar
        As in :func:`fit_two_gaussians`.

    Returns
    -------
    ndarray of shape (N,), float64, in [0, 1]

    Raises
    ------
    ValueError
        If ``losses`` is not 1-D, non-empty and finite, or a setting is out of range.
    """
    x = normalise_losses(losses)
    if len(x) < 2 or x.max() == 0:
        return np.ones_like(x)
    return fit_two_gaussians(x, max_iter=max_iter, tol=tol, reg_covar=reg_covar).posterior_low(x)
