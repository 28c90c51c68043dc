"""Serve MathJax from the built book, so its math renders without internet.

The MathJax 2.7 files come from the pinned ``jupyter-server-mathjax`` package;
they are copied into ``_static/mathjax`` of the HTML build and ``mathjax_path``
points there (Sphinx reads a relative ``mathjax_path`` from ``_static``).
"""
from __future__ import annotations

import shutil
from pathlib import Path

# MathJax 2 reads \( \) and \[ \] (what Sphinx and myst-nb write) in the elements of these classes
_CLASSES = "tex2jax_process|mathjax_process|math|output_area"


def _static() -> Path:
    import jupyter_server_mathjax

    return Path(jupyter_server_mathjax.__file__).parent / "static"


def _configure(app, config) -> None:
    config.mathjax_path = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"
    # the package ships MathJax's STIX web fonts only (no TeX fonts)
    config.mathjax2_config = {
        "tex2jax": {"inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]],
                    "processClass": _CLASSES, "ignoreClass": "document"},
        "HTML-CSS": {"availableFonts": [], "preferredFont": None, "webFont": "STIX-Web", "imageFont": None},
        "messageStyle": "none"}
    config.mathjax3_config = None


def _copy(app, exception) -> None:
    if exception is None and app.builder.format == "html":
        target = Path(app.outdir) / "_static" / "mathjax"
        if not (target / "MathJax.js").is_file():
            tmp = target.with_name(".mathjax.tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(_static(), tmp, ignore=shutil.ignore_patterns("*.md", "LICENSE"))
            tmp.rename(target)


def setup(app):
    _static()   # fail early, with the import error, when the package is missing
    app.connect("config-inited", _configure, priority=900)
    app.connect("build-finished", _copy)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
