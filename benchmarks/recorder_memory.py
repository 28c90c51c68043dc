"""Peak memory of recording dynamics: given-label values only, full class probabilities in memory, and full
class probabilities streamed to a memory-mapped ``.npy``.

Each variant runs in a fresh child process that feeds the same synthetic logits (N samples, C classes, batches
of 512) to a :class:`mislabel.DynamicsRecorder` for T epochs and then calls ``result()``. The child reports the
growth of its peak resident memory (``ru_maxrss``) from just before the recorder was built to just after
``result()``, so imports and the interpreter do not count. Reported per variant: that growth in bytes per
sample per epoch, next to the bytes the result holds (4 for the given-label probability, 4 for the margin, 4
for the runner-up class, 2 C for float16 full probabilities).

The side-by-side ratios:

* ``full_in_memory_vs_streamed``: peak growth with full probabilities kept in memory over that with them
  streamed to disk (target: streaming keeps the peak near the given-label variant's, so the ratio grows
  with T x C);
* ``streamed_extra_bytes_per_sample``: what streaming adds over the given-label variant, per sample (not per
  epoch): one epoch's buffers, independent of T (target <= 16 C bytes);
* ``in_memory_peak_vs_stored``: what keeping full probabilities in memory adds to the given-label variant's
  peak, over the float16 bytes they take (N x T x C x 2). About 2 is the floor of this design: the recorder's
  own copy and the array ``result()`` returns.

    python benchmarks/recorder_memory.py            # N=50,000, C=100, T=20: ~1 min, ~1 GB at peak
    python benchmarks/recorder_memory.py --quick    # seconds
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

VARIANTS = ("given-label only", "full in memory", "full streamed to disk")


def _child(variant: str, n: int, c: int, epochs: int, folder: str) -> dict:
    """Record in this process; return the peak RSS growth in bytes."""
    import numpy as np
    import torch

    from mislabel.dynamics import DynamicsRecorder
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    batch = 512
    kw = {"given-label only": {}, "full in memory": {"store_full": True},
          "full streamed to disk": {"full_path": Path(folder) / "full.npy"}}[variant]
    # a tiny run first, so that lazily imported modules and first-call kernels are loaded before the baseline
    warm = DynamicsRecorder(64, num_classes=c, **{k: Path(folder) / "warm.npy" if k == "full_path" else v
                                                 for k, v in kw.items()})
    warm.update(torch.randn(64, c, generator=g), torch.randint(0, c, (64,), generator=g), torch.randperm(64))
    warm.result()
    del warm
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    rec = DynamicsRecorder(n, num_classes=c, **kw)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, batch):
            idx = perm[i:i + batch]
            rec.update(3 * torch.randn(len(idx), c, generator=g), torch.randint(0, c, (len(idx),), generator=g), idx)
        rec.next_epoch()
    dyn = rec.result()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    held = dyn.probs.nbytes + dyn.margins.nbytes + dyn.runner_up.nbytes
    full_held = 0 if dyn.full is None or isinstance(dyn.full, np.memmap) else dyn.full.nbytes
    return {"variant": variant, "peak_growth_bytes": peak - base, "result_bytes_in_memory": held + full_held,
            "full_on_disk_bytes": (Path(folder) / "full.npy").stat().st_size if "full_path" in kw else 0}


def measure(variant: str, n: int, c: int, epochs: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        out = subprocess.run([sys.executable, __file__, "--child", variant, str(n), str(c), str(epochs), folder],
                             capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"the {variant!r} child failed:\n{out.stderr[-3000:]}")
        r = json.loads(out.stdout.strip().splitlines()[-1])
    r["peak_bytes_per_sample_per_epoch"] = r["peak_growth_bytes"] / (n * epochs)
    return r


def main(argv=None) -> dict:
    p = _common.parser(__doc__.splitlines()[0])
    args = p.parse_args(argv)
    _common.setup(args)
    n, c, epochs = (5000, 20, 5) if args.quick else (50000, 100, 20)
    print(f"recorder_memory: N={n}, C={c}, T={epochs}; each variant in a fresh process")
    load0 = _common.load()
    rows = {v: measure(v, n, c, epochs) for v in VARIANTS}
    for v, r in rows.items():
        print(f"  {v:<22s} peak growth {r['peak_growth_bytes'] / 2**20:8.1f} MiB = "
              f"{r['peak_bytes_per_sample_per_epoch']:7.1f} B per sample per epoch "
              f"(result holds {r['result_bytes_in_memory'] / 2**20:.1f} MiB in memory"
              + (f", {r['full_on_disk_bytes'] / 2**20:.1f} MiB on disk)" if r["full_on_disk_bytes"] else ")"))
    given, mem, disk = (rows[v]["peak_growth_bytes"] for v in VARIANTS)
    full_stored = n * epochs * c * 2
    ratios = {"full_in_memory_vs_streamed": mem / max(disk, 1),
              "streamed_extra_bytes_per_sample": (disk - given) / n,
              "in_memory_peak_vs_stored": (mem - given) / full_stored}
    met = ratios["streamed_extra_bytes_per_sample"] <= 16 * c
    print(f"full probabilities in memory vs streamed: {ratios['full_in_memory_vs_streamed']:.2f}x the peak; "
          f"streaming adds {ratios['streamed_extra_bytes_per_sample']:.0f} B per sample (target <= {16 * c}, "
          f"independent of T); in memory the peak is {ratios['in_memory_peak_vs_stored']:.2f}x the "
          f"{full_stored / 2**20:.0f} MiB it stores")
    _common.write("recorder_memory", args, {
        "machine": _common.machine(), "load_before": load0, "load_after": _common.load(),
        "samples": n, "classes": c, "epochs": epochs, "results": list(rows.values()), **ratios,
        "target_streamed_extra_bytes_per_sample": 16 * c, "met": met})
    return ratios


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        variant, n, c, epochs, folder = sys.argv[2], *map(int, sys.argv[3:6]), sys.argv[6]
        print(json.dumps(_child(variant, n, c, epochs, folder)))
    else:
        main()
