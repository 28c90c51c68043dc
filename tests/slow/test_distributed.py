"""Distributed capture (mislabel.distributed) on CPU with gloo: 2 processes vs one.

Every run names ``device="cpu"`` (``--device cpu``), so that on a GPU machine too these tests
check the CPU path; tests/test_gpu.py checks CUDA with nccl."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import mislabel
from mislabel.distributed import fit_ddp
from mislabel.train import predict

EPOCHS = 3


def _data():
    ds = mislabel.data.load("synthetic")
    noisy, flipped = mislabel.noise.symmetric(ds.labels, 0.3, 10, seed=0)
    return ds, noisy, flipped


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun() -> str | None:
    """The torchrun beside this Python, else the one on PATH (also used by tests/test_gpu.py)."""
    local = Path(sys.executable).parent / "torchrun"
    return str(local) if local.exists() else shutil.which("torchrun")


def _worker(rank: int, world_size: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        ds, noisy, flipped = _data()
        train = fit_ddp("cnn", ds.images, noisy, EPOCHS, record="train", is_flipped=flipped, progress=False,
                        batch_size=64, full_path=f"{out}/full.npy", device="cpu")
        ev = fit_ddp("cnn", ds.images, noisy, EPOCHS, record="eval", is_flipped=flipped, progress=False,
                     batch_size=64, seed=1, device="cpu")
        if rank == 0:
            train.dynamics.save(f"{out}/train.npz")
            ev.dynamics.save(f"{out}/eval.npz")
            # a single-process evaluation pass with the same final weights
            p = predict(ev.model, ds.images, ev.normalization)
            np.save(f"{out}/single_eval.npy", p[np.arange(len(noisy)), noisy])
            json.dump(ev.history, open(f"{out}/history.json", "w"))
        else:
            assert train.dynamics is None and ev.dynamics is None
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    return out


@pytest.fixture(scope="module")
def single():
    torch.set_num_threads(1)
    ds, noisy, flipped = _data()
    return mislabel.train.fit("cnn", ds.images, noisy, EPOCHS, record="train", is_flipped=flipped,
                              progress=False, batch_size=64, device="cpu")


def test_one_process_equals_fit(single):
    """World size 1 is bit-for-bit train.fit (same permutation, augmentation and updates)."""
    ds, noisy, flipped = _data()
    run = fit_ddp("cnn", ds.images, noisy, EPOCHS, record="train", is_flipped=flipped, progress=False,
                  batch_size=64, device="cpu")
    np.testing.assert_array_equal(run.dynamics.probs, single.dynamics.probs)
    np.testing.assert_array_equal(run.dynamics.margins, single.dynamics.margins)
    np.testing.assert_array_equal(run.dynamics.labels, single.dynamics.labels)
    assert run.history["train_loss"] == single.history["train_loss"]


def test_two_processes_same_layout(two_process_run, single):
    ds, noisy, flipped = _data()
    dyn = mislabel.Dynamics.load(two_process_run / "train.npz")
    ref = single.dynamics
    assert dyn.probs.shape == ref.probs.shape == (len(noisy), EPOCHS)
    np.testing.assert_array_equal(dyn.labels, noisy)
    np.testing.assert_array_equal(dyn.is_flipped, flipped)
    assert dyn.meta["world_size"] == 2
    assert np.isfinite(dyn.probs).all() and np.isfinite(dyn.margins).all()
    # the same learning signal: clean samples end far above flipped ones, as in one process
    last = dyn.probs[:, -1]
    assert last[~flipped].mean() > 0.4 > 0.15 > last[flipped].mean()
    assert abs(last[~flipped].mean() - ref.probs[~flipped, -1].mean()) < 0.1
    # per-sample agreement with the single-process run (about as close as two seeds of one process)
    assert np.corrcoef(last, ref.probs[:, -1])[0, 1] > 0.6


def test_two_processes_full_probs_memmapped(two_process_run):
    dyn = mislabel.Dynamics.load(two_process_run / "train.npz")
    assert isinstance(dyn.full, np.memmap) and dyn.full.shape == (len(dyn), EPOCHS, 10)
    full = np.asarray(dyn.full, dtype=np.float32)
    np.testing.assert_allclose(full.sum(-1), 1.0, atol=1e-2)
    np.testing.assert_allclose(full[np.arange(len(dyn)), :, dyn.labels], dyn.probs, atol=2e-3)


def test_two_processes_eval_matches_single_eval(two_process_run):
    dyn = mislabel.Dynamics.load(two_process_run / "eval.npz")
    single_eval = np.load(two_process_run / "single_eval.npy")
    np.testing.assert_allclose(dyn.probs[:, -1], single_eval, atol=1e-5)
    hist = json.load(open(two_process_run / "history.json"))
    assert hist["train_acc"][-1] > 0.5


def test_cli_help():
    out = subprocess.run([sys.executable, "-m", "mislabel.distributed", "--help"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and "torchrun" in out.stdout


@pytest.mark.skipif(_torchrun() is None, reason="torchrun not found")
def test_cli_torchrun(tmp_path):
    cmd = [_torchrun(), "--nproc_per_node=2",
           "--master_port", str(_free_port()), "-m", "mislabel.distributed", "--dataset", "synthetic",
           "--model", "mlp", "--epochs", "2", "--rate", "0.2", "--device", "cpu", "--out", str(tmp_path / "d.npz")]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["world_size"] == 2 and summary["shape"] == [2000, 2] and summary["device"] == "cpu"
    dyn = mislabel.Dynamics.load(tmp_path / "d.npz")
    assert dyn.probs.shape == (2000, 2) and dyn.is_flipped.sum() == 400


def test_fit_ddp_shares_fits_checks():
    """fit_ddp validates through train.Training: the same errors as fit, and fit-only options refused."""
    x, y = torch.zeros(8, 1, 4, 4, dtype=torch.uint8), np.arange(8) % 2
    for kw in (dict(batch_size=0), dict(record="both"), dict(test_labels=y)):
        with pytest.raises(ValueError) as ddp_err:
            fit_ddp("mlp", x, y, 1, progress=False, device="cpu", **kw)
        with pytest.raises(ValueError) as fit_err:
            mislabel.train.fit("mlp", x, y, 1, progress=False, device="cpu", **kw)
        assert str(ddp_err.value) == str(fit_err.value)
    for kw in (dict(recorder=None), dict(cuda_graphs=False), dict(bacth_size=8)):
        with pytest.raises(TypeError, match="fit_ddp\\(\\) got an unexpected keyword argument"):
            fit_ddp("mlp", x, y, 1, device="cpu", **kw)
