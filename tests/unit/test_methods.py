"""mislabel.methods: the registry, the Task checks, and each method on a tiny case with a known answer."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mislabel import methods, noise, train
from mislabel.data import make_synthetic
from mislabel.dynamics import Dynamics, DynamicsRecorder
from mislabel.detector import NoiseDetector
from mislabel.methods import beta_mixture, clustering, robust
from mislabel.methods.threshold_samples import threshold_flags, threshold_sets

SETTINGS = dict(model="mlp", epochs=2, batch_size=64, lr=0.05, seed=0, device="cpu", progress=False)


@pytest.fixture(scope="module")
def tiny():
    """300 synthetic 8x8 images, 20% symmetric noise, one recorded 3-epoch MLP run (with full probabilities)."""
    ds, test = make_synthetic(300, "train", seed=0), make_synthetic(100, "test", seed=0)
    noisy, flipped = noise.symmetric(ds.labels, rate=0.2, num_classes=10, seed=0)
    run = train.fit("mlp", ds.images, noisy, epochs=3, batch_size=64, lr=0.05, record="train", store_full=True,
                    is_flipped=flipped, seed=0, progress=False, device="cpu")
    task = methods.Task(ds.images, noisy, 10, dynamics=run.dynamics, test_images=test.images,
                        test_labels=test.labels, **SETTINGS)
    return task, flipped, ds.labels.numpy()


def _dyn_task(probs, labels, margins=None, full=None, num_classes=2, **kw):
    dyn = Dynamics(np.asarray(probs, np.float32), np.asarray(labels),
                   margins=None if margins is None else np.asarray(margins, np.float32),
                   full=None if full is None else np.asarray(full, np.float16))
    return methods.Task(None, labels, num_classes, dynamics=dyn, **kw)


# --------------------------------------------------------------------------- registry and Task
def test_registry_lists_every_method_and_rejects_unknown_names():
    assert methods.names() == ["standard", "oracle", "dy_bootstrap", "data_parameters", "incv", "aum",
                               "aum_threshold", "detector", "shipped", "cleanlab", "forgetting", "datamaps",
                               "mean_loss", "el2n", "ctrl"]
    assert methods.get("aum") is methods.aum
    with pytest.raises(ValueError, match="unknown method 'AUM'; choose one of: standard, oracle"):
        methods.get("AUM")


def test_task_checks_its_inputs_once():
    dyn = Dynamics(np.full((3, 2), 0.5, np.float32), [0, 1, 1], is_flipped=[False, True, False])
    task = methods.Task(None, [0, 1, 1], 2, dynamics=dyn)
    assert task.is_flipped.tolist() == [False, True, False] and task.dynamics.is_flipped is None
    with pytest.raises(ValueError, match="labels has class index 2 but num_classes=2"):
        methods.Task(None, [0, 2], 2)
    with pytest.raises(ValueError, match=r"recorded with other labels \(sample 2: 1 vs 0\)"):
        methods.Task(None, [0, 1, 0], 2, dynamics=dyn)
    with pytest.raises(ValueError, match="is_flipped differs"):
        methods.Task(None, [0, 1, 1], 2, dynamics=dyn, is_flipped=[True, False, False])
    with pytest.raises(ValueError, match=r"images must have shape \(3, C, H, W\)"):
        methods.Task(torch.zeros(2, 1, 4, 4), [0, 1, 1], 2)
    with pytest.raises(ValueError, match="model must be one of"):
        methods.Task(None, [0, 1], 2, model="vgg")
    with pytest.raises(ValueError, match="test_images and test_labels go together"):
        methods.Task(None, [0, 1], 2, test_images=torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        methods.Task(None, [0, 1], 2, lr=0)


@pytest.mark.parametrize("name, message", [
    ("aum", "needs a recorded run"), ("oracle", "needs the true flips"), ("incv", "needs the training images"),
])
def test_a_method_says_what_the_task_lacks(name, message):
    with pytest.raises(ValueError, match=f"method '{name}' {message}"):
        methods.run(name, methods.Task(None, [0, 1], 2))


def test_el2n_without_full_probabilities_says_how_to_record_them():
    task = _dyn_task([[0.5], [0.5]], [0, 1])
    with pytest.raises(ValueError, match=r"store_full=True"):
        methods.run("el2n", task)


# --------------------------------------------------------------------------- methods on the recorded run
def test_standard_and_oracle():
    task = methods.Task(None, [0, 1, 1], 2, is_flipped=[False, True, False])
    std, orc = methods.run("standard", task), methods.run("oracle", task)
    assert not std.remove.any() and std.scores.tolist() == [0, 0, 0] and std.method == "standard"
    assert orc.remove.tolist() == [False, True, False] and orc.scores.dtype == np.float64
    assert orc.cost.trainings == 0 and orc.cost.seconds >= 0


def test_aum_is_minus_the_mean_margin():
    task = _dyn_task([[0.9, 0.8], [0.1, 0.2]], [0, 1], margins=[[1.0, 3.0], [-2.0, 0.0]])
    res = methods.run("aum", task)
    assert res.scores.tolist() == [-2.0, 1.0] and res.remove is None and res.cost.recorded_run


def test_recorder_margins_equal_aum_package(tmp_path):
    """The same random logits through DynamicsRecorder and aum.AUMCalculator give the same per-sample AUM."""
    aum_pkg = pytest.importorskip("aum")
    n, c, epochs = 50, 5, 3
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, c, (n,), generator=g)
    calc = aum_pkg.AUMCalculator(str(tmp_path), compressed=True)
    rec = DynamicsRecorder(n, num_classes=c)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, 16):
            ids = perm[i:i + 16]
            logits = 3 * torch.randn(len(ids), c, generator=g)
            rec.update(logits, labels[ids], ids)
            calc.update(logits, labels[ids], ids.tolist())
        rec.next_epoch()
    dyn = rec.result()
    reference = np.array([calc.sums[i] / calc.counts[i] for i in range(n)])
    assert all(calc.counts[i] == epochs for i in range(n))
    np.testing.assert_allclose(dyn.margins.mean(axis=1), reference, rtol=1e-5, atol=1e-5)
    task = methods.Task(None, labels, c, dynamics=dyn)
    np.testing.assert_allclose(methods.run("aum", task).scores, -reference, rtol=1e-5, atol=1e-5)


def test_forgetting_counts_events_and_ranks_never_learned_highest():
    assert methods.forgetting_events([[1, 0, 1, 0], [0, 0, 0, 0], [0, 1, 1, 1], [1, 1, 1, 1]]).tolist() == [2, 4, 0, 0]
    task = _dyn_task(np.full((3, 4), 0.5), [0, 1, 0],
                     margins=[[1, -1, 2, -1], [-1, -2, -3, -1], [-1, 1, 1, 1]])
    assert methods.run("forgetting", task).scores.tolist() == [2.0, 4.0, 0.0]


def test_datamaps_and_mean_loss_by_hand():
    task = _dyn_task([[0.2, 0.6], [1.0, 1.0]], [0, 1])
    dm = methods.run("datamaps", task)
    np.testing.assert_allclose(dm.scores, [0.6, 0.0], atol=1e-7)
    np.testing.assert_allclose(dm.details["variability"], [0.2, 0.0], atol=1e-7)
    np.testing.assert_allclose(methods.run("mean_loss", task).scores,
                               [-(math.log(0.2) + math.log(0.6)) / 2, 0.0], rtol=1e-6, atol=1e-7)


def test_el2n_averages_the_first_epochs():
    full = [[[0.5, 0.5], [1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0], [1.0, 0.0]]]
    task = _dyn_task([[0.5, 1.0, 1.0], [1.0, 1.0, 0.0]], [0, 1], full=full)
    np.testing.assert_allclose(methods.run("el2n", task, epochs=2).scores, [math.sqrt(0.5) / 2, 0.0], atol=1e-6)
    np.testing.assert_allclose(methods.run("el2n", task).scores, [math.sqrt(0.5), 0.0], atol=1e-6)  # 1 epoch
    with pytest.raises(ValueError, match=r"epochs must be an integer in \[1, 3\]"):
        methods.run("el2n", task, epochs=4)


def test_ctrl_puts_high_loss_curves_in_the_noisy_cluster():
    rng = np.random.default_rng(0)
    t = np.arange(8)
    clean = np.clip(1 - 0.9 * np.exp(-0.5 * t) + rng.normal(0, 0.01, (30, 8)), 0.01, 1)  # p(given) -> 1
    noisy = np.clip(0.05 + rng.normal(0, 0.01, (10, 8)), 0.01, 1)                        # p(given) stays low
    probs = np.vstack([clean, noisy])
    labels = np.r_[np.arange(30) % 2, np.arange(10) % 2]
    res = methods.run("ctrl", _dyn_task(probs, labels))
    assert res.remove.tolist() == [False] * 30 + [True] * 10
    assert ((res.scores > 0.5) == res.remove).all()
    assert methods.run("ctrl", _dyn_task(probs, labels), windows=2).remove.tolist() == [False] * 30 + [True] * 10
    assert clustering.two_means(np.ones((4, 3))) is None
    with pytest.raises(ValueError, match="windows must be at most the run's 8 epochs"):
        methods.run("ctrl", _dyn_task(probs, labels), windows=9)


# --------------------------------------------------------------------------- building blocks with known answers
def test_beta_mixture_separates_two_bumps_of_losses():
    rng = np.random.default_rng(0)
    x = np.r_[rng.beta(2, 10, 700), rng.beta(10, 2, 300)]
    bmm = beta_mixture.BetaMixture(iterations=20).fit(x)
    post = bmm.noisy_posterior(x)
    assert abs(bmm.weights[bmm.noisy] - 0.3) < 0.03
    assert ((post > 0.5) == (np.arange(1000) >= 700)).mean() > 0.97
    post2, _ = beta_mixture.noise_posterior(np.r_[rng.gamma(1, 0.1, 700), 3 + rng.gamma(1, 0.1, 300)])
    assert ((post2 > 0.5) == (np.arange(1000) >= 700)).mean() > 0.97
    assert beta_mixture.noise_posterior(np.ones(5))[0].tolist() == [0.0] * 5


def test_bootstrap_loss_mixes_given_label_and_own_prediction():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([1, 1])
    ce_y, ce_own = F.cross_entropy(logits, y, reduction="none"), F.cross_entropy(logits, torch.tensor([0, 1]),
                                                                                 reduction="none")
    w = torch.tensor([0.25, 0.0])
    expected = ((1 - 0.25) * ce_y[0] + 0.25 * ce_own[0] + (1 - 1e-4) * ce_y[1] + 1e-4 * ce_own[1]) / 2
    assert torch.allclose(robust.bootstrap_loss(logits, y, w), expected)


def test_data_parameters_step_is_sparse_and_raises_a_wrong_labels_temperature():
    inst = torch.zeros(4, requires_grad=True)
    logits = torch.tensor([[5.0, 0.0], [5.0, 0.0]])             # sample 0 labelled 0 (right), sample 2 labelled 1
    loss = robust.data_parameter_loss(logits, torch.tensor([0, 1]), None, inst[torch.tensor([0, 2])])
    loss.backward()
    g = inst.grad.clone()
    assert g[0] > 0 and g[2] < 0 and g[1] == 0 and g[3] == 0
    buf = torch.tensor([0.0, 7.0, 1.0, 0.0])
    robust.sparse_momentum_step(inst, buf, torch.tensor([0, 2]), lr=0.1, momentum=0.5)
    assert buf[1] == 7.0 and inst[1] == 0 and inst[3] == 0                # untouched outside the batch
    assert torch.isclose(buf[2], 0.5 + g[2]) and torch.isclose(inst[2], -0.1 * (0.5 + g[2]))
    assert inst[2] > 0 and inst[0] < 0


def test_incv_noise_ratio_and_aum_threshold_sets():
    for e, c in ((0.4, 10), (0.0, 3), (0.7, 100)):
        assert abs(methods.estimate_noise_ratio((1 - e) ** 2 + e ** 2 / (c - 1), c) - e) < 1e-9
    assert methods.estimate_noise_ratio(0.01, 10) == pytest.approx(0.9)
    sets = threshold_sets(110, 10, runs=2, seed=0)
    assert sets.sum(axis=1).tolist() == [10, 10] and not (sets[0] & sets[1]).any()
    flags, cut = threshold_flags(np.array([2.0, -2.5, 0.5, -3.0, -2.0, 0.0]), np.array([0, 0, 0, 1, 1, 1], bool),
                                 percentile=50)
    assert cut == -2.0 and flags.tolist() == [False, True, False, False, False, False]


def test_retrain_rules():
    assert methods.shrunk_batch_size(256, 40000, 50000) == 205 and methods.shrunk_batch_size(4, 1, 100) == 1
    assert methods.remove_top([0.2, 0.9, 0.5, 0.9], 2).tolist() == [False, True, False, True]
    assert not methods.remove_top([1.0, 2.0], 0).any()
    with pytest.raises(ValueError, match=r"k must be an integer in \[0, 2\]"):
        methods.remove_top([1.0, 2.0], 3)


# --------------------------------------------------------------------------- methods that train (tiny runs)
def test_aum_threshold_trains_two_runs_with_an_extra_class(tiny):
    task, _, _ = tiny
    res = methods.run("aum_threshold", task)
    sets = res.details["threshold_sets"]
    assert sets.sum(axis=1).tolist() == [300 // 11] * 2 and res.cost.trainings == 2 and res.cost.epochs == 4
    aums = res.details["aums"]
    judged = ~sets
    expect = np.zeros(300, bool)
    for r in range(2):
        expect |= judged[r] & (aums[r] < res.details["cutoffs"][r])
    assert (res.remove == expect).all()


def test_robust_methods_report_their_own_test_accuracy(tiny):
    task, _, _ = tiny
    for name, opts in (("dy_bootstrap", {"warmup": 1}), ("data_parameters", {})):
        res = methods.run(name, task, **opts)
        assert res.scores.shape == (300,) and res.remove.shape == (300,)
        assert 0.0 <= res.test_acc <= 1.0 and res.cost.trainings == 1
    res = methods.run("data_parameters", task, learn_class=False)
    assert (res.remove == (res.scores > 0)).all() and np.abs(res.scores).max() <= math.log(20) + 1e-6


def test_incv_and_cleanlab_count_their_trainings(tiny):
    task, _, _ = tiny
    res = methods.run("incv", task, iterations=1)
    assert res.cost.trainings == 2 and res.cost.epochs == 4 and 0 <= res.details["noise_ratio"] < 0.9
    assert ((res.scores >= 1) == res.remove).all()
    pytest.importorskip("cleanlab")
    res = methods.run("cleanlab", task, folds=2)
    assert res.cost.trainings == 2 and res.remove.dtype == bool and res.details["pred_probs"].shape == (300, 10)


def test_detectors_decide_at_one_half(tiny):
    task, _, clean = tiny
    with pytest.raises(ValueError, match="exactly one of detector="):
        methods.run("detector", task)
    noisy, flips = noise.symmetric(clean, rate=0.3, num_classes=10, seed=1)     # another synthesized-noise run
    other = train.fit("mlp", task.images, noisy, epochs=3, batch_size=64, lr=0.05, seed=1, progress=False,
                      device="cpu")
    res = methods.run("detector", task, train_dynamics=other.dynamics, train_flips=flips, epochs=1)
    assert (res.remove == (res.scores >= 0.5)).all() and "trained here" in res.cost.note
    det = NoiseDetector(features="prob").fit(other.dynamics, flips, epochs=1, progress=False)
    assert np.allclose(methods.run("detector", task, detector=det, threshold=0.9).scores, det.score(task.dynamics))
    shipped = methods.run("shipped", task)
    assert shipped.scores.shape == (300,) and (shipped.remove == (shipped.scores >= 0.5)).all()


def test_retrain_without_removes_and_shrinks(tiny):
    task, flipped, _ = tiny
    acc = methods.retrain_without(task, flipped, epochs=1)
    assert 0.0 <= acc <= 1.0
    with pytest.raises(ValueError, match="keep at least one"):
        methods.retrain_without(task, np.ones(300, bool))
    no_test = methods.Task(task.images, task.labels, 10, **SETTINGS)
    with pytest.raises(ValueError, match="needs test data"):
        methods.retrain_without(no_test, flipped)
