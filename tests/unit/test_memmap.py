"""Full class probabilities streamed to a memory-mapped float16 .npy (DynamicsRecorder(full_path=...))."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

import mislabel
from mislabel.dynamics import Dynamics, DynamicsRecorder

N, C, T, B = 500, 7, 4, 64


def _record(full_path=None, skip=()):
    """Feed identical random batches to a recorder; ``skip``: (epoch, batch) pairs left out."""
    g = torch.Generator().manual_seed(0)
    rec = DynamicsRecorder(N, num_classes=C, store_full=True, full_path=full_path)
    for t in range(T):
        perm = torch.randperm(N, generator=g)
        for j, i in enumerate(range(0, N, B)):
            idx = perm[i:i + B]
            logits = 3 * torch.randn(len(idx), C, generator=g)
            y = torch.randint(0, C, (len(idx),), generator=g)
            if (t, j) in skip:
                continue
            rec.update(logits, y, idx)
        rec.next_epoch()
        if full_path is not None:  # a valid .npy after every epoch, holding the epochs so far
            assert np.load(full_path, mmap_mode="r").shape == (t + 1, N, C)
    return rec


@pytest.mark.parametrize("skip", [(), ((1, 0), (2, 3), (3, 7))])
def test_memmap_equals_in_memory(tmp_path, skip):
    mem = _record(skip=skip).result()
    rec = _record(tmp_path / "full.npy", skip=skip)
    disk = rec.result()
    assert isinstance(disk.full, np.memmap) and disk.full.shape == (N, T, C) == mem.full.shape
    assert disk.full.dtype == np.float16 and not disk.full.flags.writeable
    np.testing.assert_allclose(disk.full.astype(np.float32), mem.full.astype(np.float32), rtol=1e-3, atol=1e-3)
    assert not np.isnan(np.asarray(disk.full)).any()      # gaps interpolated in the file, as in memory
    np.testing.assert_array_equal(disk.probs, mem.probs)   # given-label dynamics unchanged
    np.testing.assert_array_equal(disk.margins, mem.margins)
    # the recorder holds one epoch of full probabilities in memory, never N x T x C
    assert rec._fbuf.numel() == N * C
    # on disk: (T, N, C) float16 = 2*C bytes per sample per epoch, plus a 128-byte header
    assert (tmp_path / "full.npy").stat().st_size == 128 + T * N * C * 2


def test_full_path_implies_store_full_and_needs_classes(tmp_path):
    with pytest.raises(ValueError, match="num_classes"):
        DynamicsRecorder(N, full_path=tmp_path / "f.npy")
    assert DynamicsRecorder(N, num_classes=C, full_path=tmp_path / "f.npy").store_full


def test_save_references_the_npy_and_load_maps_it(tmp_path):
    dyn = _record(tmp_path / "full.npy").result()
    dyn.save(tmp_path / "dyn.npz")
    with np.load(tmp_path / "dyn.npz") as z:
        assert "full" not in z.files and str(z["full_file"]) == "full.npy"
    back = Dynamics.load(tmp_path / "dyn.npz")
    assert isinstance(back.full, np.memmap)
    np.testing.assert_array_equal(back.full, dyn.full)
    # a subset is an ordinary in-memory array
    sub = back.subset(np.arange(10))
    assert not isinstance(sub.full, np.memmap) and sub.full.shape == (10, T, C)
    # the .npz moved without its .npy: loads, without full probabilities, and says so
    other = tmp_path / "elsewhere"
    other.mkdir()
    shutil.copy(tmp_path / "dyn.npz", other / "dyn.npz")
    with pytest.warns(UserWarning, match="missing"):
        alone = Dynamics.load(other / "dyn.npz")
    assert alone.full is None
    np.testing.assert_array_equal(alone.probs, dyn.probs)


@pytest.mark.parametrize("skip", [(), ((1, 0), (2, 3), (3, 7))])
@pytest.mark.parametrize("block", [1, 7 * T * C, 1 << 24])
def test_in_memory_full_built_in_blocks_equals_whole_array(skip, block):
    """result() builds the in-memory full array a block of samples at a time: the same values as
    interpolating the whole float32 array at once (samples never mix), without its float32 copies."""
    rec = _record(skip=skip)
    stored = torch.stack(rec._fdone, 1).float().numpy()          # (N, T, C): one tensor per closed epoch
    whole = mislabel.dynamics.interpolate_missing(stored).astype(np.float16)
    assert np.isnan(stored).any() == bool(skip) and len(rec._fdone) == T
    got = rec._full_array(T, block_elements=block)
    assert got.dtype == np.float16 and got.shape == (N, T, C) and got.flags.c_contiguous
    np.testing.assert_array_equal(got, whole)
    np.testing.assert_array_equal(rec.result().full, whole)


def test_in_memory_full_still_saved_inline(tmp_path):
    dyn = _record().result()
    dyn.save(tmp_path / "dyn.npz")
    with np.load(tmp_path / "dyn.npz") as z:
        assert "full" in z.files and "full_file" not in z.files
    assert not isinstance(Dynamics.load(tmp_path / "dyn.npz").full, np.memmap)


def test_fit_streams_full_probabilities(tmp_path):
    torch.set_num_threads(1)
    ds = mislabel.data.make_synthetic(300)
    kw = dict(epochs=3, batch_size=64, progress=False, seed=0)
    mem = mislabel.train.fit("mlp", ds.images, ds.labels, store_full=True, **kw).dynamics
    disk = mislabel.train.fit("mlp", ds.images, ds.labels, full_path=tmp_path / "full.npy", **kw).dynamics
    assert isinstance(disk.full, np.memmap) and disk.full.shape == (300, 3, 10)
    np.testing.assert_array_equal(disk.full, mem.full)
    np.testing.assert_array_equal(disk.probs, mem.probs)


@pytest.mark.parametrize("store_full", [False, True])
def test_deferred_update_equals_immediate(store_full):
    """defer=True (logits kept for the epoch, values computed in next_epoch) records the same values."""
    out = []
    for defer in (False, True):
        g = torch.Generator().manual_seed(1)
        rec = DynamicsRecorder(N, num_classes=C, store_full=store_full, defer=defer, capacity=2)
        for t in range(T):  # capacity 2 < T: the buffers grow
            perm = torch.randperm(N, generator=g)
            for i in range(0, N - (B if t == 1 else 0), B):  # epoch 1 misses some samples
                idx = perm[i:i + B]
                n = len(idx)
                rec.update(5 * torch.randn(n, C, generator=g), torch.randint(0, C, (n,), generator=g), idx)
            rec.next_epoch()
        assert (rec._pending is not None) == defer
        out.append(rec.result())
    a, b = out
    np.testing.assert_allclose(a.probs, b.probs, rtol=1e-6, atol=1e-7)  # float32 rounding (vector vs tail)
    np.testing.assert_array_equal(a.margins, b.margins)
    np.testing.assert_array_equal(a.labels, b.labels)
    if store_full:
        np.testing.assert_allclose(a.full.astype(np.float32), b.full.astype(np.float32), atol=1e-3)


def test_defer_is_automatic_for_small_buffers():
    rec = DynamicsRecorder(N, num_classes=C)
    rec.update(torch.randn(3, C), torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2]))
    assert rec._pending is not None
    big = DynamicsRecorder(2 ** 20, num_classes=100)
    big.update(torch.randn(3, 100), torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2]))
    assert big._pending is None


def test_deferred_last_occurrence_wins():
    """A sample seen twice in an epoch keeps its last value, in deferred and immediate mode alike."""
    res = []
    for defer in (False, True):
        rec = DynamicsRecorder(3, num_classes=2, defer=defer)
        rec.update(torch.tensor([[5.0, 0.0], [0.0, 0.0]]), torch.tensor([0, 0]), torch.tensor([0, 1]))
        rec.update(torch.tensor([[0.0, 5.0], [0.0, 0.0]]), torch.tensor([0, 0]), torch.tensor([0, 2]))
        res.append(rec.result().probs[:, 0])
    np.testing.assert_allclose(res[0], res[1], rtol=1e-6)
    assert res[1][0] < 0.01


def test_deferred_duplicate_within_one_batch_keeps_last():
    rec = DynamicsRecorder(2, num_classes=2, defer=True)
    rec.update(torch.tensor([[5.0, 0.0], [0.0, 5.0], [1.0, 1.0]]), torch.tensor([0, 0, 1]), torch.tensor([0, 0, 1]))
    p = rec.result().probs[:, 0]
    np.testing.assert_allclose(p, [1 / (1 + np.exp(5.0)), 0.5], rtol=1e-6)


def test_deferred_rejects_tensors_modified_in_place():
    """update() keeps references until next_epoch(); reusing a buffer in place is caught, not recorded wrong."""
    rec = DynamicsRecorder(4, num_classes=2, defer=True)
    labels = torch.zeros(2, dtype=torch.int64)
    rec.update(torch.zeros(2, 2), labels, torch.tensor([0, 1]))
    labels.fill_(1)                          # a loop that refills one label buffer per batch
    rec.update(torch.zeros(2, 2), labels, torch.tensor([2, 3]))
    with pytest.raises(RuntimeError, match="modified in place"):
        rec.next_epoch()
    ok = DynamicsRecorder(4, num_classes=2, defer=False)   # the documented alternative works
    labels = torch.zeros(2, dtype=torch.int64)
    ok.update(torch.zeros(2, 2), labels, torch.tensor([0, 1]))
    labels.fill_(1)
    ok.update(torch.zeros(2, 2), labels, torch.tensor([2, 3]))
    np.testing.assert_array_equal(ok.result().labels, [0, 0, 1, 1])


def test_deferred_accepts_mixed_dtypes():
    """Half-precision logits and int32 labels/ids (autocast, numpy-born indices) are converted once per epoch."""
    rec = DynamicsRecorder(3, num_classes=2, defer=True)
    rec.update(torch.tensor([[0.0, 0.0]], dtype=torch.bfloat16), torch.tensor([1], dtype=torch.int32),
               torch.tensor([2], dtype=torch.int32))
    rec.update(torch.tensor([[2.0, 0.0], [0.0, 0.0]]), torch.tensor([0, 1]), torch.tensor([0, 1]))
    d = rec.result()
    np.testing.assert_allclose(d.probs[:, 0], [1 / (1 + np.exp(-2.0)), 0.5, 0.5], rtol=1e-6)
    np.testing.assert_array_equal(d.labels, [0, 1, 1])
