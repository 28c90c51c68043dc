"""Unit tests with hand-computed values for metrics, dynamics, recorder, detector, models and training."""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mislabel
from mislabel import baselines, metrics, models, noise, train
from mislabel.detector import NoiseDetector, resample
from mislabel.dynamics import Dynamics, DynamicsRecorder, interpolate_missing


# ---------------------------------------------------------------- metrics
def test_metrics_hand_computed():
    s = [0.9, 0.8, 0.7, 0.6, 0.5]
    f = [True, False, True, False, False]
    r = metrics.evaluate(s, f)
    assert r["map"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)      # precision 1 at recall .5, 2/3 at recall 1
    assert r["roc_auc"] == pytest.approx(5 / 6)                   # 5 of 6 (pos, neg) pairs ordered right
    assert r["precision_at_95"] == pytest.approx(2 / 3)           # both positives needed: top 3
    assert r["precision_at_k"] == pytest.approx(0.5) and r["k"] == 2
    assert r["noise_rate"] == pytest.approx(0.4)


def test_precision_at_95_ties_enter_together():
    assert metrics.precision_at_recall([1.0, 1.0, 0.0], [True, False, False]) == pytest.approx(0.5)
    # 20 positives: recall 0.95 needs 19 of them
    s = np.r_[np.linspace(1, 0.5, 19), 0.45, 0.4, np.linspace(0.3, 0, 9)]
    f = np.r_[np.ones(19, bool), False, True, np.zeros(9, bool)]
    assert metrics.precision_at_recall(s, f) == pytest.approx(1.0)
    assert metrics.precision_at_recall(s, f, recall=1.0) == pytest.approx(20 / 21)


def test_average_precision_and_auc_with_ties_hand_computed():
    # scores 0.9 | 0.5 0.5 0.5 | 0.1 with flips T | T F F | T: thresholds give (tp, fp) = (1, 0), (2, 2), (3, 2)
    s, f = [0.9, 0.5, 0.5, 0.5, 0.1], [True, True, False, False, True]
    assert metrics.average_precision(s, f) == pytest.approx(1 / 3 * 1 + 1 / 3 * 2 / 4 + 1 / 3 * 3 / 5)
    # 6 (flipped, clean) pairs: 0.9 beats both; the tied 0.5 counts 1/2 twice; 0.1 loses both
    assert metrics.roc_auc(s, f) == pytest.approx((2 + 0.5 + 0.5 + 0) / 6)
    assert np.isnan(metrics.average_precision([0.3, 0.2], [False, False]))
    assert np.isnan(metrics.roc_auc([0.3, 0.2], [True, True]))
    assert metrics.roc_auc([0.1, 0.9], [True, False]) == 0.0


@pytest.mark.parametrize("seed", range(4))
def test_average_precision_and_auc_match_scikit_learn(seed):
    """Same definitions as scikit-learn's, ties included (scores rounded so that many samples share one)."""
    from sklearn.metrics import average_precision_score, roc_auc_score
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 3000))
    f = rng.random(n) < rng.uniform(0.05, 0.6)
    f[:2] = [True, False]
    s = np.round(rng.normal(size=n) + 1.5 * f, int(rng.integers(0, 3))).astype(np.float32)
    assert metrics.average_precision(s, f) == pytest.approx(average_precision_score(f, s), abs=1e-12)
    assert metrics.roc_auc(s, f) == pytest.approx(roc_auc_score(f, s), abs=1e-12)


def test_import_mislabel_does_not_load_scikit_learn():
    """scikit-learn (and the SciPy it pulls in) costs ~1.7 s to import: only loaders that need it load it."""
    import subprocess
    import sys
    code = "import sys, mislabel; mislabel.metrics.evaluate([0.2, 0.1], [True, False]); print(sorted(" \
           "m for m in ('sklearn', 'scipy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_metrics_bad_input():
    with pytest.raises(ValueError, match="must match"):
        metrics.evaluate([0.1, 0.2], [True])
    with pytest.raises(ValueError, match="NaN"):
        metrics.evaluate([np.nan, 0.2], [True, False])
    with pytest.raises(ValueError, match="empty"):
        metrics.evaluate([], [])
    with pytest.raises(ValueError, match="boolean"):
        metrics.evaluate([0.1, 0.2], [2, 0])


# ---------------------------------------------------------- interpolation
def test_interpolation_is_per_sample():
    nan = np.nan
    v = np.array([[nan, 0.2, nan, 0.6, nan],
                  [0.0, nan, nan, nan, 1.0],
                  [0.5, 0.5, 0.5, 0.5, 0.5]], dtype=np.float32)
    out = interpolate_missing(v)
    np.testing.assert_allclose(out[0], [0.2, 0.2, 0.4, 0.6, 0.6], atol=1e-7)
    np.testing.assert_allclose(out[1], [0.0, 0.25, 0.5, 0.75, 1.0], atol=1e-7)
    np.testing.assert_array_equal(out[2], v[2])


def test_interpolation_never_mixes_classes():
    nan = np.nan
    v = np.array([[[0.1, 0.9], [nan, nan], [0.3, 0.7]]], dtype=np.float32)  # (N=1, T=3, C=2)
    out = interpolate_missing(v)
    np.testing.assert_allclose(out[0, 1], [0.2, 0.8], atol=1e-7)


# --------------------------------------------------------------- recorder
def _naive_record(batches, N, T):
    """Reference: a per-sample Python loop."""
    probs = np.full((N, T), np.nan)
    margins = np.full((N, T), np.nan)
    runner = np.full((N, T), -1)
    for t, epoch in enumerate(batches):
        for logits, labels, ids in epoch:
            for row, y, i in zip(logits.numpy().astype(np.float64), labels.tolist(), ids.tolist()):
                e = np.exp(row - row.max())
                probs[i, t] = e[y] / e.sum()
                others = np.delete(row, y)
                margins[i, t] = row[y] - others.max()
                k = int(np.argmax(others))
                runner[i, t] = k + (k >= y)   # index in the full class list
    return probs, margins, runner


