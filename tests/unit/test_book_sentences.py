"""Every sentence and verdict the chapters show, on small hand-made results with the expected text worked out
by hand (mislabel.book.sentences, .paper and .card_sentences)."""
from __future__ import annotations

import pandas as pd
import pytest

from mislabel.book import card_sentences as cs
from mislabel.book import paper, profiles, sentences, tables


def _diff(rows) -> pd.DataFrame:
    """A detector-minus-AUM table as tables.method_comparison returns it: (kind, rate, map, roc_auc, p95)."""
    return pd.DataFrame(rows, columns=["kind", "rate", "map", "roc_auc", "precision_at_95"])


def _grid(rows) -> pd.DataFrame:
    """A run_grid-like table: (kind, rate, method, map)."""
    return pd.DataFrame(rows, columns=["kind", "rate", "method", "map"])


# --------------------------------------------------------------------------- chapters 1-5
def test_listing():
    assert sentences.listing([]) == ""
    assert sentences.listing(["a"]) == "a"
    assert sentences.listing(iter(["a", "b"])) == "a and b"
    assert sentences.listing(["a", "b", "c"]) == "a, b and c"


def test_memorisation_verdict():
    assert sentences.memorisation_verdict(train_acc=0.55, ceiling=0.6) == (
        "no higher than the share of correct labels: it fits the correct labels and essentially none of the "
        "wrong ones")
    assert sentences.memorisation_verdict(train_acc=0.62, ceiling=0.6) == (
        "above the share of correct labels: it has started to memorise wrong labels")
    # within 0.01 of the ceiling is not memorising yet
    assert sentences.memorisation_verdict(0.605, 0.6).startswith("no higher")


def test_map_verdict():
    assert sentences.map_verdict(0.01) == "above AUM's (+0.0100)"
    assert sentences.map_verdict(-0.003) == "below AUM's (-0.0030)"
    assert sentences.map_verdict(0.001) == "level with AUM's (difference +0.0010)"
    assert sentences.map_verdict(-0.002) == "level with AUM's (difference -0.0020)"


def test_comparison_sentence():
    diff = _diff([("symmetric", 0.2, 0.01, 0, 0), ("symmetric", 0.4, 0.0, 0, 0), ("symmetric", 0.6, -0.005, 0, 0)])
    assert sentences.comparison_sentence(diff, "symmetric") == (
        "the detector is ahead at 1 of 3 rates (0.2), tied (within 0.002) at 1 and behind at 1 (0.6); "
        "mean mAP difference +0.0017")
    assert sentences.comparison_sentence(diff, "symmetric", "roc_auc") == (
        "the detector is ahead at 0 of 3 rates, tied (within 0.002) at 3 and behind at 0; "
        "mean ROC AUC difference +0.0000")
    assert sentences.comparison_sentence(diff, "asymmetric") == "no asymmetric settings were run"


def test_tally():
    diff = _diff([("symmetric", 0.2, 0.01, 0.0, -0.01), ("symmetric", 0.4, 0.003, 0.001, 0.02),
                  ("asymmetric", 0.2, -0.5, -0.5, -0.5)])
    assert tables.tally(diff, "symmetric") == {"ahead": 3, "tied": 2, "behind": 1, "total": 6}
    assert sentences.tally_phrase(tables.tally(diff, "symmetric")) == "ahead in 3, level in 2 and behind in 1 of 6 comparisons"
    assert sentences.tally_phrase(tables.tally(diff, "symmetric", max_rate=0.3)) == \
        "ahead in 1, level in 1 and behind in 1 of 3 comparisons"



