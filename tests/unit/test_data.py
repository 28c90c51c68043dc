"""Tests of mislabel.data: loaders, file formats, search paths, downloads (faked), subsets."""
import gzip
import hashlib
import io
import os
import pickle
from pathlib import Path
import tarfile
import urllib.request
import warnings

import numpy as np
import pytest
import torch

from mislabel import data
from mislabel.data import cifar, core, uci

from cifar_fakes import _dump, _write_fake_cifar10

FMNIST_NAMES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


# --------------------------------------------------------------------------- helpers writing official formats
def _idx_bytes(arr: np.ndarray, magic: int) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def _write_fake_fmnist(folder, n_train=6, n_test=4, seed=0):
    """Four tiny but well-formed gzip IDX files; returns the arrays written."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        (folder / FMNIST_NAMES[split][0]).write_bytes(gzip.compress(_idx_bytes(images, 2051)))
        (folder / FMNIST_NAMES[split][1]).write_bytes(gzip.compress(_idx_bytes(labels, 2049)))
        out[split] = (images, labels)
    return out


def _write_fake_cifar100(base, n_train=6, n_test=4, seed=0):
    rng = np.random.default_rng(seed)
    folder = base / "cifar-100-python"
    folder.mkdir(parents=True)
    fine_names = [f"fine{k}".encode() for k in range(100)]
    coarse_names = [f"coarse{k}".encode() for k in range(20)]
    _dump({b"fine_label_names": fine_names, b"coarse_label_names": coarse_names}, folder / "meta")
    fine_to_coarse = np.arange(100) // 5
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        fine = rng.integers(0, 100, size=n)
        _dump({b"filenames": [b"x.png"] * n, b"batch_label": split.encode(), b"fine_labels": fine.tolist(),
               b"coarse_labels": fine_to_coarse[fine].tolist(), b"data": x}, folder / split)
        out[split] = (x, fine, fine_to_coarse[fine])
    return folder, out


# --------------------------------------------------------------------------- generic
def test_unknown_dataset_and_bad_split():
    with pytest.raises(ValueError, match="fashion-mnist, fashion-mnist-rot, digits, letter, satellite, dna, cifar10, "
                                         "cifar100, synthetic"):
        data.load("mnist")
    with pytest.raises(ValueError, match="'train' or 'test'"):
        data.load("synthetic", split="val")
    assert data.DATASETS == ("fashion-mnist", "fashion-mnist-rot", "digits", "letter", "satellite", "dna", "cifar10",
                             "cifar100", "synthetic")


@pytest.mark.parametrize("subset", [0, -3, 2001, 1.5, "10", True])
def test_bad_subset(subset):
    with pytest.raises(ValueError, match="subset"):
        data.load("synthetic", subset=subset)


def test_bad_seed():
    with pytest.raises(ValueError, match="seed"):
        data.load("synthetic", seed=-1)


def test_md5_helpers(tmp_path):
    p = tmp_path / "blob.bin"
    payload = os.urandom(3 * 1024 + 17)
    p.write_bytes(payload)
    want = hashlib.md5(payload).hexdigest()
    assert data.file_md5(p, chunk_size=1000) == want
    assert data.check_md5(p, want)
    assert data.check_md5(p, want.upper())
    assert not data.check_md5(p, "0" * 32)


# --------------------------------------------------------------------------- synthetic
def test_synthetic_shapes_determinism_and_learnability():
    tr = data.load("synthetic", "train")
    te = data.load("synthetic", "test")
    assert tr.images.shape == (2000, 1, 8, 8) and tr.images.dtype == torch.uint8
    assert tr.labels.shape == (2000,) and tr.labels.dtype == torch.int64
    assert len(te) == 500 and tr.num_classes == 10 and len(tr) == 2000
    assert torch.bincount(tr.labels).tolist() == [200] * 10
    again = data.load("synthetic", "train")
    assert torch.equal(tr.images, again.images) and torch.equal(tr.labels, again.labels)
    other = data.load("synthetic", "train", seed=1)
    assert not torch.equal(tr.images, other.images)
    assert not torch.equal(tr.images[:500], te.images)
    # nearest class mean (fit on train) classifies the test split well
    x, xt = tr.images.flatten(1).float(), te.images.flatten(1).float()
    means = torch.stack([x[tr.labels == k].mean(0) for k in range(10)])
    acc = (torch.cdist(xt, means).argmin(1) == te.labels).float().mean().item()
    assert acc > 0.9
    small = data.make_synthetic(25, "test", seed=3)
    assert small.images.shape == (25, 1, 8, 8) and "synthetic" in repr(small)


def test_subset_deterministic_sorted_and_consistent():
    full = data.load("synthetic", "train", seed=0)
    a = data.load("synthetic", "train", subset=300, seed=0)
    b = data.load("synthetic", "train", subset=300, seed=0)
    c = data.load("synthetic", "train", subset=300, seed=1)
    assert a.indices.dtype == np.int64 and a.indices.shape == (300,)
    np.testing.assert_array_equal(a.indices, b.indices)
    assert np.all(np.diff(a.indices) > 0)
    assert torch.equal(a.images, full.images[torch.from_numpy(a.indices)])
    assert torch.equal(a.labels, full.labels[torch.from_numpy(a.indices)])
    np.testing.assert_array_equal(full.indices, np.arange(2000))
    # the subset seed and the synthetic data seed are the same argument
    assert not np.array_equal(a.indices, c.indices)
    every = data.load("synthetic", "train", subset=2000)
    np.testing.assert_array_equal(every.indices, np.arange(2000))


# --------------------------------------------------------------------------- digits
def test_digits_split():
    tr = data.load("digits", "train")
    te = data.load("digits", "test")
    assert len(tr) + len(te) == 1797
    assert tr.images.shape[1:] == (1, 8, 8) and tr.images.dtype == torch.uint8
    assert tr.images.max() == 255 and tr.images.min() == 0
    assert tr.classes == [str(k) for k in range(10)]
    frac = torch.bincount(te.labels, minlength=10).float() / (
        torch.bincount(te.labels, minlength=10) + torch.bincount(tr.labels, minlength=10)
    )
    assert torch.all((frac > 0.18) & (frac < 0.22))  # stratified 80/20
    # split fixed regardless of seed
    te5 = data.load("digits", "test", seed=5)
    assert torch.equal(te.images, te5.images)
    # the pixel scaling is x * 255 / 16 rounded: 16 -> 255, 8 -> 128
    from sklearn.datasets import load_digits

    raw = load_digits().images
    assert set(np.unique(np.rint(raw * 255 / 16)).tolist()) == set(torch.unique(torch.cat([tr.images, te.images]).flatten()).tolist())


# --------------------------------------------------------------------------- Fashion-MNIST (real files)
@pytest.fixture(scope="module")
def real_fmnist_folder():
    folder = data.fashion_mnist_folder()
    if folder is None:
        pytest.skip("Fashion-MNIST not installed (sudo apt-get install dataset-fashion-mnist, or set MISLABEL_DATA)")
    return folder


def test_fashion_mnist_real(real_fmnist_folder):
    te = data.load("fashion-mnist", "test")
    assert te.images.shape == (10000, 1, 28, 28) and te.images.dtype == torch.uint8
    assert te.labels.shape == (10000,) and te.labels.dtype == torch.int64
    assert torch.bincount(te.labels).tolist() == [1000] * 10
    assert te.classes[0] == "T-shirt/top" and te.classes[9] == "Ankle boot"
    sub = data.load("fashion-mnist", "train", subset=500, seed=0)
    sub2 = data.load("fashion-mnist", "train", subset=500, seed=0)
    assert sub.images.shape == (500, 1, 28, 28)
    np.testing.assert_array_equal(sub.indices, sub2.indices)
    assert sub.indices.max() < 60000
    assert torch.equal(sub.images, sub2.images)
    # handing out a tensor never exposes the cache
    sub.images.zero_()
    assert torch.equal(data.load("fashion-mnist", "train", subset=500, seed=0).images, sub2.images)


def test_fashion_mnist_rot_is_turned_and_relabelled(tmp_path):
    written = _write_fake_fmnist(tmp_path / "fashion-mnist")
    plain = data.load("fashion-mnist", "train", root=tmp_path)
    rot = data.load("fashion-mnist-rot", "train", root=tmp_path)
    assert rot.num_classes == 40 and rot.classes[13] == "Dress, 90 deg"
    assert "fashion-mnist-rot" in data.NO_AUGMENT   # a flip would turn one class into another
    turns = rot.labels // 10
    assert len(set(turns.tolist())) > 1
    assert torch.equal(rot.labels % 10, plain.labels)
    for img, src, k in zip(rot.images, plain.images, turns.tolist()):
        assert torch.equal(img, torch.rot90(src, k, dims=(1, 2)))
    assert torch.equal(data.load("fashion-mnist-rot", "train", root=tmp_path).labels, rot.labels)  # fixed turns
    assert len(written["train"][1]) == len(rot)


def test_fashion_mnist_rot_real(real_fmnist_folder):
    rot = data.load("fashion-mnist-rot", "train")
    counts = np.bincount(rot.labels.numpy() // 10, minlength=4)
    assert counts.sum() == 60000 and counts.min() > 14000   # every quarter turn about equally often
    sub = data.load("fashion-mnist-rot", "train", subset=300, seed=1)
    np.testing.assert_array_equal(sub.labels.numpy(), rot.labels.numpy()[sub.indices])


# --------------------------------------------------------------------------- Fashion-MNIST (tiny files)
def test_fashion_mnist_tiny_files_root_and_env(tmp_path, monkeypatch):
    written = _write_fake_fmnist(tmp_path / "fashion-mnist")
    ds = data.load("fashion-mnist", "train", root=tmp_path)  # root/fashion-mnist
    imgs, labs = written["train"]
    assert ds.images.shape == (6, 1, 28, 28)
    assert torch.equal(ds.images[:, 0], torch.from_numpy(imgs))
    assert torch.equal(ds.labels, torch.from_numpy(labs.astype(np.int64)))
    ds = data.load("fashion-mnist", "test", root=tmp_path / "fashion-mnist")  # root is the folder itself
    assert len(ds) == 4
    monkeypatch.setenv("MISLABEL_DATA", str(tmp_path))
    assert data.fashion_mnist_folder() == tmp_path / "fashion-mnist"
    assert len(data.load("fashion-mnist", "test")) == 4


def test_fashion_mnist_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist") as err:
        data.load("fashion-mnist", root=tmp_path / "nowhere")
    assert "download=True" in str(err.value) and "root=" in str(err.value)
    assert data.fashion_mnist_folder(tmp_path) is None


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda raw: gzip.compress(b"\x00\x00\x08\x01" + raw[4:]), "magic number 2049, expected 2051"),
        (lambda raw: gzip.compress(raw[:-5]), "implies"),
        (lambda raw: gzip.compress(raw)[:-20], "gzip"),
        (lambda raw: b"this is not gzip at all", "gzip"),
    ],
)
def test_fashion_mnist_corrupt_idx(tmp_path, damage, match):
    folder = tmp_path / "fashion-mnist"
    _write_fake_fmnist(folder)
    path = folder / FMNIST_NAMES["train"][0]
    path.write_bytes(damage(gzip.decompress(path.read_bytes())))
    with pytest.raises(ValueError, match=match):
        data.load("fashion-mnist", "train", root=tmp_path)


def test_fashion_mnist_label_count_mismatch(tmp_path):
    folder = tmp_path / "fashion-mnist"
    _write_fake_fmnist(folder)
    (folder / FMNIST_NAMES["test"][1]).write_bytes(gzip.compress(_idx_bytes(np.zeros(3, np.uint8), 2049)))
    with pytest.raises(ValueError, match="do not belong together"):
        data.load("fashion-mnist", "test", root=tmp_path)


class _FakeResponse(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def test_fashion_mnist_download_faked(tmp_path, monkeypatch):
    source = tmp_path / "server"
    written = _write_fake_fmnist(source)
    urls = []

    def fake_urlopen(url, timeout=None):
        urls.append(url)
        return _FakeResponse((source / url.rsplit("/", 1)[1]).read_bytes())

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    dest = tmp_path / "dest"
    ds = data.load("fashion-mnist", "test", root=dest, download=True)
    assert len(urls) == 4 and all(u.startswith(data.FASHION_MNIST_URL) for u in urls)
    assert sorted(p.name for p in dest.iterdir()) == sorted(n for pair in FMNIST_NAMES.values() for n in pair)
    assert torch.equal(ds.images[:, 0], torch.from_numpy(written["test"][0]))


# --------------------------------------------------------------------------- CIFAR-10
def test_cifar10_tiny_pickles(tmp_path):
    folder, (x, y), (tx, ty) = _write_fake_cifar10(tmp_path)
    ds = data.load("cifar10", "train", root=tmp_path)
    assert ds.images.shape == (10, 3, 32, 32) and ds.images.dtype == torch.uint8
    assert ds.labels.dtype == torch.int64 and ds.labels.tolist() == y.tolist()
    assert ds.classes[1] == "automobile" and ds.num_classes == 10 and ds.coarse_labels is None
    # layout: row = 1024 red, 1024 green, 1024 blue values, each 32x32 row-major
    for r, c, h, w in [(0, 0, 0, 0), (3, 1, 5, 7), (9, 2, 31, 31), (6, 2, 0, 31), (7, 0, 31, 0)]:
        assert ds.images[r, c, h, w].item() == x[r, c * 1024 + h * 32 + w]
    te = data.load("cifar10", "test", root=folder)  # root may be the batches folder itself
    assert te.images.shape == (3, 3, 32, 32) and te.labels.tolist() == ty.tolist()
    assert torch.equal(te.images.reshape(3, -1), torch.from_numpy(tx))
    sub = data.load("cifar10", "train", root=tmp_path, subset=4, seed=2)
    assert torch.equal(sub.images, ds.images[torch.from_numpy(sub.indices)])


def test_cifar10_known_pixel(tmp_path):
    folder, _, _ = _write_fake_cifar10(tmp_path)
    d = pickle.load(open(folder / "data_batch_2", "rb"), encoding="bytes")
    d[b"data"][1, :] = 0
    d[b"data"][1, 1024 + 3 * 32 + 4] = 200  # green, row 3, column 4 of the 2nd image of batch 2
    _dump(d, folder / "data_batch_2")
    ds = data.load("cifar10", "train", root=tmp_path)
    img = ds.images[2 + 1]  # batches of 2 rows: batch 2 row 1 is overall row 3
    assert img[1, 3, 4].item() == 200 and img.sum().item() == 200


def test_cifar10_env_var(tmp_path, monkeypatch):
    _write_fake_cifar10(tmp_path)
    monkeypatch.setenv("MISLABEL_DATA", str(tmp_path))
    assert data.cifar_folder("cifar10") == tmp_path / "cifar-10-batches-py"
    assert len(data.load("cifar10", "test")) == 3


def test_cifar_missing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MISLABEL_DATA", raising=False)
    for name in ("cifar10", "cifar100"):
        with pytest.raises(FileNotFoundError, match="download=True"):
            data.load(name)
    folder, _, _ = _write_fake_cifar10(tmp_path / "data")
    (folder / "data_batch_4").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_4"):
        data.load("cifar10", "train")
    assert len(data.load("cifar10", "test")) == 3  # test split still complete


def test_cifar_found_from_a_subfolder_of_the_checkout(tmp_path, monkeypatch):
    # the book runs its notebooks in <repo>/notebooks; the README puts CIFAR in <repo>/data
    monkeypatch.delenv("MISLABEL_DATA", raising=False)
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    folder, _, _ = _write_fake_cifar10(tmp_path / "data")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert data.cifar_folder("cifar10").resolve() == folder.resolve()
    assert len(data.load("cifar10", "test")) == 3
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "data")):   # the message names the checkout's folder
        data.load("cifar100")


def test_cifar_download_without_root_goes_to_the_checkout(tmp_path, monkeypatch):
    archive = _cifar10_archive(tmp_path / "src")
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: _FakeResponse(archive.read_bytes()))
    monkeypatch.setitem(cifar._CIFAR["cifar10"], "md5", hashlib.md5(archive.read_bytes()).hexdigest())
    monkeypatch.delenv("MISLABEL_DATA", raising=False)
    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    (repo / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    monkeypatch.chdir(repo / "notebooks")
    assert len(data.load("cifar10", "test", download=True)) == 3
    assert sorted(p.name for p in (repo / "data").iterdir()) == ["cifar-10-batches-py"]
    assert not (repo / "notebooks" / "data").exists()


def test_cifar_corrupt_pickles(tmp_path):
    folder, _, _ = _write_fake_cifar10(tmp_path)
    (folder / "test_batch").write_bytes(b"\x80\x02garbage")
    with pytest.raises(ValueError, match="test_batch"):
        data.load("cifar10", "test", root=tmp_path)
    # a pickle that would run code is refused, not executed
    (folder / "test_batch").write_bytes(pickle.dumps(os.getcwd, protocol=2))  # any global outside NumPy
    with pytest.raises(ValueError, match="refusing"):
        data.load("cifar10", "test", root=tmp_path)
    _dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, folder / "test_batch")
    with pytest.raises(ValueError, match="3072"):
        data.load("cifar10", "test", root=tmp_path)
    _dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, folder / "test_batch")
    with pytest.raises(ValueError, match="labels"):
        data.load("cifar10", "test", root=tmp_path)
    _dump({b"labels": [0, 1]}, folder / "test_batch")
    with pytest.raises(ValueError, match="b'data'"):
        data.load("cifar10", "test", root=tmp_path)


# --------------------------------------------------------------------------- CIFAR-100
def test_cifar100_tiny_pickles(tmp_path):
    folder, written = _write_fake_cifar100(tmp_path)
    ds = data.load("cifar100", "train", root=tmp_path)
    x, fine, coarse = written["train"]
    assert ds.images.shape == (6, 3, 32, 32) and ds.num_classes == 100
    assert ds.labels.tolist() == fine.tolist()
    assert ds.coarse_labels.dtype == torch.int64 and ds.coarse_labels.tolist() == coarse.tolist()
    assert len(ds.coarse_classes) == 20 and ds.coarse_classes[3] == "coarse3" and ds.classes[42] == "fine42"
    r, c, h, w = 4, 2, 17, 9
    assert ds.images[r, c, h, w].item() == x[r, c * 1024 + h * 32 + w]
    sub = data.load("cifar100", "test", root=folder, subset=2, seed=0)
    assert sub.coarse_labels.tolist() == written["test"][2][sub.indices].tolist()


# --------------------------------------------------------------------------- CIFAR download (faked) and extraction
def _cifar10_archive(tmp_path):
    src = tmp_path / "src"
    _write_fake_cifar10(src)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return archive


def test_cifar10_download_faked(tmp_path, monkeypatch):
    archive = _cifar10_archive(tmp_path)
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: _FakeResponse(archive.read_bytes()))
    dest = tmp_path / "dest"
    # wrong checksum (the real one is for the official archive): error, nothing left behind
    with pytest.raises(ValueError, match="MD5"):
        data.load("cifar10", root=dest, download=True)
    assert list(dest.iterdir()) == []
    monkeypatch.setitem(cifar._CIFAR["cifar10"], "md5", hashlib.md5(archive.read_bytes()).hexdigest())
    ds = data.load("cifar10", "test", root=dest, download=True)
    assert len(ds) == 3
    assert sorted(p.name for p in dest.iterdir()) == ["cifar-10-batches-py"]


def test_safe_extract_refuses_escaping_paths(tmp_path):
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(bad, "w:gz") as tar:
        info = tarfile.TarInfo("../evil.txt")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ValueError, match="unsafe"):
        core._safe_extract(bad, out)
    assert not (tmp_path / "evil.txt").exists()
    link = tmp_path / "link.tar.gz"
    with tarfile.open(link, "w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-py/x")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(ValueError, match="unsafe"):
        core._safe_extract(link, out)


# --------------------------------------------------------------------------- letter / satellite (R .rda files)
def _xdr_int(v: int) -> bytes:
    return int(v).to_bytes(4, "big", signed=True)


def _xdr_str(s) -> bytes:
    if s is None:
        return _xdr_int(9) + _xdr_int(-1)
    b = s.encode()
    return _xdr_int(0x40009) + _xdr_int(len(b)) + b   # CHARSXP (UTF-8 flag bit set)


def _xdr_strsxp(items) -> bytes:
    return _xdr_int(16) + _xdr_int(len(items)) + b"".join(_xdr_str(s) for s in items)


def _xdr_attrs(pairs, symbols: dict) -> bytes:
    """Attribute pairlist; repeated symbols are written as references, as R does."""
    out = b""
    for name, value in pairs:
        out += _xdr_int(2 | (1 << 10))
        if name in symbols:
            out += _xdr_int(255 | (symbols[name] << 8))
        else:
            symbols[name] = len(symbols) + 1
            out += _xdr_int(1) + _xdr_str(name)
        out += value
    return out + _xdr_int(254)


def _write_rda(path, obj_name, columns, label_at, levels, codes, compress=gzip.compress):
    """A data frame (feature columns + one factor label column) saved as R's save() would, format version 2.
    A feature column is an array (a double column) or a pair (levels, 1-based codes) (a factor column)."""
    symbols: dict = {obj_name: 1}   # the binding's name is the first symbol in the stream
    n = len(codes)

    def factor(levels, codes):
        return (_xdr_int(13 | (1 << 8) | (1 << 9)) + _xdr_int(n) + np.asarray(codes, dtype=">i4").tobytes()
                + _xdr_attrs([("levels", _xdr_strsxp(levels)), ("class", _xdr_strsxp(["factor"]))], symbols))

    cols = [factor(*col) if isinstance(col, tuple) else
            _xdr_int(14) + _xdr_int(n) + np.asarray(col, dtype=">f8").tobytes() for col in columns]
    cols.insert(label_at, factor(levels, codes))
    names = [f"x.{i}" for i in range(len(columns))]
    names.insert(label_at, "label")
    frame = _xdr_int(19 | (1 << 8) | (1 << 9)) + _xdr_int(len(cols)) + b"".join(cols)
    frame += _xdr_attrs([("names", _xdr_strsxp(names)),
                         ("row.names", _xdr_int(13) + _xdr_int(2) + _xdr_int(-2 ** 31) + _xdr_int(-n)),
                         ("class", _xdr_strsxp(["data.frame"]))], symbols)
    body = _xdr_int(2 | (1 << 10)) + _xdr_int(1) + _xdr_str(obj_name) + frame + _xdr_int(254)
    raw = b"RDX2\nX\n" + _xdr_int(2) + _xdr_int(0x40002) + _xdr_int(0x20300) + body
    path.write_bytes(compress(raw))


def test_read_rda_by_hand(tmp_path):
    """gzip, xz and uncompressed files, strings with and without an encoding flag: a data frame with a numeric
    and a factor column (NA code -1); rdata's warnings stay inside."""
    import lzma

    no_flag = lambda b: b.replace(_xdr_int(0x40009), _xdr_int(9))   # noqa: E731 - strings of unknown encoding
    for k, compress in enumerate((gzip.compress, lzma.compress, lambda b: b, no_flag)):
        p = tmp_path / f"f{k}.rda"
        _write_rda(p, "Frame", [[1.5, -2.0, 3.25]], 1, ["a", "b"], [2, 1, -2 ** 31], compress)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            objs = uci._read_rda(p)
        assert list(objs) == ["Frame"]
        frame = objs["Frame"]
        assert list(frame.columns) == ["x.0", "label"]
        np.testing.assert_array_equal(uci._numeric_column(frame["x.0"]), [1.5, -2.0, 3.25])
        codes, levels = uci._factor_codes(frame["label"])
        assert codes.dtype == np.int64 and codes.tolist() == [1, 0, -1] and levels == ["a", "b"]
        with pytest.raises(ValueError, match="expected an R factor column"):
            uci._factor_codes(frame["x.0"])


