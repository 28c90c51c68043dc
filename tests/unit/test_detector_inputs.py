"""Edge cases of the detector, the metrics and the denormal-flushing switch (hand-computed values)."""
import threading

import numpy as np
import pytest
import torch

from mislabel import Dynamics, NoiseDetector, metrics, transfer
from mislabel._utils import flush_denormal

TINY = 1e-40   # a float32 denormal: zero while flushing is on


def _flushing() -> bool:
    return float(torch.tensor([TINY], dtype=torch.float32)[0] * 1.0) == 0.0


def test_flush_denormal_nests_and_is_per_thread():
    torch.set_flush_denormal(False)
    assert not _flushing()
    go, seen = threading.Event(), []

    def other():   # started before the block (new threads inherit their creator's setting)
        go.wait(10)
        seen.append(_flushing())

    t = threading.Thread(target=other)
    t.start()
    with flush_denormal():
        assert _flushing()
        with flush_denormal():
            assert _flushing()
        assert _flushing(), "an inner block must not switch flushing off for the rest of the outer one"
        go.set()
        t.join()
        assert seen == [False], "the setting belongs to the thread that made it"
    assert not _flushing()


def test_precision_at_k_shares_a_tie_across_the_cut():
    # k = 2; 0.9 is flipped, then a tie of one flipped and one clean sample for the one place left: 1 + 1/2 hits
    for flips in ([1, 1, 0, 0], [1, 0, 1, 0]):
        r = metrics.evaluate([0.9, 0.5, 0.5, 0.1], flips)
        assert r["precision_at_k"] == pytest.approx(0.75)
    # a constant score gives the noise rate whatever the sample order
    assert metrics.evaluate([0.3] * 4, [1, 1, 0, 0])["precision_at_k"] == 0.5
    assert metrics.evaluate([0.3] * 4, [0, 0, 1, 1])["precision_at_k"] == 0.5
    # no tie at the cut: the plain count
    assert metrics.evaluate([0.9, 0.8, 0.7, 0.1], [1, 0, 1, 0])["precision_at_k"] == 0.5


def test_evaluate_when_every_sample_is_flipped():
    r = metrics.evaluate([0.9, 0.1], [True, True])
    assert r["map"] == 1.0 == metrics.average_precision([0.9, 0.1], [True, True])
    assert np.isnan(r["roc_auc"])


@pytest.mark.parametrize("recall", [0, 1.5, -0.1, True, "0.95"])
def test_precision_at_recall_rejects_bad_recall(recall):
    with pytest.raises(ValueError, match=r"recall must be a number in \(0, 1\]"):
        metrics.precision_at_recall([0.9, 0.1], [True, False], recall=recall)


def _toy(n=40, T=6, seed=0, flip_share=0.3):
    rng = np.random.default_rng(seed)
    f = np.arange(n) < int(flip_share * n)
    p = np.clip(np.where(f, 0.2, 0.8)[:, None] + 0.05 * rng.standard_normal((n, T)), 0.01, 0.99)
    m = np.where(f, -1.0, 2.0)[:, None] + rng.standard_normal((n, T))
    return Dynamics(p.astype(np.float32), np.zeros(n, dtype=np.int64), is_flipped=f, margins=m.astype(np.float32))


def test_a_failed_fit_leaves_the_detector_untrained():
    det = NoiseDetector(hidden_size=4, num_layers=1)
    with pytest.raises(ValueError, match="both flipped and clean"):
        det.fit(_toy(flip_share=0.0), epochs=1, progress=False)
    assert not det.trained and det.seq_len is None
    with pytest.raises(RuntimeError, match="untrained"):
        det.score(_toy())
    with pytest.raises(RuntimeError, match="untrained"):
        det.save("never-written.pt")


def test_a_detector_built_with_seq_len_is_untrained_until_fit():
    det = NoiseDetector(hidden_size=4, num_layers=1, seq_len=8)
    with pytest.raises(RuntimeError, match="untrained"):
        det.score(_toy())
    det.fit(_toy(), epochs=1, progress=False)
    assert det.trained and det.seq_len == 8


