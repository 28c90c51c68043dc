"""Exact tests of the label-noise generators in mislabel.noise."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mislabel import noise

C = 10
LABELS = np.arange(1000) % C  # 100 samples per class


def _check_contract(labels, noisy, flipped, expected_flips):
    labels = np.asarray(labels)
    assert isinstance(noisy, np.ndarray) and isinstance(flipped, np.ndarray)
    assert noisy.dtype == np.int64 and flipped.dtype == np.bool_
    assert noisy.shape == flipped.shape == labels.shape
    np.testing.assert_array_equal(flipped, noisy != labels)
    assert flipped.sum() == expected_flips


# --------------------------------------------------------------------------- symmetric
@pytest.mark.parametrize("rate", [0.0, 0.1, 0.25, 0.4, 0.8, 0.999])
@pytest.mark.parametrize("n", [1, 7, 1000])
def test_symmetric_exact_count_and_never_same_class(rate, n):
    labels = np.arange(n) % C
    noisy, flipped = noise.symmetric(labels, rate, C, seed=3)
    _check_contract(labels, noisy, flipped, round(rate * n))
    assert noisy.min() >= 0 and noisy.max() < C


def test_symmetric_two_classes_flips_to_the_other_one():
    labels = np.array([0, 1] * 50)
    noisy, flipped = noise.symmetric(labels, 0.3, 2, seed=0)
    assert flipped.sum() == 30
    np.testing.assert_array_equal(noisy[flipped], 1 - labels[flipped])


def test_symmetric_targets_cover_all_other_classes():
    labels = np.zeros(2000, dtype=np.int64)
    noisy, flipped = noise.symmetric(labels, 0.5, 4, seed=1)
    assert set(np.unique(noisy[flipped]).tolist()) == {1, 2, 3}


def test_symmetric_accepts_tensor_and_list_and_returns_numpy():
    t = torch.arange(20) % 4
    noisy, flipped = noise.symmetric(t, 0.5, 4, seed=0)
    _check_contract(t.numpy(), noisy, flipped, 10)
    noisy_l, _ = noise.symmetric(t.tolist(), 0.5, 4, seed=0)
    np.testing.assert_array_equal(noisy, noisy_l)


def test_seeds_deterministic_and_different():
    a = noise.symmetric(LABELS, 0.3, C, seed=0)
    b = noise.symmetric(LABELS, 0.3, C, seed=0)
    c = noise.symmetric(LABELS, 0.3, C, seed=1)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[1], c[1])
    a = noise.asymmetric(LABELS, 0.3, C, seed=5, mapping="cifar10")
    c = noise.asymmetric(LABELS, 0.3, C, seed=6, mapping="cifar10")
    assert not np.array_equal(a[1], c[1])


def test_input_not_modified():
    labels = np.arange(100) % C
    before = labels.copy()
    noise.symmetric(labels, 0.5, C)
    noise.asymmetric(labels, 0.5, C)
    noise.superclass(labels, 0.5, noise.FASHION_MNIST_GROUPS)
    np.testing.assert_array_equal(labels, before)


# --------------------------------------------------------------------------- asymmetric
def test_asymmetric_next_exact():
    noisy, flipped = noise.asymmetric(LABELS, 0.35, C, seed=0)  # mapping="next" by default
    _check_contract(LABELS, noisy, flipped, 350)
    np.testing.assert_array_equal(noisy[flipped], (LABELS[flipped] + 1) % C)
    np.testing.assert_array_equal(noisy[~flipped], LABELS[~flipped])


def test_asymmetric_cifar10_pairs():
    noisy, flipped = noise.asymmetric(LABELS, 0.4, C, seed=2, mapping="cifar10")
    _check_contract(LABELS, noisy, flipped, 400)
    expected = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}
    for src, dst in zip(LABELS[flipped], noisy[flipped]):
        assert expected[int(src)] == dst
    assert not flipped[np.isin(LABELS, [0, 1, 6, 7, 8])].any()


def test_asymmetric_cifar10_max_rate():
    # 5 of 10 classes move: at most 500 of 1000 samples can flip
    noisy, flipped = noise.asymmetric(LABELS, 0.5, C, seed=0, mapping="cifar10")
    assert flipped.sum() == 500
    with pytest.raises(ValueError, match="largest achievable rate is about 0.5000"):
        noise.asymmetric(LABELS, 0.51, C, seed=0, mapping="cifar10")
    with pytest.raises(ValueError, match="largest achievable rate"):
        noise.asymmetric(np.zeros(10, dtype=int), 0.1, C, mapping="cifar10")


def test_asymmetric_fashion_mnist_table():
    table = noise.asymmetric_mapping("fashion-mnist", 10)
    np.testing.assert_array_equal(table, [6, 1, 4, 0, 2, 7, 0, 5, 8, 7])
    noisy, flipped = noise.asymmetric(LABELS, 0.3, C, seed=0, mapping="fashion-mnist")
    _check_contract(LABELS, noisy, flipped, 300)
    np.testing.assert_array_equal(noisy[flipped], table[LABELS[flipped]])
    assert not flipped[np.isin(LABELS, [1, 8])].any()


def test_asymmetric_explicit_mappings():
    labels = np.array([0, 0, 1, 1, 2, 2, 2, 2])
    noisy, flipped = noise.asymmetric(labels, 0.25, 3, seed=0, mapping={2: 0})
    _check_contract(labels, noisy, flipped, 2)
    assert set(np.flatnonzero(flipped).tolist()) <= {4, 5, 6, 7}
    assert (noisy[flipped] == 0).all()
    noisy, flipped = noise.asymmetric(labels, 0.5, 3, seed=0, mapping=[2, 0, 1])
    np.testing.assert_array_equal(noisy[flipped], np.array([2, 0, 1])[labels[flipped]])


@pytest.mark.parametrize(
    "mapping, num_classes",
    [("nope", 10), ("cifar10", 5), ([1, 0], 3), ({0: 3}, 3), ([0, 1, 5], 3), ({0.5: 1}, 3)],
)
def test_asymmetric_bad_mapping(mapping, num_classes):
    with pytest.raises(ValueError):
        noise.asymmetric(np.zeros(4, dtype=int), 0.5, num_classes, mapping=mapping)


# --------------------------------------------------------------------------- superclass
def test_superclass_stays_in_group():
    groups = noise.FASHION_MNIST_GROUPS
    noisy, flipped = noise.superclass(LABELS, 0.6, groups, seed=4)
    _check_contract(LABELS, noisy, flipped, 600)
    np.testing.assert_array_equal(groups[noisy], groups[LABELS])


def test_fashion_mnist_groups_documented_values():
    g = noise.FASHION_MNIST_GROUPS
    assert g.shape == (10,)
    tops, footwear, other = {0, 2, 3, 4, 6}, {5, 7, 9}, {1, 8}
    for members in (tops, footwear, other):
        assert len({int(g[k]) for k in members}) == 1
    assert len({int(g[0]), int(g[5]), int(g[1])}) == 3


def test_superclass_singleton_groups_ineligible():
    groups = np.array([0, 0, 1])  # class 2 alone in its group
    labels = np.array([0, 1, 2, 2, 2, 2, 2, 2, 2, 2])
    noisy, flipped = noise.superclass(labels, 0.2, groups, seed=0)
    _check_contract(labels, noisy, flipped, 2)
    np.testing.assert_array_equal(np.flatnonzero(flipped), [0, 1])
    np.testing.assert_array_equal(noisy[:2], [1, 0])
    with pytest.raises(ValueError, match="largest achievable rate is about 0.2000"):
        noise.superclass(labels, 0.3, groups, seed=0)


def test_groups_from_coarse_and_cifar100_groups():
    fine = np.array([0, 1, 2, 3, 0, 2])
    coarse = np.array([1, 0, 1, 0, 1, 1])
    np.testing.assert_array_equal(noise.groups_from_coarse(fine, coarse), [1, 0, 1, 0])
    ds = SimpleNamespace(labels=torch.tensor(fine), coarse_labels=torch.tensor(coarse), num_classes=4)
    np.testing.assert_array_equal(noise.cifar100_groups(ds), [1, 0, 1, 0])
    with pytest.raises(ValueError, match="several coarse labels"):
        noise.groups_from_coarse(fine, np.array([1, 0, 1, 0, 0, 1]))
    with pytest.raises(ValueError, match="never occur"):
        noise.groups_from_coarse(fine, coarse, num_classes=6)
    with pytest.raises(ValueError, match="same shape"):
        noise.groups_from_coarse(fine, coarse[:3])
    with pytest.raises(ValueError, match="coarse_labels"):
        noise.cifar100_groups(SimpleNamespace(labels=torch.tensor(fine), coarse_labels=None, num_classes=4))


# --------------------------------------------------------------------------- make
def test_make_dispatches():
    for kind, kw, direct in [
        ("symmetric", {}, lambda: noise.symmetric(LABELS, 0.2, C, seed=9)),
        ("asymmetric", {"mapping": "cifar10"}, lambda: noise.asymmetric(LABELS, 0.2, C, seed=9, mapping="cifar10")),
        (
            "superclass",
            {"groups": noise.FASHION_MNIST_GROUPS},
            lambda: noise.superclass(LABELS, 0.2, noise.FASHION_MNIST_GROUPS, seed=9),
        ),
    ]:
        got = noise.make(kind, LABELS, 0.2, C, seed=9, **kw)
        want = direct()
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    assert noise.NOISE_KINDS == ("symmetric", "asymmetric", "superclass")


def test_make_errors():
    with pytest.raises(ValueError, match="symmetric, asymmetric, superclass"):
        noise.make("pairflip", LABELS, 0.2, C)
    with pytest.raises(ValueError, match="groups="):
        noise.make("superclass", LABELS, 0.2, C)
    with pytest.raises(ValueError, match="num_classes"):
        noise.make("superclass", LABELS, 0.2, 12, groups=noise.FASHION_MNIST_GROUPS)
    with pytest.raises(ValueError, match="mapping"):
        noise.make("symmetric", LABELS, 0.2, C, mapping="next")


# --------------------------------------------------------------------------- twice contaminated
@pytest.mark.parametrize(
    "kind, kw",
    [("symmetric", {}), ("asymmetric", {"mapping": "next"}), ("superclass", {"groups": noise.FASHION_MNIST_GROUPS})],
)
def test_twice_contaminated_masks(kind, kw):
    res = noise.twice_contaminated(LABELS, 0.2, 0.3, C, seed=7, kind=kind, **kw)
    noisy, synth, under = res
    assert res.noisy_labels is noisy and res.synthesized_mask is synth and res.underlying_mask is under
    assert noisy.dtype == np.int64 and synth.dtype == np.bool_ and under.dtype == np.bool_
    assert under.sum() == 200 and synth.sum() == 300
    assert not (synth & under).any()
    np.testing.assert_array_equal(noisy != LABELS, synth | under)
    # the first round is exactly make(kind, ..., seed)
    first, first_mask = noise.make(kind, LABELS, 0.2, C, seed=7, **kw)
    np.testing.assert_array_equal(under, first_mask)
    np.testing.assert_array_equal(noisy[under], first[under])
    if kind == "superclass":
        np.testing.assert_array_equal(kw["groups"][noisy], kw["groups"][LABELS])


def test_twice_contaminated_deterministic_and_errors():
    a = noise.twice_contaminated(LABELS, 0.1, 0.4, C, seed=0)
    b = noise.twice_contaminated(LABELS, 0.1, 0.4, C, seed=0)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    c = noise.twice_contaminated(LABELS, 0.1, 0.4, C, seed=1)
    assert not np.array_equal(a.synthesized_mask, c.synthesized_mask)
    # zero underlying noise: the second round alone
    z = noise.twice_contaminated(LABELS, 0.0, 0.4, C, seed=0)
    assert not z.underlying_mask.any() and z.synthesized_mask.sum() == 400
    with pytest.raises(ValueError, match="must be < 1"):
        noise.twice_contaminated(LABELS, 0.5, 0.5, C)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        noise.twice_contaminated(LABELS, 0.5, 1.0, C)
    with pytest.raises(ValueError, match="symmetric, asymmetric, superclass"):
        noise.twice_contaminated(LABELS, 0.1, 0.1, C, kind="bogus")


# --------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5, float("nan"), True, "0.2", None])
def test_bad_rate(rate):
    with pytest.raises(ValueError, match=r"noise rate must be in \[0, 1\)"):
        noise.symmetric(LABELS, rate, C)


@pytest.mark.parametrize(
    "labels",
    [np.array([0, 1, 10]), np.array([-1, 0]), np.array([], dtype=int), np.zeros((3, 2), dtype=int), np.array([0.5, 1.0])],
)
def test_bad_labels(labels):
    for fn in (
        lambda: noise.symmetric(labels, 0.2, C),
        lambda: noise.asymmetric(labels, 0.2, C),
        lambda: noise.superclass(labels, 0.2, noise.FASHION_MNIST_GROUPS),
    ):
        with pytest.raises(ValueError):
            fn()


@pytest.mark.parametrize("num_classes", [1, 0, 2.5, True])
def test_bad_num_classes(num_classes):
    with pytest.raises(ValueError, match="num_classes"):
        noise.symmetric(np.zeros(5, dtype=int), 0.2, num_classes)


@pytest.mark.parametrize("seed", [-1, 1.5, "0"])
def test_bad_seed(seed):
    with pytest.raises(ValueError, match="seed"):
        noise.symmetric(LABELS, 0.2, C, seed=seed)
