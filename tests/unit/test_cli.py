"""The command line: happy path on synthetic data and one-line errors on bad input."""
import csv
import json
import subprocess
import sys
import warnings
from pathlib import Path

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


def _err_line(capsys):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_detect_unreadable_dynamics_is_one_line(tmp_path, capsys):
    import numpy as np
    np.save(tmp_path / "arr.npy", np.zeros((3, 4)))   # a plain array, not a dynamics .npz
    rc = main(["detect", "--dynamics", str(tmp_path / "arr.npy"), "--out", str(tmp_path / "s.csv")])
    err = _err_line(capsys)
    assert rc == 2 and str(tmp_path / "arr.npy") in err and "Traceback" not in err
    assert not (tmp_path / "s.csv").exists()


@pytest.mark.parametrize("exc", [TypeError("'numpy.ndarray' object does not support the context manager protocol"),
                                 KeyError("probs")])
def test_read_errors_of_user_files_are_one_line(exc, run_dir, tmp_path, capsys, monkeypatch):
    from mislabel.dynamics import Dynamics

    def broken(path):
        raise exc
    monkeypatch.setattr(Dynamics, "load", broken)
    rc = main(["evaluate", "--scores", str(tmp_path / "s.csv"), "--dynamics", str(run_dir / "x" / "dynamics.npz")])
    err = _err_line(capsys)
    assert rc == 2 and f"cannot read {run_dir / 'x' / 'dynamics.npz'} as a dynamics file" in err
    assert f"{type(exc).__name__}: {exc}" in err   # the exception's own text is kept


