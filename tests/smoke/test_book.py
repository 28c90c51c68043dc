"""Build the whole book strictly (``-W -n --keep-going``) with the smoke profile into a temporary folder.

The build is the quick book benchmark's (``benchmarks/book_build.py --quick``): a cold build that executes
every chapter with empty caches (``execute_notebooks: cache``; the jupyter-cache database lives under the
temporary folder, so it never mixes with ``_build/``), then a warm one that executes nothing. Captures
go to the benchmark's own cache and chapter outputs to ``$MISLABEL_OUT``, both in the temporary folder.
"""
from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from page_width import COLUMN, TOGGLED_COLUMN, shown_code, shown_output

REPO = Path(__file__).resolve().parents[2]


def _toc_files() -> list[str]:
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", [{"chapters": toc.get("chapters", [])}]):
        files += [c["file"] for c in part.get("chapters", [])]
    return files


def test_toc_lists_chapters_in_paper_order():
    files = _toc_files()
    assert files[0] == "book/intro"
    chapters = [f for f in files if f.startswith("notebooks/")]
    assert chapters[:3] == ["notebooks/01_training_dynamics", "notebooks/02_supervised_detector",
                            "notebooks/03_identify_mislabeled"]
    for f in files:
        assert (REPO / f"{f}.md").is_file(), f   # chapters are MyST Markdown notebooks (notebooks/NN_*.md)


def test_config_is_strict_and_offline():
    cfg = yaml.safe_load((REPO / "_config.yml").read_text())
    assert cfg["only_build_toc_files"] is True
    assert cfg["execute"]["execute_notebooks"] == "cache"
    assert cfg["execute"]["timeout"] >= 900
    assert cfg["bibtex_bibfiles"] == ["book/references.bib"]
    assert not cfg["launch_buttons"].get("binderhub_url") and not cfg["launch_buttons"].get("colab_url")


@pytest.mark.parametrize("page", _toc_files())
def test_code_fits_the_column(page):
    """A reader sees every line of code whole: no line of shown code runs past the column (which would hide
    its end behind a scroll bar, as comments at the end of long lines were)."""
    path = REPO / f"{page}.md"
    wide = [f"{path.name}:{n}: {len(line)} characters, the block shows {column}"
            for n, line, column in shown_code(path.read_text()) if len(line) > column]
    assert not wide, "shown code wider than its block:\n" + "\n".join(wide)


def test_shown_code_is_found():
    # the scanner above on a page of each kind of block (its result is what the check relies on)
    text = ("# T\n```{code-cell} ipython3\n:tags: [parameters]\n\nx = 1   # " + "c" * 90 + "\n```\n\n"
            "```{code-cell} ipython3\n:tags: [remove-input]\n\n" + "h" * 90 + "\n```\n\n"
            "```{code-cell} ipython3\n:tags: [hide-input]\n\nshown\n```\n\n```{bibliography}\n```\n\n"
            "1. a step:\n\n   ```bash\n   make book\n   ```\n")
    assert list(shown_code(text)) == [(4, "", COLUMN), (5, "x = 1", COLUMN), (16, "", TOGGLED_COLUMN),
                                      (17, "shown", TOGGLED_COLUMN), (26, "make book", COLUMN)]


def test_shown_output_is_found():
    # printed text and plain values are checked; stderr, rich outputs and removed outputs are not
    def cell(outputs, tags=()):
        return {"cell_type": "code", "metadata": {"tags": list(tags)}, "outputs": outputs}
    cells = [cell([{"output_type": "stream", "name": "stdout", "text": ["a\n", "bb\n"]},
                   {"output_type": "stream", "name": "stderr", "text": "warn\n"}]),
             {"cell_type": "markdown", "source": "x"},
             cell([{"output_type": "execute_result", "data": {"text/plain": "value"}},
                   {"output_type": "execute_result", "data": {"text/plain": "df", "text/html": "<table>"}}]),
             cell([{"output_type": "stream", "name": "stdout", "text": "hidden"}], tags=["remove-output"])]
    assert list(shown_output(cells)) == [(0, "a"), (0, "bb"), (2, "value")]


