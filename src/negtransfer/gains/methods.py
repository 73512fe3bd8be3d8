"""The gain predictors of the built-in grouping methods (``negtransfer group --method``).

Every predictor is a scikit-learn-style estimator with ``fit(U, Y)`` and
``predict(U)`` on gain tables (DESIGN.md); each function here builds a new,
unfitted one as ``builder(affinity, seed, fixed)`` (``fixed``: hyperparameters
found by an earlier fit, ``best_params_``, for quick refits, or None). What a
method trains and measures before the fit, and the registry of methods, are in
:mod:`negtransfer.jobs.grouping_methods` (the run store lives above this layer).
The methods:

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

__all__ = ["affine_affinity_predictor", "etap_predictor", "linear_surrogate_predictor", "mtgnet_predictor",
           "pairwise_mean_predictor", "total_gain_predictor"]


def etap_predictor(affinity, seed, fixed=None):
    """ETAP's predictor on ``affinity``: spline map plus residual (:class:`~negtransfer.gains.etap.ETAPPredictor`)."""
    from negtransfer.gains.etap import ETAPPredictor

    kwargs = {}
    if fixed and "stage1__degree" in fixed:
        kwargs = {"spline_degrees": (fixed["stage1__degree"],), "spline_n_knots": (fixed["stage1__n_knots"],),
                  "spline_alphas": (fixed["stage1__alpha"],)}
    if fixed and "stage2__alpha" in fixed:
        kwargs["residual_alphas"] = (fixed["stage2__alpha"],)
    return ETAPPredictor(affinity, random_state=seed, **kwargs)


def affine_affinity_predictor(affinity, seed, fixed=None):
    """A group's score the mean of its pairwise affinities, mapped to gains by a least-squares line (TAG, GRAD-TAE)."""
    from negtransfer.gains.etap import ETAPPredictor

    return ETAPPredictor(affinity, stage1="affine", residual=False, random_state=seed)


def pairwise_mean_predictor(affinity, seed, fixed=None):
    """HOA: a group's gains are its measured pairs' means (:class:`~negtransfer.gains.hoa.PairwiseMeanPredictor`)."""
    from negtransfer.gains.hoa import PairwiseMeanPredictor

    return PairwiseMeanPredictor()


def linear_surrogate_predictor(affinity, seed, fixed=None):
    """Li et al.'s linear surrogate (:class:`~negtransfer.gains.linear_groups.LinearGroupSurrogate`)."""
    from negtransfer.gains.linear_groups import LinearGroupSurrogate

    return LinearGroupSurrogate(random_state=seed)


def mtgnet_predictor(affinity, seed, fixed=None):
    """MTG-Net (:class:`~negtransfer.gains.mtgnet.MTGNetPredictor`)."""
    from negtransfer.gains.mtgnet import MTGNetPredictor

    return MTGNetPredictor(random_state=seed)


def total_gain_predictor(affinity, seed, fixed=None):
    """Ayman et al.'s total-gain network (:class:`~negtransfer.gains.ayman.TotalGainPredictor`)."""
    from negtransfer.gains.ayman import TotalGainPredictor

    # "skip": the job's cross-validation folds hold out some measured pairs; the job measures every pair.
    return TotalGainPredictor(missing="skip", random_state=seed)
