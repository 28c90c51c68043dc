"""Training dynamics: each sample's given-label probability at every epoch.

* :class:`DynamicsRecorder` (``recorder``): drop it into any training loop, call
  ``update(logits, labels, sample_ids)`` per batch and ``next_epoch()`` per epoch.
* :class:`Dynamics` (``value``): the result, ``probs`` (N, T) float32 plus labels and optional
  flips, AUM margins, runner-up classes, full class probabilities and metadata; ``save`` and
  ``load`` use a versioned ``.npz`` (``storage`` documents the format).

Helpers: ``batch_values`` (the per-batch softmax and margins), ``deferred`` (the default
recording mode: an epoch's batches kept, checked and computed at once in ``next_epoch()``),
``recorder_checks`` (input checks, misuse warnings, the never-recorded diagnosis),
``npy_appender`` (full probabilities streamed to a ``.npy``), ``interpolate`` (filling epochs
in which a sample was not seen).
"""
from .interpolate import interpolate_missing
from .npy_appender import _discard_unfinished, _NpyAppender, _same_file  # noqa: F401
from .storage import (FORMAT, FORMAT_VERSION, _backing_npy, _file_fingerprint, _format_version,  # noqa: F401
                      _full_fingerprint, _open_full_npy)
from .value import Dynamics, _as_probs, _row_index  # noqa: F401
from .recorder import DynamicsRecorder

__all__ = ["Dynamics", "DynamicsRecorder", "interpolate_missing", "FORMAT", "FORMAT_VERSION"]
