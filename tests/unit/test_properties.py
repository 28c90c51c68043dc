"""Property-based tests (hypothesis): invariants checked on many generated inputs instead of a few chosen ones.

Noise generators (exact flip counts, never the same class, super-class flips stay in their group), metrics
against scikit-learn on random rankings with ties, the recorder against a naive loop for random batch orders,
samplers (duplicates, missing samples), dtypes and modes, and ``Dynamics`` save/load round trips.
Derandomized: every run draws the same examples, so a failure reproduces.
"""
from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mislabel import metrics, noise
from mislabel.dynamics import Dynamics, DynamicsRecorder

PROFILE = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                   suppress_health_check=[HealthCheck.too_slow])


def _labels(draw, num_classes: int, min_size: int = 1, max_size: int = 200) -> np.ndarray:
    return np.array(draw(st.lists(st.integers(0, num_classes - 1), min_size=min_size, max_size=max_size)),
                    dtype=np.int64)


# ------------------------------------------------------------------ noise generators
@st.composite
def _noise_case(draw):
    c = draw(st.integers(2, 12))
    y = _labels(draw, c)
    rate = draw(st.floats(0.0, 0.95, allow_nan=False))
    return y, c, rate, draw(st.integers(0, 2 ** 32 - 1))


@PROFILE
@given(_noise_case())
def test_symmetric_flips_exactly_round_rate_n_to_another_class(case):
    y, c, rate, seed = case
    noisy, flipped = noise.symmetric(y, rate, c, seed=seed)
    assert flipped.sum() == int(round(rate * len(y)))
    np.testing.assert_array_equal(flipped, noisy != y)               # never flipped to the same class
    assert noisy.dtype == np.int64 and noisy.min() >= 0 and noisy.max() < c
    again, _ = noise.symmetric(y, rate, c, seed=seed)
    np.testing.assert_array_equal(again, noisy)                       # seeded


@PROFILE
@given(_noise_case())
def test_asymmetric_next_moves_each_flip_to_the_next_class(case):
    y, c, rate, seed = case
    noisy, flipped = noise.asymmetric(y, rate, c, seed=seed, mapping="next")
    assert flipped.sum() == int(round(rate * len(y)))
    np.testing.assert_array_equal(noisy[flipped], (y[flipped] + 1) % c)
    np.testing.assert_array_equal(noisy[~flipped], y[~flipped])


@PROFILE
@given(_noise_case(), st.data())
def test_superclass_flips_stay_in_their_group_or_refuse_clearly(case, data):
    y, c, rate, seed = case
    groups = np.array(data.draw(st.lists(st.integers(0, 3), min_size=c, max_size=c)))
    k = int(round(rate * len(y)))
    eligible = int((np.bincount(groups)[groups][y] >= 2).sum())
    if k > eligible:
        with pytest.raises(ValueError, match="largest achievable rate"):
            noise.superclass(y, rate, groups, seed=seed)
        return
    noisy, flipped = noise.superclass(y, rate, groups, seed=seed)
    assert flipped.sum() == k
    np.testing.assert_array_equal(flipped, noisy != y)
    np.testing.assert_array_equal(groups[noisy], groups[y])           # within the group


# ------------------------------------------------------------------ metrics against scikit-learn
@st.composite
def _ranking(draw):
    n = draw(st.integers(2, 120))
    levels = draw(st.integers(1, 8))                                  # few levels: many ties
    scores = np.array(draw(st.lists(st.integers(0, levels), min_size=n, max_size=n)), dtype=np.float64)
    scores = scores / 3 + draw(st.floats(-5, 5))
    flipped = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    return scores, flipped


@PROFILE
@given(_ranking())
def test_average_precision_and_roc_auc_match_scikit_learn(ranking):
    from sklearn.metrics import average_precision_score, roc_auc_score
    scores, flipped = ranking
    assume(flipped.any() and not flipped.all())
    assert metrics.average_precision(scores, flipped) == pytest.approx(average_precision_score(flipped, scores),
                                                                      abs=1e-12)
    assert metrics.roc_auc(scores, flipped) == pytest.approx(roc_auc_score(flipped, scores), abs=1e-12)
    # ranking-only: a monotone transform of the scores changes nothing
    assert metrics.roc_auc(np.exp(scores / 10), flipped) == pytest.approx(metrics.roc_auc(scores, flipped))


# ------------------------------------------------------------------ the recorder against a naive loop
_LOGIT_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
_INDEX_DTYPES = [torch.int64, torch.int32, torch.int16, torch.uint8]


