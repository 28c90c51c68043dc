"""Input scaling, batched augmentation and batch gathering of device-resident data."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .._validation import as_int_labels

__all__ = ["channel_stats", "to_float", "random_crop_flip", "default_augment", "batch", "device_data"]


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of images (N, C, H, W), on the [0, 1] scale for uint8.

    Returns
    -------
    mean, std : list of float, length C
        ``std`` is at least 1e-6.
    """
    x = images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-6)
    return mean.tolist(), std.tolist()


def to_float(images: torch.Tensor, mean, std, device=None) -> torch.Tensor:
    """Scale images (N, C, H, W), uint8 or float, to normalised float32 on ``device``.

    Parameters
    ----------
    images : Tensor of shape (N, C, H, W)
        uint8 values are divided by 255 first.
    mean, std : sequence of float, length C
    device : str or torch.device, optional
        Default: where ``images`` are.

    Returns
    -------
    Tensor of shape (N, C, H, W), float32
    """
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
        ``x`` itself when ``pad <= 0`` and not ``flip``.
    """
    B, C, H, W = x.shape
    dev = x.device
    if pad <= 0 and not flip:
        return x
    # One gather per batch: each output pixel's flat position in its padded image. A flip is
    # folded in by reversing the column order, so no second pass over the pixels is needed.
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


def batch(x_all: torch.Tensor, y_all: torch.Tensor, idx: torch.Tensor, pad: int, flip: bool,
          generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows ``idx`` of the device-resident data, augmented, channels-last.

    Parameters
    ----------
    x_all : Tensor of shape (N, C, H, W), float32
    y_all : Tensor of shape (N,), int64
    idx : Tensor of shape (B,), int64
    pad, flip, generator
        As in :func:`random_crop_flip`.

    Returns
    -------
    x : Tensor of shape (B, C, H, W), float32, channels-last
    y : Tensor of shape (B,), int64
    """
    xb = x_all.index_select(0, idx)   # much faster than x_all[idx] on CPU
    if pad or flip:
        xb = random_crop_flip(xb, pad, flip, generator)
    return xb.contiguous(memory_format=torch.channels_last), y_all.index_select(0, idx)


def device_data(images: torch.Tensor, y_np: np.ndarray, num_classes: int, device: torch.device, augment,
                test_images=None, test_labels=None):
    """Normalised, device-resident training (and test) data.

    Parameters
    ----------
    images : Tensor of shape (N, C, H, W), uint8 or float
    y_np : ndarray of shape (N,), int64
    num_classes : int
    device : torch.device
    augment : "auto", None or (pad, flip)
    test_images : array-like of shape (M, C, H, W), optional
    test_labels : array-like of shape (M,), optional
        Read only with ``test_images``.

    Returns
    -------
    norm : (mean, std)
        :func:`channel_stats` of ``images``.
    x_all : Tensor of shape (N, C, H, W), float32, channels-last
    y_all : Tensor of shape (N,), int64
    pad, flip : int, bool
        The batched augmentation (``augment="auto"``: :func:`default_augment`).
    test : (x_test, y_test) or None
        Scaled with ``norm``; None without ``test_images``.

    Raises
    ------
    ValueError
        If ``test_labels`` are not integer class ids below ``num_classes``.
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
