"""Synthetic label noise: symmetric, asymmetric (class-pair) and superclass flips.

Every generator takes clean labels ``(N,)`` (NumPy array, list or tensor of
integers), flips **exactly** ``round(rate * N)`` of them (Python's ``round``,
half to even) with ``numpy.random.default_rng(seed)``, and returns NumPy arrays
``(noisy_labels, is_flipped)``:

* ``noisy_labels`` : ``(N,)`` int64
* ``is_flipped`` : ``(N,)`` bool, exactly ``noisy_labels != labels``

A flipped sample always gets a label different from its clean one, so
``is_flipped.sum() == round(rate * N)``.

:func:`twice_contaminated` reproduces the paper's "twice contaminated" setting:
a dataset that already carries unknown noise gets a second, known, synthetic
contamination on which a detector can be trained.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._validation import as_int_labels, check_num_classes, check_seed, check_share
from .class_maps import (ASYMMETRIC_MAPPINGS, FASHION_MNIST_GROUPS, _check_groups, asymmetric_mapping, cifar100_groups,
                         groups_from_coarse)

__all__ = [
    "NOISE_KINDS",
    "ASYMMETRIC_MAPPINGS",
    "FASHION_MNIST_GROUPS",
    "symmetric",
    "asymmetric",
    "superclass",
    "make",
    "twice_contaminated",
    "Contamination",
    "asymmetric_mapping",
    "groups_from_coarse",
    "cifar100_groups",
]

NOISE_KINDS = ("symmetric", "asymmetric", "superclass")


class Contamination(NamedTuple):
    """Result of :func:`twice_contaminated`; unpacks as a 3-tuple.

    Attributes
    ----------
    noisy_labels : numpy.ndarray
        ``(N,)`` int64 labels after both contaminations.
    synthesized_mask : numpy.ndarray
        ``(N,)`` bool, samples flipped by the second (synthesized, known)
        contamination: the targets a detector is trained on.
    underlying_mask : numpy.ndarray
        ``(N,)`` bool, samples flipped by the first contamination, which stands
        for the dataset's real, unknown noise. Disjoint from ``synthesized_mask``;
        ``noisy_labels != labels`` is their union.
    """

    noisy_labels: np.ndarray
    synthesized_mask: np.ndarray
    underlying_mask: np.ndarray


def _n_flips(rate: float, n: int) -> int:
    return int(round(rate * n))


def _choose(rng: np.random.Generator, eligible: np.ndarray, k: int, n: int, rate: float, why: str) -> np.ndarray:
    """``k`` distinct rows drawn uniformly from the boolean mask ``eligible`` (N,)."""
    pool = np.flatnonzero(eligible)
    if k > pool.size:
        raise ValueError(
            f"noise rate {rate} needs {k} flipped samples out of {n}, but only {pool.size} are eligible "
            f"({why}); the largest achievable rate is about {pool.size / n:.4f}: lower the rate"
        )
    return np.sort(rng.choice(pool, size=k, replace=False))


def _result(clean: np.ndarray, noisy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return noisy, noisy != clean


# --------------------------------------------------------------------------- core flips (shared with twice_contaminated)
def _flip_symmetric(y, k, num_classes, rng, allowed, rate):
    rows = _choose(rng, allowed, k, y.size, rate, "samples not already flipped")
    noisy = y.copy()
    noisy[rows] = (y[rows] + rng.integers(1, num_classes, size=rows.size)) % num_classes
    return noisy


def _flip_asymmetric(y, k, table, rng, allowed, rate):
    movable = table[y] != y
    rows = _choose(rng, allowed & movable, k, y.size, rate, "samples whose class the mapping sends to another class")
    noisy = y.copy()
    noisy[rows] = table[y[rows]]
    return noisy


def _flip_superclass(y, k, groups, rng, allowed, rate):
    group_size = np.bincount(groups)[groups]  # (C,) size of each class's group
    movable = group_size[y] >= 2
    rows = _choose(rng, allowed & movable, k, y.size, rate, "samples whose group holds at least one other class")
    noisy = y.copy()
    for c in np.unique(y[rows]):
        sel = rows[y[rows] == c]
        others = np.flatnonzero((groups == groups[c]) & (np.arange(groups.size) != c))
        noisy[sel] = others[rng.integers(0, others.size, size=sel.size)]
    return noisy


# --------------------------------------------------------------------------- public generators
def symmetric(labels, rate: float, num_classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric (uniform) noise: flipped samples get a uniformly drawn *other* class.

    Parameters
    ----------
    labels : array-like or torch.Tensor
        ``(N,)`` integer clean labels in ``[0, num_classes)``.
    rate : float
        Fraction of samples to flip, in ``[0, 1)``; exactly ``round(rate * N)``
        samples, drawn uniformly without replacement, are flipped.
    num_classes : int
        Number of classes C >= 2.
    seed : int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    noisy_labels : numpy.ndarray
        ``(N,)`` int64.
    is_flipped : numpy.ndarray
        ``(N,)`` bool, ``noisy_labels != labels``.
    """
    c = check_num_classes(num_classes, hint=" (a label can only be flipped to another class)")
    y = as_int_labels(labels, num_classes=c)
    rate = check_share(rate, "noise rate", zero=True)
    rng = np.random.default_rng(check_seed(seed))
    noisy = _flip_symmetric(y, _n_flips(rate, y.size), c, rng, np.ones(y.size, bool), rate)
    return _result(y, noisy)