def test_grid_verdict_reads_both_noise_kinds_with_the_tie_rule():
    """Hand-made differences (detector minus AUM; columns mAP, ROC AUC, Precision@95), TIE = 0.002."""
    mixed = _diff([("symmetric", 0.2, 0.01, 0.0, -0.01), ("symmetric", 0.4, 0.003, 0.001, 0.02),
                   ("asymmetric", 0.2, 0.1, 0.05, 0.2), ("asymmetric", 0.8, -0.5, -0.5, -0.5)])
    assert sentences.grid_verdict(mixed) == (
        "Counting mAP, ROC AUC and Precision@95, the detector is ahead in 3, level in 2 and behind in 1 of 6 "
        "comparisons under symmetric noise, and ahead in 3, level in 0 and behind in 0 of 3 comparisons under "
        "asymmetric noise below 50% (differences within 0.002 count as level): partial support for the paper's "
        "claim, not a confirmation.")        # the asymmetric 0.8 row lies above 50%: left out
    never_behind = _diff([("symmetric", 0.2, 0.01, 0.0, 0.001), ("symmetric", 0.4, 0.003, 0.0, 0.0)])
    assert sentences.grid_verdict(never_behind).endswith(
        "ahead in 2, level in 4 and behind in 0 of 6 comparisons under symmetric noise (differences within 0.002 "
        "count as level): consistent with the paper's claim.")
    behind = _diff([("symmetric", 0.2, -0.01, -0.003, 0.001)])
    assert sentences.grid_verdict(behind).endswith(": the paper's claim does not hold here.")
    all_level = _diff([("symmetric", 0.2, 0.001, 0.0, -0.002)])
    assert sentences.grid_verdict(all_level).endswith(": the paper's claim does not hold here.")
    assert sentences.grid_verdict(_diff([("asymmetric", 0.6, 0.1, 0.1, 0.1)])) == \
        "This run has no setting to compare the detector with AUM on."


def test_high_asymmetric_sentence():
    table = _grid([("asymmetric", 0.6, "AUM", 0.3), ("asymmetric", 0.6, "LSTM detector", 0.8),
                   ("asymmetric", 0.8, "AUM", 0.1), ("asymmetric", 0.8, "LSTM detector", 0.9),
                   ("symmetric", 0.9, "AUM", 0.5), ("symmetric", 0.9, "LSTM detector", 0.5)])
    assert sentences.high_asymmetric_sentence(table) == (
        "At 0.8 asymmetric noise in this run, AUM reaches an mAP of 0.100 and the detector 0.900, where a random "
        "ranking would score 0.8.")
    assert sentences.high_asymmetric_sentence(table[table["rate"] < 0.7].assign(rate=0.4)) == \
        "This run has no asymmetric rate above 0.5."


def test_largest_gaps_and_per_rate():
    diff = _diff([("symmetric", 0.2, 0.01, -0.002, 0.0), ("symmetric", 0.4, -0.02, 0.001, 0.0),
                  ("asymmetric", 0.2, 0.3, 0.3, -0.004)])
    assert sentences.largest_gaps(diff) == \
        "the largest differences, detector minus AUM, are -0.020 at 0.4 in mAP and -0.002 at 0.2 in ROC AUC"
    assert sentences.largest_gaps(diff[diff["kind"] == "asymmetric"]) == "this run has no symmetric rate"
    assert sentences.per_rate(diff, "symmetric", "map") == "+0.010 at 0.2, -0.020 at 0.4"
    assert sentences.per_rate(diff, "symmetric", "map", max_rate=0.3) == "+0.010 at 0.2"
    assert sentences.per_rate(diff, "asymmetric", "precision_at_95", 0.5) == "-0.004 at 0.2"
    assert sentences.per_rate(diff, "asymmetric", "map", max_rate=0.1) == "no such rate was run"


def test_low_rate_means():
    table = _grid([("symmetric", 0.2, "LSTM detector", 0.9), ("symmetric", 0.2, "AUM", 0.8),
                   ("symmetric", 0.4, "LSTM detector", 0.7), ("symmetric", 0.4, "AUM", 0.6),
                   ("symmetric", 0.6, "LSTM detector", 0.1), ("symmetric", 0.6, "AUM", 0.1),
                   ("asymmetric", 0.6, "LSTM detector", 0.5), ("asymmetric", 0.6, "AUM", 0.2)])
    assert sentences.low_rate_means(table) == "mean mAP at rates below 0.5, detector / AUM: symmetric 0.800 / 0.700"


