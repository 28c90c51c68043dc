"""DynamicsRecorder.update vs aum.AUMCalculator.update on identical batches.

``aum`` (https://pypi.org/project/aum/, the reference AUM implementation)
updates a Python dict per sample (``.item()`` per value, one record object per
sample). :class:`mislabel.DynamicsRecorder` writes a batch into preallocated
tensors; by default it keeps the epoch's logits and computes probabilities,
margins (AUM's quantity) and optional full probabilities once per epoch in
``next_epoch()``. Both are fed the same logits, labels and sample ids, one
epoch of batches at a time, alternately (aum, recorder, aum, ...). Reported:
time per ``update`` call, the ratio (target >= 100x), and the ratio with the
recorder's once-per-epoch work (``next_epoch``) spread over the epoch's batches.
``aum`` is also given a list of ids (``tolist()``, which it needs: it uses ids
as dict keys), inside its timing.

If the ``aum`` package is not installed, a faithful copy of its per-sample
update loop (aum 1.0.2, ``AUMCalculator.update``) is used instead and the
result says so (``"aum_source": "re-implementation"``).

    python benchmarks/recorder_vs_aum.py            # ~1 min
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


def measure(n: int, num_classes: int, batch: int, repeats: int) -> dict:
    batches = make_batches(n, num_classes, batch)
    aum = AUMCalculator(tempfile.gettempdir())  # save_dir is only used by its finalize(), never called here
    rec = DynamicsRecorder(n, num_classes=num_classes, check=False, capacity=repeats + 1)
    rec.update(*batches[0])
    aum.update(batches[0][0], batches[0][1], batches[0][2].tolist())
    t_aum, t_upd, t_epoch = [], [], []
    for _ in range(repeats):                       # alternate: aum epoch, recorder epoch, ...
        t0 = time.perf_counter()
        for lg, y, ids in batches:
            aum.update(lg, y, ids.tolist())
        t_aum.append((time.perf_counter() - t0) / len(batches))
        t0 = time.perf_counter()
        for lg, y, ids in batches:
            rec.update(lg, y, ids)
        t1 = time.perf_counter()
        rec.next_epoch()
        t2 = time.perf_counter()
        t_upd.append((t1 - t0) / len(batches))
        t_epoch.append((t2 - t0) / len(batches))
    a, u, e = statistics.median(t_aum), statistics.median(t_upd), statistics.median(t_epoch)
    return {"samples": n, "classes": num_classes, "batch": batch, "aum_us": a * 1e6, "recorder_update_us": u * 1e6,
            "recorder_with_epoch_us": e * 1e6, "ratio_update": a / u, "ratio_with_epoch": a / e}


def main(argv=None) -> dict:
    p = _common.parser(__doc__.splitlines()[0])
    args = p.parse_args(argv)
    _common.setup(args)
    repeats = args.repeats or (2 if args.quick else 5)
    n = 2000 if args.quick else 50000
    configs = [(10, 128), (10, 512), (100, 128)]
    print(f"recorder_vs_aum: aum from the {AUM_SOURCE}; {n} samples, threads={torch.get_num_threads()}")
    load0 = _common.load()
    rows = []
    for c, b in configs:
        r = measure(n, c, b, repeats)
        rows.append(r)
        print(f"  C={c:<4d} batch={b:<4d} aum {r['aum_us']:8.1f} us/update   recorder {r['recorder_update_us']:6.2f} us"
              f" ({r['recorder_with_epoch_us']:6.2f} with next_epoch)   {r['ratio_update']:6.1f}x "
              f"({r['ratio_with_epoch']:.1f}x)")
    head = rows[0]
    print(f"headline (C=10, batch 128): {head['ratio_update']:.1f}x per update, "
          f"{head['ratio_with_epoch']:.1f}x with next_epoch (target >= 100x)")
    _common.write("recorder_vs_aum", args, {
        "machine": _common.machine(), "load_before": load0, "load_after": _common.load(), "aum_source": AUM_SOURCE,
        "repeats": repeats, "results": rows, "ratio": head["ratio_update"],
        "ratio_with_epoch": head["ratio_with_epoch"], "target_ratio": 100.0, "met": head["ratio_update"] >= 100.0,
        "met_with_epoch": head["ratio_with_epoch"] >= 100.0})
    return head


if __name__ == "__main__":
    main()
