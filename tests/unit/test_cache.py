"""The on-disk cache: keys that change with the code, damaged entries recomputed, an unwritable folder
skipped, and one entry when two processes compute the same key."""
import json
import multiprocessing as mp
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from mislabel import cache, pipeline


def _writer(calls: Path):
    """A compute that writes one file and counts its calls (appends a line to ``calls``)."""
    def compute(folder):
        with open(calls, "a") as fh:
            fh.write("x\n")
        (folder / "value.txt").write_text("42")
    return compute


def _calls(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_package_digest_changes_with_any_file_and_library_stamp_uses_it(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "weights").mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1\n")
    (pkg / "weights" / "w.pt").write_bytes(b"\x00\x01")
    first = cache.package_digest(pkg)
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"bytecode")
    assert cache.package_digest(pkg) == first                  # bytecode is not code
    (pkg / "weights" / "w.pt").write_bytes(b"\x00\x02")
    second = cache.package_digest(pkg)
    assert second != first                                      # shipped weights count
    (pkg / "a.py").write_text("x = 2\n")
    assert cache.package_digest(pkg) not in (first, second)    # and so does the source
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    try:
        import library_stamp
    finally:
        sys.path.pop(0)
    assert library_stamp.library_hash(pkg) == cache.package_digest(pkg)


def test_key_holds_the_library_digest(monkeypatch):
    params = {"epochs": 3, "model": "mlp"}
    before = cache.key_of(params)
    assert before == cache.key_of(dict(params))
    monkeypatch.setattr(cache, "library_digest", lambda: "0" * 64)   # other library code, same settings
    assert cache.key_of(params) != before


def test_changed_code_misses_the_entry_of_the_old_code(tmp_path, monkeypatch):
    calls = tmp_path / "calls"
    cache.fetch("t", {"a": 1}, _writer(calls), cache_dir=tmp_path / "c")
    cache.fetch("t", {"a": 1}, _writer(calls), cache_dir=tmp_path / "c")
    assert _calls(calls) == 1
    monkeypatch.setattr(cache, "library_digest", lambda: "f" * 64)
    cache.fetch("t", {"a": 1}, _writer(calls), cache_dir=tmp_path / "c")
    assert _calls(calls) == 2


def test_a_hit_says_so_in_one_line(tmp_path, capsys):
    calls = tmp_path / "calls"
    first = cache.fetch("t", {"a": 1}, _writer(calls), cache_dir=tmp_path, progress=True)
    assert not first.hit and capsys.readouterr().err == ""
    again = cache.fetch("t", {"a": 1}, _writer(calls), cache_dir=tmp_path, progress=True)
    err = capsys.readouterr().err.splitlines()
    assert again.hit and again.folder == first.folder and _calls(calls) == 1
    assert len(err) == 1 and "cache hit" in err[0] and str(first.folder) in err[0]


@pytest.mark.parametrize("damage", ["truncate", "delete", "garble", "manifest"])
def test_a_damaged_entry_is_computed_again_with_a_warning(damage, tmp_path):
    calls = tmp_path / "calls"
    folder = cache.cached("t", {"a": 1}, _writer(calls), cache_dir=tmp_path / "c")
    f = folder / "value.txt"
    if damage == "truncate":
        f.write_text("4")
    elif damage == "delete":
        f.unlink()
    elif damage == "garble":
        f.write_text("43")                      # same size, other bytes
    else:
        (folder / cache.MANIFEST).write_text("{not json")
    with pytest.warns(UserWarning, match="damaged"):
        again = cache.cached("t", {"a": 1}, _writer(calls), cache_dir=tmp_path / "c")
    assert again == folder and (again / "value.txt").read_text() == "42" and _calls(calls) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # now whole: a plain hit
        assert cache.cached("t", {"a": 1}, _writer(calls), cache_dir=tmp_path / "c") == folder
    assert _calls(calls) == 2