def asymmetric(
    labels, rate: float, num_classes: int, seed: int = 0, mapping="next"
) -> tuple[np.ndarray, np.ndarray]:
    """Asymmetric (class-dependent) noise: flipped samples move to ``mapping[label]``.

    Exactly ``round(rate * N)`` samples are drawn uniformly among those whose
    class the mapping sends elsewhere (with ``"next"``, all of them).

    Parameters
    ----------
    labels : array-like or torch.Tensor
        ``(N,)`` integer clean labels in ``[0, num_classes)``.
    rate : float
        Fraction of all N samples to flip, in ``[0, 1)``.
    num_classes : int
        Number of classes C >= 2.
    seed : int
        Seed of ``numpy.random.default_rng``.
    mapping : str, dict or sequence
        ``"next"`` (``k -> (k + 1) % C``), ``"cifar10"``, ``"fashion-mnist"`` or
        an explicit mapping; see :func:`asymmetric_mapping` for the pairs.

    Returns
    -------
    noisy_labels : numpy.ndarray
        ``(N,)`` int64.
    is_flipped : numpy.ndarray
        ``(N,)`` bool, ``noisy_labels != labels``.

    Raises
    ------
    ValueError
        Also when fewer samples are eligible than ``round(rate * N)``; the
        message gives the largest achievable rate.
    """
    c = check_num_classes(num_classes, hint=" (a label can only be flipped to another class)")
    table = asymmetric_mapping(mapping, c)
    y = as_int_labels(labels, num_classes=c)
    rate = check_share(rate, "noise rate", zero=True)
    rng = np.random.default_rng(check_seed(seed))
    noisy = _flip_asymmetric(y, _n_flips(rate, y.size), table, rng, np.ones(y.size, bool), rate)
    return _result(y, noisy)


