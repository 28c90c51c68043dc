"""Clear what a book build keeps between runs when the library or the book's untracked files changed.

Jupyter Book (``execute_notebooks: cache``) re-executes a notebook only when
its code cells change. The chapters' results also depend on ``src/mislabel``:
its code and the shipped detector weights. This script hashes every file of
the package and, when the hash differs from the one recorded by the previous
build, removes the execution cache and Sphinx's saved environment (which
would otherwise skip reading chapters whose files did not change), so that
every chapter runs again with the new library. (Classifier and detector runs stay cached in ``.cache/mislabel``
under keys that hold the same digest, so they are recomputed too.)

Sphinx does not track the book's static files and local extensions
(``book/_static``, ``book/_ext``) either: after a change there it finds no page
out of date and leaves the old CSS in the HTML. The script hashes those folders
too and, when they changed, removes only Sphinx's saved environment, so that
every page is written again from the execution cache (seconds, no chapter runs).

    python scripts/library_stamp.py _build            # before `jupyter-book build .`
    python scripts/library_stamp.py _build/smoke/_build
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from mislabel.cache import package_digest

STAMP = ".library_stamp"
THEME_STAMP = ".theme_stamp"
#: folders of the book that Sphinx does not track, relative to the repository root
THEME = ("book/_static", "book/_ext")
#: what a build keeps between runs: executed notebooks, Sphinx's parsed documents, their outputs
CLEARED = (".jupyter_cache", ".doctrees", "jupyter_execute")


def library_hash(package: Path) -> str:
    """SHA-256 over the relative path and bytes of every file under ``package`` (bytecode excluded): the
    library's :func:`mislabel.cache.package_digest`, the same digest its cache keys hold."""
    return package_digest(package)


def clear(build_dir, names=CLEARED) -> None:
    """Remove what a build keeps between runs (by default :data:`CLEARED`, so that the next build executes
    every chapter)."""
    for name in names:
        shutil.rmtree(Path(build_dir) / name, ignore_errors=True)


def refresh(build_dir, package) -> bool:
    """Remove the build's caches (:data:`CLEARED`) if the library changed since the recorded stamp.

    Returns
    -------
    bool
        True when the cache was cleared (or there was no stamp yet).
    """
    package, build_dir = Path(package), Path(build_dir)
    if not package.is_dir():
        raise FileNotFoundError(f"package folder {package} not found; run from the repository root")
    return _renew(build_dir / STAMP, library_hash(package), CLEARED)


def _renew(stamp: Path, value: str, names) -> bool:
    """If ``stamp`` does not hold ``value``: remove the folders ``names`` beside it, then record ``value``
    (atomically, after the removal). Returns whether it did."""
    if stamp.is_file() and stamp.read_text().strip() == value:
        return False
    clear(stamp.parent, names)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    tmp = stamp.with_name(stamp.name + ".tmp")
    tmp.write_text(value + "\n")
    os.replace(tmp, stamp)
    return True


def theme_hash(folders) -> str:
    """One line per folder: its path and :func:`mislabel.cache.package_digest` ("missing" if absent)."""
    return "\n".join(f"{f} {package_digest(f) if Path(f).is_dir() else 'missing'}" for f in map(Path, folders))


def refresh_theme(build_dir, folders=THEME) -> bool:
    """Remove Sphinx's saved environment (``.doctrees``) if a file under ``folders`` changed since the
    recorded stamp, so that the next build writes every page (and copies the static files) again; the
    execution cache is kept.

    Returns
    -------
    bool
        True when the environment was removed (or there was no stamp yet).
    """
    return _renew(Path(build_dir) / THEME_STAMP, theme_hash(folders), (".doctrees",))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build_dir", help="the folder that holds .jupyter_cache (e.g. _build)")
    ap.add_argument("--package", default="src/mislabel", help="the library's folder (default src/mislabel)")
    ap.add_argument("--theme", action="append", default=None, metavar="FOLDER",
                    help=f"a folder Sphinx does not track (repeatable; default {' and '.join(THEME)})")
    a = ap.parse_args(argv)
    if refresh(a.build_dir, a.package):
        print(f"library changed since the last build: every chapter of {a.build_dir} will be re-executed")
    if refresh_theme(a.build_dir, a.theme or THEME):
        print(f"static files or extensions changed: every page of {a.build_dir} will be written again")
    return 0


if __name__ == "__main__":
    sys.exit(main())
