"""The book layer (mislabel.book) apart from its sentences: profiles, chapter parameters and outputs, tables, the
model card's tables and the ``mislabel-book`` command line. Nothing here trains a model."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mislabel
from mislabel._utils import repo_root
from mislabel.book import card_tables, chapter, cli, profiles, runs, tables
from mislabel.dynamics import Dynamics

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = REPO / "notebooks"


def test_import_mislabel_leaves_the_book_out():
    code = "import sys, mislabel; print('mislabel.book' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
    assert not hasattr(mislabel, "profiles") and not hasattr(mislabel, "pretrained")


# --------------------------------------------------------------------------- profiles
def test_profiles():
    assert profiles.get("smoke", epochs=3)["epochs"] == 3
    assert profiles.get("cpu", subset=None)["subset"] == profiles.PROFILES["cpu"]["subset"]
    with pytest.raises(ValueError, match="huge"):
        profiles.get("huge")


def test_profile_sizes_are_caps_for_another_data_set(monkeypatch):
    monkeypatch.delenv("MISLABEL_PROFILE", raising=False)
    # digits has 1,438 training and 359 test rows: the cpu preset's 8,000 / 2,000 are capped, smoke's 1,200 is kept
    cpu = profiles.get("cpu", dataset="digits")
    assert (cpu["subset"], cpu["test_subset"], cpu["dataset"]) == (1438, 359, "digits")
    smoke = profiles.get("smoke", dataset="digits", model="mlp")
    assert (smoke["subset"], smoke["test_subset"], smoke["model"]) == (1200, 359, "mlp")
    # explicit sizes are the reader's: kept as given
    explicit = profiles.get("cpu", dataset="digits", subset=5000, test_subset=100)
    assert (explicit["subset"], explicit["test_subset"]) == (5000, 100)
    assert profiles.get("cpu", dataset="fashion-mnist") == profiles.get("cpu")
    with pytest.raises(ValueError, match="mnist"):
        profiles.get("cpu", dataset="mnist")


def test_book_differences_settings_table_and_note(monkeypatch):
    monkeypatch.delenv("MISLABEL_PROFILE", raising=False)
    book = profiles.get(None)
    assert profiles.book_differences(book) == {} and profiles.book_differences(book, seed=(0, 0)) == {}
    assert chapter.settings_note(book, noise_rate=(0.4, 0.4)) == ""
    run = profiles.get("cpu", epochs=30, lr=0.1)
    assert profiles.book_differences(run, noise_rate=(0.6, 0.4), seed=(0, 0)) == {
        "epochs": (30, 16), "lr": (0.1, 0.05), "noise_rate": (0.6, 0.4)}
    note = chapter.settings_note(run, noise_rate=(0.6, 0.4))
    assert "`epochs` 30 (book: 16)" in note and "`noise_rate` 0.6 (book: 0.4)" in note and "`lr` 0.1" in note
    smoke = profiles.book_differences(profiles.get("smoke"))
    assert smoke["profile"] == ("smoke", "cpu") and smoke["subset"] == (1200, 8000) and "dataset" not in smoke
    assert profiles.book_differences(profiles.get("smoke"), ["epochs", "lr"]) == {"epochs": (6, 16)}
    assert chapter.settings_note(profiles.get("smoke"), ["lr", "model"]) == ""
    assert "`cv_folds`" not in chapter.settings_note(profiles.get("smoke"), ["epochs"])
    shown = chapter.settings_keys("rates")
    assert shown == [*chapter.SHOWN, "rates"]
    table = chapter.settings_table(profiles.get("smoke"), shown)
    assert list(table.index) == shown and table.loc["rates", "value"] == "[0.2, 0.4]"
    assert table.loc["subset", "value"] == "1200" and table["value"].map(type).eq(str).all()
    # a setting left to its default (None) reads "None", not NaN
    assert chapter.settings_table({"epochs": None}, ["epochs", "missing"])["value"].tolist() == ["None", "None"]


# --------------------------------------------------------------------------- chapter parameters and outputs
def test_chapter_parameter_checks():
    assert chapter.check_noise_rate(0.4) == 0.4 and chapter.check_noise_rate(np.float32(0.5)) == 0.5
    for bad in (0, 0.0, 1, 1.2, -0.1, True, "0.3", None):
        with pytest.raises(ValueError, match="noise_rate"):
            chapter.check_noise_rate(bad)
    with pytest.raises(ValueError, match="dna_noise_rate"):
        chapter.check_noise_rate(0.0, "dna_noise_rate")
    assert chapter.check_min_epochs(2, "dna_epochs") == 2 and chapter.check_min_epochs(30.0, "dna_epochs") == 30
    with pytest.raises(ValueError, match="dna_epochs"):
        chapter.check_min_epochs(1, "dna_epochs")


def test_as_list_accepts_papermill_strings():
    assert chapter.as_list(None) is None
    assert chapter.as_list("[0.3]") == [0.3]
    assert chapter.as_list(0.3) == [0.3]
    assert chapter.as_list("0.2, 0.4") == [0.2, 0.4]
    assert chapter.as_list('["symmetric"]', str) == ["symmetric"]
    assert chapter.as_list("symmetric,asymmetric", str) == ["symmetric", "asymmetric"]
    assert chapter.as_list((0.2, 0.4)) == [0.2, 0.4]


def test_repo_root_and_out_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(NOTEBOOK_DIR)
    assert repo_root() == REPO
    assert chapter.chapter_out_dir("x", tmp_path / "given") == (tmp_path / "given").resolve()
    monkeypatch.setenv("MISLABEL_OUT", str(tmp_path / "env"))
    assert chapter.chapter_out_dir("ch") == (tmp_path / "env" / "ch").resolve()
    assert (tmp_path / "env" / "ch").is_dir()


def test_write_metrics_is_strict_json(tmp_path):
    payload = {"a": np.float32(0.5), "b": float("nan"), "c": np.arange(3), "d": pd.DataFrame({"x": [1.0, np.nan]}),
               "e": {"f": np.bool_(True), "g": [np.inf, (1, 2)]}, "h": pd.Series([1, 2])}
    path = chapter.write_metrics(tmp_path / "out", payload)
    assert json.loads(path.read_text()) == {"a": 0.5, "b": None, "c": [0, 1, 2], "d": [{"x": 1.0}, {"x": None}],
                                            "e": {"f": True, "g": [None, [1, 2]]}, "h": [1, 2]}
    assert path.read_text().startswith('{\n "a": 0.5,') and path.read_text().endswith("}\n")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["metrics.json"]
    with pytest.raises(TypeError, match=r"payload\['where'\]"):   # a path is not JSON: say str(path)
        chapter.write_metrics(tmp_path / "out", {"where": tmp_path})


# --------------------------------------------------------------------------- tables
def _toy_dynamics(n=200, t=6, rate=0.3, seed=0) -> Dynamics:
    rng = np.random.default_rng(seed)
    flipped = np.zeros(n, bool)
    flipped[rng.choice(n, int(rate * n), replace=False)] = True
    ramp = np.linspace(0.2, 0.95, t, dtype=np.float32)
    probs = np.where(flipped[:, None], 0.1 + 0.2 * rng.random((n, t)), ramp + 0.04 * rng.random((n, t)))
    probs = np.clip(probs, 0, 1).astype(np.float32)
    margins = (probs - 0.5).astype(np.float32)
    return Dynamics(probs, rng.integers(0, 10, n), flipped, margins)


def test_epoch_summary_and_contrast():
    dyn = _toy_dynamics()
    s = tables.epoch_summary(dyn)
    assert list(s.columns) == ["epoch", "group", "mean", "std", "n"]
    assert len(s) == 2 * dyn.num_epochs and s["epoch"].dtype == np.int64
    clean = s[s.group == "clean"].set_index("epoch")
    np.testing.assert_allclose(clean["mean"], dyn.probs[~dyn.is_flipped].mean(0), rtol=1e-5)
    np.testing.assert_allclose(clean["std"], dyn.probs[~dyn.is_flipped].std(0), rtol=1e-4)
    assert (clean["n"] == (~dyn.is_flipped).sum()).all()
    late = tables.late_epoch_contrast(dyn, 0.5)
    assert late["first_epoch"] == 4
    assert late["mean_lower"] and late["last_clean_mean"] > late["last_mislabeled_mean"]
    with pytest.raises(ValueError, match="fraction"):
        tables.late_epoch_contrast(dyn, 0)
    probs = np.full((4, 3), 0.5, np.float32)
    for flipped in (np.zeros(4, bool), np.ones(4, bool)):   # clean vs mislabeled needs both groups
        with pytest.raises(ValueError, match="flipped"):
            tables.late_epoch_contrast(Dynamics(probs=probs, labels=np.zeros(4, np.int64), is_flipped=flipped))
    assert tables.label_levels(0.4, 5) == (0.6, 0.1)


def test_long_probs_and_trajectories():
    dyn = _toy_dynamics(n=50, t=4)
    idx = tables.pick_trajectories(dyn, per_group=3, seed=1)
    assert idx.dtype == np.int64 and len(idx) == 6
    assert (~dyn.is_flipped[idx[:3]]).all() and dyn.is_flipped[idx[3:]].all()
    long = tables.long_probs(dyn, idx)
    assert len(long) == 6 * 4 and set(long.group) == {"clean", "mislabeled"}
    row = long[(long["sample"] == idx[0]) & (long["epoch"] == 2)]
    assert float(row["prob"].iloc[0]) == pytest.approx(float(dyn.probs[idx[0], 1]))
    assert len(tables.long_probs(dyn)) == 50 * 4
    flipped = np.flatnonzero(dyn.is_flipped)
    mask = tables.long_probs(dyn, dyn.is_flipped)   # a boolean mask selects its rows, not rows 0 and 1
    pd.testing.assert_frame_equal(mask, tables.long_probs(dyn, flipped))
    assert tables.long_probs(dyn, np.array([-1]))["sample"].tolist() == [49] * 4
    for bad in (dyn.is_flipped[:10], np.zeros(50, bool), [50], [0.5, 1.0], []):
        with pytest.raises(ValueError):
            tables.long_probs(dyn, bad)


def test_transition_matrix():
    m = tables.transition_matrix([0, 0, 1, 1], [0, 1, 1, 1], ["a", "b", "c"])
    assert list(m.index) == ["a", "b", "c"] and list(m.columns) == ["a", "b", "c"]
    assert m.loc["a"].tolist() == [0.5, 0.5, 0.0] and m.loc["b"].tolist() == [0.0, 1.0, 0.0]


def test_evaluate_compare_and_grid_tables():
    rng = np.random.default_rng(0)
    flipped = rng.random(300) < 0.3
    good, bad = flipped + 0.1 * rng.random(300), rng.random(300)
    rows = []
    for kind in ("symmetric", "asymmetric"):
        for rate in (0.2, 0.4):
            t = tables.evaluate_methods({"LSTM detector": good if kind == "symmetric" else bad, "AUM": bad}, flipped)
            t.insert(0, "rate", rate)
            t.insert(0, "kind", kind)
            t["test_acc"] = 0.5 + rate
            rows.append(t)
    table = pd.concat(rows, ignore_index=True)
    diff = tables.method_comparison(table)
    assert set(diff.columns) == {"kind", "rate", "map", "roc_auc", "precision_at_95"}
    assert (diff[diff.kind == "symmetric"]["map"] > 0).all() and (diff[diff.kind == "asymmetric"]["map"] == 0).all()
    long = tables.metrics_long(table)
    assert set(long.metric) == {"mAP", "ROC AUC", "Precision@95"} and len(long) == 3 * len(table)
    wide = tables.grid_table(table)
    assert wide.loc[("symmetric", 0.4), ("classifier", "test accuracy")] == pytest.approx(0.9)
    assert wide.loc[("asymmetric", 0.2), ("mAP", "AUM")] == table["map"].iloc[5]


def test_transfer_targets():
    cfg = profiles.get("smoke", dataset="digits", model="mlp")
    with pytest.raises(ValueError, match="transfer_dataset"):
        runs.transfer_targets(cfg)
    assert runs.transfer_targets(dict(cfg, transfer_dataset="letter"))[0][0] == "digits → letter"
    book = runs.transfer_targets(profiles.get("cpu"))
    assert book[0][:2] == ("fashion-mnist → digits", {"dataset": "digits", "subset": None, "test_subset": None})
    assert [t[0] for t in book[1:]] == ["symmetric → asymmetric", "cnn → mlp"]
    to_fmnist = runs.transfer_targets(dict(cfg, transfer_dataset="fashion-mnist"))[0][1]
    assert to_fmnist == {"dataset": "fashion-mnist", "subset": 1200, "test_subset": 500}


# --------------------------------------------------------------------------- model card tables
def _draw(seed, det, aum, scored=30):
    return {"seed": seed, "detector": {"map": det}, "aum": {"map": aum}, "cleanlab_cv5": {"map": 0.5},
            "scored_epochs": scored, "adapt_left_out": 10}


def _card() -> dict:
    metrics = lambda v: {"map": v, "roc_auc": v, "precision_at_95": v, "noise_rate": 0.2}  # noqa: E731
    row = {"dataset": "dna/train", "rate": 0.2, "noise": "symmetric", "model": "mlp", "epochs": 30, "n": 100,
           "detector": metrics(0.8), "aum": metrics(0.7), "cleanlab_cv5": metrics(0.75), "adapted": metrics(0.9),
           "draws": [_draw(0, 0.9, 0.7, scored=5), _draw(1, 0.8, 0.7), _draw(2, 0.7, 0.7)],
           "members": [{"map": 0.78}, {"map": 0.69}]}
    return {"held_out": [row], "training": {"num_sequences": 100}, "config": {},
            "member_training": [{"seed": 0}, {"seed": 1}],
            "training_data": [{"dataset": "fashion-mnist", "noise": "symmetric", "rate": 0.1, "epochs": 12,
                               "model": "cnn", "subset": 6000, "lr": 0.05},
                              {"dataset": "satellite", "noise": "asymmetric", "rate": 0.3, "epochs": 4, "model": "mlp",
                               "subset": None, "lr": 0.05, "batch_size": 256, "milestones": [], "augment": False}],
            "length_study": [{"dataset": "digits/train", "epochs": e, "resampled_map": r, "raw_length_map": w,
                              "whole_run_map": r, "aum_map": 0.9} for e, r, w in ((5, 0.9, 0.91), (200, 0.95, 0.9))]}


def test_card_tables_from_a_hand_made_card():
    card = _card()
    held = card_tables.held_out_table(card)
    assert held[["method", "map"]].values.tolist() == [["shipped detector", 0.8], ["AUM", 0.7],
                                                       ["cleanlab (5-fold)", 0.75]]
    assert (held["noise"] == "20% symmetric").all()
    assert card_tables.setting_labels(held).iloc[0] == "dna\n20% sym."
    wide = card_tables.held_out_wide(held)
    assert card_tables.held_out_counts(wide) == pytest.approx({
        "beats_aum": 1, "above_aum": 1, "ties_aum": 0, "beats_cl": 1, "rows": 1, "worst_gap": 0.1, "sym_gap": 0.1,
        "asym_gap": float("nan")}, nan_ok=True)
    assert card_tables.draw_spread(card).tolist() == pytest.approx([0.1])   # draws 0.9, 0.8, 0.7 around 0.8
    per_draw = card_tables.per_draw_table(card)
    assert per_draw.columns.tolist() == ["draw 0", "draw 1", "draw 2", "mean"]
    assert per_draw.iloc[0].tolist() == pytest.approx([0.2, 0.1, 0.0, 0.1])
    guard = card_tables.guard_table(card)
    assert card_tables.early_views(guard)["draw"].tolist() == [0]
    assert card_tables.guard_check_table(card).empty and card_tables.in_domain_table(card).empty
    ms = card_tables.member_table(card)
    assert ms[["seed 0 alone", "seed 1 alone", "ensemble (shipped)"]].iloc[0].tolist() == pytest.approx(
        [0.08, -0.01, 0.1])
    counted = card_tables.with_above_aum_counts(ms)
    assert counted.loc[("settings above AUM", "")].tolist() == [1, 0, 1]
    adapt = card_tables.adapt_table(card)
    assert adapt.loc[("dna/train", "20% symmetric"), "left out"] == pytest.approx(0.1)   # 10 of 100
    recipe = card_tables.recipe_table(card)
    assert recipe["subset"].tolist() == [6000, "all"] and recipe["batch_size"].tolist() == [128, 256]
    assert recipe["schedule"].tolist() == ["step decay", "constant lr"]
    assert recipe["augmentation"].tolist() == ["crop + flip", "none"]
    summary = card_tables.recipe_summary(pd.concat([recipe, recipe.iloc[[1]].assign(rate=0.1, epochs=20)]))
    assert summary.index.tolist() == ["fashion-mnist", "satellite"] and summary["runs"].tolist() == [1, 2]
    assert summary.loc["satellite", ["noise rates", "epochs", "models"]].tolist() == ["0.1-0.3", "4-20", "mlp"]
    assert summary.loc["fashion-mnist", ["noise rates", "schedules", "augmentation"]].tolist() == [
        "0.1", "step decay", "crop + flip"]
    assert tables.human(recipe).columns[:2].tolist() == ["data set", "noise"]
    assert card_tables.length_numbers(card) == {"short_gain": -0.01, "shortest": 5, "long_gain": 0.05,
                                                "longest": 200, "pool_epochs": "4 to 12"}
    long = card_tables.length_long(card_tables.length_study(card))
    assert len(long) == 2 * 4 and set(long["method"]) == set(card_tables.LENGTH_METHODS.values())


def test_shipped_card_has_every_table():
    card = card_tables.load_card()
    assert card["config"] == mislabel.NoiseDetector.pretrained().config
    for table in (card_tables.held_out_table(card), card_tables.guard_check_table(card),
                  card_tables.in_domain_table(card), card_tables.adapt_table(card), card_tables.member_table(card)):
        assert len(table) > 0


# --------------------------------------------------------------------------- mislabel-book
def test_cli_refuses_an_unknown_chapter_or_parameter(capsys):
    assert cli.main(["run", "99"]) == 2
    err = capsys.readouterr().err
    assert "99" in err and all(n in err for n in ("01", "03", "06"))
    with pytest.raises(cli.BookError, match="bogus"):
        cli.run_chapter("03", "unused", {"bogus": 1})
    with pytest.raises(cli.BookError, match="out_dir"):
        cli.run_chapter("03", "unused", {"out_dir": "x"})
    assert cli.chapter_parameters("3")["noise_kinds"] is None
    assert [cli._value(v) for v in ("0.6", "3", "None", "True", "[0.3]", "digits")] == \
        [0.6, 3, None, True, "[0.3]", "digits"]


def test_cli_is_a_console_script():
    import tomllib

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["mislabel-book"] == "mislabel.book.cli:main"


def test_style_has_one_colour_per_method():
    from mislabel import methods
    from mislabel.book import style

    # every registered method has a shown name with a colour, and the two detectors' colours are distinct
    for name in methods.names():
        assert style.color(name) == style.COLORS[style.METHOD_NAMES[name]]
    assert style.color("AUM") == "tab:purple" and style.color("aum") == "tab:purple"
    assert style.color("LSTM detector") != style.color("shipped detector")
    assert style.palette(["clean", "mislabeled"]) == {"clean": "tab:blue", "mislabeled": "tab:red"}
    with pytest.raises(KeyError, match="COLORS"):
        style.color("a new method")


def test_shipped_detector_pool():
    from mislabel.book import recipe

    # the shipped detector learned from the training splits of Fashion-MNIST (also rotated) and Satellite
    assert recipe.pool_datasets() == {"fashion-mnist", "satellite"}
    assert recipe.in_pool("fashion-mnist") and recipe.in_pool("fashion-mnist-rot", "train")
    assert not recipe.in_pool("fashion-mnist", "test") and not recipe.in_pool("digits") and not recipe.in_pool("dna")
    with pytest.raises(ValueError, match="split='test'"):
        recipe.check_out_of_pool("fashion-mnist", "train")
    recipe.check_out_of_pool("fashion-mnist", "test")
    # chapter 4 marks its Fashion-MNIST targets and keeps them out of the shipped detector's summary
    book = profiles.get("cpu")
    marks = runs.shipped_in_pool(book, runs.transfer_targets(book))
    assert marks == {"fashion-mnist → digits": False, "symmetric → asymmetric": True, "cnn → mlp": True}


def test_no_chapter_grades_the_shipped_detector_on_its_pool():
    # a chapter that loads a training split and scores it with the shipped detector must not load a pool data set
    import re

    from mislabel.book import recipe

    for path in sorted(NOTEBOOK_DIR.glob("*.md")):
        text = path.read_text()
        if not re.search(r"mislabel\.detect\(|NoiseDetector\.pretrained\(|\"shipped\"", text):
            continue
        for name, split in re.findall(r"data\.load\(\"([\w-]+)\", split=\"(\w+)\"", text):
            assert not recipe.in_pool(name, split), f"{path.name} grades the shipped detector on {name}/{split}"


def test_tables_show_human_column_names():
    t = pd.DataFrame({"method": ["AUM"], "map": [0.9], "roc_auc": [0.95], "precision_at_95": [0.5], "other": [1]})
    shown = tables.human(t.set_index("method"))
    assert list(shown.columns) == ["mAP", "ROC AUC", "Precision@95", "other"] and shown.index.name == "method"
