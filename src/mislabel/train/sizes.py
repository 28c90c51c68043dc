"""Sizes checked before anything large is allocated: the recorder of a training run."""
from __future__ import annotations

import os

import torch

__all__ = ["check_recording_size"]


def check_recording_size(N: int, C: int, epochs: int, full: bool, device: torch.device) -> None:
    """Refuse, before anything is allocated, a recorder larger than the memory of ``device``.

    The recorder keeps three float32 values per sample and epoch (probability, margin, runner-up
    class), and with ``full`` the (N, C) float16 probabilities of every epoch.

    Raises
    ------
    ValueError
        Naming ``epochs``, the size needed and the memory there is.
    """
    need = N * epochs * (12 + (2 * C if full else 0))
    if device.type == "cuda":
        have = torch.cuda.get_device_properties(device).total_memory
    else:
        try:
            have = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return
    if need > have:
        raise ValueError(f"epochs={epochs} is too many to record: {N} samples x {epochs} epochs need "
                         f"{need / 2**30:,.1f} GiB, more than the {have / 2**30:,.1f} GiB of memory of this "
                         f"{device.type.upper()}; train for fewer epochs (or on a subset)")
