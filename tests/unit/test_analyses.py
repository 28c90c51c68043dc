"""mislabel.analyses (Sec. 4.4: underlying noise, super-class noise, LIME over epochs) and chapter 9's sentences."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from mislabel import NoiseDetector, analyses, methods
from mislabel.book import analyses_report as rep
from mislabel.dynamics import Dynamics


# --------------------------------------------------------------------------- underlying noise
def _grid_rows(values):
    """Rows of a grid with underlying rates 0, .1, .2, .3 (outer) and synthesized .2, .4 (inner)."""
    cells = [(u, s) for u in (0.0, 0.1, 0.2, 0.3) for s in (0.2, 0.4)]
    return [{"underlying_rate": u, "synthesized_rate": s, "map": m, "roc_auc": m} for (u, s), m in zip(cells, values)]


# mAP: s=0.2 column 0.90, 0.88, 0.86, 0.80; s=0.4 column 0.85, 0.84, 0.83, 0.70
ROWS = _grid_rows([0.90, 0.85, 0.88, 0.84, 0.86, 0.83, 0.80, 0.70])


def test_tolerated_underlying_by_hand():
    t = analyses.tolerated_underlying(ROWS, metric="map", tolerance=0.05)
    # largest loss per underlying rate: 0.1 -> 0.02, 0.2 -> 0.04, 0.3 -> max(0.10, 0.15) = 0.15
    assert t["loss"][0.1] == pytest.approx(0.02) and t["loss"][0.2] == pytest.approx(0.04)
    assert t["loss"][0.3] == pytest.approx(0.15) and t["loss"][0.0] == 0.0
    assert t["tolerated"] == 0.2 and t["first_failing"] == 0.3
    assert (t["harmed"], t["columns"]) == (2, 2)
    tight = analyses.tolerated_underlying(ROWS, metric="map", tolerance=0.03)
    assert tight["tolerated"] == 0.1 and tight["first_failing"] == 0.2


def test_tolerated_underlying_refuses_a_grid_without_reference():
    with pytest.raises(ValueError, match="underlying_rates"):
        analyses.tolerated_underlying([r for r in ROWS if r["underlying_rate"] > 0])
    with pytest.raises(ValueError, match="metric"):
        analyses.tolerated_underlying(ROWS, metric="accuracy")
    with pytest.raises(ValueError, match="tolerance"):
        analyses.tolerated_underlying(ROWS, tolerance=-0.1)


def test_check_grid_rates():
    assert analyses.check_grid_rates([0, 0.1], (0.4,)) == ([0.0, 0.1], [0.4])
    with pytest.raises(ValueError, match="underlying_rates and synthesized_rates"):
        analyses.check_grid_rates([0.0, 0.5], [0.5])
    with pytest.raises(ValueError, match="synthesized_rates"):
        analyses.check_grid_rates([0.0], [0.0])
    with pytest.raises(ValueError, match="underlying_rates"):
        analyses.check_grid_rates([0.1, 0.1], [0.4])
    with pytest.raises(ValueError, match="underlying_rates"):
        analyses.check_grid_rates("0.1", [0.4])


def test_underlying_grid_refuses_bad_settings_before_training():
    opts = {"dataset": "digits", "subset": 200}
    with pytest.raises(ValueError, match="capture_options"):
        analyses.underlying_grid([0.0], [0.4], capture_options={**opts, "noise_seed": 3})
    with pytest.raises(ValueError, match="eval_noise_seed"):
        analyses.underlying_grid([0.0], [0.4], capture_options=opts, train_noise_seed=2, eval_noise_seed=2)
    with pytest.raises(ValueError, match="eval_rate"):
        analyses.underlying_grid([0.0], [0.4], capture_options=opts, eval_rate=1.0)


def test_underlying_grid_trains_every_cell_and_scores_one_evaluation_run():
    opts = dict(dataset="digits", subset=300, test_subset=0, model="mlp", epochs=3, lr=0.1, cache=False)
    grid = analyses.underlying_grid([0.0, 0.2], [0.3], capture_options=opts,
                                    detector_options=dict(epochs=1, hidden_size=8, num_layers=1, cache=False))
    assert [(r["underlying_rate"], r["synthesized_rate"]) for r in grid.rows] == [(0.0, 0.3), (0.2, 0.3)]
    assert [r["train_underlying_share"] for r in grid.rows] == [0.0, pytest.approx(0.2)]
    assert all(r["train_synthesized_share"] == pytest.approx(0.3) for r in grid.rows)
    assert grid.evaluation.dynamics.is_flipped.mean() == pytest.approx(0.4)
    assert not grid.evaluation.underlying.any()
    assert set(grid.detectors) == {(0.0, 0.3), (0.2, 0.3)}
    assert all(0 <= r["map"] <= 1 and 0 <= r["roc_auc"] <= 1 for r in grid.rows)
    assert 0 <= grid.reference["AUM"]["map"] <= 1


# --------------------------------------------------------------------------- super-classes
def test_best_peer_by_hand():
    rows = [{"rate": r, "method": m, "map": v} for r, m, v in [
        (0.2, "detector", 0.9), (0.2, "ctrl", 0.7), (0.2, "datamaps", 0.8),
        (0.4, "detector", 0.8), (0.4, "ctrl", 0.8), (0.4, "datamaps", 0.6)]]
    # means: ctrl 0.75, datamaps 0.70
    assert analyses.best_peer(rows, ["datamaps", "ctrl"]) == "ctrl"
    with pytest.raises(ValueError, match="peers"):
        analyses.best_peer(rows, ["el2n"])


def test_dynamics_peers_need_only_the_recorded_run():
    rng = np.random.default_rng(0)
    dyn = Dynamics(rng.random((20, 4)).astype(np.float32), rng.integers(0, 3, 20),
                   margins=rng.standard_normal((20, 4)).astype(np.float32))
    task = methods.Task(images=None, labels=dyn.labels, num_classes=3, dynamics=dyn, progress=False)
    # el2n needs full probabilities, the methods that train need images; the paper's own are not peers
    assert analyses.dynamics_peers(task) == ["forgetting", "datamaps", "mean_loss", "ctrl"]


def test_superclass_comparison_refuses_data_without_groups():
    with pytest.raises(ValueError, match="dataset"):
        analyses.superclass_comparison([0.2], capture_options={"dataset": "digits", "subset": 100})
    with pytest.raises(ValueError, match="rates"):
        analyses.superclass_comparison([0.0], capture_options={"dataset": "fashion-mnist"})
    with pytest.raises(ValueError, match="peers"):
        analyses.superclass_comparison([0.2], capture_options={"dataset": "fashion-mnist"}, peers=["nope"])


# --------------------------------------------------------------------------- LIME over epochs
class _Linear(nn.Module):
    """Logits (0, x[:, :, 0] @ c): the probability of "mislabeled" is sigmoid(x @ c)."""

    def __init__(self, c):
        super().__init__()
        self.lstm = nn.Identity()      # not an nn.LSTM: scored through forward()
        self.c = torch.as_tensor(c, dtype=torch.float32)

    def forward(self, x):
        s = x[:, :, 0] @ self.c
        return torch.stack([torch.zeros_like(s), s], dim=1)


def _linear_detector(c):
    det = NoiseDetector(hidden_size=2, num_layers=1, seq_len=len(c))
    det.nets = [_Linear(c)]
    det.trained = True
    return det


def _run():
    probs = np.array([[0.9, 0.1, 0.5, 0.5], [0.1, 0.9, 0.5, 0.5], [0.5, 0.5, 0.5, 0.5]], dtype=np.float32)
    return Dynamics(probs, np.zeros(3, dtype=np.int64))


def test_explain_epochs_recovers_a_linear_detector():
    # the probability is sigmoid(s), s = x @ c, here between 0 and 0.5, where the sigmoid's slope is about 1/4;
    # LIME's weight of epoch t is then about c_t * (x_t - mean_t) / 4. Sample 0 differs from the run's mean
    # (0.5 at every epoch) by +0.4, -0.4, 0, 0: weights 0.5 * 0.4 / 4 = 0.05, -0.25 * -0.4 / 4 = 0.025, 0, 0
    c = [0.5, -0.25, 1.0, -1.0]
    e = analyses.explain_epochs(_linear_detector(c), _run(), [0, 2], num_perturbations=400, seed=1)
    np.testing.assert_allclose(e.weights[0], [0.05, 0.025, 0.0, 0.0], atol=0.004)
    # sample 2 equals the run's mean at every epoch: switching epochs off changes nothing
    np.testing.assert_allclose(e.weights[1], 0.0, atol=1e-9)
    assert e.epochs_read == 4 and e.num_epochs == 4
    assert e.scores[0] == pytest.approx(1 / (1 + np.exp(-(0.5 * 0.9 - 0.25 * 0.1 + 0.5 - 0.5))), rel=1e-5)
    imp = analyses.mean_abs_importance(e)
    np.testing.assert_allclose(imp, np.abs(e.weights).mean(0))


def test_explain_epochs_is_seeded():
    rng = np.random.default_rng(0)
    flip = rng.random(120) < 0.3
    probs = np.clip(np.where(flip[:, None], 0.2, 0.7) + 0.1 * rng.standard_normal((120, 5)), 0, 1)
    dyn = Dynamics(probs.astype(np.float32), np.zeros(120, dtype=np.int64), is_flipped=flip)
    det = NoiseDetector(hidden_size=4, num_layers=1).fit(dyn, epochs=1, progress=False)
    rows = analyses.found_mislabeled(det.score(dyn), flip, count=3, seed=0)
    a = analyses.explain_epochs(det, dyn, rows, num_perturbations=50, seed=7)
    b = analyses.explain_epochs(det, dyn, rows, num_perturbations=50, seed=7)
    c = analyses.explain_epochs(det, dyn, rows, num_perturbations=50, seed=8)
    np.testing.assert_array_equal(a.weights, b.weights)
    assert not np.array_equal(a.weights, c.weights)
    np.testing.assert_allclose(a.scores, det.score(dyn)[rows], atol=1e-6)


def test_explain_epochs_refuses_bad_input():
    det = _linear_detector([1.0, 1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="samples"):
        analyses.explain_epochs(det, _run(), [3])
    with pytest.raises(ValueError, match="num_perturbations"):
        analyses.explain_epochs(det, _run(), [0], num_perturbations=5)
    with pytest.raises(ValueError, match="kernel_width"):
        analyses.explain_epochs(det, _run(), [0], kernel_width=0)
    with pytest.raises(ValueError, match="detector"):
        analyses.explain_epochs(NoiseDetector(), _run(), [0])


def test_found_mislabeled_by_hand():
    scores = [0.9, 0.8, 0.7, 0.1, 0.6]
    flipped = [True, False, True, True, False]
    # three flips; the top three are samples 0, 1, 2, of which 0 and 2 are flipped
    np.testing.assert_array_equal(analyses.found_mislabeled(scores, flipped), [0, 2])
    one = analyses.found_mislabeled(scores, flipped, count=1, seed=0)
    assert one.shape == (1,) and one[0] in (0, 2)
    with pytest.raises(ValueError, match="is_flipped"):
        analyses.found_mislabeled(scores, [False] * 5)


def test_lr_drops_and_early_late_importance():
    assert analyses.lr_drops([0.1, 0.1, 0.01, 0.01, 0.001]) == [2, 4]
    assert analyses.lr_drops([0.1, 0.1]) == []
    r = analyses.early_late_importance([3.0, 1.0, 1.0, 1.0], 1)
    assert r == {"early_mean": 3.0, "late_mean": 1.0, "early_share": 0.5, "early_dominates": True}
    assert not analyses.early_late_importance([1.0, 1.0, 2.0, 2.0], 2)["early_dominates"]
    with pytest.raises(ValueError, match="boundary"):
        analyses.early_late_importance([1.0, 2.0], 2)


# --------------------------------------------------------------------------- chapter 9's tables and sentences
def test_underlying_observation_sentences():
    text = rep.underlying_observation(ROWS, metric="map", tolerance=0.05)
    assert text == ("mAP stays within 0.05 of the run without underlying noise up to 20% underlying noise; "
                    "at 30% it loses up to 0.150: consistent with the paper.")
    assert rep.underlying_observation(ROWS, tolerance=0.03).endswith("less tolerant than the paper's 20%.")
    flat = _grid_rows([0.9] * 8)
    assert "up to the grid's largest underlying rate, 30% (largest loss 0.000): consistent" in \
        rep.underlying_observation(flat)
    assert rep.harm_sentence(ROWS) == ("with 30% underlying noise, mAP is lower than without at 2 of 2 "
                                       "synthesized rates (largest loss +0.150).")
    claims = rep.underlying_claims(ROWS, tolerance=0.05)
    assert list(claims.index) == ["more underlying noise", "tolerance (mAP)", "tolerance (ROC AUC)"]


def test_heatmap_table_puts_the_largest_underlying_rate_on_top():
    table = rep.heatmap_table(ROWS, "map")
    assert list(table.index) == [0.3, 0.2, 0.1, 0.0] and list(table.columns) == [0.2, 0.4]
    assert table.loc[0.3, 0.4] == 0.70
    with pytest.raises(ValueError, match="metric"):
        rep.heatmap_table(ROWS, "acc")


def test_superclass_sentence_and_table():
    rows = [{"rate": r, "method": m, "map": v, "roc_auc": v, "precision_at_95": v} for r, m, v in [
        (0.2, "detector", 0.9), (0.2, "aum", 0.8), (0.2, "ctrl", 0.95),
        (0.4, "detector", 0.7), (0.4, "aum", 0.75), (0.4, "ctrl", 0.6)]]
    assert rep.superclass_sentence(rows, peer="ctrl") == (
        "in mAP, the detector is ahead of AUM at 1 of 2 rates (mean difference +0.025) and ahead of CTRL at "
        "1 of 2 rates (mean difference +0.025)")
    table = rep.superclass_table(rows, ["detector", "aum", "ctrl"])
    assert list(table["method"].astype(str)[:3]) == ["LSTM detector", "AUM", "CTRL"]
    assert list(table.columns) == ["rate", "method", "mAP", "ROC AUC", "Precision@95"]


def test_lime_verdict_and_split_epoch():
    assert rep.split_epoch([0.1] * 8 + [0.01] * 4 + [0.001] * 4, 16) == 8
    assert rep.split_epoch([0.1] * 6, 6) == 3
    assert rep.lime_verdict("the in-domain detector", [3.0, 1.0, 1.0, 1.0], boundary=1, epochs_read=4) == (
        "for the in-domain detector, epochs 1-1 (before the first learning-rate drop) carry a mean |weight| of "
        "3.0000 per epoch and epochs 2-4 1.0000: the early epochs dominate (50% of the total).")
    text = rep.lime_verdict("the shipped detector", [1.0, 1.0, 0.0, 0.0], boundary=3, epochs_read=2)
    assert "do not dominate" not in text and "reads only the first 2 epochs" in text


def test_superclass_vs_symmetric():
    sc = [{"rate": 0.4, "method": "detector", "map": 0.65}, {"rate": 0.4, "method": "aum", "map": 0.7}]
    grid = [{"underlying_rate": 0.0, "synthesized_rate": 0.4, "map": 0.9},
            {"underlying_rate": 0.3, "synthesized_rate": 0.4, "map": 0.5}]
    assert rep.superclass_vs_symmetric(sc, grid, eval_rate=0.4) == (
        "At 40% noise the detector's mAP is 0.650 within super-classes against 0.900 under symmetric noise "
        "(the first section's cell without underlying noise): below.")
    assert rep.superclass_vs_symmetric(sc, grid, eval_rate=0.2) == ""


def test_superclass_verdict_and_lime_comparison():
    rows = [{"rate": r, "method": m, "map": v, "roc_auc": v} for r, m, v in [
        (0.2, "detector", 0.9), (0.2, "aum", 0.8), (0.4, "detector", 0.7), (0.4, "aum", 0.75)]]
    # ahead at 0.2 in both metrics, behind at 0.4 in both: 2 of 4 pairs
    assert rep.superclass_verdict(rows) == ("The paper's claim does not hold here: the detector is ahead of AUM "
                                            "in 2 of 4 (rate, metric) pairs, not in all of them.")
    assert rep.superclass_verdict(rows[:2]).startswith("The paper's claim holds here")
    assert rep.lime_comparison({"a": True, "b": True}) == "This agrees with the paper for a and b."
    text = rep.lime_comparison({"a": True, "b": False})
    assert text.startswith("This differs from the paper for b (and agrees for a). A likely reason")


def test_chapter_settings_are_checked_by_name():
    from mislabel.book import analyses_report, profiles

    cfg = profiles.get("smoke")
    assert analyses_report.check_settings(dict(cfg), eval_rate=0.4, lime_examples=3) == (0.4, 3)
    for change, kw, name in ((dict(analyses_underlying=[0.1, 0.2]), {}, "underlying_rates"),
                             ({}, dict(eval_rate=1.5), "eval_rate"),
                             ({}, dict(lime_examples=0), "lime_examples"),
                             (dict(analyses_lime_samples=True), {}, "lime_samples")):
        args = {"eval_rate": 0.4, "lime_examples": 3, **kw}
        with pytest.raises(ValueError, match=name):
            analyses_report.check_settings({**cfg, **change}, **args)
