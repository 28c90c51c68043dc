"""On-disk cache for expensive results (captured dynamics, trained detectors).

Each entry lives in ``<cache_dir>/<kind>/<key>/`` where ``key`` is a SHA-256
of every input that affects the result plus :func:`library_digest` (a digest of
the library's source and shipped weights), so a changed parameter or changed
code can never return a stale result. Entries are written to a temporary
folder and renamed into place, with a manifest of their files' sizes and
digests (``manifest.json``); a hit whose files no longer match it (a truncated,
deleted or edited file) is recomputed with a warning. One process computes a
key at a time (a lock in ``<cache_dir>/.locks``); the others wait for its
entry. A cache folder that cannot be written is skipped with a warning.

The cache folder is ``$MISLABEL_CACHE`` when set, otherwise ``.cache/mislabel``
under the nearest parent folder holding ``pyproject.toml`` or ``_toc.yml``
(the repository), otherwise ``~/.cache/mislabel``.
"""
from __future__ import annotations

import atexit
import functools
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
from filelock import FileLock, Timeout

from ._utils import find_repo_root

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"

# what reading a damaged entry may raise (a missing, truncated or garbled file)
_DAMAGE = (OSError, ValueError, KeyError, EOFError, RuntimeError, TypeError, AttributeError)


class Fetched(NamedTuple):
    """What :func:`fetch` returns."""

    value: object
    """``load(folder)`` (the folder itself without ``load``)."""
    folder: Path | None
    """The entry, or None when the cache folder could not be written."""
    hit: bool
    """True when the entry was there already (made earlier or by another process meanwhile)."""


def default_dir() -> Path:
    """The cache folder (see module docstring)."""
    env = os.environ.get("MISLABEL_CACHE")
    if env:
        return Path(env)
    repo = find_repo_root(markers=("_toc.yml", "pyproject.toml"), package_fallback=False)
    return repo / ".cache" / "mislabel" if repo is not None else Path.home() / ".cache" / "mislabel"


