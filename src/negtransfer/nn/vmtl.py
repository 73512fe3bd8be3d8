"""Variational multi-task learning with Gumbel-Softmax priors (VMTL, VMTL-AC), composed from parts.

Shen, Zhen, Worring and Shao, "Variational Multi-Task Learning with
Gumbel-Softmax Priors", NeurIPS 2021 (supplement:
``papers/vmtl-gumbel-softmax-priors.txt`` in the shared folder; official-code facts in
``REFERENCES.md``, section VMTL). Equation numbers below are the
supplement's.

Setting: T classification tasks over one label space (domains as tasks), each
with its own rows. For a row x of task t the model infers

* a latent representation z ~ q_phi(z | x) = N(mu_z(x), diag sigma_z^2(x))
  (the inference network phi of Table B.3: input dropout, FC + ELU, then a
  Bayesian linear layer whose local reparameterisation gives mu_z and sigma_z^2);
* a classifier w_t ~ q_theta(w_t) = N(M_t, diag S_t), one weight column per class,
  no bias; logits = z w_t, sampled with the local reparameterisation trick
  (Kingma et al. 2015): logits ~ N(z M_t, z^2 S_t).

and maximises the multi-task ELBO of eq. (4): the expected log-likelihood over
L samples of z and M samples of w, minus KL[q(z|x) || p(z|x, D_{1:T\\t})] and
KL[q(w_t) || p(w_t | D_{1:T\\t})]. The priors are the paper's Gumbel-Softmax
mixtures of the *other* tasks' posteriors:

    p(w_t) = N( sum_i pi_ti mu_i , sum_i pi_ti^2 sigma_i^2 ),  i != t,
    pi_t = softmax((alpha_t + g) / tau),   g ~ Gumbel(0, 1),

with the other tasks' posterior means and variances detached (REFERENCES.md),
separate logits alpha for z and w, and the temperature tau annealed from 1 to a
floor of 0.5. For z the other tasks' posteriors are evaluated at "related
inputs": for each row of task t, an attention-weighted (scaled dot product)
average of task i's batch rows of the same class.

VMTL-AC replaces the free classifier posterior by an amortised one: an
inference network theta (Table B.2) maps each class's centre (its running mean
input over every training batch so far, in training and at test time, as the
official code keeps it) to the mean and variance of that class's weight
vector, and a second such network gives the class's bias (the official code's
bias generator).

At test time every variational model predicts with posterior means (z = mu_z(x),
w = M_t), so predictions are deterministic in eval mode.

Parts
-----
:class:`VariationalMultiTaskNet` is composed of

* encoders phi (one shared, or one per task): :class:`PointEncoder`
  (deterministic z), :class:`GaussianEncoder` (Bayesian linear head, VMTL) or
  :class:`AmortisedEncoder` (mean and variance heads: the variational
  information bottleneck of Qian et al. 2020);
* classifiers w_t: :class:`PointClassifiers`, :class:`GaussianClassifiers` or
  :class:`AmortisedClassifiers` (VMTL-AC);
* a prior over the Gaussian variables: :class:`NormalPrior` (N(0, I)) or
  :class:`MixturePrior` (Gumbel-Softmax, learnable or uniform mixtures of the
  other tasks' posteriors, with separate or shared logits for z and w);
* optionally an empirical-Bayes prior over point classifiers:
  :class:`ClusterPrior` (task clustering after Bakker and Heskes 2003) or
  :class:`TaskCovariancePrior` (the task covariance of Long et al.'s
  multilinear relationship networks, last layer only).

How task losses are weighted (Kendall et al.'s uncertainty weights for the
``kendall`` and ``vib`` baselines) is the trainer's choice
(:mod:`negtransfer.train.weighting`), passed to :meth:`VariationalMultiTaskNet.loss`.
The named models of the paper's tables (vmtl, vmtl-ac, their baselines and
ablations) are recipes of parts in :mod:`negtransfer.models.vmtl`.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "AmortisedClassifiers",
    "AmortisedEncoder",
    "BayesianLinear",
    "ClusterPrior",
    "GaussianClassifiers",
    "GaussianEncoder",
    "MixturePrior",
    "NormalPrior",
    "PointClassifiers",
    "PointEncoder",
    "TaskCovariancePrior",
    "VariationalMultiTaskNet",
    "class_means",
    "class_sums",
    "gaussian_kl",
    "gumbel_softmax_weights",
]

#: How a mixture prior weighs the other tasks' posteriors.
MIXTURE_WEIGHTS = ("gumbel", "learnable", "mean")


# ====================================================================== pieces
def gaussian_kl(mu_q: torch.Tensor, var_q: torch.Tensor, mu_p: torch.Tensor, var_p: torch.Tensor) -> torch.Tensor:
    """Elementwise KL[N(mu_q, var_q) || N(mu_p, var_p)] between diagonal Gaussians.

    The closed form used in both KL terms of eq. (4):
    ``0.5 * (log var_p - log var_q + (var_q + (mu_q - mu_p)^2) / var_p - 1)``.

    Parameters
    ----------
    mu_q, var_q, mu_p, var_p : Tensor
        Broadcastable means and variances (variances > 0).

    Returns
    -------
    Tensor
        The elementwise KL (sum it over the dimensions of the variable).
    """
    return 0.5 * (torch.log(var_p) - torch.log(var_q) + (var_q + (mu_q - mu_p) ** 2) / var_p - 1.0)


def gumbel_softmax_weights(
    logits: torch.Tensor, temperature: float, *, noise: bool = True, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Relaxed one-hot mixture weights pi = softmax((alpha + g) / tau) (Jang et al. 2017).

    Parameters
    ----------
    logits : Tensor, shape (..., K)
        Unnormalised log weights alpha over the K other tasks.
    temperature : float
        tau > 0; as it falls the weights approach a one-hot vector.
    noise : bool
        Add Gumbel(0, 1) noise g (training); without it, softmax(alpha / tau).
    generator : torch.Generator, optional

    Returns
    -------
    Tensor, shape (..., K)
        Non-negative weights summing to 1 over the last dimension.
    """
    if not temperature > 0:
        raise ValueError(f"the temperature must be positive, got {temperature}")
    if noise:
        u = torch.rand(logits.shape, generator=generator, dtype=logits.dtype, device=logits.device)
        g = -torch.log(-torch.log(u.clamp(1e-10, 1 - 1e-10)))
        logits = logits + g
    return torch.softmax(logits / temperature, dim=-1)


