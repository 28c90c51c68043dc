"""DynamicsRecorder / Dynamics on mistaken or unusual input: one clear error or warning, nothing left half-written."""
from __future__ import annotations

import gc
import json
import struct
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import mislabel.dynamics.npy_appender as npy_appender_module
from mislabel.dynamics import Dynamics, DynamicsRecorder

N, C = 6, 3
LABELS = torch.tensor([0, 1, 2, 0, 1, 2])


def _logits(seed: int, n: int = N, c: int = C) -> torch.Tensor:
    return 3 * torch.randn(n, c, generator=torch.Generator().manual_seed(seed))


def _softmax_given(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """Reference: the given-label softmax probability, in float64."""
    z = logits.double().numpy()
    e = np.exp(z - z.max(1, keepdims=True))
    return (e[np.arange(len(z)), labels.numpy()] / e.sum(1)).astype(np.float32)


def _run(full_path, seed: int, epochs: int = 3) -> DynamicsRecorder:
    rec = DynamicsRecorder(N, num_classes=C, full_path=full_path)
    for t in range(epochs):
        rec.update(_logits(seed * 100 + t), LABELS, torch.arange(N))
        rec.next_epoch()
    return rec


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# ------------------------------------------------------------ full_path reuse
def test_reused_full_path_keeps_the_earlier_file_until_result(tmp_path):
    path = tmp_path / "full.npy"
    a = _run(path, seed=1).result()
    a.save(tmp_path / "a.npz")
    a_full = np.array(a.full)
    # a second run on the same path: while it records (and if it dies), run A's file is untouched
    rec = _run(path, seed=2, epochs=2)
    np.testing.assert_array_equal(np.asarray(a.full), a_full)        # A's live memory map still reads A's data
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(Dynamics.load(tmp_path / "a.npz").full, a_full)
    del rec
    gc.collect()                                                       # B dropped unfinished: its temp file goes
    assert _leftovers(tmp_path) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["a.npz", "full.npy"]
    np.testing.assert_array_equal(Dynamics.load(tmp_path / "a.npz").full, a_full)
    # B finished: the path now holds B's data; A's .npz notices instead of loading B's numbers as its own
    b = _run(path, seed=3).result()
    assert not np.array_equal(np.asarray(b.full), a_full)
    np.testing.assert_array_equal(np.asarray(a.full), a_full)         # no bus error, A's mapping still valid
    with pytest.warns(UserWarning, match="has been replaced since"):
        stale = Dynamics.load(tmp_path / "a.npz")
    assert stale.full is None
    np.testing.assert_array_equal(stale.probs, a.probs)               # the rest of A is intact
    assert _leftovers(tmp_path) == []


def test_fresh_full_path_shows_progress_and_a_dropped_run_leaves_nothing(tmp_path):
    path = tmp_path / "full.npy"
    rec = _run(path, seed=1, epochs=2)
    assert np.load(path, mmap_mode="r").shape == (2, N, C)           # visible while recording
    assert len(_leftovers(tmp_path)) == 1
    del rec
    gc.collect()
    assert list(tmp_path.iterdir()) == []                            # no partial .npy, no temp file


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    old = tmp_path / "old.npy"
    np.save(old, np.zeros((1, N, C), dtype=np.float16))
    rec = DynamicsRecorder(N, num_classes=C, full_path=old)
    rec.update(_logits(0), LABELS, torch.arange(N))
    rec.next_epoch()
    rec.update(_logits(1), LABELS, torch.arange(N))

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(npy_appender_module, "open", disk_full, raising=False)
    with pytest.raises(OSError, match="No space"):
        rec.next_epoch()
    monkeypatch.undo()
    assert _leftovers(tmp_path) == []
    np.testing.assert_array_equal(np.load(old), np.zeros((1, N, C)))  # the existing file is untouched
    with pytest.raises(RuntimeError, match="new DynamicsRecorder"):
        rec.result()


def test_fingerprint_written_and_old_files_without_it_still_load(tmp_path):
    dyn = _run(tmp_path / "full.npy", seed=1).result()
    dyn.save(tmp_path / "d.npz")
    with np.load(tmp_path / "d.npz") as z:
        content = dict(z)
    assert str(content["full_fingerprint"]).startswith(f"{3 * N * C * 2}:")   # data bytes, then the hash
    del content["full_fingerprint"]                                    # as written before the fingerprint
    np.savez(tmp_path / "old.npz", **content)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = Dynamics.load(tmp_path / "old.npz")
    np.testing.assert_array_equal(back.full, dyn.full)


def test_save_after_the_file_was_replaced_stores_full_inline(tmp_path):
    path = tmp_path / "full.npy"
    a = _run(path, seed=1).result()
    a_full = np.array(a.full)
    _run(path, seed=2).result()
    with pytest.warns(UserWarning, match="storing them inside"):
        a.save(tmp_path / "a.npz")
    with np.load(tmp_path / "a.npz") as z:
        assert "full" in z.files and "full_file" not in z.files
    np.testing.assert_array_equal(Dynamics.load(tmp_path / "a.npz").full, a_full)


def test_full_path_that_is_a_folder_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="is a folder"):
        DynamicsRecorder(N, num_classes=C, full_path=tmp_path)


