"""Tiny files in the official CIFAR-10 "python version" format, written by the tests (CIFAR cannot be
downloaded here): used by the loader's tests and by a notebook run on CIFAR."""
from __future__ import annotations

import pickle

import numpy as np


def _dump(obj, path):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)  # byte-string keys, like the official (Python 2) files


def _write_fake_cifar10(base, rows_per_batch=2, n_test=3, seed=0, learnable=False):
    """cifar-10-batches-py/ with data_batch_1..5, test_batch and batches.meta; returns (train, test) arrays.

    Pixels are random bytes; with ``learnable`` each image is a noisy version of
    its class's own random template, so a classifier can learn the labels.
    """
    rng = np.random.default_rng(seed)
    templates = rng.integers(0, 256, size=(10, 3072))

    def pixels(y):
        if not learnable:
            return rng.integers(0, 256, size=(len(y), 3072), dtype=np.uint8)
        return np.clip(templates[y] + rng.normal(0, 40, size=(len(y), 3072)), 0, 255).astype(np.uint8)

    folder = base / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    _dump({b"num_cases_per_batch": rows_per_batch, b"label_names": names, b"num_vis": 3072}, folder / "batches.meta")
    train_x, train_y = [], []
    for i in range(1, 6):
        y = rng.integers(0, 10, size=rows_per_batch).tolist()
        x = pixels(np.array(y))
        _dump(
            {b"batch_label": f"training batch {i} of 5".encode(), b"labels": y, b"data": x,
             b"filenames": [b"img%d.png" % k for k in range(rows_per_batch)]},
            folder / f"data_batch_{i}",
        )
        train_x.append(x)
        train_y += y
    ty = rng.integers(0, 10, size=n_test).tolist()
    tx = pixels(np.array(ty))
    _dump({b"batch_label": b"testing batch 1 of 1", b"labels": ty, b"data": tx,
           b"filenames": [b"t%d.png" % k for k in range(n_test)]}, folder / "test_batch")
    return folder, (np.concatenate(train_x), np.array(train_y)), (tx, np.array(ty))
