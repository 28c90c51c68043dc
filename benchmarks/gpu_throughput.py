"""Training throughput of ResNet-32 on CIFAR-shaped data with dynamics capture, on the best device found.

Random uint8 images of shape (N, 3, 32, 32) with 10 classes (the speed does
not depend on the pixels), trained with :func:`mislabel.train.fit` —
``record="train"`` against ``record=None``, alternately — on CUDA when
available (bfloat16 autocast, ``amp=True``), else on the CPU. Reports
images per second (training images processed, recording included) and the
capture overhead; the JSON records the device.

    python benchmarks/gpu_throughput.py            # GPU: 50k images x 3 epochs; CPU: 1000 x 1
    python benchmarks/gpu_throughput.py --quick    # seconds
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

import mislabel  # noqa: E402


def main(argv=None) -> dict:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None, help="default 128 (quick: 32)")
    p.add_argument("--model", default="resnet32")
    p.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    args = p.parse_args(argv)
    _common.setup(args)
    dev = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    gpu = dev.startswith("cuda")
    n = args.samples or (64 if args.quick else (50000 if gpu else 1000))
    args.batch_size = args.batch_size or (32 if args.quick else 128)
    epochs = args.epochs or (1 if args.quick or not gpu else 3)
    repeats = args.repeats or (1 if args.quick else 2)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (n,), generator=g)
    print(f"gpu_throughput: {args.model} on {dev}, {n} images x {epochs} epochs, batch {args.batch_size}, "
          f"amp={gpu}, repeats={repeats}")
    mislabel.train.fit(args.model, images[:64], labels[:64], 1, batch_size=32, device=dev, amp=gpu,
                       progress=False)  # warm-up

    def run(record):
        def go():
            r = mislabel.train.fit(args.model, images, labels, epochs, batch_size=args.batch_size, record=record,
                                   device=dev, amp=gpu, progress=False)
            if gpu:
                torch.cuda.synchronize()
            return {"epoch_seconds": r.history["seconds"]}
        return go

    load0 = _common.load()
    res = _common.interleave({"record=None": run(None), "record=train": run("train")}, repeats)
    ips = {k: n * epochs / v["median_wall"] for k, v in res.items()}
    # steady state: epochs after the first of each run
    later = {k: [s for e in v["extra"] for s in e["epoch_seconds"][1:]] for k, v in res.items()}
    ips_steady = {k: (n / (sum(v) / len(v)) if v else None) for k, v in later.items()}
    overhead = res["record=train"]["median_wall"] / res["record=None"]["median_wall"]
    for k in ips:
        print(f"  {k:<14s} {ips[k]:10,.0f} images/s" + (f"  (steady state {ips_steady[k]:,.0f})" if ips_steady[k] else ""))
    print(f"capture overhead record=train vs None: {overhead:.3f}x on {dev}")
    _common.write("gpu_throughput", args, {
        "machine": _common.machine(dev), "load_before": load0, "load_after": _common.load(), "model": args.model,
        "device": dev, "amp": gpu, "samples": n, "epochs": epochs, "batch_size": args.batch_size,
        "repeats": repeats, "images_per_s": ips, "images_per_s_steady": ips_steady,
        "capture_overhead": overhead, "gpu_measured": gpu,
        "median_wall_s": {k: v["median_wall"] for k, v in res.items()}})
    return ips


if __name__ == "__main__":
    main()
