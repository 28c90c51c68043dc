"""Cold and warm `make book` wall time, per chapter.

Builds the book as ``make book`` does (``jupyter-book build . -W -n --keep-going``,
``execute_notebooks: cache``) into a temporary folder, with an empty library
cache (``MISLABEL_CACHE``) and an empty execution cache, three times:

1. **cold**: nothing cached: every chapter trains its models and detectors;
2. **warm**: the same build again, nothing changed: jupyter-cache serves every
   chapter's outputs, no notebook runs;
3. **re-execute**: the build's caches are dropped (as ``make book`` does when
   the library changed, ``scripts/library_stamp.py``) but the library cache is
   kept: chapters run again, but their captures and detectors come from
   ``MISLABEL_CACHE``.

Per-chapter times are the notebooks' execution seconds that jupyter-cache
records; totals are the wall time of each ``jupyter-book build``. The chapters
run with the ``cpu`` profile unless ``--profile`` says otherwise (``--quick``:
the ``smoke`` profile, and the cold and warm builds only unless ``--reexecute``).

    python benchmarks/book_build.py             # ~25-30 min on 2 cores
    python benchmarks/book_build.py --quick     # smoke profile, cold and warm, ~2.5 min

``--folder DIR`` builds in DIR (new or empty) instead of a temporary folder and keeps it, with each
build's full log in ``DIR/<phase>.log``: the smoke tier's strict book test reads the cold build there.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
import library_stamp  # noqa: E402


def jupyter_book() -> str:
    exe = Path(sys.executable).parent / "jupyter-book"
    return str(exe) if exe.is_file() else (shutil.which("jupyter-book") or "jupyter-book")


def chapter_seconds(cache_dir: Path, since: float) -> dict[str, float]:
    """Execution seconds per notebook (file stem) recorded by jupyter-cache after ``since`` (epoch seconds)."""
    from jupyter_cache import get_cache

    out = {}
    if not cache_dir.is_dir():
        return out
    for rec in sorted(get_cache(str(cache_dir)).list_cache_records(), key=lambda r: r.created):
        if rec.created.timestamp() >= since - 1:   # naive local datetimes, as jupyter-cache stores them
            out[Path(rec.uri).stem] = float(rec.data.get("execution_seconds", float("nan")))
    return out


def build(out: Path, env: dict, timeout: int) -> tuple[float, int, str]:
    t0 = time.perf_counter()
    cmd = [jupyter_book(), "build", str(REPO), "--path-output", str(out), "-W", "-n", "--keep-going"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    return time.perf_counter() - t0, proc.returncode, proc.stdout + proc.stderr


def main(argv=None) -> dict:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--profile", default=None, help="chapter size preset (default: cpu; --quick: smoke)")
    p.add_argument("--no-reexecute", action="store_true", help="skip phase 3 (re-execution with a warm library cache)")
    p.add_argument("--reexecute", action="store_true", help="with --quick: run phase 3 too (skipped by default)")
    p.add_argument("--timeout", type=int, default=3 * 3600, help="seconds allowed per build")
    p.add_argument("--keep", action="store_true", help="keep the temporary build folder (its path is printed)")
    p.add_argument("--folder", default=None,
                   help="build in this new or empty folder and keep it, with each build's log in <phase>.log")
    args = p.parse_args(argv)
    _common.setup(args)
    profile = args.profile or ("smoke" if args.quick else "cpu")
    reexecute = not args.no_reexecute and (args.reexecute or not args.quick)
    phases = ["cold", "warm"] + (["re-execute"] if reexecute else [])
    if args.folder is not None:
        tmp = Path(args.folder)
        if tmp.exists() and (not tmp.is_dir() or any(tmp.iterdir())):
            raise SystemExit(f"book_build: --folder {tmp} must be a new or empty folder; pass another path")
        tmp.mkdir(parents=True, exist_ok=True)
    else:
        tmp = Path(tempfile.mkdtemp(prefix="mislabel-book-bench-"))
    env = dict(os.environ, MISLABEL_PROFILE=profile, MISLABEL_CACHE=str(tmp / "cache"),
               MISLABEL_OUT=str(tmp / "runs"), OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    out = tmp / "book"
    print(f"book_build: profile={profile}, phases={phases}, folder {tmp}", flush=True)
    load0 = _common.load()
    result = {"profile": profile, "phases": {}}
    try:
        for phase in phases:
            if phase == "re-execute":
                library_stamp.clear(out / "_build")
            since = time.time()
            wall, rc, log = build(out, env, args.timeout)
            if args.folder is not None:
                (tmp / f"{phase}.log").write_text(log)
            if rc != 0:
                raise SystemExit(f"book_build: the {phase} build failed (exit {rc}):\n{log[-4000:]}")
            per = chapter_seconds(out / "_build" / ".jupyter_cache", since)
            if phase == "re-execute" and len(per) == 0:
                raise SystemExit("book_build: the re-execute build ran no notebook; the measurement would be wrong")
            result["phases"][phase] = {"wall_s": wall, "chapters_executed_s": per,
                                       "executed": sorted(per), "other_s": wall - sum(per.values())}
            print(f"  {phase:<10s} build {wall:8.1f} s; notebooks executed: {len(per)}", flush=True)
            for name, s in per.items():
                print(f"      {name:<28s} {s:8.1f} s", flush=True)
    finally:
        if args.keep or args.folder is not None:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    ph = result["phases"]
    chapters = sorted(set().union(*(v["chapters_executed_s"] for v in ph.values())))
    table = {c: {k: ph[k]["chapters_executed_s"].get(c, 0.0) for k in ph} for c in chapters}
    print(f"{'chapter':<28s}" + "".join(f"{k:>12s}" for k in ph))
    for c, row in table.items():
        print(f"{c:<28s}" + "".join(f"{v:11.1f}s" for v in row.values()))
    print(f"{'whole build':<28s}" + "".join(f"{ph[k]['wall_s']:11.1f}s" for k in ph))
    _common.write("book_build", args, {
        "machine": _common.machine(), "load_before": load0, "load_after": _common.load(), **result,
        "per_chapter_s": table, "speedup_warm": ph["cold"]["wall_s"] / ph["warm"]["wall_s"]})
    return result


if __name__ == "__main__":
    main()
