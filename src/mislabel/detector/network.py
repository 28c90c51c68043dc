"""The detector's network, an LSTM with a two-logit head, and how one or several of them score sequences.

An ensemble scores a sample by the mean of its members' log-odds ``logit[mislabeled] - logit[clean]``,
mapped back to (0, 1) by a sigmoid; a single network scores with the ``softmax`` of its two logits.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from .. import fast_lstm as _fast
from .._utils import flush_denormal


class _LSTMNet(nn.Module):
    """LSTM over (B, T, F) float32 sequences with a linear head on the last step: (B, 2) logits (clean, mislabeled).

    Parameters
    ----------
    hidden_size, num_layers : int
        LSTM width and depth.
    input_size : int
        Channels F per step.
    """

    def __init__(self, hidden_size: int, num_layers: int, input_size: int = 1) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, T, F) float32
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


def _logits(net: _LSTMNet, xb: torch.Tensor, device: torch.device) -> torch.Tensor:
    # on CPU the fused inference path (mislabel.fast_lstm) equals nn.LSTM to float32 rounding
    if device.type == "cpu" and _fast.supports(net.lstm):
        return net.head(_fast.lstm_last_hidden(net.lstm, xb))
    return net(xb)


@torch.no_grad()
def score_nets(nets: list, x: torch.Tensor, device: torch.device, batch_size: int = 8192) -> np.ndarray:
    """Mislabel scores of one network, or of an ensemble, on sequences ``x``.

    Parameters
    ----------
    nets : list of _LSTMNet
        On ``device``; each is left in the training mode it had.
    x : Tensor of shape (N, L, F), float32
    device : torch.device
    batch_size : int
        Sequences per step.

    Returns
    -------
    ndarray of shape (N,), float32
        One network's softmax probability of "mislabeled", or the sigmoid of the networks' mean log-odds.
    """
    was = [n.training for n in nets]
    out = np.empty(len(x), dtype=np.float32)
    with flush_denormal():
        for net in nets:
            net.eval()
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size]
            logits = [_logits(net, xb, device) for net in nets]
            if len(logits) == 1:
                p = torch.softmax(logits[0], 1)[:, 1]
            else:
                p = torch.sigmoid(torch.stack([z[:, 1] - z[:, 0] for z in logits]).mean(0))
            out[i:i + batch_size] = p.cpu().numpy()
    for net, w in zip(nets, was):
        net.train(w)
    return out