def test_fit_from_scratch_takes_the_new_runs_length():
    det = NoiseDetector(hidden_size=4, num_layers=1)
    det.fit(_toy(T=6), epochs=1, progress=False)
    assert det.seq_len == 6
    det.fit(_toy(T=9), epochs=1, progress=False)
    assert det.seq_len == 9
    det.fine_tune(_toy(T=4), epochs=1, progress=False)   # fine-tuning keeps the trained length
    assert det.seq_len == 9


def test_val_fraction_that_leaves_nothing_to_train_on():
    with pytest.raises(ValueError, match="val_fraction=0.9 leaves no sequences to train on"):
        NoiseDetector(hidden_size=4, num_layers=1).fit(_toy(n=6, flip_share=0.5), epochs=1, val_fraction=0.9,
                                                       progress=False)


def test_load_names_a_checkpoint_without_its_configuration(tmp_path):
    det = NoiseDetector(hidden_size=4, num_layers=1).fit(_toy(), epochs=1, progress=False)
    path = det.save(tmp_path / "d.pt")
    payload = torch.load(path, weights_only=True)
    del payload["config"]
    torch.save(payload, tmp_path / "broken.pt")
    with pytest.raises(ValueError, match="configuration is missing"):
        NoiseDetector.load(tmp_path / "broken.pt")
    assert NoiseDetector.load(path).trained


def test_in_domain_detector_has_the_sources_architecture():
    source = NoiseDetector(hidden_size=4, num_layers=1, seq_len=5, members=2).fit(_toy(), epochs=1,
                                                                                   progress=False)
    seen = {}
    fit = NoiseDetector.fit

    def spy(self, *args, **kwargs):
        out = fit(self, *args, **kwargs)
        seen.update(self.config, members_trained=len(self.nets))
        return out

    NoiseDetector.fit = spy
    try:
        transfer.compare(source, _toy(seed=1), _toy(seed=2), fine_tune_epochs=1, epochs=1, include_shipped=False)
    finally:
        NoiseDetector.fit = fit
    assert seen["seq_len"] == 5 and seen["members_trained"] == 2 and seen["hidden_size"] == 4
    assert seen["memorisation_guard"] is False


@pytest.mark.parametrize("seed", [True, -1, 1.5])
def test_one_seed_check_everywhere(seed):
    from mislabel import noise
    from mislabel._utils import set_seed
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        set_seed(seed)
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        noise.symmetric(np.zeros(4, dtype=np.int64), 0.5, num_classes=3, seed=seed)


@pytest.mark.parametrize("flips", [np.r_[np.zeros(30, int), np.full(10, 2)],        # IndexError before
                                   np.r_[np.zeros(30), np.full(10, 0.9)],            # "both flipped and clean"
                                   np.array(["no"] * 30 + ["yes"] * 10)])
def test_is_flipped_must_be_0_or_1(flips):
    d = _toy()
    det = NoiseDetector(hidden_size=4, num_layers=1)
    with pytest.raises(ValueError, match="is_flipped must be boolean, or integers or floats that are exactly 0 or 1"):
        det.fit(d.probs, flips, epochs=1, progress=False)
    trained = NoiseDetector(hidden_size=4, num_layers=1).fit(d, epochs=1, progress=False)
    with pytest.raises(ValueError, match="is_flipped must be boolean"):
        trained.fine_tune(d.probs, flips, epochs=1, progress=False)
    # exact 0/1 integers and floats train exactly as booleans do
    f = d.is_flipped
    ref = NoiseDetector(hidden_size=4, num_layers=1).fit(d.probs, f, epochs=1, progress=False).score(d.probs)
    for same in (f.astype(int), f.astype(np.float32)):
        got = NoiseDetector(hidden_size=4, num_layers=1).fit(d.probs, same, epochs=1, progress=False).score(d.probs)
        assert np.array_equal(got, ref)


@pytest.mark.parametrize("empty", [[], ()])
def test_fit_on_no_dynamics_says_what_is_missing(empty):
    with pytest.raises(ValueError, match="needs at least one Dynamics"):
        NoiseDetector(hidden_size=4, num_layers=1).fit(empty, epochs=1, progress=False)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True])
