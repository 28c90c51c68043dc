"""The command line: happy path on synthetic data and one-line errors on bad input."""
import csv
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
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


# ---------------------------------------------------------------- outputs that are inputs, locks, old runs
def _capture_argv(out, *extra):
    return ["capture", "--dataset", "synthetic", "--subset", "60", "--model", "mlp", "--epochs", "2", "--device",
            "cpu", "--batch-size", "16", "--quiet", "--no-cache", *extra, "--out", str(out)]


@pytest.mark.parametrize("link", ["same", "symlink", "hardlink"])
def test_detect_and_train_detector_refuse_an_output_that_is_an_input(link, run_dir, tmp_path, capsys):
    import os
    src = run_dir / "x" / "dynamics.npz"
    dyn = tmp_path / "d.npz"
    dyn.write_bytes(src.read_bytes())
    det = run_dir / "det.pt"
    before = dyn.read_bytes(), det.read_bytes()
    outs = {}
    for target in (dyn, det):
        outs[target] = {"same": target, "symlink": tmp_path / f"{target.stem}-link",
                        "hardlink": tmp_path / f"{target.stem}-hard"}[link]
        if link == "symlink":
            outs[target].symlink_to(target)
        elif link == "hardlink":
            os.link(target, outs[target])
    for argv, given, flag in (
            (["detect", "--dynamics", str(dyn)], dyn, "--dynamics"),
            (["detect", "--dynamics", str(src), "--detector", str(det)], det, "--detector"),
            (["train-detector", "--dynamics", str(src), str(dyn), "--epochs", "1", "--quiet"], dyn, "--dynamics")):
        rc = main(argv + ["--out", str(outs[given])])
        err = _err_line(capsys)
        assert rc == 2 and f"--out {outs[given]} is the file given as {flag} {given}" in err
    assert (dyn.read_bytes(), det.read_bytes()) == before


def test_a_second_command_into_a_folder_in_use_is_refused(tmp_path, capsys):
    from mislabel.cli_outputs import locked
    out = tmp_path / "r"
    with locked(tmp_path / "." / "r"):            # another command holds it (another spelling of the path)
        rc = main(_capture_argv(out))
    err = _err_line(capsys)
    assert rc == 2 and f"--out {out} is in use by another mislabel command" in err
    assert not out.exists()
    assert main(_capture_argv(out)) == 0          # free again


