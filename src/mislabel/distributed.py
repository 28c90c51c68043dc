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

After every epoch rank 0 writes a checkpoint (``fit_ddp(checkpoint_dir=...)``; on the command line
``OUT`` without ``.npz`` plus ``.checkpoint``, or ``--checkpoint-dir``), with every rank's random
streams: the same command after the processes were killed resumes from the last complete epoch and
writes the same bytes as an uninterrupted run, and after a finished run it trains nothing.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

from ._utils import resolve_device
from .dynamics import DynamicsRecorder
from .train import TrainOptions, Training, TrainResult, eval_batch_size, forward
from .train import checkpoint as _ckpt

__all__ = ["fit_ddp", "DistributedTraining", "init_from_env", "world", "main"]


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


class DistributedTraining(Training):
    """:class:`mislabel.train.Training` as one rank of the default process group (see the module docstring).

    Its hooks deal each global batch out round-robin, gather the recorded logits
    into rank 0's recorder and all-reduce the epoch's loss and accuracy; the
    epoch loop, the checks and the setup are :class:`~mislabel.train.Training`'s.

    Parameters
    ----------
    model, images, labels, epochs, options
        As for :class:`~mislabel.train.Training`.
    device : str or torch.device, optional
        This rank's device; default ``cuda:$LOCAL_RANK`` when CUDA is available, else CPU.

    Attributes
    ----------
    rank, world_size : int
        From :func:`world`.
    count : int
        The padded epoch length M: N rounded up to a multiple of ``world_size``.

    Raises
    ------
    ValueError
        Bad inputs or settings, as for :func:`mislabel.train.fit`.
    """

    def __init__(self, model, images, labels, epochs, options: TrainOptions, device=None) -> None:
        self.rank, self.world_size = world()
        super().__init__(model, images, labels, epochs, options, device)
        W, dev = self.world_size, self.device
        if W > 1:
            self.net = nn.parallel.DistributedDataParallel(self.model,
                                                           device_ids=[dev.index] if dev.type == "cuda" else None)
        self.count = math.ceil(self.N / W) * W                  # padded epoch length M
        self.global_batch = math.ceil(self.batch_size / W) * W  # a multiple of W
        self.desc += f" x{W}"
        self._ids, self._logits = [], []

    def default_device(self):
        """``cuda:$LOCAL_RANK`` when CUDA is available, else ``"cpu"``."""
        return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"

    def batches(self) -> list[torch.Tensor]:
        """Rank 0's permutation (padded by its start to M), each global batch dealt out: this rank's ``[rank::W]``."""
        N, M, W = self.N, self.count, self.world_size
        perm = torch.randperm(N, device=self.device, generator=self.gen)
        if W > 1:
            dist.broadcast(perm, src=0)
            perm = torch.cat([perm, perm[:M - N]])
        return [perm[i:i + self.global_batch][self.rank::W] for i in range(0, M, self.global_batch)]

    def record_batch(self, logits: torch.Tensor, labels: torch.Tensor, idx: torch.Tensor) -> None:
        """``record="train"``: keep this rank's logits and sample ids until the end of the epoch."""
        if self.record == "train":
            self._ids.append(idx)
            self._logits.append(logits)

    def record_epoch(self) -> None:
        """Gather the epoch's logits (``"train"``) or a sharded eval pass (``"eval"``) into rank 0's recorder."""
        W, rank, dev = self.world_size, self.rank, self.device
        if self.record == "train":
            _gather_into(self.rec, torch.cat(self._ids), torch.cat(self._logits), self.y_all, W, rank)
            self._ids, self._logits = [], []
        elif self.record == "eval":
            model, x_all, N = self.model, self.x_all, self.N
            model.eval()
            with torch.no_grad():
                if W > 1:  # every rank evaluates with rank 0's weights *and* BatchNorm statistics
                    for b in model.buffers():
                        dist.broadcast(b, src=0)
                share = self.count // W
                ids = torch.arange(rank * share, (rank + 1) * share, device=dev) % N
                lo, hi = rank * share, min((rank + 1) * share, N)
                out = []
                eb = eval_batch_size(dev)
                for s in range(lo, hi, eb):
                    out.append(forward(model, x_all[s:min(s + eb, hi)], self.use_amp))
                if hi - lo < share:    # padding: the start of the set again
                    out.append(forward(model, x_all[ids[max(hi - lo, 0):]], self.use_amp))
                _gather_into(self.rec, ids, torch.cat(out), self.y_all, W, rank)
        if self.rec is not None:
            self.rec.next_epoch()

    def totals(self, loss_sum: torch.Tensor, correct: torch.Tensor) -> tuple[float, float]:
        """The epoch's loss and correct predictions summed over all ranks."""
        stats = torch.stack([loss_sum, correct.to(loss_sum.dtype)])
        if self.world_size > 1:
            dist.all_reduce(stats)
        return float(stats[0]), float(stats[1])

    def rank_streams(self) -> list[dict]:
        """Every rank's own random streams, gathered (rank 0 writes them all into one checkpoint)."""
        mine = super().rank_streams()[0]
        if self.world_size == 1:
            return [mine]
        states = [None] * self.world_size
        dist.all_gather_object(states, mine)
        return states

    def read_checkpoint(self) -> dict | None:
        """Rank 0 reads the checkpoint and sends it (without the recorder, which only rank 0 has) to the others;
        a checkpoint rank 0 cannot read is an error on every rank."""
        state, error = None, None
        if self.rank == 0:
            try:
                state = super().read_checkpoint()
            except _ckpt.CheckpointError as exc:
                error = str(exc)
        if self.world_size > 1:
            box = [(error, None if state is None else {k: v for k, v in state.items() if k != "recorder"})]
            dist.broadcast_object_list(box, src=0)
            error, shared = box[0]
            if self.rank != 0:
                state = None if shared is None else {**shared, "recorder": None}
        if error is not None:
            raise _ckpt.CheckpointError(error)
        return state


