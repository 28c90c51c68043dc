"""End-to-end steps shared by the CLI, the book and users: load, corrupt, train, record, cache.

:func:`capture` is Algorithm 1's step 1+2 (or step 3 on a dataset to audit):
load a dataset, synthesise label noise, train a classifier and record its
training dynamics. Results are cached on disk (:mod:`mislabel.cache`) under a
key built from every argument that affects them.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import cache as _cache
from . import data as _data
from . import noise as _noise
from . import train as _train
from ._utils import amp_enabled, resolve_device
from .detector import NoiseDetector, resolve_workers
from .dynamics import Dynamics

NOISE_CHOICES = ("none", "symmetric", "asymmetric", "superclass")


@dataclass
class Capture:
    """Result of :func:`capture`.

    Attributes
    ----------
    dynamics : Dynamics
        ``probs`` (N, epochs), ``labels`` the noisy labels, ``is_flipped`` the synthesized flips.
    history : dict of lists
        Per-epoch training log (see :func:`mislabel.train.fit`).
    clean_labels : ndarray of shape (N,), int64
        Labels before corruption.
    underlying : ndarray of shape (N,), bool
        Flips of the first contamination of a twice-contaminated set (all False otherwise).
    folder : pathlib.Path or None
        Where the cached files live (None when caching was off).
    """

    dynamics: Dynamics
    history: dict
    clean_labels: np.ndarray
    underlying: np.ndarray
    folder: Path


def corrupt(labels, *, noise: str, rate: float, num_classes: int, seed: int, underlying_rate: float = 0.0,
            groups=None, mapping="next"):
    """Apply synthesized noise (optionally on top of "underlying" noise).

    Returns
    -------
    noisy : ndarray (N,) int64
    synthesized : ndarray (N,) bool
        Flips of the synthesized contamination (what a detector learns from).
    underlying : ndarray (N,) bool
        Flips of the first contamination (all False when ``underlying_rate == 0``).
    """
    labels = np.asarray(labels)
    if noise not in NOISE_CHOICES:
        raise ValueError(f"unknown noise {noise!r}; choose one of {', '.join(NOISE_CHOICES)}")
    if noise == "none" or rate == 0 and underlying_rate == 0:
        return labels.astype(np.int64).copy(), np.zeros(len(labels), bool), np.zeros(len(labels), bool)
    kw = {}
    if noise == "asymmetric":
        kw["mapping"] = mapping
    if noise == "superclass":
        if groups is None:
            raise ValueError("superclass noise needs groups (fine class -> group id)")
        kw["groups"] = groups
    if underlying_rate > 0:
        noisy, synth, under = _noise.twice_contaminated(labels, underlying_rate, rate, num_classes, seed=seed,
                                                        kind=noise, **kw)
        return noisy, synth, under
    noisy, synth = _noise.make(noise, labels, rate, num_classes, seed=seed, **kw)
    return noisy, synth, np.zeros(len(labels), bool)


def _groups_for(ds, root=None) -> np.ndarray | None:
    """Fine class -> super-class map; from the full split, since a subset may miss some classes."""
    if ds.coarse_labels is not None:
        full = _data.load(ds.name, split="train", root=root)
        return _noise.groups_from_coarse(full.labels, full.coarse_labels, full.num_classes)
    if ds.name == "fashion-mnist":
        return np.asarray(_noise.FASHION_MNIST_GROUPS)
    return None


def capture(dataset: str = "fashion-mnist", *, subset: int | None = None, data_seed: int = 0,
            noise: str = "symmetric", rate: float = 0.4, noise_seed: int = 0, underlying_rate: float = 0.0,
            mapping: str = "next", model: str = "cnn", epochs: int = 10, record: str = "train", seed: int = 0,
            batch_size: int = 128, lr: float = 0.1, weight_decay: float = 5e-4, milestones=(0.5, 0.75),
            augment: bool | None = None, test_subset: int | None = None,
            root=None, device=None, amp: bool = False, store_full: bool = False, progress: bool = True,
            cache: bool = True, cache_dir=None) -> Capture:
    """Load ``dataset``, corrupt its labels, train ``model`` and record training dynamics (cached).

    Parameters
    ----------
    dataset : str
        A name known to :func:`mislabel.data.load`.
    subset : int, optional
        Number of training samples (seeded by ``data_seed``); None = all.
    noise : {"none", "symmetric", "asymmetric", "superclass"}
    rate : float
        Share of samples whose label is changed, in [0, 1).
    noise_seed : int
        Seed of the noise draw; two seeds give independent noisy sets.
    underlying_rate : float
        When > 0, the set is twice-contaminated (paper Sec 4.4): first this much
        "underlying" noise, then ``rate`` synthesized noise on other samples.
    mapping : str
        Asymmetric mapping name (see :func:`mislabel.noise.asymmetric`).
    model, epochs, record, seed, batch_size, lr, weight_decay, milestones, device, amp, store_full
        Passed to :func:`mislabel.train.fit` (``milestones=()`` keeps the learning rate constant).
    augment : bool, optional
        Batched random crop and flip (``train.default_augment``); False trains on the raw images.
        None (default): on for image data sets, off for those where a crop or flip changes what a
        sample means (:data:`mislabel.data.NO_AUGMENT`: letter's feature grid, satellite's labelled
        centre pixel).
    test_subset : int, optional
        Size of the test split used to log test accuracy; 0 disables it.
    root : path, optional
        Dataset folder.
    cache : bool
        Reuse a previous identical capture; ``cache_dir`` chooses the folder.

    Returns
    -------
    Capture
    """
    params = dict(dataset=dataset, subset=subset, data_seed=data_seed, noise=noise, rate=float(rate),
                  noise_seed=noise_seed, underlying_rate=float(underlying_rate), mapping=mapping, model=model,
                  epochs=epochs, record=record, seed=seed, batch_size=batch_size, lr=lr,
                  weight_decay=weight_decay, test_subset=test_subset, store_full=store_full, amp=amp)
    # settings added after the first release enter the key only when they differ from their
    # defaults, so earlier cache entries (made with the defaults) stay valid
    if tuple(milestones) != (0.5, 0.75):
        params["milestones"] = list(milestones)
    if augment is None:
        augment = dataset not in _data.NO_AUGMENT
    if not augment:
        params["augment"] = False
    ds = _data.load(dataset, split="train", root=root, subset=subset, seed=data_seed)
    noisy, synth, under = corrupt(ds.labels.numpy(), noise=noise, rate=rate, num_classes=ds.num_classes,
                                  seed=noise_seed, underlying_rate=underlying_rate,
                                  groups=_groups_for(ds, root) if noise == "superclass" else None, mapping=mapping)

    def compute(folder: Path) -> None:
        test = None
        if test_subset != 0:
            test = _data.load(dataset, split="test", root=root, subset=test_subset, seed=data_seed)
        meta = {"dataset": dataset, "subset": subset, "noise": noise, "rate": float(rate),
                "noise_seed": noise_seed, "underlying_rate": float(underlying_rate), "classes": list(ds.classes)}
        run = _train.fit(model, ds.images, noisy, epochs=epochs, batch_size=batch_size, lr=lr,
                         weight_decay=weight_decay, milestones=milestones, augment="auto" if augment else None,
                         record=record, seed=seed, device=device, amp=params["amp"],
                         num_classes=ds.num_classes, test_images=None if test is None else test.images,
                         test_labels=None if test is None else test.labels, is_flipped=synth,
                         store_full=store_full, meta=meta, progress=progress)
        run.dynamics.save(folder / "dynamics.npz")
        write_history(run.history, folder / "history.csv")
        np.savez(folder / "labels.npz", clean=ds.labels.numpy(), underlying=under, indices=ds.indices)

    dev = resolve_device(device)
    params["device_type"] = dev.type  # CPU and GPU runs differ numerically
    params["amp"] = amp_enabled(amp, dev)  # what runs: amp=True on a CPU without native bfloat16 is float32
    if not cache:
        with tempfile.TemporaryDirectory(prefix="mislabel-capture-") as tmp:
            compute(Path(tmp))
            return _read_capture(Path(tmp), folder=None)
    folder = _cache.cached("capture", params, compute, cache_dir=cache_dir)
    return _read_capture(folder, folder)


def _read_capture(src: Path, folder) -> Capture:
    dyn = Dynamics.load(src / "dynamics.npz")
    with np.load(src / "labels.npz") as z:
        clean, under = z["clean"], z["underlying"]
    return Capture(dyn, read_history(src / "history.csv"), clean, under, folder)


def train_detector(captures, *, epochs: int = 10, lr: float = 0.01, batch_size: int = 64, seed: int = 0,
                   hidden_size: int = 64, num_layers: int = 2, seq_len: int | None = None,
                   workers: int | None = None, members: int = 1, progress: bool = True, cache: bool = True,
                   cache_dir=None) -> NoiseDetector:
    """Fit a :class:`NoiseDetector` on one or several captures (cached by their keys and the settings).

    Parameters
    ----------
    captures : Capture or list of Capture
        Their dynamics must carry ``is_flipped``.
    epochs, lr, batch_size, seed, hidden_size, num_layers, seq_len, workers, members
        See :class:`NoiseDetector` and :meth:`NoiseDetector.fit`.

    Returns
    -------
    NoiseDetector
    """
    items = captures if isinstance(captures, (list, tuple)) else [captures]
    if any(c.folder is None for c in items):
        cache = False
    params = dict(captures=[c.folder.name if c.folder else None for c in items], epochs=epochs, lr=lr, batch_size=batch_size,
                  seed=seed, hidden_size=hidden_size, num_layers=num_layers, seq_len=seq_len)
    workers = resolve_workers(workers, torch.device("cpu"))
    if workers != 1:  # float32 rounding differs with the split; entries made before it existed had 1
        params["workers"] = workers
    if members != 1:  # ensembles; single detectors keep their earlier keys
        params["members"] = int(members)

    def compute(folder: Path) -> None:
        det = NoiseDetector(hidden_size, num_layers, seq_len=seq_len, members=members)
        det.fit([c.dynamics for c in items], epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                progress=progress, workers=workers)
        det.save(folder / "detector.pt")

    if not cache:
        with tempfile.TemporaryDirectory(prefix="mislabel-detector-") as tmp:
            compute(Path(tmp))
            return NoiseDetector.load(Path(tmp) / "detector.pt")
    folder = _cache.cached("detector", params, compute, cache_dir=cache_dir)
    return NoiseDetector.load(folder / "detector.pt")


def write_history(history: dict, path) -> None:
    """Write a per-epoch history dict of equal-length lists as CSV."""
    keys = list(history)
    rows = zip(*(history[k] for k in keys))
    Path(path).write_text(",".join(keys) + "\n" + "".join(",".join(repr(v) for v in r) + "\n" for r in rows))


def read_history(path) -> dict:
    """Read a CSV written by :func:`write_history` into a dict of float lists."""
    lines = Path(path).read_text().strip().splitlines()
    keys = lines[0].split(",")
    cols = list(zip(*(map(float, ln.split(",")) for ln in lines[1:]))) if len(lines) > 1 else [[] for _ in keys]
    return {k: list(c) for k, c in zip(keys, cols)}
