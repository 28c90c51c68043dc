"""Training steps replayed as CUDA graphs (:class:`GraphedStep`) and when :func:`fit` uses them."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .augment import batch
from .step import forward, sgd_step

__all__ = ["GraphedStep", "check_cuda_graphs"]


class GraphedStep:
    """:func:`sgd_step` with forward, loss and backward of full batches replayed as one CUDA graph.

    A captured graph launches all of a step's kernels at once instead of one
    Python call each. Batch gathering, augmentation and the optimiser step stay
    eager, so learning-rate schedules and the random stream behave as in
    :func:`sgd_step`.

    The first ``warmup`` full batches train eagerly, as in :func:`sgd_step`.
    Then the next full batch's shapes are captured: a throw-away forward and
    backward on a side stream (PyTorch's recipe before a capture; it takes no
    optimiser step, and its BatchNorm statistics are restored), then the
    capture. From there on each full batch is copied into the graph's static
    input and the graph is replayed; gradients live in static buffers that the
    replay overwrites. A smaller last batch runs eagerly, zeroing those buffers
    in place instead of freeing them.

    Rules that follow from the capture: nothing else may set the parameters'
    gradients to None once it has happened (``opt.zero_grad()`` or
    ``model.zero_grad()`` would cut them off from the graph and training would
    silently stop); replays always run the model as it was captured, in train
    mode; and the capture uses the device the model's parameters are on.

    Parameters
    ----------
    model : nn.Module
        On a CUDA device; its forward must be capturable (no host synchronisation,
        no shape-dependent Python control flow).
    opt : torch.optim.Optimizer
    batch_size : int
        The full batch size (the graph's static shape).
    use_amp : bool
        bfloat16 autocast.
    warmup : int
        Eager full batches before the capture.
    """

    def __init__(self, model: nn.Module, opt: torch.optim.Optimizer, batch_size: int, use_amp: bool,
                 warmup: int = 3) -> None:
        self.model, self.opt, self.batch_size, self.use_amp = model, opt, int(batch_size), use_amp
        self.warmup = int(warmup)
        self.graph = None
        self._full = 0   # full batches seen
        p = next(model.parameters(), None)
        self.device = p.device if p is not None else torch.device("cuda", torch.cuda.current_device())

    def _forward_backward(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = forward(self.model, xb, self.use_amp, cache=False)
        loss = F.cross_entropy(logits, yb)
        loss.backward()
        return logits.detach(), loss.detach()

    def _capture(self, xb: torch.Tensor, yb: torch.Tensor) -> None:
        saved = [b.clone() for b in self.model.buffers()]
        side = torch.cuda.Stream(device=self.device)
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            self.opt.zero_grad(set_to_none=True)
            self._forward_backward(xb, yb)
        torch.cuda.current_stream().wait_stream(side)
        with torch.no_grad():   # undo the throw-away pass: BatchNorm statistics (it took no optimiser step)
            for b, old in zip(self.model.buffers(), saved):
                b.copy_(old)
        self.x, self.y = xb.clone(), yb.clone()
        self.opt.zero_grad(set_to_none=True)   # the graph allocates the gradients in its own pool
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.logits, self.loss = self._forward_backward(self.x, self.y)
        self.graph = graph   # only a completed capture is replayed

    def __call__(self, x_all: torch.Tensor, y_all: torch.Tensor, idx: torch.Tensor, pad: int, flip: bool,
                 generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One optimisation step on rows ``idx``; returns (logits, labels, loss) as :func:`sgd_step` does.

        Raises
        ------
        RuntimeError
            If the step cannot be captured as a CUDA graph.
        """
        with torch.cuda.device(self.device):   # streams and graphs belong to the current device
            return self._step(x_all, y_all, idx, pad, flip, generator)

    def _step(self, x_all, y_all, idx, pad, flip, generator):
        full = len(idx) == self.batch_size
        if self.graph is None and (not full or self._full < self.warmup):
            self._full += full
            return sgd_step(self.model, self.opt, x_all, y_all, idx, pad, flip, generator, self.use_amp)
        xb, yb = batch(x_all, y_all, idx, pad, flip, generator)
        if not full:   # a smaller last batch: eager, into the graph's gradient buffers
            for p in self.model.parameters():
                if p.grad is not None:
                    p.grad.zero_()
            logits, loss = self._forward_backward(xb, yb)
            self.opt.step()
            return logits, yb, loss
        if self.graph is None:
            try:
                self._capture(xb, yb)
            except RuntimeError as e:
                cause = f" (after: {e.__context__})" if e.__context__ is not None else ""
                raise RuntimeError(f"could not capture the training step as a CUDA graph: {e}{cause}. Some "
                                   "models cannot be captured, e.g. one whose forward synchronises with the "
                                   "host (.item(), data-dependent shapes); pass cuda_graphs=False to train "
                                   "with eager steps") from e
        else:
            self.x.copy_(xb)
            self.y.copy_(yb)
        self.graph.replay()
        self.opt.step()
        # copies: the next replay overwrites the graph's outputs in place (without bumping their version
        # counters), and the recorder keeps an epoch's logits until next_epoch()
        return self.logits.clone(), yb, self.loss.clone()


def check_cuda_graphs(cuda_graphs, device: torch.device, named_model: bool) -> bool:
    """Whether :func:`fit` replays its steps as a CUDA graph (``cuda_graphs``: None, True or False).

    None means on for a model given by name on CUDA, else off.

    Raises
    ------
    ValueError
        If ``cuda_graphs`` is not None or a bool, or is True on a device other than CUDA.
    """
    if cuda_graphs is not None and not isinstance(cuda_graphs, (bool, np.bool_)):
        raise ValueError(f"cuda_graphs must be True, False or None (automatic), got {cuda_graphs!r}")
    if cuda_graphs is None:
        return device.type == "cuda" and named_model
    if cuda_graphs and device.type != "cuda":
        raise ValueError(f"cuda_graphs=True needs a CUDA device, but training runs on {device}; pass "
                         "device='cuda' or leave cuda_graphs unset")
    return bool(cuda_graphs)
