"""The shipped detector: loads with weights_only=True and scores exactly like an independent reference."""
import copy
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import mislabel
from mislabel import baselines, metrics
from mislabel.book import recipe
from mislabel._utils import describe_cpu
from mislabel.detector import resample

WEIGHTS = Path(mislabel.__file__).parent / "weights"


def numpy_lstm_scores(state: dict, x: np.ndarray, num_layers: int) -> np.ndarray:
    """Reference forward pass written from the LSTM equations (gate order i, f, g, o, as in PyTorch).

    x : (N, T, F) input channels.
    """
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    h_seq = x.astype(np.float64)
    for layer in range(num_layers):
        W_ih = state[f"lstm.weight_ih_l{layer}"].double().numpy()
        W_hh = state[f"lstm.weight_hh_l{layer}"].double().numpy()
        b = (state[f"lstm.bias_ih_l{layer}"] + state[f"lstm.bias_hh_l{layer}"]).double().numpy()
        H = W_hh.shape[1]
        N, T, _ = h_seq.shape
        h, c = np.zeros((N, H)), np.zeros((N, H))
        outs = []
        for t in range(T):
            z = h_seq[:, t] @ W_ih.T + h @ W_hh.T + b
            i, f, g, o = sig(z[:, :H]), sig(z[:, H:2 * H]), np.tanh(z[:, 2 * H:3 * H]), sig(z[:, 3 * H:])
            c = f * c + i * g
            h = o * np.tanh(c)
            outs.append(h)
        h_seq = np.stack(outs, 1)
    logits = h_seq[:, -1] @ state["head.weight"].double().numpy().T + state["head.bias"].double().numpy()
    e = np.exp(logits - logits.max(1, keepdims=True))
    return (e[:, 1] / e.sum(1)).astype(np.float32)


def member_states(payload: dict) -> list[dict]:
    """Weights of every member of a checkpoint (version 1: one ``state_dict``; 2: a list)."""
    return [payload["state_dict"]] if payload["format_version"] == 1 else payload["state_dicts"]


def ensemble_scores(states: list[dict], x: np.ndarray, num_layers: int) -> np.ndarray:
    """One member's probability, or the sigmoid of the members' mean log-odds log(p / (1 - p))."""
    ps = [numpy_lstm_scores(s, x, num_layers).astype(np.float64) for s in states]
    if len(ps) == 1:
        return ps[0].astype(np.float32)
    z = np.mean([np.log(p / (1 - p)) for p in ps], axis=0)
    return (1 / (1 + np.exp(-z))).astype(np.float32)


def test_shipped_weights_load_with_weights_only_and_match_reference():
    path = WEIGHTS / "detector.pt"
    assert path.is_file(), "the package must ship mislabel/weights/detector.pt (scripts/train_pretrained.py)"
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == "mislabel-detector"
    det = mislabel.NoiseDetector.pretrained()
    assert det.config["hidden_size"] == 64 and det.config["num_layers"] == 2
    states = member_states(payload)
    assert len(states) == det.config["members"] == len(det.nets)
    n_params = sum(p.numel() for net in det.nets for p in net.parameters())
    assert 40_000 * len(states) < n_params < 60_000 * len(states)   # LSTM 2x64 per member
    rng = np.random.default_rng(0)
    T = det.seq_len
    probs = rng.random((7, T)).astype(np.float32)
    margins = rng.normal(0, 3, (7, T)).astype(np.float32)
    probs[0], margins[0] = 0.95, 6.0    # a confidently learned sample
    probs[1], margins[1] = 0.02, -5.0   # a never-learned sample
    labels, runner = _labels_and_runner_up(rng, 7, T)
    dyn = mislabel.Dynamics(probs, labels, margins=margins, runner_up=runner)
    x = _channels(det, probs, margins, labels, runner)  # second channel (if any): sigmoid of the AUM margin
    ref = ensemble_scores(states, x, det.config["num_layers"])
    np.testing.assert_allclose(det.score(dyn), ref, atol=1e-5)
    np.testing.assert_allclose(mislabel.detect(dyn), ref, atol=1e-5)
    assert ref[1] > ref[0]  # never-learned looks more mislabeled than confidently learned


def _labels_and_runner_up(rng, N, T, C=3):
    labels = rng.integers(0, C, N)
    runner = (labels[:, None] + rng.integers(1, C, (N, T))) % C   # any class but the given one
    return labels, runner