def test_profile_note():
    assert sentences.profile_note(profiles.get("cpu"), seed=(0, 0)) == \
        "The numbers above come from the default `cpu` profile, the run this paragraph describes."
    note = sentences.profile_note(profiles.get("smoke"), ["epochs"], seed=(0, 0))
    assert note.startswith("*This page was built with other settings (profile `smoke`)") and note.endswith("*")
    # only the settings named count: the smoke profile's lr is the book's
    assert sentences.profile_note(profiles.get("smoke"), ["lr"]).startswith("The numbers above")
    assert sentences.profile_note(profiles.get("cpu"), ["lr"], seed=(1, 0)).startswith("*This page")


def _transfer_table() -> pd.DataFrame:
    rows = []
    for target, noise, maps in [("b → c", "40% symmetric", (0.85, 0.90, 0.95, 0.80, 0.82)),
                                ("a → b", "30% symmetric", (0.75, 0.70, 0.90, 0.80, 0.79))]:
        for method, value in zip(("off-the-shelf", "fine-tuned", "in-domain", "shipped", "AUM"), maps):
            rows.append({"target": target, "noise": noise, "method": method, "map": value})
    return pd.DataFrame(rows)


def test_transfer_sentence_numbers_and_claims():
    table = _transfer_table()
    # targets in alphabetical order; fine-tuned minus off-the-shelf
    assert sentences.fine_tune_per_target(table) == "a → b (30% symmetric) -0.050; b → c (40% symmetric) +0.050"
    s = tables.transfer_summary(table)
    assert s == pytest.approx({"ft_gain_mean": 0.0, "ft_better": 1, "targets": 2, "ots_min": 0.75, "ots_max": 0.85,
                               "gap_mean": 0.125, "shipped_vs_aum": 1, "shipped_targets": 2})
    claims = paper.transfer_claims({"dataset": "fashion-mnist", "model": "cnn", "epochs": 16, "detector_lr": 0.01},
                                   table, 0.003)
    assert claims.loc["targets", "this book"] == "a → b, b → c"
    assert claims.loc["fine-tuning lr", "this book"] == "0.003 (base 0.01)"
    assert claims.loc["outcome", "this book"] == \
        "fine-tuned above off-the-shelf on 1 of 2 targets (mean mAP change +0.000)"


def test_dna_adapt_text():
    maps = {"shipped detector": 0.8, "shipped, whole run": 0.6, "adapted detector": 0.9, "AUM": 0.55, "cl": 0.7}
    guarded = sentences.dna_adapt_text(maps, scored_epochs=5, epochs=30, left_out=12, cleanlab="cl")
    assert guarded.startswith("Off the shelf the detector read only the first 5 of the 30 epochs here: ")
    assert "That gives 0.800 mAP, against 0.600 for the whole run, 0.550 for AUM and 0.700 for cleanlab." in guarded
    assert guarded.endswith(" One extra run and a few seconds of fine-tuning give 0.900 (12 samples it already "
                            "suspected were kept out of the clean examples).")
    whole = sentences.dna_adapt_text(maps, scored_epochs=30, epochs=30, left_out=3, cleanlab="cl")
    assert whole.startswith("Off the shelf the detector read the whole run (the memorisation guard of the model card "
                            "did not step in) and reaches 0.800 mAP, against 0.550 for AUM and 0.700 for cleanlab. ")


def test_paper_tables():
    late = {"first_epoch": 9, "clean_mean": 0.8, "mislabeled_mean": 0.1, "clean_std": 0.2, "mislabeled_std": 0.25,
            "mean_lower": True, "std_higher": True}
    obs = paper.observation_table(late, "digits", 1200, 16)
    assert list(obs[obs.columns[1]]) == ["0.100 vs 0.800 for clean: lower", "0.250 vs 0.200 for clean: higher"]
    assert obs.columns[1] == "this book (digits, 1200 samples, epochs 9-16)"
    det = paper.detector_table({"dataset": "digits", "model": "mlp", "epochs": 6, "detector_epochs": 3}, 1200, 0.4,
                               0.91234, 0.9, 0.395)
    assert det.loc["outcome", "this book"] == "mAP 0.912 (AUM 0.900) at 40% noise"
    assert det.loc["detector training", "this book"] == "AdamW, lr 0.01, batch 64, 3 epochs"
    assert det.loc["data for steps 1-2", "this book"] == "digits subset of 1200, mlp, 6 epochs, 40% symmetric"
    assert paper.table1().loc["AUM", ("CIFAR-10", 0.2)] == 90.2


