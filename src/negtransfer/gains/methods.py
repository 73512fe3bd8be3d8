"""The gain predictors a grouping job can use, by name (``negtransfer group --method``).

Every method is a scikit-learn-style estimator with ``fit(U, Y)`` and
``predict(U)`` on gain tables (DESIGN.md); this registry says how each is
built and what it needs, so that adding a method is one entry here plus its
estimator's module:

* ``etap``: :class:`~negtransfer.gains.etap.ETAPPredictor` on ETAP's affinity
  (Ayman, Mukhopadhyay and Laszka, ICLR 2026);
* ``tag``: TAG's lookahead affinity (Fifty et al., NeurIPS 2021), a group's
  score the mean of its pairwise affinities (eq. 7's form), mapped to the gain
  scale by a least-squares line fitted on the measured groups (ETAP's "affine"
  ablation without the residual stage), so that its scores can stand beside
  measured gains in the selection; the mapping does not change TAG's ranking
  of the groups containing a task;
* ``hoa``: :class:`~negtransfer.gains.hoa.PairwiseMeanPredictor` (Standley et
  al., ICML 2020): every pair is measured, a group's gains are its pairs' means;
* ``linear-surrogate``: :class:`~negtransfer.gains.linear_groups.LinearGroupSurrogate`
  (Li et al., TMLR 2023);
* ``mtgnet``: :class:`~negtransfer.gains.mtgnet.MTGNetPredictor` (Song et al., NeurIPS 2022);
* ``ayman``: :class:`~negtransfer.gains.ayman.TotalGainPredictor` (Ayman,
  Mukhopadhyay and Laszka, arXiv 2023): every pair *and* the training groups
  are measured; a network predicts a group's total gain from statistics of its
  pairs' gains, shared among the members around their pairwise means;
* ``grad-tae``: GRAD-TAE's pairwise affinity (Li et al., KDD 2024;
  :mod:`negtransfer.gains.grad_tae`): each repeat's all-task model is the base
  model, its per-example output gradients are projected to 200 dimensions, a
  regularised logistic (least-squares for regression tasks) fit on the
  projected gradients of a sampled task subset stands in for fine-tuning on it,
  and a pair's affinity is the target's estimated relative gain averaged over
  the sampled subsets holding both; mapped to the gain scale by a least-squares
  line on the measured groups, exactly as for ``tag``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

__all__ = ["GroupingMethod", "METHODS", "method"]


@dataclass(frozen=True)
class GroupingMethod:
    """How a grouping method predicts gains.

    Attributes
    ----------
    name : str
    affinity : {"etap", "tag", "grad-tae"} or None
        The affinity the predictor needs from the all-task runs (none: no extra all-task run).
    all_pairs : bool
        Whether every pair of tasks must be measured before the first fit (HOA).
    build : callable(affinity, seed, fixed) -> estimator
        A new, unfitted predictor; ``fixed`` holds hyperparameters found by an
        earlier fit (``best_params_``) for quick refits, or None.
    reference : str
    affinity_momentum : bool
        Whether the method's affinity includes the optimiser's momentum term
        by default (``--affinity-momentum`` overrides it): False for ETAP (the
        public code's Chemical and CelebA predictors, and measured better here:
        docs/methods/affinity.md), True for TAG (its lookahead is the
        optimiser's full step, momentum included).
    groups_with_pairs : bool
        With ``all_pairs``: also measure ``--train-groups`` groups of three or
        more tasks before the first fit (Ayman et al.: the pairs give the
        features, the groups the labels). HOA needs only the pairs.
    """

    name: str
    affinity: str | None
    all_pairs: bool
    build: Callable
    reference: str
    groups_with_pairs: bool = False
    affinity_momentum: bool = False


def _etap(affinity, seed, fixed):
    from negtransfer.gains.etap import ETAPPredictor

    kwargs = {}
    if fixed and "stage1__degree" in fixed:
        kwargs = {"spline_degrees": (fixed["stage1__degree"],), "spline_n_knots": (fixed["stage1__n_knots"],),
                  "spline_alphas": (fixed["stage1__alpha"],)}
    if fixed and "stage2__alpha" in fixed:
        kwargs["residual_alphas"] = (fixed["stage2__alpha"],)
    return ETAPPredictor(affinity, random_state=seed, **kwargs)


def _tag(affinity, seed, fixed):
    from negtransfer.gains.etap import ETAPPredictor

    return ETAPPredictor(affinity, stage1="affine", residual=False, random_state=seed)


def _grad_tae(affinity, seed, fixed):
    from negtransfer.gains.etap import ETAPPredictor

    return ETAPPredictor(affinity, stage1="affine", residual=False, random_state=seed)


def _hoa(affinity, seed, fixed):
    from negtransfer.gains.hoa import PairwiseMeanPredictor

    return PairwiseMeanPredictor()


def _linear(affinity, seed, fixed):
    from negtransfer.gains.linear_groups import LinearGroupSurrogate

    return LinearGroupSurrogate(random_state=seed)


def _mtgnet(affinity, seed, fixed):
    from negtransfer.gains.mtgnet import MTGNetPredictor

    return MTGNetPredictor(random_state=seed)


def _ayman(affinity, seed, fixed):
    from negtransfer.gains.ayman import TotalGainPredictor

    # "skip": the job's cross-validation folds hold out some measured pairs; the job measures every pair.
    return TotalGainPredictor(missing="skip", random_state=seed)


METHODS: dict[str, GroupingMethod] = {
    m.name: m
    for m in (
        GroupingMethod("etap", "etap", False, _etap, "Ayman, Mukhopadhyay and Laszka, ICLR 2026"),
        GroupingMethod("tag", "tag", False, _tag, "Fifty et al., NeurIPS 2021", affinity_momentum=True),
        GroupingMethod("hoa", None, True, _hoa, "Standley et al., ICML 2020"),
        GroupingMethod("linear-surrogate", None, False, _linear, "Li et al., TMLR 2023"),
        GroupingMethod("mtgnet", None, False, _mtgnet, "Song et al., NeurIPS 2022"),
        GroupingMethod("ayman", None, True, _ayman, "Ayman, Mukhopadhyay and Laszka, arXiv:2310.16241, 2023",
                       groups_with_pairs=True),
        GroupingMethod("grad-tae", "grad-tae", False, _grad_tae, "Li et al., KDD 2024"),
    )
}


def method(name: str) -> GroupingMethod:
    """The registered method ``name``, or a ValueError listing the methods."""
    if name not in METHODS:
        raise ValueError(f"unknown grouping method {name!r}; the methods are: {', '.join(METHODS)}")
    return METHODS[name]