@pytest.mark.parametrize("defer", [True, False])
def test_recorder_matches_naive_loop(defer):
    g = torch.Generator().manual_seed(0)
    N, C, T = 37, 5, 3
    labels = torch.randint(0, C, (N,), generator=g)
    batches = []
    for _ in range(T):
        perm = torch.randperm(N, generator=g)
        epoch = []
        for i in range(0, N, 8):
            ids = perm[i:i + 8]
            epoch.append((torch.randn(len(ids), C, generator=g) * 3, labels[ids], ids))
        batches.append(epoch)
    rec = DynamicsRecorder(N, num_classes=C, store_full=True, defer=defer)
    for epoch in batches:
        for logits, y, ids in epoch:
            rec.update(logits, y, ids)
        rec.next_epoch()
    dyn = rec.result()
    ref_p, ref_m, ref_r = _naive_record(batches, N, T)
    assert dyn.probs.shape == (N, T) and dyn.probs.dtype == np.float32
    np.testing.assert_allclose(dyn.probs, ref_p, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dyn.margins, ref_m, rtol=1e-5, atol=1e-5)
    assert dyn.runner_up.dtype == np.int32
    np.testing.assert_array_equal(dyn.runner_up, ref_r)
    np.testing.assert_array_equal(dyn.labels, labels.numpy())
    assert dyn.full.shape == (N, T, C)
    np.testing.assert_allclose(np.take_along_axis(dyn.full.astype(np.float32), labels.numpy()[:, None, None]
                                                  .repeat(T, 1), axis=2)[..., 0], ref_p, atol=2e-3)
    assert dyn.meta["epochs"] == T


def test_recorder_interpolates_missing_samples_and_grows():
    rec = DynamicsRecorder(3, capacity=1)
    big = 5.0
    for t, seen in enumerate([[0, 1, 2], [0, 2], [0, 1, 2]]):
        logits = torch.zeros(len(seen), 2)
        logits[:, 0] = float(t)  # class 0 logit grows: p0 = sigmoid(t)
        rec.update(logits, torch.zeros(len(seen), dtype=torch.long), torch.tensor(seen))
        rec.next_epoch()
    dyn = rec.result()
    sig = 1 / (1 + np.exp(-np.arange(3.0)))
    np.testing.assert_allclose(dyn.probs[0], sig, rtol=1e-6)
    np.testing.assert_allclose(dyn.probs[1], [sig[0], (sig[0] + sig[2]) / 2, sig[2]], rtol=1e-6)
    assert big  # keep flake quiet


def test_recorder_runner_up_of_a_missing_epoch_repeats_the_last_seen_class():
    rec = DynamicsRecorder(2, capacity=1)
    # sample 1 is missing in epoch 1; its runner-up class moves from 1 to 2 over the run
    for t, (seen, top) in enumerate([([0, 1], 1), ([0], 2), ([0, 1], 2)]):
        logits = torch.zeros(len(seen), 3)
        logits[:, top] = 1.0
        rec.update(logits, torch.zeros(len(seen), dtype=torch.long), torch.tensor(seen))
        rec.next_epoch()
    dyn = rec.result()
    np.testing.assert_array_equal(dyn.runner_up, [[1, 2, 2], [1, 1, 2]])
    assert DynamicsRecorder(2, margins=False).keep_margins is False
    rec = DynamicsRecorder(2, margins=False)
    rec.update(torch.zeros(2, 3), torch.tensor([0, 1]), torch.tensor([0, 1]))
    d = rec.result()
    assert d.margins is None and d.runner_up is None


def test_interpolate_previous_keeps_observed_values():
    nan = np.nan
    v = np.array([[nan, 3.0, nan, nan, 5.0, nan]], dtype=np.float32)
    np.testing.assert_array_equal(interpolate_missing(v, method="previous"), [[3, 3, 3, 3, 5, 5]])
    with pytest.raises(ValueError, match="method"):
        interpolate_missing(v, method="cubic")


