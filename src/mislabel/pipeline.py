"""End-to-end steps shared by the CLI, the book and users: load, corrupt, train, record, cache.

:func:`capture` is Algorithm 1's step 1+2 (or step 3 on a dataset to audit):
load a dataset, synthesise label noise, train a classifier and record its
training dynamics. Results are cached on disk (:mod:`mislabel.cache`) under a
key built from every argument that affects them.
"""
from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import cache as _cache
from . import data as _data
from . import noise as _noise
from . import train as _train
from ._utils import amp_enabled, atomic_path, resolve_device
from .detector import NoiseDetector, resolve_workers
from .dynamics import Dynamics

NOISE_CHOICES = ("none", "symmetric", "asymmetric", "superclass")

#: ``record`` values :func:`capture` accepts (it always returns dynamics, so not None)
CAPTURE_RECORD_MODES = ("train", "eval")


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
    cache_hit : bool
        True when the run was read from the cache rather than trained.
    """

    dynamics: Dynamics
    history: dict
    clean_labels: np.ndarray
    underlying: np.ndarray
    folder: Path
    cache_hit: bool = False


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
            cache: bool = True, cache_dir=None, checkpoint_dir=None) -> Capture:
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
        ``record`` must be "train" or "eval" (:data:`CAPTURE_RECORD_MODES`): a capture returns dynamics.
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
        Reuse a previous identical capture; ``cache_dir`` chooses the folder. The key holds every
        setting above, a digest of the loaded data (training subset, and the test subset when used)
        and :func:`mislabel.cache.library_digest`, so data from another folder, replaced files or
        changed library code never return an earlier run. A hit says so on stderr when ``progress``
        is on (and always to the ``mislabel.cache`` logger).
    checkpoint_dir : path, optional
        Where training writes its checkpoint after every epoch (:func:`mislabel.train.fit`), so that
        the same call after an interruption resumes from the last complete epoch. Default: with
        ``cache``, a folder of the cache (``<cache>/.runs``, removed once the entry is made);
        without, none.

    Returns
    -------
    Capture
    """
    return prepare_capture(dataset, subset=subset, data_seed=data_seed, noise=noise, rate=rate,
                           noise_seed=noise_seed, underlying_rate=underlying_rate, mapping=mapping, model=model,
                           epochs=epochs, record=record, seed=seed, batch_size=batch_size, lr=lr,
                           weight_decay=weight_decay, milestones=milestones, augment=augment,
                           test_subset=test_subset, root=root, device=device, amp=amp,
                           store_full=store_full).run(progress=progress, cache=cache, cache_dir=cache_dir,
                                                      checkpoint_dir=checkpoint_dir)