def test_capture_refuses_cuda_without_cuda(tmp_path, capsys, monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rc = main(["capture", "--dataset", "synthetic", "--subset", "50", "--model", "mlp", "--epochs", "1",
               "--device", "cuda", "--quiet", "--no-cache", "--out", str(tmp_path / "r")])
    err = _err_line(capsys)
    assert rc == 2 and "CUDA is not available on this machine" in err and "--device cpu" in err
    assert not (tmp_path / "r").exists()
    rc = main(["capture", "--dataset", "synthetic", "--device", "gpu", "--out", str(tmp_path / "r")])
    assert rc == 2 and "unknown device 'gpu'" in _err_line(capsys)


def test_capture_passes_amp_on(tmp_path, monkeypatch):
    from mislabel import pipeline
    seen = []
    real = pipeline.capture
    monkeypatch.setattr(pipeline, "capture", lambda *args, **kw: (seen.append(kw["amp"]), real(*args, **kw))[1])
    for flag in ([], ["--amp"]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # amp on a CPU without native bfloat16: float32, with a warning
            rc = main(["capture", "--dataset", "synthetic", "--subset", "60", "--model", "mlp", "--epochs", "1",
                       "--device", "cpu", "--quiet", "--no-cache", *flag, "--out", str(tmp_path / f"r{len(flag)}")])
        assert rc == 0 and (tmp_path / f"r{len(flag)}" / "dynamics.npz").exists()
    assert seen == [False, True]


@pytest.mark.parametrize("failing", ["dynamics.npz", "history.csv"])
def test_capture_replaces_its_files_all_or_none(failing, tmp_path, capsys, monkeypatch):
    """A write that fails midway leaves the previous run's files whole (never a folder mixing two runs)
    and no temporary folder; a run that succeeds replaces all three and leaves the user's own files alone."""
    import os
    from mislabel import pipeline
    from mislabel.dynamics import Dynamics
    out = tmp_path / "r"
    argv = ["capture", "--dataset", "synthetic", "--subset", "60", "--model", "mlp", "--device", "cpu", "--quiet",
            "--no-cache", "--out", str(out)]
    assert main(argv + ["--epochs", "1"]) == 0
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask
    (out / "notes.txt").write_text("mine")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(before) == {"dynamics.npz", "meta.json", "history.csv", "notes.txt"}

    def disk_full(*args):
        Path(args[-1]).write_text("epoch,tra")   # half of the file is out when the disk fills up
        raise OSError(28, "No space left on device")
    real_capture = pipeline.capture

    def capture_then_fill_disk(*args, **kwargs):   # the training itself goes well
        cap = real_capture(*args, **kwargs)
        if failing == "dynamics.npz":
            monkeypatch.setattr(Dynamics, "save", disk_full)
        else:
            monkeypatch.setattr(pipeline, "write_history", disk_full)
        return cap
    monkeypatch.setattr(pipeline, "capture", capture_then_fill_disk)
    capsys.readouterr()
    assert main(argv + ["--epochs", "2"]) == 2
    assert _err_line(capsys) == f"mislabel capture: error: cannot write {out / failing} (No space left on device)"
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before   # the first run whole, no temporary folder
    assert [p.name for p in tmp_path.iterdir()] == ["r"]
    assert main(argv[:-1] + [str(tmp_path / "new" / "r"), "--epochs", "2"]) == 2   # a first run: no folder at all
    assert [p.name for p in tmp_path.iterdir()] == ["r"]
    monkeypatch.undo()
    assert main(argv + ["--epochs", "2"]) == 0
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(after) == set(before) and after["notes.txt"] == b"mine"
    assert all(after[name] != before[name] for name in ("dynamics.npz", "meta.json", "history.csv"))
    assert Dynamics.load(out / "dynamics.npz").num_epochs == 2 and json.loads(after["meta.json"])["epochs"] == 2
    assert len((out / "history.csv").read_text().splitlines()) == 1 + 2


@pytest.mark.parametrize("flipped, msg", [
    (False, "marks no sample as flipped (is_flipped is all False)"),
    (True, "marks every sample as flipped (is_flipped is all True)"),
])
def test_evaluate_refuses_dynamics_without_both_kinds_of_labels(flipped, msg, run_dir, tmp_path, capsys):
    """Without flipped (or without clean) samples the metrics are NaN, which is no JSON: one clear error."""
    import numpy as np
    import mislabel
    dyn = mislabel.Dynamics.load(run_dir / "x" / "dynamics.npz")
    mislabel.Dynamics(dyn.probs, dyn.labels, np.full(dyn.num_samples, flipped), dyn.margins, None, dyn.meta,
                      dyn.runner_up).save(tmp_path / "d.npz")
    with open(tmp_path / "s.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["rank", "index", "given_label", "score"]]
                                 + [[r + 1, *row] for r, row in enumerate(_scores_rows(dyn, "whole"))])
    capsys.readouterr()
    rc = main(["evaluate", "--scores", str(tmp_path / "s.csv"), "--dynamics", str(tmp_path / "d.npz")])
    out, err = capsys.readouterr()
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert f"mislabel evaluate: error: {tmp_path / 'd.npz'} {msg}: evaluate needs known flips" in err
    assert "capture --rate" in err


@pytest.mark.parametrize("argv", [
    ["detect", "--top", "-3"], ["detect", "--top", "0"], ["detect", "--top", "x"],
    ["train-detector", "--batch-size", "0"], ["train-detector", "--seq-len", "0"], ["train-detector", "--epochs", "0"],
    ["train-detector", "--members", "0"], ["capture", "--subset", "0"], ["capture", "--epochs", "-1"],
    ["capture", "--batch-size", "0"],
])
def test_count_options_must_be_positive(argv, tmp_path, capsys):
    extra = {"detect": ["--dynamics", "d.npz"], "train-detector": ["--dynamics", "d.npz"], "capture": []}[argv[0]]
    with pytest.raises(SystemExit) as info:
        main(argv + extra + ["--out", str(tmp_path / "o")])
    err = _err_line(capsys)
    assert info.value.code == 2 and f"argument {argv[1]}: " in err and "positive integer" in err
    assert not (tmp_path / "o").exists()


def test_detect_counts_and_adapt_hint(run_dir, tmp_path, capsys, monkeypatch):
    """detect says how many samples it scored and wrote, and hints to adapt only when it flags far fewer
    samples than the share of wrong labels (here 180 of 600 flipped, 30%)."""
    import numpy as np
    import mislabel
    from mislabel.detector import NoiseDetector
    dyn_path, out = str(run_dir / "x" / "dynamics.npz"), str(tmp_path / "s.csv")

    def fake_view(flagged):
        scores = np.linspace(0.1, 0.4, 600)
        scores[:flagged] = 0.9
        return lambda self, dyn: (dyn.num_epochs, scores)
    monkeypatch.setattr(NoiseDetector, "_view", fake_view(155))   # 25.8%: about as many as flipped
    assert main(["detect", "--dynamics", dyn_path, "--top", "5", "--out", out]) == 0
    text = capsys.readouterr().out
    assert "600 samples scored, top 5 written" in text and "ranked" not in text
    assert "155 samples (25.8%) score 0.5 or more (30.0% of labels flipped in this run)" in text
    assert "unsure" not in text and "NoiseDetector.adapt" not in text
    assert main(["detect", "--dynamics", dyn_path, "--out", out]) == 0
    assert "600 samples scored, all written" in capsys.readouterr().out
    monkeypatch.setattr(NoiseDetector, "_view", fake_view(30))    # 5%: far fewer than 30%
    assert main(["detect", "--dynamics", dyn_path, "--out", out]) == 0
    text = capsys.readouterr().out
    assert "30 samples (5.0%) score 0.5 or more, far fewer than the 30.0% of labels flipped" in text
    assert "NoiseDetector.adapt" in text
    # without known flips the user's expectation decides
    dyn = mislabel.Dynamics.load(dyn_path)
    mislabel.Dynamics(dyn.probs, dyn.labels, None, dyn.margins, None, dyn.meta, dyn.runner_up).save(tmp_path / "u.npz")
    assert main(["detect", "--dynamics", str(tmp_path / "u.npz"), "--out", out]) == 0
    assert "NoiseDetector.adapt" not in capsys.readouterr().out
    assert main(["detect", "--dynamics", str(tmp_path / "u.npz"), "--expected-rate", "0.2", "--out", out]) == 0
    assert "far fewer than the 20.0% of wrong labels you expect" in capsys.readouterr().out
    assert main(["detect", "--dynamics", str(tmp_path / "u.npz"), "--expected-rate", "0.08", "--out", out]) == 0
    assert "NoiseDetector.adapt" not in capsys.readouterr().out


def _scores_rows(dyn, kind):
    """(index, given_label, score) rows of a scores CSV for ``dyn``, broken as ``kind`` says."""
    n = dyn.num_samples
    rows = [[i, int(dyn.labels[i]), f"{1 - i / n:.6f}"] for i in range(n)]
    if kind == "duplicate":
        rows[10][0] = 7
    elif kind == "text index":
        rows[1][0] = "abc"
    elif kind == "nan score":
        rows[3][2] = "nan"
    elif kind == "top":
        rows = rows[100:105]
    elif kind == "smaller run":
        rows = rows[:300]
    elif kind == "larger run":
        rows.append([n, 0, "0.5"])
    elif kind == "other labels":
        rows = [[i, (g + 1) % 10, s] for i, g, s in rows]
    return rows


@pytest.mark.parametrize("kind, msg", [
    ("duplicate", "lists sample index 7 twice (lines 9 and 12)"),
    ("text index", "line 3: index 'abc' is not an integer; expected a scores CSV written by `mislabel detect`"),
    ("nan score", "line 5: score 'nan' is not a finite number"),
    ("top", "scores only 5 of the 600 samples"),
    ("smaller run", "scores samples 0 to 299 only, as written for a run of 300 samples"),
    ("larger run", "sample index 600 is beyond the 600 samples"),
    ("other labels", "gives other labels than"),
])
def test_evaluate_rejects_foreign_scores(kind, msg, run_dir, tmp_path, capsys):
    import mislabel
    dyn_path = run_dir / "x" / "dynamics.npz"
    dyn = mislabel.Dynamics.load(dyn_path)
    with open(tmp_path / "s.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["rank", "index", "given_label", "score"])
        w.writerows([r + 1, *row] for r, row in enumerate(_scores_rows(dyn, kind)))
    rc = main(["evaluate", "--scores", str(tmp_path / "s.csv"), "--dynamics", str(dyn_path)])
    err = _err_line(capsys)
    assert rc == 2 and msg in err and str(tmp_path / "s.csv") in err


def test_evaluate_accepts_a_whole_ranking(run_dir, tmp_path, capsys):
    import mislabel
    dyn = mislabel.Dynamics.load(run_dir / "x" / "dynamics.npz")
    with open(tmp_path / "s.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["rank", "index", "given_label", "score"]]
                                 + [[r + 1, *row] for r, row in enumerate(_scores_rows(dyn, "whole"))])
    dyn_path = str(run_dir / "x" / "dynamics.npz")
    assert main(["evaluate", "--scores", str(tmp_path / "s.csv"), "--dynamics", dyn_path]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 600


@pytest.mark.parametrize("scores", ["binary", "missing", "folder"])
def test_evaluate_names_unreadable_scores_file(scores, run_dir, tmp_path, capsys):
    path = {"binary": run_dir / "x" / "dynamics.npz", "missing": tmp_path / "none.csv", "folder": tmp_path}[scores]
    rc = main(["evaluate", "--scores", str(path), "--dynamics", str(run_dir / "x" / "dynamics.npz")])
    err = _err_line(capsys)
    assert rc == 2 and str(path) in err and "codec" not in err
    assert ("written by `mislabel detect`" in err) if scores != "missing" else ("no scores file" in err)


@pytest.mark.parametrize("command", ["detect", "train-detector"])
def test_out_that_is_a_folder(command, run_dir, tmp_path, capsys):
    (tmp_path / "out").mkdir()
    rc = main([command, "--dynamics", str(run_dir / "x" / "dynamics.npz"), "--out", str(tmp_path / "out")])
    err = _err_line(capsys)
    assert rc == 2 and f"--out {tmp_path / 'out'} is a folder" in err and ".tmp" not in err
    assert list((tmp_path / "out").iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
