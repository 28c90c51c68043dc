"""Recording training dynamics from any training loop: :class:`DynamicsRecorder`."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from .deferred import PendingEpoch, flush_epoch, write_values
from .interpolate import interpolate_missing, interpolated_full
from .npy_appender import _NpyAppender
from .recorder_checks import (as_batch_tensor, check_batch_shapes, check_batch_values, check_labels_match,
                              check_recorder_args, classes_changed, never_recorded, never_recorded_message,
                              result_labels, result_meta, warn_if_no_epochs, warn_if_per_batch)
from .value import Dynamics

_TENSOR = torch.Tensor


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
        warn, once, about common mistakes (see Warns). With deferred recording
        ``update`` checks shapes and dtypes of every batch and the values of
        the epoch's first batch; ``next_epoch()`` checks the values of all the
        epoch's batches in one vectorized pass and names the first batch at
        fault (the epoch is then not recorded). Without deferring, values are
        checked per batch (a host sync per batch on GPU). With
        ``check=False`` nothing is validated but, when deferred, label and id
        ranges (in ``next_epoch()``): NaN logits are recorded as missing values
        (filled by interpolation from the sample's other epochs, or reported by
        ``result()`` as never recorded), and, not deferred, out-of-range labels
        or ids fail inside torch. Either way, empty batches (B = 0) are
        ignored and a change in the number of classes C is an error.
    defer : bool, optional
        Keep references to the epoch's batches and compute probabilities,
        margins and full probabilities once per epoch in ``next_epoch()``, so
        that ``update`` only appends to a list (no kernel launch on GPU).
        NumPy arrays and lists passed to ``update`` are copied; tensors are
        kept as they are and must not be modified before ``next_epoch()``:
        an in-place change (torch's version counter) is an error in
        ``next_epoch()``, and a buffer reused for a later batch of the epoch
        (a tensor in the memory of one kept from an earlier batch, as a CUDA
        graph's static output or ``torch.from_numpy`` of a refilled array
        gives) is an error in ``next_epoch()`` too; the epoch is then not
        recorded. Same values either way (to float32 rounding). Default
        (None): defer when N x C <= 2**26 (at most 256 MiB of logits held per
        epoch).

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
        store_full = check_recorder_args(num_samples, num_classes, store_full, full_path)
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
        self._pending = None        # deferred mode: this epoch's batches (PendingEpoch)
        self._zbuf = None           # deferred mode: the epoch's logits, concatenated (reused across epochs)
        self._C = None              # number of classes, from the first non-empty batch
        self._rows = 0              # rows passed to update() in the current epoch (deferred: next_epoch() counts)
        self._last_rows = 0         # ... in the last closed epoch
        self._empty_only = False    # the current epoch received only empty batches so far
        self._coverage = []         # per closed epoch: (rows passed to update(), distinct samples among them)
        self._max_batch = 0         # the largest batch passed to update()
        self._sig = None            # shapes and dtypes of the last batch whose shapes were checked
        self._fast = None           # deferred: those of the last batch kept (update()'s short path)
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
            self._pending = PendingEpoch()

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
            for wrong shapes, dtypes, ranges or non-finite logits (deferred:
            values of the epoch's first batch here, of the others in
            ``next_epoch()``).

        Warns
        -----
        UserWarning
            With ``check=True``, once per recorder, if the logits look like
            probabilities (softmax outputs).
        """
        sig = self._fast
        if (sig is not None and type(logits) is _TENSOR and type(labels) is _TENSOR and type(sample_ids) is _TENSOR
                and (logits.shape, labels.shape, sample_ids.shape, logits.dtype, labels.dtype,
                     sample_ids.dtype) == sig and self._pending.logits):
            # deferred, and the shapes and dtypes of the last batch kept this epoch: checked already, B > 0
            self._pending.add(logits.detach() if logits.requires_grad else logits, labels, sample_ids)
            return
        if not isinstance(logits, torch.Tensor):
            logits = as_batch_tensor(logits, "logits")
        if not isinstance(labels, torch.Tensor):
            labels = as_batch_tensor(labels, "labels")
        if not isinstance(sample_ids, torch.Tensor):
            sample_ids = as_batch_tensor(sample_ids, "sample_ids")
        if self.check:   # no values read here: no kernel, no host sync
            sig = (logits.shape, labels.shape, sample_ids.shape, logits.dtype, labels.dtype, sample_ids.dtype)
            if sig != self._sig:        # (the same shapes and dtypes as the last batch that passed: passes)
                check_batch_shapes(logits, labels, sample_ids, self.num_classes, self._C)
                self._sig = sig
        B = logits.shape[0] if logits.ndim else 0
        if B == 0:                      # an empty batch: nothing to record
            self._empty_only |= not self._touched
            return
        pending = self._pending
        if self.check and (pending is None or not pending.logits):   # every batch, or deferred the epoch's first
            check_batch_values(logits, labels, sample_ids, self.num_samples, self._warned, stacklevel=3)
        if self._buf is None:
            self._alloc(self._device or logits.device, logits.shape[1])
            pending = self._pending
        if pending is not None:         # deferred: the rest (checks included) happens once per epoch, in next_epoch()
            pending.add(logits.detach() if logits.requires_grad else logits, labels, sample_ids)
            if type(logits) is _TENSOR and type(labels) is _TENSOR and type(sample_ids) is _TENSOR:
                self._fast = (logits.shape, labels.shape, sample_ids.shape, logits.dtype, labels.dtype,
                              sample_ids.dtype)   # a later batch like this one takes the short path above
        else:
            self._record_now(logits, labels, sample_ids)
        self._rows += B
        if B > self._max_batch:
            self._max_batch = B
        self._touched = True

    def _targets(self) -> tuple:
        """The current epoch's buffers (probabilities, margins, runner-up classes, full probabilities, labels;
        None where not kept), grown first if the epochs fill them."""
        if self._epochs >= self._capacity:
            self._grow()
        t = self._epochs
        return (self._buf[t], None if self._mbuf is None else self._mbuf[t],
                None if self._rbuf is None else self._rbuf[t], self._fbuf, self._labels)

    @torch.no_grad()
    def _record_now(self, logits: torch.Tensor, labels: torch.Tensor, sample_ids: torch.Tensor) -> None:
        """Not deferred: write one batch's values into the current epoch."""
        if logits.shape[-1] != self._C:
            raise ValueError(classes_changed(logits.shape[-1], self._C))
        dev = self._buf.device
        write_values(logits.detach().to(dev, torch.float32), labels.to(dev, torch.int64), None,
                     sample_ids.to(dev, torch.int64), self._targets())

    def _flush_deferred(self, stacklevel: int) -> tuple[int, int]:
        """Deferred mode: validate the epoch's batches and turn them into recorded values (unseen samples stay
        NaN); returns the epoch's rows and distinct samples. The batches are consumed, even if this fails."""
        pending, self._pending = self._pending, PendingEpoch()
        targets = self._targets()
        with torch.no_grad():            # (a context, not a decorator: no extra frame for warnings' stacklevel)
            self._zbuf, rows, seen = flush_epoch(pending, targets, self.num_samples, self._C, self.check,
                                                 self._warned, self._zbuf, stacklevel + 1)
        return rows, seen

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
        rows, self._rows = self._rows, 0
        self._touched = self._empty_only = False    # the epoch's data is consumed, even if closing it fails
        if self._pending is not None:
            rows, seen = self._flush_deferred(stacklevel + 1)
        else:
            seen = int(torch.count_nonzero(~torch.isnan(self._buf[self._epochs])))
        if self.check:
            warn_if_per_batch(seen, self.num_samples, self._warned, stacklevel)
        self._coverage.append((rows, seen))
        if self._full_file is not None:
            self._full_file.append(self._fbuf.cpu().numpy())
            self._fbuf.fill_(float("nan"))
        elif self._fbuf is not None:
            self._fdone.append(self._fbuf)
            self._fbuf = torch.full_like(self._fbuf, float("nan"))
        self._epochs += 1
        self._last_rows = rows

    def _full_array(self, T: int, block_elements: int = 1 << 24) -> np.ndarray:
        """The in-memory full probabilities of the first T epochs, (N, T, C) float16, gaps interpolated."""
        return interpolated_full(self._fdone[:T], block_elements)

    @property
    def num_epochs(self) -> int:
        """Number of closed epochs."""
        return self._epochs

    def result(self, labels=None, is_flipped=None, meta: dict | None = None, unseen: str = "raise") -> Dynamics:
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
        unseen : {"raise", "drop"}
            What to do with samples never passed to ``update()``: "raise" (the
            default) raises ValueError naming them and the likely cause (a
            sampler that skips samples, ``drop_last``, ``num_samples`` too
            large); "drop" returns the recorded samples only, in id order, with
            a warning, and ``meta["sample_ids"]`` (the id of each row) and
            ``meta["unseen_ids"]`` (the never-recorded ids). ``labels`` and
            ``is_flipped`` are still given for all N samples.

        Returns
        -------
        Dynamics
            ``probs`` of shape (N, T) float32, T = number of epochs (with
            ``unseen="drop"``, (N - K, T) for K never-recorded samples).

        Raises
        ------
        ValueError
            If some sample was never recorded (with ``unseen="raise"``),
            ``unseen`` is another value, or ``labels`` is not of shape (N,) or
            differs from the labels passed to ``update``.
        TypeError
            If ``meta`` holds a value JSON cannot store (the message names its key).

        Warns
        -----
        UserWarning
            With ``unseen="drop"``, naming the samples left out; and with
            ``check=True``, if only one epoch was recorded although update()
            covered the samples at least twice over in it (``next_epoch()``
            never called).
        """
        if unseen not in ("raise", "drop"):
            raise ValueError(f"unseen must be 'raise' or 'drop', got {unseen!r}")
        meta = dict(result_meta(meta) or {})
        labels = result_labels(labels, self.num_samples)
        if self._touched:
            self._close_epoch(stacklevel=3)
        if self._epochs == 0:
            if self._empty_only:
                raise RuntimeError("nothing recorded: every update() had an empty batch (B = 0)")
            raise RuntimeError("nothing recorded: call update() and next_epoch() during training first")
        T = self._epochs
        if self.check:
            warn_if_no_epochs(T, self._last_rows, self.num_samples, self._warned, stacklevel=2)
        probs = self._buf[:T].T.cpu().numpy()
        never = never_recorded(probs)
        recorded = self._labels.cpu().numpy()
        if len(never):
            message = never_recorded_message(never, self.num_samples, self._coverage, self._max_batch)
            if unseen == "raise":
                raise ValueError(message)
            recorded[never] = 0 if labels is None else labels[never]   # placeholders, dropped below
        check_labels_match(labels, recorded)
        fill = (lambda v: np.nan_to_num(v, nan=0.0)) if len(never) else (lambda v: v)   # never-seen rows
        probs = fill(interpolate_missing(probs))
        margins = fill(interpolate_missing(self._mbuf[:T].T.cpu().numpy())) if self._mbuf is not None else None
        runner_up = None
        if self._rbuf is not None:
            runner_up = fill(interpolate_missing(self._rbuf[:T].T.cpu().numpy(), method="previous")).astype(np.int32)
        full = None
        if self._full_file is not None:
            self._full_file.interpolate()
            self._full_file.finish()     # the temporary file becomes full_path (atomically)
            full = self._full_file.open("r").transpose(1, 0, 2)  # (N, T, C) view, nothing loaded
        elif self._fbuf is not None:
            full = self._full_array(T)
        meta.setdefault("epochs", T)
        from .. import __version__
        meta.setdefault("library_version", __version__)
        dyn = Dynamics(np.clip(probs, 0.0, 1.0), recorded, is_flipped, margins, full, meta, runner_up)
        if len(never):                   # unseen="drop"
            keep = np.setdiff1d(np.arange(self.num_samples), never)
            dyn = dyn.subset(keep)
            dyn.meta.update(sample_ids=keep.tolist(), unseen_ids=never.tolist())
            warnings.warn(f"result(unseen='drop'): returning the {len(keep)} recorded samples only (meta['sample_ids'] "
                          f"holds the id of each row). {message.split('; or pass')[0]}", UserWarning, stacklevel=2)
        return dyn
