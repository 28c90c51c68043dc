"""Command line: ``python -m mislabel {capture,train-detector,detect,evaluate}``.

Every subcommand prints a one-line error and exits with status 2 on bad input.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np

from .cli_outputs import CLIError, check_out_dir, check_out_file, locked, refuse_derived, refuse_inputs, staging
from .cli_outputs import one_line as _one_line
from .cli_outputs import remove_empty, writing as _writing

#: detect's hint to adapt the detector appears when it flags (score >= 0.5) fewer than this share of the
#: labels expected to be wrong: the model card's sign of data the detector is unsure of (on DNA it flagged
#: 4-11% of the samples where 20-40% were flipped; elsewhere about as many as were flipped)
FAR_FEWER = 0.5

_SCORES_CSV = "a scores CSV written by `mislabel detect` (columns rank, index, given_label, score)"


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (status 2), like every other error of the CLI."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _int_at_least(low: int, what: str):
    """argparse type: an integer of ``low`` or more (``what`` names the kind in messages)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be a {what} integer ({low} or more), got {value}")
        return value
    return parse


#: count-like options: 1 or more; seeds and counts where 0 means none: 0 or more
_positive_int = _int_at_least(1, "positive")
_non_negative_int = _int_at_least(0, "non-negative")


def _share(text: str) -> float:
    """argparse type of --expected-rate: a share in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be a share in (0, 1], e.g. 0.2 for 20%, got {value}")
    return value


def _check_device(device) -> None:
    """Refuse, before any work, a --device this machine cannot use (:func:`mislabel._utils.resolve_device`)."""
    from ._utils import resolve_device
    try:
        resolve_device(device)
    except ValueError as exc:
        raise CLIError(str(exc)) from None


# what reading a user-supplied file may raise on a foreign, corrupt or unreadable file
_READ_ERRORS = (ValueError, TypeError, KeyError, OSError, EOFError, zipfile.BadZipFile)


def _read(kind: str, path, load):
    """``load(path)``; a failure to read the user's file becomes one line that names it and what was expected."""
    try:
        return load(path)
    except _READ_ERRORS as exc:
        text = _one_line(exc)
        if isinstance(exc, (ValueError, OSError)) and not isinstance(exc, UnicodeError) and str(path) in text:
            raise  # the library's own message already names the file
        raise CLIError(f"cannot read {path} as {kind} ({type(exc).__name__}: {text})") from exc


def _load_dyn(path):
    from .dynamics import Dynamics
    return _read("a dynamics file written by `mislabel capture` or Dynamics.save", path, Dynamics.load)


def _load_detector(path):
    from .detector import NoiseDetector
    return _read("a detector checkpoint written by `mislabel train-detector` or NoiseDetector.save", path,
                 NoiseDetector.load)


#: capture's checkpoint folder inside --out, while a capture runs (removed once its files are written)
CHECKPOINT_DIR = ".checkpoint"