def _channels(det, probs, margins, labels, runner):
    """The detector's input computed independently: probability, sigmoid(margin), margin percentile, the
    two class-pair confusion shares and the percentile of AUM so far (per-sample Python loops)."""
    feats = det.config["features"].split("+")
    chans = [probs.astype(np.float64)]
    m = margins.astype(np.float64)
    if "margin" in feats:
        chans.append(1 / (1 + np.exp(-m)))

    def percentile(v):   # average rank within each epoch's column, divided by N
        below = (v[None, :, :] < v[:, None, :]).sum(1)
        equal = (v[None, :, :] == v[:, None, :]).sum(1)
        return (below + (equal + 1) / 2) / len(v)

    if "rank" in feats:
        chans.append(percentile(m))
    if "pairs" in feats:  # share of class-a samples predicted as b, for (given, runner-up) and back
        N, T = m.shape
        fwd, bwd = np.zeros((N, T)), np.zeros((N, T))
        for t in range(T):
            pred = [labels[j] if m[j, t] >= 0 else runner[j, t] for j in range(N)]
            share = lambda a, b: (sum(labels[j] == a and pred[j] == b for j in range(N))  # noqa: E731
                                  / max(sum(labels[j] == a for j in range(N)), 1))
            for i in range(N):
                fwd[i, t] = share(labels[i], runner[i, t])
                bwd[i, t] = share(runner[i, t], labels[i])
        chans += [fwd, bwd]
    if "aumrank" in feats:  # percentile of the running mean of the margin (AUM so far)
        chans.append(percentile(np.cumsum(m, axis=1) / np.arange(1, m.shape[1] + 1)))
    assert len(chans) == mislabel.detector.CHANNELS[det.config["features"]], \
        f"test does not know the features {det.config['features']!r}"
    return np.stack(chans, axis=2)


def test_any_length_is_resampled_to_the_shipped_length():
    det = mislabel.NoiseDetector.pretrained()
    states = member_states(torch.load(WEIGHTS / "detector.pt", weights_only=True))
    rng = np.random.default_rng(1)
    for T in (3, 10, 200):
        labels, runner = _labels_and_runner_up(rng, 5, T)
        d = mislabel.Dynamics(rng.random((5, T)).astype(np.float32), labels,
                              margins=rng.normal(0, 2, (5, T)).astype(np.float32), runner_up=runner)
        for guard in (False, True):   # the whole run, and the epochs the memorisation guard reads
            v = d.first_epochs(det.scored_epochs(d)) if guard else d
            x = resample(_channels(det, v.probs, v.margins, labels, v.runner_up), det.seq_len)  # features, resampled
            ref = ensemble_scores(states, x, det.config["num_layers"])
            np.testing.assert_allclose(det.score(d, memorisation_guard=guard), ref, atol=1e-5)


def test_model_card_numbers_present_and_meet_the_bar():
    card = json.loads((WEIGHTS / "detector.json").read_text())
    assert card["config"]["seq_len"] == mislabel.NoiseDetector.pretrained().seq_len
    assert card["held_out"], "held-out evaluation missing from the model card"
    for row in card["held_out"]:
        for method in ("detector", "aum", "cleanlab_cv5", "adapted"):
            assert 0 <= row[method]["map"] <= 1
        assert len(row["draws"]) == card["held_out_draws"]
        assert all(0 <= d["adapt_left_out"] < row["n"] for d in row["draws"])
        assert all(2 <= d["scored_epochs"] <= row["epochs"] for d in row["draws"])
        assert len(row.get("members", [])) == (card["config"]["members"] if card["config"].get("members", 1) > 1 else 0)
    assert {r["dataset"] for r in card["length_study"]} == {"digits/train", "dna/train"}
    assert all(2 <= r["scored_epochs"] <= r["epochs"] for r in card["length_study"])
    # users train for 10, 30 or 200 epochs (issue #5): the study spans that on both data sets
    for ds in ("digits/train", "dna/train"):
        lengths = {r["epochs"] for r in card["length_study"] if r["dataset"] == ds}
        assert min(lengths) <= 10 and {20, 40} <= lengths and max(lengths) >= 200, (ds, lengths)
    # the card's config is the shipped file's, memorisation guard included
    assert card["config"] == mislabel.NoiseDetector.pretrained().config
    assert card["config"]["memorisation_guard"] is recipe.MEMORISATION_GUARD is True


