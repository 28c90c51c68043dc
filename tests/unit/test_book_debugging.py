"""mislabel.book.debugging tables and debugging_text sentences on hand-made results (chapter 8)."""
import pandas as pd
import pytest

from mislabel.book import debugging, paper
from mislabel.book import debugging_text as text


def _runs():
    rows = [("dividemix", "", "", 0.0, 0.700, 0.690), ("augdesc", "", "", 0.0, 0.710, 0.700),
            ("plain", "", "", 0.0, 0.650, 0.640)]
    best = {("dividemix", "truth"): (0.705, 0.712), ("dividemix", "retrain"): (0.695, 0.701),
            ("augdesc", "truth"): (0.712, 0.715), ("augdesc", "retrain"): (0.700, 0.705),
            ("plain", "truth"): (0.660, 0.670), ("plain", "retrain"): (0.650, 0.640)}
    for (learner, protocol), (b5, b10) in best.items():
        rows += [(learner, "shipped", protocol, 0.05, b5, b5 - 0.01), (learner, "shipped", protocol, 0.1, b10, b10)]
    rows += [("plain", "aum", "truth", 0.05, 0.655, 0.65), ("plain", "aum", "truth", 0.1, 0.66, 0.65)]
    return pd.DataFrame(rows, columns=["learner", "ranking", "protocol", "share", "best", "last"])


def _labels():
    return pd.DataFrame([
        {"ranking": "shipped", "protocol": "truth", "share": 0.1, "checked": 100, "wrong_checked": 80, "fixed": 80,
         "broken": 0, "noise_before": 0.2, "noise_after": 0.12},
        {"ranking": "shipped", "protocol": "retrain", "share": 0.1, "checked": 100, "wrong_checked": 80, "fixed": 60,
         "broken": 7, "noise_before": 0.2, "noise_after": 0.147},
        {"ranking": "aum", "protocol": "truth", "share": 0.1, "checked": 100, "wrong_checked": 85, "fixed": 85,
         "broken": 0, "noise_before": 0.2, "noise_after": 0.115}])


def test_gains_and_gain_text_in_points():
    g = text.gains(_runs(), "dividemix", "shipped", "truth")
    assert list(g.index) == [0.05, 0.1] and g.tolist() == pytest.approx([0.5, 1.2])
    assert text.gain_text(_runs(), "dividemix", "shipped", "truth") == "+0.5 points (top 5%) and +1.2 points (top 10%)"
    with pytest.raises(ValueError, match="alone"):
        text.gains(_runs()[lambda d: d.ranking != ""], "plain", "shipped", "truth")


def test_paper_gain_ranges_from_table3():
    assert text.paper_gain_range("DivideMix") == (0.1, 0.81)            # 76.06 - 75.96, 76.77 - 75.96
    assert text.paper_gain_range("DM-AugDesc") == (-0.1, 0.49)
    assert text.paper_gain_range("DM-AugDesc", column=2) == (0.2, 0.68)  # mini WebVision Top1


def test_claim_verdict_counts_the_learners_cells():
    truth = text.claim_verdict(_runs(), "shipped", "truth")
    # DivideMix +0.5, +1.2; DM-AugDesc +0.2, +0.5
    assert "in 4 of 4 cases, by +0.2 to +1.2 points" in truth and truth.endswith("agrees with the paper's claim")
    retrain = text.claim_verdict(_runs(), "shipped", "retrain")
    # DivideMix -0.5, +0.1; DM-AugDesc -1.0, -0.5: one of four up
    assert "in 1 of 4 cases, by -1.0 to +0.1 points" in retrain and "partly agrees" in retrain
    assert "mini WebVision" in retrain
    down = _runs().assign(best=lambda d: d.best.where(d.ranking == "", 0.5))
    assert text.claim_verdict(down, "shipped").endswith("does not support the paper's claim")


def test_ranking_and_protocol_sentences():
    assert text.ranking_text(_labels(), 0.1) == "shipped detector 80 of 100, AUM 85 of 100"
    s = text.protocol_text(_labels(), "shipped", 0.1, 0.735)
    assert s.startswith("the model retrained without the suspects ranked by shipped detector (test accuracy 73.5%)")
    assert "fixed 60 of the 80 wrong labels in the top 10% and broke 7" in s
    assert "leaving 14.7% of the labels wrong (from 20.0%; 12.0% with the true labels)" in s
    with pytest.raises(ValueError, match="share"):
        text.ranking_text(_labels(), 0.05)


def test_accuracy_table_layout():
    t = debugging.accuracy_table(_runs(), ranking="shipped")
    assert list(t.columns) == ["Best", "Last", "Best vs alone"]
    assert t.index.names == ["learner", "debugging"]
    assert [lv for lv in dict.fromkeys(t.index.get_level_values(0))] == ["DivideMix", "DM-AugDesc", "plain training"]
    dm = t.loc["DivideMix"]
    assert list(dm.index) == ["alone", "+ 5% D.D. (shipped detector, true label)",
                              "+ 10% D.D. (shipped detector, true label)",
                              "+ 5% D.D. (shipped detector, retrained model)",
                              "+ 10% D.D. (shipped detector, retrained model)"]
    assert dm["Best vs alone"].tolist() == pytest.approx([0.0, 0.5, 1.2, -0.5, 0.1])
    aum = debugging.accuracy_table(_runs(), ranking="aum", learners=["plain"])
    assert len(aum) == 3 and aum["Best"].iloc[0] == pytest.approx(65.0)
    lab = debugging.labels_table(_labels())
    assert lab.index.names == ["ranking", "corrected with", "top"] and "broken" in lab.columns


def test_paper_table3_values():
    t = paper.table3()
    assert t.loc[("DivideMix", "+ 10% D.D."), ("CUB-200-2011 20% sym.", "Best")] == 76.77
    assert t.shape == (6, 4)


def test_alone_text_compares_the_learners_with_plain_training():
    assert text.alone_text(_runs()) == ("DivideMix 70.0%, DM-AugDesc 71.0% and plain training 65.0%; both ahead of "
                                        "plain training, as in the papers that introduced them")
    behind = _runs().assign(best=lambda d: d.best.where(d.learner != "plain", 0.705))
    assert text.alone_text(behind).endswith("only DM-AugDesc is ahead of plain training")
    low = _runs().assign(best=lambda d: d.best.where(d.learner != "plain", 0.9))
    assert text.alone_text(low).endswith("plain training is ahead of both")


def test_paper_ranges_text():
    assert text.paper_ranges_text() == ("on CUB-200 (best accuracy) +0.1 to +0.8 points for DivideMix and -0.1 to "
                                        "+0.5 for DM-AugDesc; on mini WebVision (top-1) +0.5 to +0.9 points for "
                                        "DivideMix and +0.2 to +0.7 for DM-AugDesc")


def test_differences_text_names_the_set_up():
    cfg = {"debug_model": "cnn", "dataset": "fashion-mnist", "debug_epochs": 6, "debug_warmup": 2}
    s = text.differences_text(cfg, 1000, 400)
    assert s.startswith("we train the `cnn` on 1,000 fashion-mnist images for 6 epochs (2 of warm-up)")
    assert s.endswith("one test image is 0.25 points of accuracy on our 400 test images")


def test_check_exclude_names_the_parameter():
    from mislabel.book import debugging

    assert debugging.check_exclude(0.25, [0.05, 0.1]) == 0.25
    for bad in (0.05, 0.0, 1.0, True, "0.3"):
        with pytest.raises(ValueError, match="exclude"):
            debugging.check_exclude(bad, [0.05, 0.1])
