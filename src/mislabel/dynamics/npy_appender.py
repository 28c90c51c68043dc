"""The (T, N, C) float16 ``.npy`` that ``DynamicsRecorder(full_path=...)`` streams full class
probabilities to, one epoch at a time."""
from __future__ import annotations

import contextlib
import os
import struct
import tempfile
import weakref
from pathlib import Path

import numpy as np

from .interpolate import interpolate_missing


class _NpyAppender:
    """A float16 ``.npy`` of shape (T, N, C) that grows by one (N, C) epoch at a time.

    The epochs are written to a temporary file next to ``path``
    (``.<name>.<random>.tmp``) whose header is rewritten after every epoch, so
    it is a valid ``.npy`` at any time; the data never move. Only one epoch is
    ever held in memory. A file already at ``path`` (say, the one an earlier
    saved ``.npz`` refers to, possibly memory-mapped right now) is never
    written to: :meth:`finish` replaces it atomically (``os.replace``), and
    memory maps of it stay valid. If nothing is at ``path``, the temporary file
    is also hard-linked there after the first epoch, so ``path`` shows the
    epochs so far while recording. If the appender is garbage-collected (or the
    interpreter exits, or a write fails) before :meth:`finish`, the unfinished
    file is removed from both names; a file that was at ``path`` before is kept.
    """

    def __init__(self, path, num_samples: int, num_classes: int) -> None:
        self.path = Path(path)
        self.tail = (int(num_samples), int(num_classes))
        self.epochs = 0
        self.has_nan = False
        self.finished = False
        self._hlen = -(-(len(self._dict(10 ** 15)) + 11) // 64) * 64
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._show_live = not os.path.lexists(self.path)   # never hide or clobber an existing file mid-run
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        self._live = Path(tmp)      # the file written to: the temporary one until finish()
        self._state = {"tmp": tmp, "published": None}   # what the finalizer removes
        self._cleanup = weakref.finalize(self, _discard_unfinished, self._state)
        with self._guard(), os.fdopen(fd, "wb") as fh:
            if hasattr(os, "fchmod"):        # mkstemp makes 0600; give the usual permissions
                umask = os.umask(0)
                os.umask(umask)
                os.fchmod(fh.fileno(), 0o666 & ~umask)
            fh.write(self._header())

    def _dict(self, epochs: int) -> bytes:
        return repr({"descr": "<f2", "fortran_order": False, "shape": (epochs,) + self.tail}).encode("latin1")

    def _header(self) -> bytes:
        body = self._dict(self.epochs).ljust(self._hlen - 11) + b"\n"
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body

    @contextlib.contextmanager
    def _guard(self):
        """Remove the unfinished file if the block fails (full disk, interrupted, ...)."""
        try:
            yield
        except BaseException:
            if not self.finished:
                self._cleanup()
            raise

    def _check_alive(self) -> None:
        if not self.finished and not self._live.exists():
            raise RuntimeError(f"the temporary file {self._live} holding the full class probabilities for "
                               f"{self.path} is gone (an earlier write failed, or it was deleted); "
                               "record again with a new DynamicsRecorder")

    def append(self, epoch: np.ndarray) -> None:
        epoch = np.ascontiguousarray(epoch, dtype="<f2")
        if epoch.shape != self.tail:
            raise ValueError(f"epoch must have shape {self.tail}, got {epoch.shape}")
        self._check_alive()
        self.has_nan |= bool(np.isnan(epoch).any())
        with self._guard():
            with open(self._live, "r+b") as fh:
                fh.seek(self._hlen + self.epochs * epoch.nbytes)
                fh.write(epoch.data)
                self.epochs += 1
                fh.seek(0)
                fh.write(self._header())
            if self._show_live and not self.finished and self._state["published"] is None:
                self._publish()

    def _publish(self) -> None:
        """Show the file at ``path`` while recording: a hard link, made only where no file is."""
        try:
            os.link(self._live, self.path)   # fails, rather than clobbering, if a file appeared there since
        except OSError:                      # exists now, or no hard links here: shown by finish() only
            self._show_live = False
            return
        st = os.stat(self._live)
        self._state["published"] = (str(self.path), st.st_dev, st.st_ino)

    def open(self, mode: str = "r") -> np.memmap:
        return np.load(self._live, mmap_mode=mode, allow_pickle=False)

    def interpolate(self, chunk_bytes: int = 1 << 26) -> None:
        """Fill NaNs in place, per sample along epochs, a block of samples at a time."""
        if not self.has_nan:
            return
        self._check_alive()
        with self._guard():
            mm = self.open("r+")
            T, N, C = mm.shape
            step = max(1, chunk_bytes // max(1, T * C * 4))
            for s in range(0, N, step):
                block = np.asarray(mm[:, s:s + step], dtype=np.float32).transpose(1, 0, 2)
                if np.isnan(block).any():
                    mm[:, s:s + step] = interpolate_missing(block).transpose(1, 0, 2).astype(np.float16)
            mm.flush()
            del mm
        self.has_nan = False

    def finish(self) -> None:
        """Put the file at ``path`` (atomically); later epochs are appended there in place."""
        if self.finished:
            return
        self._check_alive()
        with self._guard():
            if _same_file(self._state["published"]):
                os.unlink(self._live)        # path is this very file already (rename would be a no-op)
            else:
                os.replace(self._live, self.path)
        self.finished = True
        self._cleanup.detach()
        self._live = self.path


def _same_file(published) -> bool:
    """Whether ``published`` = (path, st_dev, st_ino) still names that file."""
    if published is None:
        return False
    try:
        st = os.stat(published[0])
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == tuple(published[1:])


def _discard_unfinished(state: dict) -> None:
    """Remove an unfinished :class:`_NpyAppender` file: its temporary name, and ``path`` if it shows it."""
    if _same_file(state["published"]):
        try:
            os.unlink(state["published"][0])
        except OSError:
            pass
    try:
        os.unlink(state["tmp"])
    except OSError:
        pass
