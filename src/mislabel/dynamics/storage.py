"""Reading and writing :class:`~mislabel.dynamics.Dynamics` as a versioned ``.npz``.

File format (``FORMAT_VERSION = 1``), arrays in one uncompressed ``.npz``:

======================  =============  ==========================================
key                     shape, dtype   meaning
======================  =============  ==========================================
``format``              (), str        always ``"mislabel-dynamics"``
``format_version``      (), int64      1
``probs``               (N, T) f32     softmax probability of the given label
``labels``              (N,) int64     the given (possibly noisy) labels
``is_flipped``          (N,) bool      optional ground truth
``margins``             (N, T) f32     optional: given-label logit minus largest other logit
``runner_up``           (N, T) i32     optional: the class of that largest other logit
                                       (files with margins but without it still load)
``full``                (N, T, C) f16  optional: all class probabilities
``full_file``           (), str        optional, instead of ``full``: path (relative to
                                       the ``.npz``) of a (T, N, C) float16 ``.npy``
                                       holding them, opened memory-mapped on load
``full_fingerprint``    (), str        optional, with ``full_file``: its data size in bytes
                                       and a hash of 64 evenly spaced 4 KiB pieces; a file
                                       that no longer matches (replaced by another run) is
                                       not loaded (warning, ``full=None``). Files
                                       without it load unchecked
``meta``                (), str        JSON object (dataset, noise, model, epochs, ...)
======================  =============  ==========================================
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import tokenize
import warnings
import zipfile
from pathlib import Path

import numpy as np

from .._utils import atomic_path, jsonable
from .._validation import check_output_file

FORMAT = "mislabel-dynamics"
FORMAT_VERSION = 1


def write_npz(dynamics, path) -> Path:
    """Write ``dynamics`` (a :class:`~mislabel.dynamics.Dynamics`) to ``path``: see ``Dynamics.save``."""
    path = check_output_file(path, "dynamics.npz")
    meta_json = json.dumps(jsonable(dynamics.meta, "meta"))
    arrays = {"format": np.array(FORMAT), "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
              "probs": dynamics.probs, "labels": dynamics.labels, "meta": np.array(meta_json)}
    for key in ("is_flipped", "margins", "runner_up", "full"):
        if getattr(dynamics, key) is not None:
            arrays[key] = getattr(dynamics, key)
    backing = _backing_npy(dynamics.full)
    if backing is not None:  # memory-mapped: reference the .npy instead of copying it
        fingerprint = _full_fingerprint(dynamics.full.base)
        if _file_fingerprint(backing) == fingerprint:
            del arrays["full"]
            arrays["full_fingerprint"] = np.array(fingerprint)
            try:
                arrays["full_file"] = np.array(os.path.relpath(backing, path.parent.resolve()))
            except ValueError:  # another drive (Windows)
                arrays["full_file"] = np.array(str(backing))
        else:
            warnings.warn(f"the full class probabilities of these dynamics were recorded in {backing}, which "
                          "has since been replaced or removed (another run with the same full_path?); "
                          f"storing them inside {path} instead", stacklevel=3)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    return path


def load_npz(path, cls):
    """Read the file at ``path`` as ``cls(probs=..., labels=..., is_flipped=..., margins=..., full=...,
    meta=..., runner_up=...)``: see ``Dynamics.load``. A ``ValueError`` from ``cls`` is re-raised
    with ``path`` in front.
    """
    path = Path(path)
    if path.is_dir():
        inside = path / "dynamics.npz"
        hint = (f"did you mean {inside}? (`python -m mislabel capture --out {path}` writes it there)"
                if inside.is_file() else
                "give the path of a .npz written by Dynamics.save, or the dynamics.npz inside the folder "
                "that `python -m mislabel capture --out` wrote")
        raise ValueError(f"{path} is a folder, not a dynamics file; {hint}")
    if not path.is_file():
        raise FileNotFoundError(f"no dynamics file at {path}; create one with `python -m mislabel capture` or Dynamics.save")
    expected = ("Dynamics.load expects a .npz written by Dynamics.save (e.g. DynamicsRecorder(...).result()"
                ".save(path)) or `python -m mislabel capture`")
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise ValueError(f"cannot read {path} ({exc})") from None
    if head.startswith(b"\x93NUMPY"):
        raise ValueError(f"{path} is a single-array .npy file, not a dynamics file; {expected}. (A (T, N, C) "
                         ".npy written with DynamicsRecorder(full_path=...) is read through the .npz that "
                         "refers to it.)")
    if not head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        raise ValueError(f"{path} is not a .npz (zip) file (it starts with {head!r}; a text or CSV file?); "
                         f"{expected}")
    try:
        _check_sizes(path)
        with np.load(path, allow_pickle=False) as z:
            content = {k: z[k] for k in z.files}
    except (SyntaxError, tokenize.TokenError, MemoryError) as exc:   # a damaged .npy header (numpy parses it
        raise ValueError(f"{path} is not a readable .npz file (an array header is damaged: {type(exc).__name__}); "
                         "re-create it with Dynamics.save") from None           # as a Python literal)
    except ValueError as exc:
        if "pickle" in str(exc):   # numpy's message would advise allow_pickle=True: never needed here
            raise ValueError(f"{path} holds Python objects (pickled arrays), which a dynamics file never "
                             f"does; {expected}") from None
        raise ValueError(f"{path} is not a readable .npz file ({exc}); re-create it with Dynamics.save") from None
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError) as exc:   # RuntimeError: zipfile, "encrypted"
        raise ValueError(f"{path} is not a readable .npz file ({exc}); re-create it with Dynamics.save") from None
    except NotImplementedError as exc:   # zipfile: a compression method it cannot decompress
        raise ValueError(f"{path} is not a readable .npz file ({exc}: its arrays are zipped with a compression "
                         "method this Python cannot read); re-create it with Dynamics.save, which writes them "
                         "uncompressed") from None
    if content.get("format") is None or _text(content, "format", path) != FORMAT:
        raise ValueError(f"{path} is not a mislabel dynamics file (missing format tag {FORMAT!r})")
    version = _format_version(content.get("format_version"), path)
    if version != FORMAT_VERSION:
        raise ValueError(f"{path} has dynamics format version {version}; this library reads version {FORMAT_VERSION}")
    for key in ("probs", "labels"):
        if key not in content:
            raise ValueError(f"{path} lacks the required array {key!r}")
    try:
        meta = json.loads(_text(content, "meta", path) if "meta" in content else "{}")
    except json.JSONDecodeError:
        raise ValueError(f"{path} has unreadable metadata (meta is not JSON)") from None
    full = content.get("full")
    if full is None and "full_file" in content:
        fingerprint = content.get("full_fingerprint")   # absent in files written before it existed
        full = _open_full_npy(path, _text(content, "full_file", path),
                              None if fingerprint is None else _text(content, "full_fingerprint", path))
    try:
        return cls(probs=content["probs"], labels=content["labels"], is_flipped=content.get("is_flipped"),
                   margins=content.get("margins"), full=full, meta=meta, runner_up=content.get("runner_up"))
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def _text(content: dict, key: str, path) -> str:
    """The string array ``content[key]`` as a str; ValueError if it holds no valid text (numpy turns a code
    point beyond U+10FFFF into a broken str, on which string operations raise SystemError)."""
    a = np.asarray(content[key])
    if a.dtype.kind == "U" and a.size and np.ascontiguousarray(a).reshape(-1).view(np.uint32).max() > 0x10FFFF:
        raise ValueError(f"{path}: its {key!r} entry is not readable text (code points beyond U+10FFFF); the "
                         "file is damaged")
    return str(a)


def _check_sizes(path: Path) -> None:
    """Raise ValueError if an array header in the ``.npz`` at ``path`` promises more data than its member
    holds: a damaged header that would have ``np.load`` allocate the promised size before finding out."""
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            with zf.open(info) as fh:
                try:
                    version = np.lib.format.read_magic(fh)
                except ValueError:
                    continue                 # not an .npy member: np.load says what is wrong
                read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
                if version not in read:
                    continue
                shape, _, dtype = read[version](fh)
                promised = math.prod(shape) * dtype.itemsize
                if not dtype.hasobject and promised > info.file_size - fh.tell():
                    raise ValueError(f"array {info.filename!r} claims shape {shape} of {dtype} ({promised} bytes) but "
                                     f"holds {max(info.file_size - fh.tell(), 0)} bytes: the file is damaged")


def _backing_npy(full) -> Path | None:
    """The .npy file when ``full`` is the (N, T, C) transposed view of a whole (T, N, C) memmap."""
    base = getattr(full, "base", None)
    if not (isinstance(full, np.memmap) and isinstance(base, np.memmap) and getattr(base, "filename", None)):
        return None
    if (base.ndim != 3 or full.shape != (base.shape[1], base.shape[0], base.shape[2]) or not base.flags.c_contiguous
            or full.strides != (base.strides[1], base.strides[0], base.strides[2])
            or full.__array_interface__["data"][0] != base.__array_interface__["data"][0]):
        return None
    return Path(base.filename).resolve()


def _open_full_npy(npz_path: Path, name: str, fingerprint: str | None = None):
    """Open the (T, N, C) .npy referenced by ``full_file`` read-only as an (N, T, C) view.

    None (with a warning) if the file is missing, or if ``fingerprint`` is given and the file no
    longer matches it (replaced by another run since the ``.npz`` was saved).
    """
    f = Path(name) if os.path.isabs(name) else npz_path.parent / name
    if not f.is_file():
        warnings.warn(f"{npz_path}: full class probabilities are stored in {f}, which is missing; "
                      "loading without them (full=None)", stacklevel=4)
        return None
    try:
        mm = np.load(f, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, SyntaxError, tokenize.TokenError, MemoryError) as exc:
        raise ValueError(f"{npz_path}: cannot read its full-probabilities file {f} ({exc})") from None
    if fingerprint is not None and _full_fingerprint(mm) != fingerprint:
        warnings.warn(f"{npz_path}: full class probabilities are stored in {f}, but that file has been replaced "
                      "since (another run with the same full_path?) and holds other data; loading without "
                      "them (full=None)", stacklevel=4)
        return None
    if mm.ndim != 3:
        raise ValueError(f"{f} must hold a (T, N, C) array, got shape {mm.shape}")
    return mm.transpose(1, 0, 2)


def _file_fingerprint(f: Path) -> str | None:
    """:func:`_full_fingerprint` of the ``.npy`` at ``f`` now; None if it is missing or unreadable."""
    try:
        return _full_fingerprint(np.load(f, mmap_mode="r", allow_pickle=False))
    except (ValueError, OSError, SyntaxError, tokenize.TokenError, MemoryError):
        return None


def _format_version(value, path) -> int:
    """The ``format_version`` entry as an int; a clear error if it is missing or malformed."""
    if value is None:
        raise ValueError(f"{path} has no format_version entry; re-create it with Dynamics.save")
    v = np.asarray(value)
    ok = v.shape == () and (v.dtype.kind in "iu" or (v.dtype.kind == "f" and np.isfinite(v) and float(v).is_integer()))
    if not ok:
        shown = repr(v.tolist()) if v.size <= 8 else f"an array of shape {v.shape}"
        raise ValueError(f"{path} has a malformed format_version ({shown}, dtype {v.dtype}); it must be one "
                         "integer. The file is damaged or not written by Dynamics.save; re-create it")
    return int(v)


def _full_fingerprint(mm: np.ndarray, blocks: int = 64, block_bytes: int = 4096) -> str:
    """A cheap fingerprint of a (T, N, C) array (the data of a ``full_file``): its shape, dtype and a
    SHA-256 of ``blocks`` evenly spaced ``block_bytes`` pieces of its data (everything when smaller).

    Two different runs (other seed, data, labels or model) differ in practically every piece, so a
    file replaced by another run is recognised without reading all of it; an identical re-run gives
    the same fingerprint, rightly, as its data are the same.
    """
    h = hashlib.sha256(repr((tuple(mm.shape), np.dtype(mm.dtype).str)).encode())
    flat = np.asarray(mm).reshape(-1).view(np.uint8)
    n = flat.size
    if n <= blocks * block_bytes:
        h.update(flat.tobytes())
    else:
        for s in np.linspace(0, n - block_bytes, blocks).astype(np.int64):
            h.update(flat[s:s + block_bytes].tobytes())
    return f"{n}:{h.hexdigest()[:32]}"