@st.composite
def _run(draw):
    """Epochs of batches: per epoch a random order of a random subset (the sampler), duplicates allowed."""
    n = draw(st.integers(1, 30))
    c = draw(st.integers(2, 6))
    epochs = draw(st.integers(1, 4))
    labels = _labels(draw, c, n, n)
    ldt, idt = draw(st.sampled_from(_LOGIT_DTYPES)), draw(st.sampled_from(_INDEX_DTYPES))
    assume(n <= torch.iinfo(idt).max + 1)
    run = []
    for _ in range(epochs):
        ids = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=2 * n))   # with replacement, gaps
        size = draw(st.integers(1, 8))
        lg = draw(st.lists(st.floats(-8, 8, allow_nan=False, width=16), min_size=len(ids) * c,
                           max_size=len(ids) * c))
        z = torch.tensor(lg, dtype=torch.float32).reshape(len(ids), c).to(ldt)
        ids_t = torch.tensor(ids).to(idt)
        run.append([(z[a:a + size], torch.from_numpy(labels)[ids_t.long()[a:a + size]].to(idt), ids_t[a:a + size])
                    for a in range(0, len(ids), size)])
    return n, c, labels, run


def _naive(n: int, run) -> np.ndarray:
    """(N, T) given-label probabilities: the last occurrence per epoch, then linear interpolation per sample."""
    out = np.full((n, len(run)), np.nan)
    for t, epoch in enumerate(run):
        for z, y, ids in epoch:
            z = z.double().numpy()
            p = np.exp(z - z.max(1, keepdims=True))
            p = p[np.arange(len(z)), y.long().numpy()] / p.sum(1)
            for i, v in zip(ids.long().tolist(), p):
                out[i, t] = v
    for row in out:
        seen = ~np.isnan(row)
        if seen.any():
            row[:] = np.interp(np.arange(len(row)), np.flatnonzero(seen), row[seen])
    return out


@PROFILE
@given(_run(), st.booleans(), st.booleans())
def test_recorder_equals_a_naive_loop(run_case, defer, check):
    n, c, labels, run = run_case
    rec = DynamicsRecorder(n, defer=defer, check=check)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                               # misuse hints (per-batch epochs) are fine
        for epoch in run:
            for batch in epoch:
                rec.update(*batch)
            rec.next_epoch()
        ref = _naive(n, run)
        unseen = np.isnan(ref).all(1)
        if unseen.any():
            with pytest.raises(ValueError, match="never recorded"):
                rec.result()
            d = rec.result(unseen="drop")
            assert d.meta["unseen_ids"] == np.flatnonzero(unseen).tolist()
        else:
            d = rec.result()
    np.testing.assert_allclose(d.probs, ref[~unseen], rtol=2e-5, atol=1e-6)
    np.testing.assert_array_equal(d.labels, labels[~unseen])
    assert d.runner_up.min() >= 0 and d.runner_up.max() < c and (d.runner_up != d.labels[:, None]).all()


# ------------------------------------------------------------------ Dynamics save/load round trips
_JSON = st.recursive(st.none() | st.booleans() | st.integers(-2 ** 53, 2 ** 53) | st.text(max_size=8)
                     | st.floats(allow_nan=False, allow_infinity=False),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                    max_size=3), max_leaves=8)


@st.composite
def _dynamics(draw):
    n, t, c = draw(st.integers(1, 12)), draw(st.integers(1, 6)), draw(st.integers(2, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    probs = rng.random((n, t), dtype=np.float32)
    probs[rng.random((n, t)) < 0.1] = draw(st.sampled_from([0.0, 1.0]))
    kw = {}
    if draw(st.booleans()):
        kw["is_flipped"] = rng.random(n) < 0.5
    if draw(st.booleans()):
        kw["margins"] = rng.normal(size=(n, t)).astype(np.float32)
        kw["runner_up"] = rng.integers(0, c, (n, t))
    if draw(st.booleans()):
        kw["full"] = rng.random((n, t, c)).astype(np.float16)
    meta = draw(st.dictionaries(st.text(min_size=1, max_size=6), _JSON, max_size=4))
    return Dynamics(probs, rng.integers(0, c, n), meta=meta, **kw)


@PROFILE
@given(_dynamics())
def test_dynamics_save_load_round_trip(d):
    with tempfile.TemporaryDirectory() as tmp:
        back = Dynamics.load(d.save(Path(tmp) / "d.npz"))
        for name in ("probs", "labels", "is_flipped", "margins", "full", "runner_up"):
            a, b = getattr(d, name), getattr(back, name)
            assert (a is None) == (b is None), name
            if a is not None:
                np.testing.assert_array_equal(np.asarray(b), a, err_msg=name)
        assert back.meta == d.meta
        again = Dynamics.load(back.save(Path(tmp) / "e.npz"))          # a loaded value saves the same way
        np.testing.assert_array_equal(again.probs, d.probs)