def _capture(a) -> None:
    import os
    from . import pipeline
    from .train.checkpoint import CheckpointError
    names = ("dynamics.npz", "meta.json", "history.csv")
    _check_device(a.device)
    check_out_dir(a.out, names)
    out = Path(a.out)
    with locked(out):
        refuse_derived(out)
        real = Path(os.path.realpath(out))
        made = [q for q in (real, *real.parents) if not q.exists()]   # nearest first: removed again on failure
        ckpt = out / CHECKPOINT_DIR   # a killed capture resumes from it when the same command runs again
        try:
            cap = pipeline.capture(a.dataset, subset=a.subset, data_seed=a.data_seed, noise=a.noise, rate=a.rate,
                                   noise_seed=a.noise_seed, underlying_rate=a.underlying_rate, mapping=a.mapping,
                                   model=a.model, epochs=a.epochs, record=a.record, seed=a.seed,
                                   batch_size=a.batch_size, lr=a.lr, weight_decay=a.weight_decay,
                                   test_subset=a.test_subset, root=a.root, device=a.device, amp=a.amp,
                                   progress=not a.quiet, cache=not a.no_cache, checkpoint_dir=ckpt)
            with staging(out) as tmp:   # all three files or none: a failed write leaves the previous run whole
                with _writing(out / names[0]):
                    cap.dynamics.save(tmp / names[0])
                with _writing(out / names[1]):
                    (tmp / names[1]).write_text(json.dumps(cap.dynamics.meta, indent=1))
                with _writing(out / names[2]):
                    pipeline.write_history(cap.history, tmp / names[2])
        except Exception as exc:
            if not isinstance(exc, CheckpointError):   # another run's checkpoint stays: the message names it
                shutil.rmtree(ckpt, ignore_errors=True)
                remove_empty(made)
            raise
        shutil.rmtree(ckpt, ignore_errors=True)   # Ctrl-C or a kill skip this: the next run resumes
    if cap.cache_hit:
        print(f"read from the cache ({cap.folder}): trained earlier with these settings; --no-cache trains again")
    acc = cap.history["test_acc"][-1] if cap.history.get("test_acc") else float("nan")
    print(f"wrote {out}/dynamics.npz  (N={cap.dynamics.num_samples}, T={cap.dynamics.num_epochs}, "
          f"flipped={int(cap.dynamics.is_flipped.sum())}, final test acc={acc:.3f})")


def _train_detector(a) -> None:
    from .detector import NoiseDetector
    check_out_file(a.out, "det.pt")
    refuse_inputs(a.out, [("--dynamics", p) for p in a.dynamics])
    dyns = [_load_dyn(p) for p in a.dynamics]
    for p, d in zip(a.dynamics, dyns):
        if d.is_flipped is None:
            raise ValueError(f"{p} carries no is_flipped; train-detector needs dynamics captured with synthesized noise")
    det = NoiseDetector(seq_len=a.seq_len, members=a.members).fit(dyns, epochs=a.epochs, lr=a.lr,
                                                                   batch_size=a.batch_size, seed=a.seed,
                                                                   progress=not a.quiet)
    with _writing(a.out):
        det.save(a.out)
    best = det.info["stages"][-1]
    print(f"wrote {a.out}  (best epoch {best['best_epoch']}, validation AP {best['best_val_ap']:.4f})")


#: without a recorded number of classes, labels at or above this are refused (the detector's class-pair
#: shares take a C x C table: 2**15 classes is 8 GiB)
MAX_CLASSES = 2 ** 15


def _check_classes(dyn, path) -> None:
    """Refuse labels (or runner-up classes) at or above the run's recorded number of classes, before the
    detector allocates a table of that size squared."""
    meta = dyn.meta or {}
    recorded = meta.get("num_classes")
    if recorded is None and isinstance(meta.get("classes"), list):
        recorded = len(meta["classes"])
    classes = [int(dyn.labels.max(initial=0))]
    if dyn.runner_up is not None:
        classes.append(int(dyn.runner_up.max(initial=0)))
    top = max(classes)
    if isinstance(recorded, int) and not isinstance(recorded, bool) and recorded > 0:
        if top >= recorded:
            raise CLIError(f"--dynamics {path}: holds class {top} but records {recorded} classes (0 to "
                           f"{recorded - 1}); the file is damaged or was edited: capture the run again")
    elif top >= MAX_CLASSES:
        raise CLIError(f"--dynamics {path}: holds class {top} and records no number of classes; detect handles "
                       f"up to {MAX_CLASSES} classes: renumber the labels 0 to C-1")


