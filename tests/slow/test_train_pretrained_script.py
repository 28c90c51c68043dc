"""scripts/train_pretrained.py, which regenerates the shipped detector and its model card, end to end at
tiny sizes (--quick): a full run, each mode that measures one part of the card again, and the refusals of
wrong combinations (some twenty runs of the script, about 2 minutes)."""
import copy
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from mislabel._utils import describe_cpu


def test_train_pretrained_script_quick_and_in_domain_only(tmp_path):
    """The regeneration script runs end to end (tiny sizes), and --in-domain-only adds the in-domain
    reference to an existing card without touching the weights."""
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
