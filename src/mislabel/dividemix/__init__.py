"""DivideMix (Li, Socher and Hoi 2020) and DM-AugDesc (Nishi et al. 2021): the algorithm-centric
baselines of the paper's Table 3, which data debugging (:mod:`mislabel.debug`) improves on.

    from mislabel.dividemix import dividemix
    res = dividemix("cnn", ds.images, noisy, epochs=30, warmup_epochs=10,
                    test_images=test.images, test_labels=test.labels)
    res.best(), res.last()                  # ensemble test accuracy: Table 3's "Best" and "Last"
    res = dividemix(..., augmentation="augdesc-ws")   # DM-AugDesc (AugDesc-WS)

Modules: :mod:`~mislabel.dividemix.gmm` (the two-component mixture on losses),
:mod:`~mislabel.dividemix.targets` (sharpening, co-refinement, co-guessing, MixMatch, losses),
:mod:`~mislabel.dividemix.policy` (the batched strong augmentation), :mod:`~mislabel.dividemix.config`
(settings and result), :mod:`~mislabel.dividemix.loop` (the co-training) and
:mod:`~mislabel.dividemix.api` (:func:`dividemix`).
"""
from .api import dividemix
from .config import AUGMENTATIONS, DivideMixConfig, DivideMixResult
from .gmm import TwoGaussians, clean_probability, fit_two_gaussians, normalise_losses
from .loop import HISTORY_KEYS, CoTraining
from .policy import STRONG_OPS, strong_augment
from .targets import (co_guess, co_refine, confidence_penalty, mix_lambda, mixmatch, rampup_weight, semi_loss,
                      sharpen, uniform_prior_penalty)

__all__ = [
    "dividemix", "DivideMixConfig", "DivideMixResult", "AUGMENTATIONS", "CoTraining", "HISTORY_KEYS",
    "TwoGaussians", "fit_two_gaussians", "normalise_losses", "clean_probability", "STRONG_OPS", "strong_augment",
    "sharpen", "co_refine", "co_guess", "mix_lambda", "mixmatch", "semi_loss", "rampup_weight",
    "uniform_prior_penalty", "confidence_penalty",
]
