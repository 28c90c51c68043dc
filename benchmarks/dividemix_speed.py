"""DivideMix's seconds per epoch against mislabel.train.fit's, on the same data, side by side.

Runs ``train.fit`` (``record=None``), ``dividemix`` and ``dividemix(augmentation="augdesc-ws")``
(DM-AugDesc) alternately on the same images and labels (20% symmetric noise) with the same model
and batch size, and reports each one's median seconds per epoch, DivideMix's split into its two
phases: a warm-up epoch (cross-entropy for each of the two networks) and a semi-supervised epoch
(the division, co-refinement, co-guessing and MixMatch for each network). The ratios against
``train.fit``'s epoch are what the performance page quotes.

    python benchmarks/dividemix_speed.py            # a few minutes on 2 cores
    python benchmarks/dividemix_speed.py --quick    # seconds
"""
from __future__ import annotations

import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

import mislabel  # noqa: E402
from mislabel.dividemix import dividemix  # noqa: E402


def main(argv=None) -> dict:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--model", default="cnn")
    p.add_argument("--samples", type=int, default=None, help="training samples (default 2000; quick 200)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per run, warm-up included (default 4; quick 2)")
    p.add_argument("--batch-size", type=int, default=128)
    args = p.parse_args(argv)
    _common.setup(args)
    n = args.samples or (200 if args.quick else 2000)
    epochs = args.epochs or (2 if args.quick else 4)
    warmup = max(1, epochs // 2)
    repeats = args.repeats or (1 if args.quick else 3)
    ds = _common.fashion_mnist_or_synthetic(n)
    noisy, _ = mislabel.noise.symmetric(ds.labels, rate=0.2, num_classes=ds.num_classes, seed=0)
    print(f"dividemix_speed: {args.model} on {ds.name} n={n}, epochs={epochs} ({warmup} warm-up), "
          f"batch {args.batch_size}, repeats={repeats}, threads={torch.get_num_threads()}")
    common = dict(batch_size=args.batch_size, lr=0.05, seed=0, progress=False, device="cpu")
    mislabel.train.fit(args.model, ds.images[:256], noisy[:256], 1, record=None, **common)   # warm-up of the kernels

    def fit():
        r = mislabel.train.fit(args.model, ds.images, noisy, epochs, record=None, **common)
        return {"fit": r.history["seconds"]}

    def dm(augmentation):
        r = dividemix(args.model, ds.images, noisy, epochs, warmup_epochs=warmup, augmentation=augmentation,
                      **common)
        phases = r.history["phase"]
        return {p: [s for s, q in zip(r.history["seconds"], phases) if q == p] for p in ("warmup", "train")}

    load0 = _common.load()
    res = _common.interleave({"train.fit": fit, "dividemix": lambda: dm("standard"),
                              "dm-augdesc": lambda: dm("augdesc-ws")}, repeats)
    per_epoch = {"train.fit": statistics.median(s for e in res["train.fit"]["extra"] for s in e["fit"])}
    for name in ("dividemix", "dm-augdesc"):
        for phase in ("warmup", "train"):
            per_epoch[f"{name} {phase}"] = statistics.median(s for e in res[name]["extra"] for s in e[phase])
    ratios = {k: v / per_epoch["train.fit"] for k, v in per_epoch.items()}
    for k, v in per_epoch.items():
        print(f"  {k:<22s} {v:7.3f} s per epoch   {ratios[k]:6.2f}x train.fit")
    _common.write("dividemix_speed", args, {
        "machine": _common.machine(), "load_before": load0, "load_after": _common.load(),
        "model": args.model, "dataset": ds.name, "samples": n, "epochs": epochs, "warmup_epochs": warmup,
        "batch_size": args.batch_size, "repeats": repeats,
        "median_wall_s": {k: v["median_wall"] for k, v in res.items()},
        "seconds_per_epoch": per_epoch, "ratio_vs_fit": ratios})
    return ratios


if __name__ == "__main__":
    main()
