"""Shared helpers of the benchmark scripts: arguments, machine description, interleaved timing, JSON results.

Every benchmark interleaves its variants (A, B, C, A, B, C, ...) and reports
medians, so that ratios stay meaningful on a shared or loaded machine; it
records wall time and the process's CPU time, the load average before and
after, and writes ``benchmarks/results/<name>.json`` (or ``--out``).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from mislabel._utils import cpu_name

RESULTS = Path(__file__).resolve().parent / "results"


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="tiny sizes: a few seconds, for tests")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: torch's default, the number of cores)")
    p.add_argument("--repeats", type=int, default=None, help="interleaved repetitions of each variant")
    p.add_argument("--out", default=None, help="JSON file to write (default: benchmarks/results/<name>.json)")
    return p


def setup(args) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)


def machine(device: str = "cpu") -> dict:
    info = {"cpu": cpu_name(), "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform(),
            "device": device}
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        import mislabel
        info["mislabel"] = mislabel.__version__
    except Exception:  # noqa: BLE001
        pass
    return info


def load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


class Timer:
    """Wall and process-CPU seconds of a block."""

    def __enter__(self):
        self.w0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.w0
        self.cpu = time.process_time() - self.c0


def interleave(variants: dict, repeats: int, log=True) -> dict:
    """Run ``variants`` (name -> zero-argument callable) A, B, C, A, B, C, ... ``repeats`` times.

    A callable may return a dict of extra measurements (kept per repetition).
    Returns name -> {"wall": [...], "cpu": [...], "extra": [...], "median_wall", "median_cpu"}.
    """
    out = {k: {"wall": [], "cpu": [], "extra": []} for k in variants}
    for r in range(repeats):
        for name, fn in variants.items():
            with Timer() as t:
                extra = fn()
            out[name]["wall"].append(t.wall)
            out[name]["cpu"].append(t.cpu)
            out[name]["extra"].append(extra)
            if log:
                print(f"  [{r + 1}/{repeats}] {name:<28s} wall {t.wall:8.3f} s   cpu {t.cpu:8.3f} s", flush=True)
    for v in out.values():
        v["median_wall"] = statistics.median(v["wall"])
        v["median_cpu"] = statistics.median(v["cpu"])
        v["min_wall"] = min(v["wall"])
    return out


def write(name: str, args, payload: dict) -> Path:
    # --quick results go to results/quick/ so they never replace a real measurement
    path = Path(args.out) if args.out else (RESULTS / "quick" if args.quick else RESULTS) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"benchmark": name, "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
           "quick": bool(args.quick), "command": " ".join([Path(sys.executable).name] + sys.argv)}
    doc.update(payload)
    path.write_text(json.dumps(doc, indent=2, default=_plain) + "\n")
    print(f"wrote {path}")
    return path


def _plain(o):
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def fashion_mnist_or_synthetic(n: int, seed: int = 0, split: str = "train"):
    """Fashion-MNIST subset when its files are there, else the synthetic set (named in the result)."""
    import mislabel
    try:
        return mislabel.data.load("fashion-mnist", split=split, subset=n, seed=seed)
    except FileNotFoundError:
        return mislabel.data.make_synthetic(n, split=split, seed=seed)