def _detect(a) -> None:
    from ._utils import atomic_path
    from .detector import NoiseDetector
    check_out_file(a.out, "scores.csv")
    refuse_inputs(a.out, [("--dynamics", a.dynamics), ("--detector", a.detector)])
    dyn = _load_dyn(a.dynamics)
    _check_classes(dyn, a.dynamics)
    if a.method is not None and a.method != "shipped":
        epochs, scores = _method_scores(a, dyn)
    else:
        det = _load_detector(a.detector) if a.detector else NoiseDetector.pretrained()
        epochs, scores = det._view(dyn)   # the scores and how many epochs they read, in one pass
    order = np.argsort(-scores, kind="stable")
    rows = order[: a.top] if a.top else order
    with _writing(a.out), atomic_path(a.out) as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["rank", "index", "given_label", "score"])
            for r, i in enumerate(rows, start=1):
                w.writerow([r, int(i), int(dyn.labels[i]), f"{scores[i]:.6f}"])
    n = len(order)
    written = f"top {len(rows)} written" if len(rows) < n else "all written"
    print(f"wrote {a.out}  ({n} samples scored, {written}; top score {scores[order[0]]:.4f} at index {order[0]})")
    if a.method is not None and a.method != "shipped":
        return   # the method's own scale: no probability to count flags by
    if epochs < dyn.num_epochs:
        print(f"scored the first {epochs} of {dyn.num_epochs} epochs: by then the classifier predicted most given "
              "labels and its predictions had settled; later they changed more again as it started to fit wrong "
              "labels, and the whole run left the detector unsure (the memorisation guard; see the model card)")
    flagged = int((scores >= 0.5).sum())
    share = flagged / n
    line = f"{flagged} samples ({share:.1%}) score 0.5 or more"
    if a.expected_rate is not None:
        expected, of = a.expected_rate, "wrong labels you expect (--expected-rate)"
    elif dyn.is_flipped is not None:
        expected, of = float(np.mean(dyn.is_flipped)), "labels flipped in this run"
    else:
        expected = None
    if expected is None:
        print(f"{line}. Pass --expected-rate, the share of wrong labels you expect, to learn whether that is "
              "far fewer: the sign that the detector is unsure of data like yours.")
    elif share < FAR_FEWER * expected:
        print(f"{line}, far fewer than the {expected:.1%} of {of}: the detector is unsure of data like yours. "
              "NoiseDetector.adapt fine-tunes it with one more run of your training loop (see the README).")
    else:
        print(f"{line} ({expected:.1%} of {of}).")


def _method_scores(a, dyn) -> tuple[int, np.ndarray]:
    """Scores of a method of :mod:`mislabel.methods` that needs only the recorded run (``methods.score_run``)."""
    from . import methods

    if a.detector:
        raise CLIError(f"--detector is the checkpoint of the detector method; --method {a.method} does not read it")
    try:
        return dyn.num_epochs, methods.score_run(a.method, dyn).scores
    except ValueError as err:
        raise CLIError(f"--method {a.method}: {_one_line(err)}") from None


def _cell(path, line: int, row: dict, key: str, conv):
    """``conv`` of one cell of a scores CSV; CLIError naming the file, line and value when it is not one."""
    v = row.get(key)
    try:
        return conv(v.strip())
    except (AttributeError, TypeError, ValueError):
        kind = "an integer" if conv is int else "a number"
        raise CLIError(f"{path} line {line}: {key} {v!r} is not {kind}; expected {_SCORES_CSV}") from None


