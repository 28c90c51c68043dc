"""A two-component beta mixture fitted by EM with weighted moments (Arazo et al. 2019, Sec 3.1).

Per-sample training losses, normalised to [0, 1], form two bumps: clean samples near 0 and
mislabeled ones higher up. Each EM step computes every sample's responsibility under each
component (E) and refits each beta from the responsibility-weighted mean and variance (M, the
method of moments: ``alpha = m (m (1 - m) / v - 1)``, ``beta = alpha (1 - m) / m``). The
posterior of the component with the larger mean is the probability that a sample is noisy.
"""
from __future__ import annotations

import numpy as np

__all__ = ["BetaMixture", "normalise_losses", "noise_posterior"]


def normalise_losses(loss, percentiles=(5.0, 95.0), eps: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Losses mapped to [eps, 1 - eps] between two of their percentiles, and which of them to fit on.

    As Arazo et al., the mixture is fitted without the losses outside the percentiles (outliers),
    and every loss is then scored on the same scale (those outside clipped).

    Parameters
    ----------
    loss : array-like of shape (N,), float
    percentiles : (low, high)
        In [0, 100], low < high.
    eps : float

    Returns
    -------
    x : ndarray of shape (N,), float64, in [eps, 1 - eps]
    inside : ndarray of shape (N,), bool
        Losses within the percentiles. All False when the losses (nearly) all agree.
    """
    loss = np.asarray(loss, dtype=np.float64)
    lo, hi = np.percentile(loss, percentiles)
    if not hi - lo > 1e-12:
        return np.full(loss.shape, eps), np.zeros(loss.shape, dtype=bool)
    x = np.clip((loss - lo) / (hi - lo), eps, 1.0 - eps)
    return x, (loss >= lo) & (loss <= hi)


class BetaMixture:
    """Two beta distributions mixed, fitted to values in (0, 1) by EM.

    Parameters
    ----------
    iterations : int
        EM steps (Arazo et al.: 10).

    Attributes
    ----------
    alphas, betas, weights : ndarray of shape (2,), float64
        Start at (1, 2), (2, 1), (0.5, 0.5): one component leaning to 0, one to 1.
    """

    def __init__(self, iterations: int = 10) -> None:
        self.iterations = int(iterations)
        self.alphas = np.array([1.0, 2.0])
        self.betas = np.array([2.0, 1.0])
        self.weights = np.array([0.5, 0.5])

    def log_joint(self, x: np.ndarray) -> np.ndarray:
        """``log(weight_k * Beta(x; alpha_k, beta_k))`` of shape (2, N)."""
        x = np.asarray(x, dtype=np.float64)[None, :]
        a, b = self.alphas[:, None], self.betas[:, None]
        from scipy.special import betaln   # imported here: `import mislabel` stays free of scipy

        return (np.log(self.weights)[:, None] + (a - 1) * np.log(x) + (b - 1) * np.log1p(-x) - betaln(a, b))

    def posterior(self, x: np.ndarray) -> np.ndarray:
        """Responsibilities of the two components, shape (2, N), each column summing to 1."""
        lj = self.log_joint(x)
        lj -= lj.max(axis=0, keepdims=True)
        r = np.exp(lj)
        return r / r.sum(axis=0, keepdims=True)

    def fit(self, x: np.ndarray) -> "BetaMixture":
        """Run the EM steps on ``x`` of shape (N,), values in (0, 1); returns self.

        Raises
        ------
        ValueError
            If ``x`` is empty or has values outside (0, 1).
        """
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 1 or x.size == 0 or not np.all((x > 0) & (x < 1)):
            raise ValueError("x must be a non-empty 1-D array of values in (0, 1); normalise the losses first "
                             "(normalise_losses)")
        for _ in range(self.iterations):
            r = np.maximum(self.posterior(x), 1e-12)
            for k in range(2):
                m = np.average(x, weights=r[k])
                v = np.average((x - m) ** 2, weights=r[k])
                v = min(max(v, 1e-12), m * (1 - m) * (1 - 1e-6))      # a beta needs 0 < v < m (1 - m)
                self.alphas[k] = m * (m * (1 - m) / v - 1)
                self.betas[k] = self.alphas[k] * (1 - m) / m
            self.weights = r.sum(axis=1) / r.sum()
        return self

    @property
    def noisy(self) -> int:
        """Index of the component with the larger mean (high loss)."""
        return int(np.argmax(self.alphas / (self.alphas + self.betas)))

    def noisy_posterior(self, x: np.ndarray) -> np.ndarray:
        """Probability of the high-loss component for each value, shape (N,), float64."""
        return self.posterior(x)[self.noisy]


def noise_posterior(loss, iterations: int = 10) -> tuple[np.ndarray, BetaMixture | None]:
    """Fit a :class:`BetaMixture` to per-sample losses; each sample's probability of being noisy.

    Parameters
    ----------
    loss : array-like of shape (N,), float
    iterations : int

    Returns
    -------
    posterior : ndarray of shape (N,), float64
        All zero when the losses are (nearly) all equal: nothing sets any sample apart.
    mixture : BetaMixture or None
        None in that case.
    """
    x, inside = normalise_losses(loss)
    if inside.sum() < 2:
        return np.zeros(len(x)), None
    bmm = BetaMixture(iterations).fit(x[inside])
    return bmm.noisy_posterior(x), bmm
