"""The shipped detector: loads with weights_only=True and scores exactly like an independent reference."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import mislabel
from mislabel import baselines, metrics
from mislabel.book import recipe
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