def test_cleanlab_and_cross_val_baselines():
    ds = mislabel.data.load("synthetic", split="train", subset=400, seed=0)
    noisy, flipped = mislabel.noise.symmetric(ds.labels, rate=0.25, num_classes=10, seed=0)
    probs = baselines.cross_val_probs("mlp", ds.images, noisy, folds=3, epochs=6, lr=0.1, batch_size=32,
                                      num_classes=10, progress=False)
    assert probs.shape == (400, 10) and np.allclose(probs.sum(1), 1, atol=1e-5)
    s = baselines.cleanlab_scores(probs, noisy)
    assert s.shape == (400,) and metrics.evaluate(s, flipped)["map"] > 0.5
    with pytest.raises(ValueError, match="folds"):
        baselines.cross_val_probs("mlp", ds.images, noisy, folds=1)
    with pytest.raises(ValueError, match="pred_probs"):
        baselines.cleanlab_scores(probs[:10], noisy)


def test_recipe_entries_are_capture_arguments():
    import inspect

    from mislabel import pipeline

    params = inspect.signature(pipeline.capture).parameters
    datasets = set()
    for spec in recipe.RECIPE:
        kw = recipe._spec(spec, 600)
        assert set(kw) <= set(params), set(kw) - set(params)
        assert kw["dataset"] in mislabel.data.DATASETS
        datasets.add(kw["dataset"])
        # Fashion-MNIST entries take the pool's subset; entries naming their own data set keep their own
        assert kw["subset"] == (600 if "dataset" not in spec else spec["subset"])
    assert datasets == {"fashion-mnist", "satellite", "fashion-mnist-rot"}
    # the card records the same recipe the library defines
    card = json.loads((WEIGHTS / "detector.json").read_text())
    assert [(r["dataset"], r["noise"], r["rate"], r["epochs"], r["model"]) for r in card["training_data"]] == \
        [(recipe._spec(s, recipe.SUBSET)["dataset"], s["noise"], s["rate"], s["epochs"], s["model"])
         for s in recipe.RECIPE]


