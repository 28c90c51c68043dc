"""Recording training dynamics from any training loop: :class:`DynamicsRecorder`."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .batch_values import batch_values
from .interpolate import interpolate_missing
from .npy_appender import _NpyAppender
from .recorder_checks import (check_all_recorded, check_batch, check_labels_match, check_recorder_args,
                              classes_changed, result_labels, result_meta, warn_if_no_epochs, warn_if_per_batch)
from .value import Dynamics


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
        that ``update`` only appends to a list (no kernel launch on GPU). The
        tensors passed to ``update`` must then not be modified in place before
        ``next_epoch()`` (checked: an error says so). Same values either way
        (to float32 rounding). Default (None): defer when N x C <= 2**26 (at
        most 256 MiB of logits held per epoch).

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
            check_batch(logits, labels, sample_ids, self.num_samples, self.num_classes, self._C,
                        self._warned)   # also: the number of classes is unchanged
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
            raise ValueError(classes_changed(logits.shape[-1], self._C))
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
            given, margin, runner, full = batch_values(logits.t().contiguous(), labels,
                                                         margins=self._mbuf is not None, full=self._fbuf is not None)
            self._buf[t].index_copy_(0, sample_ids, given)
            if margin is not None:
                self._mbuf[t].index_copy_(0, sample_ids, margin)
                self._rbuf[t].index_copy_(0, sample_ids, runner)
            if full is not None:
                self._fbuf.index_copy_(0, sample_ids, full)
            self._labels.index_copy_(0, sample_ids, labels)
        self._touched = True

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
                    raise ValueError(classes_changed(lg.shape[-1], self._C))
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
        parts = [batch_values(z[a:a + step].t().contiguous(), y[a:a + step], margins=self._mbuf is not None,
                              full=self._fbuf is not None) for a in range(0, M, step)]
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
        if self.check:
            warn_if_per_batch(self._buf[self._epochs], self._warned, stacklevel)
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
        allocation besides the recorder's own epochs is the result itself.
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
        meta = result_meta(meta)
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
        check_all_recorded(probs)
        recorded = self._labels.cpu().numpy()
        check_labels_match(labels, recorded)
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
        from .. import __version__
        meta.setdefault("library_version", __version__)
        return Dynamics(np.clip(probs, 0.0, 1.0), recorded, is_flipped, margins, full, meta, runner_up)
