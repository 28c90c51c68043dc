"""Deferred recording (``DynamicsRecorder(defer=True)``, the default for N x C <= 2**26): ``update()`` keeps
an epoch's batches by reference, and ``next_epoch()`` validates them and turns them into recorded values
in one pass (:func:`flush_epoch`).

:class:`PendingEpoch` holds the batches with what tells whether they are still intact when they are
used: torch's version counters, which in-place operations bump, and the memory each tensor occupies. A
buffer that the caller reuses between batches and overwrites without a version bump (a CUDA graph's
static output, which every replay rewrites; a preallocated tensor refilled through ``.data``, NumPy or
``torch.from_numpy``) shows up as a later batch in the memory of an earlier one that is still kept: a
fresh tensor never can, as the recorder still references the earlier one. Inputs that are not torch
tensors (NumPy arrays, lists) are copied by ``update()`` before they get here.
"""
from __future__ import annotations

import math
from operator import attrgetter

import numpy as np
import torch

from .batch_values import batch_values, batch_values_np
from .recorder_checks import check_batch_values, check_probabilities, classes_changed, range_problem

_ROLES = ("logits", "labels", "sample_ids")
_VERSION = attrgetter("_version")   # torch's in-place version counter of a tensor
_NBYTES = attrgetter("nbytes")
_BLOCK = 1 << 18             # logits per block of the CPU computation (1 MiB of float32: fits a core's L2)


def _extent(t: torch.Tensor) -> int:
    """The number of bytes from tensor ``t``'s first element to just past its last (0 if empty)."""
    if t.is_contiguous() or not t.numel():
        return t.nbytes
    return (1 + sum((d - 1) * s for d, s in zip(t.shape, t.stride()))) * t.element_size()