# --------------------------------------------------------------------------- model card
def _wide(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["data", "noise", "shipped detector", "AUM", "cleanlab (5-fold)"]).set_index(
        ["data", "noise"])


def test_members_and_draw_spread_text():
    stages = [{"seed": 0, "best_epoch": 3, "best_val_ap": 0.9612}, {"seed": 1, "best_epoch": 5, "best_val_ap": 0.95}]
    assert cs.members_text(stages) == ("seed 0: best epoch 3, validation average precision 0.961; "
                                       "seed 1: best epoch 5, validation average precision 0.950")
    spread = pd.Series({("digits/train", "20% symmetric"): 0.004, ("dna/train", "40% symmetric"): 0.05,
                        ("letter/train", "20% asymmetric"): 0.01})
    assert cs.draw_spread_text(spread) == ("by up to ±0.010 around its setting's mean (median over settings; up to "
                                           "±0.050, 40% symmetric on dna/train)")
    assert cs.draw_spread_text(pd.Series(dtype=float)) == "by an amount one draw cannot show"


def test_symmetric_text_and_bar_verdict():
    wide = _wide([("digits/train", "20% symmetric", 0.995, 0.996, 0.99),
                  ("letter/train", "20% symmetric", 0.97, 0.965, 0.95),
                  ("dna/train", "20% symmetric", 0.85, 0.74, 0.80),
                  ("dna/train", "40% symmetric", 0.80, 0.60, 0.75),
                  ("digits/train", "20% asymmetric", 0.9, 0.5, 0.5)])
    assert cs.symmetric_text(wide) == (
        "Under symmetric noise on digits and letter the margin's average is already close to perfect at this scale "
        "(mAP 0.965 to 0.996) and nearly everything the curves say is in it: the detector is above AUM in 1 of those "
        "2 settings, the widest gap being -0.0010 on digits at 20% symmetric. On dna it is not: the classifier "
        "memorises the flipped labels within a few epochs, AUM reaches only 0.600 to 0.740, the detector 0.850 and "
        "0.800 and cleanlab 0.800 and 0.750 (at 20% and 40%). The detector gets there by reading only the epochs "
        "before the memorising starts (the memorisation guard, next section); over the whole run the flipped labels "
        "are hidden from it as they are from AUM.")
    wide.loc[("dna/train", "40% symmetric"), "cleanlab (5-fold)"] = 0.9   # cleanlab ahead on one DNA row
    assert cs.symmetric_text(wide).endswith("that is what cleanlab's five extra trainings buy.")
    assert cs.bar_verdict(wide).startswith("**This does not meet the bar we set ourselves")
    above = _wide([("digits/train", "20% symmetric", 0.999, 0.996, 0.99)])
    assert cs.bar_verdict(above) == "**This meets the bar we set ourselves: above AUM and cleanlab in every setting.**"