@pytest.mark.parametrize("damage", [
    lambda good, raw: gzip.compress(b"RDA2\nA\n1\n"),               # not the XDR format
    lambda good, raw: gzip.compress(raw[:-30]),                      # truncated data
    lambda good, raw: good[:-20],                                    # truncated gzip stream
    lambda good, raw: b"\xfd7zXZ\x00 not really xz",                 # damaged xz
    lambda good, raw: b"neither compressed nor R data",
    lambda good, raw: b"",
    lambda good, raw: gzip.compress(raw[:52] + _xdr_int(99) + raw[56:]),   # the frame's type made unknown
])
def test_read_rda_bad_files(tmp_path, damage):
    """Whatever rdata raises on a damaged file becomes one ValueError that names the file (no warnings)."""
    p = tmp_path / "LetterRecognition.rda"
    _write_rda(p, "LetterRecognition", [[1.0, 2.0]], 0, ["a"], [1, 1])
    good = p.read_bytes()
    p.write_bytes(damage(good, gzip.decompress(good)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"LetterRecognition.rda is not a readable .rda file \(.+\); fetch it again"):
            uci._read_rda(p)
        with pytest.raises(ValueError, match="LetterRecognition.rda is not a readable .rda file"):
            data.load("letter", root=tmp_path)
    with pytest.raises(FileNotFoundError):
        uci._read_rda(tmp_path / "missing.rda")


def test_read_rda_damaged_gzip_data(tmp_path):
    """Damaged deflate data inside an intact gzip header raises zlib.error; it becomes the library's error."""
    p = tmp_path / "Satellite.rda"
    _write_rda(p, "Satellite", [[1.0, 2.0]] * 36, 36, ["a"], [1, 1])
    damaged = bytearray(p.read_bytes())
    damaged[10] = 0xFF   # the first deflate block header, after gzip's 10-byte one: an invalid block type
    p.write_bytes(bytes(damaged))
    with pytest.raises(ValueError, match=r"Satellite.rda is not a readable .rda file \(.*invalid block type\); "
                                         "fetch it again"):
        uci._read_rda(p)
    with pytest.raises(ValueError, match="not a readable .rda file"):
        data.load("satellite", root=tmp_path)


def _fake_letter(folder, n=20010):
    rng = np.random.default_rng(0)
    feats = rng.integers(0, 16, size=(16, n)).astype(float)
    codes = np.arange(n) % 26 + 1
    _write_rda(folder / "LetterRecognition.rda", "LetterRecognition", list(feats), 0,
               [chr(65 + k) for k in range(26)], codes)
    return feats, codes - 1


def test_letter_and_satellite_from_tiny_files(tmp_path, monkeypatch):
    folder = tmp_path / "mlbench"
    folder.mkdir()
    feats, labels = _fake_letter(folder)
    tr, te = data.load("letter", "train", root=tmp_path), data.load("letter", "test", root=tmp_path)
    assert tr.images.shape == (16000, 1, 4, 4) and len(te) == 4010 and tr.num_classes == 26
    # row 0: features scaled by 17 into 0-255, laid out row-major over the 4x4 grid
    np.testing.assert_array_equal(tr.images[0].flatten().numpy(), feats[:, 0] * 17)
    assert tr.labels[:3].tolist() == labels[:3].tolist() and te.labels[0] == labels[16000]
    assert tr.classes[0] == "A" and te.classes[25] == "Z"

    # satellite: pixel-major rows (3x3 pixels x 4 bands) become (4 bands, 3, 3)
    n = 60
    rng = np.random.default_rng(1)
    sat = rng.integers(0, 256, size=(36, n)).astype(float)
    _write_rda(folder / "Satellite.rda", "Satellite", list(sat), 36, ["red soil", "cotton crop", "grey soil"],
               np.arange(n) % 3 + 1)
    monkeypatch.setenv("MISLABEL_DATA", str(tmp_path))
    tr, te = data.load("satellite", "train"), data.load("satellite", "test")
    assert len(tr) + len(te) == n and len(te) == 12 and tr.images.shape[1:] == (4, 3, 3)
    assert torch.bincount(te.labels).tolist() == [4, 4, 4]   # stratified 20%
    row = 0
    first = np.flatnonzero(~core._stratified_test_mask(np.arange(n) % 3))[row]   # its row in the file
    # band b of pixel (i, j) is column 4 * (3 * i + j) + b of the row
    for b, i, j in ((0, 0, 0), (3, 0, 0), (1, 2, 1), (2, 1, 2)):
        assert tr.images[row, b, i, j] == sat[4 * (3 * i + j) + b, first]
    assert tr.classes == ["red soil", "cotton crop", "grey soil"]


def test_dna_from_tiny_file(tmp_path):
    """DNA's features are factor columns with levels "0"/"1": 180 bits per row become 180 channels of 0 or 255,
    the first 2,000 rows are the training split."""
    n = 2006
    rng = np.random.default_rng(2)
    bits = rng.integers(0, 2, size=(180, n))
    codes = np.arange(n) % 3 + 1
    # factor codes are 1-based; the levels name the values, "1" first in some columns (R orders them as it met them)
    columns = [(["0", "1"], b + 1) if k % 2 else (["1", "0"], 2 - b) for k, b in enumerate(bits)]
    _write_rda(tmp_path / "DNA.rda", "DNA", columns, 180, ["ei", "ie", "n"], codes)
    tr, te = data.load("dna", "train", root=tmp_path), data.load("dna", "test", root=tmp_path)
    assert tr.images.shape == (2000, 180, 1, 1) and te.images.shape == (6, 180, 1, 1)
    np.testing.assert_array_equal(tr.images[5, :, 0, 0].numpy(), bits[:, 5] * 255)
    np.testing.assert_array_equal(te.images[1, :, 0, 0].numpy(), bits[:, 2001] * 255)
    assert tr.classes == ["ei", "ie", "n"] and te.labels.tolist() == list(codes[2000:] - 1)
    assert "dna" in data.NO_AUGMENT
    # a value other than 0/1, a non-numeric level and a missing value are each rejected with the file named
    for bad, match in (((["0", "2"], bits[0] + 1), r"0/1 indicators, found \[2.0\]"),
                       ((["a", "b"], bits[0] + 1), "non-numeric levels"),
                       ((["0", "1"], np.r_[-2 ** 31, bits[0, 1:] + 1]), "missing values")):
        _write_rda(tmp_path / "DNA.rda", "DNA", [bad] + columns[1:], 180, ["ei", "ie", "n"], codes)
        with pytest.raises(ValueError, match=f"DNA.rda does not look like.*{match}"):
            data.load("dna", root=tmp_path)


def test_mlbench_missing_and_wrong_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="get_data.sh"):
        data.load("letter", root=tmp_path)
    _write_rda(tmp_path / "Satellite.rda", "Satellite", [[1.0, 2.0]] * 5, 5, ["a"], [1, 1])
    with pytest.raises(ValueError, match="does not look like"):
        data.load("satellite", root=tmp_path)
    _write_rda(tmp_path / "LetterRecognition.rda", "Other", [[1.0]], 0, ["a"], [1])
    with pytest.raises(ValueError, match="not LetterRecognition"):
        data.load("letter", root=tmp_path)
    # an object of the right name that is not a data frame (a bare numeric vector)
    vec = _xdr_int(14) + _xdr_int(2) + np.asarray([1.0, 2.0], dtype=">f8").tobytes()
    body = _xdr_int(2 | (1 << 10)) + _xdr_int(1) + _xdr_str("LetterRecognition") + vec + _xdr_int(254)
    (tmp_path / "LetterRecognition.rda").write_bytes(
        gzip.compress(b"RDX2\nX\n" + _xdr_int(2) + _xdr_int(0x40002) + _xdr_int(0x20300) + body))
    with pytest.raises(ValueError, match="does not look like.*expected an R data frame"):
        data.load("letter", root=tmp_path)


