"""Training dynamics: each sample's given-label probability at every epoch.

Two pieces:

* :class:`DynamicsRecorder` — drop it into any training loop and call
  ``update(logits, labels, sample_ids)`` per batch and ``next_epoch()`` per
  epoch. It writes into preallocated tensors on the logits' device (no
  per-sample Python, no host synchronisation unless ``check=True``).
* :class:`Dynamics` — the result: ``probs`` (N, T) float32 plus labels,
  optional ground-truth flips, optional AUM margins with the runner-up class,
  optional full class probabilities, and metadata. ``save``/``load`` use a
  versioned ``.npz``.

File format (``FORMAT_VERSION = 1``), arrays in one uncompressed ``.npz``:

=================  =============  ==========================================
key                shape, dtype   meaning
=================  =============  ==========================================
``format``         (), str        always ``"mislabel-dynamics"``
``format_version`` (), int64      1
``probs``          (N, T) f32     softmax probability of the given label
``labels``         (N,) int64     the given (possibly noisy) labels
``is_flipped``     (N,) bool      optional ground truth
``margins``        (N, T) f32     optional: given-label logit minus largest other logit
``runner_up``      (N, T) i32     optional: the class of that largest other logit
                                  (files written before 0.2 lack it; still readable)
``full``           (N, T, C) f16  optional: all class probabilities
``full_file``      (), str        optional, instead of ``full``: path (relative to
                                  the ``.npz``) of a (T, N, C) float16 ``.npy``
                                  holding them, opened memory-mapped on load
``meta``           (), str        JSON object (dataset, noise, model, epochs, ...)
=================  =============  ==========================================
"""
from __future__ import annotations

import json
import os
import struct
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ._utils import as_int_labels, atomic_path

FORMAT = "mislabel-dynamics"
FORMAT_VERSION = 1


