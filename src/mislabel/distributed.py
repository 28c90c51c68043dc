"""Capture training dynamics with several processes (GPUs or CPU workers, one or many machines).

:func:`fit_ddp` is :func:`mislabel.train.fit` under PyTorch
``DistributedDataParallel``: launch one process per device with ``torchrun``
and every process calls it with the same arguments. Rank 0 returns the same
:class:`~mislabel.dynamics.Dynamics` a single-process run returns: probabilities
of shape (N, epochs) in sample order, the given labels, ``is_flipped``, margins
(and optionally full class probabilities, in memory or streamed to a ``.npy``).

How the work is split
---------------------
* Every process holds the whole training set (uint8 -> float on its device, as
  ``fit`` does) and the same model initialisation (same seed; DDP also
  broadcasts rank 0's weights).
* Each epoch rank 0 draws the permutation exactly as ``fit`` does and
  broadcasts it. The permutation is padded (by repeating its start, like
  ``DistributedSampler``) to a multiple of the world size W, and every global
  batch of ``batch_size`` samples (rounded up to a multiple of W) is dealt out
  round-robin: rank r trains on ``batch[r::W]``. So the global batches are the
  ones a single process would see with the same seed; gradients are averaged
  across ranks by DDP. Augmentation is batched on each rank (rank 0 uses
  ``fit``'s random stream, other ranks their own).
* ``record="train"``: each rank keeps the logits of its own samples for the
  epoch (its shard: N/W x C floats) and at the end of the epoch they are
  all-gathered with the sample ids (in chunks) into rank 0's
  :class:`~mislabel.dynamics.DynamicsRecorder`.
  ``record="eval"``: after the epoch rank 0's BatchNorm statistics are
  broadcast, each rank evaluates a contiguous 1/W of the un-augmented training
  set, and the logits are gathered the same way — identical (to float
  rounding) to a single-process evaluation pass with the same weights.

With W = 1 (or without an initialised process group) :func:`fit_ddp` gives
bit-for-bit the result of :func:`mislabel.train.fit` on CPU.

Differences from a single process with W > 1: BatchNorm statistics are per
rank (batches of ``batch_size / W``), and augmentation draws differ, so values
are not bit-identical; shapes, sample order and labels are.

Command line (one process per GPU; ``--nproc_per_node`` CPU workers with gloo)::

    torchrun --nproc_per_node=8 -m mislabel.distributed --dataset cifar10 --model resnet32 \\
        --epochs 200 --noise symmetric --rate 0.4 --amp --out runs/cifar10_ddp.npz
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from tqdm.auto import tqdm

from ._utils import amp_enabled, resolve_device, set_seed
from .dynamics import DynamicsRecorder
from .train import (TrainResult, _accuracy, build_model, check_finite, check_inputs, check_settings, check_test,
                    device_data, eval_batch_size, forward, log_epoch, run_meta, sgd, sgd_step)

__all__ = ["fit_ddp", "init_from_env", "world", "main"]


def world() -> tuple[int, int]:
    """(rank, world_size) of the default process group; (0, 1) when none is initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_from_env(backend: str | None = None, device=None) -> torch.device:
    """Initialise the default process group from torchrun's environment and return this rank's device.

    Uses ``nccl`` and ``cuda:$LOCAL_RANK`` when CUDA is available, else ``gloo``
    and the CPU. Without torchrun's variables (``RANK``/``WORLD_SIZE``) nothing is
    initialised and the device for a single process is returned.

    Parameters
    ----------
    backend : str, optional
        ``"nccl"`` or ``"gloo"``; default from the device, as above.
    device : str, optional
        ``"cpu"`` trains on the CPU with ``gloo`` even where CUDA is available
        (CPU workers on a GPU machine); default: CUDA when available.

    Raises
    ------
    ValueError
        If ``device`` is not a known device, or on CUDA if this process's
        ``LOCAL_RANK`` has no GPU of its own (more processes than GPUs).
    """
    cpu = device is not None and resolve_device(device).type == "cpu"
    cuda = torch.cuda.is_available() and not cpu
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return torch.device("cuda" if cuda else "cpu")
    local = int(os.environ.get("LOCAL_RANK", 0))
    if cuda:
        n = torch.cuda.device_count()
        if local >= n:
            raise ValueError(f"LOCAL_RANK {local} has no GPU: this machine has {n} CUDA device(s) and each "
                             f"process needs its own; launch at most --nproc_per_node={n}, or train on CPU workers "
                             "with gloo (--device cpu; init_from_env(device='cpu') from Python)")
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if cuda else "gloo"))
    return torch.device("cuda", local) if cuda else torch.device("cpu")


