"""Resumable training: a run stopped at any moment and started again ends bit for bit where an
uninterrupted run ends (train.fit, the CLI capture killed with SIGKILL, a 2-process gloo run)."""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import mislabel
from mislabel import train
from mislabel.train import checkpoint
from mislabel.train.loop import Training

#: seed of the kill points; the test prints the points it tried
KILL_SEED = int(os.environ.get("MISLABEL_KILL_SEED", "0"))


def _data(shape, n_classes=5, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random(shape) * 255).astype(np.uint8), rng.integers(0, n_classes, shape[0])


def _same_run(a, b) -> None:
    for key in ("probs", "margins", "runner_up", "labels", "is_flipped", "full"):
        x, y = getattr(a.dynamics, key), getattr(b.dynamics, key)
        assert (x is None) == (y is None), key
        if x is not None:
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=key)
    assert a.dynamics.meta == b.dynamics.meta
    for (k, v), w in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(v, w), k
    drop = lambda h: {k: v for k, v in h.items() if k != "seconds"}  # noqa: E731
    np.testing.assert_array_equal(np.array(list(drop(a.history).values())),
                                  np.array(list(drop(b.history).values())))


@pytest.mark.parametrize("model, record, store_full, stop", [("mlp", "train", False, 1), ("cnn", "eval", True, 3)])
def test_fit_resumes_bit_identically(model, record, store_full, stop, tmp_path, monkeypatch):
    x, y = _data((200, 1, 12, 12))
    kw = dict(epochs=4, batch_size=32, lr=0.05, record=record, seed=3, num_classes=5, store_full=store_full,
              progress=False, device="cpu", is_flipped=y % 2 == 0)
    whole = train.fit(model, x, y, **kw)
    real = Training.save_checkpoint

    def save_then_die(self, epoch, history):
        real(self, epoch, history)
        if epoch == stop:
            raise KeyboardInterrupt
    with monkeypatch.context() as m:
        m.setattr(Training, "save_checkpoint", save_then_die)
        with pytest.raises(KeyboardInterrupt):
            train.fit(model, x, y, checkpoint_dir=tmp_path, **kw)
    assert checkpoint.read(tmp_path / checkpoint.CHECKPOINT)["epoch"] == stop
    _same_run(train.fit(model, x, y, checkpoint_dir=tmp_path, **kw), whole)
    # a finished run trains nothing and returns the same run again
    with monkeypatch.context() as m:
        m.setattr(Training, "step", lambda *a: pytest.fail("a finished run trained"))
        _same_run(train.fit(model, x, y, checkpoint_dir=tmp_path, **kw), whole)


def test_a_checkpoint_of_other_settings_or_damaged_is_refused(tmp_path):
    x, y = _data((64, 1, 8, 8))
    kw = dict(epochs=2, batch_size=16, progress=False, device="cpu", num_classes=5)
    train.fit("mlp", x, y, checkpoint_dir=tmp_path, **kw)
    for other, named in ((dict(lr=0.2), "lr 0.1 there vs 0.2 now"), (dict(seed=1), "seed 0 there vs 1 now"),
                         (dict(epochs=3), "epochs 2 there vs 3 now")):
        with pytest.raises(checkpoint.CheckpointError, match="belongs to another run") as err:
            train.fit("mlp", x, y, checkpoint_dir=tmp_path, **{**kw, **other})
        assert named in str(err.value) and "checkpoint_dir" in str(err.value)
    y2 = y.copy()
    y2[0] = (y2[0] + 1) % 5
    with pytest.raises(checkpoint.CheckpointError, match=r"labels \(other data\)"):
        train.fit("mlp", x, y2, checkpoint_dir=tmp_path, **kw)
    train.fit("mlp", x, y2, checkpoint_dir=tmp_path, resume=False, **kw)   # starts over, on request
    path = tmp_path / checkpoint.CHECKPOINT
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(checkpoint.CheckpointError, match="not a readable checkpoint"):
        train.fit("mlp", x, y2, checkpoint_dir=tmp_path, **kw)
    with pytest.raises(ValueError, match="full_path"):
        train.fit("mlp", x, y, checkpoint_dir=tmp_path / "f", full_path=tmp_path / "full.npy",
                  **{**kw, "store_full": True})


# ------------------------------------------------------------------ SIGKILL at random moments
CLI = ["--dataset", "synthetic", "--subset", "1500", "--model", "mlp", "--epochs", "12", "--batch-size", "32",
       "--lr", "0.1", "--test-subset", "0", "--quiet"]


