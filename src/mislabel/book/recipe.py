"""Recipe of the shipped (pretrained) detector, defined once.

The detector in ``mislabel/weights/detector.pt`` is trained on a pool of
captures from the *training* splits of two real data sets: Fashion-MNIST
(28x28 images, 10 classes; also as ``fashion-mnist-rot``, each image turned
by a fixed random number of quarter turns, 40 classes) and UCI Landsat
Satellite (4-band 3x3 pixel patches, 6 classes; ``mislabel.data.load("satellite")``).
The runs (:data:`RECIPE`) mix noise kinds (symmetric and i -> i+1 asymmetric),
noise rates (10-50%), run lengths (3-40 epochs), architectures (CNN, MLP),
schedules (step decay with augmentation, and constant learning rate without
augmentation as in a plain user loop) and how far training got: full runs on
6,000 samples, short runs on 800-3,000 samples, and under-trained runs (low
learning rate, large batches) that end at 20-45% training accuracy with
predictions piled onto a few classes. All are resampled to :data:`SEQ_LEN`
points. It is an ensemble of :data:`DETECTOR_MEMBERS` LSTMs trained on that
pool with seeds ``DETECTOR_SEED + i`` and averaged by their mean log-odds.
Each reads six channels per epoch (:data:`FEATURES`, see
:mod:`mislabel.detector`): given-label probability, the sigmoid of the AUM
margin, the margin's percentile among the run's samples, the two class-pair
shares of :func:`mislabel.detector.pair_confusion` and the percentile of the
margin's running mean.

How the recipe was chosen, and what was tried and left out, is told in the
book's model card chapter (``notebooks/06_model_card.md``).
``scripts/train_pretrained.py`` regenerates the weights and the model-card
numbers.
"""
from __future__ import annotations

from .. import data, pipeline
from ..detector import NoiseDetector

SEQ_LEN = 32
FEATURES = "prob+margin+rank+pairs+aumrank"
SUBSET = 6000
DETECTOR_EPOCHS = 16
DETECTOR_LR = 0.01
DETECTOR_SEED = 0
#: LSTMs averaged (``NoiseDetector(members=...)``), member i trained with seed DETECTOR_SEED + i
DETECTOR_MEMBERS = 3
#: gradient threads (``NoiseDetector.fit(workers=...)``). Pinned rather than chosen from the core
#: count: the batch split and the order gradients are summed in depend on it, so a fixed value
#: gives the same weights on any machine (two threads also run on one core, just slower).
DETECTOR_WORKERS = 2
#: score only the epochs before the classifier memorises wrong labels where the whole run leaves the detector
#: unsure (``NoiseDetector(memorisation_guard=...)``, "Memorisation guard" in :mod:`mislabel.detector`)
MEMORISATION_GUARD = True


def _small_runs(noise_seed: int, seed: int, rows: list[tuple]) -> list[dict]:
    """Recipe entries that choose their own data set, subset, batch size and learning rate. Each row is
    (dataset, subset, noise, rate, epochs, model, batch_size, lr, constant_lr); seeds count up from the given
    ones. Data sets in :data:`mislabel.data.NO_AUGMENT` say so explicitly (``augment=False``, the pipeline's
    default for them), so that the model card's recipe table shows it."""
    return [{"dataset": dataset, "subset": subset, "noise": noise, "rate": rate, "epochs": epochs, "model": model,
             "batch_size": batch_size, "lr": lr, "noise_seed": noise_seed + i, "data_seed": seed + i, "seed": seed + i,
             **({"milestones": ()} if constant_lr else {}), **({"augment": False} if dataset in data.NO_AUGMENT else {})}
            for i, (dataset, subset, noise, rate, epochs, model, batch_size, lr, constant_lr) in enumerate(rows)]