def test_capture_again_refuses_a_folder_holding_files_made_from_the_old_run(run_dir, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(_capture_argv(out)) == 0
    assert main(["detect", "--dynamics", str(out / "dynamics.npz"), "--out", str(out / "ranking.csv")]) == 0
    (out / "model.pt").write_bytes((run_dir / "det.pt").read_bytes())
    (out / "notes.csv").write_text("mine,not,scores\n")
    capsys.readouterr()
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(_capture_argv(out, "--seed", "1")) == 2
    err = _err_line(capsys)
    assert f"--out {out} holds model.pt, ranking.csv made from the run captured there earlier" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before   # nothing replaced
    (out / "model.pt").unlink()
    (out / "ranking.csv").unlink()
    assert main(_capture_argv(out, "--seed", "1")) == 0 and (out / "notes.csv").read_text() == "mine,not,scores\n"


def test_capture_says_when_it_read_the_cache(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MISLABEL_CACHE", str(tmp_path / "cache"))
    argv = [a for a in _capture_argv(tmp_path / "r") if a != "--no-cache"]
    assert main(argv) == 0
    assert "cache" not in capsys.readouterr().out
    assert main(argv) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "cache" in ln]
    assert len(lines) == 1 and lines[0].startswith(f"read from the cache ({tmp_path / 'cache'}")


def test_detect_refuses_labels_beyond_the_recorded_classes(run_dir, tmp_path, capsys):
    from mislabel.dynamics import Dynamics
    dyn = Dynamics.load(run_dir / "x" / "dynamics.npz")
    C = dyn.meta["num_classes"]
    labels = dyn.labels.copy()
    labels[3] = 10 ** 6                        # would make the detector allocate a 10**6 x 10**6 table
    bad = tmp_path / "bad.npz"
    Dynamics(dyn.probs, labels, dyn.is_flipped, dyn.margins, None, dyn.meta, dyn.runner_up).save(bad)
    rc = main(["detect", "--dynamics", str(bad), "--out", str(tmp_path / "s.csv")])
    err = _err_line(capsys)
    assert rc == 2 and f"holds class {10 ** 6} but records {C} classes" in err
    assert not (tmp_path / "s.csv").exists()


def test_absurd_epochs_are_refused_before_training(tmp_path, capsys):
    rc = main(_capture_argv(tmp_path / "r")[:-1] + [str(tmp_path / "r"), "--epochs", "1000000000"])
    err = _err_line(capsys)
    assert rc == 2 and "epochs=1000000000 is too many to record" in err and "GiB" in err
    assert not (tmp_path / "r").exists()


def test_ctrl_c_exits_130_with_one_line(tmp_path, capsys, monkeypatch):
    from mislabel import pipeline

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(pipeline, "capture", interrupted)
    rc = main(_capture_argv(tmp_path / "r"))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 130 and len(err) == 1 and err[0].startswith("mislabel capture: interrupted")


def _interrupt_after(monkeypatch, epochs: int):
    """Ctrl-C right after the checkpoint of ``epochs`` complete epochs is written."""
    from mislabel.train.loop import Training
    real = Training.save_checkpoint

    def save_then_stop(self, epoch, history):
        real(self, epoch, history)
        if epoch == epochs:
            raise KeyboardInterrupt
    monkeypatch.setattr(Training, "save_checkpoint", save_then_stop)


def test_an_interrupted_capture_resumes_bit_identically(tmp_path, capsys, monkeypatch):
    from mislabel.train import checkpoint
    whole, out = tmp_path / "whole", tmp_path / "r"
    assert main(_capture_argv(whole, "--epochs", "4")) == 0
    with monkeypatch.context() as m:
        _interrupt_after(m, 2)
        assert main(_capture_argv(out, "--epochs", "4")) == 130
    assert (out / ".checkpoint" / "checkpoint.pt").is_file()
    # a checkpoint of other settings is refused, and kept
    capsys.readouterr()
    assert main(_capture_argv(out, "--epochs", "4", "--seed", "1")) == 2
    err = _err_line(capsys)
    assert "belongs to another run" in err and "seed 0 there vs 1 now" in err
    assert (out / ".checkpoint" / "checkpoint.pt").is_file()
    resumed = []
    real = checkpoint.restore
    monkeypatch.setattr(checkpoint, "restore", lambda t, state: (resumed.append(state["epoch"]), real(t, state)))
    assert main(_capture_argv(out, "--epochs", "4")) == 0
    assert resumed == [2]
    assert sorted(p.name for p in out.iterdir()) == ["dynamics.npz", "history.csv", "meta.json"]
    for name in ("dynamics.npz", "meta.json"):
        assert (out / name).read_bytes() == (whole / name).read_bytes()
    drop_seconds = lambda p: [ln.rsplit(",", 1)[0] for ln in p.read_text().splitlines()]  # noqa: E731
    assert (out / "history.csv").read_text().splitlines()[0].endswith(",seconds")
    assert drop_seconds(out / "history.csv") == drop_seconds(whole / "history.csv")


def test_detect_with_a_method_of_the_registry(run_dir, tmp_path, capsys):
    from mislabel import baselines
    from mislabel.dynamics import Dynamics

    x = run_dir / "x" / "dynamics.npz"
    assert main(["detect", "--dynamics", str(x), "--method", "aum", "--out", str(tmp_path / "aum.csv")]) == 0
    rows = list(csv.DictReader(open(tmp_path / "aum.csv")))
    # the ranking is AUM's (mislabel.methods' aum is -mean margin, as baselines.aum)
    want = baselines.aum(Dynamics.load(x))
    got = np.array([float(r["score"]) for r in sorted(rows, key=lambda r: int(r["index"]))])
    np.testing.assert_allclose(got, want, atol=1e-6)
    capsys.readouterr()
    # a method that trains on the images, or a detector checkpoint beside another method, is one clear line
    for argv, name in ((["--method", "cleanlab"], "cleanlab"), (["--method", "aum", "--detector", "d.pt"], "--detector"),
                       (["--method", "bogus"], "bogus")):
        rc = main(["detect", "--dynamics", str(x), "--out", str(tmp_path / "s.csv"), *argv])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and name in err and len(err.splitlines()) == 1
    assert not (tmp_path / "s.csv").exists()
