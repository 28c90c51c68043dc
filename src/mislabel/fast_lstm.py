"""Fast CPU inference for the detector's LSTM: the last hidden state of a stacked ``nn.LSTM``.

:func:`lstm_last_hidden` computes ``lstm(x)[0][:, -1]`` for a unidirectional,
batch-first ``nn.LSTM`` with a few input features (the detector's
architecture: 1 or 2) with the same float32 arithmetic, organised for throughput:

* every layer's input projection, recurrent projection and both biases are
  one GEMM per step: ``[1, input_t, h_{t-1}] @ W`` with ``W`` stacked once
  up front (for layer 1 the input is the F features ``x_t``, so the "input
  projection" is F extra rows of ``W``);
* the layers run as a wavefront (layer 2 consumes ``h1_t`` right after it is
  made), so the working set of a batch stays in cache and the full output
  sequence is never materialised — only the last hidden state is returned;
* the gates are reordered to ``i, f, o, g`` and the ``g`` rows doubled, so one
  ``sigmoid_`` gives all four (``tanh(z) = 2 sigmoid(2z) - 1``; torch's CPU
  ``tanh`` is ~6x slower than its ``sigmoid``); the cell's ``tanh`` is done the
  same way, and all element-wise updates run in place into preallocated buffers;
* ``threads`` workers (default: torch's thread count) each run their own share
  of the batches single-threaded, instead of every small operation being split
  across cores (which costs a synchronisation per operation, ruinous when the
  machine is shared);
* batches of ``batch_size`` sequences (default 512: the working set stays in
  the L2 cache), ``torch.inference_mode`` and flush-to-zero for denormals.

It matches ``nn.LSTM`` to float32 rounding (max abs. difference ~1e-7 on the
hidden state; tested to 1e-5 in ``tests/unit/test_fast_lstm.py``).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn as nn

from ._utils import flush_denormal

__all__ = ["lstm_last_hidden", "supports"]


def supports(lstm: nn.Module) -> bool:
    """Whether :func:`lstm_last_hidden` handles this module (else use the module itself)."""
    return (isinstance(lstm, nn.LSTM) and not lstm.bidirectional and lstm.proj_size == 0
            and lstm.batch_first and lstm.bias)


def _stacked_weights(lstm: nn.LSTM) -> list[torch.Tensor]:
    """Per layer, W of shape (1 + in + H, 4H) for ``[1, input, h] @ W`` (in = F for layer 1, else H).

    Gates are reordered to i, f, o, g and the g rows are doubled, so that one
    ``sigmoid`` gives all four gates: ``tanh(z) = 2 * sigmoid(2 z) - 1``
    (torch's CPU ``tanh`` is ~6x slower than its ``sigmoid``).
    """
    H = lstm.hidden_size
    order = torch.cat([torch.arange(0, 2 * H), torch.arange(3 * H, 4 * H), torch.arange(2 * H, 3 * H)])
    out = []
    for k in range(lstm.num_layers):
        w_ih = getattr(lstm, f"weight_ih_l{k}").detach().float().cpu()
        w_hh = getattr(lstm, f"weight_hh_l{k}").detach().float().cpu()
        b = (getattr(lstm, f"bias_ih_l{k}") + getattr(lstm, f"bias_hh_l{k}")).detach().float().cpu()
        w = torch.cat([b[:, None], w_ih, w_hh], dim=1)[order]  # (4H, 1 + in + H)
        w[3 * H:] *= 2.0
        out.append(w.t().contiguous())                        # (1 + in + H, 4H)
    return out


def _run(ws: list[torch.Tensor], xs: torch.Tensor, out: torch.Tensor, H: int, batch_size: int) -> None:
    """Fill ``out`` (B, H) with the last top-layer hidden state for sequences ``xs`` (B, T, F)."""
    B, T, F = xs.shape
    L = len(ws)
    bs = max(1, min(int(batch_size), B))
    # One state buffer per batch: S = [1 | x_t (F) | h_1 | h_2 | ... | h_L]. Layer 1 reads the
    # contiguous columns [1 | x_t | h_1]; layer k >= 2 reads [h_{k-1} | h_k] (+ its bias row).
    h0 = 1 + F                       # column of h_1
    S = torch.empty(bs, h0 + L * H)
    G = torch.empty(bs, 4 * H)
    tmp = torch.empty(bs, H)
    cs = [torch.empty(bs, H) for _ in range(L)]
    for s in range(0, B, bs):
        n = min(bs, B - s)
        Sn, Gn, tn = S[:n], G[:n], tmp[:n]
        Sn.zero_()
        Sn[:, 0] = 1.0
        for c in cs:
            c[:n].zero_()
        xb = xs[s:s + n]
        i_, f_, o_, g_ = Gn[:, :H], Gn[:, H:2 * H], Gn[:, 2 * H:3 * H], Gn[:, 3 * H:]
        for t in range(T):
            Sn[:, 1:h0].copy_(xb[:, t])
            for k in range(L):
                w = ws[k]
                if k == 0:
                    torch.mm(Sn[:, :h0 + H], w, out=Gn)
                else:
                    lo = h0 + (k - 1) * H
                    torch.addmm(w[0], Sn[:, lo:lo + 2 * H], w[1:], out=Gn)
                Gn.sigmoid_()                     # i, f, o; and sigmoid(2 g)
                c = cs[k][:n]
                c.mul_(f_).addcmul_(i_, g_, value=2.0).sub_(i_)      # c = f c + i tanh(g)
                torch.mul(c, 2.0, out=tn).sigmoid_().mul_(2.0).sub_(1.0)  # tanh(c)
                torch.mul(o_, tn, out=Sn[:, h0 + k * H:h0 + (k + 1) * H])  # h = o tanh(c)
        out[s:s + n] = Sn[:, h0 + (L - 1) * H:]


def lstm_last_hidden(lstm: nn.LSTM, x: torch.Tensor, batch_size: int = 512,
                     threads: int | None = None) -> torch.Tensor:
    """Last-step hidden state of the top layer, equal to ``lstm(x)[0][:, -1]``.

    Parameters
    ----------
    lstm : torch.nn.LSTM
        ``batch_first=True``, unidirectional, with biases, no projection, any
        ``input_size``, ``num_layers`` and ``hidden_size`` (see :func:`supports`).
        Evaluated on CPU in float32.
    x : Tensor of shape (B, T, F), or (B, T) when F = 1, float
        The detector's input sequences (F = ``lstm.input_size`` features per step).
    batch_size : int
        Sequences advanced together through time by one worker.
    threads : int, optional
        Workers, each single-threaded on its own share of the batches (no
        per-operation synchronisation between cores). Default:
        ``torch.get_num_threads()``. torch's own thread count is set to 1 for
        the duration of the call and restored afterwards.

    Returns
    -------
    Tensor of shape (B, hidden_size), float32, on ``x``'s device
    """
    if not supports(lstm):
        raise ValueError("lstm_last_hidden needs an nn.LSTM with batch_first=True, bias=True, "
                         "proj_size=0 and bidirectional=False")
    if x.ndim == 2:
        x = x.unsqueeze(-1)
    if x.ndim != 3 or x.shape[2] != lstm.input_size:
        raise ValueError(f"x must have shape (B, T, {lstm.input_size})"
                         f"{' or (B, T)' if lstm.input_size == 1 else ''}, got {tuple(x.shape)}")
    device = x.device
    B, T = x.shape[:2]
    H = lstm.hidden_size
    out = torch.zeros(B, H, dtype=torch.float32)
    if B == 0 or T == 0:
        return out.to(device)
    threads = max(1, int(threads or torch.get_num_threads()))
    with torch.inference_mode(), flush_denormal():
        ws = _stacked_weights(lstm)
        xs = x.detach().to("cpu", torch.float32).contiguous()
        workers = min(threads, -(-B // max(1, int(batch_size))))
        before = torch.get_num_threads()
        torch.set_num_threads(1)       # every worker single-threaded (read by new threads when they start)
        try:
            if workers <= 1:
                _run(ws, xs, out, H, batch_size)
            else:
                bounds = [round(B * j / workers) for j in range(workers + 1)]
                with ThreadPoolExecutor(workers) as ex:
                    jobs = [ex.submit(_worker, ws, xs[a:b], out[a:b], H, batch_size)
                            for a, b in zip(bounds[:-1], bounds[1:])]
                    for j in jobs:
                        j.result()
        finally:
            torch.set_num_threads(before)
    return out.to(device)


def _worker(ws, xs, out, H, batch_size) -> None:
    with torch.inference_mode(), flush_denormal():
        _run(ws, xs, out, H, batch_size)
