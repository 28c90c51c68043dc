"""Chapter 7 (Sec. 4.2): methods on a recorded run alone (mislabel.methods.score_run), the retraining runner's
settings and a tiny end-to-end grid (mislabel.book.retraining), its tables and sentences on hand-made results
(mislabel.book.retrain_tables), and the paper's Tables 1 and 2 (mislabel.book.paper)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mislabel import methods
from mislabel.book import paper, profiles, retrain_tables, retraining
from mislabel.book.suspects import predicted_labels
from mislabel.dynamics import Dynamics


def _dyn(**kw):
    base = dict(probs=np.array([[0.9, 0.8], [0.1, 0.2], [0.6, 0.7]], np.float32), labels=[0, 1, 2])
    base.update(kw)
    return Dynamics(**base)


# --------------------------------------------------------------------------- methods on a recorded run alone
def test_run_only_names_are_the_methods_that_read_nothing_but_the_run():
    assert methods.run_only_names() == ["aum", "detector", "shipped", "forgetting", "datamaps", "mean_loss", "el2n",
                                        "ctrl"]


def test_score_run_aum_by_hand():
    dyn = _dyn(margins=np.array([[1.0, 3.0], [-2.0, 0.0], [0.5, 0.5]], np.float32), meta={"num_classes": 3},
               is_flipped=[False, True, False])
    res = methods.score_run("aum", dyn)
    assert res.scores.tolist() == [-2.0, 1.0, -0.5] and res.remove is None and res.method == "aum"
    loss = methods.score_run("mean_loss", dyn).scores     # mean of -log p over the two epochs
    assert loss[0] == pytest.approx(-(np.log(0.9) + np.log(0.8)) / 2, rel=1e-6)


def test_num_classes_from_meta_full_or_labels():
    assert methods.num_classes_of(_dyn(meta={"num_classes": 7})) == 7
    full = np.full((3, 2, 5), 0.2, np.float16)
    assert methods.num_classes_of(_dyn(full=full)) == 5
    assert methods.num_classes_of(_dyn()) == 3                  # labels 0..2
    with pytest.raises(ValueError, match="num_classes"):
        methods.num_classes_of(_dyn(labels=[0, 0, 0]))


@pytest.mark.parametrize("name, match", [("incv", "'incv' needs more than a recorded run"),
                                         ("oracle", "'oracle' needs more"), ("AUM", "unknown method 'AUM'")])
def test_score_run_refuses_methods_that_need_more(name, match):
    with pytest.raises(ValueError, match=match):
        methods.score_run(name, _dyn())


def test_score_run_says_what_the_run_lacks():
    with pytest.raises(ValueError, match="needs dynamics with AUM margins"):
        methods.score_run("aum", _dyn())
    with pytest.raises(ValueError, match="dynamics must be a mislabel.Dynamics"):
        methods.score_run("aum", np.zeros((3, 2)))


def test_predicted_labels_from_full_or_margins():
    full = np.zeros((3, 2, 3), np.float16)
    full[:, -1] = [[0.1, 0.8, 0.1], [0.7, 0.2, 0.1], [0.2, 0.2, 0.6]]
    assert predicted_labels(_dyn(full=full)).tolist() == [1, 0, 2]
    margins = np.array([[1.0, 2.0], [1.0, -0.5], [0.0, 0.0]], np.float32)
    runner = np.array([[1, 1], [2, 0], [1, 1]], np.int32)
    assert predicted_labels(_dyn(margins=margins, runner_up=runner)).tolist() == [0, 0, 1]
    assert predicted_labels(_dyn()).tolist() == [-1, -1, -1]


# --------------------------------------------------------------------------- the runner's settings
def test_settings_take_the_profiles_values_where_none():
    cfg = profiles.get("cpu", retrain_subset=None)
    cfg["retrain_subset"] = None
    rs = retraining.settings(cfg)
    assert rs["subset"] == cfg["subset"] and rs["model"] == "mlp" and rs["epochs"] == cfg["retrain_run_epochs"]
    assert rs["retrain_epochs"] == rs["epochs"] and rs["retrain_batch_size"] == cfg["batch_size"]
    paper_rs = retraining.settings(profiles.get("paper"))
    assert (paper_rs["model"], paper_rs["epochs"], paper_rs["retrain_epochs"], paper_rs["retrain_batch_size"]) == (
        "resnet32", 200, 300, 256)


@pytest.mark.parametrize("override, match", [
    ({"retrain_folds": 1}, "retrain_folds must be a positive integer >= 2"),
    ({"retrain_run_epochs": 0}, "retrain_run_epochs"),
    ({"retrain_rates": [0.0, 0.4]}, "each of rates"),
    ({"retrain_seeds": 0}, "seeds must be a positive integer"),
    ({"retrain_methods": ["standard", "magic"]}, r"methods \['magic'\] in methods"),
    ({"retrain_original_methods": ["standard", "oracle"]}, "original_methods cannot hold 'oracle'"),
])
def test_plan_refuses_bad_settings_naming_them(override, match):
    cfg = dict(profiles.get("smoke"), **override)
    with pytest.raises(ValueError, match=match):
        retraining.plan(cfg)


def test_plan_lists_what_runs():
    run = retraining.plan(profiles.get("cpu"))
    assert run["rates"] == [0.2, 0.4, 0.6, 0.8] and run["seeds"] == 2
    assert set(paper.PAPER_ROWS.values()) <= set(run["methods"])
    assert set(profiles.get("paper")["retrain_methods"]) == set(methods.names())     # the full grid


def test_method_options_key_names_dynamics_by_digest():
    key = retraining.method_options_key("detector", {"train_dynamics": _dyn(), "epochs": 3})
    assert key["method"] == "detector" and key["epochs"] == 3 and len(key["train_dynamics"]) == 32
    assert key != retraining.method_options_key("detector", {"train_dynamics": _dyn(labels=[0, 1, 1]), "epochs": 3})


def test_a_tiny_grid_end_to_end(tmp_path, monkeypatch):
    """Digits, 300 images, 2 MLP epochs: both rules, the own-model rows, the oracle's exact removal, the cache."""
    monkeypatch.setenv("MISLABEL_CACHE", str(tmp_path))
    cfg = dict(profiles.get("smoke"), dataset="digits", retrain_subset=300, retrain_test_subset=100,
               retrain_run_epochs=2, detector_epochs=1)
    names = ["standard", "oracle", "data_parameters", "shipped"]
    acc, quality = retraining.synthetic_grid(cfg, rates=[0.4], methods=names, scored=["aum"], seeds=1)
    assert set(acc["rule"]) == {"own", "flipped"} and set(quality["method"]) == {*names, "aum"}
    oracle = acc[acc["method"] == "oracle"]
    assert (oracle["removed"] == 120).all() and (oracle["removed_flipped"] == 120).all()
    own = acc[(acc["method"] == "data_parameters") & (acc["rule"] == "own")].iloc[0]
    assert own["source"] == "own model" and own["removed"] == 0
    k = acc[(acc["method"] == "shipped") & (acc["rule"] == "flipped")].iloc[0]
    assert k["removed"] == 120 and 0 <= k["test_acc"] <= 1
    std = acc[acc["method"] == "standard"]["test_acc"]
    assert std.nunique() == 1                      # nothing removed under either rule: one cached retraining
    assert (quality.set_index("method").loc["shipped", "trainings"] == 1)
    again, _ = retraining.synthetic_grid(cfg, rates=[0.4], methods=names, scored=["aum"], seeds=1)
    pd.testing.assert_frame_equal(acc, again)      # read back from the cache


