"""Classification datasets as uint8 image tensors: Fashion-MNIST, digits, UCI tabular sets, CIFAR-10/100, synthetic.

Every loader returns an :class:`ImageDataset` holding the whole split (or a
seeded subset of it) in memory::

    ds = load("fashion-mnist", split="train", subset=4000, seed=0)
    ds.images        # (4000, 1, 28, 28) uint8
    ds.labels        # (4000,) int64
    ds.indices       # (4000,) int64 rows of the full 60000-row train split

Where the files are looked for
------------------------------
``fashion-mnist``
    the four original IDX files (``train-images-idx3-ubyte.gz``, ...) in the
    first of: ``root`` (when given, only there), ``$MISLABEL_DATA/fashion-mnist``,
    ``./data/fashion-mnist``, ``/usr/share/datasets/fashion-mnist`` (Debian
    package ``dataset-fashion-mnist``).
``cifar10`` / ``cifar100``
    the official "python version" folders ``cifar-10-batches-py/`` and
    ``cifar-100-python/`` under ``root`` (when given, only there; ``root`` may
    also be the batches folder itself), ``$MISLABEL_DATA``, ``./data`` or the
    ``data`` folder of the repository checkout (a download without ``root`` goes there).
``digits``
    bundled with scikit-learn; nothing to download.
``letter`` / ``satellite`` / ``dna``
    UCI Letter Recognition (20,000 letters A-Z described by 16 integer
    features 0-15; split: the customary first 16,000 rows / last 4,000),
    UCI Statlog Landsat Satellite (6,435 3x3 pixel neighbourhoods in 4 spectral
    bands, 6 soil and crop classes; fixed stratified 80/20 split) and StatLog
    DNA (3,186 splice-junction windows of 60 nucleotides, each coded by 3
    indicator bits; 3 classes: exon/intron boundary, intron/exon boundary,
    neither; split: the customary first 2,000 rows / last 1,186), read from
    the ``LetterRecognition.rda``, ``Satellite.rda`` and ``DNA.rda`` files of
    the R package mlbench in the first of: ``root`` (when given, only there),
    ``$MISLABEL_DATA/mlbench``, ``./data/mlbench``, ``data/mlbench`` of the
    repository checkout around the working directory,
    ``/usr/lib/R/site-library/mlbench/data`` (Debian package
    ``r-cran-mlbench``). ``scripts/get_data.sh`` extracts the files from
    that Debian package into ``./data/mlbench`` without installing R. They are
    tabular data held as small uint8 "images" so that every model and the
    normalisation apply: letter as (1, 4, 4) with the features scaled by 17 to
    0-255 (not a picture: use the ``mlp``), satellite as (4, 3, 3) pixel values,
    dna as (180, 1, 1) with the bits as 0 or 255.
``synthetic``
    generated on the fly.

Nothing is downloaded unless ``download=True`` is passed.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ._utils import atomic_path, check_positive_int, check_seed, repo_root

__all__ = [
    "DATASETS",
    "ImageDataset",
    "load",
    "fashion_mnist_folder",
    "cifar_folder",
    "mlbench_folder",
    "NO_AUGMENT",
    "make_synthetic",
    "file_md5",
    "check_md5",
    "FASHION_MNIST_CLASSES",
]

DATASETS = ("fashion-mnist", "fashion-mnist-rot", "digits", "letter", "satellite", "dna", "cifar10", "cifar100",
            "synthetic")

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

#: data sets whose samples change meaning under a crop or flip (a grid of unrelated features; a 3x3
#: patch labelled by its centre pixel; a vector of indicators): training pipelines leave augmentation off
#: for them by default
NO_AUGMENT = ("letter", "satellite", "dna", "fashion-mnist-rot")

#: seed of the fixed quarter-turn drawn for every Fashion-MNIST image in "fashion-mnist-rot"
_ROT_SEED = 4040

# UCI data sets as saved by the R package mlbench: name -> (file, object name)
_MLBENCH = {"letter": ("LetterRecognition.rda", "LetterRecognition"), "satellite": ("Satellite.rda", "Satellite"),
            "dna": ("DNA.rda", "DNA")}
#: feature columns of each mlbench data frame (besides the class)
_MLBENCH_FEATURES = {"letter": 16, "satellite": 36, "dna": 180}
#: rows of the customary StatLog training split of the DNA (splice junction) data; the other 1,186 are its test split
_DNA_TRAIN_ROWS = 2000
_MLBENCH_SYSTEM_DIR = Path("/usr/lib/R/site-library/mlbench/data")

_SYNTH_DEFAULT_SIZE = {"train": 2000, "test": 500}
_SYNTH_NUM_CLASSES = 10

# Parsed full splits, keyed by (dataset, folder, split, file stamps); values are
# (images (N, C, H, W) uint8, labels (N,) int64, extra) NumPy arrays never handed out directly.
_CACHE: dict[tuple, tuple] = {}


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
        Dataset name, one of :data:`DATASETS`.
    split : str
        ``"train"`` or ``"test"``.
    indices : numpy.ndarray
        ``(N,)`` int64, for each row its row index in the full split (increasing).
    coarse_labels : torch.Tensor or None
        ``(N,)`` int64 superclass indices (CIFAR-100 only).
    coarse_classes : list of str or None
        Superclass names (CIFAR-100 only).
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


# --------------------------------------------------------------------------- public entry point
def load(
    name: str,
    split: str = "train",
    root: str | os.PathLike | None = None,
    subset: int | None = None,
    seed: int = 0,
    download: bool = False,
) -> ImageDataset:
    """Load a dataset split into memory.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`: ``"fashion-mnist"``, ``"fashion-mnist-rot"``,
        ``"digits"``, ``"letter"``, ``"satellite"``, ``"dna"``, ``"cifar10"``,
        ``"cifar100"``, ``"synthetic"``. ``"dna"`` is the StatLog splice-junction
        data (3 classes; 2,000 training and 1,186 test rows), each row 60
        nucleotides as 180 indicator bits, stored as 180 channels of a 1x1
        image with values 0 or 255. ``"fashion-mnist-rot"`` has 40 classes: every Fashion-MNIST
        image turned by a fixed, randomly drawn multiple of 90 degrees, its class the
        pair (garment, turn), so that many classes are confused in a few similar
        pairs (as letters are) rather than all alike.
    split : {"train", "test"}
        Which split.
    root : path-like, optional
        Folder holding the files (see the module docstring). When given, only
        this folder is searched, and downloads go there.
    subset : int, optional
        Keep only ``subset`` rows, drawn uniformly without replacement with
        ``numpy.random.default_rng(seed)`` and kept in their original order;
        ``ImageDataset.indices`` records which. ``None`` keeps every row.
    seed : int
        Seed of the subset draw (and of the samples of ``"synthetic"``).
    download : bool
        Download missing Fashion-MNIST / CIFAR files from the official sources.

    Returns
    -------
    ImageDataset
        ``images`` ``(N, C, H, W)`` uint8, ``labels`` ``(N,)`` int64.

    Raises
    ------
    ValueError
        Unknown ``name`` or ``split``, bad ``subset`` or ``seed``, corrupt files.
    FileNotFoundError
        The files are not found and ``download`` is False.
    """
    if not isinstance(name, str) or name.lower() not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    name = name.lower()
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    seed = check_seed(seed)

    coarse = coarse_classes = None
    if name == "fashion-mnist":
        images, labels = _load_fashion_mnist(split, root, download)
        classes = list(FASHION_MNIST_CLASSES)
    elif name == "fashion-mnist-rot":
        images, labels = _quarter_turns(*_load_fashion_mnist(split, root, download), split)
        classes = [f"{c}, {90 * k} deg" for k in range(4) for c in FASHION_MNIST_CLASSES]
    elif name == "digits":
        images, labels = _load_digits(split)
        classes = [str(k) for k in range(10)]
    elif name in _MLBENCH:
        images, labels, classes = _load_mlbench(name, split, root)
    elif name == "synthetic":
        images, labels = _synthetic_arrays(_SYNTH_DEFAULT_SIZE[split], split, seed)
        classes = [f"class {k}" for k in range(_SYNTH_NUM_CLASSES)]
    else:
        images, labels, classes, coarse, coarse_classes = _load_cifar(name, split, root, download)

    idx = _subset_indices(len(labels), subset, seed)
    return ImageDataset(
        images=torch.from_numpy(images[idx]),
        labels=torch.from_numpy(labels[idx]),
        classes=list(classes),
        name=name,
        split=split,
        indices=idx,
        coarse_labels=None if coarse is None else torch.from_numpy(coarse[idx]),
        coarse_classes=None if coarse_classes is None else list(coarse_classes),
    )


def _quarter_turns(images: np.ndarray, labels: np.ndarray, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Turn image i by ``k_i`` quarter turns (``k_i`` fixed per split row) and relabel it ``labels + 10 * k_i``.

    images : (N, 1, H, W) uint8 with H == W; labels : (N,) int64 in [0, 10).
    """
    k = np.random.default_rng([_ROT_SEED, 0 if split == "train" else 1]).integers(0, 4, len(labels))
    out = np.empty_like(images)
    for turns in range(4):
        rows = np.nonzero(k == turns)[0]
        out[rows] = np.rot90(images[rows], turns, axes=(2, 3))
    return out, (labels + len(FASHION_MNIST_CLASSES) * k).astype(np.int64)


def _subset_indices(n: int, subset, seed: int) -> np.ndarray:
    """Sorted int64 row indices of a seeded subset of ``range(n)`` (all rows when ``subset`` is None)."""
    if subset is None:
        return np.arange(n, dtype=np.int64)
    if isinstance(subset, bool) or not isinstance(subset, (int, np.integer)):
        raise ValueError(f"subset must be None or an integer number of rows, got {subset!r}")
    if not 0 < subset <= n:
        raise ValueError(f"subset={subset} is out of range: this split has {n} rows, pick 1 <= subset <= {n}")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=int(subset), replace=False)).astype(np.int64)


def _stamp(paths) -> tuple:
    """Cache-key part that changes when any of ``paths`` is rewritten."""
    out = []
    for p in paths:
        st = Path(p).stat()
        out.append((str(Path(p).resolve()), st.st_mtime_ns, st.st_size))
    return tuple(out)


# --------------------------------------------------------------------------- checksums
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
    """Download ``url`` to ``dest`` atomically; verify ``md5`` if given (mismatch: nothing is kept)."""
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


# --------------------------------------------------------------------------- Fashion-MNIST
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


def _local_data_dirs() -> list[Path]:
    """``./data``, then the ``data`` folder of the repository checkout that holds the working directory
    (where ``scripts/get_data.sh`` puts files), so that notebooks running in ``notebooks/`` find them."""
    dirs = [Path("data")]
    repo = repo_root() / "data"
    if repo.resolve() != Path("data").resolve():
        dirs.append(repo)
    return dirs


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
    """Parse one IDX file (unsigned-byte data) into a uint8 array of the stored shape."""
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


# --------------------------------------------------------------------------- digits
def _load_digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits, scaled to uint8, with a fixed stratified 80/20 split."""
    key = ("digits", split)
    if key in _CACHE:
        return _CACHE[key]
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8).reshape(-1, 1, 8, 8)
    labels = bunch.target.astype(np.int64)
    is_test = _stratified_test_mask(labels)
    for s, mask in (("train", ~is_test), ("test", is_test)):
        _CACHE[("digits", s)] = (images[mask].copy(), labels[mask].copy())
    return _CACHE[key]


def _stratified_test_mask(labels: np.ndarray, fraction: float = 0.2) -> np.ndarray:
    """(N,) bool: a fixed ``fraction`` of each class (seed 0; never depends on ``load(seed=...)``)."""
    rng = np.random.default_rng(0)
    is_test = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        is_test[rng.permutation(rows)[: int(round(fraction * len(rows)))]] = True
    return is_test


# --------------------------------------------------------------------------- letter, satellite (mlbench)
def mlbench_folder(root: str | os.PathLike | None = None, name: str = "letter") -> Path | None:
    """Folder holding the mlbench ``.rda`` file of ``name`` ("letter" or "satellite"), or None.

    Parameters
    ----------
    root : path-like, optional
        Look only in ``root`` and ``root/mlbench``. Without it, look in
        ``$MISLABEL_DATA/mlbench``, ``./data/mlbench``, ``data/mlbench`` in the
        repository checkout around the working directory and
        ``/usr/lib/R/site-library/mlbench/data``, in that order.
    name : {"letter", "satellite", "dna"}
    """
    fname = _MLBENCH[name][0]
    if root is not None:
        cands = [Path(root).expanduser(), Path(root).expanduser() / "mlbench"]
    else:
        cands = []
        env = os.environ.get("MISLABEL_DATA")
        if env:
            cands.append(Path(env).expanduser() / "mlbench")
        cands += [folder / "mlbench" for folder in _local_data_dirs()] + [_MLBENCH_SYSTEM_DIR]
    return next((c for c in cands if (c / fname).is_file()), None)


def _numeric_column(col) -> np.ndarray:
    """Values of a data-frame column as float64: a numeric column as it is, a factor whose levels are numbers
    (mlbench's DNA indicators, levels "0" and "1") by the number each level names."""
    from ._rdata import factor_codes

    if "levels" not in getattr(col, "attrs", {}):
        return np.asarray(col.value, dtype=np.float64)
    codes, levels = factor_codes(col)
    if (codes < 0).any():
        raise ValueError("a feature column has missing values")
    try:
        values = np.array([float(v) for v in levels], dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"a factor feature column has non-numeric levels {levels[:3]}") from None
    return values[codes]


def _load_mlbench(name: str, split: str, root) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from ._rdata import data_frame, factor_codes, read_rda

    fname, obj_name = _MLBENCH[name]
    folder = mlbench_folder(root, name)
    if folder is None:
        where = f"{root} and {root}/mlbench" if root is not None else (
            "$MISLABEL_DATA/mlbench, " + ", ".join(str(d / "mlbench") for d in _local_data_dirs()) + ", "
            + str(_MLBENCH_SYSTEM_DIR))
        raise FileNotFoundError(
            f"{name}: {fname} not found (looked in {where}). Run 'bash scripts/get_data.sh', which extracts it "
            "from the Debian package r-cran-mlbench into ./data/mlbench (apt-get download r-cran-mlbench && "
            "dpkg -x r-cran-mlbench_*.deb x && cp x/usr/lib/R/site-library/mlbench/data/*.rda data/mlbench/), "
            "or pass root= (or set MISLABEL_DATA) to a folder holding it")
    path = folder / fname
    key = (name, str(folder.resolve()), _stamp([path]))
    if key not in _CACHE:
        objs = read_rda(path)
        if obj_name not in objs:
            raise ValueError(f"{path} holds {', '.join(map(str, objs))}, not {obj_name}; fetch the file again")
        try:
            _, cols = data_frame(objs[obj_name])
            label_col = 0 if name == "letter" else len(cols) - 1
            labels, classes = factor_codes(cols[label_col])
            feats = np.stack([_numeric_column(c) for i, c in enumerate(cols) if i != label_col], 1)
        except (ValueError, IndexError, KeyError) as exc:
            raise ValueError(f"{path} does not look like the mlbench {obj_name} data set ({exc}); "
                             "fetch the file again") from None
        expected = _MLBENCH_FEATURES[name]
        if feats.shape[1] != expected or (labels < 0).any() or not np.isfinite(feats).all():
            raise ValueError(f"{path} does not look like the mlbench {obj_name} data set "
                             f"({feats.shape[1]} feature columns, expected {expected}); fetch the file again")
        if name == "letter":   # integer features 0-15 -> 0-255, as a (1, 4, 4) "image"
            images = np.rint(feats * 17).clip(0, 255).astype(np.uint8).reshape(-1, 1, 4, 4)
            is_test = np.arange(len(labels)) >= 16000   # the data set's customary split
        elif name == "dna":    # 60 nucleotides x 3 indicator bits -> 180 channels of a 1x1 "image", 0 or 255
            bits = np.isin(feats, (0.0, 1.0))
            if not bits.all():
                odd = np.unique(feats[~bits])[:3].tolist()
                raise ValueError(f"{path} does not look like the mlbench DNA data set (its features are 0/1 "
                                 f"indicators, found {odd}); fetch the file again")
            images = (feats * 255).astype(np.uint8).reshape(-1, expected, 1, 1)
            is_test = np.arange(len(labels)) >= _DNA_TRAIN_ROWS
        else:                  # rows hold 3x3 pixels x 4 bands, pixel by pixel -> (4 bands, 3, 3)
            images = np.ascontiguousarray(feats.clip(0, 255).astype(np.uint8).reshape(-1, 3, 3, 4)
                                          .transpose(0, 3, 1, 2))
            is_test = _stratified_test_mask(labels)
        _CACHE[key] = {s: (images[m].copy(), labels[m].copy(), classes)
                       for s, m in (("train", ~is_test), ("test", is_test))}
    images, labels, classes = _CACHE[key][split]
    return images, labels, list(classes)


# --------------------------------------------------------------------------- synthetic
def _synthetic_prototypes(num_classes: int = _SYNTH_NUM_CLASSES) -> np.ndarray:
    """(num_classes, 8, 8) float prototypes in {0, 1}, fixed for all seeds and splits."""
    rng = np.random.default_rng(20230207)
    while True:
        protos = (rng.random((num_classes, 8, 8)) < 0.5).astype(np.float64)
        flat = protos.reshape(num_classes, -1)
        dist = (flat[:, None, :] != flat[None, :, :]).sum(-1) + 64 * np.eye(num_classes)
        if dist.min() >= 20:  # every pair differs in >= 20 of 64 pixels
            return protos


def _synthetic_arrays(n: int, split: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    protos = _synthetic_prototypes()
    c = protos.shape[0]
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    labels = rng.permutation(np.arange(n) % c).astype(np.int64)
    pixels = 40.0 + 175.0 * protos[labels] + rng.normal(0.0, 60.0, size=(n, 8, 8))
    images = np.rint(pixels).clip(0, 255).astype(np.uint8).reshape(n, 1, 8, 8)
    return images, labels


def make_synthetic(num_samples: int, split: str = "train", seed: int = 0) -> ImageDataset:
    """A tiny, learnable, deterministic 10-class dataset of 8x8 grey images.

    Each class has a fixed random binary 8x8 prototype (the same for every
    seed); an image is ``40 + 175 * prototype + N(0, 60^2)`` noise, rounded and
    clipped to uint8. Classes are balanced (``num_samples // 10`` or one more
    each). A small MLP or CNN reaches well over 90% test accuracy within a
    few epochs. ``load("synthetic", split)`` is ``make_synthetic(2000, "train")``
    / ``make_synthetic(500, "test")``.

    Parameters
    ----------
    num_samples : int
        Number of images N (>= 1).
    split : {"train", "test"}
        Train and test draw from different random streams of the same seed.
    seed : int
        Seed of the noise and of the label order.

    Returns
    -------
    ImageDataset
        ``images`` ``(N, 1, 8, 8)`` uint8, ``labels`` ``(N,)`` int64.
    """
    check_positive_int(num_samples, "num_samples")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    images, labels = _synthetic_arrays(int(num_samples), split, check_seed(seed))
    return ImageDataset(
        images=torch.from_numpy(images),
        labels=torch.from_numpy(labels),
        classes=[f"class {k}" for k in range(_SYNTH_NUM_CLASSES)],
        name="synthetic",
        split=split,
        indices=np.arange(len(labels), dtype=np.int64),
    )


# --------------------------------------------------------------------------- CIFAR
class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds NumPy arrays and plain containers (no arbitrary code)."""

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
    """Load one CIFAR pickle (``encoding="bytes"``): a dict with byte-string keys."""
    try:
        with open(path, "rb") as f:
            obj = _ArrayUnpickler(f, encoding="bytes").load()
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
    """
    if name not in _CIFAR:
        raise ValueError(f"name must be 'cifar10' or 'cifar100', got {name!r}")
    for cand in _cifar_candidates(name, root):
        if (cand / _CIFAR[name]["meta"]).is_file():
            return cand
    return None


def _safe_extract(archive: Path, dest: Path) -> None:
    """Extract a tar archive into ``dest``, refusing links, devices and paths escaping ``dest``."""
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


def _download_cifar(name: str, root) -> Path:
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
