"""DynamicsRecorder.update vs aum.AUMCalculator.update on identical batches.

``aum`` (https://pypi.org/project/aum/, the reference AUM implementation)
updates a Python dict per sample (``.item()`` per value, one record object per
sample). :class:`mislabel.DynamicsRecorder` writes a batch into preallocated
tensors; by default it keeps the epoch's logits and computes probabilities,
margins (AUM's quantity) and optional full probabilities once per epoch in
``next_epoch()``. Both are fed the same logits, labels and sample ids, one
epoch of batches at a time, alternately (aum, recorder with default settings,
recorder with ``check=False``, aum, ...). Reported for both recorders: time
per ``update`` call, the ratio to aum (target >= 100x), and the ratio with the
recorder's once-per-epoch work (``next_epoch``, which with the default
``check=True`` includes validating the epoch's batches) spread over the
epoch's batches. JSON keys ``*_default`` are the default settings; the
unsuffixed ``ratio``/``recorder_*`` keys are ``check=False``, as before. Keys
ending in ``_cpu`` use this process's CPU time instead of wall time: on a
machine shared with other work, the wall time of a few-millisecond
``next_epoch()`` depends on when the process is scheduled out.
``floor`` is the least any deferred recorder of given-label probabilities does per epoch (keep the batches,
concatenate them into preallocated buffers, transpose, exp and sum over classes: no checks, no margins,
nothing put in sample order); its ratio to aum bounds what the recorder can reach on the machine.
``aum`` is also given a list of ids (``tolist()``, which it needs: it uses ids
as dict keys), inside its timing.

If the ``aum`` package is not installed, a faithful copy of its per-sample
update loop (aum 1.0.2, ``AUMCalculator.update``) is used instead and the
result says so (``"aum_source": "re-implementation"``).

    python benchmarks/recorder_vs_aum.py --threads 1   # ~1-2 min
    python benchmarks/recorder_vs_aum.py --quick    # seconds
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

from mislabel.dynamics import DynamicsRecorder  # noqa: E402

try:
    from aum import AUMCalculator
    AUM_SOURCE = "aum package"
except ImportError:  # pragma: no cover - depends on the environment
    AUM_SOURCE = "re-implementation"

    @dataclass
    class AUMRecord:
        sample_id: object
        num_measurements: int
        target_logit: int
        target_val: float
        other_logit: int
        other_val: float
        margin: float
        aum: float

    class AUMCalculator:  # noqa: D101 - RE-IMPLEMENTATION of aum 1.0.2's AUMCalculator.update, for timing only
        def __init__(self, save_dir: str, compressed: bool = True):
            self.save_dir = save_dir
            self.counts = defaultdict(int)
            self.sums = defaultdict(float)
            self.compressed = compressed
            if not compressed:
                self.records = []

        def update(self, logits, targets, sample_ids):
            target_values = logits.gather(1, targets.view(-1, 1)).squeeze()
            masked_logits = torch.scatter(logits, 1, targets.view(-1, 1), float("-inf"))
            other_logit_values, other_logit_index = masked_logits.max(1)
            other_logit_values = other_logit_values.squeeze()
            other_logit_index = other_logit_index.squeeze()
            margin_values = (target_values - other_logit_values).tolist()
            updated_aums = {}
            for i, (sample_id, margin) in enumerate(zip(sample_ids, margin_values)):
                self.counts[sample_id] += 1
                self.sums[sample_id] += margin
                record = AUMRecord(sample_id=sample_id, num_measurements=self.counts[sample_id],
                                   target_logit=targets[i].item(), target_val=target_values[i].item(),
                                   other_logit=other_logit_index[i].item(), other_val=other_logit_values[i].item(),
                                   margin=margin, aum=self.sums[sample_id] / self.counts[sample_id])
                updated_aums[sample_id] = record
                if not self.compressed:
                    self.records.append(record)
            return updated_aums


def make_batches(n: int, num_classes: int, batch: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=g)
    out = []
    for i in range(0, n, batch):
        idx = perm[i:i + batch]
        out.append((3 * torch.randn(len(idx), num_classes, generator=g),
                    torch.randint(0, num_classes, (len(idx),), generator=g), idx))
    return out


_CLOCKS = {"": time.perf_counter, "_cpu": time.process_time}   # wall time; this process's CPU time


def _clocks() -> dict:
    return {k: c() for k, c in _CLOCKS.items()}


def _time_recorder(rec: DynamicsRecorder, batches) -> dict:
    """Seconds per batch of one epoch of ``rec.update`` calls, without and with its ``next_epoch()``, by clock."""
    t0 = _clocks()
    for lg, y, ids in batches:
        rec.update(lg, y, ids)
    t1 = _clocks()
    rec.next_epoch()
    t2 = _clocks()
    return {k: ((t1[k] - t0[k]) / len(batches), (t2[k] - t0[k]) / len(batches)) for k in _CLOCKS}


def _time_floor(batches, bufs) -> dict:
    """Seconds per batch of the least any deferred recorder of given-label probabilities does: keep the
    batches, concatenate them into preallocated buffers, transpose, exp and sum over classes (no checks,
    no margins, nothing put in sample order). Its ratio to aum bounds what the recorder can reach here."""
    z, zt, y, ids, s = bufs
    t0 = _clocks()
    kept = ([], [], [])
    for lg, yb, ib in batches:
        kept[0].append(lg)
        kept[1].append(yb)
        kept[2].append(ib)
    torch.cat(kept[0], out=z)
    torch.cat(kept[1], out=y)
    torch.cat(kept[2], out=ids)
    zt[...] = z.numpy().T
    np.exp(zt, out=zt)
    zt.sum(0, out=s)
    t1 = _clocks()
    return {k: (t1[k] - t0[k]) / len(batches) for k in _CLOCKS}


def measure(n: int, num_classes: int, batch: int, repeats: int) -> dict:
    """aum, the recorder with default settings and the recorder with ``check=False``, one epoch each in turn.

    Medians over the repeats, by wall time and (keys ending in ``_cpu``) by this process's CPU time, which
    a machine shared with other work disturbs less."""
    batches = make_batches(n, num_classes, batch)
    aum = AUMCalculator(tempfile.gettempdir())  # save_dir is only used by its finalize(), never called here
    # capacity: room for every epoch up front (a sizing choice, not a check); all else at its default
    recs = {"default": DynamicsRecorder(n, num_classes=num_classes, capacity=repeats + 1),
            "nocheck": DynamicsRecorder(n, num_classes=num_classes, check=False, capacity=repeats + 1)}
    for rec in recs.values():                     # a warm-up epoch (the first of the capacity)
        _time_recorder(rec, batches)
    aum.update(batches[0][0], batches[0][1], batches[0][2].tolist())
    t_aum = {k: [] for k in _CLOCKS}
    t_floor = {k: [] for k in _CLOCKS}
    bufs = (torch.empty(n, num_classes), np.empty((num_classes, n), np.float32), torch.empty(n, dtype=torch.int64),
            torch.empty(n, dtype=torch.int64), np.empty(n, np.float32))
    _time_floor(batches, bufs)
    t = {(r, k): ([], []) for r in recs for k in _CLOCKS}
    for _ in range(repeats):                       # alternate: aum epoch, default epoch, check=False epoch, ...
        t0 = _clocks()
        for lg, y, ids in batches:
            aum.update(lg, y, ids.tolist())
        t1 = _clocks()
        for k in _CLOCKS:
            t_aum[k].append((t1[k] - t0[k]) / len(batches))
        for k, f in _time_floor(batches, bufs).items():
            t_floor[k].append(f)
        for r, rec in recs.items():
            for k, (u, e) in _time_recorder(rec, batches).items():
                t[r, k][0].append(u)
                t[r, k][1].append(e)
    out = {"samples": n, "classes": num_classes, "batch": batch}
    for k in _CLOCKS:
        out[f"aum_us{k}"] = statistics.median(t_aum[k]) * 1e6
        out[f"floor_us{k}"] = statistics.median(t_floor[k]) * 1e6
        out[f"ratio_floor{k}"] = statistics.median(t_aum[k]) / statistics.median(t_floor[k])
    for (r, k), (u, e) in t.items():
        a, u, e = statistics.median(t_aum[k]), statistics.median(u), statistics.median(e)
        pre = "recorder" if r == "nocheck" else "default"   # "recorder_*": check=False, as in earlier results
        suf = ("" if r == "nocheck" else "_default") + k
        out.update({f"{pre}_update_us{k}": u * 1e6, f"{pre}_with_epoch_us{k}": e * 1e6,
                    f"ratio_update{suf}": a / u, f"ratio_with_epoch{suf}": a / e})
    return out


def main(argv=None) -> dict:
    p = _common.parser(__doc__.splitlines()[0])
    args = p.parse_args(argv)
    _common.setup(args)
    repeats = args.repeats or (2 if args.quick else 5)
    n = 2000 if args.quick else 50000
    configs = [(10, 128), (10, 512), (100, 128)]
    print(f"recorder_vs_aum: aum from the {AUM_SOURCE}; {n} samples, threads={torch.get_num_threads()}")
    print("  us per update; in brackets: with next_epoch() spread over the epoch's batches")
    load0 = _common.load()
    rows = []
    for c, b in configs:
        r = measure(n, c, b, repeats)
        rows.append(r)
        for k, clock in (("", "wall"), ("_cpu", "cpu ")):
            print(f"  C={c:<4d} batch={b:<4d} {clock} aum {r['aum_us' + k]:8.1f}   "
                  f"default {r['default_update_us' + k]:6.2f} ({r['default_with_epoch_us' + k]:6.2f}) "
                  f"{r['ratio_update_default' + k]:6.1f}x ({r['ratio_with_epoch_default' + k]:6.1f}x)   "
                  f"check=False {r['recorder_update_us' + k]:6.2f} ({r['recorder_with_epoch_us' + k]:6.2f}) "
                  f"{r['ratio_update' + k]:6.1f}x ({r['ratio_with_epoch' + k]:6.1f}x)")
    head = rows[0]
    for k, clock in (("", "wall time"), ("_cpu", "CPU time")):
        print(f"headline (C=10, batch 128, {clock}), default settings: {head['ratio_update_default' + k]:.1f}x per "
              f"update, {head['ratio_with_epoch_default' + k]:.1f}x with next_epoch; check=False: "
              f"{head['ratio_update' + k]:.1f}x, {head['ratio_with_epoch' + k]:.1f}x (target >= 100x); the floor "
              f"(keep, concatenate, transpose, exp, sum; no checks, no margins): {head['ratio_floor' + k]:.1f}x")
    _common.write("recorder_vs_aum", args, {
        "machine": _common.machine(), "load_before": load0, "load_after": _common.load(), "aum_source": AUM_SOURCE,
        "repeats": repeats, "results": rows, "ratio": head["ratio_update"],
        "ratio_with_epoch": head["ratio_with_epoch"], "ratio_default": head["ratio_update_default"],
        "ratio_with_epoch_default": head["ratio_with_epoch_default"],
        "ratio_with_epoch_default_cpu": head["ratio_with_epoch_default_cpu"], "ratio_floor": head["ratio_floor"],
        "target_ratio": 100.0,
        "met": head["ratio_update"] >= 100.0, "met_with_epoch": head["ratio_with_epoch"] >= 100.0,
        "met_default": head["ratio_update_default"] >= 100.0,
        "met_with_epoch_default": head["ratio_with_epoch_default"] >= 100.0,
        "met_with_epoch_default_cpu": head["ratio_with_epoch_default_cpu"] >= 100.0})
    return head


if __name__ == "__main__":
    main()
