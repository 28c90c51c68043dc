"""Checkpoints of a training run: what :class:`~mislabel.train.Training` needs to resume after its last
complete epoch and end bit for bit where an uninterrupted run ends.

A checkpoint (``<checkpoint_dir>/checkpoint.pt``) holds the epoch count, the history, the model, the
optimiser and the learning-rate schedule, every random stream the loop draws from (each rank's
augmentation/shuffling generator, torch's global CPU and CUDA generators, NumPy's and Python's), the
recorder's state and the run's settings. It is written atomically (a temporary file renamed into
place), so a process killed at any moment leaves either the previous checkpoint or the new one.
"""
from __future__ import annotations

import io
import os
import random
import time
from pathlib import Path

import numpy as np
import torch

from .._utils import atomic_path

__all__ = ["CheckpointError", "CHECKPOINT", "PAUSE_ENV", "settings_of", "rank_streams", "state_of", "restore",
           "write", "read", "check_settings", "remove_stale", "recorder_state", "load_recorder_state"]

CHECKPOINT = "checkpoint.pt"
FORMAT = 1
#: tests only: seconds to sleep halfway through writing a checkpoint (to kill a process mid-write)
PAUSE_ENV = "MISLABEL_TEST_CHECKPOINT_PAUSE"


class CheckpointError(ValueError):
    """A checkpoint in ``checkpoint_dir`` that cannot be resumed: of another run, damaged, or foreign.

    The file is left in place; the message names it and how to go on.
    """


def settings_of(training, images, test_images, test_labels) -> dict:
    """What makes two runs the same run: the data, labels, model and every setting of the loop.

    Parameters
    ----------
    training : Training
        After its set-up (model built, augmentation chosen).
    images, test_images, test_labels
        The raw inputs given to :func:`~mislabel.train.fit`.

    Returns
    -------
    dict
        Plain values (str, int, float, bool, None, lists), compared key by key by :func:`check_settings`.
    """
    from ..cache import digest
    o = training.options
    shapes = [(k, list(v.shape), str(v.dtype)) for k, v in training.model.state_dict().items()]
    return {"model": training.model_name, "parameters": digest(np.frombuffer(repr(shapes).encode(), np.uint8)),
            "images": digest(torch.as_tensor(images)), "labels": digest(training.y_np), "num_classes": training.C,
            "epochs": int(training.epochs), "batch_size": int(training.batch_size), "lr": float(training.lr),
            "momentum": float(o.momentum), "weight_decay": float(o.weight_decay),
            "milestones": [float(m) for m in o.milestones], "augment": [int(training.pad), bool(training.flip)],
            "record": o.record, "seed": int(training.seed), "amp": bool(training.use_amp),
            "test": None if test_images is None else digest(torch.as_tensor(test_images), np.asarray(test_labels)),
            "store_full": bool(o.store_full), "world_size": int(getattr(training, "world_size", 1)),
            "device": training.device.type}


def check_settings(state: dict, settings: dict, path: Path) -> None:
    """Refuse a checkpoint of another run.

    Raises
    ------
    CheckpointError
        Naming ``checkpoint_dir``, the settings that differ, and how to go on.
    """
    old = state.get("settings", {})
    diff = [k for k in sorted(set(old) | set(settings)) if old.get(k) != settings.get(k)]
    if diff:
        shown = ", ".join(f"{k} {old.get(k)!r} there vs {settings.get(k)!r} now"
                          if k not in ("images", "labels", "test", "parameters") else f"{k} (other data)" for k in diff)
        raise CheckpointError(f"checkpoint_dir {path.parent}: its {path.name} belongs to another run (it differs in "
                         f"{shown}); use another checkpoint_dir (another --out folder), delete {path}, or pass "
                         "resume=False to start over")


def rank_streams(training) -> dict:
    """This rank's own random streams: the augmentation/shuffling generator and torch's global CPU one."""
    dev = training.device
    return {"generator": training.gen.get_state(), "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None}


def state_of(training, epoch: int, history: dict, streams: list) -> dict:
    """Everything to resume ``training`` after ``epoch`` complete epochs (see module docstring).

    Parameters
    ----------
    training : Training
    epoch : int
        Complete epochs.
    history : dict of lists
    streams : list of dict
        :func:`rank_streams` of every rank, in rank order.

    Returns
    -------
    dict
        What :func:`write` stores and :func:`restore` loads.
    """
    np_state = np.random.get_state()
    return {
        "format": FORMAT, "settings": training.settings, "epoch": int(epoch),
        "history": {k: list(v) for k, v in history.items()},
        "model": training.model.state_dict(), "optimizer": training.opt.state_dict(),
        "scheduler": training.sched.state_dict(), "ranks": streams,
        "numpy_rng": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(float, np_state[2:])],
        "python_rng": random.getstate(),
        "recorder": recorder_state(training.rec) if training.rec is not None else None,
    }


def restore(training, state: dict) -> None:
    """Load a :func:`state_of` into ``training`` (set up afresh with the same settings)."""
    training.model.load_state_dict(state["model"])
    training.opt.load_state_dict(state["optimizer"])
    training.sched.load_state_dict(state["scheduler"])
    mine = state["ranks"][training.rank]
    training.gen.set_state(mine["generator"])
    torch.set_rng_state(mine["torch_rng"])
    if mine["cuda_rng"] is not None:
        torch.cuda.set_rng_state(mine["cuda_rng"], training.device)
    name, keys, pos, has_gauss, gauss = state["numpy_rng"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), gauss))
    random.setstate(state["python_rng"])
    if training.rec is not None and state["recorder"] is not None:
        load_recorder_state(training.rec, state["recorder"])