def prepare_capture(dataset: str = "fashion-mnist", *, subset: int | None = None, data_seed: int = 0,
                    noise: str = "symmetric", rate: float = 0.4, noise_seed: int = 0, underlying_rate: float = 0.0,
                    mapping: str = "next", model: str = "cnn", epochs: int = 10, record: str = "train",
                    seed: int = 0, batch_size: int = 128, lr: float = 0.1, weight_decay: float = 5e-4,
                    milestones=(0.5, 0.75), augment: bool | None = None, test_subset: int | None = None,
                    root=None, device=None, amp: bool = False, store_full: bool = False) -> "CapturePlan":
    """The first half of :func:`capture` (same arguments): load and corrupt the data, settle the settings.

    Returns
    -------
    CapturePlan
        Its ``params`` identify the run (they are the cache key, without the library digest);
        :meth:`CapturePlan.run` trains (or reads the cache).
    """
    if not isinstance(dataset, str):
        raise ValueError(f"dataset must be a data set's name (a string such as 'fashion-mnist'), got {dataset!r}")
    dataset = dataset.lower()   # as data.load reads it: the augmentation default and the key must agree
    if record not in CAPTURE_RECORD_MODES:
        raise ValueError(f"record must be one of {', '.join(map(repr, CAPTURE_RECORD_MODES))} (a capture "
                         f"returns recorded dynamics), got {record!r}; use mislabel.train.fit(record=None) "
                         "to train without recording")
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
    test = None if test_subset == 0 else _data.load(dataset, split="test", root=root, subset=test_subset,
                                                     seed=data_seed)
    # the data themselves, not only their name: another root, $MISLABEL_DATA or replaced files give other data
    params["data"] = _cache.digest(ds.images, ds.labels, *(() if test is None else (test.images, test.labels)))
    noisy, synth, under = corrupt(ds.labels.numpy(), noise=noise, rate=rate, num_classes=ds.num_classes,
                                  seed=noise_seed, underlying_rate=underlying_rate,
                                  groups=_groups_for(ds, root) if noise == "superclass" else None, mapping=mapping)

    def train(folder: Path, checkpoint_dir, progress: bool) -> None:
        meta = {"dataset": dataset, "subset": subset, "noise": noise, "rate": float(rate),
                "noise_seed": noise_seed, "underlying_rate": float(underlying_rate), "classes": list(ds.classes)}
        run = _train.fit(model, ds.images, noisy, epochs=epochs, batch_size=batch_size, lr=lr,
                         weight_decay=weight_decay, milestones=milestones, augment="auto" if augment else None,
                         record=record, seed=seed, device=device, amp=params["amp"],
                         num_classes=ds.num_classes, test_images=None if test is None else test.images,
                         test_labels=None if test is None else test.labels, is_flipped=synth,
                         store_full=store_full, meta=meta, progress=progress, checkpoint_dir=checkpoint_dir)
        run.dynamics.save(folder / "dynamics.npz")
        write_history(run.history, folder / "history.csv")
        np.savez(folder / "labels.npz", clean=ds.labels.numpy(), underlying=under, indices=ds.indices)

    dev = resolve_device(device)
    params["device_type"] = dev.type  # CPU and GPU runs differ numerically
    params["amp"] = amp_enabled(amp, dev)  # what runs: amp=True on a CPU without native bfloat16 is float32
    return CapturePlan(params, train)


@dataclass
class CapturePlan:
    """A capture ready to run, from :func:`prepare_capture`.

    Attributes
    ----------
    params : dict
        Every setting of the run and a digest of its data (JSON-serialisable): two plans with equal
        ``params`` train the same run.
    """

    params: dict
    _train: object = field(repr=False)

    def run(self, *, progress: bool = True, cache: bool = True, cache_dir=None, checkpoint_dir=None) -> Capture:
        """Train and record (or read the cache); see :func:`capture` for the arguments.

        Returns
        -------
        Capture
        """
        def compute(folder: Path, work=None) -> None:
            self._train(folder, checkpoint_dir if checkpoint_dir is not None else work, progress)

        if not cache:
            with tempfile.TemporaryDirectory(prefix="mislabel-capture-") as tmp:
                compute(Path(tmp))
                return _read_capture(Path(tmp), folder=None)
        got = _cache.fetch("capture", self.params, compute, cache_dir=cache_dir,
                           validate=lambda tmp: read_history(tmp / "history.csv"),
                           load=lambda f: _read_capture(f, f), progress=progress, scratch=True)
        cap = got.value
        cap.folder, cap.cache_hit = got.folder, got.hit
        return cap


def _read_capture(src: Path, folder) -> Capture:
    dyn = Dynamics.load(src / "dynamics.npz")
    with np.load(src / "labels.npz") as z:
        clean, under = z["clean"], z["underlying"]
    return Capture(dyn, read_history(src / "history.csv"), clean, under, folder)


