"""Every benchmark script runs end to end with --quick and writes its JSON result."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import run_all  # noqa: E402  (make benchmark: runs every script, summarises their JSON)

#: every script in benchmarks/ but book_build, whose quick run is the smoke tier's strict book build
#: (tests/smoke/test_book.py: one smoke-book build serves both)
SCRIPTS = ["capture_overhead", "loop_vs_paper", "recorder_vs_aum", "recorder_memory", "detector_speed",
           "gpu_throughput", "dividemix_speed"]


def test_every_benchmark_has_a_quick_test():
    scripts = {p.stem for p in (ROOT / "benchmarks").glob("*.py")} - {"_common", "run_all"}
    assert scripts == set(SCRIPTS) | {"book_build"}, "add a new benchmark to SCRIPTS (or say where it is tested)"
    assert sorted(run_all.SCRIPTS) == sorted(scripts), "make benchmark (run_all.SCRIPTS) must run every benchmark"


@pytest.mark.parametrize("name", SCRIPTS)
def test_benchmark_quick(name, tmp_path):
    out = tmp_path / f"{name}.json"
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), "--quick", "--threads", "1",
                          "--out", str(out)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == name and doc["quick"] is True
    assert doc["machine"]["torch_threads"] == 1 and doc["date"] and doc["machine"]["cpu_capability"]
    assert run_all.summary(tmp_path), f"make benchmark's summary has no row for {name}"
    if name == "recorder_memory":  # streaming keeps the full probabilities out of memory
        assert doc["streamed_extra_bytes_per_sample"] <= doc["target_streamed_extra_bytes_per_sample"]
        assert doc["full_in_memory_vs_streamed"] > 1.5


def test_book_build_refuses_a_folder_in_use(tmp_path):
    """--folder must be new or empty: a folder in use is refused before any build, and left as it was."""
    (tmp_path / "notes.txt").write_text("mine")
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "book_build.py"), "--quick", "--folder",
                          str(tmp_path), "--out", str(tmp_path / "r.json")], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert res.returncode != 0 and "must be a new or empty folder" in res.stderr, res.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