#: one dict per capture: keyword arguments of :func:`mislabel.pipeline.capture`
RECIPE: list[dict] = [
    {"noise": noise, "rate": rate, "epochs": epochs, "model": model, "noise_seed": 100 + i, "data_seed": i, "seed": i}
    for i, (noise, rate, epochs, model) in enumerate([
        ("symmetric", 0.1, 12, "cnn"), ("symmetric", 0.3, 24, "cnn"), ("symmetric", 0.5, 16, "mlp"),
        ("symmetric", 0.2, 40, "mlp"), ("symmetric", 0.4, 8, "cnn"), ("asymmetric", 0.1, 16, "cnn"),
        ("asymmetric", 0.3, 12, "mlp"), ("asymmetric", 0.2, 24, "cnn"), ("asymmetric", 0.4, 40, "mlp"),
        ("symmetric", 0.3, 30, "cnn"), ("asymmetric", 0.3, 30, "cnn"), ("symmetric", 0.2, 10, "mlp"),
    ])
] + [
    # plain-loop style runs: constant learning rate, no augmentation (what many users write)
    {"noise": noise, "rate": rate, "epochs": epochs, "model": model, "noise_seed": 200 + i, "data_seed": 20 + i,
     "seed": 20 + i, "milestones": (), "augment": False}
    for i, (noise, rate, epochs, model) in enumerate([
        ("symmetric", 0.2, 30, "mlp"), ("symmetric", 0.4, 15, "cnn"), ("asymmetric", 0.2, 20, "mlp"),
        ("asymmetric", 0.4, 30, "mlp"), ("symmetric", 0.1, 40, "mlp"), ("asymmetric", 0.3, 12, "cnn"),
    ])
] + [
    # a second real data set of a different kind: UCI Landsat Satellite (4 bands x 3x3 pixels, 6 classes, all
    # 5,147 training-split rows), MLP without augmentation; step decay or constant learning rate
    {"dataset": "satellite", "subset": None, "noise": noise, "rate": rate, "epochs": epochs, "model": "mlp",
     "noise_seed": 300 + i, "data_seed": 30 + i, "seed": 30 + i, "augment": False,
     **({"milestones": ()} if constant_lr else {})}
    for i, (noise, rate, epochs, constant_lr) in enumerate([
        ("symmetric", 0.2, 30, True), ("symmetric", 0.4, 20, False), ("asymmetric", 0.2, 40, False),
        ("asymmetric", 0.4, 30, True), ("symmetric", 0.1, 15, True), ("asymmetric", 0.3, 25, True),
    ])
] + [
    # many classes that are confused in a few similar pairs, as letters are: Fashion-MNIST turned by quarter
    # turns, 40 classes (garment x turn); constant learning rate, no augmentation (a flip changes the class)
    {"dataset": "fashion-mnist-rot", "subset": 6000, "noise": noise, "rate": rate, "epochs": epochs, "model": model,
     "noise_seed": 400 + i, "data_seed": 40 + i, "seed": 40 + i, "milestones": (), "augment": False}
    for i, (noise, rate, epochs, model) in enumerate([
        ("symmetric", 0.2, 20, "mlp"), ("symmetric", 0.4, 30, "mlp"), ("asymmetric", 0.2, 20, "mlp"),
        ("asymmetric", 0.4, 30, "mlp"), ("symmetric", 0.3, 15, "cnn"), ("asymmetric", 0.3, 15, "cnn"),
    ])
] + _small_runs(500, 50, [
    # short runs on small data (800-3,000 samples, 4-10 epochs, batches of 64-256, learning rate 0.05-0.2):
    # what a quick first look at a data set produces
    ("fashion-mnist", 1200, "symmetric", 0.3, 6, "cnn", 128, 0.05, False),
    ("fashion-mnist", 1500, "asymmetric", 0.3, 5, "cnn", 128, 0.1, False),
    ("fashion-mnist", 1000, "symmetric", 0.4, 4, "mlp", 128, 0.05, True),
    ("fashion-mnist", 2000, "asymmetric", 0.2, 8, "mlp", 64, 0.1, True),
    ("fashion-mnist", 3000, "symmetric", 0.2, 5, "cnn", 256, 0.05, True),
    ("fashion-mnist", 1000, "asymmetric", 0.4, 6, "cnn", 128, 0.05, True),
    ("fashion-mnist", 1500, "symmetric", 0.1, 8, "cnn", 128, 0.2, False),
    ("fashion-mnist", 2500, "asymmetric", 0.1, 4, "mlp", 128, 0.05, False),
    ("fashion-mnist-rot", 2000, "symmetric", 0.3, 6, "cnn", 128, 0.05, False),
    ("fashion-mnist-rot", 3000, "asymmetric", 0.3, 8, "mlp", 64, 0.05, True),
    ("satellite", 1000, "symmetric", 0.3, 6, "mlp", 128, 0.05, False),
    ("satellite", 1500, "asymmetric", 0.3, 5, "mlp", 128, 0.1, True),
    ("satellite", 800, "symmetric", 0.5, 8, "mlp", 64, 0.05, True),
    ("satellite", 2000, "asymmetric", 0.2, 4, "mlp", 256, 0.05, False),
    ("fashion-mnist", 1200, "symmetric", 0.5, 6, "mlp", 128, 0.1, False),
    ("fashion-mnist", 800, "asymmetric", 0.4, 10, "cnn", 128, 0.05, False),
]) + _small_runs(600, 60, [
    # under-trained runs (learning rate 0.005-0.02, batches of 256-512, 3-8 epochs): the classifier ends at 20-45%
    # training accuracy with given-label probabilities near chance, and its predictions pile onto a few classes
    ("fashion-mnist", 1500, "symmetric", 0.3, 6, "cnn", 256, 0.01, True),
    ("fashion-mnist", 1000, "asymmetric", 0.3, 5, "cnn", 256, 0.005, True),
    ("fashion-mnist", 2000, "symmetric", 0.4, 3, "mlp", 256, 0.01, False),
    ("fashion-mnist", 1200, "symmetric", 0.2, 8, "cnn", 512, 0.01, True),
    ("fashion-mnist-rot", 1500, "symmetric", 0.3, 6, "cnn", 256, 0.02, True),
    ("fashion-mnist-rot", 2000, "asymmetric", 0.2, 5, "mlp", 256, 0.01, True),
    ("satellite", 1000, "symmetric", 0.3, 6, "mlp", 256, 0.005, True),
    ("satellite", 1500, "asymmetric", 0.4, 4, "mlp", 256, 0.01, True),
])


