"""Our training loop (mislabel.train.fit, record="train") vs a paper-style loop.

The paper-style loop is what the reference implementations of training-
dynamics methods do: a ``Dataset`` whose ``__getitem__`` augments one image at
a time (random crop with zero padding, horizontal flip, to-tensor, normalise;
written here on NumPy/PIL-like HWC uint8 arrays, as torchvision would do it),
a ``DataLoader`` with default collation, a model in the default NCHW memory
format, and after every epoch a separate evaluation pass over the training set
to record each sample's probability of its given label.

Both loops use the same model (``cnn``), data (a Fashion-MNIST subset), SGD
settings, learning-rate schedule, augmentation (pad 2 + flip) and epochs. The
two are run alternately (A, B, A, B, ...), repetition r with seed r; the
speed-up is the ratio of median wall times. Final train and test accuracy are
reported for both, per seed: they should agree within seed noise.

Where the CPU computes bfloat16 natively (AVX512-BF16 or AMX), a further
variant runs ``train.fit(amp=True)`` (bfloat16 autocast); its speed-up is
reported separately from the float32 one.

With ``--breakdown`` a third variant, the paper-style loop with the model and
batches in channels-last memory format, separates the gain of the memory
format from that of the data pipeline and of recording during training.

On a GPU (``--device cuda``) both loops train there: the paper-style loop moves
each collated batch to the GPU (pinned memory, ``--workers`` processes for
the per-sample pipeline), ``train.fit`` keeps the data set on the GPU and
replays CUDA graphs; the ``amp`` variant is bfloat16 autocast.

    python benchmarks/loop_vs_paper.py            # ~3 min on 2 cores
    python benchmarks/loop_vs_paper.py --quick    # seconds
    python benchmarks/loop_vs_paper.py --device cuda --samples 60000 --workers 8 --models cnn,resnet20
"""
from __future__ import annotations

import functools
import itertools
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

import mislabel  # noqa: E402
from mislabel.train import channel_stats  # noqa: E402


class PaperStyleDataset(Dataset):
    """Per-sample pipeline: random crop with zero padding, random horizontal flip, ToTensor, Normalize.

    ``images`` are (N, H, W, C) uint8, as PIL/NumPy images are; randomness comes from
    ``torch.randint``/``torch.rand`` per call, as in torchvision's transforms.
    """

    def __init__(self, images_hwc: np.ndarray, labels: np.ndarray, mean, std, pad: int = 0, flip: bool = False):
        self.images, self.labels = images_hwc, labels
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
        self.pad, self.flip = pad, flip

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        img = self.images[i]                                    # (H, W, C) uint8
        if self.pad:                                            # RandomCrop(size, padding=pad)
            H, W = img.shape[:2]
            padded = np.pad(img, ((self.pad, self.pad), (self.pad, self.pad), (0, 0)))
            top = int(torch.randint(0, 2 * self.pad + 1, (1,)))
            left = int(torch.randint(0, 2 * self.pad + 1, (1,)))
            img = padded[top:top + H, left:left + W]
        if self.flip and float(torch.rand(1)) < 0.5:            # RandomHorizontalFlip()
            img = img[:, ::-1]
        x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div(255.0)  # ToTensor
        x = (x - self.mean) / self.std                          # Normalize
        return x, int(self.labels[i]), i


