"""DivideMix's co-training loop: two networks, a warm-up, then per epoch co-divide and MixMatch.

Built from :mod:`mislabel.train`'s pieces (model building, device-resident normalised data, the
batched crop/flip, SGD with a step schedule, seeding); the batch arithmetic is in
:mod:`~mislabel.dividemix.targets`, the division in :mod:`~mislabel.dividemix.gmm` and the strong
augmentation of DM-AugDesc in :mod:`~mislabel.dividemix.policy`.
"""
from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .._utils import amp_enabled, resolve_device, set_seed
from ..dynamics import DynamicsRecorder
from ..train import (build_model, check_finite, check_inputs, check_test, device_data, eval_batch_size, forward,
                     random_crop_flip, run_meta, sgd)
from .config import DivideMixConfig, DivideMixResult
from .gmm import clean_probability, normalise_losses
from .policy import strong_augment
from .targets import (co_guess, co_refine, confidence_penalty, mix_lambda, mixmatch, rampup_weight, semi_loss,
                      uniform_prior_penalty)

__all__ = ["CoTraining", "HISTORY_KEYS"]

HISTORY_KEYS = ("epoch", "phase", "lr", "loss1", "loss2", "labeled1", "labeled2", "test_acc1", "test_acc2",
                "test_acc", "seconds")

_CL = torch.channels_last


class _Cycle:
    """Endless reshuffled passes over a set of sample indices (DivideMix's unlabeled loader)."""

    def __init__(self, idx: torch.Tensor, gen: torch.Generator) -> None:
        self.idx, self.gen, self.perm, self.pos = idx, gen, idx[:0], 0

    def take(self, n: int) -> torch.Tensor:
        """The next ``n`` indices (int64, on the set's device); empty when the set is empty."""
        if len(self.idx) == 0:
            return self.idx
        parts = []
        while n > 0:
            if self.pos >= len(self.perm):
                self.perm = self.idx[torch.randperm(len(self.idx), device=self.idx.device, generator=self.gen)]
                self.pos = 0
            part = self.perm[self.pos:self.pos + n]
            parts.append(part)
            self.pos += len(part)
            n -= len(part)
        return torch.cat(parts)