# ------------------------------------------------------------ softmax outputs passed as logits
def test_probabilities_instead_of_logits_warn_once():
    logits = _logits(0)
    rec = DynamicsRecorder(N)
    with pytest.warns(UserWarning, match=r"expects logits.*torch\.log\(probs\)") as record:
        rec.update(torch.softmax(logits, 1), LABELS, torch.arange(N))
    assert len(record) == 1 and record[0].filename == __file__      # points at the caller's update()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rec.next_epoch()
        rec.update(torch.softmax(logits, 1), LABELS, torch.arange(N))  # once per recorder
    # the suggested fix records the right numbers: log-probabilities are logits up to a constant
    fixed = DynamicsRecorder(N)
    fixed.update(torch.log(torch.softmax(logits, 1)), LABELS, torch.arange(N))
    np.testing.assert_allclose(fixed.result().probs[:, 0], _softmax_given(logits, LABELS), rtol=1e-5)


@pytest.mark.parametrize("make", [
    lambda: _logits(1),                                   # ordinary logits
    lambda: torch.relu(_logits(2)),                       # non-negative, rows not summing to 1
    lambda: torch.eye(C)[LABELS],                         # one-hot toy logits
    lambda: torch.tensor([[0.0, 0.0, 3.0]]).repeat(N, 1),  # non-negative, rows summing to 3
    lambda: torch.tensor([[-0.5, 0.5, 1.0]]).repeat(N, 1),  # rows summing to 1, with a negative entry
])
def test_ordinary_logits_never_warn(make):
    rec = DynamicsRecorder(N)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(3):
            rec.update(make(), LABELS, torch.arange(N))
            rec.next_epoch()
        rec.result()


