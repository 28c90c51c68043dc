"""The detector's input channels (mislabel.detector.features): each channel by hand, feature-set parsing, errors."""
from __future__ import annotations

import numpy as np
import pytest

from mislabel import Dynamics, NoiseDetector
from mislabel.detector import features as F


def _tiny() -> Dynamics:
    """3 samples, 2 epochs, 3 classes; the margins tie at epoch 2 (samples 0 and 2) and hit 0 at epoch 1."""
    probs = np.array([[0.2, 0.6], [0.5, 0.9], [0.1, 0.3]], dtype=np.float32)
    margins = np.array([[-1.0, 1.0], [0.0, 2.0], [-2.0, 1.0]], dtype=np.float32)
    runner_up = np.array([[1, 2], [0, 0], [2, 0]], dtype=np.int32)
    return Dynamics(probs, np.array([0, 1, 1]), margins=margins, runner_up=runner_up)


def _sig(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


# by hand: running means of the margins are [-1, 0], [0, 1], [-2, -0.5]
EXPECTED = {
    "prob": [[[0.2], [0.6]], [[0.5], [0.9]], [[0.1], [0.3]]],
    "margin": _sig([[[-1.0], [1.0]], [[0.0], [2.0]], [[-2.0], [1.0]]]),
    "aum": _sig([[[-1.0], [0.0]], [[0.0], [1.0]], [[-2.0], [-0.5]]]),
    # epoch 1: margins -1, 0, -2 rank 2, 3, 1 of 3; epoch 2: 1, 2, 1 rank 1.5, 3, 1.5 (ties share the average)
    "rank": [[[2 / 3], [0.5]], [[1.0], [1.0]], [[1 / 3], [0.5]]],
    # epoch 1 predicts 1, 1, 2 (margin 0 counts as the given label): of the one sample labelled 0, all are
    # predicted 1; of the two labelled 1, one each as 1 and 2. Epoch 2 predicts every given label.
    "pairs": [[[1.0, 0.0], [0.0, 0.0]], [[0.0, 1.0], [0.0, 0.0]], [[0.5, 0.0], [0.0, 0.0]]],
    # running means per epoch: -1, 0, -2 and 0, 1, -0.5
    "aumrank": [[[2 / 3], [2 / 3]], [[1.0], [1.0]], [[1 / 3], [1 / 3]]],
}


def test_registry_lists_every_channel_with_its_width():
    assert set(F.CHANNEL_FUNCTIONS) == set(F.CHANNEL_WIDTHS) == set(EXPECTED)
    assert F.CHANNELS == {f: sum(F.CHANNEL_WIDTHS[n] for n in f.split("+")) for f in F.FEATURES}
    assert F.CHANNELS["prob"] == 1 and F.CHANNELS["prob+margin+rank+pairs+aumrank"] == 6


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_channel_by_hand(name):
    d = _tiny()
    block = F.CHANNEL_FUNCTIONS[name](d, F.Shared(d))
    assert block.dtype == np.float32 and block.shape == (3, 2, F.CHANNEL_WIDTHS[name])
    np.testing.assert_allclose(block, np.asarray(EXPECTED[name], dtype=np.float32), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("features", F.FEATURES)
def test_feature_sets_stack_their_channels_in_order(features):
    x, flipped = F.features_of(_tiny(), features)
    expected = np.concatenate([np.asarray(EXPECTED[n], dtype=np.float32) for n in features.split("+")], axis=2)
    assert x.dtype == np.float32 and x.shape == (3, 2, F.CHANNELS[features]) and flipped is None
    np.testing.assert_allclose(x, expected, rtol=1e-6, atol=1e-7)


def test_old_string_form_parses_into_the_tuple_and_back():
    assert F.parse_features("prob") == ("prob",)
    assert F.parse_features("prob+margin+rank+pairs+aumrank") == ("prob", "margin", "rank", "pairs", "aumrank")
    assert F.parse_features(["prob", "margin"]) == ("prob", "margin")
    for f in F.FEATURES:
        assert "+".join(F.parse_features(f)) == f
    det = NoiseDetector(hidden_size=4, features=("prob", "margin", "rank"))
    assert det.config["features"] == "prob+margin+rank"      # checkpoints keep the string form
    x_tuple, _ = F.features_of(_tiny(), ("prob", "margin", "aum"))
    np.testing.assert_array_equal(x_tuple, F.features_of(_tiny(), "prob+margin+aum")[0])


def test_unknown_channel_is_named_with_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown input channel 'margni'.*valid channels: prob, margin, aum"):
        F.parse_features("prob+margni")
    with pytest.raises(ValueError, match="unknown input channel 'bogus'"):
        NoiseDetector(features="bogus")
    with pytest.raises(ValueError, match="unknown input channel 'x'"):
        F.features_of(_tiny(), ("prob", "x"))
    with pytest.raises(ValueError, match="not a supported combination.*prob\\+margin\\+rank"):
        F.parse_features("margin+prob")
    with pytest.raises(ValueError, match="unknown features"):
        F.parse_features(3)


def test_missing_recordings_name_the_feature_set():
    d = _tiny()
    with pytest.raises(ValueError, match="features='prob\\+margin'.*carry none"):
        F.features_of(d.probs, "prob+margin")
    no_runner = Dynamics(d.probs, d.labels, margins=d.margins)
    with pytest.raises(ValueError, match="runner-up class.*carry none"):
        F.features_of(no_runner, "prob+margin+rank+pairs")
    np.testing.assert_array_equal(F.features_of(d.probs, "prob")[0], d.probs[:, :, None])
