"""A batched, seeded strong augmentation in the spirit of RandAugment, for DM-AugDesc's learning views.

:func:`strong_augment` applies ``num_ops`` rounds to a batch (B, C, H, W); in each round every
image draws one operation from :data:`STRONG_OPS` and its own magnitude, uniform in
``[0, magnitude]`` (and a sign for the symmetric ones). Everything is tensor arithmetic on the
batch's device, with no torchvision. On an accelerator each round computes every operation on the
whole batch and keeps, per image, the one it drew (``torch.where``), with no host
synchronisation; on a CPU each operation runs only on the images that drew it, which gives the
same pixels for less work. The random draws do not depend on the operations chosen, so the
result depends only on the generator's seed.

At magnitude 1 the operations span roughly AutoAugment's ranges:

==============  ======================================================================
operation       effect at magnitude m
==============  ======================================================================
identity        nothing
brightness      pixels times 1 +- 0.9 m
contrast        blend with the image's mean grey by 1 +- 0.9 m
solarize        pixels above 1 - m inverted (v -> 1 - v)
posterize       keep 8 - round(4 m) bits of each 8-bit value
equalize        per-channel histogram equalisation (256 levels)
autocontrast    per-channel stretch of [min, max] to [0, 1]
rotate          +- 30 m degrees about the centre (bilinear, black fill)
shear_x         horizontal shear +- 0.3 m
translate_x/_y  shift by +- 0.3 m of the width / height (black fill)
cutout          a grey (0.5) square of side 0.5 m * min(H, W) at a random centre
==============  ======================================================================
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .._validation import check_positive_int

__all__ = ["STRONG_OPS", "strong_augment"]

#: The operations :func:`strong_augment` draws from, in the order their indices refer to.
STRONG_OPS = ("identity", "brightness", "contrast", "solarize", "posterize", "equalize", "autocontrast",
              "rotate", "shear_x", "translate_x", "translate_y", "cutout")

_AFFINE = ("rotate", "shear_x", "translate_x", "translate_y")


def strong_augment(x: torch.Tensor, *, num_ops: int = 2, magnitude: float = 1.0, ops=STRONG_OPS,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply ``num_ops`` randomly drawn operations of random magnitude to each image of a batch.

    Parameters
    ----------
    x : Tensor of shape (B, C, H, W), uint8 (0-255) or float (values in [0, 1])
        On any device.
    num_ops : int
        Rounds; each image draws one operation per round (``identity`` included).
    magnitude : float
        Largest magnitude, in (0, 1]; each draw is uniform in ``[0, magnitude]``.
    ops : sequence of str
        A non-empty subset of :data:`STRONG_OPS`, drawn uniformly.
    generator : torch.Generator, optional
        On ``x``'s device; seeds every draw (default: torch's global generator).

    Returns
    -------
    Tensor of shape (B, C, H, W)
        Same dtype and device as ``x``: uint8 rounded, float clamped to [0, 1].

    Raises
    ------
    ValueError
        If ``x`` is not a 4-D uint8 or float tensor, or ``num_ops``, ``magnitude`` or ``ops`` is invalid.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not (x.dtype == torch.uint8 or x.is_floating_point()):
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a uint8 or float tensor of shape (B, C, H, W), got {shape}")
    check_positive_int(num_ops, "num_ops")
    if isinstance(magnitude, bool) or not isinstance(magnitude, (int, float)) or not 0 < magnitude <= 1:
        raise ValueError(f"magnitude must be a number in (0, 1], got {magnitude!r}")
    ops = tuple(ops) if not isinstance(ops, str) else (ops,)
    unknown = [o for o in ops if o not in STRONG_OPS]
    if not ops or unknown:
        raise ValueError(f"ops must be a non-empty subset of {', '.join(STRONG_OPS)}; got {list(ops)!r}")
    if x.shape[0] == 0:
        return x.clone()
    out = x.float().div(255.0) if x.dtype == torch.uint8 else x.float().clamp(0.0, 1.0)
    B, dev = out.shape[0], out.device
    for _ in range(int(num_ops)):
        # the same draws every round whatever the operations, so the stream depends on the seed only
        choice = torch.randint(0, len(ops), (B,), device=dev, generator=generator)
        mag = torch.rand(B, device=dev, generator=generator) * float(magnitude)
        sign = torch.where(torch.rand(B, device=dev, generator=generator) < 0.5, -1.0, 1.0)
        centre = torch.rand(B, 2, device=dev, generator=generator)
        out = _round(out, ops, choice, mag, sign * mag, centre)
    if x.dtype == torch.uint8:
        return out.mul(255.0).round_().clamp_(0, 255).to(torch.uint8)
    return out.clamp_(0.0, 1.0).to(x.dtype)


def _round(x: torch.Tensor, ops: tuple, choice: torch.Tensor, mag: torch.Tensor, signed: torch.Tensor,
           centre: torch.Tensor, by_op: bool | None = None) -> torch.Tensor:
    """One round: each image gets the operation ``ops[choice]``; the others keep their pixels.

    ``by_op`` (default: on a CPU) computes each operation on its own rows only (:func:`_round_by_op`).
    """
    def picked(name):
        return (choice == ops.index(name)) if name in ops else None

    def keep(mask, new, old):
        return torch.where(mask.view(-1, 1, 1, 1), new, old)

    if x.device.type == "cpu" if by_op is None else by_op:
        return _round_by_op(x, ops, choice, mag, signed, centre)
    B, C, H, W = x.shape
    out = x
    factor = (1.0 + 0.9 * signed).view(-1, 1, 1, 1)
    if (m := picked("brightness")) is not None:
        out = keep(m, (x * factor).clamp(0.0, 1.0), out)
    if (m := picked("contrast")) is not None:
        grey = x.mean(dim=(1, 2, 3), keepdim=True)
        out = keep(m, (grey + (x - grey) * factor).clamp(0.0, 1.0), out)
    if (m := picked("solarize")) is not None:
        out = keep(m, torch.where(x > (1.0 - mag).view(-1, 1, 1, 1), 1.0 - x, x), out)
    if (m := picked("posterize")) is not None:
        step = torch.exp2(torch.round(4.0 * mag)).view(-1, 1, 1, 1)    # 2 ** (8 - bits)
        out = keep(m, torch.floor(torch.round(x * 255.0) / step) * step / 255.0, out)
    if (m := picked("equalize")) is not None:
        out = keep(m, _equalize(x), out)
    if (m := picked("autocontrast")) is not None:
        lo, hi = x.amin(dim=(2, 3), keepdim=True), x.amax(dim=(2, 3), keepdim=True)
        out = keep(m, torch.where(hi > lo, (x - lo) / (hi - lo).clamp_min(1e-12), x), out)
    affine = [picked(name) for name in _AFFINE]
    if any(m is not None for m in affine):
        zero = torch.zeros_like(mag)
        rot, shear, tx, ty = (torch.where(m, signed, zero) if m is not None else zero for m in affine)
        angle = rot * math.radians(30.0)
        cos, sin = torch.cos(angle), torch.sin(angle)
        # affine_grid maps output to input coordinates in [-1, 1]: a shift of 0.3 of the side is 0.6
        theta = torch.stack([torch.stack([cos, -sin + 0.3 * shear, 0.6 * tx], 1),
                             torch.stack([sin, cos, 0.6 * ty], 1)], 1)
        grid = F.affine_grid(theta, [B, C, H, W], align_corners=False)
        moved = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        any_affine = torch.zeros_like(choice, dtype=torch.bool)
        for m in affine:
            if m is not None:
                any_affine = any_affine | m
        out = keep(any_affine, moved, out)
    if (m := picked("cutout")) is not None:
        side = torch.round(0.5 * mag * min(H, W)).long().view(-1, 1)
        cy = (centre[:, :1] * H).long()
        cx = (centre[:, 1:] * W).long()
        rows = torch.arange(H, device=x.device).view(1, -1) - (cy - side // 2)
        cols = torch.arange(W, device=x.device).view(1, -1) - (cx - side // 2)
        box = ((rows >= 0) & (rows < side))[:, None, :, None] & ((cols >= 0) & (cols < side))[:, None, None, :]
        out = keep(m, torch.where(box, torch.full_like(x, 0.5), x), out)
    return out


def _round_by_op(x: torch.Tensor, ops: tuple, choice: torch.Tensor, mag: torch.Tensor, signed: torch.Tensor,
                 centre: torch.Tensor) -> torch.Tensor:
    """:func:`_round` computing each operation only on the images that drew it (same result).

    Every operation acts on each image alone, so running :func:`_round` on the rows that drew
    operation ``k`` with ``choice`` set to ``k`` gives those rows exactly what the whole-batch
    round gives them. On a CPU this saves computing every operation on every image; on an
    accelerator the whole-batch form avoids the host synchronisation that selecting rows needs.
    """
    out = x.clone()
    for k, name in enumerate(ops):
        if name == "identity":
            continue
        rows = torch.nonzero(choice == k).flatten()
        if len(rows):
            out[rows] = _round(x[rows], (name,), choice.new_zeros(len(rows)), mag[rows], signed[rows], centre[rows],
                               by_op=False)
    return out


def _equalize(x: torch.Tensor) -> torch.Tensor:
    """Histogram equalisation of each channel of each image over 256 levels; values in [0, 1].

    A level's new value is the share of the channel's pixels below or at it, beyond those at the
    darkest level present; a constant channel is left as it is.
    """
    B, C, H, W = x.shape
    q = torch.round(x * 255.0).long().clamp_(0, 255).view(B * C, H * W)
    hist = torch.zeros(B * C, 256, device=x.device, dtype=torch.float32)
    hist.scatter_add_(1, q, torch.ones_like(q, dtype=torch.float32))   # counts: exact in float32
    cdf = hist.cumsum(1)
    first = cdf.gather(1, q.amin(1, keepdim=True))                     # pixels at the darkest level
    span = float(H * W) - first
    lut = ((cdf - first) / span.clamp_min(1.0)).clamp_(0.0, 1.0)
    out = lut.gather(1, q).view(B, C, H, W).to(x.dtype)
    return torch.where((span > 0).view(B, C, 1, 1), out, x)