def test_batch_size_must_be_a_positive_integer(batch_size):
    d = _toy()
    match = "batch_size must be a positive integer"
    with pytest.raises(ValueError, match=match):
        NoiseDetector(hidden_size=4, num_layers=1).fit(d, epochs=1, batch_size=batch_size, progress=False)
    det = NoiseDetector(hidden_size=4, num_layers=1, members=2).fit(d, epochs=1, progress=False)
    for call in (lambda: det.score(d, batch_size=batch_size),
                 lambda: det.scored_epochs(d, batch_size=batch_size),
                 lambda: det.member_scores(d, batch_size=batch_size),
                 lambda: det.fine_tune(d, epochs=1, batch_size=batch_size, progress=False),
                 lambda: det.adapt(d, lambda labels: d, num_classes=2, epochs=1, batch_size=batch_size,
                                   progress=False)):
        with pytest.raises(ValueError, match=match):
            call()
    np.testing.assert_allclose(det.score(d, batch_size=np.int64(7)), det.score(d), atol=1e-6)   # a NumPy int works


@pytest.mark.parametrize("name, value", [("seq_len", 0), ("seq_len", -3), ("seq_len", 2.5), ("seq_len", True),
                                         ("hidden_size", 0), ("hidden_size", 2.5), ("hidden_size", "64"),
                                         ("num_layers", 0), ("num_layers", 1.5)])
def test_constructor_numbers_must_be_positive_integers(name, value):
    with pytest.raises(ValueError, match=f"{name} must be a positive integer"):
        NoiseDetector(**{name: value})
    assert NoiseDetector(hidden_size=4, num_layers=1, seq_len=np.int64(8)).config["seq_len"] == 8


def test_pair_confusion_checks_num_classes_and_class_indices():
    from mislabel.detector import pair_confusion
    labels, margins = np.array([0, 1, 5]), np.array([[1.0, -1.0], [-1.0, 1.0], [0.5, -0.5]])
    runner = np.array([[1, 1], [0, 2], [4, 4]])
    with pytest.raises(ValueError, match="num_classes=3 but labels or runner_up hold class 5"):
        pair_confusion(labels, margins, runner, num_classes=3)
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        pair_confusion(labels, margins, runner, num_classes=0)
    with pytest.raises(ValueError, match="class indices >= 0"):
        pair_confusion(labels - 1, margins, runner)
    inferred = pair_confusion(labels, margins, runner)
    for a, b in zip(inferred, pair_confusion(labels, margins, runner, num_classes=6)):
        assert np.array_equal(a, b)


def _toy_pairs(n=60, T=6, seed=0):
    d = _toy(n=n, T=T, seed=seed, flip_share=0.3)
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    runner = ((labels[:, None] + 1 + rng.integers(0, 2, (n, T))) % 3).astype(np.int32)
    return Dynamics(d.probs, labels, is_flipped=d.is_flipped, margins=d.margins, runner_up=runner)


def test_docs_say_scores_depend_on_the_samples_scored_together():
    import mislabel
    d = _toy_pairs()
    det = NoiseDetector(hidden_size=4, num_layers=1, features="prob+margin+rank+pairs").fit(d, epochs=1,
                                                                                           progress=False)
    part = np.arange(0, 60, 3)                  # one class
    assert not np.allclose(det.score(d.subset(part)), det.score(d)[part])
    for doc in (NoiseDetector.score.__doc__, mislabel.detect.__doc__):
        assert "Notes\n" in doc, doc
        notes = doc.split("Notes\n")[1]
        assert "depend" in notes and "whole run" in notes, doc


def test_member_scores_read_the_ensembles_view():
    from test_core import _memorised_world
    # an ensemble that has only seen wrong labels stay unlearned, on a run that learns them from epoch 6 on:
    # the guard reads the epochs before the onset, and every member scores that same view
    det = NoiseDetector(hidden_size=16, members=2, memorisation_guard=True).fit(
        [_memorised_world(seed=s, memorise=False)[0] for s in (1, 2)], epochs=6, lr=0.05, progress=False)
    d, _ = _memorised_world(seed=0)
    assert det.scored_epochs(d) == 5 < d.num_epochs
    view = d.first_epochs(5)
    rows = det.member_scores(d)
    for i in range(2):
        np.testing.assert_allclose(rows[i], det.member(i).score(view, memorisation_guard=False), atol=1e-6)
        assert not np.allclose(rows[i], det.member(i).score(d, memorisation_guard=False), atol=1e-3)
    doc = " ".join(NoiseDetector.member_scores.__doc__.split())
    assert "what ``member(i).score`` gives)" not in doc and ":meth:`scored_epochs`" in doc