def _gather_into(rec: DynamicsRecorder | None, ids: torch.Tensor, logits: torch.Tensor, y_all: torch.Tensor,
                 world_size: int, rank: int, chunk: int = 16384) -> None:
    """All-gather every rank's (ids, logits) — equal lengths on all ranks — into rank 0's recorder."""
    n = len(ids)
    for s in range(0, n, chunk):
        i_loc, l_loc = ids[s:s + chunk].contiguous(), logits[s:s + chunk].contiguous()
        if world_size > 1:
            i_all = [torch.empty_like(i_loc) for _ in range(world_size)]
            l_all = [torch.empty_like(l_loc) for _ in range(world_size)]
            dist.all_gather(i_all, i_loc)
            dist.all_gather(l_all, l_loc)
        else:
            i_all, l_all = [i_loc], [l_loc]
        if rank == 0:
            for i_r, l_r in zip(i_all, l_all):
                rec.update(l_r, y_all[i_r], i_r)


def fit_ddp(model, images, labels, epochs: int = 10, *, batch_size: int = 128, lr: float = 0.1,
            momentum: float = 0.9, weight_decay: float = 5e-4, milestones=(0.5, 0.75), augment="auto",
            record: str | None = "train", seed: int = 0, device=None, amp: bool = False,
            num_classes: int | None = None, test_images=None, test_labels=None, is_flipped=None,
            store_full: bool = False, full_path=None, meta: dict | None = None,
            progress: bool = True) -> TrainResult:
    """Distributed :func:`mislabel.train.fit`: call it on every rank with the same arguments.

    Parameters
    ----------
    model, images, labels, epochs, lr, momentum, weight_decay, milestones, augment, record, seed, amp,
    num_classes, test_images, test_labels, is_flipped, store_full, full_path, meta, progress
        As in :func:`mislabel.train.fit` (``full_path`` is written by rank 0 only).
    batch_size : int
        The *global* batch size (as in ``fit``); each of the W ranks trains on
        ``ceil(batch_size / W)`` samples per step, so ``lr`` keeps its meaning.
    device : str or torch.device, optional
        This rank's device; default ``cuda:$LOCAL_RANK`` when CUDA is available, else CPU.

    Returns
    -------
    TrainResult
        On rank 0 with ``dynamics`` (N, epochs) in sample order; on other ranks
        ``dynamics`` is None. ``model`` is the trained module (not the DDP
        wrapper); ``history`` holds the global loss and accuracy.
    """
    rank, W = world()
    images, y_np, N, C = check_inputs(images, labels, epochs, record, num_classes)
    check_test(images, test_images, test_labels)
    batch_size, lr, seed = check_settings(batch_size, lr, seed)
    if device is None:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
    dev = resolve_device(device)
    set_seed(seed)
    model, model_name = build_model(model, images, C, dev)
    use_amp = amp_enabled(amp, dev)
    net = model
    if W > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    norm, x_all, y_all, pad, flip, test = device_data(images, y_np, C, dev, augment,
                                                      test_images if rank == 0 else None, test_labels)
    has_test = test is not None
    if has_test:
        x_test, y_test = test
    opt, sched = sgd(model, epochs, lr, momentum, weight_decay, milestones)
    gen = torch.Generator(device=dev)
    gen.manual_seed(int(seed) if rank == 0 else int(seed) + (rank << 32))
    rec = None
    if record is not None and rank == 0:
        rec = DynamicsRecorder(N, num_classes=C, store_full=store_full, device=dev, check=False,
                               capacity=epochs, full_path=full_path)
    M = math.ceil(N / W) * W                      # padded epoch length
    per_rank = math.ceil(batch_size / W)
    gbatch = per_rank * W                         # global batch, a multiple of W
    hist = {k: [] for k in ("epoch", "lr", "train_loss", "train_acc", "test_acc", "seconds")}

    bar = tqdm(range(epochs), desc=f"train {model_name} x{W}", disable=not progress or rank != 0, leave=False)
    for epoch in bar:
        t0 = time.perf_counter()
        net.train()
        perm = torch.randperm(N, device=dev, generator=gen)
        if W > 1:
            dist.broadcast(perm, src=0)
            perm = torch.cat([perm, perm[:M - N]])
        loss_sum = torch.zeros((), device=dev)
        correct = torch.zeros((), device=dev, dtype=torch.int64)
        seen_ids, seen_logits = [], []
        for i in range(0, M, gbatch):
            idx = perm[i:i + gbatch][rank::W]
            logits, yb, loss = sgd_step(net, opt, x_all, y_all, idx, pad, flip, gen, use_amp)
            with torch.no_grad():
                loss_sum += loss * len(idx)
                correct += (logits.argmax(1) == yb).sum()
                if record == "train":
                    seen_ids.append(idx)
                    seen_logits.append(logits)
        current_lr = opt.param_groups[0]["lr"]
        sched.step()
        if record == "train":
            _gather_into(rec, torch.cat(seen_ids), torch.cat(seen_logits), y_all, W, rank)
        elif record == "eval":
            model.eval()
            with torch.no_grad():
                if W > 1:  # every rank evaluates with rank 0's weights *and* BatchNorm statistics
                    for b in model.buffers():
                        dist.broadcast(b, src=0)
                share = M // W
                ids = torch.arange(rank * share, (rank + 1) * share, device=dev) % N
                lo, hi = rank * share, min((rank + 1) * share, N)
                out = []
                eb = eval_batch_size(dev)
                for s in range(lo, hi, eb):
                    out.append(forward(model, x_all[s:min(s + eb, hi)], use_amp))
                if hi - lo < share:    # padding: the start of the set again
                    out.append(forward(model, x_all[ids[max(hi - lo, 0):]], use_amp))
                _gather_into(rec, ids, torch.cat(out), y_all, W, rank)
        if rec is not None:
            rec.next_epoch()
        stats = torch.stack([loss_sum, correct.to(loss_sum.dtype)])
        if W > 1:
            dist.all_reduce(stats)
        test_acc = _accuracy(model, x_test, y_test, use_amp) if has_test else float("nan")
        log_epoch(hist, bar, epoch, current_lr, float(stats[0]) / M, float(stats[1]) / M, test_acc, t0)
        check_finite(hist["train_loss"][-1], epoch, lr, model if epoch == epochs - 1 else None)
    model.eval()

    dyn = None
    if rec is not None:
        info = run_meta(model_name, epochs, record, seed, batch_size, lr, weight_decay, C, meta, world_size=W)
        dyn = rec.result(labels=y_np, is_flipped=is_flipped, meta=info)
    return TrainResult(dyn, model, hist, norm)


