"""One fast training loop that records training dynamics.

Data live as one float tensor on the training device; each batch is gathered
by index, augmented in one batched operation (random crop + horizontal flip)
and fed to the model. The loop synchronises with the host once per epoch.

``record`` chooses how dynamics are taken:

* ``"train"`` — softmax of the logits of the training forward pass itself
  (augmented inputs, train-mode BatchNorm, weights changing within the epoch):
  no extra compute, as the paper describes ("without additional computations").
* ``"eval"`` — a separate no-grad pass over the un-augmented training set in
  eval mode after each epoch, as the paper's released code does.
* ``None`` — no recording (for timing comparisons).

Submodules: :mod:`~mislabel.train.augment` (scaling, crop/flip, batch
gathering), :mod:`~mislabel.train.checks` (input checks),
:mod:`~mislabel.train.step` (model, SGD step, no-grad passes),
:mod:`~mislabel.train.graphs` (CUDA-graph steps) and
:mod:`~mislabel.train.loop` (the epoch loop and :func:`fit`). Every public
name is available from :mod:`mislabel.train` itself.
"""
from .augment import batch, channel_stats, default_augment, device_data, random_crop_flip, to_float
from .checks import (RECORD_MODES, TrainingDivergedError, check_finite, check_inputs, check_settings,
                     check_test)
from .graphs import GraphedStep, check_cuda_graphs
from .loop import HISTORY_KEYS, TrainOptions, Training, TrainResult, fit, log_epoch, run_meta
from .step import accuracy, build_model, eval_batch_size, forward, predict, sgd, sgd_step

__all__ = [
    "fit", "predict", "TrainResult", "TrainOptions", "Training", "TrainingDivergedError", "RECORD_MODES",
    "HISTORY_KEYS", "GraphedStep", "check_cuda_graphs", "channel_stats", "to_float", "random_crop_flip",
    "default_augment", "batch", "device_data", "eval_batch_size", "forward", "sgd_step", "accuracy",
    "build_model", "sgd", "check_inputs", "check_test", "check_settings", "check_finite", "log_epoch", "run_meta",
]
