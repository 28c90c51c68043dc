"""Training internals of :class:`~mislabel.detector.model.NoiseDetector`: input stacking, the training loop
of one member, fine-tuning of all members, and the extra run of :meth:`NoiseDetector.adapt`.

Functions here take the detector as their first argument and update it in place (its nets, ``info`` and
``history``); call them through the detector's methods.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn as nn
from tqdm.auto import tqdm

from .. import metrics as _metrics
from .. import noise as _noise
from .._utils import flush_denormal, set_seed
from .._validation import check_num_classes, check_positive_int, check_share
from ..dynamics import Dynamics
from .features import features_of, resample
from .threads import _GradWorkers, _intra_op_threads, resolve_workers


def check_train_args(epochs, val_fraction, batch_size) -> None:
    """Raise ValueError unless ``epochs`` and ``batch_size`` are positive integers and ``val_fraction`` in [0, 1)."""
    check_positive_int(batch_size, "batch_size")
    if not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")


def collect(config: dict, dynamics, is_flipped, seq_len: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Stack one or several training sets into sequences and targets.

    Parameters
    ----------
    config : dict
        The detector's ``config`` (``features`` and ``resample`` are read).
    dynamics : Dynamics, ndarray of shape (N, T), or a list of them
    is_flipped : array-like of shape (N,), or a list of them, or None
        None: each set's own ``is_flipped``.
    seq_len : int, optional
        Length to resample to; None: the first set's length.

    Returns
    -------
    x : ndarray of shape (N, L, F), float32
    y : ndarray of shape (N,), int64

    Raises
    ------
    ValueError
        For no sets, missing or malformed targets, sets of different lengths with resampling off, or
        targets of a single class.
    """
    items = dynamics if isinstance(dynamics, (list, tuple)) else [dynamics]
    if not items:
        raise ValueError(f"dynamics is an empty {type(dynamics).__name__}: training needs at least one "
                         "Dynamics (or (N, T) array) with known flips")
    flips = is_flipped if isinstance(dynamics, (list, tuple)) else [is_flipped]
    if flips is None:
        flips = [None] * len(items)
    if len(flips) != len(items):
        raise ValueError("pass one is_flipped per dynamics")
    xs, ys = [], []
    for d, f in zip(items, flips):
        probs, known = features_of(d, config["features"])
        f = known if f is None else np.asarray(f.cpu() if isinstance(f, torch.Tensor) else f)
        if f is None:
            raise ValueError("is_flipped is required: pass it, or use Dynamics that carry is_flipped")
        if f.shape != (len(probs),):
            raise ValueError(f"is_flipped must have shape ({len(probs)},), got {f.shape}")
        if f.dtype != bool:
            off = ~np.isin(f, (0, 1)) if f.dtype.kind in "iuf" else None
            if off is None or off.any():
                got = f"dtype {f.dtype}" if off is None else f"the value {f[off][0].item()!r}"
                raise ValueError(f"is_flipped must be boolean, or integers or floats that are exactly 0 or 1; "
                                 f"got {got}: pass True (or 1) for a flipped label and False (or 0) for a "
                                 "clean one")
        if seq_len is None:
            seq_len = int(probs.shape[1])
        xs.append(resample(probs, seq_len) if config["resample"] else probs)
        ys.append(f.astype(np.int64))
    lengths = {x.shape[1] for x in xs}
    if len(lengths) > 1:
        raise ValueError(f"sequences of different lengths {sorted(lengths)} with resample=False; enable resample")
    x, y = np.concatenate(xs), np.concatenate(ys)
    if y.sum() == 0 or y.sum() == len(y):
        raise ValueError("training needs both flipped and clean samples in is_flipped")
    return x, y


def val_ap(det, xt: torch.Tensor, y: np.ndarray, val_mask: np.ndarray, net) -> float:
    """Average precision of ``net`` on the rows of ``xt`` (N, L, F) where ``val_mask`` (N,) is True."""
    s = det._score_tensor(xt[torch.as_tensor(np.nonzero(val_mask)[0], device=det.device)], nets=[net])
    return _metrics.average_precision(s, y[val_mask])