def test_guard_texts():
    guard = pd.DataFrame({"data": ["dna/train", "dna/train", "digits/train"], "epochs": [30, 30, 30],
                          "epochs scored": [5, 6, 30]})
    assert cs.guard_text(guard) == (
        "On the held-out draws above the guard chose the early view in 2 of 3 draws, all of them on dna, where it "
        "scored the first 5 to 6 of 30 epochs; on every other draw it scored the whole run, exactly as without the "
        "guard. Those draws:")
    assert cs.guard_text(guard.iloc[2:]) == \
        "On the held-out draws above the guard never chose the early view (0 of 1 draws)."
    check = pd.DataFrame({"data": ["dna/train", "digits/train"], "noise": ["40% symmetric", "20% symmetric"],
                          "early view in": [3, 0], "with the guard": [0.85, 0.99], "whole run": [0.60, 0.99],
                          "AUM": [0.70, 0.995], "guard - whole run": [0.25, 0.0]})
    card = {"guard_check": [{"draws": [10, 11, 12]}, {"draws": [10, 11, 12]}]}
    assert cs.guard_check_text(check, card) == (
        "On the fresh draws the guard chose the early view in 3 of 6 draws, all on dna (and nowhere else, so every "
        "other row scores exactly as without the guard). Against the whole run it changed mAP by +0.250 at 40% "
        "symmetric there, and the guarded detector stays above AUM in 1 of those 1 settings.")
    assert cs.guard_check_text(check.assign(**{"early view in": 0}), card) == \
        "On the fresh draws the guard never chose the early view."
    assert cs.guard_check_text(pd.DataFrame(), {}).startswith("*This detector.json has no guard check")


def test_seed_text():
    ms = pd.DataFrame({"data": ["digits/train", "letter/train"], "noise": ["20% symmetric", "40% asymmetric"],
                       "seed 0 alone": [-0.001, 0.05], "seed 1 alone": [0.002, 0.01],
                       "ensemble (shipped)": [0.001, 0.04]})
    assert cs.seed_text(ms, [0, 1]) == (
        "Alone, the members are above AUM in 1 and 2 of the 2 settings (seeds 0, 1); the ensemble in 2. A member's "
        "mAP moves with its seed by up to 0.040 (letter, 40% asymmetric), and by up to 0.0030 under symmetric noise "
        "(digits, 20% symmetric), where the ensemble and AUM are a median 0.0010 mAP apart. The ensemble is above "
        "the mean of its members in 2 settings and above its best member in 0. Averaging 2 members is the better "
        "bet on data the detector never saw than any one seed, including the one the recipe was tuned on; that is "
        "why the package ships the ensemble.")
    assert cs.seed_text(pd.DataFrame(), [0]) == "*This detector.json comes from a one-member detector.*"


def test_in_domain_texts():
    indom = pd.DataFrame({
        "data": ["letter/train", "letter/train", "digits/train", "digits/train"] * 2,
        "noise": ["20% symmetric", "40% symmetric"] * 2 + ["20% asymmetric", "40% asymmetric"] * 2,
        "in-domain - AUM": [0.0078, 0.0042, -0.0005, -0.0005, 0, 0, 0, 0],
        "fine-tuned - AUM": [0.002, 0.001, -0.0005, 0.0003, 0, 0, 0, 0],
        "shipped - AUM": [-0.003, 0.001, -0.0009, -0.0005, 0, 0, 0, 0],
        "AUM": [0.97, 0.95, 0.998, 0.996, 0.5, 0.5, 0.5, 0.5],
        "in-domain detector": [0, 0, 0, 0, 0.90, 0.80, 0.95, 0.93],
        "shipped detector": [0, 0, 0, 0, 0.88, 0.78, 0.97, 0.95]})
    assert cs.in_domain_verdict(indom) == (
        "Under symmetric noise, trained on the data set it is tested on, the recipe is clearly above AUM on letter "
        "(+0.0078 and +0.0042 on letter at 20% and 40% noise); there the shipped detector is 0.0070 mAP behind the "
        "in-domain one on average, which is what transfer costs, and training on runs of the target data set wins "
        "it back. On digits it is not. From AUM, the in-domain detector is -0.0005 and -0.0005 on digits and the "
        "shipped detector fine-tuned on the same runs -0.0005 and +0.0003 on digits, where AUM reaches an mAP of "
        "0.9960 to 0.9980. Neither is more than 0.002 above AUM in any symmetric row there: AUM leaves only a "
        "handful of flipped samples out of place, and the shipped detector's deficit (-0.0009 and -0.0005 on "
        "digits) is not a failure to transfer, as a detector of this kind does not clearly pass AUM on that data "
        "even when it learns from the data set itself.")
    card = {"training": {"num_sequences": 90000}, "in_domain": [{"fit_sequences": 12924}, {"fit_sequences": 42696}]}
    assert cs.in_domain_asym_text(indom, card) == (
        "Under asymmetric noise the in-domain detector is +0.020 mAP from the shipped one on letter, -0.020 mAP from "
        "the shipped one on digits (mean of the two rates); training on the data set itself pays where the data "
        "are least like the pool (letter), while on digits the shipped detector, trained on 90,000 sequences "
        "against the in-domain detector's 12,924 to 42,696, is ahead. That is the case for fine-tuning the shipped "
        "detector on a noised copy of your own data when it is unlike the pool (next section).")
    ahead = indom.assign(**{"in-domain detector": indom["shipped detector"] + 0.01})
    assert cs.in_domain_asym_text(ahead, card).endswith("on digits (mean of the two rates).")