def _read_scores(path, dyn, dyn_path) -> np.ndarray:
    """The scores of every sample of ``dyn`` from a CSV written by ``detect``; CLIError on anything else."""
    p = Path(path)
    if not p.exists():
        raise CLIError(f"no scores file at {path}; write one with `mislabel detect`")
    if not p.is_file():
        raise CLIError(f"{path} is not a file; expected {_SCORES_CSV}")
    N = dyn.num_samples
    scores = np.full(N, np.nan)
    line_of: dict[int, int] = {}
    mismatch = []
    try:
        with open(p, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            fields = reader.fieldnames or []
            if not {"index", "score"} <= set(fields):
                raise CLIError(f"{path} is not {_SCORES_CSV}: it has no index and score columns")
            check_labels = "given_label" in fields
            for r in reader:
                line = reader.line_num
                i = _cell(path, line, r, "index", int)
                s = _cell(path, line, r, "score", float)
                if not math.isfinite(s):
                    raise CLIError(f"{path} line {line}: score {r['score']!r} is not a finite number")
                if i in line_of:
                    raise CLIError(f"{path} lists sample index {i} twice (lines {line_of[i]} and {line}); "
                                   "a CSV written by `mislabel detect` has one row per sample")
                if i < 0:
                    raise CLIError(f"{path} line {line}: negative sample index {i}")
                if i >= N:
                    raise CLIError(f"{path} line {line}: sample index {i} is beyond the {N} samples of {dyn_path} "
                                   f"(0 to {N - 1}): the scores come from a different, larger run")
                if check_labels and (r.get("given_label") or "").strip():
                    g = _cell(path, line, r, "given_label", int)
                    if g != int(dyn.labels[i]):
                        mismatch.append((i, g))
                line_of[i] = line
                scores[i] = s
    except UnicodeDecodeError:
        raise CLIError(f"{path} is not a text file; expected {_SCORES_CSV}") from None
    except csv.Error as exc:
        raise CLIError(f"{path} is not {_SCORES_CSV} ({_one_line(exc)})") from None
    except OSError as exc:
        raise CLIError(f"cannot read {path} ({exc.strerror or _one_line(exc)})") from None
    if not line_of:
        raise CLIError(f"{path} has no rows; expected {_SCORES_CSV}")
    if mismatch:
        i, g = mismatch[0]
        raise CLIError(f"{path} gives other labels than {dyn_path} for {len(mismatch)} of {len(line_of)} samples "
                       f"(e.g. sample {i}: {g} vs {int(dyn.labels[i])}): the scores come from a different run")
    M = len(line_of)
    if M < N:
        if max(line_of) == M - 1:   # exactly samples 0..M-1: a whole ranking of a run of M samples
            raise CLIError(f"{path} scores samples 0 to {M - 1} only, as written for a run of {M} samples, but "
                           f"{dyn_path} has {N}; score {dyn_path} with detect (without --top) to evaluate it")
        raise CLIError(f"{path} scores only {M} of the {N} samples of {dyn_path} (written with detect --top?); "
                       "run detect without --top to evaluate")
    return scores


def _evaluate(a) -> None:
    from .metrics import evaluate
    dyn = _load_dyn(a.dynamics)
    if dyn.is_flipped is None:
        raise ValueError(f"{a.dynamics} carries no is_flipped: evaluation needs known flips")
    flipped = int(np.count_nonzero(dyn.is_flipped))
    if flipped in (0, dyn.num_samples):
        what = ("no sample as flipped (is_flipped is all False)" if flipped == 0
                else "every sample as flipped (is_flipped is all True)")
        raise CLIError(f"{a.dynamics} marks {what}: evaluate needs known flips of both kinds, wrong and right "
                       "labels, to rank one against the other; evaluate dynamics captured with a noise rate "
                       "strictly between 0 and 1 (capture --rate)")
    scores = _read_scores(a.scores, dyn, a.dynamics)
    res = evaluate(scores, dyn.is_flipped)
    print(json.dumps(res, indent=1))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m mislabel``."""
    from .data import DATASETS
    from .pipeline import NOISE_CHOICES
    p = _Parser(prog="mislabel", description="Find mislabeled samples from training dynamics "
                "(Jia, Li et al., AAAI 2023).")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("capture", help="train a classifier on (noisy) data and record its training dynamics",
                       description="Load a dataset, synthesize label noise, train, and write dynamics.npz, "
                       "meta.json and history.csv into --out.")
    c.add_argument("--dataset", default="fashion-mnist", choices=DATASETS)
    c.add_argument("--root", default=None, help="dataset folder (default: standard locations)")
    c.add_argument("--subset", type=_positive_int, default=None, help="number of training samples (default: all)")
    c.add_argument("--test-subset", type=_non_negative_int, default=None,
                   help="test samples for accuracy logging (0: none)")
    c.add_argument("--data-seed", type=_non_negative_int, default=0)
    c.add_argument("--noise", default="symmetric", choices=NOISE_CHOICES)
    c.add_argument("--rate", type=float, default=0.4, help="share of labels to corrupt, in [0, 1)")
    c.add_argument("--noise-seed", type=_non_negative_int, default=0)
    c.add_argument("--underlying-rate", type=float, default=0.0, help="twice-contaminate: underlying noise first")
    c.add_argument("--mapping", default="next", help="asymmetric mapping: next, cifar10 or fashion-mnist")
    c.add_argument("--model", default="cnn", help="cnn, mlp or resnet32")
    c.add_argument("--epochs", type=_positive_int, default=10)
    c.add_argument("--record", default="train", choices=["train", "eval"])
    c.add_argument("--seed", type=_non_negative_int, default=0)
    c.add_argument("--batch-size", type=_positive_int, default=128)
    c.add_argument("--lr", type=float, default=0.05)
    c.add_argument("--weight-decay", type=float, default=5e-4)
    c.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    c.add_argument("--amp", action="store_true",
                   help="bfloat16 autocast: on CUDA (ResNet-32 1.4x faster on an H100), or on a CPU with native "
                        "bfloat16; elsewhere ignored with a warning (float32)")
    c.add_argument("--no-cache", action="store_true", help="always recompute")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.add_argument("--out", required=True, help="output folder")
    c.set_defaults(func=_capture)

    t = sub.add_parser("train-detector", help="train the LSTM noise detector on captured dynamics",
                       description="Fit a NoiseDetector on one or more dynamics.npz files that carry is_flipped.")
    t.add_argument("--dynamics", nargs="+", required=True, help="dynamics.npz file(s) from capture")
    t.add_argument("--epochs", type=_positive_int, default=10)
    t.add_argument("--lr", type=float, default=0.01)
    t.add_argument("--batch-size", type=_positive_int, default=64)
    t.add_argument("--seq-len", type=_positive_int, default=None, help="resample sequences to this length")
    t.add_argument("--seed", type=_non_negative_int, default=0)
    t.add_argument("--members", type=_positive_int, default=1,
                   help="LSTMs averaged in an ensemble, member i trained with seed + i (default 1)")
    t.add_argument("--quiet", action="store_true")
    t.add_argument("--out", required=True, help="checkpoint path, e.g. det.pt")
    t.set_defaults(func=_train_detector)

    d = sub.add_parser("detect", help="rank samples by how likely their label is wrong",
                       description="Score dynamics with a detector and write a CSV ranked by score "
                       "(rank, index, given_label, score).")
    d.add_argument("--dynamics", required=True)
    d.add_argument("--detector", default=None, help="checkpoint (default: the shipped pretrained detector)")
    d.add_argument("--method", default=None,
                   help="rank with this method of mislabel.methods instead of the shipped detector: one that needs "
                   "only the recorded run (aum, forgetting, datamaps, mean_loss, el2n, ctrl); the others train on "
                   "the images and are run from Python (mislabel.methods.run)")
    d.add_argument("--top", type=_positive_int, default=None, help="write only the top K rows")
    d.add_argument("--expected-rate", type=_share, default=None,
                   help="share of wrong labels you expect, e.g. 0.2 (default: the share flipped, when the "
                   "dynamics carry is_flipped); detect says when the detector flags far fewer")
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
    except KeyboardInterrupt:
        again = (" (run the same command again to resume from the last complete epoch)"
                 if args.command == "capture" else "")
        print(f"\nmislabel {args.command}: interrupted{again}", file=sys.stderr)
        return 130
    except (CLIError, ValueError, FileNotFoundError, RuntimeError, OSError) as exc:
        print(f"mislabel {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    return 0
