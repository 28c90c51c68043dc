"""pipeline.capture on CIFAR-shaped data written by the test: superclass noise, twice contamination."""
import dataclasses
import pickle
import shutil

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


def test_augmentation_default_depends_on_the_data_set(tmp_path):
    from test_data import _fake_letter

    (tmp_path / "mlbench").mkdir()
    _fake_letter(tmp_path / "mlbench")
    kw = dict(subset=200, noise="symmetric", rate=0.2, model="mlp", epochs=1, test_subset=0, progress=False,
              cache_dir=tmp_path / "cache")
    # letter's 4x4 grid of unrelated features is never cropped by default: the same run (cache entry) as augment=False
    off = pipeline.capture("letter", root=tmp_path, augment=False, **kw)
    assert pipeline.capture("letter", root=tmp_path, **kw).folder == off.folder
    assert pipeline.capture("letter", root=tmp_path, augment=True, **kw).folder != off.folder
    # the name is read as data.load reads it, whatever its case: still no augmentation, the same entry
    assert pipeline.capture("LETTER", root=tmp_path, **kw).folder == off.folder
    # image data sets keep augmentation on by default
    on = pipeline.capture("synthetic", augment=True, **kw)
    assert pipeline.capture("synthetic", **kw).folder == on.folder
    assert pipeline.capture("synthetic", augment=False, **kw).folder != on.folder


def test_train_detector_caches_ensembles_under_their_own_key(tmp_path):
    cap = pipeline.capture("synthetic", subset=200, noise="symmetric", rate=0.3, model="mlp", epochs=3,
                           test_subset=0, progress=False, cache_dir=tmp_path)
    kw = dict(epochs=1, hidden_size=8, progress=False, cache_dir=tmp_path, workers=1)
    one = pipeline.train_detector(cap, **kw)
    two = pipeline.train_detector(cap, members=2, **kw)
    assert one.config["members"] == 1 and two.config["members"] == 2
    folders = sorted(p.name for p in (tmp_path / "detector").iterdir())
    assert len(folders) == 2   # a changed member count never returns the single detector
    again = pipeline.train_detector(cap, members=2, **kw)
    np.testing.assert_array_equal(again.score(cap.dynamics), two.score(cap.dynamics))
    assert sorted(p.name for p in (tmp_path / "detector").iterdir()) == folders


def test_capture_key_holds_the_data_not_only_their_name(tmp_path):
    """Two folders holding different Fashion-MNIST files never share a cache entry, nor does a folder whose
    files were replaced; the same data in another folder does (the key holds a digest of the loaded data)."""
    from test_data import _write_fake_fmnist

    kw = dict(model="mlp", epochs=1, rate=0.2, test_subset=0, progress=False, cache_dir=tmp_path / "cache",
              device="cpu")
    _write_fake_fmnist(tmp_path / "a", n_train=60, n_test=10, seed=0)
    _write_fake_fmnist(tmp_path / "b", n_train=60, n_test=10, seed=1)
    a = pipeline.capture("fashion-mnist", root=tmp_path / "a", **kw)
    b = pipeline.capture("fashion-mnist", root=tmp_path / "b", **kw)
    assert a.folder != b.folder
    from mislabel import data
    np.testing.assert_array_equal(b.clean_labels, data.load("fashion-mnist", root=tmp_path / "b").labels.numpy())
    shutil.copytree(tmp_path / "a", tmp_path / "a2")   # the same data elsewhere: the same run
    assert pipeline.capture("fashion-mnist", root=tmp_path / "a2", **kw).folder == a.folder
    _write_fake_fmnist(tmp_path / "a", n_train=60, n_test=10, seed=2)   # files replaced in place
    assert pipeline.capture("fashion-mnist", root=tmp_path / "a", **kw).folder not in (a.folder, b.folder)
    # the test split enters the key when it is used
    t1 = pipeline.capture("fashion-mnist", root=tmp_path / "a2", **{**kw, "test_subset": None})
    _write_fake_fmnist(tmp_path / "t", n_train=60, n_test=10, seed=3)
    shutil.copy(tmp_path / "a2" / "train-images-idx3-ubyte.gz", tmp_path / "t")
    shutil.copy(tmp_path / "a2" / "train-labels-idx1-ubyte.gz", tmp_path / "t")
    assert pipeline.capture("fashion-mnist", root=tmp_path / "t", **{**kw, "test_subset": None}).folder != t1.folder
    assert pipeline.capture("fashion-mnist", root=tmp_path / "t", **kw).folder == a.folder


def test_train_detector_key_follows_the_dynamics(tmp_path):
    """A capture whose dynamics were replaced (here cut to their first epoch) gets its own detector, not the
    one cached for the original dynamics; a capture made without the cache is keyed by content too."""
    kw = dict(subset=200, noise="symmetric", rate=0.3, model="mlp", epochs=3, test_subset=0, progress=False)
    cap = pipeline.capture("synthetic", cache_dir=tmp_path, **kw)
    dkw = dict(epochs=1, hidden_size=8, progress=False, cache_dir=tmp_path, workers=1)
    full = pipeline.train_detector(cap, **dkw)
    cut = pipeline.train_detector(dataclasses.replace(cap, dynamics=cap.dynamics.first_epochs(1)), **dkw)
    assert full.seq_len == 3 and cut.seq_len == 1
    assert len(list((tmp_path / "detector").iterdir())) == 2
    uncached = pipeline.capture("synthetic", cache=False, **kw)        # same run, no folder: same detector entry
    assert uncached.folder is None
    again = pipeline.train_detector(uncached, **dkw)
    assert len(list((tmp_path / "detector").iterdir())) == 2
    np.testing.assert_array_equal(again.score(cap.dynamics), full.score(cap.dynamics))