class PendingEpoch:
    """The batches passed to ``update()`` since the last ``next_epoch()`` (deferred mode): three lists of
    tensors, one entry per batch, and their version counters when they were passed."""

    def __init__(self) -> None:
        self.logits: list = []
        self.labels: list = []
        self.sample_ids: list = []
        self.versions: list = []

    def __len__(self) -> int:
        return len(self.logits)

    def add(self, logits: torch.Tensor, labels: torch.Tensor, sample_ids: torch.Tensor) -> None:
        """Keep one non-empty batch (references, no copy, no check: :meth:`check_intact` checks them all)."""
        self.logits.append(logits)
        self.labels.append(labels)
        self.sample_ids.append(sample_ids)
        self.versions.append((logits._version, labels._version, sample_ids._version))

    def reused(self) -> tuple[str, int, int] | None:
        """The first tensor kept in memory that a tensor of an earlier batch occupies: (its role, its batch,
        the earlier batch), or None. As every kept tensor is still referenced, two of them can share memory
        only if the caller passed the same buffer again (tensors of one batch may share memory)."""
        n = len(self.logits)
        tensors = [*self.logits, *self.labels, *self.sample_ids]   # i: role i // n, batch i % n
        start = np.fromiter(map(torch.Tensor.data_ptr, tensors), np.uint64, len(tensors))
        end = start + np.fromiter(map(_NBYTES, tensors), np.uint64, len(tensors))
        strided = ~np.fromiter(map(torch.Tensor.is_contiguous, tensors), bool, len(tensors))
        for i in np.flatnonzero(strided).tolist():       # (rare) a strided view spans more than its nbytes
            end[i] = start[i] + _extent(tensors[i])
        order = np.argsort(start, kind="stable")
        order = order[end[order] > start[order]]                   # empty tensors occupy nothing
        s, e = start[order], end[order]
        if len(s) < 2 or not (s[1:] < np.maximum.accumulate(e)[:-1]).any():
            return None                                             # no two ranges overlap: the usual case
        found, active = None, []                                    # some do: sweep, ignoring same-batch pairs
        for i in order.tolist():
            active = [j for j in active if end[j] > start[i]]
            for j in active:
                if i % n != j % n and tensors[i].device == tensors[j].device:
                    late, early = (i, j) if i % n > j % n else (j, i)
                    hit = (_ROLES[late // n], late % n, early % n)
                    found = hit if found is None or hit[1:] < found[1:] else found
            active.append(i)
        return found

    def check_intact(self) -> None:
        """Raise RuntimeError if a kept tensor was modified in place or its memory reused by a later batch."""
        now = list(zip(map(_VERSION, self.logits), map(_VERSION, self.labels), map(_VERSION, self.sample_ids)))
        if now != self.versions:
            k = next(k for k, (v, w) in enumerate(zip(now, self.versions)) if v != w)
            raise RuntimeError(
                f"a tensor passed to update() (batch {k} of this epoch) was modified in place before "
                "next_epoch(); pass fresh tensors (e.g. logits.clone()) or build the recorder with defer=False; "
                "the epoch is not recorded")
        hit = self.reused()
        if hit is not None:
            role, k, j = hit
            raise RuntimeError(
                f"the {role} passed to update() in batch {k} of this epoch lie in the memory of a tensor passed in "
                f"batch {j}, so that buffer was overwritten (reused) before next_epoch(), possibly without torch "
                "noticing (a preallocated output refilled per batch, a CUDA graph's static output that each replay "
                "overwrites, a write through .data, NumPy or torch.from_numpy); the recorder keeps references until "
                f"next_epoch() and would record batch {j} from overwritten values. Pass fresh tensors (e.g. "
                f"{role}.clone()) or build the recorder with defer=False; the epoch is not recorded")


def flush_epoch(pending: PendingEpoch, targets: tuple, num_samples: int, num_classes: int, check: bool,
                warned: set, zbuf: torch.Tensor | None, stacklevel: int) -> tuple[torch.Tensor, int, int]:
    """Validate the epoch's batches and write their values into ``targets``.

    Parameters
    ----------
    pending : PendingEpoch
        The epoch's batches (at least one, non-empty).
    targets : tuple of Tensors
        Filled by sample: given-label probabilities (N,), margins (N,) or None, runner-up classes (N,) or
        None, full probabilities (N, C) float16 or None, labels (N,) int64; all on one device. Samples not
        in the epoch are left as they are; a sample seen twice keeps its last value.
    check : bool
        Whether ``update()`` checked shapes (then not checked here) and values are to be checked: finite
        logits and the warning about probabilities (labels and ids are always checked, cheaply, in one pass
        over the epoch). On failure, the first batch at fault is named.
    zbuf : Tensor or None
        A float32 buffer for the epoch's logits, from an earlier call (reused when large enough).
    stacklevel : int
        That of a warning's ``warnings.warn`` call if made here.

    Returns
    -------
    zbuf : Tensor
        The logits buffer, to pass again next epoch.
    rows, seen : int
        The number of rows passed to ``update()`` in the epoch, and of distinct samples among them.

    Raises
    ------
    RuntimeError
        If a kept tensor was modified in place or overwritten (:meth:`PendingEpoch.check_intact`).
    ValueError
        For a batch with another number of classes, labels or ids out of range and, with ``check``,
        NaN or inf logits; the message names the batch. Nothing of the epoch is recorded then.
    """
    C, dev = num_classes, targets[0].device
    if not check:                        # (with check=True, update() has checked every batch's shapes)
        for k, (lg, yb, ib) in enumerate(zip(pending.logits, pending.labels, pending.sample_ids)):
            if lg.ndim != 2 or lg.shape[1] != C:
                raise ValueError(f"update() batch {k} of this epoch: {classes_changed(lg.shape[-1], C)}")
            if yb.shape != lg.shape[:1] or ib.shape != lg.shape[:1]:
                raise ValueError(f"update() batch {k} of this epoch: labels and sample_ids must have shape "
                                 f"({lg.shape[0]},) to match logits; got {tuple(yb.shape)} and {tuple(ib.shape)}")
    y = _cat(pending.labels, torch.int64, dev)
    ids = _cat(pending.sample_ids, torch.int64, dev)
    M = ids.shape[0]                     # (shapes checked: by update(), or above)
    if zbuf is None or zbuf.shape[0] < M or zbuf.shape[1] != C or zbuf.device != dev:
        zbuf = torch.empty((M, C), dtype=torch.float32, device=dev)
    z = _cat(pending.logits, torch.float32, dev, out=zbuf[:M])   # zbuf reused: no page faults
    pending.check_intact()               # (after the copies: the tensors' headers are in cache by now)
    _validate(z, y, ids, pending, num_samples, check, warned, stacklevel + 1)
    # the last occurrence of a sample in the epoch wins (deterministic, unlike index_copy_ with duplicates)
    last, n_seen = _last_rows(ids, num_samples)
    if dev.type == "cpu" and n_seen == M:    # no sample twice (the usual case): each row to its sample
        _fill_numpy(z, y, targets, ids=ids, finite=check)
        return zbuf, M, n_seen
    if n_seen == num_samples:            # every sample seen: rows of the epoch, in sample order
        samples, rows = None, last
    else:
        samples = (last >= 0).nonzero().squeeze(1)
        rows = last.index_select(0, samples)
    if dev.type == "cpu":
        _fill_numpy(z, y, targets, rows=rows, samples=samples, finite=check)
    else:
        write_values(z, y, rows, samples, targets)
    return zbuf, M, n_seen


def _last_rows(ids: torch.Tensor, num_samples: int) -> tuple[torch.Tensor | None, int]:
    """For each sample, the last row of the epoch that holds it (-1 if none), and the number of samples seen;
    on the CPU, where no id repeats (the usual case, where no order question arises), None and that number."""
    M, dev = ids.shape[0], ids.device
    if dev.type == "cpu":                # NumPy: one boolean pass decides whether any id repeats
        seen = np.zeros(num_samples, dtype=bool)
        seen[ids.numpy()] = True
        n_seen = int(np.count_nonzero(seen))
        if n_seen == M:
            return None, n_seen
    last = torch.full((num_samples,), -1, dtype=torch.int64, device=dev)
    last.scatter_reduce_(0, ids, torch.arange(M, device=dev), reduce="amax")
    return last, int((last >= 0).sum())


def _cat(tensors: list, dtype: torch.dtype, dev: torch.device, out: torch.Tensor | None = None) -> torch.Tensor:
    """The tensors concatenated along the first axis, as ``dtype`` on ``dev`` (into ``out`` if given)."""
    try:                                 # one call where torch can (same device; dtypes promoted, cast into out)
        r = torch.cat(tensors, out=out) if out is not None else torch.cat(tensors)
    except (RuntimeError, TypeError):   # on several devices, or dtypes torch does not promote
        return torch.cat([t.to(dev, dtype) for t in tensors], out=out)
    return r if r.dtype == dtype and r.device == dev else r.to(dev, dtype)


def _validate(z, y, ids, pending: PendingEpoch, num_samples: int, check: bool, warned: set, stacklevel: int) -> None:
    """The value checks of ``update()`` for the whole epoch at once (a few host syncs); on failure, find the
    first batch at fault and raise its problem."""
    C = z.shape[1]
    ymin, ymax, imin, imax = torch.stack([*torch.aminmax(y), *torch.aminmax(ids)]).tolist()
    ok = 0 <= ymin and ymax < C and 0 <= imin and imax < num_samples
    lo = hi = 0.0
    if check:
        lo, hi = torch.stack(torch.aminmax(z)).tolist()
        ok = ok and math.isfinite(lo) and math.isfinite(hi)
    if not ok:                           # find the first batch at fault
        quiet = set(warned) | {"probabilities"}
        for k, (lg, yb, ib) in enumerate(zip(pending.logits, pending.labels, pending.sample_ids)):
            try:
                if check:
                    check_batch_values(lg.detach().to(torch.float32), yb, ib, num_samples, quiet)
                else:   # labels and ids only: with check=False NaN logits are recorded as missing values
                    ends = torch.stack([*torch.aminmax(yb.to(ib.device, torch.int64)),
                                        *torch.aminmax(ib.to(torch.int64))])
                    problem = range_problem(*ends.tolist(), C, num_samples)
                    if problem:
                        raise ValueError(problem)
            except ValueError as exc:
                raise ValueError(f"update() batch {k} of this epoch (checked in next_epoch(), which validates "
                                 f"the epoch's batches together; the epoch is not recorded): {exc}") from None
    if check and lo >= 0 and hi <= 1 + 1e-2 and "probabilities" not in warned:
        check_probabilities(z, warned, stacklevel + 1)


def _fill_numpy(z, y, targets, ids=None, rows=None, samples=None, finite: bool = False) -> None:
    """CPU: values computed with NumPy in epoch order, in blocks of ~``_BLOCK`` logits (cache-sized), and put
    into the targets: block by block at their ``ids`` where no sample occurs twice; else, once all are
    computed, the ``rows`` of ``samples`` (None: all samples, in order). ``finite``: every logit was checked
    finite."""
    zn, yn = z.numpy(), y.numpy()
    M, C = zn.shape
    outs = [None if t is None else t.numpy() for t in targets]
    margins, full = outs[1] is not None, outs[3] is not None
    idn = None if ids is None else ids.numpy()
    vals = None if idn is not None else [
        np.empty(M, np.float32), np.empty(M, np.float32) if margins else None,
        np.empty(M, np.float32) if margins else None, np.empty((M, C), np.float16) if full else None, yn]
    step = max(1024, _BLOCK // C)
    for a in range(0, M, step):
        got = batch_values_np(np.ascontiguousarray(zn[a:a + step].T), yn[a:a + step], margins, full, finite)
        if idn is not None:
            where = idn[a:a + step]
            for out, v in zip(outs, (*got, yn[a:a + step])):
                if out is not None:
                    out[where] = v
            continue
        for buf, v in zip(vals, got):
            if buf is not None:
                buf[a:a + step] = v
    if idn is not None:
        return
    rn = rows.numpy()
    for out, v in zip(outs, vals):
        if out is None:
            continue
        if samples is None:              # every sample seen: rows is one row per sample, in sample order
            np.take(v, rn, axis=0, out=out, mode="clip")     # (indices are valid; "clip" avoids a buffer)
        else:
            out[samples.numpy()] = np.take(v, rn, axis=0)


def write_values(z, y, rows, samples, targets) -> None:
    """Values computed in row order with torch (any device), in blocks (few launches), and put in sample
    order: the ``rows`` (None: all, in order) go to ``samples`` (None: every sample, in order). ``next_epoch()``
    uses it off the CPU; ``update()`` without deferring, for one batch (its rows to its sample ids)."""
    M = z.shape[0]
    margins, full = targets[1] is not None, targets[3] is not None
    step = 1 << 20
    parts = [batch_values(z[a:a + step].t().contiguous(), y[a:a + step], margins=margins, full=full)
             for a in range(0, M, step)]
    # given, margin, runner, full (one block, as for a batch: no copy)
    values = list(parts[0]) if len(parts) == 1 else [torch.cat(v) if v[0] is not None else None for v in zip(*parts)]
    for buf, v in zip(targets, values + [y]):
        if buf is None or v is None:
            continue
        if rows is not None:
            v = v.index_select(0, rows)
        if samples is None:
            buf.copy_(v)
        else:
            buf.index_copy_(0, samples, v)