def _softplus_inverse(x: float) -> float:
    return math.log(math.expm1(x))


class BayesianLinear(nn.Module):
    """A linear layer with a factorised Gaussian posterior over its weights.

    q(W) = N(W_mu, diag softplus(W_rho)^2); the bias (if any) is a point estimate.
    :meth:`forward` applies the local reparameterisation trick (Kingma, Salimans
    and Welling 2015): for input x the output is Gaussian with mean ``x W_mu + b``
    and variance ``x^2 softplus(W_rho)^2``, so it returns that mean and variance
    and the caller samples activations (cheaper and lower-variance than sampling W).

    Parameters
    ----------
    in_features, out_features : int
    bias : bool
    init_std : float
        Initial posterior standard deviation of every weight.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, init_std: float = 1e-2) -> None:
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError("in_features and out_features must be positive")
        if not init_std > 0:
            raise ValueError(f"init_std must be positive, got {init_std}")
        bound = 1.0 / math.sqrt(in_features)
        self.weight_mu = nn.Parameter(torch.empty(in_features, out_features).uniform_(-bound, bound))
        self.weight_rho = nn.Parameter(torch.full((in_features, out_features), _softplus_inverse(init_std)))
        self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound)) if bias else None

    @property
    def weight_var(self) -> torch.Tensor:
        return F.softplus(self.weight_rho) ** 2

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of the pre-activation for inputs x of shape (..., in)."""
        mean = x @ self.weight_mu
        if self.bias is not None:
            mean = mean + self.bias
        var = (x**2) @ self.weight_var + 1e-8
        return mean, var


