"""Small shared helpers: seeding, devices and CPU facts, atomic file writes, the repository root, JSON conversion.

Input checks live in :mod:`mislabel._validation`.
"""
from __future__ import annotations

import contextlib
import os
import platform
import random
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ._validation import check_seed


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (CPU and CUDA) from one integer.

    Parameters
    ----------
    seed : int
        Non-negative seed (see :func:`check_seed`).
    """
    seed = check_seed(seed)
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """Return ``device`` as a :class:`torch.device`; ``None``/"auto" picks CUDA when available.

    Raises
    ------
    ValueError
        If ``device`` is not a device name, or names a CUDA device (or MPS) this machine does not have.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(f"unknown device {device!r}; use 'cpu' or 'cuda' (--device cpu or --device cuda on "
                         "the command line)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r}: CUDA is not available on this machine; use 'cpu' "
                             "(--device cpu on the command line), or leave the device unset: it picks CUDA only "
                             "when available")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {str(device)!r}: this machine has {torch.cuda.device_count()} CUDA "
                             "device(s), numbered from 0")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {str(device)!r}: MPS is not available on this machine; use 'cpu' "
                         "(--device cpu on the command line)")
    return dev


def amp_enabled(amp, device: torch.device) -> bool:
    """Whether bfloat16 autocast should run for ``amp`` on ``device``.

    On CUDA, ``amp=True`` turns it on. On CPU it is used only where the CPU
    computes bfloat16 natively (AVX512-BF16 or AMX, on Linux); elsewhere oneDNN
    emulates bfloat16 and is slower than float32, so ``amp`` is ignored with a
    warning.
    """
    if not amp:
        return False
    if device.type == "cuda":
        return True
    if device.type == "cpu":
        if _cpu_has_native_bf16():
            return True
        import warnings
        warnings.warn("amp=True ignored: this CPU has no native bfloat16 (AVX512-BF16/AMX); training in float32",
                      stacklevel=3)
    return False


def _cpuinfo(field: str) -> str | None:
    """The first ``field`` line's value in ``/proc/cpuinfo`` (Linux), or None."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.split(":", 1)[0].strip() == field:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_name() -> str:
    """The processor's model name (``/proc/cpuinfo``), else what :mod:`platform` knows of it."""
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def describe_cpu() -> str:
    """Processor and the vector instructions torch's CPU kernels use here, e.g. ``"AMD EPYC (AVX2)"``.

    float32 training runs repeat bit for bit on one machine, but kernels built for other vector
    widths (AVX2, AVX-512) sum in another order: the same run recorded on a CPU of another
    capability differs in the last bits, and those differences grow over epochs.
    """
    try:
        cap = torch.backends.cpu.get_cpu_capability()
    except Exception:  # noqa: BLE001  (older torch, or a build without the query)
        cap = "unknown"
    return f"{cpu_name()} ({cap})"


def _cpu_has_native_bf16() -> bool:
    flags = (_cpuinfo("flags") or "").split()
    return "avx512_bf16" in flags or "amx_bf16" in flags


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success.

    Nothing half-written is ever left at ``path``: if the body raises, the
    temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


_flush_state = threading.local()   # how deeply this thread is nested in flush_denormal blocks


@contextlib.contextmanager
def flush_denormal() -> Iterator[None]:
    """Flush denormal floats to zero inside the block (LSTM backward is ~6x faster on CPU).

    The setting belongs to the calling thread. Blocks nest: only the outermost
    one switches flushing off again when it ends (an inner block, such as
    scoring a validation split during training, leaves it on for the rest of
    the outer one).
    """
    depth = getattr(_flush_state, "depth", 0)
    supported = torch.set_flush_denormal(True) if depth == 0 else False
    _flush_state.depth = depth + 1
    try:
        yield
    finally:
        _flush_state.depth = depth
        if supported:
            torch.set_flush_denormal(False)


def find_repo_root(start: str | os.PathLike | None = None, markers=("pyproject.toml",),
                   package_fallback: bool = True) -> Path | None:
    """The nearest folder at or above ``start`` holding one of ``markers`` (the repository checkout).

    Needs nothing beyond the standard library, so data loading and caching work
    without the ``book`` extra.

    Parameters
    ----------
    start : path-like, optional
        Where to start looking; default the current working directory.
    markers : sequence of str
        File names that mark the repository's top folder.
    package_fallback : bool
        When nothing is found above ``start``, try the checkout this (editable)
        package lives in (the folder two levels above the package).

    Returns
    -------
    pathlib.Path or None
        Absolute path, or None when no folder qualifies.
    """
    here = Path(start if start is not None else Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if any((folder / m).is_file() for m in markers):
            return folder
    if package_fallback:
        checkout = Path(__file__).resolve().parents[2]
        if any((checkout / m).is_file() for m in markers):
            return checkout
    return None


def repo_root(start: str | os.PathLike | None = None) -> Path:
    """The repository folder: the nearest folder at or above ``start`` holding ``pyproject.toml``.

    Parameters
    ----------
    start : path-like, optional
        Where to start looking; default the current working directory. When
        nothing is found there, the checkout this (editable) package lives in
        is tried, and finally ``start`` itself is returned.

    Returns
    -------
    pathlib.Path
        Absolute path.
    """
    found = find_repo_root(start, markers=("pyproject.toml",), package_fallback=True)
    return found if found is not None else Path(start if start is not None else Path.cwd()).resolve()


def jsonable(value, where: str = "value"):
    """``value`` with NumPy and torch scalars and arrays turned into Python ones, ready for ``json.dumps``
    (run settings and ``Dynamics.meta``).

    Raises TypeError, naming the entry (``where``, e.g. ``meta['batch_size']``), for anything JSON cannot hold.
    """
    if isinstance(value, np.generic):
        if isinstance(value, (np.bool_, np.integer, np.floating, np.str_)):
            return value.item()
    elif value is None or isinstance(value, (str, bool, int, float)):
        return value
    elif isinstance(value, np.ndarray):
        if value.dtype.kind in "biufU":
            return value.tolist()
    elif isinstance(value, torch.Tensor):
        if not value.is_complex():
            return value.detach().cpu().tolist()
    elif isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, (str, int, float, bool)) and k is not None:
                if isinstance(k, np.generic) and isinstance(k, (np.integer, np.str_)):
                    k = k.item()
                else:
                    raise TypeError(f"{where} has a key {k!r} of type {type(k).__name__}; JSON keys must be "
                                    "strings (or numbers)")
            out[k] = jsonable(v, f"{where}[{k!r}]")
        return out
    elif isinstance(value, (list, tuple)):
        items = [jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return type(value)(items) if type(value) in (list, tuple) else items
    raise TypeError(f"{where} is a {type(value).__name__} ({value!r:.60}), which cannot be stored as JSON; "
                    "use str, int, float, bool, None, or lists/dicts of them (e.g. str(path), float(x))")
