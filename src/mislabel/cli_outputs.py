"""What the command line writes, made safe: checks of output paths before any work, outputs that are
also inputs refused, one command per output folder (a lock), and folders filled all at once.

Everything here raises :class:`CLIError` (one line, exit status 2 in :func:`mislabel.cli.main`).
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from filelock import FileLock, Timeout

__all__ = ["CLIError", "one_line", "check_out_file", "check_out_dir", "refuse_inputs", "locked", "writing",
           "staging", "remove_empty", "refuse_derived", "SCORES_HEADER"]

#: the header line of a scores CSV written by ``detect``
SCORES_HEADER = "rank,index,given_label,score"


class CLIError(Exception):
    """Bad input, reported by :func:`mislabel.cli.main` as one line with exit status 2."""


def one_line(exc: BaseException) -> str:
    """The text of ``exc`` on one line (its type's name when it has none)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _check_parents(path: Path, flag: str) -> None:
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise CLIError(f"{flag} {path}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise CLIError(f"{flag} {path}: no permission to write in {parent}")
            return


def check_out_file(path, example: str, flag: str = "--out") -> None:
    """Refuse, before any work, an output file path that cannot be written (e.g. an existing folder).

    Raises
    ------
    CLIError
        Naming ``flag`` and the path.
    """
    p = Path(path)
    if p.is_dir():
        raise CLIError(f"{flag} {path} is a folder; give the path of a file, e.g. {p / example}")
    _check_parents(p, flag)


def check_out_dir(path, names, flag: str = "--out") -> None:
    """Refuse, before any work, an output folder that cannot be written (``names``: the files it gets).

    Raises
    ------
    CLIError
        Naming ``flag`` and the path.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise CLIError(f"{flag} {path} is an existing file; capture writes a folder ({', '.join(names)}) there")
    for name in names:
        if (p / name).is_dir():
            raise CLIError(f"{flag} {path}: {p / name} is a folder, so capture cannot write its {name} there")
    _check_parents(p / names[0], flag)


def _same(a: Path, b: Path) -> bool:
    """Whether two paths name one file: the same inode (hard or symbolic links), or the same real path."""
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


def refuse_inputs(out, inputs, flag: str = "--out") -> None:
    """Refuse an output file that is also one of the inputs, before any work.

    Parameters
    ----------
    out : path
    inputs : iterable of (flag, path)
        The command's input files; None paths are skipped.

    Raises
    ------
    CLIError
        When ``out`` is one of them: the same path, or the same file through a link.
    """
    for in_flag, path in inputs:
        if path is not None and _same(Path(out), Path(path)):
            raise CLIError(f"{flag} {out} is the file given as {in_flag} {path}: writing it would destroy the "
                           f"input; give {flag} another path")


def _lock_path(out: Path) -> Path:
    """The lock file of an output folder: outside it (nothing is left in or beside the user's folder), keyed
    by its real path, so two spellings of one folder (links, relative paths) share one lock."""
    real = os.path.realpath(out)
    uid = getattr(os, "getuid", lambda: "user")()
    folder = Path(tempfile.gettempdir()) / f"mislabel-{uid}" / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / (hashlib.sha256(real.encode()).hexdigest()[:32] + ".lock")


@contextlib.contextmanager
def locked(out, flag: str = "--out"):
    """Hold the lock of the output folder ``out`` for the body: a second command writing there is refused.

    Raises
    ------
    CLIError
        When another command holds it (it names the folder; the other command goes on).
    """
    lock = FileLock(_lock_path(Path(out)))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise CLIError(f"{flag} {out} is in use by another mislabel command writing there; wait for it to finish "
                       f"or give {flag} another folder") from None
    try:
        yield
    finally:
        lock.release()


def _is_scores_csv(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.readline().strip() == SCORES_HEADER
    except OSError:
        return False


def _is_detector(path: Path) -> bool:
    """A checkpoint written by ``NoiseDetector.save`` (a torch zip whose pickle names its format)."""
    from .detector.checkpoint import CHECKPOINT_FORMAT
    try:
        with zipfile.ZipFile(path) as z:
            pkl = next((n for n in z.namelist() if n.endswith("/data.pkl")), None)
            return pkl is not None and CHECKPOINT_FORMAT.encode() in z.read(pkl)
    except (OSError, zipfile.BadZipFile, ValueError):
        return False


def refuse_derived(out, flag: str = "--out") -> None:
    """Refuse to capture again into a folder holding files made from its earlier run.

    A scores CSV (``detect``) or a detector checkpoint (``train-detector``) in ``out`` was made from the
    dynamics there; a new capture would leave it beside dynamics it does not describe (``evaluate``
    would then pair an old ranking with a new run). Other files are the user's and are left alone.

    Raises
    ------
    CLIError
        Naming those files and what to do.
    """
    p = Path(out)
    if not p.is_dir():
        return
    derived = sorted(f.name for f in p.iterdir() if f.is_file() and not f.name.startswith(".")
                     and (f.suffix == ".csv" and _is_scores_csv(f) or f.suffix in (".pt", ".pth") and _is_detector(f)))
    if derived:
        raise CLIError(f"{flag} {out} holds {', '.join(derived)} made from the run captured there earlier; a new "
                       f"capture would leave them describing another run. Move or delete them, or give {flag} "
                       "another folder")


@contextlib.contextmanager
def writing(path):
    """Report a failed write with the user's path (not the temporary file's) as one line."""
    try:
        yield
    except OSError as exc:
        raise CLIError(f"cannot write {path} ({exc.strerror or one_line(exc)})") from exc


def _remove_leftovers(real: Path) -> None:
    """Remove temporary folders of :func:`staging` that a killed command left (the caller holds the lock)."""
    for where in (real, real.parent):
        if where.is_dir():
            for q in where.glob(f".{real.name}.*.tmp"):
                if q.is_dir():
                    shutil.rmtree(q, ignore_errors=True)


@contextlib.contextmanager
def staging(out: Path):
    """Yield a temporary folder whose files land in the folder ``out`` only if the body succeeds.

    When ``out`` does not exist, the temporary folder is made next to it and renamed to ``out`` at the
    end. When it exists, the temporary folder is made inside it (the same file system, and a folder the
    user can write to) and each of its files replaces the one of the same name in ``out``, one rename per
    file, ``dynamics.npz`` last (so a run interrupted between those renames still shows its earlier
    dynamics); other files there are left alone. When writing into the temporary folder fails, it is
    removed and ``out`` is untouched, so a failed run never mixes its files with an earlier run's (and
    parent folders made for it are removed again). Call it holding :func:`locked` for ``out``:
    temporary folders of earlier, killed commands are removed first.
    """
    real = Path(os.path.realpath(out))   # through symlinks: renames stay on one file system
    _remove_leftovers(real)
    existed = real.is_dir()
    made = [] if existed else [q for q in real.parents if not q.exists()]   # nearest first
    tmp = None
    try:
        with writing(out):
            if not existed:
                real.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{real.name}.", suffix=".tmp",
                                        dir=real if existed else real.parent))
        yield tmp
        with writing(out):
            if existed:
                for f in sorted(tmp.iterdir(), key=lambda f: (f.name == "dynamics.npz", f.name)):
                    os.replace(f, real / f.name)
            else:
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(tmp, 0o777 & ~umask)   # mkdtemp makes 0700; give the usual permissions
                os.rename(tmp, real)
        made = []   # they hold the output now
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)   # gone already after a successful rename
        remove_empty(made)


def remove_empty(folders) -> None:
    """Remove ``folders`` (nearest first) while they are empty."""
    for q in folders:
        try:
            q.rmdir()
        except OSError:
            return
