"""``mislabel-book run NN [-p NAME VALUE ...] [--name NAME]``: re-run one chapter of the book with other settings.

The chapter (``notebooks/NN_*.md``, a MyST Markdown notebook) is converted to
a notebook with jupytext and executed by papermill with the parameters given,
its ``out_dir`` set to ``runs/<name>/`` of the book's checkout. That folder
then holds the executed notebook and the chapter's ``metrics.json``::

    mislabel-book run 01 -p noise_rate 0.6 --name mine
    make chapter CH=03 ARGS='-p rates "[0.6]"'

Values are read as papermill's ``-p`` reads them: ``None``, ``True``,
``False``, integers and floats; anything else is a string (e.g. ``"[0.3]"``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .._utils import find_repo_root

__all__ = ["book_root", "chapters", "chapter_parameters", "run_chapter", "main"]


class BookError(Exception):
    """Bad input, reported by :func:`main` as one line with exit status 2."""


def book_root() -> Path:
    """The book's checkout (the folder holding ``_toc.yml``): the nearest one at or above the current folder,
    else the checkout this package is installed from.

    Raises
    ------
    BookError
        If neither holds the book (a non-editable install).
    """
    root = find_repo_root(markers=("_toc.yml",))
    if root is None or not (root / "notebooks").is_dir():
        raise BookError("the book's chapters (notebooks/*.md) were not found: run from the repository checkout, "
                        "with the package installed from it (pip install -e .)")
    return root


def chapters(notebooks: str | Path | None = None) -> dict[str, Path]:
    """The chapters by number: ``{"01": .../notebooks/01_training_dynamics.md, ...}``.

    Parameters
    ----------
    notebooks : path-like, optional
        Folder of the chapters; default ``notebooks/`` of :func:`book_root`.
    """
    folder = Path(notebooks) if notebooks is not None else book_root() / "notebooks"
    return {p.name[:2]: p for p in sorted(folder.glob("[0-9][0-9]_*.md"))}


def _chapter(chapter: str | Path) -> Path:
    """A chapter's file from its number (``"03"``, ``"3"``) or a path to its ``.md`` file."""
    path = Path(chapter)
    if path.suffix == ".md" and path.is_file():
        return path
    known = chapters()
    key = str(chapter).zfill(2)
    if key not in known:
        listing = ", ".join(f"{k} ({p.stem[3:]})" for k, p in known.items())
        raise BookError(f"unknown chapter {str(chapter)!r}; the chapters are {listing}")
    return known[key]


def _notebook(path: Path):
    import jupytext

    return jupytext.read(path)


def chapter_parameters(chapter: str | Path) -> dict:
    """The parameters of a chapter and their defaults, read from its cell tagged ``parameters``."""
    nb = _notebook(_chapter(chapter))
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    params: dict = {}
    exec(cells[0].source, {}, params)   # simple literals only (checked by the tests)
    return params


def run_chapter(chapter: str | Path, run_dir: str | Path, parameters: dict | None = None) -> Path:
    """Execute one chapter with papermill, as ``mislabel-book run`` does.

    Parameters
    ----------
    chapter : str or path-like
        Chapter number (``"03"``) or the path of its ``.md`` file.
    run_dir : path-like
        Created if missing; receives the executed notebook and, as the chapter's ``out_dir``, its
        ``metrics.json``.
    parameters : dict, optional
        Values of the chapter's parameters; ``out_dir`` is set to ``run_dir``.

    Returns
    -------
    pathlib.Path
        The executed notebook, ``run_dir/<chapter name>.ipynb``.

    Raises
    ------
    BookError
        For an unknown chapter or parameter.
    papermill.PapermillExecutionError
        When a cell of the chapter raises (e.g. a parameter the chapter refuses).
    """
    import papermill

    path = _chapter(chapter)
    parameters = dict(parameters or {})
    known = chapter_parameters(path)
    unknown = sorted(set(parameters) - set(known))
    if unknown:
        raise BookError(f"chapter {path.stem} has no parameter {', '.join(unknown)}; its parameters are "
                        f"{', '.join(k for k in known if k != 'out_dir')}")
    if "out_dir" in parameters:
        raise BookError("out_dir is set by the run's folder: name it with --name (runs/<name>/) instead")
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    executed = run_dir / f"{path.stem}.ipynb"
    papermill.execute_notebook(_notebook(path), str(executed), parameters={**parameters, "out_dir": str(run_dir)},
                               kernel_name="python3", cwd=str(path.parent), progress_bar=False)
    return executed


def _value(text: str):
    """A ``-p`` value as papermill's command line reads it."""
    if text in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[text]
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def main(argv=None) -> int:
    """Entry point of ``mislabel-book``; returns the exit status (2 for bad input)."""
    ap = argparse.ArgumentParser(prog="mislabel-book", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute one chapter with other parameters into runs/<name>/")
    run.add_argument("chapter", help="chapter number, e.g. 03")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="a chapter parameter, as papermill's -p (repeatable)")
    run.add_argument("--name", default=None, help="folder under runs/ (default: the chapter's name)")
    a = ap.parse_args(argv)
    from papermill import PapermillExecutionError

    try:
        path = _chapter(a.chapter)
        run_dir = book_root() / "runs" / (a.name or path.stem)
        executed = run_chapter(path, run_dir, {name: _value(value) for name, value in a.parameter})
    except BookError as err:
        print(f"mislabel-book: error: {err}", file=sys.stderr)
        return 2
    except PapermillExecutionError as err:
        print(f"mislabel-book: chapter {path.stem} failed: {err.ename}: {err.evalue} (the traceback is in "
              f"{run_dir / path.name.replace('.md', '.ipynb')})", file=sys.stderr)
        return 1
    print(f"executed notebook: {executed}\nmetrics: {executed.parent / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