def paper_loop(model_name, images, labels, test_images, test_labels, epochs, *, seed=0, batch_size=128, lr=0.1,
               momentum=0.9, weight_decay=5e-4, workers=0, channels_last=False, device="cpu") -> dict:
    torch.manual_seed(seed)
    np.random.seed(seed)
    N, C_in, H, _ = images.shape
    num_classes = int(labels.max()) + 1
    mean, std = channel_stats(images)
    hwc = images.permute(0, 2, 3, 1).numpy()
    y = labels.numpy()
    pad, flip = mislabel.train.default_augment(images)
    train_set = PaperStyleDataset(hwc, y, mean, std, pad, flip)
    plain_set = PaperStyleDataset(hwc, y, mean, std)           # for the recording pass
    dev = torch.device(device)
    pin = dev.type == "cuda"
    loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, num_workers=workers,
                        persistent_workers=workers > 0, pin_memory=pin)
    record_loader = DataLoader(plain_set, batch_size=batch_size, shuffle=False, num_workers=workers,
                               persistent_workers=workers > 0, pin_memory=pin)
    model = mislabel.models.build(model_name, C_in, num_classes, H)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(dev, memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(
        opt, sorted({int(round(m * epochs)) for m in (0.5, 0.75) if 0 < int(round(m * epochs)) < epochs}), 0.1)
    probs = np.zeros((N, epochs), dtype=np.float32)
    seconds = []
    for epoch in range(epochs):
        t0 = time.perf_counter()
        model.train()
        for xb, yb, _ in loader:
            xb = xb.to(dev, non_blocking=True).contiguous(memory_format=fmt)
            loss = F.cross_entropy(model(xb), yb.to(dev, non_blocking=True))
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        model.eval()                                            # separate recording pass
        with torch.no_grad():
            for xb, yb, idx in record_loader:
                p = torch.softmax(model(xb.to(dev, non_blocking=True).contiguous(memory_format=fmt)), 1)
                probs[idx.numpy(), epoch] = p[torch.arange(len(yb)), yb.to(dev)].cpu().numpy()
        seconds.append(time.perf_counter() - t0)
    train_acc = _acc(model, PaperStyleDataset(hwc, y, mean, std), fmt, dev)
    ths = test_images.permute(0, 2, 3, 1).numpy()
    test_acc = _acc(model, PaperStyleDataset(ths, test_labels.numpy(), mean, std), fmt, dev)
    return {"epoch_seconds": seconds, "train_acc": train_acc, "test_acc": test_acc,
            "final_prob_mean": float(probs[:, -1].mean())}


@torch.no_grad()
def _acc(model, dataset, fmt, dev) -> float:
    model.eval()
    correct = 0
    for xb, yb, _ in DataLoader(dataset, batch_size=1024):
        correct += int((model(xb.to(dev).contiguous(memory_format=fmt)).argmax(1).cpu() == yb).sum())
    return correct / len(dataset)


def ours(model_name, images, labels, test_images, test_labels, epochs, *, seed=0, amp=False, device="cpu") -> dict:
    run = mislabel.train.fit(model_name, images, labels, epochs, record="train", seed=seed, progress=False, amp=amp,
                             device=device)
    x_tr = mislabel.train.predict(run.model, images, run.normalization).argmax(1)  # on the model's device
    x_te = mislabel.train.predict(run.model, test_images, run.normalization).argmax(1)
    return {"epoch_seconds": run.history["seconds"], "train_acc": float((x_tr == labels.numpy()).mean()),
            "test_acc": float((x_te == test_labels.numpy()).mean()),
            "final_prob_mean": float(run.dynamics.probs[:, -1].mean())}


def main(argv=None) -> dict:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=None, help="training samples (default 5000; quick 400)")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default 3; quick 1)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers of the paper-style loop")
    p.add_argument("--models", default=None,
                   help="comma-separated models (default: cnn,mlp; the headline speed-up is the first)")
    p.add_argument("--no-breakdown", action="store_true",
                   help="skip the paper-style loop in channels-last format (for conv models)")
    p.add_argument("--device", default="cpu", help="cpu (default: the target is a CPU target) or cuda")
    args = p.parse_args(argv)
    _common.setup(args)
    n = args.samples or (400 if args.quick else 5000)
    epochs = args.epochs or (1 if args.quick else 3)
    repeats = args.repeats or (1 if args.quick else 3)
    train = _common.fashion_mnist_or_synthetic(n)
    test = _common.fashion_mnist_or_synthetic(2000 if not args.quick else 200, split="test")
    dev = args.device
    print(f"loop_vs_paper: {train.name} n={n}, epochs={epochs}, repeats={repeats}, "
          f"threads={torch.get_num_threads()}, workers={args.workers}, device={dev}")
    models = (args.models or "cnn,mlp").split(",")
    data = (train.images, train.labels, test.images, test.labels, epochs)
    variants = {}

    def seeded(fn, **kw):  # repetition r of every variant uses seed r: accuracy spread = seed noise
        counter = itertools.count()
        return lambda: fn(*data, seed=next(counter), **kw)

    # bfloat16 mixed precision (train.fit(amp=True)) on CUDA, or where this CPU computes bfloat16 natively
    amp = mislabel._utils.amp_enabled(True, mislabel._utils.resolve_device(dev))
    for m in models:
        variants[f"{m}/paper_style"] = seeded(functools.partial(paper_loop, m), workers=args.workers, device=dev)
        variants[f"{m}/ours"] = seeded(functools.partial(ours, m), device=dev)
        if amp:
            variants[f"{m}/ours_amp"] = seeded(functools.partial(ours, m), amp=True, device=dev)
        if m != "mlp" and not args.no_breakdown:
            variants[f"{m}/paper_style_channels_last"] = seeded(functools.partial(paper_loop, m),
                                                                workers=args.workers, channels_last=True, device=dev)
    # warm-up (one-time kernel selection and allocation), not timed
    small = (train.images[:256], train.labels[:256], test.images[:64], test.labels[:64], 1)
    for m in models:
        paper_loop(m, *small, device=dev)
        ours(m, *small, device=dev)
        if amp:
            ours(m, *small, amp=True, device=dev)
    load0 = _common.load()
    res = _common.interleave(variants, repeats)
    summary = {}
    for k, v in res.items():
        m = k.split("/")[0]
        summary[k] = {"median_wall_s": v["median_wall"], "median_cpu_s": v["median_cpu"],
                      "time_vs_ours": v["median_wall"] / res[f"{m}/ours"]["median_wall"],
                      "train_acc": [e["train_acc"] for e in v["extra"]],
                      "test_acc": [e["test_acc"] for e in v["extra"]],
                      "epoch_seconds": [e["epoch_seconds"] for e in v["extra"]]}
    speedups = {m: summary[f"{m}/paper_style"]["time_vs_ours"] for m in models}
    for k, v in summary.items():
        print(f"  {k:<32s} {v['median_wall_s']:7.2f} s  ({v['time_vs_ours']:.2f}x ours)  "
              f"train acc {np.mean(v['train_acc']):.4f}  test acc {np.mean(v['test_acc']):.4f}")
    speedups_amp = {m: res[f"{m}/paper_style"]["median_wall"] / res[f"{m}/ours_amp"]["median_wall"]
                    for m in models if f"{m}/ours_amp" in res}
    for m, s in speedups.items():
        extra = f"; with amp=True (bfloat16): {speedups_amp[m]:.2f}x" if m in speedups_amp else ""
        target = "(target >= 5x)" if dev == "cpu" else "(the 5x target is a CPU target)"
        print(f"speed-up of train.fit over the paper-style loop, {m}, {dev}: {s:.2f}x float32{extra} {target}")
    _common.write("loop_vs_paper", args, {
        "machine": _common.machine(dev), "device": dev, "load_before": load0, "load_after": _common.load(),
        "dataset": train.name, "samples": n, "test_samples": len(test), "epochs": epochs, "repeats": repeats,
        "workers": args.workers, "models": models, "speedup": speedups[models[0]], "speedups": speedups,
        "target_speedup": 5.0, "met": speedups[models[0]] >= 5.0 if dev == "cpu" else None, "amp": amp,
        "speedups_amp": speedups_amp,
        "met_amp": (bool(speedups_amp) and speedups_amp[models[0]] >= 5.0) if dev == "cpu" else None, "variants": summary})
    return summary


if __name__ == "__main__":
    main()