def test_book_builds_strictly_with_smoke_profile(tmp_path):
    """The quick book benchmark's builds are this test's: its cold build is the strict smoke-book build
    (every chapter executed, empty caches), its warm build executes nothing; one build serves both checks."""
    folder, result = tmp_path / "bench", tmp_path / "book_build.json"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "book_build.py"), "--quick", "--folder",
                           str(folder), "--out", str(result)], capture_output=True, text=True, timeout=1500, cwd=REPO)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    for phase in ("cold", "warm"):   # Sphinx warnings ("path:line: WARNING: ..."); -W already fails the build
        log = (folder / f"{phase}.log").read_text()
        assert not re.search(r"WARNING: ", log), log[-6000:]

    doc = json.loads(result.read_text())   # the benchmark's accounting
    assert doc["benchmark"] == "book_build" and doc["quick"] is True and doc["profile"] == "smoke"
    # the chapters, and the pages under book/ that are notebooks too (jupytext front matter, e.g. an appendix)
    chapters = [p.stem for p in (REPO / "notebooks").glob("[0-9][0-9]_*.md")] + [
        p.stem for p in (REPO / "book").glob("*.md") if p.read_text().startswith("---\njupytext:")]
    assert sorted(doc["phases"]["cold"]["executed"]) == sorted(chapters)
    assert doc["phases"]["warm"]["executed"] == [] and "re-execute" not in doc["phases"]
    assert all(row["cold"] > 0 for row in doc["per_chapter_s"].values())

    out = folder / "book"
    html = out / "_build" / "html"
    assert (html / "index.html").is_file()
    for name in ("01_training_dynamics", "02_supervised_detector", "03_identify_mislabeled"):
        page = html / "notebooks" / f"{name}.html"
        assert page.is_file(), name
        text = page.read_text()
        assert "Traceback" not in text, name
        # error outputs / error messages rendered from cells
        assert not re.search(r"\b[A-Z]\w*Error\b", text), name
        assert "output stderr" not in text, f"{name} shows stderr output (warnings)"
        assert "<img" in text, f"{name} has no figure"
        assert "pasted-text" in text, f"{name} has no glued numbers"
        (folder / "runs" / name / "metrics.json").is_file() or pytest.fail(f"{name}: no metrics.json")
    assert (html / "book" / "references.html").is_file()
    # math is rendered by the MathJax copy inside the built book, never fetched from a CDN
    assert (html / "_static" / "mathjax" / "MathJax.js").is_file()
    intro = (html / "book" / "intro.html").read_text()
    assert '_static/mathjax/MathJax.js?config=' in intro and not re.search(r"cdn\.|mathjax@3|https?://[^\"']*mathjax", intro)
    # the cache database of `execute_notebooks: cache` stays in the temporary build folder
    assert (out / "_build" / ".jupyter_cache").is_dir()


def _script(name: str):
    """``scripts/<name>.py``, imported as a module."""
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(REPO / "scripts"))


@pytest.fixture
def library_stamp():
    return _script("library_stamp")


@pytest.fixture
def page_overflow():
    module = _script("page_overflow")
    if module.browser() is None:
        pytest.skip("no headless browser (apt-get install chromium)")
    return module


def test_library_change_clears_the_execution_cache(tmp_path, library_stamp):
    pkg, build = tmp_path / "pkg", tmp_path / "_build"
    (pkg / "weights").mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1\n")
    (pkg / "weights" / "w.pt").write_bytes(b"\x00\x01")
    for name in (".jupyter_cache", ".doctrees", "jupyter_execute", "html"):
        (build / name).mkdir(parents=True)
    assert library_stamp.refresh(build, pkg)            # no stamp yet: cleared, stamp written
    assert not any((build / n).exists() for n in (".jupyter_cache", ".doctrees", "jupyter_execute"))
    assert (build / "html").is_dir() and (build / ".library_stamp").is_file()
    (build / ".jupyter_cache").mkdir()                    # the build fills the cache again
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"bytecode")
    assert not library_stamp.refresh(build, pkg)        # unchanged library (bytecode ignored): kept
    assert (build / ".jupyter_cache").is_dir()
    (pkg / "weights" / "w.pt").write_bytes(b"\x00\x02")  # new shipped weights
    assert library_stamp.refresh(build, pkg)
    assert not (build / ".jupyter_cache").exists()
    with pytest.raises(FileNotFoundError, match="repository root"):
        library_stamp.refresh(build, tmp_path / "missing")