def test_adapt_texts():
    adapt = pd.DataFrame(
        [("dna/train", "40% symmetric", 0.70, 0.88, 0.60, 0.74, 0.05, 0.40),
         ("dna/train", "20% symmetric", 0.80, 0.85, 0.75, 0.82, 0.04, 0.20),
         ("letter/train", "40% asymmetric", 0.94, 0.90, 0.85, 0.80, 0.40, 0.40),
         ("digits/train", "20% symmetric", 0.995, 0.9955, 0.998, 0.99, 0.22, 0.20)],
        columns=["data", "noise", "shipped detector", "adapted (1 extra run)", "AUM", "cleanlab (5-fold)",
                 "left out", "flipped"]).set_index(["data", "noise"])
    assert cs.adapt_text(adapt) == (
        "Adapted, the detector is above AUM in 3 of these 4 settings and above cleanlab in 4 (shipped: 3 and 2). "
        "It gains most on dna at 40% symmetric, +0.180 mAP, and more than 0.01 on dna at 20% symmetric. It loses "
        "more than 0.002 on letter at 40% asymmetric (at most -0.0400), all under asymmetric noise, which the added "
        "symmetric changes do not resemble, and where the shipped detector is already at least 0.090 mAP above AUM. "
        "Adapted, it is still not above AUM on digits at 20% symmetric. On dna the shipped detector scores 4.0% to "
        "5.0% of the samples at 0.5 or more, far fewer than were flipped; elsewhere it flags 100% to 110% as many "
        "samples as were flipped. A detector that flags far fewer samples than you expect errors in your data is "
        "unsure of it, and that is where adapting paid most.")
    assert cs.adapt_verdict(adapt) == \
        "With one extra run it passes the bar in more settings than off the shelf, but not in all."
    everywhere = adapt.assign(**{"adapted (1 extra run)": 0.999})
    assert cs.adapt_verdict(everywhere) == "**With one extra run, it is above AUM and cleanlab in every setting.**"
    unchanged = adapt.assign(**{"adapted (1 extra run)": adapt["shipped detector"]})
    assert cs.adapt_verdict(unchanged) == \
        "One extra run does not get it past AUM and cleanlab in more settings than off the shelf."
    assert cs.adapt_text(pd.DataFrame()).startswith("*This detector.json has no adapted rows")
    assert cs.adapt_verdict(pd.DataFrame()) == ""


