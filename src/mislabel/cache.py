"""On-disk cache for expensive results (captured dynamics, trained detectors).

Each entry lives in ``<cache_dir>/<kind>/<key>/`` where ``key`` is a SHA-256
of every input that affects the result plus the library version, so a changed
parameter can never return a stale result. Entries are written to a temporary
folder and renamed into place, so an interrupted run leaves nothing behind.

The cache folder is ``$MISLABEL_CACHE`` when set, otherwise ``.cache/mislabel``
under the nearest parent folder holding ``pyproject.toml`` or ``_toc.yml``
(the repository), otherwise ``~/.cache/mislabel``.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from ._utils import find_repo_root


def default_dir() -> Path:
    """The cache folder (see module docstring)."""
    env = os.environ.get("MISLABEL_CACHE")
    if env:
        return Path(env)
    repo = find_repo_root(markers=("_toc.yml", "pyproject.toml"), package_fallback=False)
    return repo / ".cache" / "mislabel" if repo is not None else Path.home() / ".cache" / "mislabel"


def key_of(params: dict) -> str:
    """Stable hex digest of a JSON-serialisable parameter dict (includes the library version)."""
    from . import __version__
    blob = json.dumps({"params": params, "library_version": __version__}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def digest(*arrays) -> str:
    """Hex digest of the contents, dtypes and shapes of arrays or tensors (None entries count as such).

    Used in cache keys for inputs given as data rather than as settings (the loaded data set, the
    dynamics a detector is fitted on), so that other data never hits an entry made from different data.

    Parameters
    ----------
    *arrays : ndarray, Tensor or None

    Returns
    -------
    str
        32 hexadecimal characters (BLAKE2b, 16 bytes).
    """
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        if a is None:
            h.update(b"none;")
            continue
        if hasattr(a, "detach"):
            a = a.detach().cpu().numpy()
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape};".encode())
        h.update(a.reshape(-1).view(np.uint8).data)
    return h.hexdigest()


def cached(kind: str, params: dict, compute: Callable[[Path], None], cache_dir=None,
           validate: Callable[[Path], None] | None = None) -> Path:
    """Return the folder holding the result for ``params``, computing it on a miss.

    Parameters
    ----------
    kind : str
        Namespace, e.g. "capture" or "detector".
    params : dict
        Every input that affects the result (JSON-serialisable).
    compute : callable(folder: Path) -> None
        Writes the result files into ``folder`` (a fresh temporary folder).
    cache_dir : path, optional
        Default :func:`default_dir`.
    validate : callable(folder: Path) -> None, optional
        Reads back what ``compute`` wrote and raises if it cannot be used; runs
        before the entry is renamed into place, so an unreadable result is never
        cached (the temporary folder is removed and the error propagates).

    Returns
    -------
    pathlib.Path
        Folder containing the files ``compute`` wrote, plus ``params.json``.
    """
    root = Path(cache_dir) if cache_dir is not None else default_dir()
    final = root / kind / key_of(params)
    if (final / "params.json").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        compute(tmp)
        if validate is not None:
            validate(tmp)
        (tmp / "params.json").write_text(json.dumps(params, indent=1, sort_keys=True, default=str))
        try:
            os.replace(tmp, final)
        except OSError:  # another process finished first: keep theirs
            if not (final / "params.json").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final
