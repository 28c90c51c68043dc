"""CPU threads for detector training: how many gradient workers, the workers, and the intra-op thread count."""
from __future__ import annotations

import contextlib
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def resolve_workers(workers: int | None, device: torch.device) -> int:
    """Number of gradient threads for detector training.

    Parameters
    ----------
    workers : int or None
        Positive; None: 2 on a CPU with two or more usable cores, else 1.
    device : torch.device
        Training device; anything but a CPU gets 1.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        If ``workers`` is not None or a positive integer.
    """
    if device.type != "cpu":
        return 1
    if workers is None:
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            cores = os.cpu_count() or 1
        return 2 if cores >= 2 else 1
    if not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    return int(workers)


class _GradWorkers:
    """Data-parallel gradients on one CPU: a batch is split into ``n`` parts, one thread each.

    PyTorch releases the GIL inside its operations, so threads that run one
    LSTM forward and backward each use separate cores (with one intra-op
    thread per operation). Gradients of the parts are summed in a fixed order,
    so training stays deterministic. Each thread flushes denormal floats to
    zero, a per-thread CPU setting (without it backward is much slower).

    Parameters
    ----------
    net : nn.Module
        Maps (B, L, F) float32 to (B, 2) logits.
    n : int
        Number of parts (threads, the calling one included); 1 computes the gradient in the caller.
    """

    def __init__(self, net: nn.Module, n: int) -> None:
        self.net, self.n = net, int(n)
        self.params = [p for p in net.parameters() if p.requires_grad]
        self.pool = None

    def __enter__(self) -> "_GradWorkers":
        if self.n > 1:
            from concurrent.futures import ThreadPoolExecutor
            self.pool = ThreadPoolExecutor(self.n - 1, thread_name_prefix="mislabel-grad",
                                           initializer=torch.set_flush_denormal, initargs=(True,))
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown()

    def _part(self, xt, yt, idx, total: int):
        loss = F.cross_entropy(self.net(xt[idx]), yt[idx], reduction="sum") / total
        grads = torch.autograd.grad(loss, self.params)
        return float(loss.detach()), grads

    def backward(self, xt: torch.Tensor, yt: torch.Tensor, idx: torch.Tensor) -> float:
        """Set ``.grad`` of the parameters to the gradient of the mean loss over rows ``idx``; return that loss.

        Parameters
        ----------
        xt : Tensor of shape (N, L, F), float32
        yt : Tensor of shape (N,), int64
        idx : Tensor of shape (B,), int64
            Rows of the batch.

        Returns
        -------
        float
        """
        if self.pool is None:
            loss = F.cross_entropy(self.net(xt[idx]), yt[idx])
            loss.backward()
            return float(loss.detach())
        parts = [c for c in idx.tensor_split(self.n) if len(c)]
        futures = [self.pool.submit(self._part, xt, yt, c, len(idx)) for c in parts[1:]]
        results = [self._part(xt, yt, parts[0], len(idx))] + [f.result() for f in futures]
        for k, p in enumerate(self.params):
            g = results[0][1][k]
            for r in results[1:]:
                g = g + r[1][k]
            p.grad = g
        return sum(r[0] for r in results)


@contextlib.contextmanager
def _intra_op_threads(n: int | None):
    """Run the block with ``n`` torch intra-op threads (None: unchanged); restore the count on exit."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