# --------------------------------------------------------------------------- tables and sentences
def _acc(rows):
    return pd.DataFrame(rows, columns=["method", "rule", "rate", "seed", "test_acc"])


def test_summary_means_and_spreads_in_percent():
    acc = _acc([("a", "own", 0.2, 0, 0.80), ("a", "own", 0.2, 1, 0.82), ("b", "own", 0.2, 0, 0.70),
                ("b", "own", 0.2, 1, 0.70), ("a", "flipped", 0.2, 0, 0.5)])
    mean, spread = retrain_tables.summary(acc, "own")
    assert mean.loc["a", 0.2] == pytest.approx(81.0) and spread.loc["a", 0.2] == pytest.approx(np.sqrt(2.0))
    assert spread.loc["b", 0.2] == 0.0 and list(mean.index) == ["a", "b"]
    one, sd = retrain_tables.summary(acc, "flipped")
    assert one.loc["a", 0.2] == 50.0 and np.isnan(sd.loc["a", 0.2])
    with pytest.raises(ValueError, match="rule 'k' has no rows"):
        retrain_tables.summary(acc, "k")


def test_accuracy_table_puts_the_papers_rows_beside_ours_and_marks_the_best():
    mean = pd.DataFrame({0.2: [80.0, 90.0, 85.0, 70.0]}, index=["standard", "oracle", "detector", "ctrl"])
    spread = pd.DataFrame({0.2: [1.0, np.nan, 0.5, 0.25]}, index=mean.index)
    pm, ps = paper.table1_all()
    table, best = retrain_tables.accuracy_table(mean, spread, "ours", {"paper": (pm["CIFAR-10"], ps["CIFAR-10"])})
    assert table.loc["LSTM detector, in-domain (Ours)", ("ours", 0.2)] == "85.0 ± 0.5"
    assert table.loc["Oracle", ("ours", 0.2)] == "90.0"                       # one trial: no spread
    assert table.loc["LSTM detector, in-domain (Ours)", ("paper", 0.2)] == "91.1 ± 0.0"
    assert table.loc["CTRL", ("paper", 0.8)] == "—"                           # beyond the paper
    assert best[("ours", 0.2)].tolist() == [False, False, True, False]        # Oracle is not ranked
    assert best[("paper", 0.2)].tolist() == [False, False, True, False]       # Ours 91.1 > Standard 75.0


