"""What every chapter does first and last: read its parameters, show its settings, write ``metrics.json``.

Output folders
--------------
:func:`chapter_out_dir` resolves a chapter's ``out_dir`` parameter: an explicit
path wins, then ``$MISLABEL_OUT/<chapter>``, then
``<repository>/runs/book/<chapter>``.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from . import profiles as _profiles
from .._utils import atomic_path, jsonable, repo_root
from .._validation import check_share

__all__ = ["SHOWN", "as_list", "check_noise_rate", "check_min_epochs", "chapter_out_dir", "settings_keys",
           "settings_table", "settings_note", "write_metrics"]

#: settings every chapter's settings table shows (a chapter adds the ones it uses besides)
SHOWN = ("profile", "dataset", "subset", "model", "epochs", "batch_size", "lr", "detector_epochs", "detector_lr")


# --------------------------------------------------------------------------- parameters
def as_list(value, cast=float) -> list | None:
    """Normalise a notebook parameter that holds several values.

    papermill's ``-p rates "[0.3]"`` passes the *string* ``"[0.3]"`` and
    ``-p rates 0.3`` a float; this accepts both, plus lists and
    comma-separated strings.

    Parameters
    ----------
    value : None, scalar, list/tuple, or str
        A JSON list (``"[0.2, 0.4]"``), a comma-separated string
        (``"0.2,0.4"`` or ``"symmetric, asymmetric"``), one value, or a sequence.
    cast : callable
        Applied to every element (``float`` for rates, ``str`` for noise kinds).

    Returns
    -------
    list or None
        None stays None (meaning "take the profile's value").

    Examples
    --------
    >>> as_list("[0.3]")
    [0.3]
    >>> as_list("symmetric,asymmetric", str)
    ['symmetric', 'asymmetric']
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = [part.strip().strip("'\"") for part in text.strip("[]()").split(",") if part.strip()]
    if not isinstance(value, (list, tuple, np.ndarray)):
        value = [value]
    return [cast(v) for v in value]


def check_noise_rate(value, name: str = "noise_rate") -> float:
    """A chapter's noise-rate parameter as a float in (0, 1), or one clear error.

    The library accepts a rate of 0 (a clean run), but the chapters compare
    flipped with clean samples and need both.

    Parameters
    ----------
    value : float
    name : str
        The parameter's name, for the message.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If ``value`` is not a number strictly between 0 and 1 (a bool or a string is refused too).
    """
    return check_share(value, name, hint=" (the chapter compares flipped with clean samples, so it needs both)")


def check_min_epochs(value, name: str, minimum: int = 2) -> int:
    """A chapter's epoch-count parameter as an int of at least ``minimum``, or one clear error.

    Parameters
    ----------
    value : int
    name : str
        The parameter's name, for the message.
    minimum : int
        Training dynamics need more than one epoch: 2 by default.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        If ``int(value)`` is below ``minimum``.
    """
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum} (training dynamics need more than one epoch), "
                         f"got {value}")
    return value


# --------------------------------------------------------------------------- settings
def chapter_out_dir(chapter: str, out_dir: str | os.PathLike | None = None) -> Path:
    """Folder a chapter writes ``metrics.json`` into (created if missing).

    Parameters
    ----------
    chapter : str
        Chapter name, e.g. ``"01_training_dynamics"``.
    out_dir : path-like, optional
        The notebook's ``out_dir`` parameter; when given it is used as is.
        Otherwise ``$MISLABEL_OUT/<chapter>`` if that variable is set, else
        ``<repo>/runs/book/<chapter>`` (``runs/`` is ignored by git and the book).

    Returns
    -------
    pathlib.Path
        Absolute.
    """
    if out_dir is not None:
        path = Path(out_dir)
    elif os.environ.get("MISLABEL_OUT"):
        path = Path(os.environ["MISLABEL_OUT"]) / chapter
    else:
        path = repo_root() / "runs" / "book" / chapter
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def settings_keys(*extra: str) -> list[str]:
    """The settings a chapter's table shows: :data:`SHOWN` and then ``extra`` (e.g. ``"rates"``)."""
    return [*SHOWN, *extra]


def settings_table(cfg: Mapping, keys: Sequence[str]) -> pd.DataFrame:
    """A run's settings as a one-column table for the chapter to display.

    Parameters
    ----------
    cfg : mapping
        Settings from :func:`mislabel.book.profiles.get` (the profile's preset overridden by the
        chapter's parameters).
    keys : sequence of str
        Rows, e.g. :func:`settings_keys`; a key missing from ``cfg`` shows ``None``.

    Returns
    -------
    pandas.DataFrame
        Index ``keys``, one column ``value`` holding each setting as a string.
    """
    # str() per value: pandas' string dtype would show a None as NaN
    return pd.DataFrame({"value": [str(cfg.get(k)) for k in keys]}, index=list(keys), dtype=object)


def settings_note(cfg: Mapping, keys: Sequence[str] | None = None, **params) -> str:
    """A Markdown note for a chapter run with other settings than the rendered book's, else ``""``.

    The chapters' prose describes the book's own run (profile ``cpu``, the
    chapter's default parameters); a reader's re-run keeps that prose, so the
    note says which settings differ and that the figures and numbers are the
    run's own.

    Parameters
    ----------
    cfg : mapping
        Settings from :func:`mislabel.book.profiles.get`.
    keys : sequence of str, optional
        The settings the chapter uses; default all of them.
    **params
        The chapter's own parameters as ``name=(value, book_value)``.

    Returns
    -------
    str
    """
    diff = _profiles.book_differences(dict(cfg), keys, **params)
    if not diff:
        return ""
    items = "; ".join(f"`{k}` {v!r} (book: {b!r})" for k, (v, b) in diff.items())
    return (f"*This run's settings differ from the rendered book's: {items}. The figures, tables and numbers are "
            "this run's; sentences that name the book's data set, model or sizes describe the book's run.*")


# --------------------------------------------------------------------------- metrics files
def _tables_as_records(value):
    """``value`` with every DataFrame as a list of records, Series and arrays as lists, and every non-finite
    float as None (JSON's null); everything else is left to :func:`mislabel._utils.jsonable`."""
    if isinstance(value, pd.DataFrame):
        value = value.to_dict(orient="records")
    elif isinstance(value, (pd.Series, np.ndarray)):
        value = value.tolist()
    if isinstance(value, Mapping):
        return {k: _tables_as_records(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_tables_as_records(v) for v in value]
    if isinstance(value, (float, np.floating)) and not math.isfinite(value):
        return None
    return value


def write_metrics(out_dir: str | os.PathLike, payload: Mapping, name: str = "metrics.json") -> Path:
    """Write ``payload`` as indented JSON into ``out_dir/name`` atomically.

    Parameters
    ----------
    out_dir : path-like
        Created if missing.
    payload : mapping
        Builtins, NumPy scalars and arrays, and pandas tables (a DataFrame is written as a list of
        records, one per row). NaN and infinities are written as ``null``.
    name : str

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    TypeError
        For a value JSON cannot hold (a path, a set, ...), naming its entry.
    """
    path = Path(out_dir) / name
    text = json.dumps(jsonable(_tables_as_records(payload), "payload"), indent=1, allow_nan=False)
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n")
    return path