def _spec(spec: dict, subset: int | None) -> dict:
    """Keyword arguments of :func:`pipeline.capture` for one recipe entry: by default Fashion-MNIST with
    ``subset`` samples and learning rate 0.05; an entry that names its own ``dataset``, ``subset`` or ``lr``
    keeps them."""
    return {"dataset": "fashion-mnist", "subset": subset, "lr": 0.05, **spec}


def reference_captures(progress: bool = True, cache_dir=None, subset: int = SUBSET, recipe=None) -> list:
    """Run (or load from cache) every capture of the recipe, on the training splits of its data sets.

    Parameters
    ----------
    progress : bool
        Progress bars.
    cache_dir : path-like, optional
        Cache of :func:`mislabel.pipeline.capture` (default ``$MISLABEL_CACHE``, else ``.cache/mislabel``).
    subset : int
        Samples of the entries that do not name their own subset.
    recipe : list of dict, optional
        Entries to run instead of :data:`RECIPE` (e.g. a few of them for a quick check).

    Returns
    -------
    list of mislabel.pipeline.Capture
        One per entry, in order, without a test split.
    """
    out = []
    for spec in (recipe or RECIPE):
        out.append(pipeline.capture(test_subset=0, progress=progress, cache_dir=cache_dir,
                                    **_spec(spec, subset)))
    return out


def train_reference(progress: bool = True, cache_dir=None, seq_len: int = SEQ_LEN, subset: int = SUBSET,
                    recipe=None, epochs: int = DETECTOR_EPOCHS, members: int = DETECTOR_MEMBERS) -> NoiseDetector:
    """Train the shipped detector's recipe on the captures of :func:`reference_captures`.

    Parameters
    ----------
    progress, cache_dir, subset, recipe
        As for :func:`reference_captures`.
    seq_len : int
        Input length every run is resampled to.
    epochs : int
        Training epochs of each member.
    members : int
        LSTMs averaged.

    Returns
    -------
    NoiseDetector
        Trained; ``info["training_data"]`` lists the capture arguments of every run. The same arguments give the
        same weights on the same machine (float32 sums may round differently on other CPUs).
    """
    caps = reference_captures(progress, cache_dir, subset, recipe)
    det = NoiseDetector(seq_len=seq_len, features=FEATURES, members=members, memorisation_guard=MEMORISATION_GUARD)
    det.fit([c.dynamics for c in caps], epochs=epochs, lr=DETECTOR_LR, seed=DETECTOR_SEED, progress=progress,
            workers=DETECTOR_WORKERS)
    det.info["training_data"] = [dict(split="train", **_spec(spec, subset)) for spec in (recipe or RECIPE)]
    for row in det.info["training_data"]:
        if "milestones" in row:
            row["milestones"] = list(row["milestones"])
    return det


def pool_datasets(recipe=None) -> set[str]:
    """The data sets whose *training* split fed the shipped detector (``fashion-mnist-rot`` holds Fashion-MNIST's
    images, so it counts as ``fashion-mnist``)."""
    return {_spec(spec, SUBSET)["dataset"].removesuffix("-rot") for spec in (recipe or RECIPE)}


def in_pool(dataset: str, split: str = "train") -> bool:
    """Whether samples of ``dataset``'s ``split`` were in the shipped detector's training pool."""
    return split == "train" and str(dataset).lower().removesuffix("-rot") in pool_datasets()


def check_out_of_pool(dataset: str, split: str = "train") -> None:
    """Refuse to grade the shipped detector on images it was trained on.

    Raises
    ------
    ValueError
        If ``(dataset, split)`` is in the pool: use the test split, or another data set.
    """
    if in_pool(dataset, split):
        raise ValueError(f"dataset {dataset!r}, split {split!r} is in the shipped detector's training pool "
                         f"({', '.join(sorted(pool_datasets()))}, training splits): grade it on split='test' or "
                         "on another data set")
