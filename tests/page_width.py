"""What a reader of the book sees whole: lines of code and of printed output no wider than the column.

``COLUMN`` is the number of characters a code or output block shows without a horizontal scroll bar at
a 1280-pixel-wide window: measured in headless Chromium (2026-12-07), a code box is 672 pixels wide,
640 inside its padding, and a character of its font 8.43 pixels, so 75 fit and a 76th overflows by a
pixel, which is enough for a scroll bar. The code of a cell tagged ``hide-input`` shows in a toggle 18
pixels narrower (622 inside the padding): ``TOGGLED_COLUMN``. Used by the page checks
(``tests/smoke/test_book.py``) and by the chapters' smoke runs (``tests/smoke/test_notebooks.py``),
which check the output of every executed chapter.
"""
from __future__ import annotations

import re

COLUMN = 75
TOGGLED_COLUMN = 73
_FENCE = re.compile(r"^(\s*)(`{3,})(.*)$")
_HIDDEN_OUTPUT = {"remove-output", "remove-cell"}
_RICH = ("text/html", "text/markdown", "image/png", "image/svg+xml", "text/latex")


def shown_code(text: str):
    """(line number, line, column) of every line of code that the rendered page shows, with the characters
    its block shows: code cells (those whose input is not removed; of the parameters cell, each
    ``name = value`` without its comment, which the book's CSS wraps) and fenced code (```python, ```bash,
    ...). Lines of a MyST directive's own fence are not code."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m or not m.group(3).strip() or (m.group(3).startswith("{") and "code-cell" not in m.group(3)):
            i += 1
            continue
        indent, ticks, end = len(m.group(1)), m.group(2), i + 1
        while not re.match(rf"^\s*{ticks}\s*$", lines[end]):
            end += 1
        body = list(enumerate(lines[i + 1:end], start=i + 2))
        tags = set()
        if "code-cell" in m.group(3):                  # its options (":tags: [...]"), then a blank line
            while body and body[0][1].startswith(":"):
                found = re.match(r"^:tags: \[(.*)\]$", body.pop(0)[1])
                tags |= {t.strip() for t in found.group(1).split(",")} if found else set()
        if not tags & {"remove-input", "remove-cell"}:
            column = TOGGLED_COLUMN if "hide-input" in tags else COLUMN
            for number, line in body:
                code = re.sub(r"\s+#.*$", "", line) if "parameters" in tags else line
                yield number, code[indent:] if code[:indent].isspace() else code, column
        i = end + 1


def shown_output(cells):
    """(cell index, line) of every line of plain-text output that the rendered page shows, for the code
    cells of an executed notebook (nbformat nodes): printed text, and the text of a value displayed with
    no richer form (HTML, Markdown, an image), unless the cell's output is removed."""
    for k, cell in enumerate(cells):
        if cell.get("cell_type") != "code" or _HIDDEN_OUTPUT & set(cell.get("metadata", {}).get("tags", [])):
            continue
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if output.get("output_type") == "stream" and output.get("name") == "stdout":
                text = output["text"]
            elif "text/plain" in data and not any(kind in data for kind in _RICH):
                text = data["text/plain"]
            else:
                continue
            for line in ("".join(text) if isinstance(text, list) else text).splitlines():
                yield k, line
