"""Every way of finding label errors behind one interface: ``run(name, task) -> MethodResult``.

A :class:`Task` holds the images, the given labels, optionally a recorded run (``dynamics``) and
the truth (``is_flipped``, read only by ``oracle``), and the training settings for the methods that
train. Every method returns a :class:`MethodResult`: ``scores`` (N,) float64, higher = more likely
mislabeled; ``remove``, its own decision where it defines one; ``cost``; and ``test_acc`` for the
methods whose own model is what the paper's tables report. Typical use::

    from mislabel import methods
    task = methods.Task(images, noisy, num_classes=10, dynamics=run.dynamics, model="cnn", epochs=10,
                        test_images=test.images, test_labels=test.labels)
    res = methods.run("aum_threshold", task)
    acc = methods.retrain_without(task, res.remove)                 # Sec 4.2
    acc_k = methods.retrain_without(task, methods.remove_top(res.scores, k=int(flips.sum())))

===================  =========================================  ==============================================
name                 what                                       own decision (``remove``)
===================  =========================================  ==============================================
``standard``         train on everything                        nothing
``oracle``           the true flips                             exactly the flipped samples
``dy_bootstrap``     beta mixture + bootstrapping loss          noisy posterior > 0.5
``data_parameters``  learned class / sample temperatures        temperature grew above its start
``incv``             iterative noisy cross-validation           not in the selected clean subset
``aum``              -mean margin of the recorded run           none (a ranking)
``aum_threshold``    AUM with threshold samples (2 runs)        AUM < 99th pct. of threshold samples' AUM
``detector``         LSTM trained on synthesized noise          score >= 0.5
``shipped``          the shipped detector, off the shelf        score >= 0.5
``cleanlab``         confident learning, K-fold probabilities   cleanlab's ``find_label_issues``
``forgetting``       forgetting events                          none (a ranking)
``datamaps``         1 - confidence                             none (a ranking)
``mean_loss``        mean given-label cross-entropy             none (a ranking)
``el2n``             early error L2 norm                        none (a ranking)
``ctrl``             2-means of loss curves per class           the high-loss cluster
===================  =========================================  ==============================================

Modules: :mod:`~mislabel.methods.core` (Task, MethodResult, registry), ``from_dynamics``,
``clustering`` (ctrl), ``threshold_samples`` (aum_threshold), ``robust`` (with ``beta_mixture`` and
``custom_loop``), ``cross_val`` (incv, cleanlab), ``learned`` (detector, shipped), ``retrain`` and
``recorded`` (:func:`score_run`: the methods that need only a recorded run, on a ``Dynamics`` alone,
as ``mislabel detect --method`` calls them).
"""
from __future__ import annotations

from .core import METHODS, NEEDS, MethodCost, MethodInfo, MethodResult, Task, check_needs, register
from .from_dynamics import aum, datamaps, el2n, forgetting, forgetting_events, mean_loss, oracle, standard
from .robust import data_parameters, dy_bootstrap
from .cross_val import cleanlab, estimate_noise_ratio, incv
from .threshold_samples import aum_threshold
from .learned import detector, shipped
from .clustering import ctrl
from .retrain import remove_top, retrain_without, shrunk_batch_size
from .recorded import num_classes_of, run_only_names, score_run

# the table's order: the paper's rows first, then the methods beyond it
_ORDER = ("standard", "oracle", "dy_bootstrap", "data_parameters", "incv", "aum", "aum_threshold", "detector",
          "shipped", "cleanlab", "forgetting", "datamaps", "mean_loss", "el2n", "ctrl")
METHODS.update({name: METHODS.pop(name) for name in _ORDER})

__all__ = [
    "Task", "MethodResult", "MethodCost", "MethodInfo", "METHODS", "NEEDS", "names", "get", "run", "register",
    "check_needs", "retrain_without", "remove_top", "shrunk_batch_size", "forgetting_events",
    "estimate_noise_ratio", "run_only_names", "score_run", "num_classes_of",
    "standard", "oracle", "dy_bootstrap", "data_parameters", "incv", "aum",
    "aum_threshold", "detector", "shipped", "cleanlab", "forgetting", "datamaps", "mean_loss", "el2n", "ctrl",
]


def names() -> list[str]:
    """The registered method names, in the order of the table above."""
    return list(METHODS)


def get(name: str):
    """The method called ``name``: a function ``(task, **options) -> MethodResult``.

    Raises
    ------
    ValueError
        For an unknown name, listing the valid ones.
    """
    if not isinstance(name, str) or name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of: {', '.join(METHODS)}")
    return METHODS[name].func


def run(name: str, task: Task, **options) -> MethodResult:
    """Run method ``name`` on ``task`` with its ``options`` (see each method's docstring).

    Raises
    ------
    ValueError
        For an unknown name, a task lacking what the method needs, or bad options.
    """
    return get(name)(task, **options)