def test_letter_and_satellite_real():
    if data.mlbench_folder(name="letter") is None or data.mlbench_folder(name="satellite") is None:
        pytest.skip("mlbench data not fetched (bash scripts/get_data.sh)")
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # mlbench's strings carry no encoding flag: rdata would warn about each
        assert list(uci._read_rda(data.mlbench_folder(name="letter") / "LetterRecognition.rda")) == ["LetterRecognition"]
    tr, te = data.load("letter", "train"), data.load("letter", "test")
    assert (len(tr), len(te)) == (16000, 4000)
    assert torch.bincount(torch.cat([tr.labels, te.labels])).tolist()[:3] == [789, 766, 736]
    assert int(tr.images.max()) == 255 and int(tr.images.min()) == 0
    if data.mlbench_folder(name="dna") is not None:
        dna = [data.load("dna", s) for s in ("train", "test")]
        assert [len(d) for d in dna] == [2000, 1186] and dna[0].images.shape[1:] == (180, 1, 1)
        assert torch.bincount(dna[0].labels).tolist() == [464, 485, 1051]   # StatLog's training split
        assert set(torch.unique(dna[1].images).tolist()) == {0, 255}
        # every window codes each of its 60 nucleotides with at most one bit set (A, C, G, T: 100, 010, 001, 000)
        assert int((dna[0].images.reshape(2000, 60, 3) > 0).sum(2).max()) == 1
    sat = [data.load("satellite", s) for s in ("train", "test")]
    assert sum(len(s) for s in sat) == 6435 and sat[0].num_classes == 6
    assert int(sat[0].images.min()) >= 27 and int(sat[0].images.max()) <= 157


def test_mlbench_found_from_a_subfolder_of_the_checkout(tmp_path, monkeypatch):
    # notebooks run in <repo>/notebooks; scripts/get_data.sh writes <repo>/data/mlbench
    monkeypatch.delenv("MISLABEL_DATA", raising=False)
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (tmp_path / "data" / "mlbench").mkdir(parents=True)
    (tmp_path / "data" / "mlbench" / "DNA.rda").write_bytes(b"")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert data.mlbench_folder(name="dna").resolve() == (tmp_path / "data" / "mlbench").resolve()
    monkeypatch.chdir(tmp_path)   # ./data/mlbench and the checkout's are one folder: listed once
    assert core._local_data_dirs() == [Path("data")]
