"""Variational multi-task learning with Gumbel-Softmax priors (VMTL, VMTL-AC) and its baselines.

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
inference network theta (Table B.2) maps each class's mean input of the task
(in the batch while training, over all training rows at test time) to the mean
and variance of that class's weight vector.

At test time every variational model predicts with posterior means (z = mu_z(x),
w = M_t), so predictions are deterministic in eval mode.

One configurable module, :class:`VariationalMultiTaskNet`, covers the models;
:data:`MODEL_PRESETS` names them:

=========  ==============  ==========  ==========  ==========================
name       encoder         z           w           priors
=========  ==============  ==========  ==========  ==========================
stl        one per task    point       point       -
vstl       one per task    Gaussian    Gaussian    N(0, I)
bmtl       shared          point       point       -
kendall    shared          point       point       - (uncertainty weighting)
vbmtl      shared          Gaussian    Gaussian    N(0, I)
vmtl       shared          Gaussian    Gaussian    Gumbel-Softmax mixtures
vmtl-ac    shared          Gaussian    amortised   Gumbel-Softmax mixtures
vib        shared          amortised   point       N(0, I) on z, beta 1e-3, Kendall weights
bakker     shared          point       point       mixture of 2 Gaussians on W_t (clusters)
mrn        shared          point       point       matrix-normal on W, task covariance
=========  ==============  ==========  ==========  ==========================

``vib`` is Qian et al.'s (2020) multi-task variational information bottleneck
(an amortised Gaussian z with a KL to N(0, I), plus Kendall weighting);
``bakker`` and ``mrn`` are simplified versions of Bakker and Heskes (2003) task
clustering (no gating: the tasks here have no task features) and of Long et
al.'s (2017) multilinear relationship networks (the task covariance only, on
the classifier layer, no feature or class covariances).

Ablations are constructor switches: ``bayes_z`` / ``bayes_w`` (Bayesian z only,
w only, both), ``prior`` ("gumbel", "learnable" = softmax of learnable logits
without noise, "mean" = uniform 1/(T-1)), ``same_prior_weights`` (one set of
logits for z and w), ``n_z_samples`` / ``n_w_samples`` (L and M).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "BayesianLinear",
    "MODEL_PRESETS",
    "PRIOR_CHOICES",
    "VariationalMultiTaskNet",
    "gaussian_kl",
    "gumbel_softmax_weights",
    "make_model",
]

PRIOR_CHOICES = ("gumbel", "learnable", "mean", "normal")


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


class _Encoder(nn.Module):
    """phi: input dropout -> FC + ELU -> (Bayesian) linear to z (Table B.3, scaled).

    ``amortised=True`` (the VIB baseline) replaces the Bayesian linear layer by
    two linear heads giving mu_z(x) and sigma_z(x) directly.
    """

    def __init__(self, n_features: int, hidden: int, latent: int, bayesian: bool, dropout: float, init_std: float,
                 amortised: bool = False):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.trunk = nn.Linear(n_features, hidden)
        self.bayesian = bayesian
        self.amortised = amortised and bayesian
        if self.amortised:
            self.head = nn.Linear(hidden, latent)
            self.head_rho = nn.Linear(hidden, latent)
            nn.init.zeros_(self.head_rho.weight)
            nn.init.constant_(self.head_rho.bias, _softplus_inverse(init_std))
        else:
            self.head = BayesianLinear(hidden, latent, init_std=init_std) if bayesian else nn.Linear(hidden, latent)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = F.elu(self.trunk(self.dropout(x)))
        if self.amortised:
            return self.head(h), F.softplus(self.head_rho(h)) ** 2 + 1e-8
        if self.bayesian:
            return self.head(h)
        return self.head(h), None


class _AmortisedClassifier(nn.Module):
    """theta: class mean input -> mean and variance of that class's weights (Table B.2, scaled)."""

    def __init__(self, n_features: int, hidden: int, latent: int, dropout: float, init_std: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.trunk = nn.Sequential(nn.Linear(n_features, hidden), nn.ELU(), nn.Linear(hidden, hidden), nn.ELU())
        self.mean = nn.Linear(hidden, latent)
        self.rho = nn.Linear(hidden, latent)
        nn.init.zeros_(self.rho.weight)
        nn.init.constant_(self.rho.bias, _softplus_inverse(init_std))

    def forward(self, prototypes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(C, d) class means -> weight means and variances, both (latent, C)."""
        h = self.trunk(self.dropout(prototypes))
        return self.mean(h).T, (F.softplus(self.rho(h)) ** 2).T + 1e-8


# ====================================================================== the model
class VariationalMultiTaskNet(nn.Module):
    """VMTL and its baselines as one module (see the module docstring for the presets).

    Parameters
    ----------
    n_features : int
        Input width d.
    n_classes : int
        Size C of the shared label space.
    n_tasks : int
        Number of tasks T (domains).
    hidden : int
        Width of the FC + ELU layer of the encoder (and of the amortised classifier).
    latent : int
        Dimension of z (and of each class's weight vector).
    shared_encoder : bool
        One encoder phi for all tasks (MTL) or one per task (STL, VSTL).
    bayes_z, bayes_w : bool
        Gaussian posterior over z / over the classifiers (else point estimates).
    prior : {"gumbel", "learnable", "mean", "normal"}
        Priors of the Bayesian variables: Gumbel-Softmax mixtures of the other
        tasks' posteriors (VMTL), softmax of learnable logits without noise,
        uniform mixture, or N(0, I) (VBMTL, VSTL). Mixtures need a shared
        encoder and T >= 2.
    same_prior_weights : bool
        Use the z logits for w too (ablation of Table C.15).
    amortised_classifier : bool
        VMTL-AC: classifier posteriors from an inference network over class
        mean inputs (needs ``bayes_w``).
    n_z_samples, n_w_samples : int
        L and M, the Monte Carlo samples of z and of the classifier outputs.
    input_dropout : float
        Dropout on the inputs (0.7 on 4096-d CNN features in the official code).
    uncertainty_weighting : bool
        Kendall et al. (2018): task losses weighted by learned homoscedastic
        uncertainty, ``exp(-s_t) * CE_t + s_t / 2``.
    init_std : float
        Initial posterior standard deviation of Bayesian weights.
    z_posterior : {"weights", "amortised"}
        How q(z|x) is parameterised: a Bayesian linear layer with local
        reparameterisation (VMTL), or mean and variance heads (the variational
        information bottleneck of Qian et al. 2020).
    z_kl_weight : float, optional
        Overrides the trainer's z-KL weight for this model (the VIB's beta).
    output_prior : {"none", "clusters", "task-covariance"}
        An empirical-Bayes prior over the point-estimate classifiers W_t:
        a mixture of ``n_clusters`` isotropic Gaussians with learned means,
        scales and weights (task clustering, after Bakker and Heskes 2003), or a
        matrix-normal prior with a task covariance Omega re-estimated in closed
        form each step (the task-relationship part of Long et al.'s multilinear
        relationship networks, on the last layer only).
    n_clusters : int
    output_prior_weight : float
        Weight of the output prior's negative log density (averaged over tasks).
    """

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        n_tasks: int,
        *,
        hidden: int = 64,
        latent: int = 64,
        shared_encoder: bool = True,
        bayes_z: bool = True,
        bayes_w: bool = True,
        prior: str = "gumbel",
        same_prior_weights: bool = False,
        amortised_classifier: bool = False,
        n_z_samples: int = 10,
        n_w_samples: int = 10,
        input_dropout: float = 0.2,
        uncertainty_weighting: bool = False,
        init_std: float = 1e-2,
        z_posterior: str = "weights",
        z_kl_weight: float | None = None,
        output_prior: str = "none",
        n_clusters: int = 2,
        output_prior_weight: float = 1e-3,
    ) -> None:
        super().__init__()
        for label, value in (("n_features", n_features), ("n_classes", n_classes), ("n_tasks", n_tasks),
                             ("hidden", hidden), ("latent", latent), ("n_z_samples", n_z_samples),
                             ("n_w_samples", n_w_samples)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{label} must be a positive integer, got {value!r}")
        if n_classes < 2:
            raise ValueError("n_classes must be at least 2")
        if prior not in PRIOR_CHOICES:
            raise ValueError(f"prior must be one of {', '.join(PRIOR_CHOICES)}, got {prior!r}")
        if not 0 <= input_dropout < 1:
            raise ValueError(f"input_dropout must be in [0, 1), got {input_dropout}")
        if prior != "normal" and (bayes_z or bayes_w):
            if not shared_encoder:
                raise ValueError("mixture priors over other tasks' posteriors need shared_encoder=True; use prior='normal'")
            if n_tasks < 2:
                raise ValueError("mixture priors over the other tasks' posteriors need at least two tasks (domains); "
                                 "with one, use prior='normal' (the vstl or vbmtl presets)")
        if amortised_classifier and not bayes_w:
            raise ValueError("amortised_classifier needs bayes_w=True")
        if z_posterior not in ("weights", "amortised"):
            raise ValueError(f"z_posterior must be 'weights' or 'amortised', got {z_posterior!r}")
        if output_prior not in ("none", "clusters", "task-covariance"):
            raise ValueError(f"output_prior must be 'none', 'clusters' or 'task-covariance', got {output_prior!r}")
        if output_prior != "none" and (bayes_w or amortised_classifier):
            raise ValueError("output_prior applies to point-estimate classifiers: use bayes_w=False")
        if isinstance(n_clusters, bool) or not isinstance(n_clusters, int) or n_clusters < 1:
            raise ValueError(f"n_clusters must be a positive integer, got {n_clusters!r}")
        if output_prior_weight < 0 or (z_kl_weight is not None and z_kl_weight < 0):
            raise ValueError("output_prior_weight and z_kl_weight must be non-negative")
        self.n_features, self.n_classes, self.n_tasks = n_features, n_classes, n_tasks
        self.shared_encoder, self.bayes_z, self.bayes_w = shared_encoder, bayes_z, bayes_w
        self.prior, self.same_prior_weights = prior, same_prior_weights
        self.amortised_classifier = amortised_classifier
        self.n_z_samples, self.n_w_samples = n_z_samples, n_w_samples
        self.uncertainty_weighting = uncertainty_weighting

        n_enc = 1 if shared_encoder else n_tasks
        self.encoders = nn.ModuleList(
            _Encoder(n_features, hidden, latent, bayes_z, input_dropout, init_std, z_posterior == "amortised")
            for _ in range(n_enc)
        )
        bound = 1.0 / math.sqrt(latent)
        if amortised_classifier:
            self.classifier_net = _AmortisedClassifier(n_features, hidden, latent, input_dropout, init_std)
            self.register_buffer("prototypes", torch.zeros(n_tasks, n_classes, n_features))
        else:
            self.w_mu = nn.Parameter(torch.empty(n_tasks, latent, n_classes).uniform_(-bound, bound))
            if bayes_w:
                self.w_rho = nn.Parameter(torch.full((n_tasks, latent, n_classes), _softplus_inverse(init_std)))
        if prior in ("gumbel", "learnable"):
            self.alpha_z = nn.Parameter(torch.zeros(n_tasks, n_tasks - 1))
            self.alpha_w = None if same_prior_weights else nn.Parameter(torch.zeros(n_tasks, n_tasks - 1))
        if uncertainty_weighting:
            self.log_vars = nn.Parameter(torch.zeros(n_tasks))
        self.z_kl_weight = z_kl_weight
        self.output_prior, self.output_prior_weight = output_prior, output_prior_weight
        if output_prior == "clusters":
            dim = latent * n_classes
            self.cluster_means = nn.Parameter(torch.randn(n_clusters, dim) * bound)
            self.cluster_log_std = nn.Parameter(torch.full((n_clusters,), math.log(bound)))
            self.cluster_logits = nn.Parameter(torch.zeros(n_clusters))

    # ------------------------------------------------------------ building blocks
    def _encode(self, x: torch.Tensor, task: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.encoders[0 if self.shared_encoder else task](x)

    def _classifier(self, task: int, x: torch.Tensor | None = None, y: torch.Tensor | None = None):
        """Mean and variance (None for point weights) of task's classifier, (latent, C)."""
        if self.amortised_classifier:
            protos = self.prototypes[task] if x is None else class_means(x, y, self.n_classes)
            return self.classifier_net(protos)
        if self.bayes_w:
            return self.w_mu[task], F.softplus(self.w_rho[task]) ** 2 + 1e-8
        return self.w_mu[task], None

    def mixture_weights(self, task: int, variable: str, temperature: float) -> torch.Tensor:
        """pi_t over the other T-1 tasks for ``variable`` "z" or "w" (eq. of the Gumbel-Softmax prior)."""
        k = self.n_tasks - 1
        if self.prior == "mean":
            return torch.full((k,), 1.0 / k)
        alpha = self.alpha_z if (variable == "z" or self.alpha_w is None) else self.alpha_w
        if self.prior == "learnable":  # softmax of learnable logits: no noise, no temperature
            return torch.softmax(alpha[task], dim=-1)
        return gumbel_softmax_weights(alpha[task], temperature, noise=self.training)

    def _others(self, task: int) -> list[int]:
        return [i for i in range(self.n_tasks) if i != task]

    # ------------------------------------------------------------ prediction
    @torch.no_grad()
    def set_class_prototypes(self, xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor]) -> None:
        """VMTL-AC: store each task's class mean inputs over its training rows (used at test time)."""
        if self.amortised_classifier:
            for t, (x, y) in enumerate(zip(xs, ys)):
                self.prototypes[t] = class_means(x, y, self.n_classes)

    def forward(self, x: torch.Tensor, task: int) -> torch.Tensor:
        """Logits (B, C) for rows of one task from posterior means (z = mu_z(x), w = M_t).

        Deterministic in eval mode (dropout off); this is the test-time predictor.
        """
        z_mean, _ = self._encode(x, task)
        w_mean, _ = self._classifier(task)
        return z_mean @ w_mean

    # ------------------------------------------------------------ training objective
    def loss(
        self,
        xs: Sequence[torch.Tensor],
        ys: Sequence[torch.Tensor],
        *,
        temperature: float = 1.0,
        kl_z_weight: float = 1e-7,
        kl_w_weight: float = 0.0,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The negative ELBO of eq. (4) on one batch (one tensor of rows per task).

        ``(1/T) sum_t [ mean_n E_q E_q CE(y, z w_t) + kl_z_weight * mean_n KL_z
        + kl_w_weight * KL_w ]``, with L x M Monte Carlo samples, KL terms only
        for Bayesian variables, and Kendall weighting of the CE if enabled.

        Parameters
        ----------
        xs, ys : sequences of length T
            Inputs (B_t, d) and class indices (B_t,) of each task's batch rows.
        temperature : float
            Gumbel-Softmax temperature tau.
        kl_z_weight, kl_w_weight : float
            Weights of the z-KL (batch mean) and of the w-KL (REFERENCES.md:
            1e-7 and a warmed-up beta).

        Returns
        -------
        loss : Tensor (scalar)
        parts : dict
            ``nll``, ``kl_z``, ``kl_w`` (unweighted, averaged over tasks).
        """
        if len(xs) != self.n_tasks or len(ys) != self.n_tasks:
            raise ValueError(f"need one batch per task ({self.n_tasks}), got {len(xs)}")
        mixture = self.prior != "normal"
        enc = [self._encode(x, t) for t, x in enumerate(xs)]
        clf = [self._classifier(t, x, y) for t, (x, y) in enumerate(zip(xs, ys))]
        total = torch.zeros(())
        parts = {"nll": 0.0, "kl_z": 0.0, "kl_w": 0.0}
        for t in range(self.n_tasks):
            x, y = xs[t], ys[t]
            z_mean, z_var = enc[t]
            if self.bayes_z:
                eps = torch.randn((self.n_z_samples, *z_mean.shape))
                z = z_mean + z_var.sqrt() * eps  # (L, B, latent)
            else:
                z = z_mean.unsqueeze(0)
            w_mean, w_var = clf[t]
            logit_mean = z @ w_mean  # (L, B, C)
            if w_var is not None:  # local reparameterisation of z w_t
                logit_std = ((z**2) @ w_var).sqrt()
                eps = torch.randn((self.n_w_samples, *logit_mean.shape))
                logits = logit_mean + logit_std * eps  # (M, L, B, C)
            else:
                logits = logit_mean.unsqueeze(0)
            target = y.expand(logits.shape[:-1]).reshape(-1)
            nll = F.cross_entropy(logits.reshape(-1, self.n_classes), target)
            if self.uncertainty_weighting:
                task_loss = torch.exp(-self.log_vars[t]) * nll + 0.5 * self.log_vars[t]
            else:
                task_loss = nll
            kl_z = torch.zeros(())
            if self.bayes_z:
                if mixture:
                    prior_mean, prior_var = self._z_prior(t, xs, ys, temperature)
                else:
                    prior_mean, prior_var = torch.zeros_like(z_mean), torch.ones_like(z_var)
                kl_z = gaussian_kl(z_mean, z_var, prior_mean, prior_var).sum(dim=-1).mean()
            kl_w = torch.zeros(())
            if w_var is not None:
                if mixture:
                    pi = self.mixture_weights(t, "w", temperature)
                    others = self._others(t)
                    mus = torch.stack([clf[i][0].detach() for i in others])
                    vars_ = torch.stack([clf[i][1].detach() for i in others])
                    prior_mean = (pi[:, None, None] * mus).sum(0)
                    prior_var = (pi[:, None, None] ** 2 * vars_).sum(0) + 1e-8
                else:
                    prior_mean, prior_var = torch.zeros_like(w_mean), torch.ones_like(w_var)
                kl_w = gaussian_kl(w_mean, w_var, prior_mean, prior_var).sum()
            z_weight = kl_z_weight if self.z_kl_weight is None else self.z_kl_weight
            total = total + task_loss + z_weight * kl_z + kl_w_weight * kl_w
            parts["nll"] += float(nll.detach()) / self.n_tasks
            parts["kl_z"] += float(kl_z.detach()) / self.n_tasks
            parts["kl_w"] += float(kl_w.detach()) / self.n_tasks
        if self.output_prior != "none":
            penalty = self.output_prior_penalty()
            total = total + self.output_prior_weight * penalty * self.n_tasks
            parts["output_prior"] = float(penalty.detach())
        return total / self.n_tasks, parts

    def output_prior_penalty(self) -> torch.Tensor:
        """Mean over tasks of -log p(W_t) under the output prior (0 for ``output_prior="none"``).

        * ``"clusters"``: p(W_t) = sum_k q_k N(vec W_t; m_k, s_k^2 I), with m, s and
          q = softmax(logits) learned jointly with the network (empirical Bayes
          by gradient instead of Bakker and Heskes's EM).
        * ``"task-covariance"``: tr(W^T Omega^{-1} W) / T for the stacked (T, D)
          classifiers, with Omega = (W W^T)^{1/2} / tr((W W^T)^{1/2}) (detached),
          the closed-form task covariance of a matrix-normal prior.
        """
        if self.output_prior == "none":
            return torch.zeros(())
        W = self.w_mu.reshape(self.n_tasks, -1)
        if self.output_prior == "clusters":
            dim = W.shape[1]
            var = torch.exp(2 * self.cluster_log_std)  # (K,)
            sq = ((W[:, None, :] - self.cluster_means[None]) ** 2).sum(-1)  # (T, K)
            log_n = -0.5 * dim * torch.log(2 * math.pi * var)[None] - sq / (2 * var[None])
            log_q = torch.log_softmax(self.cluster_logits, dim=0)[None]
            return -(torch.logsumexp(log_q + log_n, dim=1)).mean() / dim
        with torch.no_grad():
            gram = W @ W.T + 1e-6 * torch.eye(self.n_tasks)
            evals, evecs = torch.linalg.eigh(gram)
            root = evecs @ torch.diag(evals.clamp_min(1e-12).sqrt()) @ evecs.T
            omega = root / torch.trace(root)
            omega_inv = torch.linalg.inv(omega + 1e-6 * torch.eye(self.n_tasks))
        return torch.trace(W.T @ omega_inv @ W) / self.n_tasks

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
        mean = sum(p * m for p, m in zip(pi, means))
        var = sum(p**2 * v for p, v in zip(pi, variances)) + 1e-8
        return mean, var

    # ------------------------------------------------------------ MC prediction (timing, uncertainty)
    @torch.no_grad()
    def predict_proba_mc(self, x: torch.Tensor, task: int) -> torch.Tensor:
        """Predictive probabilities averaged over L x M posterior samples (B, C)."""
        z_mean, z_var = self._encode(x, task)
        if self.bayes_z:
            z = z_mean + z_var.sqrt() * torch.randn((self.n_z_samples, *z_mean.shape))
        else:
            z = z_mean.unsqueeze(0)
        w_mean, w_var = self._classifier(task)
        logits = z @ w_mean
        if w_var is not None:
            logits = logits + ((z**2) @ w_var).sqrt() * torch.randn((self.n_w_samples, *logits.shape))
        return torch.softmax(logits, dim=-1).reshape(-1, *logits.shape[-2:]).mean(0)


def class_means(x: torch.Tensor, y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """(C, d) mean input of each class; the overall mean for classes with no rows."""
    onehot = F.one_hot(y, n_classes).to(x.dtype)  # (B, C)
    counts = onehot.sum(0)
    sums = onehot.T @ x
    overall = x.mean(0, keepdim=True).expand_as(sums)
    return torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], overall)


# ====================================================================== presets
#: Constructor switches of each named model (see the module docstring's table).
MODEL_PRESETS: dict[str, dict[str, Any]] = {
    "stl": dict(shared_encoder=False, bayes_z=False, bayes_w=False, prior="normal"),
    "vstl": dict(shared_encoder=False, bayes_z=True, bayes_w=True, prior="normal"),
    "bmtl": dict(shared_encoder=True, bayes_z=False, bayes_w=False, prior="normal"),
    "kendall": dict(shared_encoder=True, bayes_z=False, bayes_w=False, prior="normal", uncertainty_weighting=True),
    "vbmtl": dict(shared_encoder=True, bayes_z=True, bayes_w=True, prior="normal"),
    "vmtl": dict(shared_encoder=True, bayes_z=True, bayes_w=True, prior="gumbel"),
    "vmtl-ac": dict(shared_encoder=True, bayes_z=True, bayes_w=True, prior="gumbel", amortised_classifier=True),
    # ablations (Tables C.7-C.10, C.14, C.15)
    "vmtl-z-only": dict(shared_encoder=True, bayes_z=True, bayes_w=False, prior="gumbel"),
    "vmtl-w-only": dict(shared_encoder=True, bayes_z=False, bayes_w=True, prior="gumbel"),
    "vmtl-mean-prior": dict(shared_encoder=True, bayes_z=True, bayes_w=True, prior="mean"),
    "vmtl-learnable-prior": dict(shared_encoder=True, bayes_z=True, bayes_w=True, prior="learnable"),
    "vmtl-same-weights": dict(shared_encoder=True, bayes_z=True, bayes_w=True, prior="gumbel", same_prior_weights=True),
    "vmtl-mc1": dict(shared_encoder=True, bayes_z=True, bayes_w=True, prior="gumbel", n_z_samples=1, n_w_samples=1),
    "vmtl-mc50": dict(shared_encoder=True, bayes_z=True, bayes_w=True, prior="gumbel", n_z_samples=50, n_w_samples=50),
    # further baselines of Table C.13
    "vib": dict(shared_encoder=True, bayes_z=True, bayes_w=False, prior="normal", z_posterior="amortised",
                z_kl_weight=1e-3, uncertainty_weighting=True),
    "bakker": dict(shared_encoder=True, bayes_z=False, bayes_w=False, prior="normal", output_prior="clusters",
                   n_clusters=2),
    "mrn": dict(shared_encoder=True, bayes_z=False, bayes_w=False, prior="normal", output_prior="task-covariance"),
}


def make_model(name: str, n_features: int, n_classes: int, n_tasks: int, **overrides: Any) -> VariationalMultiTaskNet:
    """A :class:`VariationalMultiTaskNet` configured as the named preset.

    Parameters
    ----------
    name : str
        A key of :data:`MODEL_PRESETS`.
    n_features, n_classes, n_tasks : int
    **overrides
        Constructor arguments that replace the preset's (e.g. ``hidden=32``).

    Raises
    ------
    ValueError
        Unknown name (the message lists the known ones).
    """
    if name not in MODEL_PRESETS:
        raise ValueError(f"unknown model {name!r}; the models are: {', '.join(MODEL_PRESETS)}")
    options = {**MODEL_PRESETS[name], **overrides}
    return VariationalMultiTaskNet(n_features, n_classes, n_tasks, **options)