def test_train_pretrained_script_quick_and_in_domain_only(tmp_path):
    """The regeneration script runs end to end (tiny sizes), and --in-domain-only adds the in-domain
    reference to an existing card without touching the weights."""
    import os
    import subprocess
    import sys
    script = Path(__file__).resolve().parents[2] / "scripts" / "train_pretrained.py"
    env = dict(os.environ, MISLABEL_CACHE=str(tmp_path / "cache"))
    out = tmp_path / "weights"

    def run(*args):
        return subprocess.run([sys.executable, str(script), "--quick", "--draws", "1", "--out", str(out), *args],
                              capture_output=True, text=True, env=env, timeout=600)

    missing = run("--in-domain-only")
    assert missing.returncode == 2 and "run without it first" in missing.stderr
    assert not out.exists() or not any(out.iterdir())
    full = run()
    assert full.returncode == 0, full.stderr[-2000:]
    card = json.loads((out / "detector.json").read_text())
    assert [r["dataset"] for r in card["in_domain"]] == ["digits/train"] * 2
    assert card["cpu"] == describe_cpu()   # runs repeat bit for bit only on CPUs like this one
    # the quick detector is a 2-member ensemble: each member is also scored on its own, and trained with its seed
    assert card["config"]["members"] == 2 and [st["seed"] for st in card["member_training"]] == [0, 1]
    for r in card["held_out"]:
        assert len(r["members"]) == 2 and len(r["draws"][0]["members"]) == 2
        assert all(0.0 < m["map"] <= 1.0 for m in r["members"])
    # the guard is on, and checked on fresh draws (seeds from the script's GUARD_CHECK_SEED = 10) with and without it
    assert card["config"]["memorisation_guard"] is True
    assert all(0.0 < d["whole_run"]["map"] <= 1.0 for r in card["held_out"] for d in r["draws"])
    assert [(r["noise"], [d["seed"] for d in r["draws"]]) for r in card["guard_check"]] == \
        [("symmetric", [10]), ("asymmetric", [10])]
    for r in card["guard_check"]:
        assert all(0.0 < r[m]["map"] <= 1.0 for m in ("guarded", "whole_run", "aum"))
    # fine-tuning works on a copy: the in-domain rows score the shipped detector as the held-out rows did
    held = {(r["noise"], r["rate"]): r["detector"] for r in card["held_out"]}
    assert all(r["detector"] == held[r["noise"], r["rate"]] for r in card["in_domain"])
    weights = (out / "detector.pt").read_bytes()
    del card["in_domain"]
    (out / "detector.json").write_text(json.dumps(card))
    again = run("--in-domain-only")
    assert again.returncode == 0, again.stderr[-2000:]
    card2 = json.loads((out / "detector.json").read_text())
    assert (out / "detector.pt").read_bytes() == weights
    assert card2["held_out"] == card["held_out"]
    for row in card2["in_domain"]:
        assert row["fit_on"] == "digits/test" and len(row["draws"]) == 1
        assert row["fit_run_count"] == 2 and row["fit_sequences"] == 2 * row["fit_samples"]
        for key in ("in_domain", "fine_tuned", "detector", "aum"):
            assert 0.0 < row[key]["map"] <= 1.0

    # the length study covers digits and DNA at each quick length; --length-only measures it again, alone
    assert [(r["dataset"], r["epochs"]) for r in card2["length_study"]] == \
        [("digits/train", 2), ("digits/train", 4), ("dna/train", 2), ("dna/train", 4)]
    for r in card2["length_study"]:
        assert 2 <= r["scored_epochs"] <= r["epochs"] and r["noise"] == "symmetric" and r["rate"] == 0.3
        assert all(0.0 < r[k] <= 1.0 for k in ("resampled_map", "whole_run_map", "raw_length_map", "aum_map"))
    assert "length_study_cpu" not in card2   # the whole card was measured here (its "cpu")

    def one_part(flag, key):
        """``flag`` measures only the card's ``key`` again, says where, and keeps the weights and the rest."""
        (out / "detector.json").write_text(json.dumps({**card2, key: []}))
        part = run(flag)
        assert part.returncode == 0, part.stderr[-2000:]
        updated = json.loads((out / "detector.json").read_text())
        assert (out / "detector.pt").read_bytes() == weights
        assert updated[key] == card2[key] and updated[f"{key}_cpu"] == describe_cpu()
        assert updated[f"{key}_seconds"] >= 0
        assert {k: v for k, v in updated.items() if not k.startswith(key)} == \
            {k: v for k, v in card2.items() if k != key}
        (out / "detector.json").write_text(json.dumps(card2))

    assert run("--length-only", "--in-domain-only").returncode == 2
    one_part("--length-only", "length_study")
    # --guard-only measures the guard check again, alone, and says where
    assert run("--guard-only", "--length-only").returncode == 2
    one_part("--guard-only", "guard_check")

    # --evaluate-only keeps the weights and the training record, and measures the same numbers again
    assert run("--evaluate-only", "--in-domain-only").returncode == 2
    ev = run("--evaluate-only")
    assert ev.returncode == 0, ev.stderr[-2000:]
    card3 = json.loads((out / "detector.json").read_text())
    before = torch.load(io.BytesIO(weights), weights_only=True)
    after = torch.load(out / "detector.pt", weights_only=True)
    for a, b in zip(before["state_dicts"], after["state_dicts"], strict=True):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for key in ("held_out", "length_study", "in_domain", "guard_check"):
        assert card3[key] == card2[key], key
    for key in ("seconds", "training", "member_training", "training_data"):
        assert card3[key] == card[key], key
    assert card3["evaluate_seconds"] >= 0 and "evaluate_seconds" not in card
    assert card3["evaluated_datasets"] == ["digits", "fashion-mnist", "letter", "dna"]
    # --datasets: only with --evaluate-only, and only names of held-out data sets
    assert run("--datasets", "digits").returncode == 2
    bad = run("--evaluate-only", "--datasets", "mnist")
    assert bad.returncode == 2 and "choose from digits, fashion-mnist, letter, dna" in bad.stderr
    # a data set the quick run does not measure: its rows are dropped and re-measured (none here), the rest kept
    (out / "detector.json").write_text(json.dumps({**card3, "held_out": card3["held_out"] + [
        {**card3["held_out"][0], "dataset": "dna/train"}]}))
    part = run("--evaluate-only", "--datasets", "dna")
    assert part.returncode == 0, part.stderr[-2000:]
    card4 = json.loads((out / "detector.json").read_text())
    assert card4["held_out"] == card3["held_out"] and card4["in_domain"] == card3["in_domain"]
    assert card4["length_study"] == card3["length_study"] and card4["evaluated_datasets"] == ["dna"]

    # every held-out row also scores the detector adapted to that draw with one extra run (NoiseDetector.adapt)
    for r in card4["held_out"]:
        assert 0.0 < r["adapted"]["map"] <= 1.0
        for d in r["draws"]:
            assert 0.0 < d["adapted"]["map"] <= 1.0 and 0 <= d["adapt_left_out"] < r["n"]
    # --rescore-only re-measures what the shipped detector's scores decide, on the card's own draws, and keeps
    # cleanlab's column, the in-domain and fine-tuned detectors and the weights
    stale_scores = copy.deepcopy(card4)
    for r in stale_scores["held_out"]:
        del r["adapted"]
        for d in r["draws"]:
            del d["adapted"], d["adapt_left_out"]
            d["detector"]["map"] -= 0.01
        r["cleanlab_cv5"]["map"] = 0.123   # kept as the card has it
    for r in stale_scores["in_domain"]:
        r["detector"]["map"] = r["fine_tuned"]["map"] = 0.5
    stale_scores["config"]["memorisation_guard"] = False
    (out / "detector.json").write_text(json.dumps(stale_scores))
    assert run("--rescore-only", "--evaluate-only").returncode == 2
    wrong_draws = run("--rescore-only", "--draws", "2")
    assert wrong_draws.returncode == 2 and "pass --draws 1" in wrong_draws.stderr
    rescore = run("--rescore-only")
    assert rescore.returncode == 0, rescore.stderr[-2000:]
    card5 = json.loads((out / "detector.json").read_text())
    for new, old in zip(card5["held_out"], card4["held_out"], strict=True):
        assert new["cleanlab_cv5"]["map"] == 0.123
        assert {k: new[k] for k in ("detector", "whole_run", "adapted", "members", "aum")} == \
            {k: old[k] for k in ("detector", "whole_run", "adapted", "members", "aum")}
        assert all(d["scored_epochs"] == new["epochs"] for d in new["draws"])   # no memorisation in 3 epochs
    for new, old in zip(card5["in_domain"], card4["in_domain"], strict=True):
        assert new["detector"] == old["detector"] and new["fine_tuned"]["map"] == 0.5 and new["aum"] == old["aum"]
    assert card5["length_study"] == card4["length_study"]
    assert card5["config"]["memorisation_guard"] is True and card5["rescored_datasets"] == ["digits"]
    assert card5["guard_check"] == card4["guard_check"]
    assert {k: v for k, v in card5.items() if k not in ("held_out", "in_domain", "length_study", "config",
                                                       "guard_check", "rescore_seconds", "rescored_datasets")} == \
        {k: v for k, v in stale_scores.items() if k not in ("held_out", "in_domain", "length_study", "config",
                                                            "guard_check")}
    after5 = torch.load(out / "detector.pt", weights_only=True)
    assert after5["config"]["memorisation_guard"] is True
    for a, b in zip(before["state_dicts"], after5["state_dicts"], strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)
    # draws that are not the card's (here: a card whose AUM numbers were changed) are refused, the card left as it was
    stale_scores["held_out"][0]["draws"][0]["aum"]["map"] -= 0.01
    (out / "detector.json").write_text(json.dumps(stale_scores))
    stale = run("--rescore-only")
    assert stale.returncode == 1 and "differ from the card's" in stale.stderr
    assert json.loads((out / "detector.json").read_text()) == stale_scores

    # --verify records the card's draws again and compares, writing nothing into the card's folder: on the machine
    # that made the card they are the same runs; a card whose verdict (detector above AUM) differs fails it
    (out / "detector.json").write_text(json.dumps(card5))
    files = {p.name: p.read_bytes() for p in out.iterdir()}
    assert run("--report", str(tmp_path / "r.json")).returncode == 2
    assert "asks for more" in run("--verify", "--draws", "2").stderr
    ok = run("--verify", "--report", str(tmp_path / "verify.json"))
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "2 of 2 settings reproduced exactly" in ok.stdout and "2 of 2 verdicts agree" in ok.stdout
    rep = json.loads((tmp_path / "verify.json").read_text())
    assert rep["cpu"] == describe_cpu() and [(r["noise"], r["rate"]) for r in rep["rows"]] == \
        [(r["noise"], r["rate"]) for r in card5["held_out"]]
    for r, old in zip(rep["rows"], card5["held_out"], strict=True):
        assert r["max_abs_diff"] == 0.0 and r["detector"] == old["detector"]["map"] and r["aum"] == old["aum"]["map"]
        assert [d["scored_epochs"] for d in r["draws"]] == [d["scored_epochs"] for d in old["draws"]]
    flipped = copy.deepcopy(card5)
    for r, mine in zip(flipped["held_out"], rep["rows"], strict=True):
        for d in r["draws"]:   # the card now claims the opposite of what this machine measures
            d["detector"]["map"], d["aum"]["map"] = (0.0, 1.0) if mine["above_aum"] else (1.0, 0.0)
    (out / "detector.json").write_text(json.dumps(flipped))
    files["detector.json"] = (out / "detector.json").read_bytes()
    bad = run("--verify")
    assert bad.returncode == 1 and "the card says otherwise" in bad.stdout and "0 of 2 verdicts agree" in bad.stdout
    assert {p.name: p.read_bytes() for p in out.iterdir()} == files
