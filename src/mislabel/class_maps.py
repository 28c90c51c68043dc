"""Where a flipped label may go: class-pair tables for asymmetric noise and class groups for superclass noise.

:func:`asymmetric_mapping` turns a named mapping (``"next"``, ``"cifar10"``,
``"fashion-mnist"``), a dict or a sequence into a ``(C,)`` int64 table
``class -> target`` (a class mapped to itself is never flipped);
:func:`groups_from_coarse` and :func:`cifar100_groups` give a ``(C,)`` int64
super-class index per class for :func:`mislabel.noise.superclass`.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ._validation import as_int_labels, check_num_classes

__all__ = ["ASYMMETRIC_MAPPINGS", "FASHION_MNIST_GROUPS", "asymmetric_mapping", "groups_from_coarse", "cifar100_groups"]

ASYMMETRIC_MAPPINGS = ("next", "cifar10", "fashion-mnist")

#: Fashion-MNIST superclasses, indexed by fine class:
#: 0 = tops (T-shirt/top 0, Pullover 2, Dress 3, Coat 4, Shirt 6): upper-body garments
#: and the dress, the classes classifiers and annotators confuse most;
#: 1 = footwear (Sandal 5, Sneaker 7, Ankle boot 9);
#: 2 = other (Trouser 1, Bag 8): no natural partner, grouped together so that every
#: class is eligible and superclass noise can reach any rate below 1.
FASHION_MNIST_GROUPS = np.array([0, 2, 0, 0, 0, 1, 0, 1, 2, 1], dtype=np.int64)
FASHION_MNIST_GROUPS.setflags(write=False)

# class -> target; classes mapping to themselves are never flipped.
_CIFAR10_PAIRS = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}  # truck->automobile, bird->airplane, deer->horse, cat<->dog
_FASHION_MNIST_PAIRS = {0: 6, 6: 0, 2: 4, 4: 2, 5: 7, 7: 5, 3: 0, 9: 7}


def asymmetric_mapping(mapping: str | Mapping[int, int] | Sequence[int] | np.ndarray, num_classes: int) -> np.ndarray:
    """Resolve an asymmetric-noise mapping into a ``(num_classes,)`` int64 table ``class -> target``.

    Parameters
    ----------
    mapping : str, dict or sequence
        ``"next"``: ``k -> (k + 1) % C`` (the class-shift noise of the paper's
        appendix; every class moves).

        ``"cifar10"`` (C = 10): the usual semantic pairs truck -> automobile
        (9 -> 1), bird -> airplane (2 -> 0), deer -> horse (4 -> 7) and
        cat <-> dog (3 <-> 5); the other classes stay.

        ``"fashion-mnist"`` (C = 10): pairs of look-alike classes, the
        confusions most often seen in Fashion-MNIST classifiers:
        T-shirt/top <-> Shirt (0 <-> 6), Pullover <-> Coat (2 <-> 4),
        Sandal <-> Sneaker (5 <-> 7), Dress -> T-shirt/top (3 -> 0, both
        one-piece upper-body shapes), Ankle boot -> Sneaker (9 -> 7, closed
        shoes). Trouser (1) and Bag (8) have no look-alike class and stay.

        A dict ``{source: target}`` (unlisted classes stay) or a length-C
        sequence/array giving each class's target.
    num_classes : int
        Number of classes C.

    Returns
    -------
    numpy.ndarray
        ``(C,)`` int64; classes with ``table[k] == k`` are never flipped.
    """
    c = check_num_classes(num_classes, hint=" (a label can only be flipped to another class)")
    if isinstance(mapping, str):
        if mapping == "next":
            return (np.arange(c, dtype=np.int64) + 1) % c
        pairs = {"cifar10": _CIFAR10_PAIRS, "fashion-mnist": _FASHION_MNIST_PAIRS}.get(mapping)
        if pairs is None:
            raise ValueError(
                f"unknown asymmetric mapping {mapping!r}; use one of {', '.join(ASYMMETRIC_MAPPINGS)}, "
                "a dict {source: target} or a length-num_classes array"
            )
        if c != 10:
            raise ValueError(f"mapping {mapping!r} is for 10 classes, got num_classes={c}")
        mapping = pairs
    table = np.arange(c, dtype=np.int64)
    if isinstance(mapping, Mapping):
        for src, dst in mapping.items():
            if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (src, dst)):
                raise ValueError(f"mapping entries must be integer classes, got {src!r}: {dst!r}")
            if not (0 <= src < c and 0 <= dst < c):
                raise ValueError(f"mapping entry {src} -> {dst} is outside [0, {c}): fix the mapping or num_classes")
            table[int(src)] = int(dst)
        return table
    try:
        arr = np.asarray(mapping)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise ValueError(f"mapping must be a name, a dict or a length-{c} array, got {mapping!r}") from exc
    if arr.shape != (c,) or arr.dtype.kind not in "iu":
        raise ValueError(f"mapping array must be ({c},) integers (one target per class), got shape {arr.shape} dtype {arr.dtype}")
    if arr.min() < 0 or arr.max() >= c:
        raise ValueError(f"mapping targets must lie in [0, {c}), got {arr.min()}..{arr.max()}")
    return arr.astype(np.int64)


def _check_groups(groups) -> np.ndarray:
    g = as_int_labels(groups, name="groups")
    if g.size < 2:
        raise ValueError(f"groups must give a group id for each of at least 2 classes, got {g.size}")
    return g


def groups_from_coarse(fine_labels, coarse_labels, num_classes: int | None = None) -> np.ndarray:
    """Derive the ``fine class -> coarse group`` table from per-sample labels.

    Parameters
    ----------
    fine_labels : array-like or torch.Tensor
        ``(N,)`` integer fine labels.
    coarse_labels : array-like or torch.Tensor
        ``(N,)`` integer coarse labels of the same samples.
    num_classes : int, optional
        Number of fine classes C; defaults to ``fine_labels.max() + 1``.

    Returns
    -------
    numpy.ndarray
        ``(C,)`` int64, ``groups[k]`` the coarse label of fine class ``k``.

    Raises
    ------
    ValueError
        If the lengths differ, a fine class occurs with two coarse labels, or a
        fine class never occurs (use the full split, not a small subset).
    """
    fine = as_int_labels(fine_labels, name="fine_labels", num_classes=num_classes)
    coarse = as_int_labels(coarse_labels, name="coarse_labels")
    if fine.shape != coarse.shape:
        raise ValueError(f"fine_labels {fine.shape} and coarse_labels {coarse.shape} must have the same shape")
    c = int(num_classes) if num_classes is not None else int(fine.max()) + 1
    groups = np.full(c, -1, dtype=np.int64)
    groups[fine] = coarse
    if np.any(groups[fine] != coarse):
        bad = int(fine[np.flatnonzero(groups[fine] != coarse)[0]])
        found = sorted(set(coarse[fine == bad].tolist()))
        raise ValueError(f"fine class {bad} occurs with several coarse labels {found}; each fine class needs exactly one")
    missing = np.flatnonzero(groups < 0)
    if missing.size:
        raise ValueError(
            f"fine classes {missing.tolist()[:10]} never occur, so their group is unknown; "
            "derive the groups from the full split (load without subset=)"
        )
    return groups


def cifar100_groups(ds) -> np.ndarray:
    """``(100,)`` int64 CIFAR-100 fine class -> superclass table read off a loaded dataset.

    Parameters
    ----------
    ds : mislabel.data.ImageDataset
        A CIFAR-100 split with ``coarse_labels`` (every fine class must occur).
    """
    if getattr(ds, "coarse_labels", None) is None:
        raise ValueError("dataset has no coarse_labels; pass a CIFAR-100 split from mislabel.data.load('cifar100')")
    return groups_from_coarse(ds.labels, ds.coarse_labels, ds.num_classes)
