"""Input checks and edge cases of train.fit, models.build, pipeline/cache writes and the repository search."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from mislabel import _utils, _validation, cache, data, models, pipeline, train
from mislabel.dynamics import Dynamics

FIT = dict(epochs=1, progress=False, device="cpu")


def _tiny(n=40, shape=(1, 8, 8), classes=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8)
    return x, np.arange(n) % classes


# --------------------------------------------------------------------------- 1. augmentation
@pytest.mark.parametrize("shape, expected", [
    ((180, 1, 1), (0, False)), ((4, 3, 3), (0, False)), ((1, 4, 4), (0, False)), ((1, 7, 7), (0, False)),
    ((1, 8, 8), (1, False)), ((1, 15, 15), (1, False)), ((1, 28, 28), (2, True)), ((3, 32, 32), (4, True)),
    ((1, 28, 4), (0, False)),
])
def test_default_augment_never_crops_tiny_images(shape, expected):
    assert train.default_augment(torch.zeros(2, *shape)) == expected


def test_auto_augment_leaves_tabular_rows_untouched():
    x, y = _tiny(60, (20, 1, 1))
    auto = train.fit("mlp", x, y, **FIT)
    none = train.fit("mlp", x, y, augment=None, **FIT)
    np.testing.assert_array_equal(auto.dynamics.probs, none.dynamics.probs)


# --------------------------------------------------------------------------- 2. history and cache
def test_history_with_numpy_numbers_reads_back(tmp_path):
    path = tmp_path / "h.csv"
    pipeline.write_history({"epoch": [np.int64(1), 2], "lr": [np.float64(0.05), torch.tensor(0.5)]}, path)
    assert path.read_text() == "epoch,lr\n1,0.05\n2,0.5\n"
    assert pipeline.read_history(path) == {"epoch": [1.0, 2.0], "lr": [0.05, 0.5]}
    assert os.listdir(tmp_path) == ["h.csv"]


def test_history_rejects_bad_columns_and_reads_legacy_numpy_text(tmp_path):
    with pytest.raises(ValueError, match="equal lengths"):
        pipeline.write_history({"a": [1, 2], "b": [1]}, tmp_path / "x.csv")
    with pytest.raises(ValueError, match=r"history\['a'\] holds 'x'"):
        pipeline.write_history({"a": ["x"]}, tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists() and os.listdir(tmp_path) == []
    (tmp_path / "old.csv").write_text("epoch,lr\n1,np.float64(0.05)\n")  # what earlier versions wrote
    assert pipeline.read_history(tmp_path / "old.csv") == {"epoch": [1.0], "lr": [0.05]}
    (tmp_path / "bad.csv").write_text("epoch,lr\n1,oops\n")
    with pytest.raises(ValueError, match="line 2 .* damaged"):
        pipeline.read_history(tmp_path / "bad.csv")


def test_cache_never_keeps_an_entry_that_fails_validation(tmp_path):
    def compute(folder):
        (folder / "x.txt").write_text("broken")

    def validate(folder):
        raise ValueError("unreadable")

    with pytest.raises(ValueError, match="unreadable"):
        cache.cached("k", {"a": 1}, compute, cache_dir=tmp_path, validate=validate)
    assert list((tmp_path / "k").iterdir()) == []
    folder = cache.cached("k", {"a": 1}, compute, cache_dir=tmp_path, validate=lambda f: None)
    assert (folder / "x.txt").read_text() == "broken"


def test_capture_with_numpy_lr_caches_a_readable_entry(tmp_path):
    kw = dict(subset=64, model="mlp", epochs=1, test_subset=0, progress=False, cache_dir=tmp_path, device="cpu")
    a = pipeline.capture("synthetic", lr=np.float64(0.05), **kw)
    b = pipeline.capture("synthetic", lr=0.05, **kw)  # the same key: must read the same, valid entry
    assert a.folder == b.folder and a.history["lr"] == [0.05]
    np.testing.assert_array_equal(a.dynamics.probs, b.dynamics.probs)


# --------------------------------------------------------------------------- 3. no pandas needed for data
def test_data_folders_are_found_without_pandas():
    code = ("import sys; sys.modules['pandas'] = None\n"
            "import mislabel.data as d, mislabel.cache as c\n"
            "d.fashion_mnist_folder(); d.mlbench_folder(); c.default_dir(); print('ok')")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("MISLABEL_DATA", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_repository_search(tmp_path, monkeypatch):
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "_toc.yml").write_text("")
    (tmp_path / "pyproject.toml").write_text("")
    deep = tmp_path / "book" / "a" / "b"
    deep.mkdir(parents=True)
    assert _utils.find_repo_root(deep) == tmp_path.resolve()
    assert _utils.find_repo_root(deep, markers=("_toc.yml", "pyproject.toml")) == (tmp_path / "book").resolve()
    monkeypatch.chdir(deep)
    monkeypatch.delenv("MISLABEL_CACHE", raising=False)
    assert cache.default_dir() == (tmp_path / "book").resolve() / ".cache" / "mislabel"


# --------------------------------------------------------------------------- 4. models
def test_mlp_trains_on_non_square_images():
    x, y = _tiny(16, (2, 8, 4))
    run = train.fit("mlp", x, y, record=None, **FIT)
    assert run.model.net[1].in_features == 2 * 8 * 4
    assert models.build("mlp", 2, 3, (8, 4))(torch.zeros(2, 2, 8, 4)).shape == (2, 3)
    # square images: unchanged size
    assert models.build("mlp", 1, 3, 8).net[1].in_features == 64


@pytest.mark.parametrize("name", ["resnet2", "resnet-4", "resnet33"])
def test_resnet_depth_needs_one_block_per_stage(name):
    with pytest.raises(ValueError, match="6n\\+2"):
        models.build(name)
    assert models.build("resnet8", 3, 2)(torch.zeros(2, 3, 8, 8)).shape == (2, 2)


# --------------------------------------------------------------------------- 5. test data
def test_test_data_is_checked_before_training():
    x, y = _tiny(20)
    with pytest.raises(ValueError, match="test_labels has 7 entries but test_images has 10"):
        train.fit("mlp", x, y, record=None, test_images=x[:10], test_labels=y[:7], **FIT)
    with pytest.raises(ValueError, match="test_labels was given without test_images"):
        train.fit("mlp", x, y, record=None, test_labels=y, **FIT)
    with pytest.raises(ValueError, match="test_images must have shape \\(M, 1, 8, 8\\)"):
        train.fit("mlp", x, y, record=None, test_images=torch.zeros(5, 1, 4, 4), test_labels=y[:5], **FIT)


# --------------------------------------------------------------------------- 6. capture(record=None)
def test_capture_rejects_record_none(tmp_path):
    with pytest.raises(ValueError, match="record must be one of 'train', 'eval'"):
        pipeline.capture("synthetic", subset=32, record=None, cache_dir=tmp_path)
    assert not any(tmp_path.iterdir())


# --------------------------------------------------------------------------- 7. numpy settings in meta
def test_numpy_settings_are_saved_as_plain_numbers(tmp_path):
    x, y = _tiny(24)
    run = train.fit("mlp", x, y, batch_size=np.int64(8), lr=np.float64(0.05), epochs=np.int64(1), seed=np.int64(3),
                    progress=False, device="cpu")
    run.dynamics.save(tmp_path / "d.npz")
    meta = Dynamics.load(tmp_path / "d.npz").meta
    assert (meta["batch_size"], meta["lr"], meta["epochs"], meta["seed"]) == (8, 0.05, 1, 3)
    assert type(meta["batch_size"]) is int and type(meta["lr"]) is float
    info = train.run_meta("cnn", 2, "train", 0, np.int64(64), np.float32(0.5), np.float64(5e-4), np.int64(10))
    json.dumps(info)  # raises on NumPy scalars


def test_bad_settings_raise_one_clear_error():
    x, y = _tiny(8)
    for kw, msg in [(dict(batch_size=0), "batch_size must be a positive integer"),
                    (dict(batch_size=True), "batch_size must be a positive integer"),
                    (dict(lr=float("nan")), "lr must be a finite number"),
                    (dict(lr=-1.0), "lr must be a finite number"),
                    (dict(seed=True), "seed must be a non-negative integer")]:
        with pytest.raises(ValueError, match=msg):
            train.fit("mlp", x, y, record=None, **kw, **FIT)


# --------------------------------------------------------------------------- 8. divergence
@pytest.mark.parametrize("lr, record", [(1e8, "train"), (1e4, "train"), (1e8, "eval")])
def test_diverging_training_says_so(lr, record):
    ds = data.make_synthetic(300, seed=0)
    with pytest.raises(train.TrainingDivergedError, match=r"diverged at epoch \d+: .* lower the learning rate"):
        train.fit("mlp", ds.images, ds.labels, epochs=3, lr=lr, record=record, progress=False, device="cpu")


def test_nan_weights_after_the_last_step_are_caught():
    lin = torch.nn.Linear(2, 2)
    train.check_finite(0.5, 0, 0.1, lin)  # finite loss and weights: no error
    with torch.no_grad():
        lin.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="diverged at epoch 1: the model's weights"):
        train.check_finite(0.5, 0, 0.1, lin)
    with pytest.raises(ValueError, match="diverged at epoch 3: the training loss is inf"):
        train.check_finite(float("inf"), 2, 0.1)


# --------------------------------------------------------------------------- 9. seeds
def test_one_seed_checker():
    assert _validation.check_seed(np.int64(3)) == 3 and type(_validation.check_seed(np.int64(3))) is int
    for bad in (True, -1, 1.0, "1", None):
        with pytest.raises(ValueError, match="seed must be a non-negative integer"):
            _validation.check_seed(bad)
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        data.make_synthetic(4, seed=True)
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        data.load("synthetic", seed=-1)
    assert len(data.make_synthetic(4, seed=np.int64(2))) == 4


# --------------------------------------------------------------------------- CUDA graphs switch
def test_cuda_graphs_switch_is_checked():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert train.check_cuda_graphs(None, cuda, named_model=True) is True
    assert train.check_cuda_graphs(None, cuda, named_model=False) is False   # your own module: eager
    assert train.check_cuda_graphs(None, cpu, named_model=True) is False
    assert train.check_cuda_graphs(False, cuda, named_model=True) is False
    with pytest.raises(ValueError, match="needs a CUDA device"):
        train.check_cuda_graphs(True, cpu, named_model=True)
    with pytest.raises(ValueError, match="True, False or None"):
        train.check_cuda_graphs("yes", cuda, named_model=True)


def test_fit_refuses_cuda_graphs_on_cpu_before_training():
    x, y = _tiny()
    with pytest.raises(ValueError, match="cuda_graphs=True needs a CUDA device"):
        train.fit("mlp", x, y, cuda_graphs=True, **FIT)
    np.testing.assert_array_equal(train.fit("mlp", x, y, cuda_graphs=False, **FIT).dynamics.probs,
                                  train.fit("mlp", x, y, **FIT).dynamics.probs)


# --------------------------------------------------------------------------- shared options of fit and fit_ddp
def test_train_options_have_fits_defaults():
    """fit_ddp takes fit's keyword arguments through TrainOptions: same names (but device, recorder,
    cuda_graphs) and same defaults."""
    import dataclasses
    import inspect
    params = inspect.signature(train.fit).parameters
    fit_only = {"device", "recorder", "cuda_graphs"}
    options = {f.name: f.default for f in dataclasses.fields(train.TrainOptions)}
    assert set(options) == {n for n, p in params.items() if p.kind is p.KEYWORD_ONLY} - fit_only
    assert all(params[n].default == d for n, d in options.items())
    with pytest.raises(TypeError, match=r"fit_ddp\(\) got an unexpected keyword argument 'recorder'"):
        train.TrainOptions.from_kwargs("fit_ddp", {"lr": 0.1, "recorder": None})
