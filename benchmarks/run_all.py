"""Run every benchmark (``make benchmark``) and print a summary of benchmarks/results/*.json.

    python benchmarks/run_all.py                 # all benchmarks, default sizes (~35-40 min on 2 cores)
    python benchmarks/run_all.py --quick         # all, tiny sizes (results in benchmarks/results/quick/)
    python benchmarks/run_all.py --summary-only  # just the table from existing results
    python benchmarks/run_all.py --threads 1     # passed on to every script
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SCRIPTS = ["capture_overhead", "loop_vs_paper", "recorder_vs_aum", "recorder_memory", "detector_speed",
           "gpu_throughput", "dividemix_speed", "book_build"]


def _get(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def summary(folder: Path = RESULTS) -> list[tuple[str, str, str, str]]:
    """(benchmark, measured, target, met) rows from the JSON results in ``folder``."""
    rows = []
    d = _get(folder / "capture_overhead.json")
    if d:
        r = d["ratio_vs_none"]
        rows.append(("capture overhead, record='train'",
                     f"{r['train']:.3f}x end to end; recorder alone {d['recorder_overhead_ratio']:.4f}x",
                     "<= 1.02x", _yes(d["met"]) + " / " + _yes(d["met_isolated"])))
        rows.append(("capture overhead, record='eval'", f"{r['eval']:.3f}x", "(reference)", ""))
    d = _get(folder / "loop_vs_paper.json")
    if d:
        for m, s in d["speedups"].items():
            v = d["variants"]
            accs = (f"test acc {_mean(v[f'{m}/ours']['test_acc']):.3f} vs {_mean(v[f'{m}/paper_style']['test_acc']):.3f}")
            amp = d.get("speedups_amp", {}).get(m)
            amp = f"; {amp:.2f}x with amp=True (bfloat16)" if amp else ""
            cpu = d.get("device", "cpu") == "cpu"
            rows.append((f"train.fit vs paper-style loop ({m}{'' if cpu else ', ' + d['device']})",
                         f"{s:.2f}x faster{amp}; {accs}", ">= 5x" if cpu else "(CPU target)",
                         _yes(s >= 5) if cpu else ""))
    d = _get(folder / "recorder_vs_aum.json")
    if d:
        rows.append(("DynamicsRecorder (default checks) vs aum", f"{d['ratio_default']:.0f}x per update; "
                     f"{d['ratio_with_epoch_default']:.0f}x with next_epoch (check=False: "
                     f"{d['ratio_with_epoch']:.0f}x)", ">= 100x",
                     _yes(d["met_default"]) + " / " + _yes(d["met_with_epoch_default"])))
    d = _get(folder / "recorder_memory.json")
    if d:
        rows.append((f"recorder peak memory, N={d['samples']:,}, C={d['classes']}, T={d['epochs']}",
                     f"full probabilities in memory {d['full_in_memory_vs_streamed']:.1f}x the peak of streaming them "
                     f"to disk; streaming adds {d['streamed_extra_bytes_per_sample']:.0f} B per sample",
                     f"<= {d['target_streamed_extra_bytes_per_sample']} B per sample", _yes(d["met"])))
    d = _get(folder / "detector_speed.json")
    if d:
        s = d["scoring_per_min"]
        rows.append(("detector scoring (length 200)", ", ".join(f"{k}: {v:,.0f}/min" for k, v in s.items()),
                     ">= 300,000/min", _yes(d["met_scoring"])))
        t = d["training_s_per_epoch_50k"]
        rows.append(("detector training, 50k x 200", ", ".join(f"{k}: {v:.0f} s" for k, v in t.items()),
                     "<= 60 s/epoch", _yes(d["met_training"])))
    d = _get(folder / "gpu_throughput.json")
    if d:
        best = d["best_with_capture"]
        ratio = d["capture_overhead"][best["setting"]]
        where = d["machine"].get("gpu", d["device"])
        rows.append((f"{d['model']} throughput with capture on {where}",
                     (f"{best['images_per_s_steady']:,.0f} images/s steady, " if best["images_per_s_steady"] else "")
                     + f"{best['images_per_s']:,.0f} images/s over {d['epochs']} epoch(s) "
                     f"({best['setting']}; {ratio:.3f}x vs no capture)",
                     f">= {d['target_images_per_s']:,} images/s (GPU)",
                     _yes(d["met"]) if d["gpu_measured"] else "GPU not measured"))
    d = _get(folder / "dividemix_speed.json")
    if d:
        r = d["ratio_vs_fit"]
        rows.append((f"DivideMix epochs vs a train.fit epoch ({d['model']})",
                     ", ".join(f"{k} {v:.1f}x" for k, v in r.items() if k != "train.fit"), "(reference)", ""))
    d = _get(folder / "book_build.json")
    if d:
        ph = d["phases"]
        rows.append((f"make book ({d['profile']} profile)",
                     ", ".join(f"{k} {v['wall_s']:.0f} s" for k, v in ph.items()) + " (per chapter: see JSON)",
                     "(reference)", ""))
    return rows


def _mean(xs):
    return sum(xs) / len(xs)


def _yes(b) -> str:
    return "met" if b else "not met"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--summary-only", action="store_true")
    p.add_argument("--only", default=None, help="comma-separated subset of " + ", ".join(SCRIPTS))
    args = p.parse_args(argv)
    if not args.summary_only:
        for name in (args.only.split(",") if args.only else SCRIPTS):
            cmd = [sys.executable, str(HERE / f"{name}.py")]
            cmd += ["--quick"] if args.quick else []
            cmd += ["--threads", str(args.threads)] if args.threads else []
            print(f"== {name}", flush=True)
            if subprocess.run(cmd).returncode != 0:
                print(f"{name} failed", file=sys.stderr)
                return 1
    rows = summary(RESULTS / "quick" if args.quick else RESULTS)
    if rows:
        w = max(len(r[0]) for r in rows)
        print("\n" + "\n".join(f"{a:<{w}s}  {b}  [target {c}] {d}" for a, b, c, d in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
