"""The :class:`Dynamics` value object: one run's per-epoch probabilities, validated on construction."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .._validation import as_int_labels
from .storage import load_npz, write_npz


@dataclass
class Dynamics:
    """Training dynamics of one run.

    Attributes
    ----------
    probs : ndarray of shape (N, T), float32
        Probability of the given label for sample i after/at epoch t, in [0, 1].
    labels : ndarray of shape (N,), int64
        The labels the model was trained on (possibly noisy).
    is_flipped : ndarray of shape (N,), bool, optional
        True where the label was synthetically corrupted (when known).
    margins : ndarray of shape (N, T), float32, optional
        Given-label logit minus the largest other logit (for AUM).
    full : ndarray of shape (N, T, C), float16, optional
        Probabilities of all classes. May be a read-only ``np.memmap`` view of a
        (T, N, C) ``.npy`` file (recorded with ``DynamicsRecorder(full_path=...)``).
    meta : dict
        JSON-serialisable description (dataset, noise, model, epochs, record, seed, version).
    runner_up : ndarray of shape (N, T), int32, optional
        The class of the largest logit other than the given label (the class the
        margin is measured against; the predicted class wherever the margin is
        negative). Recorded together with ``margins``.
    """

    probs: np.ndarray
    labels: np.ndarray
    is_flipped: np.ndarray | None = None
    margins: np.ndarray | None = None
    full: np.ndarray | None = None
    meta: dict = field(default_factory=dict)
    runner_up: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.probs = _as_probs(self.probs)
        N, T = self.probs.shape
        self.labels = as_int_labels(self.labels, "labels")
        if len(self.labels) != N:
            raise ValueError(f"labels has {len(self.labels)} entries but probs has {N} rows; they must match")
        if self.is_flipped is not None:
            f = np.asarray(self.is_flipped.cpu() if isinstance(self.is_flipped, torch.Tensor) else self.is_flipped)
            if f.shape != (N,):
                raise ValueError(f"is_flipped must have shape ({N},), got {f.shape}")
            if f.dtype != bool:
                if not np.isin(f, (0, 1)).all():
                    raise ValueError("is_flipped must be boolean (or 0/1)")
                f = f.astype(bool)
            self.is_flipped = f
        if self.margins is not None:
            m = self.margins.detach().cpu().numpy() if isinstance(self.margins, torch.Tensor) else self.margins
            m = np.asarray(m)
            if m.dtype.kind != "f":
                raise ValueError(f"margins must be floating point (logit differences), got dtype {m.dtype}; "
                                 "convert them with margins.astype(np.float32)")
            m = m.astype(np.float32, copy=False)
            if m.shape != (N, T):
                raise ValueError(f"margins must have shape {(N, T)}, got {m.shape}")
            if not np.all(np.isfinite(m)):
                raise ValueError("margins contain NaN or inf")
            self.margins = m
        if self.full is not None:
            fu = np.asanyarray(self.full)  # keeps a np.memmap (see DynamicsRecorder(full_path=...))
            if fu.ndim != 3 or fu.shape[:2] != (N, T):
                raise ValueError(f"full must have shape ({N}, {T}, C), got {fu.shape}")
            self.full = fu
        if not isinstance(self.meta, dict):
            raise ValueError(f"meta must be a dict, got {type(self.meta).__name__}")
        if self.runner_up is not None:
            r = np.asarray(self.runner_up.cpu() if isinstance(self.runner_up, torch.Tensor) else self.runner_up)
            if r.shape != (N, T):
                raise ValueError(f"runner_up must have shape {(N, T)}, got {r.shape}")
            if r.dtype.kind not in "iu":
                raise ValueError(f"runner_up must hold integer class indices, got dtype {r.dtype}")
            if r.size and r.min() < 0:
                raise ValueError("runner_up holds negative class indices; they must be in [0, C)")
            if self.full is not None and r.size and r.max() >= self.full.shape[2]:
                raise ValueError(f"runner_up holds class {int(r.max())} but full has {self.full.shape[2]} classes")
            self.runner_up = r.astype(np.int32, copy=False)

    @property
    def num_samples(self) -> int:
        return int(self.probs.shape[0])

    @property
    def num_epochs(self) -> int:
        return int(self.probs.shape[1])

    def __len__(self) -> int:
        return self.num_samples

    def subset(self, index) -> "Dynamics":
        """Rows ``index`` as a new :class:`Dynamics`.

        Parameters
        ----------
        index : array-like of shape (N,), bool, or of shape (K,), int
            A boolean mask over all N samples, or the indices of the samples
            to keep (in ``[-N, N)``; repeats allowed). Must select at least one sample.

        Raises
        ------
        ValueError
            If the mask has the wrong length, an index is out of range, the
            index is neither boolean nor integer, or it selects no sample.
        """
        idx = _row_index(index, self.num_samples)
        take = lambda a: None if a is None else a[idx]  # noqa: E731
        return Dynamics(self.probs[idx], self.labels[idx], take(self.is_flipped), take(self.margins),
                        take(self.full), dict(self.meta), take(self.runner_up))

    def first_epochs(self, epochs: int) -> "Dynamics":
        """The first ``epochs`` epochs of the run as a new :class:`Dynamics` (all samples).

        Parameters
        ----------
        epochs : int
            In ``1 .. num_epochs``.
        """
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or not 1 <= epochs <= self.num_epochs:
            raise ValueError(f"epochs must be an integer in [1, {self.num_epochs}], got {epochs!r}")
        cut = lambda a: None if a is None else a[:, :epochs]  # noqa: E731
        return Dynamics(self.probs[:, :epochs], self.labels, self.is_flipped, cut(self.margins), cut(self.full),
                        dict(self.meta), cut(self.runner_up))

    def save(self, path) -> Path:
        """Write a versioned ``.npz`` atomically (a failed write leaves nothing behind).

        When ``full`` is the memory map of a ``.npy`` written by
        ``DynamicsRecorder(full_path=...)``, the file stores a reference to that
        ``.npy`` plus a fingerprint of its contents (``full_fingerprint``), so
        that :meth:`load` notices if the ``.npy`` is later replaced by another
        run. If the ``.npy`` at that path was already replaced, ``full`` is
        stored inline instead (with a warning).

        Parameters
        ----------
        path : str or Path
            Destination ``.npz``.

        Returns
        -------
        Path

        Raises
        ------
        ValueError
            If ``path`` is a folder, or a folder above it is a file (nothing is written).
        TypeError
            If ``meta`` holds a value that cannot be stored as JSON (the message names its key).
        """
        return write_npz(self, path)

    @classmethod
    def load(cls, path) -> "Dynamics":
        """Read and validate a file written by :meth:`save`.

        Parameters
        ----------
        path : str or Path

        Returns
        -------
        Dynamics
            ``full`` is a read-only memory map when the file refers to a ``.npy``
            (``full_file``).

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        ValueError
            If ``path`` is a folder, the file is not a mislabel dynamics file
            (or not a readable one, e.g. zipped with a compression method this
            Python lacks), has an unsupported version, or holds arrays of the
            wrong shape, dtype or range.

        Warns
        -----
        UserWarning
            If the referenced ``.npy`` of full probabilities is missing or was
            replaced by another run since :meth:`save`; ``full`` is then None.
        """
        return load_npz(path, cls)


def _as_probs(probs) -> np.ndarray:
    """``probs`` as an (N, T) float32 array of probabilities; ValueError if it is not one."""
    if isinstance(probs, torch.Tensor):
        probs = probs.detach().cpu().numpy()
    p = np.asarray(probs)
    if p.ndim != 2:
        raise ValueError(f"probs must be 2-D of shape (N, T), got shape {p.shape}")
    if p.shape[0] == 0 or p.shape[1] == 0:
        raise ValueError(f"probs is empty (shape {p.shape}): need at least one sample and one epoch")
    if p.dtype.kind != "f":
        raise ValueError(f"probs must be floating point (probabilities in [0, 1]), got dtype {p.dtype}; "
                         "convert them with probs.astype(np.float32)")
    p = p.astype(np.float32, copy=False)
    if not np.all(np.isfinite(p)):
        raise ValueError("probs contain NaN or inf; interpolate missing epochs first (interpolate_missing)")
    if p.min() < 0 or p.max() > 1:
        raise ValueError(f"probs must be probabilities in [0, 1], got values in [{p.min():.3g}, {p.max():.3g}]")
    return p


def _row_index(index, n: int) -> np.ndarray:
    """Validate ``index`` (bool mask of shape (n,) or integer indices in [-n, n)) for row selection."""
    if isinstance(index, torch.Tensor):
        index = index.detach().cpu().numpy()
    idx = np.asarray(index)
    if idx.dtype == bool:
        if idx.shape != (n,):
            raise ValueError(f"a boolean mask must have shape ({n},), one entry per sample; got shape {idx.shape}")
        if not idx.any():
            raise ValueError("the boolean mask selects no sample; select at least one")
        return idx
    if idx.size == 0:
        raise ValueError("index selects no sample; pass at least one index (or a boolean mask of length "
                         f"{n})")
    if idx.dtype.kind not in "iu":
        raise ValueError(f"index must be a boolean mask of shape ({n},) or integer sample indices, "
                         f"got dtype {idx.dtype}")
    if idx.ndim != 1:
        raise ValueError(f"integer indices must be 1-D, got shape {idx.shape}")
    bad = (idx < -n) | (idx >= n)
    if bad.any():
        raise ValueError(f"index {int(idx[bad][0])} is out of range for {n} samples; indices must be in [-{n}, {n})")
    return idx
