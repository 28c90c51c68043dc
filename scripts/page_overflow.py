"""List what runs past its box on the built book's pages, as a reader's browser lays them out.

Loads each HTML page in headless Chromium at a 1280 x 4000 window, opens every
toggle ("Show code cell source", collapsed outputs) and reports each code block,
output or table whose content is wider than its box, the cases where a reader
sees a horizontal scroll bar and the end of a line or the last columns are cut
off. The static checks in the test suite (``tests/page_width.py``) cover code
and printed text; this one also covers tables and anything the theme changes.

    python scripts/page_overflow.py _build/html          # after `make book`
    python scripts/page_overflow.py _build/html/notebooks/07_retraining.html

Exits 0 when nothing overflows, 1 with one line per overflowing box, 2 when no
Chromium is installed (``apt-get install chromium``).
"""
from __future__ import annotations

import argparse
import html
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
#: the boxes a reader scrolls sideways when their content is wider
BOXES = "div.cell pre, div.highlight pre, .cell_output table, div.output, .cell_output, .table-wrapper"
_START, _END = "OVERFLOW-REPORT<", ">END-OF-REPORT"
_PROBE = """<script>
window.addEventListener('load', function () { setTimeout(function () {
  document.querySelectorAll('details').forEach(function (d) { d.open = true; });
  var found = [];
  document.querySelectorAll('%s').forEach(function (el) {
    if (el.scrollWidth > el.clientWidth) {
      var text = (el.innerText || el.textContent || '').replace(/\\s+/g, ' ').trim().slice(0, 60);
      found.push(el.tagName.toLowerCase() + ': ' + (el.scrollWidth - el.clientWidth) + ' px wider than its '
                 + el.clientWidth + '-px box: ' + text);
    }
  });
  var out = document.createElement('pre');
  out.textContent = '%s' + found.join('\\n') + '%s';
  document.body.appendChild(out);
}, 300); });
</script>""" % (BOXES, _START, _END)


def browser() -> str | None:
    """The first headless-capable browser found on PATH, or None."""
    return next((b for b in map(shutil.which, BROWSERS) if b), None)


def overflows(page: Path, chrome: str, timeout: float = 120) -> list[str]:
    """The boxes of ``page`` (an HTML file of the built book) whose content is wider than the box.

    The page is copied, with a probe script added, beside the original (so that its relative links to
    CSS and images still resolve) and removed again.

    Raises
    ------
    RuntimeError
        If the browser ran but the probe wrote no report (the page did not load).
    """
    probe = page.with_name(f".{page.stem}.overflow-probe.html")
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    try:
        with tempfile.TemporaryDirectory() as profile:
            dom = subprocess.run([chrome, "--headless", "--no-sandbox", "--disable-gpu",
                                  "--disable-background-networking", f"--user-data-dir={profile}",
                                  "--window-size=1280,4000", "--virtual-time-budget=8000", "--dump-dom",
                                  probe.resolve().as_uri()],
                                 capture_output=True, text=True, timeout=timeout).stdout
    finally:
        probe.unlink(missing_ok=True)
    found = re.search(re.escape(html.escape(_START)) + "(.*?)" + re.escape(html.escape(_END)), dom, re.S)
    if found is None:
        raise RuntimeError(f"{page}: the browser wrote no report (the page did not load?)")
    return [html.unescape(line) for line in found.group(1).splitlines() if line]


def pages(paths: list[Path]) -> list[Path]:
    """The HTML pages named by ``paths``: files as given, folders searched (``_static``, ``_sources``,
    genindex and search pages left out), and in both cases without the pages that only redirect to
    another (the book's ``index.html``)."""
    out = []
    for path in paths:
        if path.is_dir():
            out += sorted(p for p in path.rglob("*.html") if not {"_static", "_sources"} & set(p.parts)
                          and p.name not in ("genindex.html", "search.html") and not p.name.startswith("."))
        else:
            out.append(path)
    return [p for p in out if not re.search(r"<meta[^>]+http-equiv=.refresh", p.read_text(encoding="utf-8"),
                                            re.I)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path, help="HTML pages, or folders of them (e.g. _build/html)")
    args = parser.parse_args(argv)
    chrome = browser()
    if chrome is None:
        print(f"no browser found (looked for {', '.join(BROWSERS)}); install one: apt-get install chromium",
              file=sys.stderr)
        return 2
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        print(f"not found: {', '.join(missing)}; build the book first (make book)", file=sys.stderr)
        return 2
    bad = 0
    for page in pages(args.paths):
        for line in overflows(page, chrome):
            print(f"{page}: {line}")
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
