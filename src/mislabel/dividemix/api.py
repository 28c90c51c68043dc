"""The public entry point :func:`dividemix`."""
from __future__ import annotations

from .config import DivideMixConfig, DivideMixResult
from .loop import CoTraining

__all__ = ["dividemix"]


def dividemix(model, images, labels, epochs: int = 30, *, warmup_epochs: int = 10, batch_size: int = 64,
              lr: float = 0.02, momentum: float = 0.9, weight_decay: float = 5e-4, milestones=(0.5,),
              alpha: float = 4.0, lambda_u: float = 25.0, rampup_epochs: int = 16, p_threshold: float = 0.5,
              temperature: float = 0.5, confidence_penalty: bool = False, average_loss: int = 1,
              augmentation: str = "standard", augment="auto", strong_ops: int = 2, strong_magnitude: float = 1.0,
              record: str | None = None, seed: int = 0, device=None, amp: bool = False,
              num_classes: int | None = None, test_images=None, test_labels=None, is_flipped=None,
              progress: bool = True) -> DivideMixResult:
    """Train with DivideMix (Li, Socher and Hoi 2020), or with DM-AugDesc's AugDesc-WS (Nishi et al. 2021).

    Two networks of the same architecture (different initialisations) are trained together:

    1. **Warm-up** (``warmup_epochs``): each network trains on all samples with cross-entropy on
       weakly augmented inputs (the batched crop and flip of :func:`mislabel.train.fit`), plus the
       confidence penalty (negative entropy) with ``confidence_penalty=True``, the reference's
       setting for asymmetric noise.
    2. **Co-divide**, after each epoch from the last warm-up epoch on: each network's per-sample
       cross-entropy on the un-augmented training set (eval mode) is scaled to [0, 1]
       (averaged over the last ``average_loss`` epochs), and a two-component Gaussian mixture
       (our own EM in NumPy, deterministic start: :mod:`~mislabel.dividemix.gmm`) gives each
       sample's clean probability ``w``, the posterior of the low-loss component. Each network
       then trains on the division made by the *other*: samples with ``w > p_threshold`` are
       labeled, the rest unlabeled.
    3. **Semi-supervised epoch** (MixMatch), one pass over the labeled set in batches of
       ``batch_size``, each with as many unlabeled samples (drawn cyclically):

       * *label co-refinement*: ``sharpen(w y + (1 - w) p, T)``, ``p`` the training network's
         softmax averaged over two augmented views, ``y`` the given label one-hot;
       * *label co-guessing*: the mean softmax of both networks over two views of each
         unlabeled sample, sharpened with ``T``;
       * *MixMatch*: ``l ~ Beta(alpha, alpha)``, ``l = max(l, 1 - l)``; all views and their
         targets are mixed with a random permutation of themselves;
       * loss: cross-entropy on the mixed labeled rows, plus ``lambda_u`` times a linear ramp over
         ``rampup_epochs`` epochs after the warm-up times the squared error on the mixed
         unlabeled rows, plus the uniform-prior penalty ``KL(uniform || mean prediction)``.

    ``augmentation="augdesc-ws"`` (DM-AugDesc's AugDesc-WS): the views that guess and refine the
    targets stay weakly augmented, while the views that the network learns from (the MixMatch
    inputs) are strongly augmented with :func:`~mislabel.dividemix.strong_augment` (``strong_ops``
    operations of random magnitude up to ``strong_magnitude``, then crop and flip). The warm-up
    stays weak and the mixture's losses un-augmented, as in both reference implementations.

    Test accuracy is taken after every epoch for each network and for the ensemble (summed
    logits, as DivideMix reports): ``result.best()`` and ``result.last()`` are the paper's Table 3
    columns "Best" and "Last".

    Parameters
    ----------
    model : str
        A name for :func:`mislabel.models.build` ("cnn", "mlp", "resnet20", "resnet32", "resnet56").
    images : Tensor of shape (N, C, H, W), uint8 (or float)
        Float images are min-max scaled to [0, 1] for the strong policy.
    labels : array-like of shape (N,), int
        The given (noisy) labels.
    epochs : int
        All epochs, warm-up included (reference: 300, or 350 at high noise).
    warmup_epochs : int
        In ``[1, epochs]`` (reference: 10 on CIFAR-10, 30 on CIFAR-100).
    batch_size : int
        Labeled samples per step (as many unlabeled ones join them).
    lr, momentum, weight_decay : float
        SGD of each network; the learning rate is divided by 10 at each fraction of ``epochs`` in
        ``milestones`` (reference: 0.02, divided by 10 half-way).
    alpha : float
        Beta distribution of MixMatch's mixing weight.
    lambda_u : float
        Weight of the unlabeled loss after the ramp-up (reference: 0 at 20% symmetric noise,
        25 at 50%, 50 at 80%, 150 at 90%).
    rampup_epochs : int
        Length of the linear ramp-up of ``lambda_u``.
    p_threshold : float
        Clean probability above which a sample is labeled.
    temperature : float
        Sharpening temperature ``T``.
    confidence_penalty : bool
        Add the negative entropy of the predictions to the warm-up loss (asymmetric noise).
    average_loss : int
        Epochs of normalised losses averaged before the mixture (reference: 5 at 90% noise, else 1).
    augmentation : {"standard", "augdesc-ws"}
    augment : "auto", None or (pad, flip)
        The weak augmentation, as in :func:`mislabel.train.fit`.
    strong_ops : int
        Operations per image of the strong policy (``augdesc-ws`` only).
    strong_magnitude : float
        Largest magnitude of the strong policy, in (0, 1].
    record : {"train", "eval", None}
        Record net 1's given-label probabilities per epoch: ``"train"`` from its training passes
        (the warm-up's logits, then its no-grad guessing pass on the first weak view of each
        labeled and unlabeled sample; an unlabeled sample the epoch did not draw is interpolated),
        ``"eval"`` from the un-augmented eval pass that the division runs anyway.
    seed : int
        Seeds both initialisations, every permutation, augmentation and mixing weight; on CPU
        two runs with the same seed give identical results.
    device : str, optional
        Default: CUDA when available.
    amp : bool
        bfloat16 autocast, as in :func:`mislabel.train.fit`.
    num_classes : int, optional
        Default: ``max(labels) + 1`` (at least 2).
    test_images, test_labels : optional
        Held-out data, shapes (M, C, H, W) and (M,).
    is_flipped : array-like of shape (N,), bool, optional
        Ground-truth flips, attached to the recorded dynamics.
    progress : bool
        tqdm progress bar over epochs.

    Returns
    -------
    DivideMixResult
        ``clean_prob`` (N, 2), ``scores`` (N,), per-epoch ``history`` (test accuracies, seconds),
        ``nets``, ``dynamics`` (with ``record``).

    Raises
    ------
    ValueError
        Bad inputs or settings (the message names the argument).
    TrainingDivergedError
        A NaN or inf loss: lower ``lr``.

    Notes
    -----
    Differences from the reference implementation, none changing the method: the mixture is our
    own EM with a deterministic start instead of scikit-learn's k-means start; the training
    network's no-grad passes over the labeled and unlabeled views run as one batch (its BatchNorm
    statistics in that pass come from the joint batch); the unlabeled batch always matches the
    labeled batch's size; and when no sample passes ``p_threshold`` the ``batch_size`` most
    probably clean samples form the labeled set instead of an empty one.
    """
    config = DivideMixConfig(
        epochs=epochs, warmup_epochs=warmup_epochs, batch_size=batch_size, lr=lr, momentum=momentum,
        weight_decay=weight_decay, milestones=tuple(milestones) if hasattr(milestones, "__iter__") else milestones,
        alpha=alpha, lambda_u=lambda_u, rampup_epochs=rampup_epochs, p_threshold=p_threshold,
        temperature=temperature, confidence_penalty=confidence_penalty, average_loss=average_loss,
        augmentation=augmentation, augment=augment, strong_ops=strong_ops, strong_magnitude=strong_magnitude,
        record=record, seed=seed, amp=amp)
    run = CoTraining(model, images, labels, config, num_classes=num_classes, test_images=test_images,
                     test_labels=test_labels, is_flipped=is_flipped, device=device, progress=progress)
    return run.run()
