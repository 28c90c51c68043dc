"""What every loader shares: the :class:`ImageDataset` container, the parsed-split cache, subsets, checksums,
downloads, safe archive extraction and the local data folders."""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .._utils import atomic_path, repo_root

# Parsed full splits, keyed by (dataset, folder or split, file stamps); values are NumPy arrays
# (images (N, C, H, W) uint8, labels (N,) int64, ...) that are never handed out directly.
_CACHE: dict[tuple, object] = {}


# --------------------------------------------------------------------------- dataset container
@dataclass
class ImageDataset:
    """An in-memory image classification split.

    Attributes
    ----------
    images : torch.Tensor
        ``(N, C, H, W)`` uint8 pixel values in ``[0, 255]``.
    labels : torch.Tensor
        ``(N,)`` int64 class indices in ``[0, num_classes)``.
    classes : list of str
        Class names; ``classes[k]`` names label ``k``.
    name : str
        Dataset name, one of :data:`mislabel.data.DATASETS`.
    split : str
        ``"train"`` or ``"test"``.
    indices : numpy.ndarray
        ``(N,)`` int64, for each row its row index in the full split (increasing).
    coarse_labels : torch.Tensor or None
        ``(N,)`` int64 superclass indices (CIFAR-100 only).
    coarse_classes : list of str or None
        Superclass names (CIFAR-100 only).

    Raises
    ------
    ValueError
        On construction, when a field has the wrong shape or dtype.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    name: str
    split: str
    indices: np.ndarray
    coarse_labels: torch.Tensor | None = None
    coarse_classes: list[str] | None = None

    def __post_init__(self) -> None:
        n = self.images.shape[0]
        if self.images.ndim != 4 or self.images.dtype != torch.uint8:
            raise ValueError(
                f"images must be a (N, C, H, W) uint8 tensor, got shape {tuple(self.images.shape)} "
                f"dtype {self.images.dtype}"
            )
        if tuple(self.labels.shape) != (n,) or self.labels.dtype != torch.int64:
            raise ValueError(
                f"labels must be a ({n},) int64 tensor, got shape {tuple(self.labels.shape)} dtype {self.labels.dtype}"
            )
        if np.shape(self.indices) != (n,):
            raise ValueError(f"indices must have shape ({n},), got {np.shape(self.indices)}")
        if self.coarse_labels is not None and tuple(self.coarse_labels.shape) != (n,):
            raise ValueError(f"coarse_labels must have shape ({n},), got {tuple(self.coarse_labels.shape)}")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_classes(self) -> int:
        """Number of classes, ``len(classes)``."""
        return len(self.classes)

    def __repr__(self) -> str:
        shape = "x".join(str(s) for s in self.images.shape[1:])
        extra = f", {len(self.coarse_classes)} coarse classes" if self.coarse_classes else ""
        return (
            f"ImageDataset(name={self.name!r}, split={self.split!r}, n={len(self)}, "
            f"image={shape} uint8, {self.num_classes} classes{extra})"
        )


# --------------------------------------------------------------------------- rows
def _subset_indices(n: int, subset, seed: int) -> np.ndarray:
    """Sorted int64 row indices of a seeded subset of ``range(n)`` (all rows when ``subset`` is None).

    Raises ``ValueError`` when ``subset`` is not an integer in ``[1, n]``.
    """
    if subset is None:
        return np.arange(n, dtype=np.int64)
    if isinstance(subset, bool) or not isinstance(subset, (int, np.integer)):
        raise ValueError(f"subset must be None or an integer number of rows, got {subset!r}")
    if not 0 < subset <= n:
        raise ValueError(f"subset={subset} is out of range: this split has {n} rows, pick 1 <= subset <= {n}")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=int(subset), replace=False)).astype(np.int64)


def _stratified_test_mask(labels: np.ndarray, fraction: float = 0.2) -> np.ndarray:
    """(N,) bool: a fixed ``fraction`` of each class of the (N,) ``labels`` (seed 0; never depends on
    ``load(seed=...)``)."""
    rng = np.random.default_rng(0)
    is_test = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        is_test[rng.permutation(rows)[: int(round(fraction * len(rows)))]] = True
    return is_test


# --------------------------------------------------------------------------- files
def _stamp(paths) -> tuple:
    """Cache-key part that changes when any of ``paths`` is rewritten."""
    out = []
    for p in paths:
        st = Path(p).stat()
        out.append((str(Path(p).resolve()), st.st_mtime_ns, st.st_size))
    return tuple(out)


def _local_data_dirs() -> list[Path]:
    """``./data``, then the ``data`` folder of the repository checkout that holds the working directory
    (where ``scripts/get_data.sh`` puts files), so that notebooks running in ``notebooks/`` find them."""
    dirs = [Path("data")]
    repo = repo_root() / "data"
    if repo.resolve() != Path("data").resolve():
        dirs.append(repo)
    return dirs


def file_md5(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex MD5 digest of a file, read in chunks.

    Parameters
    ----------
    path : path-like
        The file.
    chunk_size : int
        Bytes read at a time.

    Returns
    -------
    str
        32 lowercase hex digits.

    Raises
    ------
    OSError
        The file cannot be read (``FileNotFoundError`` when it does not exist).
    """
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()


def check_md5(path: str | os.PathLike, expected: str) -> bool:
    """Whether the MD5 of ``path`` equals ``expected`` (hex, case-insensitive)."""
    return file_md5(path) == expected.strip().lower()


def _download(url: str, dest: Path, md5: str | None = None) -> None:
    """Download ``url`` to ``dest`` atomically; verify ``md5`` if given (mismatch: nothing is kept).

    Raises ``OSError`` naming ``url`` and ``dest`` when the download fails, ``ValueError`` on an MD5 mismatch.
    """
    print(f"mislabel.data: downloading {url} -> {dest}", flush=True)
    try:
        with atomic_path(dest) as tmp:
            with urllib.request.urlopen(url, timeout=60) as resp, open(tmp, "wb") as out:
                shutil.copyfileobj(resp, out, 1 << 20)
            if md5 is not None and not check_md5(tmp, md5):
                raise ValueError(
                    f"downloaded {url} has MD5 {file_md5(tmp)}, expected {md5}: the download is corrupt "
                    "or incomplete and was deleted; try again"
                )
    except OSError as exc:  # URLError and HTTPError are OSErrors
        raise OSError(f"could not download {url} to {dest}: {exc}") from exc


def _safe_extract(archive: Path, dest: Path) -> None:
    """Extract a tar archive into ``dest``, refusing links, devices and paths escaping ``dest``.

    Raises ``ValueError`` naming the first unsafe entry; nothing is extracted then.
    """
    dest = dest.resolve()
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        for m in members:
            target = (dest / m.name).resolve()
            if not (m.isfile() or m.isdir()) or os.path.isabs(m.name) or not target.is_relative_to(dest):
                raise ValueError(f"{archive} contains an unsafe entry {m.name!r}; refusing to extract it")
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, members=members, filter="data")
        else:  # pragma: no cover - Python without extraction filters
            tar.extractall(dest, members=members)