def test_an_unwritable_cache_folder_falls_back_with_a_warning_naming_mislabel_cache(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    calls = tmp_path / "calls"
    with pytest.warns(UserWarning, match="MISLABEL_CACHE"):
        got = cache.fetch("t", {"a": 1}, _writer(calls), cache_dir=blocker / "cache",
                          load=lambda f: (f / "value.txt").read_text())
    assert got.value == "42" and got.folder is None and not got.hit and _calls(calls) == 1


def test_leftovers_of_a_killed_computation_are_removed(tmp_path):
    root = tmp_path / "c"
    key = cache.key_of({"a": 1})
    left = root / "t" / f".{key}.abc123"
    left.mkdir(parents=True)
    (left / "value.txt").write_text("half")
    folder = cache.cached("t", {"a": 1}, _writer(tmp_path / "calls"), cache_dir=root)
    assert not left.exists() and sorted(p.name for p in folder.parent.iterdir()) == [key]


def _slow_fetch(root: str, calls: str, out: str) -> None:
    def compute(folder):
        with open(calls, "a") as fh:
            fh.write("x\n")
        (folder / "part1.txt").write_text("a" * 1000)
        time.sleep(1.0)                          # the other process tries meanwhile
        (folder / "part2.txt").write_text("b" * 1000)
    got = cache.fetch("t", {"a": 1}, compute, cache_dir=root,
                      load=lambda f: (f / "part1.txt").read_text() + (f / "part2.txt").read_text())
    Path(out).write_text(json.dumps({"value": got.value, "folder": str(got.folder), "hit": got.hit}))


def test_two_processes_computing_one_key_make_one_correct_entry(tmp_path):
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_slow_fetch, args=(str(tmp_path / "c"), str(tmp_path / "calls"),
                                                    str(tmp_path / f"out{i}.json"))) for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    outs = [json.loads((tmp_path / f"out{i}.json").read_text()) for i in range(2)]
    assert _calls(tmp_path / "calls") == 1                                  # computed once
    assert outs[0]["value"] == outs[1]["value"] == "a" * 1000 + "b" * 1000  # no half-written read
    assert outs[0]["folder"] == outs[1]["folder"] and sorted(o["hit"] for o in outs) == [False, True]
    entries = list((tmp_path / "c" / "t").iterdir())
    assert len(entries) == 1 and sorted(p.name for p in entries[0].iterdir()) == [
        "manifest.json", "params.json", "part1.txt", "part2.txt"]


@pytest.mark.parametrize("name, damage", [("dynamics.npz", "truncate"), ("labels.npz", "delete"),
                                          ("history.csv", "garble")])
def test_a_damaged_capture_is_captured_again(name, damage, tmp_path):
    kw = dict(subset=60, model="mlp", epochs=2, test_subset=0, progress=False, cache_dir=tmp_path)
    cap = pipeline.capture("synthetic", **kw)
    f = cap.folder / name
    if damage == "truncate":
        f.write_bytes(f.read_bytes()[:100])
    elif damage == "delete":
        f.unlink()
    else:
        f.write_text(f.read_text().replace(",", ";", 3))
    with pytest.warns(UserWarning, match="damaged"):
        again = pipeline.capture("synthetic", **kw)
    assert not again.cache_hit and again.folder == cap.folder
    np.testing.assert_array_equal(again.dynamics.probs, cap.dynamics.probs)
    np.testing.assert_array_equal(again.clean_labels, cap.clean_labels)
    assert pipeline.capture("synthetic", **kw).cache_hit


def test_an_interrupted_cached_capture_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    from mislabel.train import checkpoint
    from mislabel.train.loop import Training
    kw = dict(subset=60, model="mlp", epochs=3, batch_size=16, test_subset=0, progress=False)
    whole = pipeline.capture("synthetic", cache=False, **kw)
    real = Training.save_checkpoint

    def save_then_stop(self, epoch, history):
        real(self, epoch, history)
        if epoch == 2:
            raise KeyboardInterrupt
    with monkeypatch.context() as m:
        m.setattr(Training, "save_checkpoint", save_then_stop)
        with pytest.raises(KeyboardInterrupt):
            pipeline.capture("synthetic", cache_dir=tmp_path, **kw)
    assert [p.name for p in (tmp_path / "capture").iterdir()] == []        # no entry, no half-made one
    runs = list((tmp_path / ".runs").iterdir())
    assert len(runs) == 1 and (runs[0] / checkpoint.CHECKPOINT).is_file()
    resumed = []
    real_restore = checkpoint.restore
    monkeypatch.setattr(checkpoint, "restore",
                        lambda t, state: (resumed.append(state["epoch"]), real_restore(t, state)))
    cap = pipeline.capture("synthetic", cache_dir=tmp_path, **kw)
    assert resumed == [2] and not cap.cache_hit and list((tmp_path / ".runs").iterdir()) == []
    np.testing.assert_array_equal(cap.dynamics.probs, whole.dynamics.probs)
    np.testing.assert_array_equal(cap.dynamics.margins, whole.dynamics.margins)
    assert cap.history["train_loss"] == whole.history["train_loss"]