def test_ordering_sentence_counts_pairs_and_names_each_difference():
    mean = pd.DataFrame({0.2: [90.0, 90.1, 85.0, 86.0, 80.0, 70.0], 0.4: [80.0, 81.0, 75.0, 70.0, 60.0, 65.0]},
                        index=["detector", "aum_threshold", "incv", "data_parameters", "dy_bootstrap", "standard"])
    # pairs: Ours-AUM (level at 20% is fine, behind at 40%), AUM-INCV ok, INCV-DP (behind at 20%, ahead at 40%),
    # DP-DY ok, DY-Standard (ahead at 20%, behind at 40%): 3 of 10 fail, 7 hold
    assert retrain_tables.ordering_sentence(mean) == (
        "the paper's order holds in 7 of 10 comparisons; it differs for LSTM detector (Ours) at or above AUM "
        "(threshold samples) (behind at 40%), INCV above Data Parameters (behind at 20%) and DY-Bootstrap above "
        "Standard (behind at 40%)")
    table = retrain_tables.ordering(mean)
    assert len(table) == 10 and table.iloc[0]["call"] == "level" and table.iloc[0]["diff"] == pytest.approx(-0.1)


def test_the_papers_own_table1_read_by_the_same_rule():
    pm, _ = paper.table1_all()
    assert retrain_tables.ordering_sentence(pm["CIFAR-10"]) == (
        "the paper's order holds in 17 of 18 comparisons; it differs for Data Parameters above DY-Bootstrap "
        "(behind at 60%)")
    assert retrain_tables.oracle_sentence(pm["CIFAR-100"]) == (
        "at 20% noise the LSTM detector (Ours) is 1.1 points above Oracle (the paper: above, on CIFAR-10 and "
        "CIFAR-100)")


def test_oracle_gap_and_coverage_sentences():
    mean = pd.DataFrame({0.2: [70.0, 71.0, 71.1]}, index=["standard", "oracle", "detector"])
    assert retrain_tables.oracle_sentence(mean) == (
        "at 20% noise the LSTM detector (Ours) is level with Oracle (the paper: above, on CIFAR-10 and CIFAR-100)")
    assert retrain_tables.oracle_sentence(mean, column=0.4) == ""
    assert retrain_tables.gap_sentence(mean) == (
        "Oracle minus Standard is +1.0 points at 20% here; on CIFAR-10 the paper has +16.0 at 20%")
    assert retrain_tables.coverage_sentence([0.4], 1, ["oracle"], [], 3) == (
        "1 noise rate (40%), 1 trial each; 1 methods retrained under both rules (Oracle), 2 of the 3 registered "
        "methods not run")


def test_original_table_puts_the_shipped_detector_in_the_papers_ours_row():
    acc = pd.DataFrame({"method": ["standard", "shipped"], "rule": ["own", "own"], "dataset": ["digits", "digits"],
                        "seed": [0, 0], "test_acc": [0.9, 0.91]})
    table, best = retrain_tables.original_table(acc, {"digits": "Digits"})
    assert list(table.index) == ["Standard", "shipped detector, off the shelf (Ours)"]
    assert table.loc["shipped detector, off the shelf (Ours)", ("paper, Table 2", "CIFAR-10")] == "92.5 ± 0.1"
    assert table.loc["Standard", ("paper, Table 2", "WebVision50")] == "78.6"
    assert best[("this book", "Digits")].tolist() == [False, True]