def test_run_length_texts():
    digits = pd.DataFrame({"epochs": [5, 40, 200], "resampled_map": [0.90, 0.96, 0.97], "aum_map": [0.93, 0.95, 0.90],
                           "scored_epochs": [5, 40, 20], "whole_run_map": [0.90, 0.96, 0.93]})
    assert cs.short_run_text(digits) == (
        "On digits, very short runs are the weak spot: at 5 epochs the detector is -0.030 mAP from AUM, because the "
        "classifier has barely started to separate clean from flipped samples and the curves carry little shape "
        "beyond their level.")
    assert cs.short_run_text(digits.assign(aum_map=0.89)) == (
        "Even at 5 epochs, where the classifier has barely started to separate clean from flipped samples, the "
        "detector is +0.010 mAP from AUM on digits.")
    assert cs.long_run_text(digits) == (
        "Long runs are where AUM loses ground on digits too: at 200 epochs the MLP has fitted many flipped labels and "
        "AUM falls to 0.900 mAP (from 0.950), while the detector reaches 0.970; the memorisation guard read only the "
        "first 20 epochs of that run (whole run: 0.930).")
    assert cs.long_run_text(digits.assign(aum_map=0.95)) == ""
    dna = pd.DataFrame({"epochs": [6, 30, 200], "aum_map": [0.90, 0.70, 0.55], "whole_run_map": [0.85, 0.60, 0.50],
                        "resampled_map": [0.84, 0.83, 0.83], "scored_epochs": [6, 5, 5]})
    assert cs.dna_length_text(dna) == (
        "DNA tells another story. AUM falls with the length of the run, from 0.900 mAP at 6 epochs to 0.550 at 200, "
        "because the flipped labels are learned; the detector on the whole run falls too (0.850 to 0.500). From 30 "
        "epochs on, the memorisation guard scored only the first 5 epochs and kept the detector at 0.830. But in "
        "the short runs (6 epochs) AUM is ahead by 0.060 to 0.060 mAP: the shipped detector reads the first epochs "
        "of a data set learned this fast less well than AUM does. On such data, rank a short run by AUM, or adapt "
        "the detector to it (chapter 5).")
    assert cs.dna_length_text(dna.assign(resampled_map=0.95, scored_epochs=dna["epochs"])).endswith(
        "(0.850 to 0.500). The shipped detector is ahead of AUM at every length here.")


def test_one_tie_rule():
    from mislabel.book import rules

    assert rules.call(rules.TIE + 1e-6) == "ahead" and rules.call(-rules.TIE - 1e-6) == "behind"
    assert rules.call(rules.TIE) == "level" and rules.call(-rules.TIE) == "level" and rules.call(0.0) == "level"
    gains = pd.Series([0.001, 0.0025, -0.003, 0.0])
    assert rules.ahead(gains).tolist() == [False, True, False, False]
    assert rules.level(gains).tolist() == [True, False, False, True]
    with pytest.raises(ValueError, match="diff"):
        rules.call(float("nan"))
    # the transfer chapter counts a fine-tuning gain only past the same margin the other chapters call a tie
    table = pd.DataFrame([{"target": t, "method": m, "map": v} for t, vals in
                          {"a": (0.90, 0.901, 0.95, 0.91, 0.90), "b": (0.80, 0.81, 0.85, 0.80, 0.805)}.items()
                          for m, v in zip(("off-the-shelf", "fine-tuned", "in-domain", "shipped", "AUM"), vals)])
    from mislabel.book import tables
    s = tables.transfer_summary(table)
    assert s["ft_better"] == 1 and s["shipped_vs_aum"] == 1   # a's +0.001 is level; b's -0.005 is behind


def test_metric_disagreement():
    rows = pd.DataFrame([
        {"method": "shipped detector", "map": 0.80, "roc_auc": 0.90, "precision_at_95": 0.48},
        {"method": "AUM", "map": 0.69, "roc_auc": 0.85, "precision_at_95": 0.52},
        {"method": "cleanlab", "map": 0.47, "roc_auc": 0.70, "precision_at_95": 0.30}])
    assert sentences.metric_disagreement(rows, "shipped detector") == (
        "By Precision@95, AUM is ahead of the shipped detector (0.520 against 0.480).")
    agree = rows.assign(precision_at_95=[0.6, 0.5, 0.3])
    assert sentences.metric_disagreement(agree, "shipped detector") == ""
    level = rows.assign(roc_auc=[0.851, 0.85, 0.7], precision_at_95=[0.6, 0.5, 0.3])
    assert sentences.metric_disagreement(level, "shipped detector") == (
        "By ROC AUC, shipped detector and AUM are level (0.851 and 0.850).")
    with pytest.raises(ValueError, match="method"):
        sentences.metric_disagreement(rows, "oracle")
