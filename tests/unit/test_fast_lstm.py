"""mislabel.fast_lstm.lstm_last_hidden equals nn.LSTM's last hidden state."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from mislabel.detector import _LSTMNet
from mislabel.fast_lstm import lstm_last_hidden, supports


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """The nn.LSTM references single-threaded: quick and steady on a small, shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("features,layers,hidden,T", [(1, 2, 64, 200), (2, 2, 64, 200), (1, 2, 64, 1),
                                                     (1, 1, 16, 30), (3, 3, 8, 17)])
@pytest.mark.parametrize("threads", [1, 2])
def test_matches_nn_lstm(features, layers, hidden, T, threads):
    torch.manual_seed(layers * 100 + T)
    lstm = nn.LSTM(features, hidden, layers, batch_first=True).eval()
    x = torch.rand(301, T, features)
    with torch.no_grad():
        ref = lstm(x)[0][:, -1]
    got = lstm_last_hidden(lstm, x, batch_size=64, threads=threads)
    assert got.shape == ref.shape and got.dtype == torch.float32
    assert (got - ref).abs().max().item() < 1e-5


@pytest.mark.parametrize("features", [1, 2])
def test_detector_scores_match(features):
    """The detector head on the fast path gives the same mislabel scores within 1e-5."""
    torch.manual_seed(0)
    net = _LSTMNet(64, 2, features).eval()
    for p in net.parameters():  # trained-like weights: larger than the init
        p.data.mul_(3)
    x = torch.rand(300, 200, features)
    with torch.no_grad():
        ref = torch.softmax(net(x), 1)[:, 1]
        fast = torch.softmax(net.head(lstm_last_hidden(net.lstm, x)), 1)[:, 1]
    assert (fast - ref).abs().max().item() < 1e-5


def test_edge_cases_and_rejections():
    lstm = nn.LSTM(1, 8, 2, batch_first=True)
    assert lstm_last_hidden(lstm, torch.rand(0, 5)).shape == (0, 8)
    assert supports(lstm)
    for bad in (nn.LSTM(1, 8), nn.LSTM(1, 8, bidirectional=True, batch_first=True),
                nn.LSTM(1, 8, proj_size=4, batch_first=True)):
        assert not supports(bad)
        with pytest.raises(ValueError):
            lstm_last_hidden(bad, torch.rand(3, 5))
    with pytest.raises(ValueError, match="shape"):
        lstm_last_hidden(lstm, torch.rand(3, 5, 2))
    with pytest.raises(ValueError, match="shape"):
        lstm_last_hidden(nn.LSTM(2, 8, batch_first=True), torch.rand(3, 5))
    # training mode and gradients do not matter: the result is a plain tensor
    out = lstm_last_hidden(lstm.train(), torch.rand(4, 6, requires_grad=True))
    assert not out.requires_grad
