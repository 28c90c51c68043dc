"""Command line: ``python -m mislabel {capture,train-detector,detect,evaluate}``.

Every subcommand prints a one-line error and exits with status 2 on bad input.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np


def _capture(a) -> None:
    from . import pipeline
    from ._utils import atomic_path
    out = Path(a.out)
    cap = pipeline.capture(a.dataset, subset=a.subset, data_seed=a.data_seed, noise=a.noise, rate=a.rate,
                           noise_seed=a.noise_seed, underlying_rate=a.underlying_rate, mapping=a.mapping,
                           model=a.model, epochs=a.epochs, record=a.record, seed=a.seed, batch_size=a.batch_size,
                           lr=a.lr, weight_decay=a.weight_decay, test_subset=a.test_subset, root=a.root,
                           device=a.device, progress=not a.quiet, cache=not a.no_cache)
    out.mkdir(parents=True, exist_ok=True)
    cap.dynamics.save(out / "dynamics.npz")
    with atomic_path(out / "meta.json") as tmp:
        tmp.write_text(json.dumps(cap.dynamics.meta, indent=1))
    with atomic_path(out / "history.csv") as tmp:
        pipeline.write_history(cap.history, tmp)
    acc = cap.history["test_acc"][-1] if cap.history.get("test_acc") else float("nan")
    print(f"wrote {out}/dynamics.npz  (N={cap.dynamics.num_samples}, T={cap.dynamics.num_epochs}, "
          f"flipped={int(cap.dynamics.is_flipped.sum())}, final test acc={acc:.3f})")


def _load_dyn(path):
    from .dynamics import Dynamics
    return Dynamics.load(path)


def _train_detector(a) -> None:
    from .detector import NoiseDetector
    dyns = [_load_dyn(p) for p in a.dynamics]
    for p, d in zip(a.dynamics, dyns):
        if d.is_flipped is None:
            raise ValueError(f"{p} carries no is_flipped; train-detector needs dynamics captured with synthesized noise")
    det = NoiseDetector(seq_len=a.seq_len, members=a.members).fit(dyns, epochs=a.epochs, lr=a.lr,
                                                                   batch_size=a.batch_size, seed=a.seed,
                                                                   progress=not a.quiet)
    det.save(a.out)
    best = det.info["stages"][-1]
    print(f"wrote {a.out}  (best epoch {best['best_epoch']}, validation AP {best['best_val_ap']:.4f})")


def _detect(a) -> None:
    from ._utils import atomic_path
    from .detector import NoiseDetector
    dyn = _load_dyn(a.dynamics)
    det = NoiseDetector.load(a.detector) if a.detector else NoiseDetector.pretrained()
    epochs, scores = det._view(dyn)   # the scores and how many epochs they read, in one pass
    order = np.argsort(-scores, kind="stable")
    with atomic_path(a.out) as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["rank", "index", "given_label", "score"])
            for r, i in enumerate(order[: a.top] if a.top else order, start=1):
                w.writerow([r, int(i), int(dyn.labels[i]), f"{scores[i]:.6f}"])
    print(f"wrote {a.out}  ({len(order)} samples ranked; top score {scores[order[0]]:.4f} at index {order[0]})")
    if epochs < dyn.num_epochs:
        print(f"scored the first {epochs} of {dyn.num_epochs} epochs: the predictions settled and then changed "
              "again as the classifier started to fit wrong labels, and the whole run left the detector unsure "
              "(the memorisation guard; see the model card)")
    flagged = int((scores >= 0.5).sum())
    print(f"{flagged} samples ({flagged / len(scores):.1%}) score 0.5 or more. Far fewer than the share of wrong "
          "labels you expect suggests the detector is unsure of data like yours: NoiseDetector.adapt fine-tunes it "
          "with one more run of your training loop (see the README).")


def _evaluate(a) -> None:
    from .metrics import evaluate
    dyn = _load_dyn(a.dynamics)
    if dyn.is_flipped is None:
        raise ValueError(f"{a.dynamics} carries no is_flipped: evaluation needs known flips")
    with open(a.scores, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"index", "score"} <= set(rows[0]):
        raise ValueError(f"{a.scores} is not a scores CSV from `mislabel detect` (needs index and score columns)")
    scores = np.full(dyn.num_samples, np.nan)
    for r in rows:
        i = int(r["index"])
        if not 0 <= i < dyn.num_samples:
            raise ValueError(f"{a.scores} has index {i} outside the {dyn.num_samples} samples of {a.dynamics}")
        scores[i] = float(r["score"])
    if np.isnan(scores).any():
        raise ValueError(f"{a.scores} scores {int((~np.isnan(scores)).sum())} of {dyn.num_samples} samples; "
                         "run detect without --top to evaluate")
    res = evaluate(scores, dyn.is_flipped)
    print(json.dumps(res, indent=1))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m mislabel``."""
    from .data import DATASETS
    from .pipeline import NOISE_CHOICES
    p = argparse.ArgumentParser(prog="mislabel", description="Find mislabeled samples from training dynamics "
                                "(Jia, Li et al., AAAI 2023).")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("capture", help="train a classifier on (noisy) data and record its training dynamics",
                       description="Load a dataset, synthesize label noise, train, and write dynamics.npz, "
                       "meta.json and history.csv into --out.")
    c.add_argument("--dataset", default="fashion-mnist", choices=DATASETS)
    c.add_argument("--root", default=None, help="dataset folder (default: standard locations)")
    c.add_argument("--subset", type=int, default=None, help="number of training samples (default: all)")
    c.add_argument("--test-subset", type=int, default=None, help="test samples for accuracy logging (0: none)")
    c.add_argument("--data-seed", type=int, default=0)
    c.add_argument("--noise", default="symmetric", choices=NOISE_CHOICES)
    c.add_argument("--rate", type=float, default=0.4, help="share of labels to corrupt, in [0, 1)")
    c.add_argument("--noise-seed", type=int, default=0)
    c.add_argument("--underlying-rate", type=float, default=0.0, help="twice-contaminate: underlying noise first")
    c.add_argument("--mapping", default="next", help="asymmetric mapping: next, cifar10 or fashion-mnist")
    c.add_argument("--model", default="cnn", help="cnn, mlp or resnet32")
    c.add_argument("--epochs", type=int, default=10)
    c.add_argument("--record", default="train", choices=["train", "eval"])
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--batch-size", type=int, default=128)
    c.add_argument("--lr", type=float, default=0.05)
    c.add_argument("--weight-decay", type=float, default=5e-4)
    c.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    c.add_argument("--no-cache", action="store_true", help="always recompute")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.add_argument("--out", required=True, help="output folder")
    c.set_defaults(func=_capture)

    t = sub.add_parser("train-detector", help="train the LSTM noise detector on captured dynamics",
                       description="Fit a NoiseDetector on one or more dynamics.npz files that carry is_flipped.")
    t.add_argument("--dynamics", nargs="+", required=True, help="dynamics.npz file(s) from capture")
    t.add_argument("--epochs", type=int, default=10)
    t.add_argument("--lr", type=float, default=0.01)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--seq-len", type=int, default=None, help="resample sequences to this length")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--members", type=int, default=1,
                   help="LSTMs averaged in an ensemble, member i trained with seed + i (default 1)")
    t.add_argument("--quiet", action="store_true")
    t.add_argument("--out", required=True, help="checkpoint path, e.g. det.pt")
    t.set_defaults(func=_train_detector)

    d = sub.add_parser("detect", help="rank samples by how likely their label is wrong",
                       description="Score dynamics with a detector and write a CSV ranked by score "
                       "(rank, index, given_label, score).")
    d.add_argument("--dynamics", required=True)
    d.add_argument("--detector", default=None, help="checkpoint (default: the shipped pretrained detector)")
    d.add_argument("--top", type=int, default=None, help="write only the top K rows")
    d.add_argument("--out", required=True, help="CSV path")
    d.set_defaults(func=_detect)

    e = sub.add_parser("evaluate", help="mAP, ROC AUC and Precision@95 of a scores CSV against known flips")
    e.add_argument("--scores", required=True, help="CSV from detect")
    e.add_argument("--dynamics", required=True, help="dynamics.npz carrying is_flipped")
    e.set_defaults(func=_evaluate)
    return p


def main(argv=None) -> int:
    """Entry point; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError, OSError) as exc:
        print(f"mislabel {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0