def test_static_file_change_makes_the_build_write_every_page(tmp_path, capsys, library_stamp):
    # Sphinx tracks neither book/_static nor book/_ext: a changed CSS file alone leaves every page "up to
    # date" and the old CSS in the HTML. The stamp then removes Sphinx's environment only (no re-execution).
    static, ext, build = tmp_path / "_static", tmp_path / "_ext", tmp_path / "_build"
    static.mkdir()
    (static / "a.css").write_text("p {}\n")
    folders = (static, ext)                              # _ext absent: hashed as missing
    for name in (".jupyter_cache", ".doctrees", "jupyter_execute"):
        (build / name).mkdir(parents=True)
    assert library_stamp.refresh_theme(build, folders)   # no stamp yet
    assert not (build / ".doctrees").exists() and (build / ".theme_stamp").is_file()
    (build / ".doctrees").mkdir()
    assert not library_stamp.refresh_theme(build, folders)
    assert (build / ".doctrees").is_dir()
    (static / "a.css").write_text("p { color: red; }\n")
    assert library_stamp.refresh_theme(build, folders)
    assert not (build / ".doctrees").exists()
    assert (build / ".jupyter_cache").is_dir() and (build / "jupyter_execute").is_dir()   # nothing re-executes
    (build / ".doctrees").mkdir()
    ext.mkdir()                                          # a new extension folder counts as a change
    (ext / "x.py").write_text("")
    assert library_stamp.refresh_theme(build, folders)
    # the command line checks both (the library from a package folder, the theme from --theme folders)
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "a.py").write_text("")
    (static / "b.css").write_text("")
    assert library_stamp.main([str(build), "--package", str(pkg), "--theme", str(static), "--theme", str(ext)]) == 0
    out = capsys.readouterr().out
    assert "re-executed" in out and "written again" in out
    assert library_stamp.main([str(build), "--package", str(pkg), "--theme", str(static), "--theme", str(ext)]) == 0
    assert capsys.readouterr().out == ""


def test_page_overflow_lists_what_runs_past_its_box(tmp_path, page_overflow, capsys):
    # a code line and a table wider than their boxes, one of them behind a closed toggle, beside a line that fits
    wide = "<pre style='width:300px; overflow-x:auto'>" + "wide " * 40 + "</pre>"
    table = "<table><tr>" + "<td>column_of_a_wide_table</td>" * 12 + "</tr></table>"
    (tmp_path / "page.html").write_text(
        "<html><body><div class='cell'>" + wide + "<pre style='width:300px'>fits</pre></div>"
        "<details><summary>Show output</summary><div class='cell_output' style='width:300px; overflow-x:auto'>"
        + table + "</div></details></body></html>")
    (tmp_path / "index.html").write_text('<meta http-equiv="Refresh" content="0; url=page.html" />')
    found = page_overflow.overflows(tmp_path / "page.html", page_overflow.browser())
    assert len(found) == 2, found
    assert found[0].startswith("pre: ") and "wide wide" in found[0] and "300-px box" in found[0]
    assert found[1].startswith("div: ") and "column_of_a_wide_table" in found[1]
    assert page_overflow.pages([tmp_path]) == [tmp_path / "page.html"]      # the redirect page is left out
    assert page_overflow.main([str(tmp_path)]) == 1
    assert len(capsys.readouterr().out.splitlines()) == 2
    (tmp_path / "page.html").write_text("<html><body><div class='cell'><pre>fits</pre></div></body></html>")
    assert page_overflow.main([str(tmp_path)]) == 0
    assert page_overflow.main([str(tmp_path / "missing.html")]) == 2
    assert "make book" in capsys.readouterr().err
