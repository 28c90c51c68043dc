"""Every benchmark script runs end to end with --quick and writes its JSON result."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ["capture_overhead", "loop_vs_paper", "recorder_vs_aum", "recorder_memory", "detector_speed",
           "gpu_throughput", "book_build"]
#: guards against a hung script, not speed targets: the quick book benchmark builds the smoke book twice, cold
#: and warm (its third build, re-execution, runs with --reexecute or without --quick)
TIMEOUT = {"book_build": 900}


@pytest.mark.parametrize("name", SCRIPTS)
def test_benchmark_quick(name, tmp_path):
    out = tmp_path / f"{name}.json"
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), "--quick", "--threads", "1",
                          "--out", str(out)], capture_output=True, text=True, timeout=TIMEOUT.get(name, 300), cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == name and doc["quick"] is True
    assert doc["machine"]["torch_threads"] == 1 and doc["date"] and doc["machine"]["cpu_capability"]
    if name == "recorder_memory":  # streaming keeps the full probabilities out of memory
        assert doc["streamed_extra_bytes_per_sample"] <= doc["target_streamed_extra_bytes_per_sample"]
        assert doc["full_in_memory_vs_streamed"] > 1.5
    if name == "book_build":  # every chapter executed in the cold build, none in the warm one
        # the chapters, and the pages under book/ that are notebooks too (jupytext front matter, e.g. an appendix)
        chapters = [p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.md")] + [
            p.stem for p in (ROOT / "book").glob("*.md") if p.read_text().startswith("---\njupytext:")]
        assert sorted(doc["phases"]["cold"]["executed"]) == sorted(chapters)
        assert doc["phases"]["warm"]["executed"] == [] and "re-execute" not in doc["phases"]
        assert all(row["cold"] > 0 for row in doc["per_chapter_s"].values())