def _start(argv, env):
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (from /proc: torchrun's workers live in sessions of their own)."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo += children.get(p, [])
    return found


def _kill(proc) -> None:
    """SIGKILL the process and all its descendants at once (no process gets to clean up)."""
    for pid in _descendants(proc.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.communicate(timeout=60)


def _checkpoint_epoch(folder: Path):
    """The epochs saved in the checkpoint of ``folder`` (None when there is none)."""
    try:
        state = checkpoint.read(folder / checkpoint.CHECKPOINT)
    except checkpoint.CheckpointError:
        return "unreadable"
    return None if state is None else state["epoch"]


def _wait_for_tmp(folder: Path, proc, after: int, limit=120.0) -> bool:
    """Wait until a checkpoint write is halfway (its temporary file there) and ``after`` epochs are saved."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and proc.poll() is None:
        if list(folder.glob(f".{checkpoint.CHECKPOINT}.*.tmp")) and (_checkpoint_epoch(folder) or 0) >= after:
            return True
        time.sleep(0.02)
    return False


def _files(out: Path) -> dict:
    got = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    if "history.csv" in got:   # wall-clock seconds are the one column two runs never share
        got["history.csv"] = [ln.rsplit(b",", 1)[0] for ln in got["history.csv"].splitlines()]
    return got


def test_a_cli_capture_killed_at_random_points_resumes_bit_identically(tmp_path, capsys):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "mislabel", "capture", *CLI]
    t0 = time.monotonic()
    ref = subprocess.run(cmd + ["--out", str(tmp_path / "whole")], capture_output=True, text=True, timeout=300,
                         env={**env, "MISLABEL_CACHE": str(tmp_path / "cache-whole")})
    duration = time.monotonic() - t0
    assert ref.returncode == 0, ref.stderr[-2000:]

    env["MISLABEL_CACHE"] = str(tmp_path / "cache")
    out = tmp_path / "r"
    rng = random.Random(KILL_SEED)
    tried = []
    # in the middle of writing a checkpoint (half of the file out, after one complete epoch)
    proc = _start(cmd + ["--out", str(out)], {**env, checkpoint.PAUSE_ENV: "1.5"})
    halfway = _wait_for_tmp(out / ".checkpoint", proc, after=1)
    _kill(proc)
    tried.append(("mid-checkpoint write", _checkpoint_epoch(out / ".checkpoint")))
    # at a random moment of the training, once the resumed run has saved one more epoch
    for _ in range(3):
        saved = _checkpoint_epoch(out / ".checkpoint") or 0
        proc = _start(cmd + ["--out", str(out)], env)
        while proc.poll() is None and (_checkpoint_epoch(out / ".checkpoint") or 0) <= saved:
            time.sleep(0.01)
        at = round(rng.uniform(0, 0.15), 2)   # an epoch takes about 0.05 s here
        time.sleep(at)
        finished = proc.poll() is not None
        _kill(proc)
        tried.append((f"{at} s after epoch {saved + 1} was saved",
                      "finished" if finished else _checkpoint_epoch(out / ".checkpoint")))
    # at a random moment of the process's life (imports, data, training or writing the outputs)
    at = round(rng.uniform(0.3, duration), 2)
    proc = _start(cmd + ["--out", str(out)], env)
    time.sleep(at)
    finished = proc.poll() is not None
    _kill(proc)
    tried.append((f"{at} s after the start", "finished" if finished else _checkpoint_epoch(out / ".checkpoint")))
    final = subprocess.run(cmd + ["--out", str(out)], capture_output=True, text=True, timeout=300, env=env)
    with capsys.disabled():
        print(f"\nkill points (seed {KILL_SEED}, uninterrupted run {duration:.1f} s), each with the epochs "
              f"saved when it fell: {tried}")
    assert halfway
    assert final.returncode == 0, final.stderr[-2000:]
    assert _files(out) == _files(tmp_path / "whole")   # dynamics.npz, meta.json bytes; history.csv but seconds
    entries = [p for p in (tmp_path / "cache" / "capture").iterdir()]
    assert len(entries) == 1 and not entries[0].name.startswith(".")   # one entry, no leftovers
    again = subprocess.run(cmd + ["--out", str(out)], capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0 and "read from the cache" in again.stdout   # a finished run: nothing to train


def test_a_second_capture_process_into_the_same_folder_is_refused(tmp_path):
    """Two `capture` processes at once into one --out: the second says so and exits non-zero, the first
    writes its run."""
    env = {**os.environ, "MISLABEL_CACHE": str(tmp_path / "cache"), checkpoint.PAUSE_ENV: "12"}
    out = tmp_path / "r"
    cmd = [sys.executable, "-m", "mislabel", "capture", *CLI, "--epochs", "1", "--out", str(out)]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert _wait_for_tmp(out / ".checkpoint", first, after=0)   # the first one is training (paused mid-write)
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    out1, _ = first.communicate(timeout=120)
    assert second.returncode == 2 and f"--out {out} is in use by another mislabel command" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    assert first.returncode == 0 and "wrote" in out1
    assert sorted(p.name for p in out.iterdir()) == ["dynamics.npz", "history.csv", "meta.json"]


def _torchrun():
    found = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    return found if Path(found).exists() else None


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(_torchrun() is None, reason="torchrun not found")
def test_a_two_process_gloo_run_killed_resumes_bit_identically(tmp_path, capsys):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def cmd(out):
        return [_torchrun(), "--nproc_per_node=2", "--master_port", str(_free_port()), "-m", "mislabel.distributed",
                "--dataset", "synthetic", "--subset", "600", "--model", "mlp", "--epochs", "4", "--rate", "0.2",
                "--device", "cpu", "--out", str(out)]
    ref = subprocess.run(cmd(tmp_path / "whole.npz"), capture_output=True, text=True, timeout=300, env=env)
    assert ref.returncode == 0, ref.stderr[-2000:]
    out = tmp_path / "r.npz"
    ckpt = tmp_path / "r.checkpoint"
    proc = _start(cmd(out), {**env, checkpoint.PAUSE_ENV: "1.5"})   # killed while rank 0 writes a checkpoint
    halfway = _wait_for_tmp(ckpt, proc, after=1)
    _kill(proc)
    saved = _checkpoint_epoch(ckpt)
    final = subprocess.run(cmd(out), capture_output=True, text=True, timeout=300, env=env)
    with capsys.disabled():
        print(f"\n2-process run killed {'in the middle of a checkpoint write' if halfway else 'late'}, "
              f"after epoch {saved} was saved")
    assert halfway and saved >= 1
    assert final.returncode == 0, final.stderr[-2000:]
    assert json.loads(final.stdout.strip().splitlines()[-1])["resumed_after_epoch"] == saved
    assert out.read_bytes() == (tmp_path / "whole.npz").read_bytes()
    again = subprocess.run(cmd(out), capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0 and json.loads(again.stdout.strip().splitlines()[-1])["resumed_after_epoch"] == 4
    assert mislabel.Dynamics.load(out).num_epochs == 4
