"""mislabel.dividemix: the mixture split, the batch arithmetic by hand, the strong policy, and tiny runs."""
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from mislabel import noise
from mislabel.data import make_synthetic
from mislabel.dividemix import (DivideMixConfig, clean_probability, co_guess, co_refine, dividemix,
                                fit_two_gaussians, mix_lambda, mixmatch, normalise_losses, rampup_weight, semi_loss,
                                sharpen, strong_augment, uniform_prior_penalty)
from mislabel.dividemix import policy


# --------------------------------------------------------------------------- the mixture
def test_gmm_splits_separable_losses():
    rng = np.random.default_rng(0)
    low, high = rng.normal(0.1, 0.02, 60), rng.normal(0.8, 0.05, 40)
    fit = fit_two_gaussians(np.concatenate([low, high]))
    assert fit.converged
    assert fit.means[0] == pytest.approx(low.mean(), abs=1e-3) and fit.means[1] == pytest.approx(high.mean(), abs=1e-3)
    assert fit.weights == pytest.approx([0.6, 0.4], abs=1e-3)
    # the variance is the component's own plus reg_covar
    assert fit.variances[0] == pytest.approx(low.var() + 5e-4, rel=1e-2)
    prob = clean_probability(np.concatenate([low, high]) * 7.0 + 3.0)   # scale and shift do not matter
    assert (prob[:60] > 0.99).all() and (prob[60:] < 0.01).all()


def test_normalise_losses_and_degenerate_inputs():
    np.testing.assert_allclose(normalise_losses([2.0, 4.0, 3.0]), [0.0, 1.0, 0.5])
    np.testing.assert_array_equal(normalise_losses([5.0, 5.0]), [0.0, 0.0])
    np.testing.assert_array_equal(clean_probability([1.0, 1.0, 1.0]), [1.0, 1.0, 1.0])   # nothing to divide
    with pytest.raises(ValueError, match="values"):
        fit_two_gaussians(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="losses"):
        normalise_losses([1.0, float("nan")])


# --------------------------------------------------------------------------- batch arithmetic by hand
def test_sharpen_and_co_refinement_by_hand():
    # 0.6^2 = 0.36, 0.4^2 = 0.16, sum 0.52
    np.testing.assert_allclose(sharpen(torch.tensor([[0.6, 0.4]]), 0.5).numpy(), [[0.36 / 0.52, 0.16 / 0.52]],
                               rtol=1e-6)
    y = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([[0.2, 0.8], [0.2, 0.8], [0.5, 0.5]])
    w = torch.tensor([0.5, 1.0, 0.0])
    out = co_refine(y, p, w, 0.5).numpy()
    # row 0: 0.5*[1,0] + 0.5*[.2,.8] = [.6,.4] -> sharpened as above; row 1: the label; row 2: [.5,.5] stays
    np.testing.assert_allclose(out, [[0.36 / 0.52, 0.16 / 0.52], [1.0, 0.0], [0.5, 0.5]], rtol=1e-6)


def test_co_guessing_averages_four_views_then_sharpens():
    views = [torch.tensor([[0.9, 0.1]]), torch.tensor([[0.7, 0.3]]), torch.tensor([[0.5, 0.5]]),
             torch.tensor([[0.3, 0.7]])]
    # mean [0.6, 0.4] -> [0.36, 0.16] / 0.52
    np.testing.assert_allclose(co_guess(views, 0.5).numpy(), [[0.36 / 0.52, 0.16 / 0.52]], rtol=1e-6)
    np.testing.assert_allclose(co_guess(torch.stack(views), 0.5).numpy(), [[0.36 / 0.52, 0.16 / 0.52]], rtol=1e-6)


def test_mixmatch_shapes_and_values():
    x = torch.arange(8 * 1 * 2 * 2, dtype=torch.float32).view(8, 1, 2, 2)
    t = torch.eye(3)[torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])]
    perm = torch.tensor([7, 6, 5, 4, 3, 2, 1, 0])
    mx, mt = mixmatch(x, t, 0.75, perm)
    assert mx.shape == (8, 1, 2, 2) and mt.shape == (8, 3)
    torch.testing.assert_close(mx[0], 0.75 * x[0] + 0.25 * x[7])
    torch.testing.assert_close(mt[0], torch.tensor([0.75, 0.25, 0.0]))   # class 0 mixed with class 1
    torch.testing.assert_close(mt.sum(1), torch.ones(8))
    rng = np.random.default_rng(0)
    lams = [mix_lambda(4.0, rng) for _ in range(200)]
    assert min(lams) >= 0.5 and max(lams) <= 1.0


