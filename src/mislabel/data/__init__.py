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
    neither; split: the customary first 2,000 rows / last 1,186), read with the
    ``rdata`` package from the ``LetterRecognition.rda``, ``Satellite.rda`` and
    ``DNA.rda`` files of the R package mlbench in the first of: ``root`` (when
    given, only there), ``$MISLABEL_DATA/mlbench``, ``./data/mlbench``,
    ``data/mlbench`` of the repository checkout around the working directory,
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

One module per job: :mod:`.core` (the container, subsets, checksums, downloads), :mod:`.fashion_mnist`,
:mod:`.cifar`, :mod:`.uci`, :mod:`.digits`, :mod:`.synthetic`. Their names are re-exported here; a test that
replaces a module-level name (``monkeypatch.setattr``) patches the submodule that reads it, e.g.
``mislabel.data.fashion_mnist._FMNIST_SYSTEM_DIR``.
"""
from __future__ import annotations

import os

import torch

from .._validation import check_seed
# the loaders, and names re-exported for callers and tests (private ones included)
from .cifar import _CIFAR, _load_cifar, cifar_folder
from .core import (
    _CACHE, ImageDataset, _download, _local_data_dirs, _safe_extract, _stamp, _stratified_test_mask, _subset_indices,
    check_md5, file_md5,
)
from .digits import _load_digits
from .indexed import WithIndex
from .fashion_mnist import (
    _FMNIST_FILES, _FMNIST_SYSTEM_DIR, _ROT_SEED, FASHION_MNIST_CLASSES, FASHION_MNIST_URL, _load_fashion_mnist,
    _quarter_turns, _read_idx, fashion_mnist_folder,
)
from .synthetic import _SYNTH_DEFAULT_SIZE, _SYNTH_NUM_CLASSES, _synthetic_arrays, make_synthetic
from .uci import _MLBENCH, _MLBENCH_FEATURES, _MLBENCH_SYSTEM_DIR, _load_mlbench, mlbench_folder

__all__ = [
    "DATASETS",
    "ImageDataset",
    "WithIndex",
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

#: data sets whose samples change meaning under a crop or flip (a grid of unrelated features; a 3x3
#: patch labelled by its centre pixel; a vector of indicators): training pipelines leave augmentation off
#: for them by default
NO_AUGMENT = ("letter", "satellite", "dna", "fashion-mnist-rot")


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
        ``images`` ``(N, C, H, W)`` uint8, ``labels`` ``(N,)`` int64, ``indices`` ``(N,)`` int64; a fresh copy
        each call.

    Raises
    ------
    ValueError
        Unknown ``name`` or ``split``, bad ``subset`` or ``seed``, corrupt files (the message names the file).
    FileNotFoundError
        The files are not found and ``download`` is False (the message says where it looked).
    OSError
        A download failed.
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