class CoTraining:
    """One DivideMix run in this process: checked inputs, two networks, their optimisers and the data.

    :meth:`run` trains all epochs and returns the :class:`DivideMixResult`; see
    :func:`~mislabel.dividemix.dividemix` for the algorithm and the parameters.

    Raises
    ------
    ValueError
        Bad inputs or settings (the message names the argument).
    """

    def __init__(self, model, images, labels, config: DivideMixConfig, *, num_classes=None, test_images=None,
                 test_labels=None, is_flipped=None, device=None, progress: bool = True) -> None:
        self.cfg = cfg = config
        if not isinstance(model, str):
            raise ValueError(f"model must be a name for mislabel.models.build ('cnn', 'mlp', 'resnet32', ...): "
                             f"DivideMix builds two fresh networks; got {type(model).__name__}")
        images, self.y_np, self.N, self.C = check_inputs(images, labels, cfg.epochs, cfg.record, num_classes)
        check_test(images, test_images, test_labels)
        self.dev = dev = resolve_device(device)
        self.progress, self.is_flipped, self.model_name = progress, is_flipped, model
        set_seed(cfg.seed)
        self.nets = [build_model(model, images, self.C, dev)[0] for _ in range(2)]
        self.use_amp = amp_enabled(cfg.amp, dev)
        self.norm, self.x_all, self.y_all, self.pad, self.flip, self.test = device_data(
            images, self.y_np, self.C, dev, cfg.augment, test_images, test_labels)
        self.x01 = None
        if cfg.strong:   # pixels in [0, 1] for the strong policy; normalised afterwards like x_all
            x = images.to(dev)
            x = x.float().div(255.0) if x.dtype == torch.uint8 else x.float()
            if images.dtype != torch.uint8:
                x = (x - x.min()) / (x.max() - x.min()).clamp_min(1e-12)
            self.x01 = x
            self.mean = x.mean(dim=(0, 2, 3)).view(1, -1, 1, 1)
            self.std = x.std(dim=(0, 2, 3)).clamp_min(1e-6).view(1, -1, 1, 1)
        sched = [sgd(net, cfg.epochs, cfg.lr, cfg.momentum, cfg.weight_decay, cfg.milestones) for net in self.nets]
        self.opts, self.scheds = [s[0] for s in sched], [s[1] for s in sched]
        self.gen = torch.Generator(device=dev)
        self.gen.manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        self.rec = None
        if cfg.record is not None:
            self.rec = DynamicsRecorder(self.N, num_classes=self.C, device=dev, check=False, capacity=cfg.epochs)
        self.loss_history = ([], [])

    # ------------------------------------------------------------------ views
    def weak(self, idx: torch.Tensor) -> torch.Tensor:
        """Rows ``idx`` (B,) normalised, with the batched random crop and flip: (B, C, H, W) float32."""
        xb = self.x_all.index_select(0, idx)
        return random_crop_flip(xb, self.pad, self.flip, self.gen) if self.pad or self.flip else xb

    def strong(self, idx: torch.Tensor) -> torch.Tensor:
        """Rows ``idx`` through the strong policy, normalised, then cropped and flipped: (B, C, H, W) float32."""
        cfg = self.cfg
        xb = strong_augment(self.x01.index_select(0, idx), num_ops=cfg.strong_ops, magnitude=cfg.strong_magnitude,
                            generator=self.gen)
        xb = (xb - self.mean) / self.std
        return random_crop_flip(xb, self.pad, self.flip, self.gen) if self.pad or self.flip else xb

    # ------------------------------------------------------------------ epochs
    def warmup_epoch(self, k: int) -> torch.Tensor:
        """One epoch of cross-entropy (plus the confidence penalty if set) for net ``k`` on all samples.

        Returns the epoch's mean loss as a 0-d tensor (no host synchronisation).
        """
        net, opt, cfg = self.nets[k], self.opts[k], self.cfg
        net.train()
        total = torch.zeros((), device=self.dev)
        perm = torch.randperm(self.N, device=self.dev, generator=self.gen)
        for i in range(0, self.N, cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            yb = self.y_all.index_select(0, idx)
            logits = forward(net, self.weak(idx).contiguous(memory_format=_CL), self.use_amp)
            loss = F.cross_entropy(logits, yb)
            if cfg.confidence_penalty:
                loss = loss + confidence_penalty(logits)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach() * len(idx)
            if cfg.record == "train" and k == 0:
                self.rec.update(logits.detach(), yb, idx)
        return total / self.N

    def split(self, prob: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Labeled (clean probability > p_threshold) and unlabeled sample indices, int64 on the device.

        When no sample passes the threshold, the ``batch_size`` most probably clean ones are labeled.
        """
        clean = prob > self.cfg.p_threshold
        if not clean.any():
            clean = np.zeros(self.N, dtype=bool)
            clean[np.argsort(-prob, kind="stable")[:self.cfg.batch_size]] = True
        return (torch.as_tensor(np.flatnonzero(clean), device=self.dev),
                torch.as_tensor(np.flatnonzero(~clean), device=self.dev))

    def train_epoch(self, k: int, epoch: int, prob: np.ndarray) -> tuple[torch.Tensor, int]:
        """One semi-supervised epoch of net ``k`` on the division ``prob`` (N,) made by the other net.

        Returns the epoch's mean loss (0-d tensor) and the size of the labeled set.
        """
        cfg, dev, C = self.cfg, self.dev, self.C
        net, other, opt = self.nets[k], self.nets[1 - k], self.opts[k]
        labeled, unlabeled = self.split(prob)
        w_all = torch.as_tensor(prob, dtype=torch.float32, device=dev)
        perm = labeled[torch.randperm(len(labeled), device=dev, generator=self.gen)]
        stream = _Cycle(unlabeled, self.gen)
        B = cfg.batch_size
        n_iter = -(-len(labeled) // B)
        net.train()
        other.eval()   # the other network only guesses
        total = torch.zeros((), device=dev)
        for it in range(n_iter):
            ix = perm[it * B:(it + 1) * B]
            iu = stream.take(len(ix))
            b, bu = len(ix), len(iu)
            yx = self.y_all.index_select(0, ix)
            guess = [self.weak(ix), self.weak(ix), self.weak(iu), self.weak(iu)]
            learn = [self.strong(i) for i in (ix, ix, iu, iu)] if cfg.strong else guess
            with torch.no_grad():
                own_logits = forward(net, torch.cat(guess).contiguous(memory_format=_CL), self.use_amp)
                own = torch.softmax(own_logits, 1)
                targets_x = co_refine(F.one_hot(yx, C).float(), (own[:b] + own[b:2 * b]) / 2,
                                      w_all.index_select(0, ix), cfg.temperature)
                parts = [targets_x, targets_x]
                if bu:
                    oth = torch.softmax(forward(other, torch.cat(guess[2:]).contiguous(memory_format=_CL),
                                                self.use_amp), 1)
                    targets_u = co_guess([own[2 * b:2 * b + bu], own[2 * b + bu:], oth[:bu], oth[bu:]],
                                         cfg.temperature)
                    parts += [targets_u, targets_u]
                if cfg.record == "train" and k == 0:
                    self.rec.update(own_logits[:b], yx, ix)
                    if bu:
                        self.rec.update(own_logits[2 * b:2 * b + bu], self.y_all.index_select(0, iu), iu)
            inputs, targets = torch.cat(learn), torch.cat(parts)
            lam = mix_lambda(cfg.alpha, self.rng)
            mixed_x, mixed_t = mixmatch(inputs, targets, lam,
                                        torch.randperm(len(inputs), device=dev, generator=self.gen))
            logits = forward(net, mixed_x.contiguous(memory_format=_CL), self.use_amp)
            loss_x, loss_u = semi_loss(logits[:2 * b], mixed_t[:2 * b], logits[2 * b:], mixed_t[2 * b:])
            weight = rampup_weight(epoch + it / n_iter, cfg.warmup_epochs, cfg.lambda_u, cfg.rampup_epochs)
            loss = loss_x + weight * loss_u + uniform_prior_penalty(logits)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach() * b
        other.train()
        return total / len(labeled), len(labeled)

    # ------------------------------------------------------------------ no-grad passes
    @torch.no_grad()
    def eval_logits(self, k: int) -> torch.Tensor:
        """Net ``k``'s logits of the un-augmented training set in eval mode: (N, C) float32."""
        net = self.nets[k]
        net.eval()
        eb = eval_batch_size(self.dev)
        out = torch.cat([forward(net, self.x_all[i:i + eb], self.use_amp) for i in range(0, self.N, eb)])
        net.train()
        return out

    def divide(self, k: int, logits: torch.Tensor) -> np.ndarray:
        """Net ``k``'s clean probabilities (N,) float64: its per-sample cross-entropy, min-max normalised,
        averaged over the last ``average_loss`` epochs, through the two-component mixture."""
        loss = F.cross_entropy(logits, self.y_all, reduction="none").double().cpu().numpy()
        hist = self.loss_history[k]
        hist.append(normalise_losses(loss))
        del hist[:-self.cfg.average_loss]
        return clean_probability(np.mean(hist, axis=0))

    @torch.no_grad()
    def test_accuracy(self) -> tuple[float, float, float]:
        """Test accuracy of net 1, net 2 and their ensemble (summed logits); NaN without test data."""
        if self.test is None:
            return (float("nan"),) * 3
        x, y = self.test
        for net in self.nets:
            net.eval()
        correct = torch.zeros(3, dtype=torch.int64, device=self.dev)
        eb = eval_batch_size(self.dev)
        for i in range(0, len(x), eb):
            z1, z2 = (forward(net, x[i:i + eb], self.use_amp) for net in self.nets)
            for j, z in enumerate((z1, z2, z1 + z2)):
                correct[j] += (z.argmax(1) == y[i:i + eb]).sum()
        for net in self.nets:
            net.train()
        return tuple(c / len(x) for c in correct.tolist())

    # ------------------------------------------------------------------ the loop
    def run(self) -> DivideMixResult:
        """Train all epochs; return the result with both nets in eval mode.

        Raises
        ------
        TrainingDivergedError
            If an epoch's mean loss, or the final weights, are NaN or inf.
        """
        cfg = self.cfg
        hist = {key: [] for key in HISTORY_KEYS}
        prob = None
        bar = tqdm(range(cfg.epochs), desc=f"dividemix {self.model_name}", disable=not self.progress, leave=False)
        for epoch in bar:
            t0 = time.perf_counter()
            lr = self.opts[0].param_groups[0]["lr"]
            if epoch < cfg.warmup_epochs:
                phase, losses, sizes = "warmup", [self.warmup_epoch(0), self.warmup_epoch(1)], [self.N, self.N]
            else:   # co-divide: each net learns from the division made by the other
                (l1, n1), (l2, n2) = self.train_epoch(0, epoch, prob[:, 1]), self.train_epoch(1, epoch, prob[:, 0])
                phase, losses, sizes = "train", [l1, l2], [n1, n2]
            for sched in self.scheds:
                sched.step()
            divide = epoch + 1 >= cfg.warmup_epochs   # the next epoch needs it, or it is the final division
            logits1 = self.eval_logits(0) if divide or cfg.record == "eval" else None
            if cfg.record == "eval":
                self.rec.update(logits1, self.y_all, torch.arange(self.N, device=self.dev))
            if cfg.record is not None:
                self.rec.next_epoch()
            if divide:
                prob = np.stack([self.divide(0, logits1), self.divide(1, self.eval_logits(1))], 1)
            acc = self.test_accuracy()
            loss1, loss2 = torch.stack(losses).tolist()
            for key, value in zip(HISTORY_KEYS, (epoch + 1, phase, float(lr), loss1, loss2, sizes[0], sizes[1],
                                                 *acc, time.perf_counter() - t0)):
                hist[key].append(value)
            bar.set_postfix(loss=f"{loss1:.3f}", acc=f"{acc[2]:.3f}")
            for net in self.nets:
                check_finite(loss1 + loss2, epoch, cfg.lr, net if epoch == cfg.epochs - 1 else None)
        for net in self.nets:
            net.eval()
        return DivideMixResult(tuple(self.nets), prob, hist, self.norm, self._dynamics(), cfg)

    def _dynamics(self):
        if self.rec is None:
            return None
        cfg = self.cfg
        info = run_meta(self.model_name, cfg.epochs, cfg.record, cfg.seed, cfg.batch_size, cfg.lr,
                        cfg.weight_decay, self.C, None, method="dividemix", augmentation=cfg.augmentation,
                        warmup_epochs=cfg.warmup_epochs)
        return self.rec.result(labels=self.y_np, is_flipped=self.is_flipped, meta=info)
