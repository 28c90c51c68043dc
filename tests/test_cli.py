"""The command line: happy path on synthetic data and one-line errors on bad input."""
import csv
import json
import subprocess
import sys

import pytest

from mislabel.cli import main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli")
    rc = main(["capture", "--dataset", "synthetic", "--subset", "600", "--noise", "symmetric", "--rate", "0.3",
               "--model", "mlp", "--epochs", "6", "--lr", "0.1", "--batch-size", "32", "--quiet", "--no-cache",
               "--out", str(out / "x")])
    assert rc == 0
    return out


def test_capture_writes_files(run_dir):
    x = run_dir / "x"
    assert {p.name for p in x.iterdir()} == {"dynamics.npz", "meta.json", "history.csv"}
    meta = json.loads((x / "meta.json").read_text())
    assert meta["dataset"] == "synthetic" and meta["epochs"] == 6 and meta["rate"] == 0.3
    assert (x / "history.csv").read_text().splitlines()[0].startswith("epoch,")


def test_train_detect_evaluate(run_dir, capsys):
    x = run_dir / "x"
    assert main(["train-detector", "--dynamics", str(x / "dynamics.npz"), "--epochs", "3", "--quiet",
                 "--out", str(x.parent / "det.pt")]) == 0
    assert main(["detect", "--dynamics", str(x / "dynamics.npz"), "--detector", str(x.parent / "det.pt"),
                 "--out", str(x.parent / "scores.csv")]) == 0
    rows = list(csv.DictReader(open(x.parent / "scores.csv")))
    assert len(rows) == 600 and list(rows[0]) == ["rank", "index", "given_label", "score"]
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    # how many samples the detector flags, counted from the ranking it wrote
    flagged = sum(s >= 0.5 for s in scores)
    assert f"{flagged} samples ({flagged / 600:.1%}) score 0.5 or more" in capsys.readouterr().out
    assert main(["evaluate", "--scores", str(x.parent / "scores.csv"), "--dynamics", str(x / "dynamics.npz")]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["k"] == 180 and res["map"] > 0.3  # better than the 0.3 of a random ranking


def test_train_detector_ensemble(run_dir):
    from mislabel.detector import NoiseDetector
    x = run_dir / "x"
    assert main(["train-detector", "--dynamics", str(x / "dynamics.npz"), "--epochs", "1", "--members", "2",
                 "--quiet", "--out", str(x.parent / "ens.pt")]) == 0
    det = NoiseDetector.load(x.parent / "ens.pt")
    assert det.config["members"] == 2 and [st["seed"] for st in det.info["stages"]] == [0, 1]


@pytest.mark.parametrize("argv, msg", [
    (["capture", "--dataset", "synthetic", "--rate", "1.2", "--out", "{tmp}/a"], "noise rate"),
    (["capture", "--dataset", "synthetic", "--model", "vgg", "--epochs", "1", "--out", "{tmp}/a"], "unknown model"),
    (["detect", "--dynamics", "{tmp}/missing.npz", "--out", "{tmp}/s.csv"], "no dynamics file"),
    (["evaluate", "--scores", "{tmp}/bad.csv", "--dynamics", "{tmp}/missing.npz"], "no dynamics file"),
])
def test_bad_input_one_line_error(argv, msg, tmp_path, capsys):
    rc = main([a.replace("{tmp}", str(tmp_path)) for a in argv] + (["--quiet", "--no-cache"] if argv[0] == "capture" else []))
    err = capsys.readouterr().err.strip()
    assert rc == 2 and msg in err and len(err.splitlines()) == 1
    assert not (tmp_path / "a").exists() and not (tmp_path / "s.csv").exists()


def test_detect_rejects_foreign_detector(run_dir, tmp_path, capsys):
    (tmp_path / "det.pt").write_text("not a checkpoint")
    rc = main(["detect", "--dynamics", str(run_dir / "x" / "dynamics.npz"), "--detector", str(tmp_path / "det.pt"),
               "--out", str(tmp_path / "s.csv")])
    assert rc == 2 and "not a loadable detector" in capsys.readouterr().err
    assert not (tmp_path / "s.csv").exists()


def test_module_help():
    out = subprocess.run([sys.executable, "-m", "mislabel", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "capture" in out.stdout and "train-detector" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "mislabel", "capture"], capture_output=True, text=True)
    assert bad.returncode != 0 and "--out" in bad.stderr


def test_detect_dynamics_of_version_0_1(run_dir, tmp_path, capsys):
    """Files saved before 0.2 (no runner-up classes) are refused by the shipped detector, which reads the
    runner-up class, with one clear line; a detector that does not read it still scores them."""
    import mislabel
    dyn = mislabel.Dynamics.load(run_dir / "x" / "dynamics.npz")
    assert dyn.runner_up is not None
    old = mislabel.Dynamics(dyn.probs, dyn.labels, dyn.is_flipped, dyn.margins)   # as saved before 0.2
    old.save(tmp_path / "old.npz")
    mislabel.NoiseDetector(hidden_size=4, features="prob+margin+rank").fit(
        dyn, epochs=1, progress=False).save(tmp_path / "rank.pt")
    assert main(["detect", "--dynamics", str(tmp_path / "old.npz"), "--detector", str(tmp_path / "rank.pt"),
                 "--top", "5", "--out", str(tmp_path / "top.csv")]) == 0
    assert len(list(csv.DictReader(open(tmp_path / "top.csv")))) == 5
    capsys.readouterr()
    rc = main(["detect", "--dynamics", str(tmp_path / "old.npz"), "--out", str(tmp_path / "s.csv")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "runner-up" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "s.csv").exists()


def test_detect_says_when_the_memorisation_guard_scored_early_epochs(tmp_path, capsys):
    from mislabel.detector import NoiseDetector
    from test_core import _memorised_world   # toy runs whose classifier learns the wrong labels after epoch 5
    det = NoiseDetector(hidden_size=16, memorisation_guard=True).fit(
        [_memorised_world(seed=s, memorise=False)[0] for s in (1, 2)], epochs=6, lr=0.05, progress=False)
    det.save(tmp_path / "g.pt")
    _memorised_world(seed=0)[0].save(tmp_path / "dyn.npz")
    assert main(["detect", "--dynamics", str(tmp_path / "dyn.npz"), "--detector", str(tmp_path / "g.pt"),
                 "--out", str(tmp_path / "s.csv")]) == 0
    assert "scored the first 5 of 12 epochs" in capsys.readouterr().out
