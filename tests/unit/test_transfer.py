"""Transfer comparison (Fig. 5 machinery) on separable toy dynamics."""
import numpy as np
import pytest

from mislabel import NoiseDetector, transfer
from mislabel.dynamics import Dynamics


def _toy(seed, shift=0.0, N=300, T=10):
    rng = np.random.default_rng(seed)
    flipped = rng.random(N) < 0.3
    probs = np.clip(np.where(flipped[:, None], 0.25 + shift, 0.75) + rng.normal(0, 0.15, (N, T)), 0, 1)
    margins = np.where(flipped[:, None], -1.0, 2.0) + rng.normal(0, 1, (N, T))
    runner_up = rng.integers(1, 3, (N, T))   # the shipped detector reads it; any class but the given 0
    return Dynamics(probs.astype(np.float32), np.zeros(N, dtype=np.int64), flipped, margins.astype(np.float32),
                    runner_up=runner_up)


def test_compare_returns_every_method_without_touching_the_source():
    source = NoiseDetector(hidden_size=8).fit(_toy(0), epochs=2, progress=False)
    before = {k: v.clone() for k, v in source.net.state_dict().items()}
    scores = transfer.compare(source, _toy(1, shift=0.2), _toy(2, shift=0.2), fine_tune_epochs=1, epochs=2)
    assert list(scores) == list(transfer.METHODS)
    assert all(s.shape == (300,) for s in scores.values())
    assert all((before[k] == v).all() for k, v in source.net.state_dict().items())
    rows = transfer.evaluate(scores, _toy(2, shift=0.2).is_flipped)
    assert {r["method"] for r in rows} == set(transfer.METHODS)
    assert all(r["map"] > 0.5 for r in rows if r["method"] != "shipped")
    with pytest.raises(ValueError, match="is_flipped"):
        transfer.compare(source, Dynamics(np.full((3, 2), 0.5), np.zeros(3, dtype=np.int64)), _toy(2))


def test_compare_refuses_bare_arrays_with_the_argument_named():
    source = NoiseDetector(hidden_size=4).fit(_toy(0, N=60, T=4), epochs=1, progress=False)
    probs = _toy(1, N=60, T=4).probs   # a bare array, not a Dynamics
    with pytest.raises(TypeError, match=r"target_train must be a Dynamics.*Dynamics\(probs, labels, is_flipped, "
                                        r"margins\).*got ndarray"):
        transfer.compare(source, probs, _toy(2, N=60, T=4))
    with pytest.raises(TypeError, match="target_eval must be a Dynamics.*got ndarray"):
        transfer.compare(source, _toy(1, N=60, T=4), probs)
    with pytest.raises(TypeError, match="source must be a trained NoiseDetector.*got ndarray"):
        transfer.compare(probs, _toy(1, N=60, T=4), _toy(2, N=60, T=4))
