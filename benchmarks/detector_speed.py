"""Speed of the LSTM noise detector: scoring throughput and training time per epoch.

Scoring (sequences of length 200 per minute; target >= 300k/min on 2 cores):

* ``detector.score`` — the public API as it is wired now;
* ``nn.LSTM b=1024`` — the plain module on batches of 1024 under ``inference_mode``
  (also single-threaded: on a loaded machine its per-operation synchronisation
  between threads can cost more than the second core brings);
* ``fast_lstm`` — :func:`mislabel.fast_lstm.lstm_last_hidden` + the detector's head;
* ``detector.score, 3 members`` — an ensemble like the shipped detector's
  (``NoiseDetector(members=3)``), whose cost relative to one member is printed.

The variants alternate (A, B, C, A, ...); medians are reported, and the fast
path's scores are checked against the detector's (max abs. difference).

End to end, ``mislabel.detect`` with the shipped detector (all its members) and
with its first member alone (``NoiseDetector.pretrained().member(0)``) score the
same recorded run (``--detect-samples`` samples, default 50,000, of ``--length``
epochs, 10 classes, with margins and runner-up classes), alternately: the
channels are computed once per call either way, the LSTMs once per member.

Training (``NoiseDetector.fit``, batch 64, one epoch; target <= 1 min for
50k sequences of length 200) is timed on ``--train-samples`` sequences
(default 2000) and scaled linearly to 50k (its cost is linear in the number of
batches), with one gradient thread and with the default (``workers``: the
batch split over 2 threads on 2+ cores), alternately. Training always runs one
intra-op thread per operation.

Besides wall-clock rates, every variant's rate per CPU-minute of this process
is reported: on a shared machine that is the load-independent measure of
efficiency (for multi-threaded runs it also counts threads spinning while
they wait for each other).

    python benchmarks/detector_speed.py            # ~3 min on 2 cores
    python benchmarks/detector_speed.py --quick    # seconds
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

from mislabel.detector import NoiseDetector, resolve_workers  # noqa: E402

try:
    from mislabel.fast_lstm import lstm_last_hidden
except ImportError:  # pragma: no cover
    lstm_last_hidden = None


def sequences(n: int, length: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Probability-like sequences: clean ones drift up, flipped ones stay low (values in (0, 1))."""
    rng = np.random.default_rng(seed)
    flipped = rng.random(n) < 0.3
    drift = np.where(flipped, -0.02, 0.03)[:, None]
    walk = np.cumsum(drift + 0.15 * rng.standard_normal((n, length)), axis=1)
    return (1.0 / (1.0 + np.exp(-walk))).astype(np.float32), flipped