def interpolate_missing(values: np.ndarray, method: str = "linear") -> np.ndarray:
    """Fill NaNs in each row by interpolation along the epoch axis.

    Each sample (row) is filled from its own observed epochs only; leading and
    trailing gaps take the nearest observed value. Trailing axes (e.g. classes)
    are interpolated independently and never mixed.

    Parameters
    ----------
    values : ndarray of shape (N, T) or (N, T, C), float
        NaN marks a missing observation.
    method : {"linear", "previous"}
        "linear" blends the observations on either side of a gap; "previous"
        repeats the last observation before it (for values that must stay one of
        the observed ones, such as class indices).

    Returns
    -------
    ndarray, same shape and dtype
        Rows with no observation at all stay NaN.
    """
    if method not in ("linear", "previous"):
        raise ValueError(f"method must be 'linear' or 'previous', got {method!r}")
    v = np.asarray(values)
    if v.ndim < 2:
        raise ValueError(f"expected (N, T[, C]) values, got shape {v.shape}")
    missing = np.isnan(v)
    if not missing.any():
        return v.copy()
    N, T = v.shape[:2]
    t = np.arange(T).reshape((1, T) + (1,) * (v.ndim - 2))
    t = np.broadcast_to(t, v.shape)
    obs = ~missing
    # index of the previous / next observed epoch for every cell
    prev_idx = np.where(obs, t, -1)
    prev_idx = np.maximum.accumulate(prev_idx, axis=1)
    next_idx = np.where(obs, t, T)
    next_idx = np.flip(np.minimum.accumulate(np.flip(next_idx, axis=1), axis=1), axis=1)
    has_prev, has_next = prev_idx >= 0, next_idx < T
    p = np.clip(prev_idx, 0, T - 1)
    n = np.clip(next_idx, 0, T - 1)
    vp = np.take_along_axis(v, p, axis=1)
    vn = np.take_along_axis(v, n, axis=1)
    if method == "previous":
        return np.where(missing, np.where(has_prev, vp, vn), v).astype(v.dtype, copy=False)
    span = np.where(has_prev & has_next, n - p, 1)
    w = np.where(has_prev & has_next, (t - p) / np.maximum(span, 1), 0.0)
    filled = np.where(has_prev & has_next, vp + w * (vn - vp), np.where(has_prev, vp, vn))
    out = np.where(missing, filled, v).astype(v.dtype, copy=False)
    return out


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
            m = np.asarray(self.margins, dtype=np.float32)
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
        """Rows ``index`` (bool mask or integer indices) as a new :class:`Dynamics`."""
        idx = np.asarray(index)
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
        """Write a versioned ``.npz`` atomically (a failed write leaves nothing behind)."""
        path = Path(path)
        arrays = {"format": np.array(FORMAT), "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
                  "probs": self.probs, "labels": self.labels, "meta": np.array(json.dumps(self.meta))}
        for key in ("is_flipped", "margins", "runner_up", "full"):
            if getattr(self, key) is not None:
                arrays[key] = getattr(self, key)
        backing = _backing_npy(self.full)
        if backing is not None:  # memory-mapped: reference the .npy instead of copying it
            del arrays["full"]
            try:
                arrays["full_file"] = np.array(os.path.relpath(backing, path.parent.resolve()))
            except ValueError:  # another drive (Windows)
                arrays["full_file"] = np.array(str(backing))
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
        return path

    @classmethod
    def load(cls, path) -> "Dynamics":
        """Read and validate a file written by :meth:`save`.

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        ValueError
            If the file is not a mislabel dynamics file, has an unsupported
            version, or holds arrays of the wrong shape, dtype or range.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no dynamics file at {path}; create one with `python -m mislabel capture` or Dynamics.save")
        try:
            with np.load(path, allow_pickle=False) as z:
                content = {k: z[k] for k in z.files}
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
            raise ValueError(f"{path} is not a readable .npz file ({exc}); re-create it with Dynamics.save") from None
        if content.get("format") is None or str(content["format"]) != FORMAT:
            raise ValueError(f"{path} is not a mislabel dynamics file (missing format tag {FORMAT!r})")
        version = int(content.get("format_version", -1))
        if version != FORMAT_VERSION:
            raise ValueError(f"{path} has dynamics format version {version}; this library reads version {FORMAT_VERSION}")
        for key in ("probs", "labels"):
            if key not in content:
                raise ValueError(f"{path} lacks the required array {key!r}")
        try:
            meta = json.loads(str(content.get("meta", "{}")))
        except json.JSONDecodeError:
            raise ValueError(f"{path} has unreadable metadata (meta is not JSON)") from None
        full = content.get("full")
        if full is None and "full_file" in content:
            full = _open_full_npy(path, str(content["full_file"]))
        try:
            return cls(content["probs"], content["labels"], content.get("is_flipped"), content.get("margins"),
                       full, meta, content.get("runner_up"))
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None


def _backing_npy(full) -> Path | None:
    """The .npy file when ``full`` is the (N, T, C) transposed view of a whole (T, N, C) memmap."""
    base = getattr(full, "base", None)
    if not (isinstance(full, np.memmap) and isinstance(base, np.memmap) and getattr(base, "filename", None)):
        return None
    if (base.ndim != 3 or full.shape != (base.shape[1], base.shape[0], base.shape[2]) or not base.flags.c_contiguous
            or full.strides != (base.strides[1], base.strides[0], base.strides[2])
            or full.__array_interface__["data"][0] != base.__array_interface__["data"][0]):
        return None
    return Path(base.filename).resolve()


def _open_full_npy(npz_path: Path, name: str):
    """Open the (T, N, C) .npy referenced by ``full_file`` read-only as an (N, T, C) view; None if missing."""
    f = Path(name) if os.path.isabs(name) else npz_path.parent / name
    if not f.is_file():
        warnings.warn(f"{npz_path}: full class probabilities are stored in {f}, which is missing; "
                      "loading without them (full=None)", stacklevel=3)
        return None
    try:
        mm = np.load(f, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ValueError(f"{npz_path}: cannot read its full-probabilities file {f} ({exc})") from None
    if mm.ndim != 3:
        raise ValueError(f"{f} must hold a (T, N, C) array, got shape {mm.shape}")
    return mm.transpose(1, 0, 2)


class _NpyAppender:
    """A float16 ``.npy`` of shape (T, N, C) that grows by one (N, C) epoch at a time.

    The header is rewritten after every epoch, so the file is a valid ``.npy``
    (``np.load(path, mmap_mode="r")``) at any time; its length is reserved
    once so the data never move. Only one epoch is ever held in memory.
    """

    def __init__(self, path, num_samples: int, num_classes: int) -> None:
        self.path = Path(path)
        self.tail = (int(num_samples), int(num_classes))
        self.epochs = 0
        self.has_nan = False
        self._hlen = -(-(len(self._dict(10 ** 15)) + 11) // 64) * 64
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "wb") as fh:
            fh.write(self._header())

    def _dict(self, epochs: int) -> bytes:
        return repr({"descr": "<f2", "fortran_order": False, "shape": (epochs,) + self.tail}).encode("latin1")

    def _header(self) -> bytes:
        body = self._dict(self.epochs).ljust(self._hlen - 11) + b"\n"
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body

    def append(self, epoch: np.ndarray) -> None:
        epoch = np.ascontiguousarray(epoch, dtype="<f2")
        if epoch.shape != self.tail:
            raise ValueError(f"epoch must have shape {self.tail}, got {epoch.shape}")
        self.has_nan |= bool(np.isnan(epoch).any())
        with open(self.path, "r+b") as fh:
            fh.seek(self._hlen + self.epochs * epoch.nbytes)
            fh.write(epoch.data)
            self.epochs += 1
            fh.seek(0)
            fh.write(self._header())

    def open(self, mode: str = "r") -> np.memmap:
        return np.load(self.path, mmap_mode=mode, allow_pickle=False)

    def interpolate(self, chunk_bytes: int = 1 << 26) -> None:
        """Fill NaNs in place, per sample along epochs, a block of samples at a time."""
        if not self.has_nan:
            return
        mm = self.open("r+")
        T, N, C = mm.shape
        step = max(1, chunk_bytes // max(1, T * C * 4))
        for s in range(0, N, step):
            block = np.asarray(mm[:, s:s + step], dtype=np.float32).transpose(1, 0, 2)
            if np.isnan(block).any():
                mm[:, s:s + step] = interpolate_missing(block).transpose(1, 0, 2).astype(np.float16)
        mm.flush()
        del mm
        self.has_nan = False


def _as_probs(probs) -> np.ndarray:
    if isinstance(probs, torch.Tensor):
        probs = probs.detach().cpu().numpy()
    p = np.asarray(probs)
    if p.ndim != 2:
        raise ValueError(f"probs must be 2-D of shape (N, T), got shape {p.shape}")
    if p.shape[0] == 0 or p.shape[1] == 0:
        raise ValueError(f"probs is empty (shape {p.shape}): need at least one sample and one epoch")
    if p.dtype.kind not in "fiu":
        raise ValueError(f"probs must be floating point, got dtype {p.dtype}")
    p = p.astype(np.float32, copy=False)
    if not np.all(np.isfinite(p)):
        raise ValueError("probs contain NaN or inf; interpolate missing epochs first (interpolate_missing)")
    if p.min() < 0 or p.max() > 1:
        raise ValueError(f"probs must be probabilities in [0, 1], got values in [{p.min():.3g}, {p.max():.3g}]")
    return p


class DynamicsRecorder:
    """Record given-label probabilities from any training loop.

    Parameters
    ----------
    num_samples : int
        Size N of the training set; ``sample_ids`` index into ``range(N)``.
    num_classes : int, optional
        Needed only with ``store_full=True`` (otherwise inferred per batch).
    store_full : bool
        Also keep all class probabilities (N, T, C) as float16.
    full_path : str or Path, optional
        Stream the full class probabilities to this ``.npy`` instead of keeping
        them in memory (implies ``store_full``; needs ``num_classes``). Only the
        current epoch is buffered (N x C float16, on ``device``); each
        ``next_epoch()`` appends it to the file, laid out (T, N, C) so an epoch
        is one contiguous write. ``result().full`` is then a read-only
        memory-mapped (N, T, C) view of the file, and ``Dynamics.save`` stores
        a reference to the file instead of a copy.
    margins : bool
        Also keep the AUM margin (given-label logit minus largest other logit)
        and the class of that largest other logit (``Dynamics.runner_up``, read
        by the shipped detector and any with the "pairs" channels).
    device : str or torch.device, optional
        Where the buffers live; default: the device of the first logits seen.
    check : bool
        Validate every batch (shapes, label and id ranges). Costs a host sync
        per batch on GPU; the built-in training loop turns it off.
    defer : bool, optional
        Keep references to the epoch's batches and compute probabilities,
        margins and full probabilities once per epoch in ``next_epoch()``, so
        that ``update`` only appends to a list (about a microsecond, no kernel
        launch on GPU). The tensors passed to ``update`` must then not be
        modified in place before ``next_epoch()`` (checked: an error says so).
        Same values either way (to float32 rounding). Default (None): defer
        when N x C <= 2**26 (at most 256 MiB of logits held per epoch).

    Examples
    --------
    >>> rec = DynamicsRecorder(num_samples=len(train_set))
    >>> for epoch in range(epochs):
    ...     for x, y, idx in loader:
    ...         logits = model(x)
    ...         rec.update(logits, y, idx)
    ...         ...
    ...     rec.next_epoch()
    >>> dyn = rec.result()       # Dynamics with probs of shape (N, epochs)
    """

    def __init__(self, num_samples: int, num_classes: int | None = None, store_full: bool = False,
                 margins: bool = True, device=None, check: bool = True, capacity: int = 16,
                 full_path=None, defer: bool | None = None) -> None:
        if not isinstance(num_samples, (int, np.integer)) or num_samples <= 0:
            raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
        store_full = bool(store_full or full_path is not None)
        if store_full and not num_classes:
            raise ValueError("store_full=True needs num_classes")
        self.num_samples = int(num_samples)
        self.num_classes = num_classes
        self.store_full = store_full
        self.keep_margins = margins
        self.check = check
        self._device = torch.device(device) if device is not None else None
        self._capacity = max(int(capacity), 1)
        self._epochs = 0            # closed epochs
        self._touched = False       # current epoch received data
        self._buf = self._mbuf = self._rbuf = self._fbuf = None   # probs, margins, runner-up class, full
        self.full_path = None if full_path is None else Path(full_path)
        self._full_file = None      # _NpyAppender when streaming full probabilities to disk
        self._defer = defer
        self._pending = None        # deferred mode: this epoch's batches [(logits, labels, ids, versions)]
        self._zbuf = None           # deferred mode: the epoch's logits, concatenated (reused across epochs)

    # -- buffers -----------------------------------------------------------
    def _alloc(self, device: torch.device, num_classes: int) -> None:
        self._device = device
        nan = float("nan")
        self._buf = torch.full((self._capacity, self.num_samples), nan, dtype=torch.float32, device=device)
        self._labels = torch.full((self.num_samples,), -1, dtype=torch.int64, device=device)
        if self.keep_margins:
            self._mbuf = torch.full_like(self._buf, nan)
            self._rbuf = torch.full_like(self._buf, nan)   # class indices as float32 (exact below 2**24)
        if self.store_full:
            slots = 1 if self.full_path is not None else self._capacity  # on disk: current epoch only
            self._fbuf = torch.full((slots, self.num_samples, num_classes), nan,
                                    dtype=torch.float16, device=device)
            if self.full_path is not None:
                self._full_file = _NpyAppender(self.full_path, self.num_samples, num_classes)
        if self._defer is None:
            self._defer = self.num_samples * num_classes <= 2 ** 26
        if self._defer:
            self._pending = []

    def _grow(self) -> None:
        def grow(b):
            if b is None:
                return None
            extra = torch.full_like(b, float("nan"))
            return torch.cat([b, extra], 0)
        self._buf, self._mbuf, self._rbuf = grow(self._buf), grow(self._mbuf), grow(self._rbuf)
        if self._full_file is None:
            self._fbuf = grow(self._fbuf)
        self._capacity *= 2

    # -- public API --------------------------------------------------------
    def update(self, logits: torch.Tensor, labels: torch.Tensor, sample_ids: torch.Tensor) -> None:
        """Record one batch.

        Parameters
        ----------
        logits : Tensor of shape (B, C), float
            Raw model outputs (before softmax). Gradients are ignored.
        labels : Tensor of shape (B,), int64
            The labels used for training (the given labels).
        sample_ids : Tensor of shape (B,), int64
            Index of each row in the training set, in ``[0, num_samples)``.
            A sample seen twice in one epoch keeps its last value.
        """
        if not isinstance(logits, torch.Tensor):
            logits = torch.as_tensor(logits)
        if not isinstance(labels, torch.Tensor):
            labels = torch.as_tensor(labels)
        if not isinstance(sample_ids, torch.Tensor):
            sample_ids = torch.as_tensor(sample_ids)
        if self.check:
            self._validate(logits, labels, sample_ids)
        if self._buf is None:
            self._alloc(self._device or logits.device, logits.shape[1])
        if self._pending is not None:   # deferred: the rest happens once per epoch, in next_epoch()
            self._pending.append((logits.detach(), labels, sample_ids,
                                  (logits._version, labels._version, sample_ids._version)))
            self._touched = True
            return
        dev = self._buf.device
        logits = logits.detach()
        if logits.device != dev or logits.dtype != torch.float32:
            logits = logits.to(dev, torch.float32)
        if labels.device != dev or labels.dtype != torch.int64:
            labels = labels.to(dev, torch.int64)
        if sample_ids.device != dev or sample_ids.dtype != torch.int64:
            sample_ids = sample_ids.to(dev, torch.int64)
        if self._epochs >= self._capacity:
            self._grow()
        t = self._epochs
        with torch.no_grad():
            given, margin, runner, full = self._values(logits.t().contiguous(), labels)
            self._buf[t].index_copy_(0, sample_ids, given)
            if margin is not None:
                self._mbuf[t].index_copy_(0, sample_ids, margin)
                self._rbuf[t].index_copy_(0, sample_ids, runner)
            if full is not None:
                self._fbuf[0 if self._full_file is not None else t].index_copy_(0, sample_ids, full)
            self._labels.index_copy_(0, sample_ids, labels)
        self._touched = True

    def _values(self, zt, labels):
        """(given-label probability, margin or None, runner-up class (as float32) or None,
        float16 class probabilities (B, C) or None).

        ``zt`` holds the logits transposed, (C, B), contiguous, and is overwritten: the
        reductions over classes then run along the outer axis, vectorised across samples
        (several times faster than along rows of C = 10), with no further large temporaries.
        """
        lab = labels[None, :]
        zy = zt.gather(0, lab)               # (1, B) given-label logits
        m = zt.amax(0)
        margin = runner = full = None
        if self._mbuf is not None:
            zt.scatter_(0, lab, float("-inf"))
            top, idx = zt.max(0)
            margin = (zy - top).squeeze(0)
            runner = idx.to(torch.float32)
            zt.scatter_(0, lab, zy)
        e = zt.sub_(m).exp_()                # a NaN column (unseen sample) stays NaN
        s = e.sum(0)
        given = e.gather(0, lab).squeeze(0).div_(s)
        if self._fbuf is not None:
            full = e.div_(s).t().to(torch.float16)
        return given, margin, runner, full

    @torch.no_grad()
    def _flush_deferred(self) -> None:
        """Deferred mode: turn the epoch's batches into recorded values (unseen samples stay NaN)."""
        pending, self._pending = self._pending, []
        for k, (lg, y, ids, ver) in enumerate(pending):
            if (lg._version, y._version, ids._version) != ver:
                raise RuntimeError(
                    f"a tensor passed to update() (batch {k} of this epoch) was modified in place before "
                    "next_epoch(); pass fresh tensors (e.g. logits.clone()) or build the recorder with defer=False")
        if self._epochs >= self._capacity:
            self._grow()
        t, dev = self._epochs, self._buf.device
        M = sum(len(p[2]) for p in pending)
        if self._zbuf is None or self._zbuf.shape[0] < M or self._zbuf.device != dev:
            self._zbuf = torch.empty((M, pending[0][0].shape[1]), dtype=torch.float32, device=dev)
        z = torch.cat([p[0].to(dev, torch.float32) for p in pending], out=self._zbuf[:M])  # reused: no page faults
        y = torch.cat([p[1].to(dev, torch.int64) for p in pending])
        ids = torch.cat([p[2].to(dev, torch.int64) for p in pending])
        del pending
        # values are computed in batch order, in blocks of ~2**18 logits (1 MiB; temporaries stay in cache on
        # CPU, few launches on GPU), then put in sample order; the last occurrence of a sample in the epoch wins
        # (deterministic, unlike index_copy_ with duplicate indices)
        step = max(1024, (1 << 18) // z.shape[1]) if dev.type == "cpu" else 1 << 20
        parts = [self._values(z[a:a + step].t().contiguous(), y[a:a + step]) for a in range(0, M, step)]
        values = [torch.cat(v) if v[0] is not None else None for v in zip(*parts)]   # given, margin, runner, full
        last = torch.full((self.num_samples,), -1, dtype=torch.int64, device=dev)
        last.scatter_reduce_(0, ids, torch.arange(M, device=dev), reduce="amax")
        if bool((last >= 0).all()):          # every sample seen (the usual case): rows of the epoch, in sample order
            samples, rows = None, last
        else:
            samples = (last >= 0).nonzero().squeeze(1)
            rows = last.index_select(0, samples)
        slot = 0 if self._full_file is not None else t
        targets = (self._buf[t], self._mbuf[t] if self._mbuf is not None else None,
                   self._rbuf[t] if self._rbuf is not None else None,
                   self._fbuf[slot] if self._fbuf is not None else None, self._labels)
        for buf, v in zip(targets, values + [y]):
            if buf is None or v is None:
                continue
            v = v.index_select(0, rows)      # index_select: far faster than v[rows] on CPU
            if samples is None:
                buf.copy_(v)
            else:
                buf.index_copy_(0, samples, v)

    def _validate(self, logits, labels, sample_ids) -> None:
        if logits.ndim != 2:
            raise ValueError(f"logits must be 2-D (B, C), got shape {tuple(logits.shape)}")
        B, C = logits.shape
        if C < 2:
            raise ValueError(f"logits need at least 2 classes, got C={C}")
        if labels.shape != (B,) or sample_ids.shape != (B,):
            raise ValueError(f"labels and sample_ids must have shape ({B},) to match logits; got "
                             f"{tuple(labels.shape)} and {tuple(sample_ids.shape)}")
        if labels.dtype.is_floating_point or sample_ids.dtype.is_floating_point:
            raise ValueError("labels and sample_ids must be integer tensors")
        if B == 0:
            return
        if not torch.isfinite(logits).all():
            raise ValueError("logits contain NaN or inf (the model diverged?); lower the learning rate")
        if labels.min() < 0 or labels.max() >= C:
            raise ValueError(f"labels must be in [0, {C}) for logits with {C} classes, got range "
                             f"[{int(labels.min())}, {int(labels.max())}]")
        if sample_ids.min() < 0 or sample_ids.max() >= self.num_samples:
            raise ValueError(f"sample_ids must be in [0, {self.num_samples}), got range "
                             f"[{int(sample_ids.min())}, {int(sample_ids.max())}]")
        if self.num_classes and C != self.num_classes:
            raise ValueError(f"logits have {C} classes but the recorder was built with num_classes={self.num_classes}")
        if self._fbuf is not None and C != self._fbuf.shape[2]:
            raise ValueError(f"logits have {C} classes, earlier batches had {self._fbuf.shape[2]}")

    def next_epoch(self) -> None:
        """Close the current epoch. An epoch with no update at all is an error."""
        if not self._touched:
            raise RuntimeError("next_epoch() called with no update() since the last epoch; call update() per batch first")
        if self._pending is not None:
            self._flush_deferred()
        if self._full_file is not None:
            self._full_file.append(self._fbuf[0].cpu().numpy())
            self._fbuf[0].fill_(float("nan"))
        self._epochs += 1
        self._touched = False

    @property
    def num_epochs(self) -> int:
        """Number of closed epochs."""
        return self._epochs

    def result(self, labels=None, is_flipped=None, meta: dict | None = None) -> Dynamics:
        """Return the recorded :class:`Dynamics` (an open epoch with data is closed first).

        Samples missing in some epochs are filled by per-sample linear
        interpolation along epochs (:func:`interpolate_missing`).

        Parameters
        ----------
        labels : array-like of shape (N,), int, optional
            The given label of every sample. Default: the label last passed to
            ``update`` for each sample.
        is_flipped : array-like of shape (N,), bool, optional
        meta : dict, optional
        """
        if self._touched:
            self.next_epoch()
        if self._epochs == 0:
            raise RuntimeError("nothing recorded: call update() and next_epoch() during training first")
        T = self._epochs
        probs = self._buf[:T].T.cpu().numpy()
        never = np.isnan(probs).all(axis=1)
        if never.any():
            ids = np.nonzero(never)[0]
            raise ValueError(f"{len(ids)} samples were never recorded (e.g. ids {ids[:5].tolist()}); "
                             "every sample id in [0, num_samples) must appear in at least one update()")
        probs = interpolate_missing(probs)
        margins = interpolate_missing(self._mbuf[:T].T.cpu().numpy()) if self._mbuf is not None else None
        runner_up = None
        if self._rbuf is not None:
            runner_up = interpolate_missing(self._rbuf[:T].T.cpu().numpy(), method="previous").astype(np.int32)
        full = None
        if self._full_file is not None:
            self._full_file.interpolate()
            full = self._full_file.open("r").transpose(1, 0, 2)  # (N, T, C) view, nothing loaded
        elif self._fbuf is not None:
            full = interpolate_missing(self._fbuf[:T].transpose(0, 1).float().cpu().numpy()).astype(np.float16)
        if labels is None:
            labels = self._labels.cpu().numpy()
        meta = dict(meta or {})
        meta.setdefault("epochs", T)
        from . import __version__
        meta.setdefault("library_version", __version__)
        return Dynamics(np.clip(probs, 0.0, 1.0), labels, is_flipped, margins, full, meta, runner_up)