def package_digest(package) -> str:
    """SHA-256 over the relative path and bytes of every file under ``package`` (bytecode excluded).

    Parameters
    ----------
    package : str or Path
        A folder, e.g. ``src/mislabel``.

    Returns
    -------
    str
        64 hexadecimal characters.
    """
    package = Path(package)
    h = hashlib.sha256()
    for path in sorted(p for p in package.rglob("*") if p.is_file()):
        rel = path.relative_to(package).as_posix()
        if "__pycache__" in rel.split("/") or rel.endswith((".pyc", ".pyo")):
            continue
        h.update(rel.encode() + b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


@functools.cache
def library_digest() -> str:
    """:func:`package_digest` of this library's folder (its code and shipped weights), once per process.

    Part of every cache key, so that entries made by other code are never returned; the book's
    ``scripts/library_stamp.py`` uses the same digest to re-execute its chapters.
    """
    return package_digest(Path(__file__).resolve().parent)


def key_of(params: dict) -> str:
    """Stable hex digest of a JSON-serialisable parameter dict and :func:`library_digest`."""
    blob = json.dumps({"params": params, "library": library_digest()}, sort_keys=True, default=str)
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


def _file_digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_manifest(folder: Path) -> None:
    files = {p.name: {"size": p.stat().st_size, "blake2b": _file_digest(p)}
             for p in sorted(folder.iterdir()) if p.is_file() and p.name != MANIFEST}
    (folder / MANIFEST).write_text(json.dumps(files, indent=1))


def _damage(folder: Path, load: Callable[[Path], object] | None):
    """(None, loaded value) for an intact entry, else (what is wrong, None)."""
    try:
        files = json.loads((folder / MANIFEST).read_text())
        for name, want in files.items():
            p = folder / name
            if not p.is_file():
                return f"{name} is missing", None
            if p.stat().st_size != want["size"] or _file_digest(p) != want["blake2b"]:
                return f"{name} was changed or cut short", None
        return None, (load(folder) if load is not None else folder)
    except _DAMAGE as exc:
        return f"{type(exc).__name__}: {' '.join(str(exc).split())}", None


def _say(text: str, progress: bool) -> None:
    """One line to the ``mislabel.cache`` logger, and to stderr (through tqdm) when ``progress`` is on."""
    log.info(text)
    if progress:
        from tqdm.auto import tqdm
        tqdm.write(text, file=sys.stderr)


def _discard(folder: Path) -> None:
    """Move an entry out of the way (atomically), then delete it."""
    aside = folder.with_name(f".{folder.name}.damaged.{os.getpid()}")
    try:
        os.replace(folder, aside)
    except OSError:
        return
    shutil.rmtree(aside, ignore_errors=True)


def _remove_leftovers(parent: Path, key: str) -> None:
    """Remove temporary folders of ``key`` that a killed process left (only the lock holder calls this)."""
    for p in parent.glob(f".{key}.*"):
        shutil.rmtree(p, ignore_errors=True)


def _without_cache(kind, compute, validate, load, scratch, root, exc) -> Fetched:
    warnings.warn(f"cache folder {root} cannot be written ({exc.strerror or exc}); computing {kind} without "
                  "the cache. Set MISLABEL_CACHE to a folder you can write, or turn the cache off "
                  "(cache=False, --no-cache)", stacklevel=4)
    tmp = Path(tempfile.mkdtemp(prefix=f"mislabel-{kind}-"))
    atexit.register(shutil.rmtree, tmp, True)
    work = None
    if scratch:
        work = tmp / ".work"
        work.mkdir()
    (compute(tmp, work) if scratch else compute(tmp))
    if work is not None:
        shutil.rmtree(work, ignore_errors=True)
    if validate is not None:
        validate(tmp)
    return Fetched(load(tmp) if load is not None else tmp, None, False)


def fetch(kind: str, params: dict, compute: Callable, cache_dir=None, validate: Callable[[Path], None] | None = None,
          load: Callable[[Path], object] | None = None, progress: bool = False,
          scratch: bool = False) -> Fetched:
    """``load`` of the entry for ``params``, computing it on a miss; see :func:`cached`.

    Parameters
    ----------
    kind, params, cache_dir, validate
        As in :func:`cached`.
    compute : callable(folder) or callable(folder, work)
        Writes the result files into ``folder``; with ``scratch``, ``work`` is a folder of the
        cache kept across interrupted attempts at the same key (for checkpoints), removed once
        the entry is made.
    load : callable(folder) -> object, optional
        Reads the entry; what it raises on a damaged entry (OSError, ValueError, ...) makes the
        entry count as damaged.
    progress : bool
        Also say a hit, or a wait for another process, on stderr (always to the
        ``mislabel.cache`` logger).

    Returns
    -------
    Fetched
        ``(value, folder, hit)``; ``folder`` is None when the cache folder could not be written
        (the result was computed in a temporary folder, with a warning).

    Warns
    -----
    UserWarning
        When an entry is damaged (it is computed again) or the cache folder cannot be written.
    """
    root = Path(cache_dir) if cache_dir is not None else default_dir()
    key = key_of(params)
    final = root / kind / key
    if (final / MANIFEST).is_file():
        problem, value = _damage(final, load)
        if problem is None:
            _say(f"mislabel: cache hit, {kind} {key} read from {final}", progress)
            return Fetched(value, final, True)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        (root / ".locks").mkdir(exist_ok=True)
        lock = FileLock(root / ".locks" / f"{kind}-{key}.lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            _say(f"mislabel: waiting for another process computing {kind} {key} in {root}", progress)
            lock.acquire()
    except OSError as exc:
        return _without_cache(kind, compute, validate, load, scratch, root, exc)
    try:
        if final.exists():   # made by another process meanwhile, or damaged
            problem, value = _damage(final, load)
            if problem is None:
                _say(f"mislabel: cache hit, {kind} {key} read from {final}", progress)
                return Fetched(value, final, True)
            warnings.warn(f"cache entry {final} is damaged ({problem}); computing it again", stacklevel=3)
            _discard(final)
        _remove_leftovers(final.parent, key)
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=final.parent))
        except OSError as exc:
            return _without_cache(kind, compute, validate, load, scratch, root, exc)
        try:
            if scratch:
                work = root / ".runs" / f"{kind}-{key}"   # kept across interrupted attempts
                work.mkdir(parents=True, exist_ok=True)
                compute(tmp, work)
            else:
                compute(tmp)
            if validate is not None:
                validate(tmp)
            (tmp / "params.json").write_text(json.dumps(params, indent=1, sort_keys=True, default=str))
            _write_manifest(tmp)
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        if scratch:
            shutil.rmtree(work, ignore_errors=True)
        return Fetched(load(final) if load is not None else final, final, False)
    finally:
        lock.release()


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
        Folder containing the files ``compute`` wrote, plus ``params.json`` and
        ``manifest.json``. When the cache folder cannot be written: a temporary
        folder, removed when the process exits (with a warning naming ``MISLABEL_CACHE``).

    Warns
    -----
    UserWarning
        When an entry is damaged (it is computed again) or the cache folder cannot be written.
    """
    return fetch(kind, params, compute, cache_dir=cache_dir, validate=validate).folder
