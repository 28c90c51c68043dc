"""CIFAR-10 and CIFAR-100 from the official "python version" pickles (read without running pickled code)."""
from __future__ import annotations

import io
import os
import pickle
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .core import _CACHE, _download, _local_data_dirs, _safe_extract, _stamp, check_md5

# name -> (folder inside root, archive URL, archive MD5, meta file, split -> batch files)
_CIFAR = {
    "cifar10": dict(
        folder="cifar-10-batches-py",
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a",
        meta="batches.meta",
        files={"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
        num_classes=10,
    ),
    "cifar100": dict(
        folder="cifar-100-python",
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        md5="eb9058c3a382ffc7106e4002c42a8d85",
        meta="meta",
        files={"train": ("train",), "test": ("test",)},
        num_classes=100,
    ),
}


class _ArrayUnpickler(pickle._Unpickler):
    """Unpickler that only rebuilds NumPy arrays and plain containers (no arbitrary code).

    The pure-Python unpickler, whose memo is a dict: the C one sizes its memo table by the largest index
    stored into, so one damaged index (``LONG_BINPUT 23598449``) would allocate gigabytes. About 25% slower
    on a CIFAR batch file (whose time goes into copying its pixel bytes).
    """

    _ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}: not a plain NumPy array")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    """Load one CIFAR pickle (``encoding="bytes"``): a dict with byte-string keys.

    The file is read whole first, so that a damaged length field cannot ask for more than the file holds.
    """
    try:
        obj = _ArrayUnpickler(io.BytesIO(Path(path).read_bytes()), encoding="bytes").load()
    except FileNotFoundError:
        raise
    except Exception as exc:  # UnpicklingError, EOFError, ValueError, ... on corrupt files
        raise ValueError(
            f"{path} is not a valid CIFAR pickle ({type(exc).__name__}: {exc}); the file is corrupt: "
            "delete the folder and download it again"
        ) from exc
    if not isinstance(obj, dict):
        raise ValueError(f"{path} holds a {type(obj).__name__}, expected a dict as in the official CIFAR files")
    return obj


def _field(d: dict, key: bytes, path: Path):
    if key in d:
        return d[key]
    if key.decode() in d:  # files re-pickled under Python 3 with str keys
        return d[key.decode()]
    raise ValueError(f"{path} has no {key!r} entry (keys: {sorted(map(repr, d))}); not an official CIFAR file")


def _names(value) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in value]


def _cifar_candidates(name: str, root) -> list[Path]:
    folder = _CIFAR[name]["folder"]
    if root is not None:
        root = Path(root).expanduser()
        return [root / folder, root]
    out = []
    env = os.environ.get("MISLABEL_DATA")
    if env:
        out.append(Path(env).expanduser() / folder)
    return out + [d / folder for d in _local_data_dirs()]


def cifar_folder(name: str, root: str | os.PathLike | None = None) -> Path | None:
    """The CIFAR batches folder (``cifar-10-batches-py`` / ``cifar-100-python``), or None.

    Parameters
    ----------
    name : {"cifar10", "cifar100"}
    root : path-like, optional
        Look only in ``root/<folder>`` and ``root`` itself. Without it, look in
        ``$MISLABEL_DATA/<folder>``, ``./data/<folder>``, then in the ``data`` folder of
        the repository checkout that holds the working directory (so that notebooks,
        which run in ``notebooks/``, find the files the README puts in ``data/``).

    Returns
    -------
    pathlib.Path or None
        The first candidate holding the meta file (``batches.meta`` / ``meta``).

    Raises
    ------
    ValueError
        ``name`` is not "cifar10" or "cifar100".
    """
    if name not in _CIFAR:
        raise ValueError(f"name must be 'cifar10' or 'cifar100', got {name!r}")
    for cand in _cifar_candidates(name, root):
        if (cand / _CIFAR[name]["meta"]).is_file():
            return cand
    return None


def _download_cifar(name: str, root) -> Path:
    """Download and check the official archive, extract it into ``root`` (or the checkout's ``data``), delete the
    archive; returns the batches folder."""
    spec = _CIFAR[name]
    # without root: the repository's data folder, where the loader looks first after $MISLABEL_DATA
    base = Path(root).expanduser() if root is not None else _local_data_dirs()[-1]
    base.mkdir(parents=True, exist_ok=True)
    archive = base / spec["url"].rsplit("/", 1)[1]
    if not (archive.is_file() and check_md5(archive, spec["md5"])):
        _download(spec["url"], archive, spec["md5"])
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=base))
    try:
        _safe_extract(archive, tmp_dir)
        extracted = tmp_dir / spec["folder"]
        if not (extracted / spec["meta"]).is_file():
            raise ValueError(f"{archive} does not contain {spec['folder']}/{spec['meta']}; not the official archive")
        final = base / spec["folder"]
        if final.exists():
            shutil.rmtree(final)
        os.replace(extracted, final)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    archive.unlink()
    return final


def _load_cifar(name: str, split: str, root, download: bool):
    """(images (N, 3, 32, 32) uint8, labels (N,) int64, classes, coarse labels (N,) int64 or None, coarse classes
    or None) of one split, cached: callers hand out indexed copies. ``ValueError`` names a corrupt file."""
    spec = _CIFAR[name]
    folder = cifar_folder(name, root)
    if folder is None and download:
        folder = _download_cifar(name, root)
    if folder is None:
        where = ", ".join(str(p) for p in _cifar_candidates(name, root))
        raise FileNotFoundError(
            f"{name} not found (looked for {spec['meta']} in: {where}). Download {spec['url']}, extract it so "
            f"that {spec['folder']}/ lies in {_local_data_dirs()[-1]}, in $MISLABEL_DATA or in a folder you pass as root=, "
            "or pass download=True when online"
        )
    paths = [folder / f for f in spec["files"][split]] + [folder / spec["meta"]]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{folder} lacks {', '.join(missing)}: the {name} folder is incomplete; delete it and extract "
            f"{spec['url']} again (or pass download=True after deleting it)"
        )
    key = (name, split, _stamp(paths))
    if key in _CACHE:
        return _CACHE[key]

    meta_path = folder / spec["meta"]
    meta = _unpickle(meta_path)
    c = spec["num_classes"]
    if name == "cifar10":
        classes = _names(_field(meta, b"label_names", meta_path))
        coarse_classes = None
    else:
        classes = _names(_field(meta, b"fine_label_names", meta_path))
        coarse_classes = _names(_field(meta, b"coarse_label_names", meta_path))
        if len(coarse_classes) != 20:
            raise ValueError(f"{meta_path} lists {len(coarse_classes)} coarse label names, expected 20")
    if len(classes) != c:
        raise ValueError(f"{meta_path} lists {len(classes)} label names, expected {c}")

    images, labels, coarse = [], [], []
    for p in paths[:-1]:
        d = _unpickle(p)
        data = np.asarray(_field(d, b"data", p))
        lab = np.asarray(_field(d, b"labels" if name == "cifar10" else b"fine_labels", p))
        if data.ndim != 2 or data.shape[1] != 3072:
            raise ValueError(f"{p}: data has shape {data.shape}, expected (N, 3072) rows of 32x32x3 pixels")
        if data.dtype != np.uint8:
            if data.dtype.kind not in "iu" or data.size and (data.min() < 0 or data.max() > 255):
                raise ValueError(f"{p}: data has dtype {data.dtype}, expected uint8 pixel values")
            data = data.astype(np.uint8)
        if lab.shape != (data.shape[0],) or lab.dtype.kind not in "iu":
            raise ValueError(f"{p}: labels have shape {lab.shape} dtype {lab.dtype}, expected ({data.shape[0]},) integers")
        if lab.size and (lab.min() < 0 or lab.max() >= c):
            raise ValueError(f"{p}: labels must lie in [0, {c}), found {lab.min()}..{lab.max()}")
        images.append(data.reshape(-1, 3, 32, 32))  # row = R plane, G plane, B plane; each 32x32 row-major
        labels.append(lab.astype(np.int64))
        if name == "cifar100":
            co = np.asarray(_field(d, b"coarse_labels", p))
            if co.shape != lab.shape or co.dtype.kind not in "iu" or co.size and (co.min() < 0 or co.max() >= 20):
                raise ValueError(f"{p}: coarse_labels must be {lab.shape} integers in [0, 20)")
            coarse.append(co.astype(np.int64))
    out = (
        np.ascontiguousarray(np.concatenate(images)),
        np.concatenate(labels),
        classes,
        np.concatenate(coarse) if coarse else None,
        coarse_classes,
    )
    _CACHE[key] = out
    return out