def main(argv=None) -> dict:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--score-samples", type=int, default=None, help="sequences scored per run (default 8000)")
    p.add_argument("--train-samples", type=int, default=None, help="sequences per training epoch (default 2000)")
    p.add_argument("--detect-samples", type=int, default=None,
                   help="samples of the run scored end to end by mislabel.detect (default 50000)")
    p.add_argument("--length", type=int, default=200)
    args = p.parse_args(argv)
    _common.setup(args)
    T = args.length
    n_score = args.score_samples or (600 if args.quick else 8000)
    n_train = args.train_samples or (300 if args.quick else 2000)
    repeats = args.repeats or (1 if args.quick else 3)
    threads = torch.get_num_threads()
    print(f"detector_speed: score {n_score} x {T}, train {n_train} x {T}, threads={threads}, repeats={repeats}")

    x, flipped = sequences(max(n_score, n_train), T)
    det = NoiseDetector(seq_len=T)
    det.fit(x[:256], flipped[:256], epochs=1, progress=False)        # trained-like state, warm-up
    net = det.net.eval()
    xs = x[:n_score]
    xt = torch.from_numpy(xs)
    ref = det.score(xs)

    def plain():
        with torch.inference_mode():
            for i in range(0, n_score, 1024):
                out, _ = net.lstm(xt[i:i + 1024].unsqueeze(-1))
                torch.softmax(net.head(out[:, -1]), 1)

    def fast():
        with torch.inference_mode():
            return {"max_abs_diff": float(np.abs(
                torch.softmax(net.head(lstm_last_hidden(net.lstm, xt)), 1)[:, 1].numpy() - ref).max())}

    def plain_1thread():
        torch.set_num_threads(1)
        try:
            plain()
        finally:
            torch.set_num_threads(threads)

    ens = NoiseDetector(seq_len=T, members=3)
    ens.fit(x[:256], flipped[:256], epochs=1, progress=False)
    variants = {"detector.score": lambda: det.score(xs), "detector.score, 3 members": lambda: ens.score(xs),
                "nn.LSTM b=1024": plain}
    if threads > 1:
        variants["nn.LSTM b=1024 1 thr"] = plain_1thread
    if lstm_last_hidden is not None:
        variants["fast_lstm"] = fast
    load0 = _common.load()
    res = _common.interleave(variants, repeats)
    per_min = {k: n_score / v["median_wall"] * 60 for k, v in res.items()}
    per_cpu_min = {k: n_score / v["median_cpu"] * 60 for k, v in res.items()}
    for k, v in per_min.items():
        print(f"  scoring {k:<22s} {v:12,.0f} sequences/min   {per_cpu_min[k]:12,.0f} per CPU-minute")
    diff = max(e["max_abs_diff"] for e in res["fast_lstm"]["extra"]) if "fast_lstm" in res else None
    if diff is not None:
        print(f"  fast_lstm vs detector.score: max |diff| = {diff:.2e}")
    ens_ratio = res["detector.score, 3 members"]["median_wall"] / res["detector.score"]["median_wall"]
    print(f"  a 3-member ensemble takes {ens_ratio:.2f}x the time of one detector (side by side, same inputs)")

    # end to end: the shipped detector (every member) vs its first member, on one recorded run
    import mislabel
    n_detect = args.detect_samples or (2000 if args.quick else 50000)
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 10, n_detect)
    run = mislabel.Dynamics(rng.random((n_detect, T), dtype=np.float32), labels,
                            margins=rng.normal(0, 3, (n_detect, T)).astype(np.float32),
                            runner_up=(labels[:, None] + rng.integers(1, 10, (n_detect, T))) % 10)
    shipped = NoiseDetector.pretrained()
    dvariants = {f"detect, shipped ({shipped.config['members']} members)": lambda: mislabel.detect(run, shipped),
                 "detect, first member alone": lambda: mislabel.detect(run, shipped.member(0))}
    dres = _common.interleave(dvariants, repeats)
    detect_s = {k: v["median_wall"] for k, v in dres.items()}
    detect_ratio = detect_s[next(iter(detect_s))] / detect_s["detect, first member alone"]
    for k, v in detect_s.items():
        print(f"  {k:<32s} {v:6.2f} s for {n_detect} samples x {T} epochs")
    print(f"  the shipped ensemble takes {detect_ratio:.2f}x its first member's time end to end")

    # training: one epoch on n_train sequences, one gradient thread vs the default (2 on 2+ cores)
    xtr, ftr = x[:n_train], flipped[:n_train]
    default_workers = resolve_workers(None, torch.device("cpu"))

    def train_with(k):
        return lambda: NoiseDetector(seq_len=T).fit(xtr, ftr, epochs=1, progress=False, workers=k)

    tvariants = {f"fit workers={k}": train_with(k) for k in sorted({1, default_workers})}
    tres = _common.interleave(tvariants, max(1, repeats - 1))
    per_50k = {k: v["median_wall"] * 50000 / n_train for k, v in tres.items()}
    cpu_50k = {k: v["median_cpu"] * 50000 / n_train for k, v in tres.items()}
    for k, v in per_50k.items():
        print(f"  training {k:<16s} {v:7.1f} s per epoch of 50k x {T} (from {n_train}); CPU {cpu_50k[k]:.1f} s")
    best_score = max(v for k, v in per_min.items() if "members" not in k)   # the target is for one LSTM
    best_train = per_50k[f"fit workers={default_workers}"]   # what NoiseDetector.fit does by default
    print(f"best scoring {best_score:,.0f}/min (target >= 300,000); training with the default "
          f"{default_workers} worker(s) {best_train:.0f} s/epoch (target <= 60 s)")
    _common.write("detector_speed", args, {
        "machine": _common.machine(), "load_before": load0, "load_after": _common.load(), "length": T,
        "score_samples": n_score, "train_samples": n_train, "repeats": repeats,
        "scoring_per_min": per_min, "scoring_per_cpu_min": per_cpu_min, "fast_lstm_max_abs_diff": diff,
        "scoring_median_wall_s": {k: v["median_wall"] for k, v in res.items()}, "ensemble3_time_ratio": ens_ratio,
        "detect_samples": n_detect, "detect_median_wall_s": detect_s, "detect_shipped_vs_one_member": detect_ratio,
        "training_s_per_epoch_50k": per_50k, "training_cpu_s_per_epoch_50k": cpu_50k,
        "training_median_wall_s": {k: v["median_wall"] for k, v in tres.items()},
        "target_scoring_per_min": 300000, "met_scoring": best_score >= 300000,
        "training_default_workers": default_workers, "target_training_s": 60, "met_training": best_train <= 60})
    return {"scoring_per_min": per_min, "training_s_per_epoch_50k": per_50k}


if __name__ == "__main__":
    main()