def superclass(labels, rate: float, groups, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Superclass noise: flipped samples move to a uniformly drawn other class of the same group.

    Exactly ``round(rate * N)`` samples are drawn uniformly among those whose
    group holds at least two classes.

    Parameters
    ----------
    labels : array-like or torch.Tensor
        ``(N,)`` integer clean labels in ``[0, C)``.
    rate : float
        Fraction of all N samples to flip, in ``[0, 1)``.
    groups : array-like
        ``(C,)`` integer group id of each class, e.g. :data:`FASHION_MNIST_GROUPS`
        or :func:`cifar100_groups` of a CIFAR-100 split. C = ``len(groups)``.
    seed : int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    noisy_labels : numpy.ndarray
        ``(N,)`` int64.
    is_flipped : numpy.ndarray
        ``(N,)`` bool, ``noisy_labels != labels``.
    """
    g = _check_groups(groups)
    y = as_int_labels(labels, num_classes=g.size)
    rate = check_share(rate, "noise rate", zero=True)
    rng = np.random.default_rng(check_seed(seed))
    noisy = _flip_superclass(y, _n_flips(rate, y.size), g, rng, np.ones(y.size, bool), rate)
    return _result(y, noisy)


def make(kind: str, labels, rate: float, num_classes: int, seed: int = 0, **kw) -> tuple[np.ndarray, np.ndarray]:
    """Apply the noise ``kind`` (one of :data:`NOISE_KINDS`) by name.

    Parameters
    ----------
    kind : {"symmetric", "asymmetric", "superclass"}
    labels : array-like or torch.Tensor
        ``(N,)`` integer clean labels.
    rate : float
        Fraction in ``[0, 1)``.
    num_classes : int
        Number of classes C (for ``"superclass"`` it must equal ``len(groups)``).
    seed : int
        Seed of ``numpy.random.default_rng``.
    **kw
        ``mapping=`` for ``"asymmetric"``; ``groups=`` (required) for ``"superclass"``.

    Returns
    -------
    noisy_labels : numpy.ndarray
        ``(N,)`` int64.
    is_flipped : numpy.ndarray
        ``(N,)`` bool.
    """
    if kind == "symmetric":
        _no_extra(kind, kw, ())
        return symmetric(labels, rate, num_classes, seed=seed)
    if kind == "asymmetric":
        _no_extra(kind, kw, ("mapping",))
        return asymmetric(labels, rate, num_classes, seed=seed, **kw)
    if kind == "superclass":
        _no_extra(kind, kw, ("groups",))
        groups = _superclass_groups(kw, num_classes)
        return superclass(labels, rate, groups, seed=seed)
    raise ValueError(f"unknown noise kind {kind!r}; known kinds: {', '.join(NOISE_KINDS)}")


def _no_extra(kind: str, kw: dict, allowed: tuple) -> None:
    extra = sorted(set(kw) - set(allowed))
    if extra:
        raise ValueError(f"noise kind {kind!r} takes no argument(s) {extra}; it accepts {list(allowed) or 'none'}")


def _superclass_groups(kw: dict, num_classes: int) -> np.ndarray:
    if kw.get("groups") is None:
        raise ValueError("superclass noise needs groups=: a (num_classes,) array of group ids, e.g. FASHION_MNIST_GROUPS")
    g = _check_groups(kw["groups"])
    if g.size != num_classes:
        raise ValueError(f"groups has {g.size} entries but num_classes={num_classes}; give one group id per class")
    return g


def twice_contaminated(
    labels,
    underlying_rate: float,
    synthesized_rate: float,
    num_classes: int,
    seed: int = 0,
    kind: str = "symmetric",
    **kw,
) -> Contamination:
    """Two rounds of noise: an "underlying" one (unknown real noise) then a known, synthesized one.

    The first round is exactly ``make(kind, labels, underlying_rate, num_classes,
    seed, **kw)``. The second flips exactly ``round(synthesized_rate * N)`` more
    samples, drawn (with the separate stream ``default_rng([seed, 1])``) among
    those the first round left untouched and the noise kind can move. Both rates
    are fractions of all N samples.

    Parameters
    ----------
    labels : array-like or torch.Tensor
        ``(N,)`` integer clean labels.
    underlying_rate, synthesized_rate : float
        Each in ``[0, 1)``, with ``underlying_rate + synthesized_rate < 1``.
    num_classes : int
        Number of classes C.
    seed : int
        Seed of both rounds.
    kind : {"symmetric", "asymmetric", "superclass"}
        Noise kind of both rounds.
    **kw
        ``mapping=`` / ``groups=`` as in :func:`make`.

    Returns
    -------
    Contamination
        ``(noisy_labels (N,) int64, synthesized_mask (N,) bool, underlying_mask (N,) bool)``;
        the masks are disjoint and ``noisy_labels != labels`` is their union.
    """
    u = check_share(underlying_rate, "underlying noise rate", zero=True)
    s = check_share(synthesized_rate, "synthesized noise rate", zero=True)
    if u + s >= 1.0:
        raise ValueError(
            f"underlying_rate + synthesized_rate = {u + s} must be < 1 (both are fractions of all samples)"
        )
    seed = check_seed(seed)
    noisy1, under = make(kind, labels, u, num_classes, seed=seed, **kw)
    y = as_int_labels(labels, num_classes=num_classes)
    rng = np.random.default_rng([seed, 1])
    k = _n_flips(s, y.size)
    allowed = ~under
    if kind == "symmetric":
        noisy2 = _flip_symmetric(noisy1, k, int(num_classes), rng, allowed, s)
    elif kind == "asymmetric":
        noisy2 = _flip_asymmetric(noisy1, k, asymmetric_mapping(kw.get("mapping", "next"), num_classes), rng, allowed, s)
    else:
        noisy2 = _flip_superclass(noisy1, k, _superclass_groups(kw, num_classes), rng, allowed, s)
    synth = noisy2 != noisy1
    return Contamination(noisy2, synth, under)
