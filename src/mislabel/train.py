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
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import models as _models
from ._utils import amp_enabled, as_int_labels, check_positive_int, check_seed, jsonable, resolve_device, set_seed
from .dynamics import Dynamics, DynamicsRecorder

RECORD_MODES = ("train", "eval", None)


class TrainingDivergedError(ValueError):
    """Training produced a NaN or inf loss (or weights): the learning rate is too high for the data."""


def eval_batch_size(device: torch.device) -> int:
    """Batch size of the no-grad passes (``record="eval"``, test accuracy): 256 on CPU, where
    it keeps activations in cache (2.4x faster than 1024 for the cnn, measured), else 1024."""
    return 256 if device.type == "cpu" else 1024


@dataclass
class TrainResult:
    """What :func:`fit` returns.

    Attributes
    ----------
    dynamics : Dynamics or None
        Recorded dynamics, ``probs`` of shape (N, epochs); None when ``record=None``.
    model : torch.nn.Module
        The trained model (in eval mode, on the training device).
    history : dict of lists
        Per epoch: ``epoch``, ``lr``, ``train_loss``, ``train_acc`` (against the
        given labels), ``test_acc`` (NaN without test data), ``seconds``.
    normalization : tuple of (mean, std)
        Per-channel statistics used to scale the inputs; :func:`predict` reuses them.
    """

    dynamics: Dynamics | None
    model: nn.Module
    history: dict = field(default_factory=dict)
    normalization: tuple = ((), ())


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images (N, C, H, W), on the [0, 1] scale."""
    x = images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-6)
    return mean.tolist(), std.tolist()


def to_float(images: torch.Tensor, mean, std, device=None) -> torch.Tensor:
    """Scale uint8 images (N, C, H, W) to normalised float32 on ``device``."""
    x = images.to(device) if device is not None else images
    x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
    m = torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


def random_crop_flip(x: torch.Tensor, pad: int, flip: bool, generator: torch.Generator | None = None) -> torch.Tensor:
    """Batched augmentation: zero-pad by ``pad``, take a random crop of the original size, maybe flip.

    Parameters
    ----------
    x : Tensor of shape (B, C, H, W), float
    pad : int
        Padding on every side; crop offsets are uniform in ``[0, 2*pad]``.
    flip : bool
        Flip each image horizontally with probability 1/2.
    generator : torch.Generator, optional
        On the same device as ``x``, for reproducibility.

    Returns
    -------
    Tensor of shape (B, C, H, W)
    """
    B, C, H, W = x.shape
    dev = x.device
    if pad <= 0 and not flip:
        return x
    # One gather per batch: each output pixel's flat position in its padded image. A flip is
    # folded in by reversing the column order, so no second pass over the pixels is needed
    # (4-6x faster on CPU than a 4-d advanced index followed by a masked flip).
    pad = max(int(pad), 0)
    Hp, Wp = H + 2 * pad, W + 2 * pad
    cols = torch.arange(W, device=dev).expand(B, W)
    rows = torch.arange(H, device=dev).expand(B, H)
    if pad:
        oy = torch.randint(0, 2 * pad + 1, (B,), device=dev, generator=generator)
        ox = torch.randint(0, 2 * pad + 1, (B,), device=dev, generator=generator)
        rows, cols = rows + oy[:, None], cols + ox[:, None]
    if flip:
        mask = torch.rand(B, device=dev, generator=generator) < 0.5
        cols = torch.where(mask[:, None], cols.flip(1), cols)
    flat = (rows[:, :, None] * Wp + cols[:, None, :]).view(B, 1, H * W)
    xp = F.pad(x, (pad, pad, pad, pad)) if pad else x
    return xp.reshape(B, C, Hp * Wp).gather(2, flat.expand(B, C, H * W)).view(B, C, H, W)


def default_augment(images: torch.Tensor) -> tuple[int, bool]:
    """Padding and flipping used when ``augment="auto"``.

    Parameters
    ----------
    images : Tensor of shape (N, C, H, W)
        Only the shape is read; S = min(H, W) decides.

    Returns
    -------
    pad : int
    flip : bool
        (4, True) for S >= 32 (CIFAR recipe), (2, True) for 16 <= S < 32 (28 px
        Fashion-MNIST), (1, False) for 8 <= S < 16 (8 px digits), and (0, False),
        no augmentation, for S < 8: tabular rows stored as (N, F, 1, 1) or tiny
        patches (satellite's 3x3) would otherwise have most of their values
        replaced by padding.
    """
    S = min(images.shape[2], images.shape[3])
    if S >= 32:
        return 4, True
    if S >= 16:
        return 2, True
    if S >= 8:
        return 1, False
    return 0, False


def forward(model: nn.Module, x: torch.Tensor, use_amp: bool, cache: bool = True) -> torch.Tensor:
    """Logits of one batch, float32: ``model(x)`` under bfloat16 autocast when ``use_amp``.

    Parameters
    ----------
    model : nn.Module
    x : Tensor of shape (B, C, H, W), float32
    use_amp : bool
    cache : bool
        Autocast's cache of weights cast to bfloat16; off inside a CUDA graph capture.

    Returns
    -------
    Tensor of shape (B, num_classes), float32
    """
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=use_amp, cache_enabled=cache):
        logits = model(x)
    return logits.float()


def batch(x_all: torch.Tensor, y_all: torch.Tensor, idx: torch.Tensor, pad: int, flip: bool,
          generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows ``idx`` of the device-resident data, augmented, channels-last.

    Returns
    -------
    x : Tensor of shape (B, C, H, W), float32, channels-last
    y : Tensor of shape (B,), int64
    """
    xb = x_all.index_select(0, idx)   # 4x faster than x_all[idx] on CPU
    if pad or flip:
        xb = random_crop_flip(xb, pad, flip, generator)
    return xb.contiguous(memory_format=torch.channels_last), y_all.index_select(0, idx)


def sgd_step(model: nn.Module, opt: torch.optim.Optimizer, x_all: torch.Tensor, y_all: torch.Tensor,
             idx: torch.Tensor, pad: int, flip: bool, generator: torch.Generator | None,
             use_amp: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One optimisation step on rows ``idx`` of the device-resident data.

    Parameters
    ----------
    model : nn.Module
    opt : torch.optim.Optimizer
    x_all : Tensor of shape (N, C, H, W), float32
    y_all : Tensor of shape (N,), int64
    idx : Tensor of shape (B,), int64
    pad, flip, generator
        Batched augmentation (:func:`random_crop_flip`).
    use_amp : bool
        bfloat16 autocast.

    Returns
    -------
    logits : Tensor of shape (B, num_classes), float32, detached
    labels : Tensor of shape (B,), int64
    loss : Tensor of shape (), detached (no host synchronisation)
    """
    xb, yb = batch(x_all, y_all, idx, pad, flip, generator)
    logits = forward(model, xb, use_amp)
    loss = F.cross_entropy(logits, yb)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return logits.detach(), yb, loss.detach()


class GraphedStep:
    """:func:`sgd_step` with forward, loss and backward of full batches replayed as one CUDA graph.

    Eager PyTorch launches each of the ~600 kernels of a ResNet-32 training step
    from Python. On an H100 a step of 128 images took about 16 ms of wall time
    against about 3 ms of GPU kernel time (measured), so the GPU mostly waits
    for the host. A captured graph launches them all at once. Batch gathering, augmentation and
    the optimiser step stay eager (a few dozen launches), so learning-rate
    schedules and the random stream behave as in :func:`sgd_step`.

    The first ``warmup`` full batches train eagerly, as in :func:`sgd_step`.
    Then the next full batch's shapes are captured: a throw-away forward and
    backward on a side stream (PyTorch's recipe before a capture; it takes no
    optimiser step, and its BatchNorm statistics are restored), then the
    capture. From there on each full batch is copied into the graph's static
    input and the graph is replayed; gradients live in static buffers that the
    replay overwrites. A smaller last batch runs eagerly, zeroing those buffers
    in place instead of freeing them.

    Rules that follow from the capture: nothing else may set the parameters'
    gradients to None once it has happened (``opt.zero_grad()`` or
    ``model.zero_grad()`` would cut them off from the graph and training would
    silently stop); replays always run the model as it was captured, in train
    mode; and the capture uses the device the model's parameters are on.

    Parameters
    ----------
    model : nn.Module
        On a CUDA device; its forward must be capturable (no host synchronisation,
        no shape-dependent Python control flow).
    opt : torch.optim.Optimizer
    batch_size : int
        The full batch size (the graph's static shape).
    use_amp : bool
        bfloat16 autocast.
    warmup : int
        Eager full batches before the capture.
    """

    def __init__(self, model: nn.Module, opt: torch.optim.Optimizer, batch_size: int, use_amp: bool,
                 warmup: int = 3) -> None:
        self.model, self.opt, self.batch_size, self.use_amp = model, opt, int(batch_size), use_amp
        self.warmup = int(warmup)
        self.graph = None
        self._full = 0   # full batches seen
        p = next(model.parameters(), None)
        self.device = p.device if p is not None else torch.device("cuda", torch.cuda.current_device())

    def _forward_backward(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = forward(self.model, xb, self.use_amp, cache=False)
        loss = F.cross_entropy(logits, yb)
        loss.backward()
        return logits.detach(), loss.detach()

    def _capture(self, xb: torch.Tensor, yb: torch.Tensor) -> None:
        saved = [b.clone() for b in self.model.buffers()]
        side = torch.cuda.Stream(device=self.device)
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            self.opt.zero_grad(set_to_none=True)
            self._forward_backward(xb, yb)
        torch.cuda.current_stream().wait_stream(side)
        with torch.no_grad():   # undo the throw-away pass: BatchNorm statistics (it took no optimiser step)
            for b, old in zip(self.model.buffers(), saved):
                b.copy_(old)
        self.x, self.y = xb.clone(), yb.clone()
        self.opt.zero_grad(set_to_none=True)   # the graph allocates the gradients in its own pool
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.logits, self.loss = self._forward_backward(self.x, self.y)
        self.graph = graph   # only a completed capture is replayed

    def __call__(self, x_all: torch.Tensor, y_all: torch.Tensor, idx: torch.Tensor, pad: int, flip: bool,
                 generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One optimisation step on rows ``idx``; returns (logits, labels, loss) as :func:`sgd_step` does."""
        with torch.cuda.device(self.device):   # streams and graphs belong to the current device
            return self._step(x_all, y_all, idx, pad, flip, generator)

    def _step(self, x_all, y_all, idx, pad, flip, generator):
        full = len(idx) == self.batch_size
        if self.graph is None and (not full or self._full < self.warmup):
            self._full += full
            return sgd_step(self.model, self.opt, x_all, y_all, idx, pad, flip, generator, self.use_amp)
        xb, yb = batch(x_all, y_all, idx, pad, flip, generator)
        if not full:   # a smaller last batch: eager, into the graph's gradient buffers
            for p in self.model.parameters():
                if p.grad is not None:
                    p.grad.zero_()
            logits, loss = self._forward_backward(xb, yb)
            self.opt.step()
            return logits, yb, loss
        if self.graph is None:
            try:
                self._capture(xb, yb)
            except RuntimeError as e:
                cause = f" (after: {e.__context__})" if e.__context__ is not None else ""
                raise RuntimeError(f"could not capture the training step as a CUDA graph: {e}{cause}. Some "
                                   "models cannot be captured, e.g. one whose forward synchronises with the "
                                   "host (.item(), data-dependent shapes); pass cuda_graphs=False to train "
                                   "with eager steps") from e
        else:
            self.x.copy_(xb)
            self.y.copy_(yb)
        self.graph.replay()
        self.opt.step()
        # copies: the next replay overwrites the graph's outputs in place (without bumping their version
        # counters), and the recorder keeps an epoch's logits until next_epoch()
        return self.logits.clone(), yb, self.loss.clone()


@torch.no_grad()
def predict(model: nn.Module, images, normalization, batch_size: int | None = None, device=None,
            amp: bool = False) -> np.ndarray:
    """Class probabilities of ``images``.

    Parameters
    ----------
    model : nn.Module
    images : Tensor of shape (N, C, H, W), uint8 (or float already scaled)
    normalization : (mean, std)
        Per-channel statistics, as in ``TrainResult.normalization``.
    batch_size : int, optional
        Default: :func:`eval_batch_size` (256 on CPU, where activations then stay in cache).
    device : str, optional
        Default: where the model is.
    amp : bool
        bfloat16 autocast, as in :func:`fit`.

    Returns
    -------
    ndarray of shape (N, num_classes), float32
    """
    device = resolve_device(device) if device is not None else next(model.parameters()).device
    batch_size = batch_size or eval_batch_size(device)
    use_amp = amp_enabled(amp, device)
    was = model.training
    model.eval()
    out = []
    imgs = torch.as_tensor(images)
    for i in range(0, len(imgs), batch_size):
        xb = to_float(imgs[i:i + batch_size], *normalization, device=device).contiguous(
            memory_format=torch.channels_last)
        out.append(torch.softmax(forward(model, xb, use_amp), 1).cpu())
    model.train(was)
    return torch.cat(out).numpy()


def check_inputs(images, labels, epochs, record, num_classes) -> tuple[torch.Tensor, np.ndarray, int, int]:
    """Validate the inputs of :func:`fit`; return images (N, C, H, W) as a Tensor, labels (N,) int64, N and C."""
    if record not in RECORD_MODES:
        raise ValueError(f"record must be one of 'train', 'eval' or None, got {record!r}")
    if not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    images = torch.as_tensor(images)
    if images.ndim != 4:
        raise ValueError(f"images must be 4-D (N, C, H, W), got shape {tuple(images.shape)}")
    N = images.shape[0]
    if N == 0:
        raise ValueError("images is empty: need at least one sample")
    y_np = as_int_labels(labels, "labels")
    if len(y_np) != N:
        raise ValueError(f"labels has {len(y_np)} entries but images has {N}; they must match")
    C = int(num_classes or max(int(y_np.max()) + 1, 2))
    if y_np.max() >= C:
        raise ValueError(f"labels contain class {y_np.max()} but num_classes={C}")
    return images, y_np, N, C


def check_test(images: torch.Tensor, test_images, test_labels) -> None:
    """Validate held-out data for :func:`fit`: both or neither given, same per-sample shape, equal lengths.

    Parameters
    ----------
    images : Tensor of shape (N, C, H, W)
        The training images (already checked by :func:`check_inputs`).
    test_images : array-like of shape (M, C, H, W) or None
    test_labels : array-like of shape (M,) or None

    Raises
    ------
    ValueError
        Saying which argument is wrong and how.
    """
    if test_images is None and test_labels is None:
        return
    if test_images is None or test_labels is None:
        given, missing = ("test_images", "test_labels") if test_labels is None else ("test_labels", "test_images")
        raise ValueError(f"{given} was given without {missing}: pass both (test accuracy is computed from the "
                         "pair) or neither")
    shape = tuple(test_images.shape) if hasattr(test_images, "shape") else tuple(torch.as_tensor(test_images).shape)
    if len(shape) != 4 or shape[1:] != tuple(images.shape[1:]):
        raise ValueError(f"test_images must have shape (M, {', '.join(map(str, images.shape[1:]))}) like the "
                         f"training images (N, C, H, W), got {shape}")
    n_labels = len(as_int_labels(test_labels, "test_labels"))
    if n_labels != shape[0]:
        raise ValueError(f"test_labels has {n_labels} entries but test_images has {shape[0]}; they must match")


def check_settings(batch_size, lr, seed) -> tuple[int, object, int]:
    """Validate the SGD settings of :func:`fit`.

    Returns
    -------
    batch_size : int
    lr : the given object, unchanged
        (the optimiser keeps receiving exactly what the caller passed, so numbers do not change)
    seed : int

    Raises
    ------
    ValueError
        If ``batch_size`` is not a positive integer, ``lr`` not a finite number >= 0, or
        ``seed`` not a non-negative integer.
    """
    check_positive_int(batch_size, "batch_size")
    number = isinstance(lr, (int, float, np.integer, np.floating)) or (
        isinstance(lr, torch.Tensor) and lr.numel() == 1 and lr.is_floating_point())
    if isinstance(lr, (bool, np.bool_)) or not number or not math.isfinite(float(lr)) or float(lr) < 0:
        raise ValueError(f"lr must be a finite number >= 0, got {lr!r}")
    return int(batch_size), lr, check_seed(seed)


def check_finite(loss: float, epoch: int, lr, model: nn.Module | None = None) -> None:
    """Raise when training diverged: the epoch's mean loss is NaN or inf, or (with ``model``) a weight is.

    The loss is the per-epoch value :func:`fit` already brings to the host, so the check costs
    nothing per batch; the weights are checked once, after the last epoch (a last step that
    blew up leaves a finite loss but NaN weights and recorded probabilities).

    Parameters
    ----------
    loss : float
        Mean training loss of epoch ``epoch`` (0-based).
    epoch : int
    lr : float
        The initial learning rate, quoted in the message.
    model : nn.Module, optional
        Also check its parameters.

    Raises
    ------
    TrainingDivergedError
        Saying at which epoch training diverged and to lower the learning rate.
    """
    what = None
    if not math.isfinite(loss):
        what = f"the training loss is {loss}"
    elif model is not None:
        params = [p.detach().isfinite().all() for p in model.parameters()]
        if params and not bool(torch.stack(params).all()):
            what = "the model's weights are NaN or inf"
    if what is not None:
        raise TrainingDivergedError(f"training diverged at epoch {epoch + 1}: {what}; lower the learning rate "
                                 f"(lr={lr}) or check the inputs for NaN/inf")


def check_cuda_graphs(cuda_graphs, device: torch.device, named_model: bool) -> bool:
    """Whether :func:`fit` replays its steps as a CUDA graph (``cuda_graphs``: None, True or False).

    None means on for a model given by name on CUDA, else off.

    Raises
    ------
    ValueError
        If ``cuda_graphs`` is not None or a bool, or is True on a device other than CUDA.
    """
    if cuda_graphs is not None and not isinstance(cuda_graphs, (bool, np.bool_)):
        raise ValueError(f"cuda_graphs must be True, False or None (automatic), got {cuda_graphs!r}")
    if cuda_graphs is None:
        return device.type == "cuda" and named_model
    if cuda_graphs and device.type != "cuda":
        raise ValueError(f"cuda_graphs=True needs a CUDA device, but training runs on {device}; pass "
                         "device='cuda' or leave cuda_graphs unset")
    return bool(cuda_graphs)


def build_model(model, images: torch.Tensor, num_classes: int, device: torch.device) -> tuple[nn.Module, str]:
    """The module (built by name if ``model`` is a str) on ``device`` in channels-last format, and its name."""
    name = model if isinstance(model, str) else type(model).__name__
    if isinstance(model, str):
        model = _models.build(model, in_channels=images.shape[1], num_classes=num_classes,
                              image_size=(images.shape[2], images.shape[3]))
    # channels_last is ~3x faster for convolutions on CPU (measured) and preferred by cuDNN
    return model.to(device).to(memory_format=torch.channels_last), name


def device_data(images: torch.Tensor, y_np: np.ndarray, num_classes: int, device: torch.device, augment,
                test_images=None, test_labels=None):
    """Normalised, device-resident training (and test) data.

    Returns
    -------
    norm : (mean, std)
    x_all : Tensor of shape (N, C, H, W), float32, channels-last
    y_all : Tensor of shape (N,), int64
    pad, flip : int, bool
        The batched augmentation (``augment="auto"``: :func:`default_augment`).
    test : (x_test, y_test) or None
    """
    norm = channel_stats(images)
    x_all = to_float(images, *norm, device=device).contiguous(memory_format=torch.channels_last)
    y_all = torch.as_tensor(y_np, device=device)
    if augment == "auto":
        augment = default_augment(images)
    pad, flip = augment if augment else (0, False)
    test = None
    if test_images is not None:
        test = (to_float(torch.as_tensor(test_images), *norm, device=device).contiguous(memory_format=torch.channels_last),
                torch.as_tensor(as_int_labels(test_labels, "test_labels", num_classes), device=device))
    return norm, x_all, y_all, pad, flip, test


def sgd(model: nn.Module, epochs: int, lr: float, momentum: float, weight_decay: float, milestones):
    """SGD and its step schedule: the learning rate is divided by 10 at each fraction of ``epochs`` in ``milestones``.

    PyTorch's fused SGD kernel would make the update 2.5x faster on CPU (0.1 ms of a 30 ms
    step for the ``cnn``), but it rounds a vector's tail elements differently (1 ulp), which
    would change every recorded trajectory and the regenerated shipped detector; not used.
    """
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    steps = sorted({int(round(m * epochs)) for m in milestones if 0 < int(round(m * epochs)) < epochs})
    return opt, torch.optim.lr_scheduler.MultiStepLR(opt, milestones=steps, gamma=0.1)


def fit(model, images, labels, epochs: int = 10, *, batch_size: int = 128, lr: float = 0.1,
        momentum: float = 0.9, weight_decay: float = 5e-4, milestones=(0.5, 0.75), augment="auto",
        record: str | None = "train", seed: int = 0, device=None, amp: bool = False,
        num_classes: int | None = None, test_images=None, test_labels=None, is_flipped=None,
        store_full: bool = False, meta: dict | None = None, progress: bool = True,
        recorder: DynamicsRecorder | None = None, full_path=None, cuda_graphs: bool | None = None) -> TrainResult:
    """Train a classifier with SGD and record each sample's given-label probability per epoch.

    Parameters
    ----------
    model : str or torch.nn.Module
        A name for :func:`mislabel.models.build` ("cnn", "mlp", "resnet32") or a module
        mapping float (B, C, H, W) to logits (B, num_classes).
    images : Tensor of shape (N, C, H, W), uint8 (or float already scaled)
    labels : array-like of shape (N,), int64
        The labels to train on (usually noisy).
    epochs : int
    batch_size : int
    lr, momentum, weight_decay : float
        SGD settings; the learning rate is divided by 10 at each fraction of
        ``epochs`` in ``milestones`` (default 50% and 75%, as in the paper's 100/150 of 200).
    augment : "auto", None or (pad, flip)
        Batched random crop (zero padding ``pad``) and horizontal flip; "auto" picks them
        from the image size (:func:`default_augment`: none below 8 px). Data whose meaning a
        crop or flip changes (:data:`mislabel.data.NO_AUGMENT`) need ``augment=None``;
        :func:`mislabel.pipeline.capture` does that by data set name.
    record : {"train", "eval", None}
        How to record dynamics (see module docstring).
    seed : int
        Seeds initialisation, shuffling and augmentation; on CPU the run is bit-for-bit repeatable.
    device : str, optional
        "cpu", "cuda", or None for CUDA when available.
    amp : bool
        bfloat16 autocast (mixed precision). On CUDA; on CPU only where bfloat16
        is native (AVX512-BF16/AMX: about 2x faster convolutions, measured),
        ignored with a warning elsewhere. Default False: float32, bit-for-bit
        repeatable on any CPU.
    num_classes : int, optional
        Default: ``max(labels) + 1`` (at least 2).
    test_images, test_labels : optional
        Held-out data; test accuracy is computed after every epoch.
    is_flipped : array-like of shape (N,), bool, optional
        Ground-truth flips, attached to the returned dynamics.
    store_full : bool
        Also record all class probabilities (N, T, C) as float16.
    full_path : str or Path, optional
        Stream those full probabilities to this ``.npy`` epoch by epoch instead of
        keeping them in memory (implies ``store_full``; see :class:`DynamicsRecorder`).
    meta : dict, optional
        Extra metadata merged into ``dynamics.meta``.
    progress : bool
        Show a tqdm progress bar over epochs.
    recorder : DynamicsRecorder, optional
        Use this recorder instead of a fresh one.
    cuda_graphs : bool, optional
        Replay forward, loss and backward of full batches as one CUDA graph
        (:class:`GraphedStep`): on an H100 ResNet-32 trains several times faster
        (see the book's performance page). Default (None): on for a model given by
        name on a CUDA device; off for your own module (its forward must not
        synchronise with the host) and on CPU. True on a CPU device is an error.
        The numbers are the eager steps' (identical with cuDNN in deterministic mode).

    Returns
    -------
    TrainResult

    Raises
    ------
    ValueError
        Bad inputs or settings (the message says which and how to fix it).
    TrainingDivergedError
        Training diverged (NaN or inf loss): lower ``lr``. A subclass of ValueError.
    RuntimeError
        With ``cuda_graphs=True``, if the model's training step cannot be captured as a CUDA graph.
    """
    images, y_np, N, C = check_inputs(images, labels, epochs, record, num_classes)
    check_test(images, test_images, test_labels)
    batch_size, lr, seed = check_settings(batch_size, lr, seed)
    dev = resolve_device(device)
    graphs = check_cuda_graphs(cuda_graphs, dev, isinstance(model, str))
    set_seed(seed)
    model, model_name = build_model(model, images, C, dev)
    use_amp = amp_enabled(amp, dev)
    norm, x_all, y_all, pad, flip, test = device_data(images, y_np, C, dev, augment, test_images, test_labels)
    has_test = test is not None
    if has_test:
        x_test, y_test = test
    opt, sched = sgd(model, epochs, lr, momentum, weight_decay, milestones)
    gen = torch.Generator(device=dev)
    gen.manual_seed(int(seed))
    rec = recorder
    if record is not None and rec is None:
        rec = DynamicsRecorder(N, num_classes=C, store_full=store_full, device=dev, check=False,
                               capacity=epochs, full_path=full_path)
    hist = {k: [] for k in ("epoch", "lr", "train_loss", "train_acc", "test_acc", "seconds")}
    graphed = GraphedStep(model, opt, batch_size, use_amp) if graphs else None

    bar = tqdm(range(epochs), desc=f"train {model_name}", disable=not progress, leave=False)
    for epoch in bar:
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(N, device=dev, generator=gen)
        loss_sum = torch.zeros((), device=dev)
        correct = torch.zeros((), device=dev, dtype=torch.int64)
        for i in range(0, N, batch_size):
            idx = perm[i:i + batch_size]
            if graphed is not None:
                logits, yb, loss = graphed(x_all, y_all, idx, pad, flip, gen)
            else:
                logits, yb, loss = sgd_step(model, opt, x_all, y_all, idx, pad, flip, gen, use_amp)
            with torch.no_grad():
                loss_sum += loss * len(idx)
                correct += (logits.argmax(1) == yb).sum()
                if record == "train":
                    rec.update(logits, yb, idx)
        current_lr = opt.param_groups[0]["lr"]
        sched.step()
        if record == "eval":
            model.eval()
            with torch.no_grad():
                eb = eval_batch_size(dev)
                for i in range(0, N, eb):
                    rec.update(forward(model, x_all[i:i + eb], use_amp), y_all[i:i + eb],
                               torch.arange(i, min(i + eb, N), device=dev))
        if record is not None:
            rec.next_epoch()
        test_acc = float("nan")
        if has_test:
            test_acc = _accuracy(model, x_test, y_test, use_amp)
        log_epoch(hist, bar, epoch, current_lr, float(loss_sum) / N, int(correct) / N, test_acc, t0)
        check_finite(hist["train_loss"][-1], epoch, lr, model if epoch == epochs - 1 else None)
    model.eval()

    dyn = None
    if record is not None:
        info = run_meta(model_name, epochs, record, seed, batch_size, lr, weight_decay, C, meta)
        dyn = rec.result(labels=y_np, is_flipped=is_flipped, meta=info)
    return TrainResult(dyn, model, hist, norm)


def log_epoch(hist: dict, bar, epoch: int, lr: float, train_loss: float, train_acc: float, test_acc: float,
              t0: float) -> None:
    """Append one epoch to a history dict of lists and update the progress bar."""
    for key, value in (("epoch", epoch + 1), ("lr", float(lr)), ("train_loss", train_loss),
                       ("train_acc", train_acc), ("test_acc", test_acc), ("seconds", time.perf_counter() - t0)):
        hist[key].append(value)
    bar.set_postfix(loss=f"{train_loss:.3f}", acc=f"{train_acc:.3f}")


def run_meta(model_name, epochs, record, seed, batch_size, lr, weight_decay, num_classes, meta=None,
             **extra) -> dict:
    """The ``Dynamics.meta`` of a training run: its settings, ``extra`` entries, then the caller's ``meta``.

    NumPy and 0-d torch numbers among the settings are stored as Python numbers (the meta is saved as JSON).
    """
    from . import __version__
    info = jsonable({"model": model_name, "epochs": int(epochs), "record": record, "seed": int(seed),
                     "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay, "num_classes": num_classes,
                     "library_version": __version__, **extra}, "run settings")
    info.update(meta or {})
    return info


@torch.no_grad()
def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, use_amp: bool) -> float:
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=x.device)
    eb = eval_batch_size(x.device)
    for i in range(0, len(x), eb):
        correct += (forward(model, x[i:i + eb], use_amp).argmax(1) == y[i:i + eb]).sum()
    model.train()
    return int(correct) / len(x)