# --------------------------------------------------------------------------- command line
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m mislabel.distributed",
        description="Capture training dynamics with DistributedDataParallel. Launch with "
                    "`torchrun --nproc_per_node=N -m mislabel.distributed ...` (nccl on GPUs, gloo on CPU); "
                    "run directly for a single process. Rank 0 writes the dynamics (.npz).")
    p.add_argument("--dataset", default="fashion-mnist", help="name for mislabel.data.load (default: fashion-mnist)")
    p.add_argument("--subset", type=int, default=None, help="number of training samples (default: all)")
    p.add_argument("--root", default=None, help="dataset folder")
    p.add_argument("--noise", default="symmetric", choices=("none", "symmetric", "asymmetric"))
    p.add_argument("--rate", type=float, default=0.4, help="noise rate (default: 0.4)")
    p.add_argument("--noise-seed", type=int, default=0)
    p.add_argument("--model", default="cnn", help="cnn, mlp, resnet20/32/56 (default: cnn)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128, help="global batch size (default: 128)")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--record", default="train", choices=("train", "eval"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast (CUDA, or a CPU with native bfloat16)")
    p.add_argument("--store-full", action="store_true", help="also record all class probabilities")
    p.add_argument("--full-path", default=None,
                   help="stream all class probabilities (float16, memory-mapped) to this .npy")
    p.add_argument("--device", default=None, choices=("cpu", "cuda"),
                   help="cuda (one GPU per process, nccl) or cpu (gloo); default: cuda when available")
    p.add_argument("--out", required=True, help="where rank 0 writes the dynamics (.npz)")
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    from . import data as _data
    from . import noise as _noise
    try:
        dev = init_from_env(device=args.device)
    except ValueError as e:
        print(f"python -m mislabel.distributed: error: {e}", file=sys.stderr, flush=True)
        return 2
    rank, W = world()
    try:
        ds = _data.load(args.dataset, split="train", root=args.root, subset=args.subset, seed=0)
        clean = ds.labels.numpy()
        if args.noise == "none" or args.rate == 0:
            noisy, flipped = clean.copy(), np.zeros(len(clean), dtype=bool)
        else:
            noisy, flipped = _noise.make(args.noise, clean, args.rate, ds.num_classes, seed=args.noise_seed)
        meta = {"dataset": args.dataset, "subset": args.subset, "noise": args.noise, "rate": args.rate,
                "noise_seed": args.noise_seed, "classes": list(ds.classes)}
        t0 = time.perf_counter()
        run = fit_ddp(args.model, ds.images, noisy, args.epochs, batch_size=args.batch_size, lr=args.lr,
                      weight_decay=args.weight_decay, record=args.record, seed=args.seed, device=dev,
                      amp=args.amp, num_classes=ds.num_classes, is_flipped=flipped, store_full=args.store_full,
                      full_path=args.full_path, meta=meta, progress=rank == 0)
        seconds = time.perf_counter() - t0
        if rank == 0:
            out = run.dynamics.save(args.out)
            summary = {"out": str(out), "world_size": W, "device": str(dev), "seconds": round(seconds, 3),
                       "shape": list(run.dynamics.probs.shape), "final_train_acc": run.history["train_acc"][-1]}
            print(json.dumps(summary), flush=True)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
