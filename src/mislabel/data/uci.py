"""UCI Letter Recognition, Statlog Landsat Satellite and StatLog DNA, read from the ``.rda`` files of the R
package mlbench with the :mod:`rdata` package, as small uint8 "images"."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from .core import _CACHE, _local_data_dirs, _stamp, _stratified_test_mask

# UCI data sets as saved by the R package mlbench: name -> (file, object name)
_MLBENCH = {"letter": ("LetterRecognition.rda", "LetterRecognition"), "satellite": ("Satellite.rda", "Satellite"),
            "dna": ("DNA.rda", "DNA")}
#: feature columns of each mlbench data frame (besides the class)
_MLBENCH_FEATURES = {"letter": 16, "satellite": 36, "dna": 180}
#: rows of the customary StatLog training split of the DNA (splice junction) data; the other 1,186 are its test split
_DNA_TRAIN_ROWS = 2000
_MLBENCH_SYSTEM_DIR = Path("/usr/lib/R/site-library/mlbench/data")


def mlbench_folder(root: str | os.PathLike | None = None, name: str = "letter") -> Path | None:
    """Folder holding the mlbench ``.rda`` file of ``name``, or None.

    Parameters
    ----------
    root : path-like, optional
        Look only in ``root`` and ``root/mlbench``. Without it, look in
        ``$MISLABEL_DATA/mlbench``, ``./data/mlbench``, ``data/mlbench`` in the
        repository checkout around the working directory and
        ``/usr/lib/R/site-library/mlbench/data``, in that order.
    name : {"letter", "satellite", "dna"}

    Returns
    -------
    pathlib.Path or None
        The first candidate holding ``LetterRecognition.rda``, ``Satellite.rda`` or ``DNA.rda``.

    Raises
    ------
    KeyError
        ``name`` is not one of the three.
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


def _read_rda(path: Path) -> dict:
    """The objects saved in the ``.rda`` file ``path`` (R's ``save()``), by name, as :func:`rdata.read_rda` converts
    them: a data frame becomes a ``pandas.DataFrame``, a factor a ``pandas.Categorical``.

    Raises ``FileNotFoundError`` when ``path`` does not exist and ``ValueError`` naming ``path`` for anything
    that is not a readable ``.rda`` file (damaged compression, truncated or unknown data).
    """
    import pandas as pd   # both only here: finding the data folders needs neither
    import rdata

    def factor(codes, attrs):
        # R's 1-based codes (NA masked) straight into a Categorical; rdata's own factor constructor looks every
        # value's level name up in Python, which dominates reading the 181 factor columns of DNA.rda
        return pd.Categorical.from_codes(np.ma.filled(np.ma.asarray(codes), 0).astype(np.int64) - 1,
                                         attrs["levels"])

    constructors = {**rdata.conversion.DEFAULT_CLASS_MAP, "factor": factor}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # rdata warns ("assumed RDS") before it fails on a file of another kind
            return rdata.read_rda(path, constructor_dict=constructors, default_encoding="utf_8")
    except FileNotFoundError:
        raise
    except Exception as exc:   # rdata raises what its parts raise: ValueError, IndexError, EOFError, zlib.error, ...
        raise ValueError(f"{path} is not a readable .rda file ({type(exc).__name__}: {exc}); fetch it again") from exc


def _factor_codes(col) -> tuple[np.ndarray, list[str]]:
    """(N,) int64 0-based codes (-1 for NA) and the level names of a factor column."""
    if getattr(col.dtype, "name", None) != "category":
        raise ValueError("expected an R factor column (integer codes with a levels attribute)")
    return col.cat.codes.to_numpy().astype(np.int64), [str(c) for c in col.cat.categories]


def _numeric_column(col) -> np.ndarray:
    """Values of a data-frame column as float64: a numeric column as it is (NA as NaN), a factor whose levels are
    numbers (mlbench's DNA indicators, levels "0" and "1") by the number each level names."""
    if getattr(col.dtype, "name", None) != "category":
        return col.to_numpy(dtype=np.float64, na_value=np.nan)
    codes, levels = _factor_codes(col)
    if (codes < 0).any():
        raise ValueError("a feature column has missing values")
    try:
        values = np.array([float(v) for v in levels], dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"a factor feature column has non-numeric levels {levels[:3]}") from None
    return values[codes]


def _mlbench_arrays(name: str, path: Path) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """(images (N, C, H, W) uint8, labels (N,) int64, classes, is_test (N,) bool) of the whole file.

    Raises ``ValueError`` naming ``path`` when it is not the mlbench data set it should be.
    """
    obj_name = _MLBENCH[name][1]
    objs = _read_rda(path)
    if obj_name not in objs:
        raise ValueError(f"{path} holds {', '.join(map(str, objs))}, not {obj_name}; fetch the file again")
    frame = objs[obj_name]
    try:
        if not hasattr(frame, "columns"):
            raise ValueError(f"expected an R data frame, found {type(frame).__name__}")
        cols = [frame.iloc[:, i] for i in range(frame.shape[1])]
        label_col = 0 if name == "letter" else len(cols) - 1
        labels, classes = _factor_codes(cols[label_col])
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
    return images, labels, classes, is_test


def _load_mlbench(name: str, split: str, root) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(images (N, C, H, W) uint8, labels (N,) int64, classes) of one split of letter, satellite or dna, cached:
    callers hand out indexed copies. ``FileNotFoundError`` says where it looked and how to get the file."""
    fname, _ = _MLBENCH[name]
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
        images, labels, classes, is_test = _mlbench_arrays(name, path)
        _CACHE[key] = {s: (images[m].copy(), labels[m].copy(), classes)
                       for s, m in (("train", ~is_test), ("test", is_test))}
    images, labels, classes = _CACHE[key][split]
    return images, labels, list(classes)
