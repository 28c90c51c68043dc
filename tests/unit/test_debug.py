"""mislabel.debug: correcting the top of a ranking, by hand, and the retrained model's predictions."""
import numpy as np
import pytest

from mislabel import debug, methods, noise, train
from mislabel.data import make_synthetic

GIVEN = np.array([0, 1, 2, 3, 4])
TRUTH = np.array([0, 1, 0, 3, 0])           # samples 2 and 4 are mislabeled
SCORES = np.array([0.1, 0.2, 0.9, 0.3, 0.8])


def test_truth_protocol_fixes_the_top_of_the_ranking():
    out = debug.correct_with_truth(GIVEN, SCORES, 0.4, true_labels=TRUTH)    # round(0.4 * 5) = 2 samples
    np.testing.assert_array_equal(out.labels, [0, 1, 0, 3, 0])
    np.testing.assert_array_equal(out.checked, [False, False, True, False, True])
    assert out.protocol == "truth" and out.share == 0.4
    assert out.summary(TRUTH, GIVEN) == {"checked": 2, "wrong_checked": 2, "fixed": 2, "broken": 0,
                                         "noise_before": 0.4, "noise_after": 0.0}
    one = debug.correct_with_truth(GIVEN, SCORES, 0.2, true_labels=TRUTH)    # only sample 2
    np.testing.assert_array_equal(one.labels, [0, 1, 0, 3, 4])
    assert one.summary(TRUTH, GIVEN)["noise_after"] == pytest.approx(0.2)


def test_model_protocol_takes_predictions_and_can_break_labels():
    probs = np.eye(5)[[0, 1, 0, 2, 1]]          # predicts 0 for sample 2 (right) and 1 for sample 4 (wrong)
    out = debug.correct_with_model(GIVEN, SCORES, 0.4, predictions=probs)
    np.testing.assert_array_equal(out.labels, [0, 1, 0, 3, 1])    # sample 3's prediction is never read
    assert out.protocol == "retrain"
    s = out.summary(TRUTH, GIVEN)
    assert (s["fixed"], s["broken"], s["noise_after"]) == (1, 0, 0.2)
    # a checked sample whose label was right but the prediction is not: broken
    clean = debug.correct_with_model(TRUTH, [0.9, 0, 0, 0, 0], 0.2, predictions=[3, 1, 0, 3, 0])
    assert clean.summary(TRUTH, TRUTH)["broken"] == 1 and clean.changed.tolist() == [True] + [False] * 4


def test_top_share_breaks_ties_by_sample_order():
    np.testing.assert_array_equal(debug.top_share([1.0, 1.0, 1.0, 0.0], 0.5), [True, True, False, False])


@pytest.mark.parametrize("call, name", [
    (lambda: debug.correct_with_truth(GIVEN, SCORES, 0.0, true_labels=TRUTH), "share"),
    (lambda: debug.correct_with_truth(GIVEN, SCORES[:4], 0.2, true_labels=TRUTH), "scores"),
    (lambda: debug.correct_with_truth(GIVEN, SCORES, 0.2, true_labels=[-1, 0, 0, 0, 0]), "replacement"),
    (lambda: debug.correct_top(GIVEN, SCORES, 0.2, TRUTH, protocol="oracle"), "protocol"),
    (lambda: debug.correct_with_model(GIVEN, SCORES, 0.2, predictions=np.zeros((5, 2, 2))), "predictions"),
    (lambda: debug.correct_with_truth(GIVEN, SCORES, 0.2, true_labels=TRUTH).summary(TRUTH[:3], GIVEN),
     "true_labels"),
])
def test_bad_input_names_the_parameter(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_retrained_predictions_leave_the_suspects_out(monkeypatch):
    ds, test = make_synthetic(300, "train", seed=0), make_synthetic(100, "test", seed=0)
    noisy, flipped = noise.symmetric(ds.labels, rate=0.2, num_classes=10, seed=0)
    task = methods.Task(ds.images, noisy, 10, model="mlp", epochs=4, batch_size=64, lr=0.1, seed=0, device="cpu",
                        progress=False, test_images=test.images, test_labels=test.labels)
    scores = flipped.astype(float)               # a perfect ranking: 60 flips first
    seen = {}
    real_fit = train.fit

    def spy(model, images, labels, epochs, **kw):
        seen.update(n=len(labels), labels=np.asarray(labels), batch_size=kw["batch_size"])
        return real_fit(model, images, labels, epochs, **kw)

    monkeypatch.setattr(train, "fit", spy)
    pred, acc = debug.retrained_predictions(task, scores, exclude_share=0.2, test=True)
    assert seen["n"] == 240 and seen["batch_size"] == round(64 * 240 / 300)
    np.testing.assert_array_equal(seen["labels"], noisy[~flipped])     # trained on clean labels only
    assert pred.shape == (300,) and pred.dtype == np.int64
    assert (pred == ds.labels.numpy()).mean() > 0.5 and acc > 0.5     # chance is 0.1
    fixed = debug.correct_with_model(noisy, scores, 0.2, predictions=pred)
    assert fixed.summary(ds.labels, noisy)["noise_after"] < 0.2
    with pytest.raises(ValueError, match="exclude_share"):
        debug.retrained_predictions(task, scores, exclude_share=1.0)
    with pytest.raises(ValueError, match="scores"):
        debug.retrained_predictions(task, scores[:10])