def test_recorder_bad_input():
    rec = DynamicsRecorder(4)
    with pytest.raises(ValueError, match="sample_ids must be in"):
        rec.update(torch.zeros(2, 3), torch.tensor([0, 1]), torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="labels must be in"):
        rec.update(torch.zeros(2, 3), torch.tensor([0, 3]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="shape"):
        rec.update(torch.zeros(2, 3), torch.tensor([0, 1, 2]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="2-D"):
        rec.update(torch.zeros(2), torch.tensor([0, 1]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="NaN"):
        rec.update(torch.tensor([[np.nan, 0.0]]), torch.tensor([0]), torch.tensor([0]))
    with pytest.raises(RuntimeError, match="no update"):
        rec.next_epoch()
    with pytest.raises(ValueError, match="positive integer"):
        DynamicsRecorder(0)
    rec.update(torch.zeros(2, 3), torch.tensor([0, 1]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="never recorded"):
        rec.result()


# --------------------------------------------------------------- Dynamics
def _dyn(N=20, T=6, seed=0):
    rng = np.random.default_rng(seed)
    return Dynamics(rng.random((N, T), dtype=np.float32), rng.integers(0, 3, N), rng.random(N) < 0.3,
                    rng.normal(size=(N, T)).astype(np.float32), None, {"dataset": "x", "epochs": T},
                    rng.integers(0, 3, (N, T)))


def test_dynamics_save_load_round_trip(tmp_path):
    d = _dyn()
    p = d.save(tmp_path / "d.npz")
    e = Dynamics.load(p)
    np.testing.assert_array_equal(d.probs, e.probs)
    np.testing.assert_array_equal(d.labels, e.labels)
    np.testing.assert_array_equal(d.is_flipped, e.is_flipped)
    np.testing.assert_array_equal(d.margins, e.margins)
    np.testing.assert_array_equal(d.runner_up, e.runner_up)
    assert e.meta == d.meta and e.full is None
    assert [f.name for f in tmp_path.iterdir()] == ["d.npz"]  # no temp files left


@pytest.mark.parametrize("probs, msg", [
    (np.ones((3,)), "2-D"), (np.full((2, 3), 1.5), r"\[0, 1\]"), (np.full((2, 3), np.nan), "NaN"),
    (np.zeros((0, 3)), "empty"), (np.array([["a", "b"]]), "floating"),
])
def test_dynamics_rejects_bad_probs(probs, msg):
    with pytest.raises(ValueError, match=msg):
        Dynamics(probs, np.zeros(len(probs), dtype=np.int64))


def test_dynamics_rejects_mismatch_and_bad_labels():
    with pytest.raises(ValueError, match="must match"):
        Dynamics(np.zeros((3, 2)), np.zeros(2, dtype=np.int64))
    with pytest.raises(ValueError, match="negative"):
        Dynamics(np.zeros((2, 2)), np.array([0, -1]))
    with pytest.raises(ValueError, match="is_flipped"):
        Dynamics(np.zeros((2, 2)), np.array([0, 1]), is_flipped=np.array([True]))
    with pytest.raises(ValueError, match="runner_up must have shape"):
        Dynamics(np.zeros((2, 2)), np.array([0, 1]), runner_up=np.zeros((2, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="integer class indices"):
        Dynamics(np.zeros((2, 2)), np.array([0, 1]), runner_up=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="negative class"):
        Dynamics(np.zeros((2, 2)), np.array([0, 1]), runner_up=-np.ones((2, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="full has 2 classes"):
        Dynamics(np.zeros((2, 2)), np.array([0, 1]), full=np.zeros((2, 2, 2)), runner_up=np.full((2, 2), 2))
    d = Dynamics(np.zeros((3, 2)), np.array([0, 1, 2]), runner_up=np.array([[1, 2], [0, 2], [0, 1]]))
    np.testing.assert_array_equal(d.subset([2, 0]).runner_up, [[0, 1], [1, 2]])


def test_dynamics_load_rejects_foreign_and_corrupt(tmp_path):
    np.savez(tmp_path / "foreign.npz", probs=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="not a mislabel dynamics file"):
        Dynamics.load(tmp_path / "foreign.npz")
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(ValueError, match="not a readable"):
        Dynamics.load(tmp_path / "corrupt.npz")
    with pytest.raises(FileNotFoundError, match="capture"):
        Dynamics.load(tmp_path / "missing.npz")
    d = _dyn()
    d.save(tmp_path / "v.npz")
    with np.load(tmp_path / "v.npz") as z:
        content = dict(z)
    content["format_version"] = np.array(99)
    np.savez(tmp_path / "v99.npz", **content)
    with pytest.raises(ValueError, match="version 99"):
        Dynamics.load(tmp_path / "v99.npz")
    content["format_version"] = np.array(1)
    content["probs"] = content["probs"] * 3
    np.savez(tmp_path / "range.npz", **content)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Dynamics.load(tmp_path / "range.npz")


def test_failed_save_leaves_nothing(tmp_path, monkeypatch):
    d = _dyn()
    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError):
        d.save(tmp_path / "d.npz")
    assert list(tmp_path.iterdir()) == []


def test_aum_is_negated_mean_margin():
    d = Dynamics(np.full((2, 2), 0.5), np.array([0, 1]), margins=np.array([[1.0, 3.0], [-2.0, 0.0]]))
    np.testing.assert_allclose(baselines.aum(d), [-2.0, 1.0])


# --------------------------------------------------------------- detector
def test_resample_linear():
    np.testing.assert_allclose(resample(np.array([[0.0, 1.0]]), 3), [[0.0, 0.5, 1.0]])
    np.testing.assert_allclose(resample(np.array([[0.0, 0.5, 1.0]]), 2), [[0.0, 1.0]])
    np.testing.assert_allclose(resample(np.array([[0.3]]), 4), [[0.3] * 4])


def _separable(N=400, T=8, seed=0):
    rng = np.random.default_rng(seed)
    flipped = rng.random(N) < 0.3
    base = np.where(flipped[:, None], 0.2, 0.8) + rng.normal(0, 0.15, (N, T))
    return Dynamics(np.clip(base, 0, 1).astype(np.float32), np.zeros(N, dtype=np.int64), flipped)


def test_detector_learns_and_round_trips(tmp_path):
    train_d, test_d = _separable(seed=0), _separable(seed=1)
    det = NoiseDetector(hidden_size=16).fit(train_d, epochs=3, progress=False)
    s = det.score(test_d)
    assert s.shape == (400,) and s.dtype == np.float32
    assert metrics.evaluate(s, test_d.is_flipped)["map"] > 0.9
    det.save(tmp_path / "det.pt")
    again = NoiseDetector.load(tmp_path / "det.pt")
    np.testing.assert_array_equal(again.score(test_d), s)
    assert again.info["stages"][0]["best_val_ap"] > 0.9
    # any length: a 20-epoch sequence is resampled to the training length
    longer = Dynamics(resample(test_d.probs, 20), test_d.labels)
    assert metrics.evaluate(again.score(longer), test_d.is_flipped)["map"] > 0.9
    # checkpoints load with weights_only=True
    payload = torch.load(tmp_path / "det.pt", weights_only=True)
    assert payload["format"] == "mislabel-detector"


def test_fine_tune_never_worse_on_validation():
    det = NoiseDetector(hidden_size=8).fit(_separable(seed=0), epochs=1, progress=False)
    before = det.info["stages"][0]["best_val_ap"]
    det.fine_tune(_separable(seed=2), epochs=1, progress=False)
    assert det.info["stages"][-1]["stage"] == "fine_tune"
    assert len(det.info["stages"]) == 2 and before > 0


def test_detector_bad_input(tmp_path):
    det = NoiseDetector()
    with pytest.raises(RuntimeError, match="untrained"):
        det.score(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="both flipped and clean"):
        det.fit(np.full((5, 3), 0.5, dtype=np.float32), np.zeros(5, bool), progress=False)
    with pytest.raises(ValueError, match="is_flipped is required"):
        det.fit(np.full((5, 3), 0.5, dtype=np.float32), progress=False)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        det.fit(np.full((5, 3), 2.0, dtype=np.float32), np.array([1, 0, 0, 0, 1], bool), progress=False)
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not a mislabel detector"):
        NoiseDetector.load(tmp_path / "foreign.pt")
    (tmp_path / "corrupt.pt").write_bytes(b"\x00\x01garbage")
    with pytest.raises(ValueError, match="not a loadable"):
        NoiseDetector.load(tmp_path / "corrupt.pt")
    with pytest.raises(FileNotFoundError):
        NoiseDetector.load(tmp_path / "none.pt")


def _state_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_ensemble_members_are_single_detectors_with_consecutive_seeds(tmp_path):
    """Member i of NoiseDetector(members=3).fit(seed=s) is exactly a single detector fitted with seed s + i, and
    the ensemble's score is the sigmoid of the members' mean log-odds."""
    train_d, test_d = _separable(N=200, T=6, seed=0), _separable(N=50, T=6, seed=1)
    ens = NoiseDetector(hidden_size=8, members=3).fit(train_d, epochs=2, seed=5, progress=False, workers=1)
    singles = [NoiseDetector(hidden_size=8).fit(train_d, epochs=2, seed=5 + i, progress=False, workers=1)
               for i in range(3)]
    for i, one in enumerate(singles):
        assert _state_equal(ens.nets[i], one.net)
        rng_before = torch.get_rng_state()
        view = ens.member(i)
        assert torch.equal(torch.get_rng_state(), rng_before)      # a view draws no random numbers
        assert view.net is ens.nets[i] and view.config["members"] == 1
        np.testing.assert_array_equal(view.score(test_d), one.score(test_d))
        np.testing.assert_array_equal(ens.member_scores(test_d)[i], one.score(test_d))
    p = np.stack([one.score(test_d).astype(np.float64) for one in singles])
    expected = 1 / (1 + np.exp(-np.log(p / (1 - p)).mean(0)))
    np.testing.assert_allclose(ens.score(test_d), expected, rtol=1e-5, atol=1e-6)
    assert [st["member"] for st in ens.info["stages"]] == [0, 1, 2]
    assert [st["seed"] for st in ens.info["stages"]] == [5, 6, 7]
    assert "member" not in singles[0].info["stages"][0]           # single detectors keep their info unchanged
    assert ens.history["epoch"] == [1, 2] and repr(ens).endswith("members=3)")
    # save / load keeps every member (checkpoint version 2, weights_only=True)
    ens.save(tmp_path / "ens.pt")
    payload = torch.load(tmp_path / "ens.pt", weights_only=True)
    assert payload["format_version"] == 2 and len(payload["state_dicts"]) == 3
    again = NoiseDetector.load(tmp_path / "ens.pt")
    assert again.config["members"] == 3
    np.testing.assert_array_equal(again.score(test_d), ens.score(test_d))
    # fine-tuning continues member i with seed + i, like fitting
    tuned = copy.deepcopy(ens).fine_tune(test_d, epochs=1, seed=9, progress=False, workers=1)
    for i, one in enumerate(singles):
        one.fine_tune(test_d, epochs=1, seed=9 + i, progress=False, workers=1)
        assert _state_equal(tuned.nets[i], one.net)
    assert [st["stage"] for st in tuned.info["stages"]] == ["fit"] * 3 + ["fine_tune"] * 3
    with pytest.raises(IndexError, match="3 member"):
        ens.member(3)


def test_version_1_checkpoints_still_load_and_bad_member_counts_fail(tmp_path):
    det = NoiseDetector(hidden_size=4).fit(_separable(N=100, T=4), epochs=1, progress=False)
    d = _separable(N=20, T=4, seed=3)
    payload = torch.load(det.save(tmp_path / "v2.pt"), weights_only=True)
    v1 = {**payload, "format_version": 1, "state_dict": payload["state_dicts"][0]}
    del v1["state_dicts"]
    v1["config"] = {k: v for k, v in payload["config"].items() if k != "members"}   # 0.2 wrote no "members"
    torch.save(v1, tmp_path / "v1.pt")
    old = NoiseDetector.load(tmp_path / "v1.pt")
    assert old.config["members"] == 1
    np.testing.assert_array_equal(old.score(d), det.score(d))
    torch.save({**payload, "config": {**payload["config"], "members": 2}}, tmp_path / "short.pt")
    with pytest.raises(ValueError, match="do not match the stored configuration"):
        NoiseDetector.load(tmp_path / "short.pt")
    torch.save({**payload, "format_version": 3}, tmp_path / "future.pt")
    with pytest.raises(ValueError, match="reads versions 1 to 2"):
        NoiseDetector.load(tmp_path / "future.pt")
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="members must be a positive integer"):
            NoiseDetector(hidden_size=4, members=bad)


# ---------------------------------------------------------- models, train
def test_models_build_shapes():
    x = torch.zeros(2, 3, 32, 32)
    r = models.build("resnet32", 3, 10, 32)
    assert r(x).shape == (2, 10)
    n_params = sum(p.numel() for p in r.parameters())
    assert 460_000 < n_params < 470_000  # He et al.: 0.46M
    assert models.build("cnn", 1, 7, 28)(torch.zeros(2, 1, 28, 28)).shape == (2, 7)
    assert models.build("cnn", 1, 10, 8)(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    assert models.build("mlp", 1, 10, 8)(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    with pytest.raises(ValueError, match="unknown model"):
        models.build("vgg", 3, 10)



def test_cnn_pools_before_relu_with_identical_values_and_gradients():
    """SmallCNN pools before the ReLU for speed; the textbook order (ReLU, then pool) gives the same numbers."""
    torch.manual_seed(0)
    m = models.build("cnn", 1, 10, 28)
    x, y = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))

    def textbook(x):
        h = F.max_pool2d(F.relu(m.conv1(x)), 2)
        h = F.adaptive_max_pool2d(F.relu(m.conv2(h)), m.pool_to)
        return m.fc2(F.relu(m.fc1(h.flatten(1))))

    grads = []
    for f in (m, textbook):
        m.zero_grad()
        out = f(x)
        F.cross_entropy(out, y).backward()
        grads.append([out.detach()] + [p.grad.clone() for p in m.parameters()])
    for a, b in zip(*grads):
        assert torch.equal(a, b)

def test_random_crop_flip_is_a_shifted_copy():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4) + 1
    g = torch.Generator().manual_seed(0)
    y = train.random_crop_flip(x, pad=1, flip=False, generator=g)
    assert y.shape == x.shape
    for b in range(2):  # every crop is a window of the zero-padded image
        xp = torch.nn.functional.pad(x[b], (1, 1, 1, 1))
        assert any(torch.equal(xp[:, i:i + 4, j:j + 4], y[b]) for i in range(3) for j in range(3))
    z = train.random_crop_flip(x, pad=0, flip=True, generator=g)
    for b in range(2):
        assert torch.equal(z[b], x[b]) or torch.equal(z[b], x[b].flip(2))


def test_random_crop_flip_matches_per_image_reference():
    # the same random draws (row offsets, column offsets, flip coins, in that order) applied one
    # image at a time with slicing, on a non-square RGB batch with pad 2
    x = torch.randn(16, 3, 5, 7)
    y = train.random_crop_flip(x, pad=2, flip=True, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    oy = torch.randint(0, 5, (16,), generator=g)
    ox = torch.randint(0, 5, (16,), generator=g)
    coin = torch.rand(16, generator=g) < 0.5
    assert 0 < int(coin.sum()) < 16 and len(set(oy.tolist())) > 1
    for b in range(16):
        want = torch.nn.functional.pad(x[b], (2, 2, 2, 2))[:, oy[b]:oy[b] + 5, ox[b]:ox[b] + 7]
        assert torch.equal(y[b], want.flip(2) if coin[b] else want)
    assert train.random_crop_flip(x, pad=0, flip=False) is x


@pytest.fixture(scope="module")
def synth():
    return mislabel.data.load("synthetic", split="train", subset=600, seed=0)


def test_fit_is_deterministic_and_records(synth):
    noisy, flipped = mislabel.noise.symmetric(synth.labels, rate=0.3, num_classes=10, seed=0)
    # bit-for-bit on CPU, as fit's docstring promises (cuDNN may choose non-deterministic kernels on CUDA)
    kw = dict(epochs=3, batch_size=64, lr=0.05, progress=False, is_flipped=flipped, device="cpu")
    a = train.fit("cnn", synth.images, noisy, seed=1, **kw)
    b = train.fit("cnn", synth.images, noisy, seed=1, **kw)
    c = train.fit("cnn", synth.images, noisy, seed=2, **kw)
    assert a.dynamics.probs.shape == (600, 3)
    np.testing.assert_array_equal(a.dynamics.probs, b.dynamics.probs)
    assert not np.array_equal(a.dynamics.probs, c.dynamics.probs)
    np.testing.assert_array_equal(a.dynamics.labels, noisy)
    assert a.dynamics.meta["record"] == "train" and a.dynamics.meta["epochs"] == 3
    assert set(a.history) >= {"train_loss", "train_acc", "test_acc", "lr"}
    ev = train.fit("mlp", synth.images, noisy, record="eval", seed=1, **kw)
    assert ev.dynamics.meta["record"] == "eval" and ev.dynamics.probs.shape == (600, 3)
    none = train.fit("mlp", synth.images, noisy, record=None, seed=1, **kw)
    assert none.dynamics is None


def test_lr_schedule_drops_at_half_and_three_quarters(synth):
    run = train.fit("mlp", synth.images[:64], synth.labels[:64], epochs=8, lr=0.1, record=None, progress=False)
    np.testing.assert_allclose(run.history["lr"], [0.1] * 4 + [0.01] * 2 + [0.001] * 2)


def test_fit_bad_input(synth):
    with pytest.raises(ValueError, match="must match"):
        train.fit("mlp", synth.images[:10], synth.labels[:9], epochs=1, progress=False)
    with pytest.raises(ValueError, match="empty"):
        train.fit("mlp", synth.images[:0], synth.labels[:0], epochs=1, progress=False)
    with pytest.raises(ValueError, match="record"):
        train.fit("mlp", synth.images[:10], synth.labels[:10], epochs=1, record="both", progress=False)
    with pytest.raises(ValueError, match="4-D"):
        train.fit("mlp", synth.images[:10, 0], synth.labels[:10], epochs=1, progress=False)
    with pytest.raises(ValueError, match="unknown model"):
        train.fit("transformer", synth.images[:10], synth.labels[:10], epochs=1, progress=False)


def test_user_loop_with_recorder(synth):
    """The README's own-loop recipe: a plain PyTorch loop plus three recorder calls."""
    model = models.build("mlp", 1, 10, 8)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = synth.images.float() / 255
    rec = mislabel.DynamicsRecorder(num_samples=len(x))
    for _ in range(2):
        for ids in torch.randperm(len(x)).split(50):
            logits = model(x[ids])
            loss = torch.nn.functional.cross_entropy(logits, synth.labels[ids])
            opt.zero_grad(); loss.backward(); opt.step()
            rec.update(logits, synth.labels[ids], ids)
        rec.next_epoch()
    dyn = rec.result()
    assert dyn.probs.shape == (600, 2)
    np.testing.assert_array_equal(dyn.labels, synth.labels.numpy())


def test_cache_keys_change_with_every_input(tmp_path):
    calls = []
    def compute(folder):
        calls.append(1)
        (folder / "x.txt").write_text("hi")
    a = mislabel.cache.cached("t", {"a": 1}, compute, cache_dir=tmp_path)
    b = mislabel.cache.cached("t", {"a": 1}, compute, cache_dir=tmp_path)
    c = mislabel.cache.cached("t", {"a": 2}, compute, cache_dir=tmp_path)
    assert a == b != c and len(calls) == 2
    def broken(folder):
        (folder / "half.txt").write_text("partial")
        raise RuntimeError("interrupted")
    with pytest.raises(RuntimeError):
        mislabel.cache.cached("t", {"a": 3}, broken, cache_dir=tmp_path)
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == sorted([a.name, c.name])


def test_atomic_writes_get_normal_permissions(tmp_path):
    import os
    p = _dyn().save(tmp_path / "d.npz")
    umask = os.umask(0)
    os.umask(umask)
    assert (p.stat().st_mode & 0o777) == (0o666 & ~umask)


def test_detector_training_restores_thread_count():
    before = torch.get_num_threads()
    NoiseDetector(hidden_size=4).fit(_separable(N=100, T=4), epochs=1, progress=False)
    assert torch.get_num_threads() == before


def test_amp_on_cpu_runs_only_where_bfloat16_is_native(monkeypatch):
    from mislabel import _utils
    cpu = torch.device("cpu")
    assert _utils.amp_enabled(False, cpu) is False
    monkeypatch.setattr(_utils, "_cpu_has_native_bf16", lambda: False)
    with pytest.warns(UserWarning, match="no native bfloat16"):
        assert _utils.amp_enabled(True, cpu) is False
    monkeypatch.setattr(_utils, "_cpu_has_native_bf16", lambda: True)
    assert _utils.amp_enabled(True, cpu) is True
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 255, (64, 1, 8, 8), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 3, (64,), generator=g)
    run = train.fit("cnn", x, y, 2, batch_size=32, progress=False, amp=True)
    assert run.dynamics.probs.shape == (64, 2) and np.isfinite(run.dynamics.probs).all()


def test_gradient_workers_sum_to_the_full_batch_gradient():
    """Two threads, each on half a batch, give the gradient of the whole batch (to float32 rounding)."""
    from mislabel.detector import _GradWorkers
    torch.manual_seed(0)
    net = NoiseDetector(hidden_size=8).net
    x, y = torch.rand(33, 6, 1), torch.randint(0, 2, (33,))
    idx = torch.randperm(33)[:29]                       # odd size: unequal parts
    grads = []
    for n in (1, 2, 3):
        net.zero_grad(set_to_none=True)
        with _GradWorkers(net, n) as w:
            loss = w.backward(x, y, idx)
        grads.append((loss, [p.grad.clone() for p in net.parameters()]))
    for loss, g in grads[1:]:
        assert loss == pytest.approx(grads[0][0], rel=1e-6)
        for a, b in zip(g, grads[0][1]):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_detector_training_with_workers_is_deterministic():
    d = _separable(N=300, T=6)
    a = NoiseDetector(hidden_size=8).fit(d, epochs=2, progress=False, workers=2)
    b = NoiseDetector(hidden_size=8).fit(d, epochs=2, progress=False, workers=2)
    np.testing.assert_array_equal(a.score(d), b.score(d))
    assert a.info["stages"][0]["workers"] == 2
    assert metrics.evaluate(a.score(d), d.is_flipped)["map"] > 0.9
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        NoiseDetector(hidden_size=4).fit(d, epochs=1, progress=False, workers=0)


def test_features_running_aum_channel_ends_at_aum():
    from mislabel.detector import features_of
    probs = np.array([[0.2, 0.6, 0.9]], dtype=np.float32)
    margins = np.array([[-1.0, 0.5, 3.5]], dtype=np.float32)
    d = Dynamics(probs, np.zeros(1, dtype=np.int64), np.array([False]), margins)
    x, _ = features_of(d, "prob+margin+aum")
    assert x.shape == (1, 3, 3)
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    np.testing.assert_allclose(x[0, :, 1], sig(margins[0]), rtol=1e-6)
    np.testing.assert_allclose(x[0, :, 2], sig(np.array([-1.0, -0.25, 1.0])), rtol=1e-6)  # running means
    assert x[0, -1, 2] == pytest.approx(sig(-baselines.aum(d)[0]), rel=1e-6)  # baselines.aum is -AUM
    det = NoiseDetector(hidden_size=4, features="prob+margin+aum")
    assert det.net.lstm.input_size == 3



def test_percentile_rank_channel_by_hand():
    from mislabel.detector import features_of, percentile_rank
    margins = np.array([[3.0, -1.0], [-2.0, -1.0], [0.5, 4.0], [1.0, 2.0]], dtype=np.float32)
    # column 0: ranks 4, 1, 2, 3; column 1: the tie (-1, -1) shares rank 1.5, then 4 and 3
    want = np.array([[4, 1.5], [1, 1.5], [2, 4], [3, 3]], dtype=np.float32) / 4
    np.testing.assert_array_equal(percentile_rank(margins), want)
    probs = np.full((4, 2), 0.5, dtype=np.float32)
    d = Dynamics(probs, np.zeros(4, dtype=np.int64), np.array([False, True, False, False]), margins)
    x, _ = features_of(d, "prob+margin+rank")
    assert x.shape == (4, 2, 3) and x.dtype == np.float32
    np.testing.assert_array_equal(x[:, :, 2], want)
    with pytest.raises(ValueError, match="features='prob\\+margin\\+rank'.*carry none"):
        features_of(Dynamics(probs, np.zeros(4, dtype=np.int64)), "prob+margin+rank")
    # scores do not depend on the order of the samples (ties share their rank)
    det = NoiseDetector(hidden_size=4, features="prob+margin+rank").fit(d, epochs=1, progress=False)
    perm = np.array([2, 0, 3, 1])
    np.testing.assert_allclose(det.score(d)[perm], det.score(d.subset(perm)), rtol=1e-6)
    assert det.net.lstm.input_size == 3


def test_pair_confusion_by_hand():
    from mislabel.detector import features_of, pair_confusion
    labels = np.array([0, 0, 1, 2])
    # epoch 0: predictions 0, 2, 0, 2 (runner-up where the margin is negative); epoch 1: every label predicted
    margins = np.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, 1.0], [2.0, 1.0]], dtype=np.float32)
    runner = np.array([[1, 1], [2, 2], [0, 2], [0, 1]])
    # epoch 0 shares: class 0 -> {0: 1/2, 2: 1/2}, class 1 -> {0: 1}, class 2 -> {2: 1}
    fwd, bwd = pair_confusion(labels, margins, runner)
    np.testing.assert_array_equal(fwd, [[0.0, 0], [0.5, 0], [1.0, 0], [0.0, 0]])
    np.testing.assert_array_equal(bwd, [[1.0, 0], [0.0, 0], [0.0, 0], [0.5, 0]])
    assert fwd.dtype == bwd.dtype == np.float32
    with pytest.raises(ValueError, match="expected labels"):
        pair_confusion(labels, margins, runner[:, :1])
    probs = np.full((4, 2), 0.5, dtype=np.float32)
    d = Dynamics(probs, labels, np.array([False, True, True, False]), margins, runner_up=runner)
    x, _ = features_of(d, "prob+margin+rank+pairs")
    assert x.shape == (4, 2, 5)
    np.testing.assert_array_equal(x[:, :, 3], fwd)
    np.testing.assert_array_equal(x[:, :, 4], bwd)
    with pytest.raises(ValueError, match="runner-up class.*carry none"):
        features_of(Dynamics(probs, labels, None, margins), "prob+margin+rank+pairs")
    det = NoiseDetector(hidden_size=4, features="prob+margin+rank+pairs").fit(d, epochs=1, progress=False)
    assert det.net.lstm.input_size == 5 and det.score(d).shape == (4,)


def _memorising_world(N=600, T=10, C=3, seed=0, low=slice(0, 3)):
    """Toy data set whose classifier memorises wrong labels: a sample whose label differs from its
    true class sits low in the epochs ``low`` (the first 3), as high as a clean one in the others.
    Returns (truth, run), run(labels) giving the dynamics of a training on ``labels``."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, C, N)

    def run(labels):
        wrong = np.asarray(labels) != truth
        probs = np.full((N, T), 0.85) + rng.normal(0, 0.05, (N, T))
        probs[wrong, low] = 0.15 + rng.normal(0, 0.05, (int(wrong.sum()), 3))
        return Dynamics(np.clip(probs, 0, 1).astype(np.float32), np.asarray(labels, dtype=np.int64), wrong)
    return truth, run


def test_adapt_learns_a_new_pattern_from_one_extra_run():
    # trained where wrong labels show in the last 3 epochs only; adapted to a world where they show in the first 3
    truth0, run0 = _memorising_world(seed=9, low=slice(7, 10))
    det = NoiseDetector(hidden_size=16).fit(run0(noise.symmetric(truth0, 0.3, 3, seed=0)[0]), epochs=3,
                                            progress=False)
    truth, run = _memorising_world()
    given, wrong = noise.symmetric(truth, 0.2, 3, seed=5)
    dyn = run(given)
    seen = []

    def train(labels):
        seen.append(labels)
        return run(labels)
    before = metrics.evaluate(det.score(dyn), wrong)["map"]
    threshold = float(np.quantile(det.score(dyn), 0.9))   # this detector's top tenth: left out as clean examples
    suspects = det.score(dyn) >= threshold
    assert det.adapt(dyn, train, num_classes=3, rate=0.2, threshold=threshold, seed=1, epochs=3,
                     progress=False) is det
    after = metrics.evaluate(det.score(dyn), wrong)["map"]
    assert after > 0.95 and after > before + 0.1, (before, after)
    (labels,) = seen
    changed = labels != given
    assert labels.dtype == np.int64 and changed.sum() == round(0.2 * len(given)) and labels.max() < 3
    assert det.info["adapt"]["changed"] == changed.sum()
    assert det.info["adapt"]["left_out"] == int((suspects & ~changed).sum()) > 0
    assert det.info["stages"][-1]["stage"] == "adapt"
    assert det.info["stages"][-1]["num_sequences"] == len(given) - int((suspects & ~changed).sum())


def test_adapt_bad_input():
    det = NoiseDetector(hidden_size=8).fit(_separable(seed=0), epochs=1, progress=False)
    truth, run = _memorising_world(N=100)
    dyn = run(truth)
    with pytest.raises(RuntimeError, match="trained detector"):
        NoiseDetector().adapt(dyn, run, num_classes=3)
    with pytest.raises(TypeError, match="train must be a function"):
        det.adapt(dyn, "loop.py", num_classes=3)
    with pytest.raises(ValueError, match="with its labels"):
        det.adapt(dyn.probs, run, num_classes=3)
    with pytest.raises(ValueError, match="rate must be in"):
        det.adapt(dyn, run, num_classes=3, rate=1.0)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        det.adapt(dyn, run, num_classes=2)
    with pytest.raises(TypeError, match="must return the run's Dynamics"):
        det.adapt(dyn, lambda y: y, num_classes=3, progress=False)
    with pytest.raises(ValueError, match="of 50 samples, expected 100"):
        det.adapt(dyn, lambda y: run(y).subset(np.arange(50)), num_classes=3, progress=False)
    with pytest.raises(ValueError, match="train on the labels it is given"):
        det.adapt(dyn, lambda y: run(truth), num_classes=3, progress=False)
    with pytest.raises(ValueError, match="raise the threshold"):   # said before the extra run, not after
        det.adapt(dyn, lambda y: pytest.fail("trained anyway"), num_classes=3, threshold=0.0, progress=False)


def test_prediction_changes_by_hand():
    from mislabel.detector import prediction_changes
    # predicted class: the label where the margin is >= 0, the runner-up elsewhere
    # sample 0: 0 2 0 0 (2 changes), sample 1: 1 1 1 1, sample 2: 0 1 2 0 (3 changes)
    margins = np.array([[1, -1, 1, 0], [1, 1, 1, 1], [-1, -1, 1, -1]], dtype=np.float32)
    runner = np.array([[1, 2, 1, 1], [0, 0, 0, 0], [0, 1, 0, 0]], dtype=np.int32)
    d = Dynamics(np.full((3, 4), 0.5, np.float32), np.array([0, 1, 2]), margins=margins, runner_up=runner)
    np.testing.assert_array_equal(prediction_changes(d), [2, 2, 1])
    with pytest.raises(ValueError, match="margins and runner_up"):
        prediction_changes(Dynamics(d.probs, d.labels))


def _changing(counts, N=100, wrong0=0):
    """Dynamics of N samples (label 0, runner-up 1) whose predictions change for counts[t] samples into
    epoch t + 2, so that prediction_changes gives back ``counts``; the last ``wrong0`` samples start
    predicted as the runner-up."""
    pred = np.zeros((N, len(counts) + 1), dtype=bool)
    pred[:, 0] = np.arange(N) >= N - wrong0
    for t, c in enumerate(counts):
        pred[:, t + 1] = pred[:, t] ^ (np.arange(N) < c)
    margins = np.where(pred, -1.0, 1.0).astype(np.float32)
    return Dynamics(np.full(pred.shape, 0.5, np.float32), np.zeros(N, dtype=np.int64), margins=margins,
                    runner_up=np.ones(pred.shape, dtype=np.int32))


def test_memorisation_onset_by_hand():
    from mislabel.detector import memorisation_onset, prediction_changes
    d = _changing([50, 20, 10, 30, 40])
    np.testing.assert_array_equal(prediction_changes(d), [50, 20, 10, 30, 40])
    # window 1: the minimum 10 (changes into epoch 4) is followed by a rise of 30 samples >= 2% of 100
    assert memorisation_onset(d, window=1, min_rise=0.02) == 4
    assert memorisation_onset(d, window=1, min_rise=0.31) is None     # a rise of 30 is below 31% of 100
    # window 2: smoothed 50, 35, 15, 20, 35: the minimum is the same epoch; the rise is 20
    assert memorisation_onset(d, window=2, min_rise=0.2) == 4 and memorisation_onset(d, window=2, min_rise=0.21) is None
    assert memorisation_onset(_changing([50, 40, 30, 20, 10])) is None   # still learning: no turn
    assert memorisation_onset(_changing([10, 20, 30])) is None            # a rise with no minimum before it
    with pytest.raises(ValueError, match="window"):
        memorisation_onset(d, window=0)
    with pytest.raises(ValueError, match="min_rise"):
        memorisation_onset(d, min_rise=0)
    with pytest.raises(ValueError, match="min_fit"):
        memorisation_onset(d, min_fit=1.5)


def test_memorisation_onset_skips_minima_before_the_model_fits_most_labels():
    """A dip in the prediction changes while the model still gets most given labels wrong is the wobble of
    early training, not the turn to memorisation: the onset is the first minimum with at least min_fit fit."""
    from mislabel.detector import GUARD_MIN_FIT, memorisation_onset, prediction_changes
    d = _changing([60, 30, 25, 70, 20, 15, 55], wrong0=35)
    np.testing.assert_array_equal(prediction_changes(d), [60, 30, 25, 70, 20, 15, 55])
    # share predicted as the given label, epochs 1-8: 0.65 0.05 0.35 0.10 0.60 0.40 0.55 0.20
    np.testing.assert_allclose((d.margins >= 0).mean(0), [.65, .05, .35, .10, .60, .40, .55, .20])
    assert memorisation_onset(d, window=1, min_fit=0) == 4     # the minimum 25 (into epoch 4), 10% fit
    assert GUARD_MIN_FIT == 0.5 and memorisation_onset(d, window=1) == 7   # the minimum 15 (epoch 7), 55% fit
    assert memorisation_onset(d, window=1, min_fit=0.56) is None


def test_first_epochs():
    d = _dyn(N=5, T=6)
    d.margins = np.arange(30, dtype=np.float32).reshape(5, 6)
    head = d.first_epochs(4)
    assert head.num_epochs == 4 and head.num_samples == 5
    np.testing.assert_array_equal(head.probs, d.probs[:, :4])
    np.testing.assert_array_equal(head.margins, d.margins[:, :4])
    np.testing.assert_array_equal(head.labels, d.labels)
    for bad in (0, 7, 2.0, True):
        with pytest.raises(ValueError, match=r"epochs must be an integer in \[1, 6\]"):
            d.first_epochs(bad)


def _memorised_world(N=600, T=12, C=3, seed=0, memorise=True):
    """Toy runs with margins and runner-up classes. Wrong labels: never learned, or (``memorise``) learned in
    epochs 6-8 after 5 low ones, as a classifier that memorises does. Clean samples: half learned at once,
    the others one by one until epoch 8 (``memorise``: within 3 epochs). Returns (dynamics, wrong)."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, C, N)
    labels, wrong = noise.symmetric(truth, 0.2, C, seed=seed)
    clean = rng.choice(3, N, p=[.6, .25, .15]) if memorise else rng.choice(8, N, p=[.51] + [.07] * 7)
    learned = np.where(wrong, rng.integers(5, 8, N) if memorise else T, clean)   # first epoch (from 0) learned
    known = np.arange(T)[None, :] >= learned[:, None]
    probs = np.clip(np.where(known, 0.85, 0.15) + rng.normal(0, 0.05, (N, T)), 0, 1).astype(np.float32)
    runner = np.where(wrong, truth, (labels + 1) % C)[:, None].repeat(T, 1).astype(np.int32)
    return Dynamics(probs, labels, wrong, margins=np.where(known, 1.0, -1.0).astype(np.float32),
                    runner_up=runner), wrong


def test_memorisation_guard_scores_the_epochs_before_memorisation(tmp_path):
    # a detector that has only seen wrong labels stay unlearned, on a run that learns them from epoch 6 on
    det = NoiseDetector(hidden_size=16, memorisation_guard=True).fit(
        [_memorised_world(seed=s, memorise=False)[0] for s in (1, 2)], epochs=6, lr=0.05, progress=False)
    dyn, wrong = _memorised_world(seed=0)
    from mislabel.detector import memorisation_onset
    assert memorisation_onset(dyn) == 5      # no changes into epochs 4 and 5; wrong labels learned after
    plain = copy.deepcopy(det)
    plain.config["memorisation_guard"] = False
    whole = plain.score(dyn)
    assert (whole >= 0.5).mean() < 0.05 and plain.scored_epochs(dyn) == 12
    guarded = det.score(dyn)
    assert det.scored_epochs(dyn) == 5
    np.testing.assert_array_equal(guarded, plain.score(dyn.first_epochs(5)))
    np.testing.assert_array_equal(det.score(dyn, memorisation_guard=False), whole)
    np.testing.assert_array_equal(plain.score(dyn, memorisation_guard=True), guarded)
    np.testing.assert_array_equal(det.member_scores(dyn)[0], guarded)
    assert ((guarded >= 0.5) == wrong).mean() > 0.95      # the early view flags the wrong labels, the whole run none
    # a run without memorisation is scored whole, as without the guard; so are bare probability arrays
    clean_run, _ = _memorised_world(seed=3, memorise=False)
    assert det.scored_epochs(clean_run) == 12
    np.testing.assert_array_equal(det.score(clean_run), plain.score(clean_run))
    np.testing.assert_array_equal(det.score(dyn.probs), plain.score(dyn.probs))
    np.testing.assert_array_equal(det.member_scores(dyn.probs), plain.member_scores(dyn.probs))
    # stored in checkpoints; fine-tuning switches it off (the detector has then read whole runs of this data)
    det.save(tmp_path / "g.pt")
    assert NoiseDetector.load(tmp_path / "g.pt").config["memorisation_guard"] is True
    assert NoiseDetector.load(tmp_path / "g.pt").scored_epochs(dyn) == 5
    det.fine_tune(dyn, epochs=1, progress=False)
    assert det.config["memorisation_guard"] is False and det.scored_epochs(dyn) == 12


def test_describe_cpu_names_the_processor_and_torch_kernels(monkeypatch):
    import builtins
    import io
    from mislabel import _utils
    real_open = builtins.open

    def fake_open(path, *a, **k):
        if str(path) == "/proc/cpuinfo":
            return io.StringIO("processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu avx2\n")
        return real_open(path, *a, **k)
    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    assert _utils.cpu_name() == "Test CPU 9000"
    assert _utils.describe_cpu() == "Test CPU 9000 (AVX512)"

    def no_cpuinfo(path, *a, **k):
        if str(path) == "/proc/cpuinfo":
            raise OSError("no such file")
        return real_open(path, *a, **k)
    monkeypatch.setattr(builtins, "open", no_cpuinfo)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: (_ for _ in ()).throw(RuntimeError()))
    assert _utils.cpu_name() and _utils.describe_cpu().endswith("(unknown)")