def fit_ddp(model, images, labels, epochs: int = 10, *, device=None, **options) -> TrainResult:
    """Distributed :func:`mislabel.train.fit`: call it on every rank with the same arguments.

    Parameters
    ----------
    model, images, labels, epochs
        As in :func:`mislabel.train.fit`.
    device : str or torch.device, optional
        This rank's device; default ``cuda:$LOCAL_RANK`` when CUDA is available, else CPU.
    **options
        The keyword arguments of :func:`mislabel.train.fit` other than ``device``,
        ``recorder`` and ``cuda_graphs`` (:class:`mislabel.train.TrainOptions`),
        with the same defaults. ``full_path`` is written by rank 0 only, and so is
        the checkpoint in ``checkpoint_dir`` (every rank's random streams in one
        file: rank 0 reads it when resuming and sends it to the others).
        ``batch_size`` is the *global* batch size: each of the W ranks trains on
        ``ceil(batch_size / W)`` samples per step, so ``lr`` keeps its meaning.

    Returns
    -------
    TrainResult
        On rank 0 with ``dynamics`` (N, epochs) in sample order; on other ranks
        ``dynamics`` is None. ``model`` is the trained module (not the DDP
        wrapper); ``history`` holds the global loss and accuracy.

    Raises
    ------
    TypeError
        For a keyword that is not an option.
    ValueError, TrainingDivergedError
        As :func:`mislabel.train.fit` raises them.
    """
    training = DistributedTraining(model, images, labels, epochs, TrainOptions.from_kwargs("fit_ddp", options),
                                   device)
    return training.result(training.run(), world_size=training.world_size)


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
    p.add_argument("--checkpoint-dir", default=None,
                   help="where rank 0 writes a checkpoint after every epoch; the same command after an "
                        "interruption resumes from it, and after a finished run trains nothing "
                        "(default: OUT without .npz, plus .checkpoint)")
    p.add_argument("--no-checkpoint", action="store_true",
                   help="write no checkpoint (none is written with --full-path either)")
    return p


def _checkpoint_dir(args):
    """The checkpoint folder of a command line run, or None (--no-checkpoint; --full-path without
    --checkpoint-dir). ValueError for --full-path with --checkpoint-dir: a streamed file cannot be resumed."""
    if args.no_checkpoint:
        return None
    if args.full_path is not None:
        if args.checkpoint_dir is not None:
            raise ValueError("--full-path streams the full probabilities to a file, which a checkpoint cannot "
                             "resume; drop --checkpoint-dir (or record them in memory with --store-full)")
        return None
    if args.checkpoint_dir is not None:
        return args.checkpoint_dir
    out = Path(args.out)
    return out.with_name((out.name[:-4] if out.name.endswith(".npz") else out.name) + ".checkpoint")


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
        options = TrainOptions.from_kwargs("fit_ddp", dict(
            batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay, record=args.record,
            seed=args.seed, amp=args.amp, num_classes=ds.num_classes, is_flipped=flipped, store_full=args.store_full,
            full_path=args.full_path, meta=meta, progress=rank == 0, checkpoint_dir=_checkpoint_dir(args)))
        training = DistributedTraining(args.model, ds.images, noisy, args.epochs, options, dev)
        run = training.result(training.run(), world_size=W)
        seconds = time.perf_counter() - t0
        if rank == 0:
            done = training.start == args.epochs and Path(args.out).is_file()   # a finished run: nothing to do
            out = Path(args.out) if done else run.dynamics.save(args.out)
            summary = {"out": str(out), "world_size": W, "device": str(dev), "seconds": round(seconds, 3),
                       "shape": list(run.dynamics.probs.shape), "final_train_acc": run.history["train_acc"][-1],
                       "resumed_after_epoch": training.start}
            print(json.dumps(summary), flush=True)
    except ValueError as e:   # bad input, or a checkpoint of another run: one line on every rank
        print(f"python -m mislabel.distributed: error: {' '.join(str(e).split())}", file=sys.stderr, flush=True)
        return 2
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