def train_detector(captures, *, epochs: int = 10, lr: float = 0.01, batch_size: int = 64, seed: int = 0,
                   hidden_size: int = 64, num_layers: int = 2, seq_len: int | None = None,
                   workers: int | None = None, members: int = 1, progress: bool = True, cache: bool = True,
                   cache_dir=None) -> NoiseDetector:
    """Fit a :class:`NoiseDetector` on one or several captures (cached by their dynamics and the settings).

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
    # keyed by the dynamics themselves (what fit() reads), so a capture whose dynamics were replaced or cut
    # (e.g. ``dataclasses.replace(cap, dynamics=cap.dynamics.first_epochs(5))``) never gets another's detector
    params = dict(captures=[_dynamics_digest(c.dynamics) for c in items], epochs=epochs, lr=lr,
                  batch_size=batch_size, seed=seed, hidden_size=hidden_size, num_layers=num_layers, seq_len=seq_len)
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
    return _cache.fetch("detector", params, compute, cache_dir=cache_dir, progress=progress,
                        load=lambda f: NoiseDetector.load(f / "detector.pt")).value


def _dynamics_digest(dyn: Dynamics) -> str:
    """Digest of everything :meth:`NoiseDetector.fit` can read from ``dyn``."""
    return _cache.digest(dyn.probs, dyn.labels, dyn.is_flipped, dyn.margins, dyn.runner_up)


def _csv_number(key: str, value) -> str:
    """``value`` as CSV text: an integer as ``int``, any other number as the ``repr`` of a Python float.

    NumPy and 0-d torch scalars are converted first, so ``np.float64(0.05)`` is written ``0.05``
    (its ``repr`` would be ``np.float64(0.05)``, which :func:`read_history` cannot parse).
    """
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return repr(int(value))
    try:
        return repr(float(value))
    except (TypeError, ValueError):
        raise ValueError(f"history[{key!r}] holds {value!r} ({type(value).__name__}); "
                         "every history value must be a number") from None


def write_history(history: dict, path) -> None:
    """Write a per-epoch history as CSV, atomically (a temporary file renamed into place).

    Parameters
    ----------
    history : dict of str -> list of numbers
        Equal-length columns, e.g. :attr:`mislabel.train.TrainResult.history`. Values may be
        Python, NumPy or 0-d torch numbers; they are written as plain ``int`` or ``float``.
    path : str or Path
        Destination ``.csv``.

    Raises
    ------
    ValueError
        If the columns differ in length, a column name holds a comma or newline, or a value is not a number.
    """
    keys = [str(k) for k in history]
    bad = [k for k in keys if "," in k or "\n" in k or not k]
    if bad:
        raise ValueError(f"history column names must be non-empty and hold no comma or newline, got {bad!r}")
    lengths = {k: len(history[k]) for k in history}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"history columns must have equal lengths, got {lengths}")
    rows = zip(*(history[k] for k in history))
    text = ",".join(keys) + "\n" + "".join(",".join(_csv_number(k, v) for k, v in zip(keys, r)) + "\n"
                                           for r in rows)
    with atomic_path(path) as tmp:
        tmp.write_text(text)


_NUMPY_REPR = re.compile(r"np\.(?:float|int|uint)\d*\((.*)\)")


def _parse_number(text: str) -> float:
    """A CSV value as float; also reads ``np.float64(0.05)``, which earlier versions wrote for NumPy values."""
    m = _NUMPY_REPR.fullmatch(text.strip())
    return float(m.group(1) if m else text)


def read_history(path) -> dict:
    """Read a CSV written by :func:`write_history`.

    Returns
    -------
    dict of str -> list of float
        One list per column, one value per epoch.

    Raises
    ------
    ValueError
        If a value cannot be read as a number (the message names the file, line and text).
    """
    lines = Path(path).read_text().strip().splitlines()
    if not lines:
        raise ValueError(f"{path} is empty: not a history written by write_history; delete it and re-run")
    keys = lines[0].split(",")
    rows = []
    for n, ln in enumerate(lines[1:], start=2):
        parts = ln.split(",")
        try:
            if len(parts) != len(keys):
                raise ValueError
            rows.append([_parse_number(v) for v in parts])
        except ValueError:
            raise ValueError(f"{path}: line {n} ({ln!r}) is not {len(keys)} comma-separated numbers; "
                             "the history file is damaged: delete it (or its cache folder) and re-run") from None
    cols = list(zip(*rows)) if rows else [[] for _ in keys]
    return {k: list(c) for k, c in zip(keys, cols)}
