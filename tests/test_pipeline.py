"""pipeline.capture on CIFAR-shaped data written by the test: superclass noise, twice contamination."""
import pickle

import numpy as np

from mislabel import pipeline
from test_data import _write_fake_cifar100


def test_superclass_capture_on_a_cifar100_subset(tmp_path):
    # every fine class appears in the full split (k % 100), but a 50-row subset misses most of them
    folder, _ = _write_fake_cifar100(tmp_path, n_train=300, n_test=20)
    with open(folder / "train", "rb") as fh:
        d = pickle.load(fh, encoding="bytes")
    fine = np.arange(300) % 100
    d[b"fine_labels"], d[b"coarse_labels"] = fine.tolist(), (fine // 5).tolist()
    with open(folder / "train", "wb") as fh:
        pickle.dump(d, fh)
    cap = pipeline.capture("cifar100", root=tmp_path, subset=50, noise="superclass", rate=0.4, model="mlp",
                           epochs=2, test_subset=0, progress=False, cache=False)
    flipped = cap.dynamics.is_flipped
    assert flipped.sum() == 20 and cap.folder is None
    given, clean = cap.dynamics.labels, cap.clean_labels
    assert (given[flipped] // 5 == clean[flipped] // 5).all()  # stays within the super-class
    assert (given[flipped] != clean[flipped]).all()


def test_twice_contaminated_capture_reports_both_masks(tmp_path):
    cap = pipeline.capture("synthetic", subset=200, noise="symmetric", rate=0.2, underlying_rate=0.1, model="mlp",
                           epochs=2, test_subset=0, progress=False, cache_dir=tmp_path)
    syn, under = cap.dynamics.is_flipped, cap.underlying
    assert syn.sum() == 40 and under.sum() == 20 and not (syn & under).any()
    assert ((cap.dynamics.labels != cap.clean_labels) == (syn | under)).all()