# ====================================================================== encoders
class PointEncoder(nn.Module):
    """phi with a deterministic z: input dropout -> FC + ELU -> linear (Table B.3, scaled)."""

    bayesian = False

    def __init__(self, n_features: int, hidden: int, latent: int, dropout: float = 0.2):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.trunk = nn.Linear(n_features, hidden)
        self.head = self._head(hidden, latent)

    def _head(self, hidden: int, latent: int) -> nn.Module:
        return nn.Linear(hidden, latent)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.elu(self.trunk(self.dropout(x)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Mean of z (B, latent) and its variance (None: a point estimate)."""
        return self.head(self.features(x)), None


class GaussianEncoder(PointEncoder):
    """phi with a Gaussian q(z|x): the last layer is a :class:`BayesianLinear` (local reparameterisation)."""

    bayesian = True

    def __init__(self, n_features: int, hidden: int, latent: int, dropout: float = 0.2, init_std: float = 1e-2):
        self.init_std = init_std
        super().__init__(n_features, hidden, latent, dropout)

    def _head(self, hidden: int, latent: int) -> nn.Module:
        return BayesianLinear(hidden, latent, init_std=self.init_std)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.features(x))


class AmortisedEncoder(PointEncoder):
    """phi with q(z|x) = N(mu(x), sigma(x)^2) from two linear heads (the VIB of Qian et al. 2020)."""

    bayesian = True

    def __init__(self, n_features: int, hidden: int, latent: int, dropout: float = 0.2, init_std: float = 1e-2):
        super().__init__(n_features, hidden, latent, dropout)
        self.head_rho = nn.Linear(hidden, latent)
        nn.init.zeros_(self.head_rho.weight)
        nn.init.constant_(self.head_rho.bias, _softplus_inverse(init_std))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        return self.head(h), F.softplus(self.head_rho(h)) ** 2 + 1e-8


# ====================================================================== classifiers
class PointClassifiers(nn.Module):
    """One point-estimate weight matrix W_t (latent, C) per task, no bias."""

    bayesian = False

    def __init__(self, n_tasks: int, latent: int, n_classes: int):
        super().__init__()
        self.n_tasks, self.n_classes = n_tasks, n_classes
        bound = 1.0 / math.sqrt(latent)
        self.w_mu = nn.Parameter(torch.empty(n_tasks, latent, n_classes).uniform_(-bound, bound))

    has_bias = False

    def forward(self, task: int):
        """Mean and variance (None for point weights) of task's classifier, each (latent, C)."""
        return self.w_mu[task], None

    def observe(self, task: int, x: torch.Tensor, y: torch.Tensor) -> None:
        """Nothing to track (see :class:`AmortisedClassifiers`)."""

    def set_prototypes(self, xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor]) -> None:
        """Nothing to store (see :class:`AmortisedClassifiers`)."""

    def task_rows(self) -> list[nn.Parameter]:
        """Parameters whose first dimension indexes the tasks (each task owns its row)."""
        return [self.w_mu]


class GaussianClassifiers(PointClassifiers):
    """q(W_t) = N(M_t, diag softplus(rho_t)^2) per task."""

    bayesian = True

    def __init__(self, n_tasks: int, latent: int, n_classes: int, init_std: float = 1e-2):
        super().__init__(n_tasks, latent, n_classes)
        self.w_rho = nn.Parameter(torch.full((n_tasks, latent, n_classes), _softplus_inverse(init_std)))

    def forward(self, task: int):
        return self.w_mu[task], F.softplus(self.w_rho[task]) ** 2 + 1e-8

    def task_rows(self) -> list[nn.Parameter]:
        return [self.w_mu, self.w_rho]


class _AmortisedClassifierNet(nn.Module):
    """theta: class centre -> mean and variance of that class's weights (Table B.2, scaled; no dropout).

    The official code applies no dropout to the class centres (its generator
    drops inputs only when encoding z).
    """

    def __init__(self, n_features: int, hidden: int, latent: int, init_std: float):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(n_features, hidden), nn.ELU(), nn.Linear(hidden, hidden), nn.ELU())
        self.mean = nn.Linear(hidden, latent)
        self.rho = nn.Linear(hidden, latent)
        nn.init.zeros_(self.rho.weight)
        nn.init.constant_(self.rho.bias, _softplus_inverse(init_std))

    def forward(self, prototypes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(C, d) class centres -> weight means and variances, both (latent, C)."""
        h = self.trunk(prototypes)
        return self.mean(h).T, (F.softplus(self.rho(h)) ** 2).T + 1e-8


class AmortisedClassifiers(nn.Module):
    """VMTL-AC: each task's classifier posterior inferred from its class centres by one shared network.

    A class's centre is the running mean of its input rows over every training
    batch seen so far (:meth:`observe`, called by the training loss), used both
    in training and at test time, as in the official code (which averages the
    batch class means; with class-balanced batches the two agree). A class
    absent from a batch keeps its centre; a class never seen keeps the initial
    zero vector. Centres are buffers, so a checkpoint carries them.

    Parameters
    ----------
    n_tasks, n_features, n_classes, hidden, latent : int
    init_std : float
        Initial posterior standard deviation of the weights (and bias).
    bias : bool
        A per-class bias from a second amortised network (the official code's
        bias generator); the classifier's "weights" then have ``latent + 1``
        rows, the last one the bias (``has_bias``).
    """

    bayesian = True
    centres: torch.Tensor  # buffers (register_buffer)
    centre_counts: torch.Tensor

    def __init__(self, n_tasks: int, n_features: int, n_classes: int, hidden: int, latent: int,
                 init_std: float = 1e-2, bias: bool = True):  # fmt: skip
        super().__init__()
        self.n_tasks, self.n_classes = n_tasks, n_classes
        self.net = _AmortisedClassifierNet(n_features, hidden, latent, init_std)
        self.bias_net = _AmortisedClassifierNet(n_features, hidden, 1, init_std) if bias else None
        self.has_bias = bias
        self.register_buffer("centres", torch.zeros(n_tasks, n_classes, n_features))
        self.register_buffer("centre_counts", torch.zeros(n_tasks, n_classes))

    def forward(self, task: int):
        centres = self.centres[task]
        mean, var = self.net(centres)
        if self.bias_net is None:
            return mean, var
        b_mean, b_var = self.bias_net(centres)
        return torch.cat([mean, b_mean]), torch.cat([var, b_var])

    @torch.no_grad()
    def observe(self, task: int, x: torch.Tensor, y: torch.Tensor) -> None:
        """Fold a training batch of task ``task`` into its running class centres (absent classes unchanged)."""
        sums, counts = class_sums(x, y, self.n_classes)
        old = self.centre_counts[task]
        total = old + counts
        updated = (self.centres[task] * old[:, None] + sums) / total.clamp(min=1)[:, None]
        self.centres[task] = torch.where(counts[:, None] > 0, updated, self.centres[task])
        self.centre_counts[task] = total

    @torch.no_grad()
    def set_prototypes(self, xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor]) -> None:
        """Reset each task's centres to the class means of ``xs``/``ys`` (classes without rows: zero)."""
        self.centres.zero_()
        self.centre_counts.zero_()
        for t, (x, y) in enumerate(zip(xs, ys, strict=True)):
            self.observe(t, x, y)

    def task_rows(self) -> list[nn.Parameter]:
        return []


# ====================================================================== priors
class NormalPrior(nn.Module):
    """N(0, I) priors on the Gaussian variables (VSTL, VBMTL)."""

    mixture = False


class MixturePrior(nn.Module):
    """Priors that mix the other tasks' (detached) posteriors with weights pi_t over the T-1 others.

    Parameters
    ----------
    n_tasks : int
        At least 2.
    weights : {"gumbel", "learnable", "mean"}
        pi_t = softmax((alpha_t + g) / tau) with Gumbel noise g while training
        (VMTL); softmax(alpha_t) of learnable logits without noise or
        temperature; or the uniform 1/(T-1).
    shared_logits : bool
        One set of logits alpha for z and w (ablation of Table C.15).
    """

    mixture = True

    def __init__(self, n_tasks: int, weights: str = "gumbel", shared_logits: bool = False):
        super().__init__()
        if weights not in MIXTURE_WEIGHTS:
            raise ValueError(f"mixture weights must be one of {', '.join(MIXTURE_WEIGHTS)}, got {weights!r}")
        if n_tasks < 2:
            raise ValueError("mixture priors over the other tasks' posteriors need at least two tasks (domains); "
                             "with one, use NormalPrior (the vstl or vbmtl presets)")
        self.n_tasks, self.kind = n_tasks, weights
        self.alpha_z: nn.Parameter | None = None
        self.alpha_w: nn.Parameter | None = None
        if weights in ("gumbel", "learnable"):
            self.alpha_z = nn.Parameter(torch.zeros(n_tasks, n_tasks - 1))
            self.alpha_w = None if shared_logits else nn.Parameter(torch.zeros(n_tasks, n_tasks - 1))

    def weights(self, task: int, variable: str, temperature: float) -> torch.Tensor:
        """pi_t over the other T-1 tasks for ``variable`` "z" or "w"."""
        k = self.n_tasks - 1
        alpha = self.alpha_z if (variable == "z" or self.alpha_w is None) else self.alpha_w
        if alpha is None:  # weights "mean": no logits
            return torch.full((k,), 1.0 / k)
        if self.kind == "learnable":  # softmax of learnable logits: no noise, no temperature
            return torch.softmax(alpha[task], dim=-1)
        return gumbel_softmax_weights(alpha[task], temperature, noise=self.training)


class ClusterPrior(nn.Module):
    """Task clustering (after Bakker and Heskes 2003): p(W_t) = sum_k q_k N(vec W_t; m_k, s_k^2 I).

    m, s and q = softmax(logits) are learned jointly with the network (empirical
    Bayes by gradient instead of Bakker and Heskes's EM).

    Parameters
    ----------
    n_clusters : int
    dim : int
        Size of vec W_t (latent x classes).
    scale : float
        Initial cluster mean scale and standard deviation.
    """

    def __init__(self, n_clusters: int, dim: int, scale: float):
        super().__init__()
        if isinstance(n_clusters, bool) or not isinstance(n_clusters, int) or n_clusters < 1:
            raise ValueError(f"n_clusters must be a positive integer, got {n_clusters!r}")
        self.cluster_means = nn.Parameter(torch.randn(n_clusters, dim) * scale)
        self.cluster_log_std = nn.Parameter(torch.full((n_clusters,), math.log(scale)))
        self.cluster_logits = nn.Parameter(torch.zeros(n_clusters))

    def penalty(self, W: torch.Tensor) -> torch.Tensor:
        """Mean over tasks of -log p(W_t) / dim for the stacked (T, dim) classifiers."""
        dim = W.shape[1]
        var = torch.exp(2 * self.cluster_log_std)  # (K,)
        sq = ((W[:, None, :] - self.cluster_means[None]) ** 2).sum(-1)  # (T, K)
        log_n = -0.5 * dim * torch.log(2 * math.pi * var)[None] - sq / (2 * var[None])
        log_q = torch.log_softmax(self.cluster_logits, dim=0)[None]
        return -(torch.logsumexp(log_q + log_n, dim=1)).mean() / dim


class TaskCovariancePrior(nn.Module):
    """A matrix-normal prior with a task covariance (Long et al.'s multilinear relationship networks, last layer).

    Penalty tr(W^T Omega^{-1} W) / T for the stacked (T, D) classifiers, with
    Omega = (W W^T)^{1/2} / tr((W W^T)^{1/2}) re-estimated in closed form
    (detached) at every step.
    """

    def penalty(self, W: torch.Tensor) -> torch.Tensor:
        n_tasks = W.shape[0]
        with torch.no_grad():
            gram = W @ W.T + 1e-6 * torch.eye(n_tasks)
            evals, evecs = torch.linalg.eigh(gram)
            root = evecs @ torch.diag(evals.clamp_min(1e-12).sqrt()) @ evecs.T
            omega = root / torch.trace(root)
            omega_inv = torch.linalg.inv(omega + 1e-6 * torch.eye(n_tasks))
        return torch.trace(W.T @ omega_inv @ W) / n_tasks


# ====================================================================== the model
class VariationalMultiTaskNet(nn.Module):
    """VMTL and its baselines: encoders, classifiers, a prior and an optional output prior.

    Parameters
    ----------
    encoders : nn.Module or sequence of nn.Module
        One encoder shared by all tasks (MTL), or one per task (STL, VSTL);
        all of one kind (:class:`PointEncoder`, :class:`GaussianEncoder`,
        :class:`AmortisedEncoder`).
    classifiers : PointClassifiers, GaussianClassifiers or AmortisedClassifiers
        The T task classifiers over the shared label space.
    prior : NormalPrior or MixturePrior, optional
        Prior of the Gaussian variables (default N(0, I)). A mixture over the
        other tasks' posteriors needs one shared encoder.
    output_prior : ClusterPrior or TaskCovariancePrior, optional
        Empirical-Bayes prior over point classifiers.
    output_prior_weight : float
        Weight of the output prior's penalty (averaged over tasks).
    n_z_samples, n_w_samples : int
        L and M, the Monte Carlo samples of z and of the classifier outputs.
    z_kl_weight : float, optional
        Overrides the trainer's z-KL weight for this model (the VIB's beta).

    Raises
    ------
    ValueError
        Parts that do not fit together (the message says which and the fix).
    """

    def __init__(
        self,
        encoders: nn.Module | Sequence[nn.Module],
        classifiers: PointClassifiers | AmortisedClassifiers,
        *,
        prior: NormalPrior | MixturePrior | None = None,
        output_prior: ClusterPrior | TaskCovariancePrior | None = None,
        output_prior_weight: float = 1e-3,
        n_z_samples: int = 10,
        n_w_samples: int = 10,
        z_kl_weight: float | None = None,
    ) -> None:
        super().__init__()
        encoders = [encoders] if isinstance(encoders, nn.Module) else list(encoders)
        n_tasks, n_classes = classifiers.n_tasks, classifiers.n_classes
        for label, value in (("n_z_samples", n_z_samples), ("n_w_samples", n_w_samples)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{label} must be a positive integer, got {value!r}")
        if n_classes < 2:
            raise ValueError("n_classes must be at least 2")
        if len(encoders) not in (1, n_tasks):
            raise ValueError(f"give one shared encoder or one per task ({n_tasks}), got {len(encoders)}")
        prior = prior if prior is not None else NormalPrior()
        bayesian = encoders[0].bayesian or classifiers.bayesian
        if prior.mixture and bayesian and len(encoders) != 1:
            raise ValueError("mixture priors over other tasks' posteriors need one shared encoder; use NormalPrior "
                             "with one encoder per task")
        if output_prior is not None and classifiers.bayesian:
            raise ValueError("output priors apply to point-estimate classifiers: use PointClassifiers")
        if output_prior_weight < 0 or (z_kl_weight is not None and z_kl_weight < 0):
            raise ValueError("output_prior_weight and z_kl_weight must be non-negative")
        self.n_tasks, self.n_classes = n_tasks, n_classes
        self.encoders = nn.ModuleList(encoders)
        self.classifiers = classifiers
        self.prior = prior
        self.output_prior = output_prior
        self.output_prior_weight = output_prior_weight
        self.n_z_samples, self.n_w_samples = n_z_samples, n_w_samples
        self.z_kl_weight = z_kl_weight

    # ------------------------------------------------------------ what the parts are
    @property
    def shared_encoder(self) -> bool:
        return len(self.encoders) == 1

    @property
    def bayes_z(self) -> bool:
        return bool(self.encoders[0].bayesian)

    @property
    def bayes_w(self) -> bool:
        return bool(self.classifiers.bayesian)

    @property
    def alpha_z(self) -> nn.Parameter | None:
        return getattr(self.prior, "alpha_z", None)

    @property
    def alpha_w(self) -> nn.Parameter | None:
        return getattr(self.prior, "alpha_w", None)

    def mixture_weights(self, task: int, variable: str, temperature: float) -> torch.Tensor:
        """pi_t over the other T-1 tasks for ``variable`` "z" or "w" (a mixture prior's weights)."""
        if not isinstance(self.prior, MixturePrior):
            raise ValueError("this model's prior is not a mixture over the other tasks")
        return self.prior.weights(task, variable, temperature)

    # ------------------------------------------------------------ building blocks
    def _encode(self, x: torch.Tensor, task: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.encoders[0 if self.shared_encoder else task](x)

    def _others(self, task: int) -> list[int]:
        return [i for i in range(self.n_tasks) if i != task]

    # ------------------------------------------------------------ prediction
    @torch.no_grad()
    def set_class_prototypes(self, xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor]) -> None:
        """VMTL-AC: store each task's class mean inputs over its training rows (used at test time)."""
        self.classifiers.set_prototypes(xs, ys)

    def _inputs(self, z: torch.Tensor) -> torch.Tensor:
        """z with a constant 1 appended when the classifiers carry a bias row (VMTL-AC)."""
        if not self.classifiers.has_bias:
            return z
        return torch.cat([z, torch.ones_like(z[..., :1])], dim=-1)

    def forward(self, x: torch.Tensor, task: int) -> torch.Tensor:
        """Logits (B, C) for rows of one task from posterior means (z = mu_z(x), w = M_t).

        Deterministic in eval mode (dropout off); this is the test-time predictor.
        """
        z_mean, _ = self._encode(x, task)
        w_mean, _ = self.classifiers(task)
        return self._inputs(z_mean) @ w_mean

    def task_rows(self) -> list[nn.Parameter]:
        """Parameters whose first dimension indexes the tasks: task t owns row t (classifiers, prior logits)."""
        rows = list(self.classifiers.task_rows())
        return rows + [p for p in (self.alpha_z, self.alpha_w) if p is not None]

    def task_modules(self, task: int) -> list[nn.Module]:
        """Modules only task ``task`` uses (its encoder when each task has one)."""
        return [] if self.shared_encoder else [self.encoders[task]]

    # ------------------------------------------------------------ training objective
    def loss(
        self,
        xs: Sequence[torch.Tensor],
        ys: Sequence[torch.Tensor],
        *,
        temperature: float = 1.0,
        kl_z_weight: float = 1e-7,
        kl_w_weight: float | Sequence[float] = 0.0,
        weighting=None,
        tasks: Sequence[int] | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The negative ELBO of eq. (4) on one batch (one tensor of rows per task).

        ``(1/T) sum_t [ w(mean_n E_q E_q CE(y, z w_t)) + kl_z_weight * mean_n KL_z
        + kl_w_weight * KL_w ]``, with L x M Monte Carlo samples, KL terms only
        for Gaussian variables, and ``w`` the loss weighting of each task's
        cross-entropy.

        Parameters
        ----------
        xs, ys : sequences of length T
            Inputs (B_t, d) and class indices (B_t,) of each task's batch rows.
        temperature : float
            Gumbel-Softmax temperature tau.
        kl_z_weight, kl_w_weight : float
            Weights of the z-KL (batch mean) and of the w-KL (REFERENCES.md:
            1e-7 and a warmed-up beta). ``kl_w_weight`` may be one weight per
            task (index t: task t's), e.g. the ELBO-consistent 1 / N_t.
        weighting : LossWeighting, optional
            ``weighting.task_term(t, nll)`` gives task t's weighted
            cross-entropy (:mod:`negtransfer.train.weighting`); default: the
            cross-entropy itself.
        tasks : sequence of int, optional
            Whose terms to include (default all). ``[t]`` is the loss of one
            per-task step (the official code's one optimiser per task); the
            other tasks' batches still give task t's z prior its related inputs.

        Returns
        -------
        loss : Tensor (scalar)
            Mean over ``tasks`` of their terms.
        parts : dict
            ``nll``, ``kl_z``, ``kl_w`` (unweighted, averaged over ``tasks``).
        """
        if len(xs) != self.n_tasks or len(ys) != self.n_tasks:
            raise ValueError(f"need one batch per task ({self.n_tasks}), got {len(xs)}")
        tasks = list(range(self.n_tasks)) if tasks is None else [int(t) for t in tasks]
        if not tasks or any(not 0 <= t < self.n_tasks for t in tasks):
            raise ValueError(f"tasks must be a non-empty subset of 0..{self.n_tasks - 1}, got {tasks}")
        enc = {t: self._encode(xs[t], t) for t in tasks}
        if self.training:
            for t in tasks:
                self.classifiers.observe(t, xs[t], ys[t])
        clf = [self.classifiers(t) for t in range(self.n_tasks)]
        total = torch.zeros(())
        parts = {"nll": 0.0, "kl_z": 0.0, "kl_w": 0.0}
        z_weight = kl_z_weight if self.z_kl_weight is None else self.z_kl_weight
        for t in tasks:
            nll = self._nll(ys[t], enc[t], clf[t])
            task_loss = nll if weighting is None else weighting.task_term(t, nll)
            kl_z = self._kl_z(t, xs, ys, enc[t], temperature)
            kl_w = self._kl_w(t, clf, temperature)
            beta = kl_w_weight if isinstance(kl_w_weight, (int, float)) else kl_w_weight[t]
            total = total + task_loss + z_weight * kl_z + beta * kl_w
            parts["nll"] += float(nll.detach()) / len(tasks)
            parts["kl_z"] += float(kl_z.detach()) / len(tasks)
            parts["kl_w"] += float(kl_w.detach()) / len(tasks)
        if self.output_prior is not None:
            penalty = self.output_prior_penalty()
            total = total + self.output_prior_weight * penalty * len(tasks)
            parts["output_prior"] = float(penalty.detach())
        return total / len(tasks), parts

    def _nll(self, y: torch.Tensor, encoded, classifier) -> torch.Tensor:
        """Monte Carlo cross-entropy of one task's rows: L samples of z, M of the logits."""
        z_mean, z_var = encoded
        if self.bayes_z:
            eps = torch.randn((self.n_z_samples, *z_mean.shape))
            z = z_mean + z_var.sqrt() * eps  # (L, B, latent)
        else:
            z = z_mean.unsqueeze(0)
        z = self._inputs(z)
        w_mean, w_var = classifier
        logit_mean = z @ w_mean  # (L, B, C)
        if w_var is not None:  # local reparameterisation of z w_t
            logit_std = ((z**2) @ w_var).sqrt()
            eps = torch.randn((self.n_w_samples, *logit_mean.shape))
            logits = logit_mean + logit_std * eps  # (M, L, B, C)
        else:
            logits = logit_mean.unsqueeze(0)
        target = y.expand(logits.shape[:-1]).reshape(-1)
        return F.cross_entropy(logits.reshape(-1, self.n_classes), target)

    def _kl_z(self, t: int, xs, ys, encoded, temperature: float) -> torch.Tensor:
        """Batch-mean KL of q(z|x) from its prior (0 for a point z)."""
        if not self.bayes_z:
            return torch.zeros(())
        z_mean, z_var = encoded
        if self.prior.mixture:
            prior_mean, prior_var = self._z_prior(t, xs, ys, temperature)
        else:
            prior_mean, prior_var = torch.zeros_like(z_mean), torch.ones_like(z_var)
        return gaussian_kl(z_mean, z_var, prior_mean, prior_var).sum(dim=-1).mean()

    def _kl_w(self, t: int, clf, temperature: float) -> torch.Tensor:
        """KL of q(w_t) from its prior (0 for point classifiers)."""
        w_mean, w_var = clf[t]
        if w_var is None:
            return torch.zeros(())
        if self.prior.mixture:
            pi = self.mixture_weights(t, "w", temperature)
            others = self._others(t)
            mus = torch.stack([clf[i][0].detach() for i in others])
            vars_ = torch.stack([clf[i][1].detach() for i in others])
            prior_mean = (pi[:, None, None] * mus).sum(0)
            prior_var = (pi[:, None, None] ** 2 * vars_).sum(0) + 1e-8
        else:
            prior_mean, prior_var = torch.zeros_like(w_mean), torch.ones_like(w_var)
        return gaussian_kl(w_mean, w_var, prior_mean, prior_var).sum()

    def output_prior_penalty(self) -> torch.Tensor:
        """Mean over tasks of -log p(W_t) under the output prior (0 without one)."""
        if self.output_prior is None:
            return torch.zeros(())
        if not isinstance(self.classifiers, PointClassifiers):  # __init__ allows output priors on these only
            raise TypeError("output priors apply to point-estimate classifiers: use PointClassifiers")
        return self.output_prior.penalty(self.classifiers.w_mu.reshape(self.n_tasks, -1))

    def _z_prior(self, t: int, xs, ys, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Prior of z for task t's rows: a pi-weighted mixture of q(z | related input of task i).

        The related input of row n for task i is the attention-weighted mean of
        task i's batch rows with the same class (all of task i's rows if it has
        none of that class); posterior means and variances are detached.
        """
        x, y = xs[t], ys[t]
        pi = self.mixture_weights(t, "z", temperature)
        means, variances = [], []
        for i in self._others(t):
            xi, yi = xs[i], ys[i]
            scores = (x @ xi.T) / math.sqrt(x.shape[1])
            same = y[:, None] == yi[None, :]
            no_match = ~same.any(dim=1, keepdim=True)
            scores = scores.masked_fill(~(same | no_match), float("-inf"))
            related = torch.softmax(scores, dim=1) @ xi
            with torch.no_grad():
                m, v = self._encode(related, i)
            means.append(m)
            variances.append(v)
        mean = sum(p * m for p, m in zip(pi, means, strict=True))
        var = sum(p**2 * v for p, v in zip(pi, variances, strict=True)) + 1e-8
        return mean, var

    # ------------------------------------------------------------ MC prediction (timing, uncertainty)
    @torch.no_grad()
    def predict_proba_mc(self, x: torch.Tensor, task: int) -> torch.Tensor:
        """Predictive probabilities averaged over L x M posterior samples (B, C)."""
        z_mean, z_var = self._encode(x, task)
        if z_var is not None:  # a Bayesian encoder
            z = z_mean + z_var.sqrt() * torch.randn((self.n_z_samples, *z_mean.shape))
        else:
            z = z_mean.unsqueeze(0)
        z = self._inputs(z)
        w_mean, w_var = self.classifiers(task)
        logits = z @ w_mean
        if w_var is not None:
            logits = logits + ((z**2) @ w_var).sqrt() * torch.randn((self.n_w_samples, *logits.shape))
        return torch.softmax(logits, dim=-1).reshape(-1, *logits.shape[-2:]).mean(0)


def class_sums(x: torch.Tensor, y: torch.Tensor, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(C, d) sum of each class's input rows and (C,) their counts."""
    onehot = F.one_hot(y, n_classes).to(x.dtype)  # (B, C)
    return onehot.T @ x, onehot.sum(0)


def class_means(x: torch.Tensor, y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """(C, d) mean input of each class; zeros for a class with no rows (classes are never mixed)."""
    sums, counts = class_sums(x, y, n_classes)
    return sums / counts.clamp(min=1)[:, None]