def test_probability_warning_is_off_with_check_false():
    rec = DynamicsRecorder(N, check=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rec.update(torch.softmax(_logits(0), 1), LABELS, torch.arange(N))
        rec.result()


# ------------------------------------------------------------ misplaced next_epoch()
def _loop(n: int, batch: int, epochs: int, per_batch: bool = False, close: bool = True, skip=(), check=True):
    rec = DynamicsRecorder(n, check=check)
    g = torch.Generator().manual_seed(0)
    for t in range(epochs):
        for j, i in enumerate(range(0, n, batch)):
            ids = torch.arange(i, min(i + batch, n))
            if (t, j) not in skip:
                rec.update(torch.randn(len(ids), 4, generator=g), ids % 4, ids)
            if per_batch:
                rec.next_epoch()
        if close and not per_batch:
            rec.next_epoch()
    return rec


def test_next_epoch_per_batch_warns_once():
    with pytest.warns(UserWarning, match=r"only 10 of the 100 samples.*once per epoch.*interpolation") as record:
        rec = _loop(100, 10, epochs=2, per_batch=True)
    assert len(record) == 1
    assert rec.result().probs.shape == (100, 20)                   # still recorded as asked


@pytest.mark.parametrize("kw", [
    dict(n=100, batch=10, epochs=3, skip=((1, 0), (2, 4))),          # a batch missing here and there
    dict(n=7, batch=2, epochs=3, per_batch=True),                    # too few samples to judge
    dict(n=100, batch=10, epochs=2, per_batch=True, check=False),
    dict(n=100, batch=10, epochs=1),                                 # one epoch, each sample once
])
def test_legitimate_loops_do_not_warn(kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _loop(**kw).result()


def test_forgotten_next_epoch_warns_at_result():
    rec = _loop(50, 10, epochs=3, close=False)
    with pytest.warns(UserWarning, match=r"only one epoch was recorded.*150 rows.*3\.0 per sample"):
        d = rec.result()
    assert d.probs.shape == (50, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _loop(50, 10, epochs=3, close=False, check=False).result()


# ------------------------------------------------------------ meta
def test_result_converts_numpy_meta_and_names_bad_keys(tmp_path):
    rec = _run(None, seed=0)
    dyn = rec.result(meta={"lr": np.float32(0.5), "bs": np.int64(64), "ok": np.bool_(True),
                           "sizes": np.arange(3), "nested": {"k": [np.int32(1), (np.float64(2.5),)]}})
    assert dyn.meta["lr"] == 0.5 and type(dyn.meta["lr"]) is float
    assert type(dyn.meta["bs"]) is int and dyn.meta["ok"] is True and dyn.meta["sizes"] == [0, 1, 2]
    assert dyn.meta["nested"] == {"k": [1, (2.5,)]} and type(dyn.meta["nested"]["k"][0]) is int
    back = Dynamics.load(dyn.save(tmp_path / "d.npz"))
    assert back.meta["bs"] == 64 and back.meta["nested"] == {"k": [1, [2.5]]}
    with pytest.raises(TypeError, match=r"meta\['run'\]\['dir'\] is a (Posix|Windows)Path"):
        rec.result(meta={"run": {"dir": Path("runs")}})
    with pytest.raises(TypeError, match="meta must be a dict"):
        rec.result(meta="cifar10")


def test_save_converts_numpy_meta_of_a_hand_built_dynamics(tmp_path):
    d = Dynamics(np.full((2, 2), 0.5, np.float32), [0, 1], meta={"batch_size": np.int64(64)})
    assert Dynamics.load(d.save(tmp_path / "m.npz")).meta == {"batch_size": 64}
    bad = Dynamics(np.full((2, 2), 0.5, np.float32), [0, 1], meta={"s": {1, 2}})
    with pytest.raises(TypeError, match=r"meta\['s'\] is a set"):
        bad.save(tmp_path / "bad.npz")
    assert list(tmp_path.iterdir()) == [tmp_path / "m.npz"]


# ------------------------------------------------------------ Dynamics.subset
def test_subset_rejects_bad_indices():
    d = Dynamics(np.array([[0.1], [0.2], [0.3]], np.float32), [0, 1, 2])
    with pytest.raises(ValueError, match=r"index 99999 is out of range for 3 samples"):
        d.subset([0, 99999])
    with pytest.raises(ValueError, match=r"boolean mask must have shape \(3,\).*\(2,\)"):
        d.subset(np.array([True, False]))
    with pytest.raises(ValueError, match="selects no sample"):
        d.subset([])
    with pytest.raises(ValueError, match="integer sample indices"):
        d.subset([0.0, 1.0])
    np.testing.assert_array_equal(d.subset([-1, 0]).probs[:, 0], np.float32([0.3, 0.1]))    # valid input unchanged
    np.testing.assert_array_equal(d.subset(np.array([False, True, True])).labels, [1, 2])
    np.testing.assert_array_equal(d.subset(torch.tensor([2])).labels, [2])


# ------------------------------------------------------------ Dynamics.load on wrong files
def _saved(tmp_path) -> dict:
    Dynamics(np.full((2, 2), 0.5, np.float32), [0, 1]).save(tmp_path / "ok.npz")
    with np.load(tmp_path / "ok.npz") as z:
        return dict(z)


@pytest.mark.parametrize("version, shown", [(np.array("one"), "'one'"), (np.array([1, 1]), r"\[1, 1\]"),
                                            (np.array(1.5), "1.5")])
def test_load_rejects_malformed_format_version(tmp_path, version, shown):
    content = _saved(tmp_path)
    content["format_version"] = version
    np.savez(tmp_path / "v.npz", **content)
    with pytest.raises(ValueError, match=f"malformed format_version \\({shown}"):
        Dynamics.load(tmp_path / "v.npz")


def test_load_explains_npy_text_and_pickled_files(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"single-array \.npy file.*Dynamics\.save"):
        Dynamics.load(tmp_path / "x.npy")
    (tmp_path / "t.csv").write_text("epoch,prob\n0,0.5\n")
    with pytest.raises(ValueError, match=r"not a \.npz \(zip\) file.*text or CSV") as info:
        Dynamics.load(tmp_path / "t.csv")
    assert "pickle" not in str(info.value)
    np.savez(tmp_path / "obj.npz", format=np.array("mislabel-dynamics"), meta=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="pickled") as info:
        Dynamics.load(tmp_path / "obj.npz")
    assert "allow_pickle" not in str(info.value)
    assert zipfile.is_zipfile(tmp_path / "obj.npz")


# ------------------------------------------------------------ empty batches, changing C, bad arguments
@pytest.mark.parametrize("defer", [True, False])
@pytest.mark.parametrize("check", [True, False])
def test_empty_batches_are_ignored(defer, check):
    empty = (torch.empty(0, 2), torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long))
    rec = DynamicsRecorder(2, defer=defer, check=check)
    rec.update(*empty)                                               # before anything: C not taken from it
    rec.update(torch.tensor([[2.0, 0.0], [0.0, 0.0]]), torch.tensor([0, 1]), torch.tensor([0, 1]))
    rec.update(*empty)
    rec.next_epoch()
    rec.update(*empty)
    with pytest.raises(RuntimeError, match=r"empty batch \(B = 0\)"):
        rec.next_epoch()
    d = rec.result()
    np.testing.assert_allclose(d.probs[:, 0], [1 / (1 + np.exp(-2.0)), 0.5], rtol=1e-6)
    only = DynamicsRecorder(2, defer=defer, check=check)
    only.update(*empty)
    with pytest.raises(RuntimeError, match="empty batch"):
        only.result()


@pytest.mark.parametrize("defer", [True, False])
@pytest.mark.parametrize("check", [True, False])
@pytest.mark.parametrize("between_epochs", [True, False])
def test_changing_number_of_classes_is_a_clear_error(defer, check, between_epochs):
    rec = DynamicsRecorder(4, defer=defer, check=check)
    rec.update(torch.zeros(2, 3), torch.tensor([0, 1]), torch.tensor([0, 1]))
    if between_epochs:
        rec.update(torch.zeros(2, 3), torch.tensor([0, 1]), torch.tensor([2, 3]))
        rec.next_epoch()
    with pytest.raises(ValueError, match=r"logits have 4 classes but the first batch had 3"):
        rec.update(torch.zeros(2, 4), torch.tensor([0, 1]), torch.tensor([2, 3]))
        rec.next_epoch()                                              # check=False, deferred: found here


@pytest.mark.parametrize("kw, msg", [(dict(num_samples=True), "num_samples must be a positive integer"),
                                     (dict(num_samples=np.bool_(True)), "num_samples"),
                                     (dict(num_samples=3.0), "num_samples"),
                                     (dict(num_samples=3, num_classes=True), "num_classes must be an integer >= 2"),
                                     (dict(num_samples=3, num_classes=1), "num_classes")])
def test_bool_and_bad_sizes_are_rejected(kw, msg):
    with pytest.raises(ValueError, match=msg):
        DynamicsRecorder(**kw)
    assert DynamicsRecorder(np.int64(3), num_classes=np.int64(2)).num_samples == 3


def test_check_false_records_nan_logits_as_missing():
    """As documented: without checks a NaN row is a missing value, filled from the sample's other epochs."""
    rec = DynamicsRecorder(2, check=False)
    for t in range(3):
        logits = torch.tensor([[float(t), 0.0], [0.0, 0.0]])
        if t == 1:
            logits[0] = float("nan")
        rec.update(logits, torch.tensor([0, 0]), torch.tensor([0, 1]))
        rec.next_epoch()
    p = rec.result().probs
    sig = 1 / (1 + np.exp(-np.array([0.0, 2.0])))
    np.testing.assert_allclose(p[0], [sig[0], sig.mean(), sig[1]], rtol=1e-6)
    with pytest.raises(ValueError, match="NaN"):
        DynamicsRecorder(2).update(torch.tensor([[float("nan"), 0.0]]), torch.tensor([0]), torch.tensor([0]))


def test_meta_json_matches_previous_format(tmp_path):
    """Plain-Python meta is stored exactly as json.dumps writes it (unchanged file contents)."""
    meta = {"dataset": "x", "epochs": 2, "noise": [0.1, "sym"], "t": (1, 2)}
    Dynamics(np.full((2, 2), 0.5, np.float32), [0, 1], meta=meta).save(tmp_path / "d.npz")
    with np.load(tmp_path / "d.npz") as z:
        assert str(z["meta"]) == json.dumps(meta)


# ------------------------------------------------------------ result(labels=...), bool ids, integer probs
def test_result_refuses_labels_other_than_those_recorded():
    rec = _run(None, seed=0)
    other = np.zeros(N, dtype=np.int64)                               # differs at ids 1, 2, 4, 5
    with pytest.raises(ValueError, match=r"differ from the labels passed to update\(\) for 4 of 6 samples "
                                         r"\(e\.g\. ids \[1, 2, 4, 5\]\).*record again"):
        rec.result(labels=other)
    with pytest.raises(ValueError, match=r"labels has 5 entries but the recorder has num_samples=6"):
        rec.result(labels=LABELS[:5])
    with pytest.raises(ValueError, match=r"1-D of shape \(N,\)"):
        rec.result(labels=LABELS[None, :])
    same = rec.result(labels=LABELS.tolist())                         # the recorded labels: accepted
    np.testing.assert_array_equal(same.labels, LABELS.numpy())
    np.testing.assert_array_equal(same.probs, rec.result().probs)   # the failed calls changed nothing


@pytest.mark.parametrize("defer", [True, False])
def test_update_refuses_boolean_sample_ids_and_labels(defer):
    rec = DynamicsRecorder(N, defer=defer)
    with pytest.raises(ValueError, match=r"sample_ids is a boolean tensor \(a mask\?\).*\[0, num_samples\)"):
        rec.update(_logits(0), LABELS, torch.ones(N, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"sample_ids is a boolean tensor"):
        rec.update(_logits(0), LABELS, np.ones(N, dtype=bool))
    with pytest.raises(ValueError, match=r"labels is a boolean tensor.*labels\.long\(\)"):
        rec.update(_logits(0, c=2), LABELS % 2 == 1, torch.arange(N))
    rec.update(_logits(0), LABELS, torch.arange(N))                   # nothing was recorded by the refused calls
    assert rec.result().probs.shape == (N, 1)


def test_dynamics_refuses_integer_probs_and_margins():
    with pytest.raises(ValueError, match=r"probs must be floating point.*got dtype int64.*astype\(np\.float32\)"):
        Dynamics(np.array([[0, 1]], dtype=np.int64), [0])
    with pytest.raises(ValueError, match=r"probs must be floating point.*got dtype bool"):
        Dynamics(np.array([[False, True]]), [0])
    with pytest.raises(ValueError, match=r"margins must be floating point.*got dtype int64"):
        Dynamics(np.full((1, 2), 0.5), [0], margins=np.array([[1, -2]], dtype=np.int64))
    d = Dynamics(np.array([[0.0, 1.0]], np.float16), [0], margins=torch.tensor([[1.0, -2.0]]))
    assert d.probs.dtype == d.margins.dtype == np.float32
    np.testing.assert_array_equal(d.margins, [[1.0, -2.0]])


def test_never_recorded_samples_hint_at_drop_last():
    from torch.utils.data import DataLoader, TensorDataset
    rec = DynamicsRecorder(100)
    for _ in range(2):
        for yb, ib in DataLoader(TensorDataset(torch.arange(100) % 3, torch.arange(100)), batch_size=32,
                                 drop_last=True):
            rec.update(torch.randn(len(ib), 3, generator=torch.Generator().manual_seed(0)), yb, ib)
        rec.next_epoch()
    with pytest.raises(ValueError, match=r"4 samples were never recorded \(e\.g\. ids \[96, 97, 98, 99\]\).*"
                                         r"drop_last=True and no shuffling.*drop_last=False"):
        rec.result()


# ------------------------------------------------------------ Dynamics.load / save on folders and odd zips
def test_load_of_a_folder_says_so_and_suggests_its_dynamics_npz(tmp_path):
    cap = tmp_path / "cap"
    cap.mkdir()
    with pytest.raises(ValueError, match=r"cap is a folder, not a dynamics file; give the path of a \.npz") as info:
        Dynamics.load(cap)
    assert "create one" not in str(info.value)
    Dynamics(np.full((2, 2), 0.5, np.float32), [0, 1]).save(cap / "dynamics.npz")
    with pytest.raises(ValueError, match=r"is a folder.*did you mean .*cap[/\\]dynamics\.npz\?"):
        Dynamics.load(cap)
    with pytest.raises(FileNotFoundError, match="capture"):                # a missing file: as before
        Dynamics.load(tmp_path / "missing.npz")


def _set_compression_method(src: Path, dst: Path, method: int) -> None:
    """Copy the .npz ``src`` to ``dst`` with every member's zip compression method field set to ``method``."""
    data = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as z:
        infos = z.infolist()
    for info in infos:                                                # local file headers
        struct.pack_into("<H", data, info.header_offset + 8, method)
    pos = struct.unpack_from("<I", data, len(data) - 6)[0]            # end record: where the central directory starts
    for _ in infos:                                                   # central directory entries
        assert data[pos:pos + 4] == b"PK\x01\x02"
        struct.pack_into("<H", data, pos + 10, method)
        pos += 46 + sum(struct.unpack_from("<HHH", data, pos + 28))
    dst.write_bytes(data)


def test_load_of_an_unsupported_zip_compression_is_a_clear_error(tmp_path):
    Dynamics(np.full((2, 2), 0.5, np.float32), [0, 1]).save(tmp_path / "ok.npz")
    _set_compression_method(tmp_path / "ok.npz", tmp_path / "shrunk.npz", method=1)   # "shrink": zipfile lacks it
    with zipfile.ZipFile(tmp_path / "shrunk.npz") as z:
        assert {i.compress_type for i in z.infolist()} == {1}
    with pytest.raises(ValueError, match=r"shrunk\.npz is not a readable \.npz file.*compression method.*"
                                         r"Dynamics\.save"):
        Dynamics.load(tmp_path / "shrunk.npz")


def test_save_onto_a_folder_or_below_a_file_is_refused_before_writing(tmp_path):
    d = Dynamics(np.full((2, 2), 0.5, np.float32), [0, 1])
    folder = tmp_path / "adir"
    folder.mkdir()
    with pytest.raises(ValueError, match=r"adir is a folder; give the path of a file.*adir[/\\]dynamics\.npz"):
        d.save(folder)
    (tmp_path / "a.npz").write_bytes(b"keep")
    for below in (tmp_path / "a.npz" / "x.npz", tmp_path / "a.npz" / "sub" / "x.npz"):
        with pytest.raises(ValueError, match=r"cannot write .*x\.npz: .*a\.npz is a file, not a folder"):
            d.save(below)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.npz", "adir"]   # no temp file, nothing written
    assert (tmp_path / "a.npz").read_bytes() == b"keep"
    assert Dynamics.load(d.save(folder / "dynamics.npz")).num_samples == 2    # the suggested path works


# ------------------------------------------------------------ reused input buffers (issue 33, finding 4)
def _epoch_batches(seed: int, n: int = 12, c: int = 3, batch: int = 4):
    """One epoch of (logits, labels, ids) in a shuffled order, as float32/int64 NumPy arrays."""
    rng = np.random.default_rng(seed)
    ids = rng.permutation(n)
    labels = np.arange(n) % c
    return [(3 * rng.standard_normal((len(i), c)).astype(np.float32), labels[i], i)
            for i in (ids[a:a + batch] for a in range(0, n, batch))]


def _reference(batches, n: int) -> np.ndarray:
    """The given-label softmax of the last occurrence of each sample, in float64."""
    out = np.full(n, np.nan)
    for z, y, i in batches:
        e = np.exp(z - z.max(1, keepdims=True))
        out[i] = e[np.arange(len(y)), y] / e.sum(1)
    return out


def test_numpy_buffers_refilled_per_batch_are_recorded_right():
    """A loop that refills one NumPy buffer per batch (logits, labels and ids alike) records each batch's own
    values in the default deferred mode: NumPy inputs are copied, not kept by reference."""
    batches = _epoch_batches(0)
    zbuf, ybuf, ibuf = np.empty((4, 3), np.float32), np.empty(4, np.int64), np.empty(4, np.int64)
    rec = DynamicsRecorder(12)
    for z, y, i in batches:
        zbuf[:], ybuf[:], ibuf[:] = z, y, i
        rec.update(zbuf, ybuf, ibuf)
    d = rec.result()                                   # no "never recorded ... drop_last" error
    np.testing.assert_allclose(d.probs[:, 0], _reference(batches, 12), rtol=1e-5)
    np.testing.assert_array_equal(d.labels, np.arange(12) % 3)


@pytest.mark.parametrize("role", ["logits", "labels", "sample_ids"])
def test_tensor_buffer_overwritten_without_version_bump_is_refused(role):
    """A tensor refilled without torch noticing (torch.from_numpy of a reused array; a CUDA graph's static
    output, refilled by each replay, behaves alike) is caught in next_epoch(), naming the tensor; nothing of
    the epoch is recorded and the next epoch records normally."""
    batches = _epoch_batches(1)
    bufs = {"logits": np.empty((4, 3), np.float32), "labels": np.empty(4, np.int64),
            "sample_ids": np.empty(4, np.int64)}
    rec = DynamicsRecorder(12)
    for z, y, i in batches:
        given = dict(logits=z, labels=y, sample_ids=i)
        bufs[role][:] = given[role]
        given[role] = torch.from_numpy(bufs[role])     # the same memory every batch
        rec.update(**{k: torch.as_tensor(v) for k, v in given.items()})
    with pytest.raises(RuntimeError, match=rf"the {role} passed to update\(\) in batch 1 .* batch 0.*reused"):
        rec.next_epoch()
    assert rec.num_epochs == 0
    for z, y, i in batches:
        rec.update(torch.from_numpy(z), torch.from_numpy(y), torch.from_numpy(i))
    np.testing.assert_allclose(rec.result().probs[:, 0], _reference(batches, 12), rtol=1e-5)


def test_buffer_refilled_through_data_and_partial_overlap_are_refused():
    rec = DynamicsRecorder(8)
    out = torch.zeros(4, 2)                            # a static output buffer, refilled via .data (no bump)
    for i in range(2):
        out.data.copy_(torch.randn(4, 2))
        rec.update(out, torch.zeros(4, dtype=torch.long), torch.arange(4 * i, 4 * i + 4))
    with pytest.raises(RuntimeError, match=r"logits passed to update\(\) in batch 1.*defer=False"):
        rec.next_epoch()
    rec = DynamicsRecorder(8)
    ids = torch.arange(8)
    rec.update(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long), ids[0:4])
    rec.update(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long), ids[2:6])   # overlaps the first view
    with pytest.raises(RuntimeError, match=r"sample_ids passed to update\(\) in batch 1"):
        rec.next_epoch()


def test_disjoint_views_and_shared_memory_within_a_batch_are_fine():
    """Slices of one permutation as ids, and labels that are the ids themselves, are not reuse."""
    perm = torch.randperm(8, generator=torch.Generator().manual_seed(0))
    rec = DynamicsRecorder(8, num_classes=8)
    for a in range(0, 8, 3):
        ids = perm[a:a + 3]
        rec.update(torch.zeros(len(ids), 8), ids, ids)
    d = rec.result()
    np.testing.assert_array_equal(d.labels, np.arange(8))
    np.testing.assert_allclose(d.probs, 1 / 8, rtol=1e-6)


def test_immediate_mode_records_reused_tensor_buffers_right():
    batches = _epoch_batches(2)
    buf = torch.empty(4, 3)
    rec = DynamicsRecorder(12, defer=False)
    for z, y, i in batches:
        buf.data.copy_(torch.from_numpy(z))
        rec.update(buf, torch.from_numpy(y), torch.from_numpy(i))
    np.testing.assert_allclose(rec.result().probs[:, 0], _reference(batches, 12), rtol=1e-5)


# ------------------------------------------------------------ checks in deferred mode (issue 33, speed with safety)
@pytest.mark.parametrize("bad, msg", [
    ("nan", r"batch 2 of this epoch.*NaN or inf"),
    ("label", r"batch 2 of this epoch.*labels must be in \[0, 3\).*\[0, 7\]"),
    ("id", r"batch 2 of this epoch.*sample_ids must be in \[0, 12\).*\[\d+, 99\]"),
])
def test_deferred_checks_name_the_batch_at_fault(bad, msg):
    batches = [tuple(torch.from_numpy(a) for a in b) for b in _epoch_batches(3)]
    z, y, i = batches[2]
    z, y, i = z.clone(), y.clone(), i.clone()
    if bad == "nan":
        z[1, 2] = float("nan")
    elif bad == "label":
        y[0] = 7
    else:
        i[3] = 99
    batches[2] = (z, y, i)
    rec = DynamicsRecorder(12)
    for b in batches:
        rec.update(*b)                                 # not the epoch's first batch: checked in next_epoch()
    with pytest.raises(ValueError, match=msg):
        rec.next_epoch()
    assert rec.num_epochs == 0                         # the epoch is not recorded
    if bad != "nan":                                   # labels and ids are checked with check=False too
        rec = DynamicsRecorder(12, check=False)
        for b in batches:
            rec.update(*b)
        with pytest.raises(ValueError, match=msg.split(".*", 1)[1]):
            rec.next_epoch()


def test_deferred_probability_warning_after_the_first_batch_points_at_next_epoch():
    """The epoch's first batch is checked in update(); here it is ambiguous (one-hot rows), the later ones are
    softmax outputs: the epoch-wide check in next_epoch() warns, pointing at the caller of next_epoch()."""
    batches = [tuple(torch.from_numpy(a) for a in b) for b in _epoch_batches(4)]
    rec = DynamicsRecorder(12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rec.update(torch.eye(3)[batches[0][1]], *batches[0][1:])
    for z, y, i in batches[1:]:
        rec.update(torch.softmax(z, 1), y, i)
    with pytest.warns(UserWarning, match="expects logits") as record:
        rec.next_epoch()
    assert record[0].filename == __file__


# ------------------------------------------------------------ samplers that skip samples (issue 33, finding 7)
def _sampled_run(sampler, n: int = 40, epochs: int = 2, batch: int = 8):
    from torch.utils.data import DataLoader, TensorDataset
    data = TensorDataset(torch.arange(n) % 3, torch.arange(n))
    rec = DynamicsRecorder(n)
    g = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        for yb, ib in DataLoader(data, batch_size=batch, sampler=sampler):
            rec.update(torch.randn(len(ib), 3, generator=g), yb, ib)
        rec.next_epoch()
    return rec


def test_sampler_with_replacement_is_named_not_drop_last():
    from torch.utils.data import WeightedRandomSampler
    rec = _sampled_run(WeightedRandomSampler(torch.ones(40), 40, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match=r"samples were never recorded.*more than once.*with replacement.*"
                                         r"WeightedRandomSampler.*unseen='drop'") as info:
        rec.result()
    assert "drop_last" not in str(info.value)


def test_subset_sampler_is_named_and_drop_returns_the_recorded_samples():
    from torch.utils.data import SubsetRandomSampler
    keep = [i for i in range(40) if i % 5]
    rec = _sampled_run(SubsetRandomSampler(keep, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match=r"8 samples were never recorded \(e\.g\. ids \[0, 5, 10, 15, 20\]\).*"
                                         r"part of the dataset.*SubsetRandomSampler") as info:
        rec.result()
    assert "drop_last" not in str(info.value)
    with pytest.warns(UserWarning, match=r"returning the 32 recorded samples only"):
        d = rec.result(unseen="drop", is_flipped=np.arange(40) % 2 == 0)
    assert d.meta["sample_ids"] == keep and d.meta["unseen_ids"] == list(range(0, 40, 5))
    assert d.probs.shape == (32, 2) and np.isfinite(d.probs).all()
    np.testing.assert_array_equal(d.labels, np.array(keep) % 3)
    np.testing.assert_array_equal(d.is_flipped, np.array(keep) % 2 == 0)
    with pytest.warns(UserWarning, match="recorded samples only"):   # labels of all N: checked on the seen ones
        full = rec.result(unseen="drop", labels=np.arange(40) % 3)
    np.testing.assert_array_equal(full.probs, d.probs)
    with pytest.raises(ValueError, match="unseen must be 'raise' or 'drop'"):
        rec.result(unseen="ignore")


def test_num_samples_larger_than_the_data_is_named():
    rec = DynamicsRecorder(50)
    for _ in range(2):
        for a in range(0, 40, 8):
            rec.update(torch.randn(8, 3), torch.arange(a, a + 8) % 3, torch.arange(a, a + 8))
        rec.next_epoch()
    with pytest.raises(ValueError, match=r"10 samples were never recorded.*no id >= 40.*num_samples=len"):
        rec.result()


# ------------------------------------------------- update()'s short path for a batch like the last one (issue 33)
def test_a_later_batch_of_other_shapes_or_dtypes_is_still_checked_in_update():
    """update() skips its shape checks only for a batch of the same shapes and dtypes as the last one kept;
    any other batch, however late in the epoch, is checked at once."""
    rec = DynamicsRecorder(12)
    for a in (0, 4):
        rec.update(torch.randn(4, 3), torch.zeros(4, dtype=torch.long), torch.arange(a, a + 4))
    with pytest.raises(ValueError, match="labels and sample_ids must have shape"):
        rec.update(torch.randn(4, 3), torch.zeros(4, 1, dtype=torch.long), torch.arange(8, 12))
    with pytest.raises(ValueError, match="labels"):
        rec.update(torch.randn(4, 3), torch.zeros(4, dtype=torch.float32), torch.arange(8, 12))
    with pytest.raises(ValueError, match="first batch had 3"):
        rec.update(torch.randn(4, 5), torch.zeros(4, dtype=torch.long), torch.arange(8, 12))
    z = torch.randn(4, 3, requires_grad=True)
    rec.update(z * 2, torch.zeros(4, dtype=torch.long), torch.arange(8, 12))   # same shapes: short path
    assert not any(t.requires_grad for t in rec._pending.logits)               # no autograd graph kept
    rec.next_epoch()
    assert rec.result().probs.shape == (12, 1)


def test_a_later_batch_with_nan_logits_is_named_in_next_epoch():
    rec = DynamicsRecorder(12)
    for k, a in enumerate((0, 4, 8)):
        z = torch.randn(4, 3)
        if k == 2:
            z[1, 0] = float("nan")
        rec.update(z, torch.zeros(4, dtype=torch.long), torch.arange(a, a + 4))
    with pytest.raises(ValueError, match=r"batch 2 of this epoch.*(NaN|finite)"):
        rec.next_epoch()
    assert rec.num_epochs == 0