def train_member(det, net, x, y, epochs, lr, batch_size, weight_decay, val_fraction, seed, progress,
                 stage, workers=None, member=0) -> None:
    """Train ``net`` (member ``member`` of ``det``) on sequences ``x`` (N, L, F) float32 with targets ``y`` (N,)
    int64, keeping the epoch with the best validation AP; append a stage to ``det.info["stages"]`` (and set
    ``det.history`` for member 0)."""
    rng = np.random.default_rng(seed)
    val_mask = np.zeros(len(y), dtype=bool)
    if val_fraction > 0:
        for cls in (0, 1):
            ids = np.nonzero(y == cls)[0]
            n_val = int(round(val_fraction * len(ids)))
            val_mask[rng.choice(ids, size=n_val, replace=False)] = True
        if not val_mask.any() or y[val_mask].min() == y[val_mask].max():
            val_mask[:] = False   # too few samples for a validation set with both classes
    tr = np.nonzero(~val_mask)[0]
    if len(tr) == 0:
        raise ValueError(f"val_fraction={val_fraction} leaves no sequences to train on ({len(y)} in all); "
                         "lower val_fraction or pass more dynamics")
    xt = torch.as_tensor(x, device=det.device)
    yt = torch.as_tensor(y, device=det.device)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(int(seed))
    hist = {"epoch": [], "train_loss": [], "val_ap": []}
    best_state, best_ap, best_epoch = None, -1.0, 0
    if stage in ("fine_tune", "adapt") and val_mask.any():   # the starting weights compete too
        best_ap = val_ap(det, xt, y, val_mask, net)
        best_state = copy.deepcopy(net.state_dict())
    workers = resolve_workers(workers, det.device)
    # one intra-op thread per operation on CPU; the cores work on different parts of the batch (_GradWorkers)
    with flush_denormal(), _intra_op_threads(1 if det.device.type == "cpu" else None), \
            _GradWorkers(net, workers) as grads:
        name = f"detector {stage}" + (f" {member + 1}/{len(det.nets)}" if len(det.nets) > 1 else "")
        bar = tqdm(range(epochs), desc=name, disable=not progress, leave=False)
        for epoch in bar:
            net.train()
            order = torch.as_tensor(tr)[torch.randperm(len(tr), generator=gen)].to(det.device)
            total = 0.0
            for i in range(0, len(order), batch_size):
                idx = order[i:i + batch_size]
                opt.zero_grad(set_to_none=True)
                loss = grads.backward(xt, yt, idx)
                nn.utils.clip_grad_norm_(net.parameters(), 5.0)
                opt.step()
                total += loss * len(idx)
            ap = val_ap(det, xt, y, val_mask, net) if val_mask.any() else float("nan")
            hist["epoch"].append(epoch + 1)
            hist["train_loss"].append(total / len(tr))
            hist["val_ap"].append(ap)
            bar.set_postfix(loss=f"{total / len(tr):.4f}", val_ap=f"{ap:.4f}")
            if not val_mask.any() or ap > best_ap:
                best_ap, best_epoch = ap, epoch + 1
                best_state = copy.deepcopy(net.state_dict())
    net.load_state_dict(best_state)
    net.eval()
    if member == 0:
        det.history = hist
    stage_info = {
        "stage": stage, "epochs": int(epochs), "lr": lr, "batch_size": batch_size, "seed": int(seed),
        "num_sequences": int(len(y)), "flip_rate": float(y.mean()), "best_epoch": int(best_epoch),
        "best_val_ap": float(best_ap), "input_length": int(x.shape[1]), "workers": workers,
    }
    if len(det.nets) > 1 or member > 0:
        stage_info["member"] = int(member)
    det.info.setdefault("stages", []).append(stage_info)


def train_members(det, x, y, epochs, lr, batch_size, weight_decay, val_fraction, seed, progress, stage,
                  workers) -> None:
    """Continue training every member of ``det`` (member i with seed ``seed + i``); switch its guard off."""
    for i, net in enumerate(det.nets):
        set_seed(seed + i)
        train_member(det, net, x, y, epochs, lr, batch_size, weight_decay, val_fraction, seed + i, progress,
                     stage=stage, workers=workers, member=i)
    det.config["memorisation_guard"] = False   # it has now read whole runs of this data


def adapt(det, dynamics, train, *, num_classes, rate, threshold, seed, epochs, lr, batch_size, weight_decay,
          val_fraction, progress, workers) -> None:
    """The work of :meth:`NoiseDetector.adapt` (same arguments; see there)."""
    if not det.trained:
        raise RuntimeError("adapt() needs a trained detector; call fit(), load() or pretrained() first")
    check_train_args(epochs, val_fraction, batch_size)
    if not callable(train):
        raise TypeError(f"train must be a function train(labels) -> Dynamics, got {type(train).__name__}")
    if not isinstance(dynamics, Dynamics) or dynamics.labels is None:
        raise ValueError("adapt() needs the Dynamics of your run with its labels (DynamicsRecorder.result())")
    rate = check_share(rate, "rate")
    labels = np.asarray(dynamics.labels, dtype=np.int64)
    num_classes = check_num_classes(num_classes)
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes}); got values from {labels.min()} to "
                         f"{labels.max()}: pass the number of classes of your data")
    extra, changed = _noise.symmetric(labels, rate, num_classes, seed=seed)
    keep = changed | (det.score(dynamics) < threshold)
    if keep.sum() == changed.sum():
        raise ValueError(f"every unchanged sample scores >= threshold={threshold}, so none is left as a clean "
                         "example: raise the threshold")
    run = train(extra.copy())
    if not isinstance(run, Dynamics):
        raise TypeError(f"train(labels) must return the run's Dynamics (DynamicsRecorder.result()), "
                        f"got {type(run).__name__}")
    if run.num_samples != len(labels):
        raise ValueError(f"train(labels) returned dynamics of {run.num_samples} samples, expected "
                         f"{len(labels)} (one per label, in the same order)")
    if run.labels is not None and not np.array_equal(np.asarray(run.labels), extra):
        raise ValueError("train(labels) must train on the labels it is given: the returned dynamics carry "
                         "other labels")
    x, y = collect(det.config, run, changed, det.seq_len)
    train_members(det, x[keep], y[keep], epochs, lr, batch_size, weight_decay, val_fraction, seed, progress,
                  "adapt", workers)
    det.info["adapt"] = {"rate": float(rate), "threshold": float(threshold), "seed": int(seed),
                         "changed": int(changed.sum()), "left_out": int((~keep).sum()),
                         "num_samples": int(len(labels))}
