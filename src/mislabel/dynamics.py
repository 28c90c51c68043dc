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

======================  =============  ==========================================
key                     shape, dtype   meaning
======================  =============  ==========================================
``format``              (), str        always ``"mislabel-dynamics"``
``format_version``      (), int64      1
``probs``               (N, T) f32     softmax probability of the given label
``labels``              (N,) int64     the given (possibly noisy) labels
``is_flipped``          (N,) bool      optional ground truth
``margins``             (N, T) f32     optional: given-label logit minus largest other logit
``runner_up``           (N, T) i32     optional: the class of that largest other logit
                                       (files written before 0.2 lack it; still readable)
``full``                (N, T, C) f16  optional: all class probabilities
``full_file``           (), str        optional, instead of ``full``: path (relative to
                                       the ``.npz``) of a (T, N, C) float16 ``.npy``
                                       holding them, opened memory-mapped on load
``full_fingerprint``    (), str        optional, with ``full_file``: its data size in bytes
                                       and a hash of 64 evenly spaced 4 KiB pieces; a file
                                       that no longer matches (replaced by another run) is
                                       not loaded (warning, ``full=None``). Older files
                                       lack it and load unchecked
``meta``                (), str        JSON object (dataset, noise, model, epochs, ...)
======================  =============  ==========================================
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import struct
import tempfile
import warnings
import weakref
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ._utils import as_int_labels, atomic_path, check_output_file, check_positive_int, jsonable

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
        path = check_output_file(path, "dynamics.npz")
        meta_json = json.dumps(jsonable(self.meta, "meta"))
        arrays = {"format": np.array(FORMAT), "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
                  "probs": self.probs, "labels": self.labels, "meta": np.array(meta_json)}
        for key in ("is_flipped", "margins", "runner_up", "full"):
            if getattr(self, key) is not None:
                arrays[key] = getattr(self, key)
        backing = _backing_npy(self.full)
        if backing is not None:  # memory-mapped: reference the .npy instead of copying it
            fingerprint = _full_fingerprint(self.full.base)
            if _file_fingerprint(backing) == fingerprint:
                del arrays["full"]
                arrays["full_fingerprint"] = np.array(fingerprint)
                try:
                    arrays["full_file"] = np.array(os.path.relpath(backing, path.parent.resolve()))
                except ValueError:  # another drive (Windows)
                    arrays["full_file"] = np.array(str(backing))
            else:
                warnings.warn(f"the full class probabilities of these dynamics were recorded in {backing}, which "
                              "has since been replaced or removed (another run with the same full_path?); "
                              f"storing them inside {path} instead", stacklevel=2)
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
            If ``path`` is a folder, the file is not a mislabel dynamics file
            (or not a readable one, e.g. zipped with a compression method this
            Python lacks), has an unsupported version, or holds arrays of the
            wrong shape, dtype or range.
        """
        path = Path(path)
        if path.is_dir():
            inside = path / "dynamics.npz"
            hint = (f"did you mean {inside}? (`python -m mislabel capture --out {path}` writes it there)"
                    if inside.is_file() else
                    "give the path of a .npz written by Dynamics.save, or the dynamics.npz inside the folder "
                    "that `python -m mislabel capture --out` wrote")
            raise ValueError(f"{path} is a folder, not a dynamics file; {hint}")
        if not path.is_file():
            raise FileNotFoundError(f"no dynamics file at {path}; create one with `python -m mislabel capture` or Dynamics.save")
        expected = ("Dynamics.load expects a .npz written by Dynamics.save (e.g. DynamicsRecorder(...).result()"
                    ".save(path)) or `python -m mislabel capture`")
        try:
            with open(path, "rb") as fh:
                head = fh.read(8)
        except OSError as exc:
            raise ValueError(f"cannot read {path} ({exc})") from None
        if head.startswith(b"\x93NUMPY"):
            raise ValueError(f"{path} is a single-array .npy file, not a dynamics file; {expected}. (A (T, N, C) "
                             ".npy written with DynamicsRecorder(full_path=...) is read through the .npz that "
                             "refers to it.)")
        if not head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
            raise ValueError(f"{path} is not a .npz (zip) file (it starts with {head!r}; a text or CSV file?); "
                             f"{expected}")
        try:
            with np.load(path, allow_pickle=False) as z:
                content = {k: z[k] for k in z.files}
        except ValueError as exc:
            if "pickle" in str(exc):   # numpy's message would advise allow_pickle=True: never needed here
                raise ValueError(f"{path} holds Python objects (pickled arrays), which a dynamics file never "
                                 f"does; {expected}") from None
            raise ValueError(f"{path} is not a readable .npz file ({exc}); re-create it with Dynamics.save") from None
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise ValueError(f"{path} is not a readable .npz file ({exc}); re-create it with Dynamics.save") from None
        except NotImplementedError as exc:   # zipfile: a compression method it cannot decompress
            raise ValueError(f"{path} is not a readable .npz file ({exc}: its arrays are zipped with a compression "
                             "method this Python cannot read); re-create it with Dynamics.save, which writes them "
                             "uncompressed") from None
        if content.get("format") is None or str(content["format"]) != FORMAT:
            raise ValueError(f"{path} is not a mislabel dynamics file (missing format tag {FORMAT!r})")
        version = _format_version(content.get("format_version"), path)
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
            fingerprint = content.get("full_fingerprint")   # absent in files written before it existed
            full = _open_full_npy(path, str(content["full_file"]), None if fingerprint is None else str(fingerprint))
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


def _open_full_npy(npz_path: Path, name: str, fingerprint: str | None = None):
    """Open the (T, N, C) .npy referenced by ``full_file`` read-only as an (N, T, C) view.

    None (with a warning) if the file is missing, or if ``fingerprint`` is given and the file no
    longer matches it (replaced by another run since the ``.npz`` was saved).
    """
    f = Path(name) if os.path.isabs(name) else npz_path.parent / name
    if not f.is_file():
        warnings.warn(f"{npz_path}: full class probabilities are stored in {f}, which is missing; "
                      "loading without them (full=None)", stacklevel=3)
        return None
    try:
        mm = np.load(f, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ValueError(f"{npz_path}: cannot read its full-probabilities file {f} ({exc})") from None
    if fingerprint is not None and _full_fingerprint(mm) != fingerprint:
        warnings.warn(f"{npz_path}: full class probabilities are stored in {f}, but that file has been replaced "
                      "since (another run with the same full_path?) and holds other data; loading without "
                      "them (full=None)", stacklevel=3)
        return None
    if mm.ndim != 3:
        raise ValueError(f"{f} must hold a (T, N, C) array, got shape {mm.shape}")
    return mm.transpose(1, 0, 2)


def _file_fingerprint(f: Path) -> str | None:
    """:func:`_full_fingerprint` of the ``.npy`` at ``f`` now; None if it is missing or unreadable."""
    try:
        return _full_fingerprint(np.load(f, mmap_mode="r", allow_pickle=False))
    except (ValueError, OSError):
        return None


def _format_version(value, path) -> int:
    """The ``format_version`` entry as an int; a clear error if it is missing or malformed."""
    if value is None:
        raise ValueError(f"{path} has no format_version entry; re-create it with Dynamics.save")
    v = np.asarray(value)
    ok = v.shape == () and (v.dtype.kind in "iu" or (v.dtype.kind == "f" and np.isfinite(v) and float(v).is_integer()))
    if not ok:
        shown = repr(v.tolist()) if v.size <= 8 else f"an array of shape {v.shape}"
        raise ValueError(f"{path} has a malformed format_version ({shown}, dtype {v.dtype}); it must be one "
                         "integer. The file is damaged or not written by Dynamics.save; re-create it")
    return int(v)


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


class _NpyAppender:
    """A float16 ``.npy`` of shape (T, N, C) that grows by one (N, C) epoch at a time.

    The epochs are written to a temporary file next to ``path``
    (``.<name>.<random>.tmp``) whose header is rewritten after every epoch, so
    it is a valid ``.npy`` at any time; the data never move. Only one epoch is
    ever held in memory. A file already at ``path`` (say, the one an earlier
    saved ``.npz`` refers to, possibly memory-mapped right now) is never
    written to: :meth:`finish` replaces it atomically (``os.replace``), and
    memory maps of it stay valid. If nothing is at ``path``, the temporary file
    is also hard-linked there after the first epoch, so ``path`` shows the
    epochs so far while recording. If the appender is garbage-collected (or the
    interpreter exits, or a write fails) before :meth:`finish`, the unfinished
    file is removed from both names; a file that was at ``path`` before is kept.
    """

    def __init__(self, path, num_samples: int, num_classes: int) -> None:
        self.path = Path(path)
        self.tail = (int(num_samples), int(num_classes))
        self.epochs = 0
        self.has_nan = False
        self.finished = False
        self._hlen = -(-(len(self._dict(10 ** 15)) + 11) // 64) * 64
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._show_live = not os.path.lexists(self.path)   # never hide or clobber an existing file mid-run
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        self._live = Path(tmp)      # the file written to: the temporary one until finish()
        self._state = {"tmp": tmp, "published": None}   # what the finalizer removes
        self._cleanup = weakref.finalize(self, _discard_unfinished, self._state)
        with self._guard(), os.fdopen(fd, "wb") as fh:
            if hasattr(os, "fchmod"):        # mkstemp makes 0600; give the usual permissions
                umask = os.umask(0)
                os.umask(umask)
                os.fchmod(fh.fileno(), 0o666 & ~umask)
            fh.write(self._header())

    def _dict(self, epochs: int) -> bytes:
        return repr({"descr": "<f2", "fortran_order": False, "shape": (epochs,) + self.tail}).encode("latin1")

    def _header(self) -> bytes:
        body = self._dict(self.epochs).ljust(self._hlen - 11) + b"\n"
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body

    @contextlib.contextmanager
    def _guard(self):
        """Remove the unfinished file if the block fails (full disk, interrupted, ...)."""
        try:
            yield
        except BaseException:
            if not self.finished:
                self._cleanup()
            raise

    def _check_alive(self) -> None:
        if not self.finished and not self._live.exists():
            raise RuntimeError(f"the temporary file {self._live} holding the full class probabilities for "
                               f"{self.path} is gone (an earlier write failed, or it was deleted); "
                               "record again with a new DynamicsRecorder")

    def append(self, epoch: np.ndarray) -> None:
        epoch = np.ascontiguousarray(epoch, dtype="<f2")
        if epoch.shape != self.tail:
            raise ValueError(f"epoch must have shape {self.tail}, got {epoch.shape}")
        self._check_alive()
        self.has_nan |= bool(np.isnan(epoch).any())
        with self._guard():
            with open(self._live, "r+b") as fh:
                fh.seek(self._hlen + self.epochs * epoch.nbytes)
                fh.write(epoch.data)
                self.epochs += 1
                fh.seek(0)
                fh.write(self._header())
            if self._show_live and not self.finished and self._state["published"] is None:
                self._publish()

    def _publish(self) -> None:
        """Show the file at ``path`` while recording: a hard link, made only where no file is."""
        try:
            os.link(self._live, self.path)   # fails, rather than clobbering, if a file appeared there since
        except OSError:                      # exists now, or no hard links here: shown by finish() only
            self._show_live = False
            return
        st = os.stat(self._live)
        self._state["published"] = (str(self.path), st.st_dev, st.st_ino)

    def open(self, mode: str = "r") -> np.memmap:
        return np.load(self._live, mmap_mode=mode, allow_pickle=False)

    def interpolate(self, chunk_bytes: int = 1 << 26) -> None:
        """Fill NaNs in place, per sample along epochs, a block of samples at a time."""
        if not self.has_nan:
            return
        self._check_alive()
        with self._guard():
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

    def finish(self) -> None:
        """Put the file at ``path`` (atomically); later epochs are appended there in place."""
        if self.finished:
            return
        self._check_alive()
        with self._guard():
            if _same_file(self._state["published"]):
                os.unlink(self._live)        # path is this very file already (rename would be a no-op)
            else:
                os.replace(self._live, self.path)
        self.finished = True
        self._cleanup.detach()
        self._live = self.path


def _same_file(published) -> bool:
    """Whether ``published`` = (path, st_dev, st_ino) still names that file."""
    if published is None:
        return False
    try:
        st = os.stat(published[0])
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == tuple(published[1:])


def _discard_unfinished(state: dict) -> None:
    """Remove an unfinished :class:`_NpyAppender` file: its temporary name, and ``path`` if it shows it."""
    if _same_file(state["published"]):
        try:
            os.unlink(state["published"][0])
        except OSError:
            pass
    try:
        os.unlink(state["tmp"])
    except OSError:
        pass


def _full_fingerprint(mm: np.ndarray, blocks: int = 64, block_bytes: int = 4096) -> str:
    """A cheap fingerprint of a (T, N, C) array (the data of a ``full_file``): its shape, dtype and a
    SHA-256 of ``blocks`` evenly spaced ``block_bytes`` pieces of its data (everything when smaller).

    Two different runs (other seed, data, labels or model) differ in practically every piece, so a
    file replaced by another run is recognised without reading all of it; an identical re-run gives
    the same fingerprint, rightly, as its data are the same.
    """
    h = hashlib.sha256(repr((tuple(mm.shape), np.dtype(mm.dtype).str)).encode())
    flat = np.asarray(mm).reshape(-1).view(np.uint8)
    n = flat.size
    if n <= blocks * block_bytes:
        h.update(flat.tobytes())
    else:
        for s in np.linspace(0, n - block_bytes, blocks).astype(np.int64):
            h.update(flat[s:s + block_bytes].tobytes())
    return f"{n}:{h.hexdigest()[:32]}"


def _as_probs(probs) -> np.ndarray:
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
        is one contiguous write. The epochs go to a temporary file in the same
        folder (``.<name>.<random>.tmp``) that ``result()`` moves onto
        ``full_path`` (atomically). Where no file was at ``full_path``, it also
        shows the epochs so far while recording (a valid ``.npy`` after every
        epoch); a file already there (say, one an earlier saved ``.npz`` refers
        to) is left intact until ``result()``. A recorder dropped before
        ``result()`` removes its unfinished file. ``result().full`` is then a
        read-only memory-mapped (N, T, C) view of the file, and
        ``Dynamics.save`` stores a reference to the file (with a fingerprint,
        so that ``Dynamics.load`` notices if another run replaced it) instead of
        a copy: use one ``full_path`` per run.
    margins : bool
        Also keep the AUM margin (given-label logit minus largest other logit)
        and the class of that largest other logit (``Dynamics.runner_up``, read
        by the shipped detector and any with the "pairs" channels).
    device : str or torch.device, optional
        Where the buffers live; default: the device of the first logits seen.
    check : bool
        Validate every batch (shapes, label and id ranges, finite logits) and
        warn, once, about common mistakes (see Warns). Costs a host sync per
        batch on GPU; the built-in training loop turns it off. With
        ``check=False`` nothing is validated: NaN logits are recorded as
        missing values (filled by interpolation from the sample's other epochs,
        or reported by ``result()`` as never recorded), and out-of-range labels
        or ids fail inside torch. Either way, empty batches (B = 0) are
        ignored and a change in the number of classes C is an error.
    defer : bool, optional
        Keep references to the epoch's batches and compute probabilities,
        margins and full probabilities once per epoch in ``next_epoch()``, so
        that ``update`` only appends to a list (about a microsecond, no kernel
        launch on GPU). The tensors passed to ``update`` must then not be
        modified in place before ``next_epoch()`` (checked: an error says so).
        Same values either way (to float32 rounding). Default (None): defer
        when N x C <= 2**26 (at most 256 MiB of logits held per epoch).

    Warns
    -----
    UserWarning
        With ``check=True``, at most once per recorder each:

        * when every row of a batch is non-negative and sums to 1: the inputs
          look like probabilities, but ``update`` expects logits (pre-softmax);
        * when an epoch closed by ``next_epoch()`` updated fewer than half of
          the samples (N >= 8): ``next_epoch()`` called per batch instead of per
          epoch, leaving most values to interpolation;
        * when ``result()`` finds a single epoch in which update() covered the
          samples at least twice over: ``next_epoch()`` never called.

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
        check_positive_int(num_samples, "num_samples", " (the size of the training set)")
        if num_classes is not None and (isinstance(num_classes, (bool, np.bool_))
                                        or not isinstance(num_classes, (int, np.integer)) or num_classes < 2):
            raise ValueError(f"num_classes must be an integer >= 2 (or None to take it from the logits), "
                             f"got {num_classes!r}")
        if full_path is not None and Path(full_path).is_dir():
            raise ValueError(f"full_path {str(full_path)!r} is a folder; give the path of the .npy file to write, "
                             "e.g. folder/full.npy")
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
        self._buf = self._mbuf = self._rbuf = None   # probs, margins, runner-up class: (capacity, N) each
        self._fbuf = None           # full probabilities of the current epoch, (N, C) float16
        self._fdone = []            # in memory (no full_path): the closed epochs' (N, C) float16 full probabilities
        self.full_path = None if full_path is None else Path(full_path)
        self._full_file = None      # _NpyAppender when streaming full probabilities to disk
        self._defer = defer
        self._pending = None        # deferred mode: this epoch's batches [(logits, labels, ids, versions)]
        self._zbuf = None           # deferred mode: the epoch's logits, concatenated (reused across epochs)
        self._C = None              # number of classes, from the first non-empty batch
        self._rows = 0              # rows passed to update() in the current epoch
        self._last_rows = 0         # ... in the last closed epoch
        self._empty_only = False    # the current epoch received only empty batches so far
        self._warned = set()        # kinds of misuse warned about (once per recorder each)

    # -- buffers -----------------------------------------------------------
    def _alloc(self, device: torch.device, num_classes: int) -> None:
        self._device = device
        self._C = int(num_classes)
        nan = float("nan")
        self._buf = torch.full((self._capacity, self.num_samples), nan, dtype=torch.float32, device=device)
        self._labels = torch.full((self.num_samples,), -1, dtype=torch.int64, device=device)
        if self.keep_margins:
            self._mbuf = torch.full_like(self._buf, nan)
            self._rbuf = torch.full_like(self._buf, nan)   # class indices as float32 (exact below 2**24)
        if self.store_full:
            # the current epoch only: a closed epoch is appended to the file, or kept as its own tensor
            # (never copied into a larger buffer as the run grows)
            self._fbuf = torch.full((self.num_samples, num_classes), nan, dtype=torch.float16, device=device)
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

        An empty batch (B = 0) is ignored.

        Raises
        ------
        ValueError
            If C differs from the first batch's (with ``check=False`` and
            deferred recording: in ``next_epoch()``), and with ``check=True``
            for wrong shapes, dtypes, ranges or non-finite logits.

        Warns
        -----
        UserWarning
            With ``check=True``, once per recorder, if the logits look like
            probabilities (softmax outputs).
        """
        if not isinstance(logits, torch.Tensor):
            logits = torch.as_tensor(logits)
        if not isinstance(labels, torch.Tensor):
            labels = torch.as_tensor(labels)
        if not isinstance(sample_ids, torch.Tensor):
            sample_ids = torch.as_tensor(sample_ids)
        if self.check:
            self._validate(logits, labels, sample_ids)   # also: the number of classes is unchanged
            self._rows += logits.shape[0]
        if logits.ndim and logits.shape[0] == 0:   # an empty batch: nothing to record
            self._empty_only |= not self._touched
            return
        if self._buf is None:
            self._alloc(self._device or logits.device, logits.shape[1])
        if self._pending is not None:   # deferred: the rest happens once per epoch, in next_epoch()
            # (kept minimal when check=False: a changed C is caught in next_epoch())
            self._pending.append((logits.detach(), labels, sample_ids,
                                  (logits._version, labels._version, sample_ids._version)))
            self._touched = True
            return
        if logits.shape[-1] != self._C:
            raise ValueError(self._classes_changed(logits.shape[-1]))
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
                self._fbuf.index_copy_(0, sample_ids, full)
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
        self._touched = False           # the batches are consumed, even if this fails
        for k, (lg, y, ids, ver) in enumerate(pending):
            if (lg._version, y._version, ids._version) != ver:
                raise RuntimeError(
                    f"a tensor passed to update() (batch {k} of this epoch) was modified in place before "
                    "next_epoch(); pass fresh tensors (e.g. logits.clone()) or build the recorder with defer=False")
        if not self.check:              # with check=True, update() has already done this
            for lg, *_ in pending:
                if lg.shape[-1] != self._C:
                    raise ValueError(self._classes_changed(lg.shape[-1]))
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
        targets = (self._buf[t], self._mbuf[t] if self._mbuf is not None else None,
                   self._rbuf[t] if self._rbuf is not None else None,
                   self._fbuf, self._labels)
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
        if sample_ids.dtype == torch.bool:
            raise ValueError("sample_ids is a boolean tensor (a mask?); pass the integer index of each row in the "
                             "training set, in [0, num_samples) (e.g. the index your Dataset returns with each "
                             "sample)")
        if labels.dtype == torch.bool:
            raise ValueError("labels is a boolean tensor; pass integer class indices in [0, C) (e.g. labels.long() "
                             "for two classes 0/1)")
        if labels.dtype.is_floating_point or sample_ids.dtype.is_floating_point:
            raise ValueError("labels and sample_ids must be integer tensors")
        if B == 0:
            return
        lg = logits.detach() if logits.dtype != torch.bool else logits.to(torch.uint8)
        # two host syncs for all range checks: min/max of the logits (NaN propagates), and of labels and ids
        lo, hi = torch.stack(torch.aminmax(lg)).tolist()
        ids_dev = sample_ids.to(labels.device) if sample_ids.device != labels.device else sample_ids
        ymin, ymax, imin, imax = torch.stack([*torch.aminmax(labels), *torch.aminmax(ids_dev)]
                                             ).to(torch.int64).tolist()
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError("logits contain NaN or inf (the model diverged?); lower the learning rate")
        if ymin < 0 or ymax >= C:
            raise ValueError(f"labels must be in [0, {C}) for logits with {C} classes, got range "
                             f"[{int(ymin)}, {int(ymax)}]")
        if imin < 0 or imax >= self.num_samples:
            raise ValueError(f"sample_ids must be in [0, {self.num_samples}), got range "
                             f"[{int(imin)}, {int(imax)}]")
        if self.num_classes and C != self.num_classes:
            raise ValueError(f"logits have {C} classes but the recorder was built with num_classes={self.num_classes}")
        if self._C is not None and C != self._C:
            raise ValueError(self._classes_changed(C))
        if lo >= 0 and hi <= 1 + 1e-2 and "probabilities" not in self._warned:
            self._check_probabilities(lg)

    def _classes_changed(self, C: int) -> str:
        return (f"logits have {C} classes but the first batch had {self._C}; the number of classes "
                "(logits.shape[1]) must stay the same for the whole run (use one recorder per model/head)")

    def _warn_once(self, kind: str, message: str, stacklevel: int) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            warnings.warn(message, UserWarning, stacklevel=stacklevel + 1)

    def _check_probabilities(self, logits) -> None:
        """Warn (once) if every row is non-negative and sums to 1: softmax outputs passed as logits."""
        x = logits.detach().to(torch.float32)
        tol = 1e-3 if logits.dtype in (torch.float32, torch.float64) else 1e-2
        sums_to_one = float((x.sum(1) - 1).abs().max()) <= tol
        # rows of only 0s and 1s (one-hot toy logits) are ambiguous: not reported
        if sums_to_one and bool(((x > 0) & (x < 1)).any()):
            self._warn_once("probabilities", (
                "update() received what look like probabilities: every row of the batch is non-negative and "
                "sums to 1. update() expects logits (the model's raw outputs, before softmax), so the recorded "
                "probabilities would be wrong; drop the final softmax from the model's output, or pass "
                "torch.log(probs)"), stacklevel=4)

    def next_epoch(self) -> None:
        """Close the current epoch; call it once per epoch, after all of the epoch's batches.

        An epoch with no update at all (or only empty batches) is an error.

        Warns
        -----
        UserWarning
            With ``check=True``, once per recorder, if fewer than half of the
            samples (N >= 8) were updated in this epoch: ``next_epoch()`` is
            probably called after every batch.
        """
        self._close_epoch(stacklevel=3)

    def _close_epoch(self, stacklevel: int) -> None:
        if not self._touched:
            if self._empty_only:
                raise RuntimeError("next_epoch(): every update() of this epoch had an empty batch (B = 0), so "
                                   "there is nothing to record; pass non-empty batches")
            raise RuntimeError("next_epoch() called with no update() since the last epoch; call update() per batch first")
        if self._pending is not None:
            self._flush_deferred()
        if self.check and "per-batch" not in self._warned and self.num_samples >= 8:
            seen = int(torch.count_nonzero(~torch.isnan(self._buf[self._epochs])))
            if 2 * seen < self.num_samples:
                self._warn_once("per-batch", (
                    f"next_epoch(): only {seen} of the {self.num_samples} samples were updated in the epoch it "
                    "closes; call next_epoch() once per epoch, after all of the epoch's batches, not after each "
                    "batch. Samples missing from an epoch are filled by interpolation, so a misplaced "
                    "next_epoch() records many mostly interpolated 'epochs'"), stacklevel=stacklevel)
        if self._full_file is not None:
            self._full_file.append(self._fbuf.cpu().numpy())
            self._fbuf.fill_(float("nan"))
        elif self._fbuf is not None:
            self._fdone.append(self._fbuf)
            self._fbuf = torch.full_like(self._fbuf, float("nan"))
        self._epochs += 1
        self._touched = False
        self._empty_only = False
        self._last_rows, self._rows = self._rows, 0

    def _full_array(self, T: int, block_elements: int = 1 << 24) -> np.ndarray:
        """The in-memory full probabilities as an (N, T, C) float16 NumPy array, gaps interpolated.

        Built a block of samples at a time (interpolation is per sample), so the only large
        allocation besides the recorder's own epochs is the result itself: 2 bytes per value, where
        converting the whole array to float32 first took 10.
        """
        epochs = self._fdone[:T]                              # T tensors (N, C) float16, on the recorder's device
        N, C = epochs[0].shape
        out = np.empty((N, T, C), dtype=np.float16)
        step = max(1, block_elements // max(1, T * C))
        for s in range(0, N, step):
            block = torch.stack([e[s:s + step] for e in epochs], 1).cpu().numpy()    # (b, T, C) float16
            if np.isnan(block).any():
                block = interpolate_missing(block.astype(np.float32)).astype(np.float16)
            out[s:s + step] = block
        return out

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
            The given label of every sample, as a check: it must equal the label
            last passed to ``update`` for each sample, for which the
            probabilities, margins and runner-up classes were recorded (to use
            other labels, record again with them). Default: those labels.
        is_flipped : array-like of shape (N,), bool, optional
        meta : dict, optional
            JSON-serialisable description; NumPy scalars and arrays in it are
            turned into Python numbers and lists.

        Returns
        -------
        Dynamics
            ``probs`` of shape (N, T) float32, T = number of epochs.

        Raises
        ------
        ValueError
            If some sample was never recorded, or ``labels`` is not of shape
            (N,) or differs from the labels passed to ``update``.
        TypeError
            If ``meta`` holds a value JSON cannot store (the message names its key).

        Warns
        -----
        UserWarning
            With ``check=True``, if only one epoch was recorded although
            update() covered the samples at least twice over in it
            (``next_epoch()`` never called).
        """
        if meta is not None:
            if not isinstance(meta, Mapping):
                try:
                    meta = dict(meta)
                except (TypeError, ValueError):
                    raise TypeError(f"meta must be a dict (a JSON object), got {type(meta).__name__}") from None
            meta = jsonable(meta, "meta")
        if labels is not None:
            labels = as_int_labels(labels, "labels")
            if labels.shape != (self.num_samples,):
                raise ValueError(f"labels has {len(labels)} entries but the recorder has num_samples="
                                 f"{self.num_samples}; pass one label per sample (or leave labels out)")
        if self._touched:
            self._close_epoch(stacklevel=3)
        if self._epochs == 0:
            if self._empty_only:
                raise RuntimeError("nothing recorded: every update() had an empty batch (B = 0)")
            raise RuntimeError("nothing recorded: call update() and next_epoch() during training first")
        T = self._epochs
        if self.check and T == 1 and self._last_rows >= 2 * self.num_samples:
            self._warn_once("no-epochs", (
                f"result(): only one epoch was recorded, but update() received {self._last_rows} rows in it "
                f"({self._last_rows / self.num_samples:.1f} per sample): was next_epoch() never called? Call "
                "rec.next_epoch() at the end of every epoch, after its batches (a sample updated several times "
                "in one epoch keeps only its last value)"), stacklevel=2)
        probs = self._buf[:T].T.cpu().numpy()
        never = np.isnan(probs).all(axis=1)
        if never.any():
            ids = np.nonzero(never)[0]
            raise ValueError(f"{len(ids)} samples were never recorded (e.g. ids {ids[:5].tolist()}); "
                             "every sample id in [0, num_samples) must appear in at least one update(). A "
                             "DataLoader with drop_last=True and no shuffling leaves the same last samples out "
                             "of every epoch: pass every sample at least once (e.g. drop_last=False)")
        recorded = self._labels.cpu().numpy()
        if labels is not None and not np.array_equal(labels, recorded):
            ids = np.nonzero(labels != recorded)[0]
            raise ValueError(f"labels differ from the labels passed to update() for {len(ids)} of "
                             f"{self.num_samples} samples (e.g. ids {ids[:5].tolist()}); the probabilities, "
                             "margins and runner-up classes were recorded for the labels passed to update(), so "
                             "they would not match these. Leave labels out to use the recorded ones; to use "
                             "other labels, record again, passing them to update()")
        probs = interpolate_missing(probs)
        margins = interpolate_missing(self._mbuf[:T].T.cpu().numpy()) if self._mbuf is not None else None
        runner_up = None
        if self._rbuf is not None:
            runner_up = interpolate_missing(self._rbuf[:T].T.cpu().numpy(), method="previous").astype(np.int32)
        full = None
        if self._full_file is not None:
            self._full_file.interpolate()
            self._full_file.finish()     # the temporary file becomes full_path (atomically)
            full = self._full_file.open("r").transpose(1, 0, 2)  # (N, T, C) view, nothing loaded
        elif self._fbuf is not None:
            full = self._full_array(T)
        meta = dict(meta or {})
        meta.setdefault("epochs", T)
        from . import __version__
        meta.setdefault("library_version", __version__)
        return Dynamics(np.clip(probs, 0.0, 1.0), recorded, is_flipped, margins, full, meta, runner_up)