#: recorder attributes a checkpoint does not copy: rebuilt by ``_alloc`` (the per-epoch buffers, scratch space,
#: the deferred batches, which are empty between epochs), set by the constructor, or stored as rows below
_REBUILT = frozenset({"_pending", "_fast", "_zbuf", "_full_file", "_fbuf", "_device", "_capacity", "full_path",
                      "_buf", "_mbuf", "_rbuf"})
_ROWS = ("_buf", "_mbuf", "_rbuf")   # (capacity, N): only the closed epochs' rows are stored


def _plain(value) -> bool:
    """Whether ``value`` is something a checkpoint stores and ``torch.load(weights_only=True)`` reads back."""
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor, torch.device)):
        return True
    if isinstance(value, (list, tuple, set)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def _moved(value, device):
    """``value`` with every tensor in it copied to ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device, copy=True)
    if isinstance(value, (list, tuple, set)):
        return type(value)(_moved(v, device) for v in value)
    if isinstance(value, dict):
        return {k: _moved(v, device) for k, v in value.items()}
    return value


def recorder_state(rec) -> dict:
    """The state of a :class:`~mislabel.dynamics.DynamicsRecorder` between epochs (what its closed epochs left).

    Every plain attribute (numbers, flags, tensors, lists of them) is copied to the CPU, so state the
    recorder gains later is kept too; its per-epoch buffers are rebuilt on loading.

    Returns
    -------
    dict
        ``attributes`` (name -> value) and ``rows`` (name -> (T, N) tensor of the closed epochs).

    Raises
    ------
    RuntimeError
        Between ``update()`` and ``next_epoch()``: the epoch's batches are not part of the state.
    ValueError
        For a recorder that streams its full probabilities to ``full_path``.
    """
    if rec._touched:
        raise RuntimeError("recorder state taken in the middle of an epoch; take it after next_epoch()")
    if rec._full_file is not None:
        raise ValueError("a recorder streaming to full_path cannot be checkpointed; use store_full=True")
    cpu = torch.device("cpu")
    attributes = {k: _moved(v, cpu) for k, v in vars(rec).items() if k not in _REBUILT and _plain(v)}
    T = rec._epochs
    rows = {k: getattr(rec, k)[:T].to(cpu, copy=True) for k in _ROWS if getattr(rec, k, None) is not None}
    return {"attributes": attributes, "rows": rows}


def load_recorder_state(rec, state: dict) -> None:
    """Load a :func:`recorder_state` into a fresh recorder of the same size and kind.

    Raises
    ------
    ValueError
        If the state comes from a recorder of another size or kind.
    """
    theirs = state["attributes"]
    keys = ("num_samples", "keep_margins", "store_full")
    if any(theirs.get(k) != getattr(rec, k) for k in keys):
        raise ValueError(f"recorder state of {', '.join(f'{k}={theirs.get(k)!r}' for k in keys)} cannot be "
                         f"loaded into a recorder of {', '.join(f'{k}={getattr(rec, k)!r}' for k in keys)}")
    if theirs.get("_C") is None:   # nothing recorded yet
        return
    T = int(theirs["_epochs"])
    rec._capacity = max(rec._capacity, T)
    rec._alloc(rec._device or torch.device("cpu"), int(theirs["_C"]))
    dev = rec._buf.device
    for k, values in state["rows"].items():
        getattr(rec, k)[:T].copy_(values.to(dev))
    for k, v in theirs.items():
        setattr(rec, k, _moved(v, dev))


def write(path: Path, state: dict) -> None:
    """Write ``state`` to ``path`` atomically (flushed to disk before the rename)."""
    pause = float(os.environ.get(PAUSE_ENV) or 0)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        if pause:   # tests: half of the file out, then a pause in which the test kills the process
            buf = io.BytesIO()
            torch.save(state, buf)
            data = buf.getbuffer()
            fh.write(data[:len(data) // 2])
            fh.flush()
            time.sleep(pause)
            fh.write(data[len(data) // 2:])
        else:
            torch.save(state, fh)
        fh.flush()
        os.fsync(fh.fileno())


def read(path: Path) -> dict | None:
    """The checkpoint at ``path``, or None when there is none.

    Raises
    ------
    CheckpointError
        If the file is not a checkpoint this version can read (the message says to delete it).
    """
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  (torch raises many kinds on a foreign or damaged file)
        raise CheckpointError(f"checkpoint_dir {path.parent}: {path.name} is not a readable checkpoint "
                         f"({type(exc).__name__}); delete {path} to start the run over") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint_dir {path.parent}: {path.name} is not a checkpoint of this version of "
                         f"mislabel; delete {path} to start the run over")
    return state


def remove_stale(folder: Path) -> None:
    """Remove temporary files of checkpoint writes that a killed process left in ``folder``."""
    for p in Path(folder).glob(f".{CHECKPOINT}.*.tmp"):
        try:
            p.unlink()
        except OSError:
            pass
