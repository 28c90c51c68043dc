"""Fashion-MNIST from its four IDX files, and "fashion-mnist-rot" (each image turned by a fixed quarter turn)."""
from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from .core import _CACHE, _download, _local_data_dirs, _stamp

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_FMNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_FMNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")

#: seed of the fixed quarter-turn drawn for every Fashion-MNIST image in "fashion-mnist-rot"
_ROT_SEED = 4040


def _fmnist_file(folder: Path, fname: str) -> Path | None:
    """``folder/fname`` (gzip), or its already-decompressed twin without ``.gz``; None if neither exists."""
    for p in (folder / fname, folder / fname[: -len(".gz")]):
        if p.is_file():
            return p
    return None


def _fmnist_complete(folder: Path) -> bool:
    return all(_fmnist_file(folder, f) is not None for pair in _FMNIST_FILES.values() for f in pair)


def _fmnist_candidates(root) -> list[Path]:
    if root is not None:
        root = Path(root).expanduser()
        return [root, root / "fashion-mnist"]
    out = []
    env = os.environ.get("MISLABEL_DATA")
    if env:
        out += [Path(env).expanduser() / "fashion-mnist", Path(env).expanduser()]
    out += [folder / "fashion-mnist" for folder in _local_data_dirs()] + [_FMNIST_SYSTEM_DIR]
    return out


def fashion_mnist_folder(root: str | os.PathLike | None = None) -> Path | None:
    """The folder holding the four Fashion-MNIST IDX files, or None if none is found.

    Parameters
    ----------
    root : path-like, optional
        Look only in ``root`` and ``root/fashion-mnist``. Without it, look in
        ``$MISLABEL_DATA/fashion-mnist``, ``./data/fashion-mnist`` and
        ``/usr/share/datasets/fashion-mnist``, in that order.

    Returns
    -------
    pathlib.Path or None
    """
    for cand in _fmnist_candidates(root):
        if cand.is_dir() and _fmnist_complete(cand):
            return cand
    return None


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """Parse one IDX file (unsigned-byte data, gzip or plain) into a uint8 array of the stored shape.

    Raises ``ValueError`` naming ``path`` when it is not a readable gzip file, has another magic number or a
    size that disagrees with its header.
    """
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(
            f"{path} is not a readable gzip file ({exc}); it is truncated or corrupt: delete it and "
            "reinstall (sudo apt-get install --reinstall dataset-fashion-mnist) or download it again"
        ) from exc
    if len(raw) < 4 or int.from_bytes(raw[:4], "big") != magic:
        found = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
        raise ValueError(
            f"{path} is not an IDX file of the expected kind: magic number {found}, expected {magic}; "
            "the file is corrupt or misnamed: delete it and get it again"
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path} is truncated inside its header: delete it and get it again")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        raise ValueError(
            f"{path} has {len(raw)} bytes but its header (shape {dims}) implies {expected}: the file is "
            "truncated or corrupt: delete it and get it again"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _parse_fmnist(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, 1, 28, 28) uint8 images and (N,) int64 labels of one split (cached: callers hand out indexed copies)."""
    img_path = _fmnist_file(folder, _FMNIST_FILES[split][0])
    lab_path = _fmnist_file(folder, _FMNIST_FILES[split][1])
    if img_path is None or lab_path is None:
        raise FileNotFoundError(f"Fashion-MNIST {split} files are missing from {folder}: {_FMNIST_FILES[split]}")
    key = ("fashion-mnist", split, _stamp([img_path, lab_path]))
    if key in _CACHE:
        return _CACHE[key]
    images = _read_idx(img_path, 2051)
    labels = _read_idx(lab_path, 2049)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"{img_path} holds images of shape {images.shape[1:]}, expected 28x28 Fashion-MNIST images")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{lab_path} holds {labels.shape} labels but {img_path} holds {images.shape[0]} images; "
            "the files do not belong together: get them again"
        )
    if labels.size and labels.max() >= 10:
        raise ValueError(f"{lab_path} has label {labels.max()}, Fashion-MNIST labels are 0..9: the file is corrupt")
    out = (images.reshape(-1, 1, 28, 28).copy(), labels.astype(np.int64))
    _CACHE[key] = out
    return out


def _load_fashion_mnist(split: str, root, download: bool) -> tuple[np.ndarray, np.ndarray]:
    """Find (or download) the files and parse one split; ``FileNotFoundError`` says where it looked."""
    folder = fashion_mnist_folder(root)
    if folder is None and download:
        folder = Path(root).expanduser() if root is not None else Path("data") / "fashion-mnist"
        for pair in _FMNIST_FILES.values():
            for fname in pair:
                if _fmnist_file(folder, fname) is None:
                    _download(FASHION_MNIST_URL + fname, folder / fname)
    if folder is None:
        where = [str(p) for p in _fmnist_candidates(root)]
        raise FileNotFoundError(
            "Fashion-MNIST not found (looked in: " + ", ".join(where) + "). Get it with "
            "'sudo apt-get install dataset-fashion-mnist', or pass download=True to fetch the four files "
            f"from {FASHION_MNIST_URL}, or pass root= (or set MISLABEL_DATA) to a folder holding "
            + ", ".join(f for pair in _FMNIST_FILES.values() for f in pair)
        )
    return _parse_fmnist(folder, split)


def _quarter_turns(images: np.ndarray, labels: np.ndarray, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Turn image i by ``k_i`` quarter turns (``k_i`` fixed per split row) and relabel it ``labels + 10 * k_i``.

    images : (N, 1, H, W) uint8 with H == W; labels : (N,) int64 in [0, 10). Returns new arrays of the same
    shapes and dtypes, labels in [0, 40).
    """
    k = np.random.default_rng([_ROT_SEED, 0 if split == "train" else 1]).integers(0, 4, len(labels))
    out = np.empty_like(images)
    for turns in range(4):
        rows = np.nonzero(k == turns)[0]
        out[rows] = np.rot90(images[rows], turns, axes=(2, 3))
    return out, (labels + len(FASHION_MNIST_CLASSES) * k).astype(np.int64)
