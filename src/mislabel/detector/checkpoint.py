"""Detector checkpoints: writing, reading (format versions 1 and 2) and the shipped pretrained weights.

A checkpoint is a ``torch.save`` file of plain Python containers and tensors, loadable with
``torch.load(..., weights_only=True)``::

    {"format": "mislabel-detector", "format_version": 2, "library_version": str,
     "config": NoiseDetector.config, "state_dicts": [one state_dict per member],
     "info": dict, "history": dict}

Version 1 files hold a single ``"state_dict"`` instead of ``"state_dicts"`` and may lack the config keys
added since (``features``, ``members``, ``memorisation_guard``); they load as one-member detectors with
``features="prob"`` and the guard off.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .._utils import atomic_path, jsonable

CHECKPOINT_FORMAT = "mislabel-detector"
#: version 2 stores a list of member weights (ensembles); version 1 files (one ``state_dict``) still load
CHECKPOINT_VERSION = 2
#: the weights shipped with the package (:meth:`NoiseDetector.pretrained`)
PRETRAINED_PATH = Path(__file__).parent.parent / "weights" / "detector.pt"


def save(det, path) -> Path:
    """Write ``det`` (a trained NoiseDetector) to ``path`` atomically.

    Parameters
    ----------
    det : NoiseDetector
    path : str or Path

    Returns
    -------
    Path

    Raises
    ------
    RuntimeError
        If ``det`` is untrained.
    TypeError
        If ``det.info`` or ``det.history`` holds something JSON cannot (see :func:`mislabel._utils.jsonable`).
    """
    if not det.trained:
        raise RuntimeError("refusing to save an untrained detector")
    from .. import __version__
    payload = {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION,
               "library_version": __version__, "config": dict(det.config),
               "state_dicts": [{k: v.detach().cpu() for k, v in net.state_dict().items()} for net in det.nets],
               "info": jsonable(det.info, "info"), "history": jsonable(det.history, "history")}
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load(cls, path, device=None):
    """Read a checkpoint into a new detector of class ``cls``.

    Parameters
    ----------
    cls : type
        NoiseDetector (or a subclass).
    path : str or Path
    device : str or torch.device, optional

    Returns
    -------
    cls instance
        Trained, in eval mode, on ``device``.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ValueError
        For a file that is not a mislabel detector checkpoint of a readable version, or whose weights do
        not match its configuration.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no detector checkpoint at {path}; train one with NoiseDetector().fit(...).save(path)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for foreign or corrupt files
        raise ValueError(f"{path} is not a loadable detector checkpoint ({type(exc).__name__}); "
                         "re-create it with NoiseDetector.save") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a mislabel detector checkpoint (missing format tag {CHECKPOINT_FORMAT!r})")
    version = payload.get("format_version")
    if version not in (1, CHECKPOINT_VERSION):
        raise ValueError(f"{path} has checkpoint version {version}; "
                         f"this library reads versions 1 to {CHECKPOINT_VERSION}")
    cfg = payload.get("config")
    if not isinstance(cfg, dict):
        raise ValueError(f"{path} is damaged: its configuration is missing; re-create it with NoiseDetector.save")
    raw = payload.get("state_dict" if version == 1 else "state_dicts")   # one net, or one per member
    states = [] if raw is None else [raw] if version == 1 else list(raw)
    if not states or len(states) != cfg.get("members", 1):
        raise ValueError(f"{path}: weights do not match the stored configuration "
                         f"({len(states)} member weights for members={cfg.get('members', 1)})")
    _check_weights_fit(cfg, states, path)       # before building the nets: a damaged size allocates nothing
    try:
        det = cls(cfg["hidden_size"], cfg["num_layers"], cfg["seq_len"], cfg["resample"],
                  cfg.get("features", "prob"), device=device, members=len(states),
                  memorisation_guard=cfg.get("memorisation_guard", False))
        for net, state in zip(det.nets, states):
            net.load_state_dict(state)
            net.eval()
        det.trained = True
    except (RuntimeError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: weights do not match the stored configuration ({exc})") from None
    det.info = payload.get("info", {})
    det.history = payload.get("history", {})
    return det


def _check_weights_fit(cfg: dict, states: list, path) -> None:
    """Raise ValueError unless every member's weights have the shapes the configuration implies.

    Checked on a network built on the ``meta`` device (shapes only, no memory), so that a damaged size in
    the configuration (a hidden size of 10**5, say) is refused instead of allocated and initialised.
    """
    from .features import CHANNELS, parse_features
    from .network import _LSTMNet
    try:
        with torch.device("meta"):
            net = _LSTMNet(cfg["hidden_size"], cfg["num_layers"], CHANNELS["+".join(parse_features(
                cfg.get("features", "prob")))])
        expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    except (KeyError, TypeError, ValueError, RuntimeError, OverflowError) as exc:
        raise ValueError(f"{path} is damaged: its configuration is not a valid detector's ({exc}); re-create it "
                         "with NoiseDetector.save") from None
    for k, state in enumerate(states):
        try:
            got = {name: tuple(v.shape) for name, v in state.items()}
        except (AttributeError, TypeError):
            got = None
        if got != expected:
            raise ValueError(f"{path}: weights do not match the stored configuration (member {k} has "
                             f"{'no weights' if got is None else 'other shapes'} than hidden_size="
                             f"{cfg['hidden_size']}, num_layers={cfg['num_layers']} imply)")


def pretrained(cls, device=None):
    """The detector shipped with the package, as a ``cls`` (see the book's model card).

    Raises
    ------
    FileNotFoundError
        If this installation ships no weights.
    """
    if not PRETRAINED_PATH.is_file():
        raise FileNotFoundError(
            "this installation ships no pretrained detector (mislabel/weights/detector.pt); "
            "train one with NoiseDetector().fit(dynamics, is_flipped) or pass --detector")
    return load(cls, PRETRAINED_PATH, device=device)