def test_quality_table_leaves_out_rows_without_a_ranking():
    q = pd.DataFrame({"method": ["standard", "aum", "aum", "incv"], "rate": [0.2, 0.2, 0.4, 0.2],
                      "samples": [100] * 4, "map": [0.2, 0.8, 0.6, 0.9], "roc_auc": [0.5, 0.9, 0.8, 0.95],
                      "precision_at_95": [0.2, 0.5, 0.5, 0.6], "flagged": [0, None, None, 30],
                      "trainings": [0, 1, 1, 8], "seconds": [0.0, 1.0, 3.0, 10.0]})
    out = retrain_tables.quality_table(q)
    assert list(out.index) == ["INCV", "AUM"]
    assert out.loc["AUM", "mAP"] == pytest.approx(0.7) and out.loc["AUM", "seconds"] == 2.0
    assert out.loc["INCV", "flagged by own rule / flipped"] == pytest.approx(1.5)      # 30 of 20 flipped
    assert np.isnan(out.loc["AUM", "flagged by own rule / flipped"])


def test_paper_tables_as_printed():
    pm, ps = paper.table1_all()
    assert pm.loc["Ours", ("CIFAR-10", 0.2)] == 91.1 and ps.loc["Oracle", ("CIFAR-10", 0.8)] == 1.7
    assert np.isnan(pm.loc["DY-Bootstrap", ("CIFAR-10", 0.8)])                      # "Diverged"
    assert pm.shape == (7, 8)
    m2, s2 = paper.table2_all()
    assert m2.loc["Ours", "Clothing100K"] == 68.2 and np.isnan(s2.loc["Ours", "Clothing100K"])
    assert set(paper.PAPER_ROWS) == set(paper.TABLE1)


def test_a_rule_that_removes_everything_leaves_a_gap_and_a_sentence():
    acc = _acc([("detector", "own", 0.8, 0, np.nan), ("detector", "own", 0.8, 1, 0.30),
                ("incv", "own", 0.8, 0, 0.40), ("incv", "own", 0.8, 1, 0.42)])
    mean, _ = retrain_tables.summary(acc, "own")
    assert np.isnan(mean.loc["detector", 0.8]) and mean.loc["incv", 0.8] == pytest.approx(41.0)
    table, best = retrain_tables.accuracy_table(mean, mean * 0, "ours")
    assert table.loc["LSTM detector, in-domain (Ours)", ("ours", 0.8)] == "—" and best[("ours", 0.8)].tolist() == [
        False, True]
    assert retrain_tables.empty_sentence(acc) == (
        "the own rule of LSTM detector, in-domain (Ours) removed every sample at 80% in 1 of 2 trials")
    assert retrain_tables.empty_sentence(acc.dropna()) == ""


def test_quality_sentence_names_the_best_those_level_with_it_and_the_costliest():
    q = pd.DataFrame({"mAP": [0.90, 0.95, 0.949, 0.80], "trainings": [8.0, 1.0, 5.0, 1.0]},
                     index=["INCV", "AUM", "cleanlab", "EL2N"])
    assert retrain_tables.quality_sentence(q) == (
        "the best ranking is AUM's (mAP 0.950, 1 training); level with it (within 0.002) is cleanlab (5 trainings); "
        "the most expensive method, INCV (8 trainings per audited set), reaches mAP 0.900")
    assert retrain_tables.quality_sentence(q.loc[["AUM", "EL2N"]]) == "the best ranking is AUM's (mAP 0.950, 1 training)"


def test_score_run_with_the_shipped_detector_equals_detect_and_says_what_it_read():
    """What ``mislabel detect --method shipped`` would write: the scores of mislabel.detect and the epochs read."""
    import mislabel
    from mislabel import noise as noise_mod, train
    from mislabel.data import make_synthetic

    ds = make_synthetic(200, "train", seed=0)
    noisy, _ = noise_mod.symmetric(ds.labels, rate=0.3, num_classes=10, seed=0)
    dyn = train.fit("mlp", ds.images, noisy, epochs=3, batch_size=64, lr=0.05, seed=0, progress=False,
                    device="cpu").dynamics
    res = methods.score_run("shipped", dyn)
    assert np.allclose(res.scores, mislabel.detect(dyn)) and (res.remove == (res.scores >= 0.5)).all()
    assert 1 <= res.details["scored_epochs"] <= 3 and res.details["threshold"] == 0.5
    assert methods.score_run("shipped", dyn, threshold=0.9).remove.sum() <= res.remove.sum()


def test_bold_shows_noise_rates_as_percentages():
    mean = pd.DataFrame({0.2: [80.0, 85.0], 0.4: [70.0, 60.0]}, index=["standard", "detector"])
    table, best = retrain_tables.accuracy_table(mean, mean * 0, "ours")
    html = retrain_tables.bold(table, best).to_html()
    assert ">20%<" in html and ">40%<" in html and "0.200000" not in html