def test_semi_loss_rampup_and_prior_by_hand():
    zero = torch.zeros(2, 2)
    lx, lu = semi_loss(zero, torch.tensor([[1.0, 0.0], [0.0, 1.0]]), zero, torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
    assert lx.item() == pytest.approx(math.log(2))          # uniform prediction, one-hot targets
    assert lu.item() == pytest.approx(0.25)                 # (0.5 - 1)^2 and (0.5 - 0)^2, averaged
    _, none = semi_loss(zero, torch.tensor([[1.0, 0.0], [0.0, 1.0]]), zero[:0], zero[:0])
    assert none.item() == 0.0
    assert rampup_weight(18.0, 10, 25.0, 16) == pytest.approx(12.5)
    assert rampup_weight(5.0, 10, 25.0, 16) == 0.0 and rampup_weight(40.0, 10, 25.0, 16) == 25.0
    assert uniform_prior_penalty(torch.zeros(4, 3)).item() == pytest.approx(0.0, abs=1e-7)
    # mean prediction [0.75, 0.25]: 0.5 log(0.5/0.75) + 0.5 log(0.5/0.25)
    logits = torch.log(torch.tensor([[1.0, 0.0 + 1e-12], [0.5, 0.5]]))
    expected = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    assert uniform_prior_penalty(logits).item() == pytest.approx(expected, rel=1e-5)


# --------------------------------------------------------------------------- the strong policy
def test_strong_augment_is_seeded_shape_preserving_and_the_same_by_operation():
    x = torch.randint(0, 256, (32, 1, 12, 12), dtype=torch.uint8)
    a = strong_augment(x, generator=torch.Generator().manual_seed(3))
    b = strong_augment(x, generator=torch.Generator().manual_seed(3))
    assert a.shape == x.shape and a.dtype == torch.uint8 and torch.equal(a, b)
    assert not torch.equal(a, x)
    xf = x.float() / 255
    choice = torch.arange(32) % len(policy.STRONG_OPS)
    mag, c = torch.rand(32), torch.rand(32, 2)
    whole = policy._round(xf, policy.STRONG_OPS, choice, mag, -mag, c, by_op=False)
    split = policy._round(xf, policy.STRONG_OPS, choice, mag, -mag, c, by_op=True)
    torch.testing.assert_close(whole, split)
    # rows that drew identity keep their pixels
    torch.testing.assert_close(whole[choice == 0], xf[choice == 0])
    with pytest.raises(ValueError, match="magnitude"):
        strong_augment(x, magnitude=1.5)
    with pytest.raises(ValueError, match="ops"):
        strong_augment(x, ops=("blur",))


# --------------------------------------------------------------------------- settings
@pytest.mark.parametrize("kwargs, name", [(dict(warmup_epochs=5, epochs=3), "warmup_epochs"),
                                          (dict(augmentation="strong"), "augmentation"),
                                          (dict(p_threshold=1.5), "p_threshold"),
                                          (dict(temperature=0.0), "temperature"),
                                          (dict(milestones=(1.5,)), "milestones")])
def test_config_rejects_bad_settings(kwargs, name):
    with pytest.raises(ValueError, match=name):
        DivideMixConfig(**kwargs)


def test_dividemix_refuses_a_module():
    ds = make_synthetic(20, "train", seed=0)
    with pytest.raises(ValueError, match="model"):
        dividemix(torch.nn.Linear(64, 10), ds.images, ds.labels, epochs=2, warmup_epochs=1, progress=False)


# --------------------------------------------------------------------------- tiny runs
@pytest.fixture(scope="module")
def toy():
    ds, test = make_synthetic(600, "train", seed=0), make_synthetic(300, "test", seed=0)
    noisy, flipped = noise.symmetric(ds.labels, rate=0.2, num_classes=10, seed=0)
    return ds, test, noisy, flipped


def test_dividemix_learns_a_toy_task_and_finds_its_flips(toy):
    ds, test, noisy, flipped = toy
    res = dividemix("mlp", ds.images, noisy, epochs=8, warmup_epochs=3, lr=0.1, seed=0, device="cpu",
                    progress=False, test_images=test.images, test_labels=test.labels, record="eval",
                    is_flipped=flipped)
    assert res.last() > 0.5 and res.best() >= res.last()         # chance is 0.1
    assert res.history["phase"] == ["warmup"] * 3 + ["train"] * 5
    assert all(n < len(noisy) for n in res.history["labeled1"][3:])   # the division keeps some out
    assert roc_auc_score(flipped, res.scores) > 0.9
    assert res.clean_prob.shape == (600, 2) and res.dynamics.probs.shape == (600, 8)
    assert res.noisy.sum() > 0


def test_dividemix_is_deterministic_on_cpu(toy):
    ds, test, noisy, _ = toy
    kw = dict(epochs=3, warmup_epochs=1, lr=0.05, seed=1, device="cpu", progress=False, augmentation="augdesc-ws",
              test_images=test.images[:100], test_labels=test.labels[:100])
    a = dividemix("mlp", ds.images[:200], noisy[:200], **kw)
    b = dividemix("mlp", ds.images[:200], noisy[:200], **kw)
    np.testing.assert_array_equal(a.clean_prob, b.clean_prob)
    assert a.history["test_acc"] == b.history["test_acc"] and a.history["loss1"] == b.history["loss1"]
    for p, q in zip(a.nets[0].parameters(), b.nets[0].parameters()):
        assert torch.equal(p, q)
