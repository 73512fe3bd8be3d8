"""Uncertainty-based asymmetric multi-task models: TP-AMTL (temporal) and P-AMTL (non-temporal).

Nam, Lee, Lee, Lee, Hwang, Yang: "Temporal Probabilistic Asymmetric Multi-task
Learning for Clinical Risk Prediction" (AAAI 2021; the paper text is in
``papers/tp-amtl-temporal-asymmetric.txt`` in the shared folder). Equation numbers below
are the paper's. Settings follow the official code as summarised in
``REFERENCES.md`` (hidden size 8, keep probability 0.7, 5 extra Monte Carlo
passes for the variances, softplus transfer weights, L2-normalised G1).

Both models are plain ``nn.Module`` s returning one logit per task. They are
stochastic on purpose (MC dropout and sampled latents): keep them in ``train()``
mode at test time too and average the probabilities of several forward passes
(:func:`negtransfer.train.temporal.predict_proba` does this for models with
``mc_dropout = True``).

Ablation switches (paper Table 4)
    ``transfer``: ``"full"`` (across tasks and from past and present steps,
    i <= t, Eq. 9), ``"none"`` (AMTL-notransfer), ``"intra-task"`` (j = d only),
    ``"same-step"`` (i = t only), ``"future-to-past"`` (the paper's
    "constrained" variant: only from later or equal steps, i >= t),
    ``"all-steps"`` (any i, no temporal constraint).
    ``uncertainty``: ``"both"`` (MC dropout + learned variance),
    ``"epistemic"`` (MC dropout, z = mu), ``"aleatoric"`` (learned variance, no
    dropout in the task networks), ``"deterministic"`` (TD-AMTL: no dropout,
    z = mu, the transfer network sees no variance).

Public-code switches (``REFERENCES.md``, TP-AMTL)
    ``stop_gradient`` (default True): as the official code, no gradient flows
    into either input of the transfer network F (target and source features
    and variances), nor into the transferred features ``G1_j(f_j)`` of another
    task j != d; so task d's loss trains only its own features, the shared
    layers, the transfer network and G1 / G2. False: the earlier behaviour
    (only the source inputs to F detached).
    ``noise``: ``"dropout"`` (default; dropout on activations, a new mask per
    row and step, plus variational dropout on the LSTM's input and output) or
    ``"dropconnect"`` (official code: one Bernoulli mask on each task-layer
    *weight matrix* per forward pass, shared by every row and step, and
    variational dropout on the LSTM output only). Either way every MC pass
    draws new masks.
    :meth:`TPAMTL.l2_parameters`: the parameters the official code's L2
    penalty covers (the "base" network: embedding, LSTM and task-feature
    weights, no biases, no transfer or output layers).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

TRANSFER_MODES = ("full", "none", "intra-task", "same-step", "future-to-past", "all-steps")
UNCERTAINTY_MODES = ("both", "epistemic", "aleatoric", "deterministic")
NOISE_MODES = ("dropout", "dropconnect")


def _check_choice(value: str, options: tuple[str, ...], name: str) -> str:
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(options)}; got {value!r}")
    return value


def _check_positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


class TaskLinear(nn.Module):
    """One linear layer per task, applied together: (..., D, in) -> (..., D, out).

    Initialised like ``nn.Linear`` (uniform in +-1/sqrt(in)).
    """

    def __init__(self, n_tasks: int, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        bound = 1.0 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(n_tasks, in_features, out_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_tasks, out_features).uniform_(-bound, bound)) if bias else None

    def forward(self, x: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` (..., D, in) -> (..., D, out); ``weight`` replaces ``self.weight`` (DropConnect)."""
        lead, (d, i) = x.shape[:-2], x.shape[-2:]
        flat = x.reshape(-1, d, i).transpose(0, 1)  # (D, N, in): one batched matmul per task
        out = torch.bmm(flat, self.weight if weight is None else weight).transpose(0, 1).reshape(*lead, d, -1)
        return out + self.bias if self.bias is not None else out


class ProbabilisticTaskFeatures(nn.Module):
    """Per-task latent features with aleatoric and epistemic uncertainty (Eqs. 5-8).

    ``h_d = leaky(r W_d + b_d)`` (Eq. 5, one layer, dropout before it), then a
    mean branch ``mu_d`` and a scale branch ``sigma_d = softplus(...)`` of two
    leaky-ReLU layers each (Eqs. 7-8); ``z_d ~ N(mu_d, sigma_d^2)`` (Eq. 6) by
    the reparameterisation trick. Epistemic uncertainty comes from MC dropout
    (Gal & Ghahramani 2016) on the inputs of every layer.

    Parameters
    ----------
    n_tasks, in_features, hidden : int
    dropout : float
        Drop probability (the official code keeps 0.7, i.e. drops 0.3).
    sample_latent : bool
        Draw z from N(mu, sigma^2) (aleatoric); False: z = mu.
    use_dropout : bool
        MC dropout in these layers (epistemic); False: none.
    dropconnect : bool
        Drop weights instead of activations (official code): one mask per
        weight matrix per forward pass, scaled by 1 / keep.
    """

    def __init__(self, n_tasks: int, in_features: int, hidden: int, dropout: float,
                 sample_latent: bool = True, use_dropout: bool = True, dropconnect: bool = False):  # fmt: skip
        super().__init__()
        self.base = TaskLinear(n_tasks, in_features, hidden)
        self.mean1, self.mean2 = TaskLinear(n_tasks, hidden, hidden), TaskLinear(n_tasks, hidden, hidden)
        self.scale1, self.scale2 = TaskLinear(n_tasks, hidden, hidden), TaskLinear(n_tasks, hidden, hidden)
        self.dropout = float(dropout) if use_dropout else 0.0
        self.dropconnect = dropconnect
        self.sample_latent = sample_latent
        self.n_tasks = n_tasks

    def _drop(self, x: torch.Tensor) -> torch.Tensor:
        if self.dropconnect or self.dropout == 0:
            return x
        return F.dropout(x, self.dropout, training=self.training)

    def _layer(self, layer: TaskLinear, x: torch.Tensor) -> torch.Tensor:
        """``layer(x)``, with a fresh DropConnect mask on its weight when that noise is on."""
        if not (self.dropconnect and self.dropout > 0 and self.training):
            return layer(x)
        keep = 1.0 - self.dropout
        mask = torch.bernoulli(torch.full_like(layer.weight, keep))
        return layer(x, layer.weight * mask / keep)

    def forward(self, shared: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``shared`` (..., in) -> z, mu, sigma, each (..., D, hidden)."""
        x = shared.unsqueeze(-2).expand(*shared.shape[:-1], self.n_tasks, shared.shape[-1])
        h = F.leaky_relu(self._layer(self.base, self._drop(x)))
        mu = self._layer(self.mean2, self._drop(F.leaky_relu(self._layer(self.mean1, self._drop(h)))))
        mu = F.leaky_relu(mu)
        sigma = F.softplus(self._layer(self.scale2, self._drop(F.leaky_relu(self._layer(self.scale1, self._drop(h))))))
        z = mu + sigma * torch.randn_like(sigma) if self.sample_latent else mu
        return z, mu, sigma

    def l2_parameters(self) -> list[torch.Tensor]:
        """The weight matrices (no biases): what the official code's L2 penalty covers."""
        return [layer.weight for layer in (self.base, self.mean1, self.mean2, self.scale1, self.scale2)]


def transfer_mask(n_steps: int, n_tasks: int, mode: str) -> torch.Tensor:
    """Which (target step t, source step i, target task d, source task j) pairs may transfer.

    Returns
    -------
    Tensor of bool, shape (T, T, D, D)
        ``mask[t, i, d, j]``: whether task j at step i may send to task d at step t.
    """
    _check_choice(mode, TRANSFER_MODES, "transfer")
    t = torch.arange(n_steps)
    if mode in ("full", "intra-task"):
        steps = t[None, :] <= t[:, None]  # i <= t: past and present to present
    elif mode == "same-step":
        steps = t[None, :] == t[:, None]
    elif mode == "future-to-past":
        steps = t[None, :] >= t[:, None]
    elif mode == "all-steps":
        steps = torch.ones(n_steps, n_steps, dtype=torch.bool)
    else:
        steps = torch.zeros(n_steps, n_steps, dtype=torch.bool)
    tasks = torch.eye(n_tasks, dtype=torch.bool) if mode == "intra-task" else torch.ones(n_tasks, n_tasks, dtype=torch.bool)
    return steps[:, :, None, None] & tasks[None, None, :, :]


class UncertaintyTransfer(nn.Module):
    """Asymmetric transfer from reliable to uncertain features (Eqs. 1, 2 and 9).

    ``alpha[t, i, d, j] = F_{j,d}(f_d(t), sigma2_d(t), f_j(i), sigma2_j(i))``: a
    per-(target, source) MLP, 4H -> H (relu) -> H (relu) -> 1 (softplus). The
    first layer is split into a target part and a source part, summed by
    broadcasting, so the T x T x D x D pairs never materialise their 4H-wide inputs.
    ``C_d(t) = f_d(t) + G2_d(sum_j sum_i alpha[t,i,d,j] G1_j(f_j(i)))`` with
    ``G1_j``: linear + leaky ReLU + L2 normalisation and ``G2_d``: linear + leaky ReLU.

    Gradients (``stop_gradient=True``, the official code): both inputs of F are
    detached, and so is ``f_j`` inside ``G1_j(f_j)`` for every source j != d;
    task d's own ``f_d`` (j = d, intra-task transfer) keeps its gradient. The
    parameters of F, G1 and G2 are trained. ``stop_gradient=False``: only F's
    source inputs are detached (this package's earlier behaviour).

    Parameters
    ----------
    n_tasks, hidden : int
    use_variance : bool
        Feed the variances to F (False for TD-AMTL: zeros are fed instead).
    stop_gradient : bool
        Stop gradients on the transfer path as the official code does.
    """

    def __init__(self, n_tasks: int, hidden: int, use_variance: bool = True, stop_gradient: bool = True):
        super().__init__()
        d, h = n_tasks, hidden
        bound = 1.0 / math.sqrt(4 * h)
        self.w_target = nn.Parameter(torch.empty(d, d, 2 * h, h).uniform_(-bound, bound))
        self.w_source = nn.Parameter(torch.empty(d, d, 2 * h, h).uniform_(-bound, bound))
        self.b1 = nn.Parameter(torch.zeros(d, d, h))
        bound2 = 1.0 / math.sqrt(h)
        self.w2 = nn.Parameter(torch.empty(d, d, h, h).uniform_(-bound2, bound2))
        self.b2 = nn.Parameter(torch.zeros(d, d, h))
        self.w3 = nn.Parameter(torch.empty(d, d, h).uniform_(-bound2, bound2))
        self.b3 = nn.Parameter(torch.zeros(d, d))
        self.g1 = TaskLinear(d, h, h)
        self.g2 = TaskLinear(d, h, h)
        self.use_variance = use_variance
        self.stop_gradient = stop_gradient

    def weights(self, features: torch.Tensor, variance: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """Transfer weights alpha, shape (B, T, T, D, D) = (batch, target step, source step, target, source).

        ``features``, ``variance``: (B, T, D, H); ``allowed``: bool (B or 1, T, T, D, D).
        Disallowed pairs get exactly 0.
        """
        if not self.use_variance:
            variance = torch.zeros_like(variance)
        source_in = torch.cat([features, variance], dim=-1).detach()  # (B, T, D, 2H)
        target_in = source_in if self.stop_gradient else torch.cat([features, variance], dim=-1)
        # a[b,t,d,j,:] = target_in[b,t,d] @ w_target[d,j]; s[b,i,d,j,:] = source_in[b,i,j] @ w_source[d,j]
        a = torch.einsum("btdk,djkh->btdjh", target_in, self.w_target)
        s = torch.einsum("bijk,djkh->bidjh", source_in, self.w_source)
        hidden = F.relu(a[:, :, None] + s[:, None, :] + self.b1)  # (B, T, T, D, D, H)
        hidden = F.relu(torch.einsum("btidjh,djhk->btidjk", hidden, self.w2) + self.b2)
        alpha = F.softplus(torch.einsum("btidjh,djh->btidj", hidden, self.w3) + self.b3)
        return alpha * allowed.to(alpha.dtype)

    def combine(self, features: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """Combined features C (B, T, D, H) from features (B, T, D, H) and alpha (B, T, T, D, D) (Eq. 9)."""
        shared = self._g1(features)  # G1_j(f_j(i)): (B, T, D, H)
        if self.stop_gradient:  # other tasks' features arrive detached, the task's own keep their gradient
            own = torch.eye(alpha.shape[-1], dtype=torch.bool, device=alpha.device)
            received = (torch.einsum("btidj,bijh->btdh", alpha * ~own, self._g1(features.detach()))
                        + torch.einsum("btidj,bijh->btdh", alpha * own, shared))  # fmt: skip
        else:
            received = torch.einsum("btidj,bijh->btdh", alpha, shared)
        return features + F.leaky_relu(self.g2(received))

    def _g1(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(F.leaky_relu(self.g1(features)), dim=-1)


def mc_variance(sample_fn, n_samples: int) -> torch.Tensor:
    """Variance over ``n_samples`` stochastic evaluations of ``sample_fn()`` (no gradient).

    The population variance ``mean((z - mean(z))^2)`` over the samples, elementwise.
    """
    with torch.no_grad():
        draws = torch.stack([sample_fn() for _ in range(n_samples)])
    return draws.var(dim=0, unbiased=False)


class TPAMTL(nn.Module):
    """Temporal Probabilistic Asymmetric Multi-Task Learning (TP-AMTL).

    Input ``x`` (B, T, F) with ``step_mask`` (B, T) (True = valid step):

    1. shared linear embedding without bias, ``v = x W_emb`` (Eq. 3);
    2. shared LSTM, ``r = RNN(v)`` (Eq. 4), dropout on its inputs and outputs
       with one mask per sequence (variational dropout);
    3. per-task probabilistic features ``f_d(t) ~ N(mu, sigma^2)`` (Eqs. 5-8);
    4. their variances from ``n_variance_samples`` extra MC passes (no gradient);
    5. transfer weights ``alpha`` and combined features ``C`` (Eq. 9) under the
       ``transfer`` mode's mask, sources restricted to valid steps;
    6. attention ``beta_d(t) = tanh(C_d(t) W_beta + b)`` (Eq. 10) and the logit
       ``mean_t(beta_d(t) * v(t)) W_o + b_o`` over valid steps (Eq. 11).

    Parameters
    ----------
    n_features : int
    n_tasks : int
    hidden : int
        Embedding, LSTM and feature width (8 in the official code).
    dropout : float
        Drop probability of the MC dropout layers (0.3 = keep 0.7).
    transfer : str
        One of :data:`TRANSFER_MODES` (see the module docstring).
    uncertainty : str
        One of :data:`UNCERTAINTY_MODES`.
    n_variance_samples : int
        MC passes used to estimate the feature variances fed to the transfer network.
    stop_gradient : bool
        Stop gradients on the transfer path as the official code (see
        :class:`UncertaintyTransfer`); False: the earlier, leakier behaviour.
    noise : {"dropout", "dropconnect"}
        Where the MC noise sits (see the module docstring).

    Attributes
    ----------
    last_details : dict
        After a forward pass with ``return_details=True``: ``alpha`` (B, T, T, D, D),
        ``variance`` (B, T, D, H), ``features``, ``combined`` (B, T, D, H).
    """

    mc_dropout = True

    def __init__(self, n_features: int, n_tasks: int, hidden: int = 8, dropout: float = 0.3,
                 transfer: str = "full", uncertainty: str = "both", n_variance_samples: int = 5,
                 stop_gradient: bool = True, noise: str = "dropout"):  # fmt: skip
        super().__init__()
        _check_positive_int(n_features, "n_features")
        _check_positive_int(n_tasks, "n_tasks")
        _check_positive_int(hidden, "hidden")
        _check_positive_int(n_variance_samples, "n_variance_samples")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.transfer = _check_choice(transfer, TRANSFER_MODES, "transfer")
        self.uncertainty = _check_choice(uncertainty, UNCERTAINTY_MODES, "uncertainty")
        self.noise = _check_choice(noise, NOISE_MODES, "noise")
        self.n_tasks, self.hidden, self.n_variance_samples = n_tasks, hidden, n_variance_samples
        epistemic = uncertainty in ("both", "epistemic")
        aleatoric = uncertainty in ("both", "aleatoric")
        self.dropout = dropout if epistemic else 0.0
        self.embed = nn.Linear(n_features, hidden, bias=False)
        self.rnn = nn.LSTM(hidden, hidden, batch_first=True)
        self.task_features = ProbabilisticTaskFeatures(n_tasks, hidden, hidden, dropout, aleatoric, epistemic,
                                                       dropconnect=noise == "dropconnect")  # fmt: skip
        self.transfer_net = UncertaintyTransfer(n_tasks, hidden, use_variance=uncertainty != "deterministic",
                                                stop_gradient=stop_gradient)  # fmt: skip
        self.attention = TaskLinear(n_tasks, hidden, hidden)
        self.output = TaskLinear(n_tasks, hidden, 1)
        self.last_details: dict = {}

    def _sequence_dropout(self, x: torch.Tensor) -> torch.Tensor:
        if self.dropout == 0 or not self.training:
            return x
        keep = torch.bernoulli(torch.full((x.shape[0], 1, x.shape[2]), 1 - self.dropout, device=x.device))
        return x * keep / (1 - self.dropout)

    def shared(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embedding v (Eq. 3) and dropped-out LSTM states r (Eq. 4), both (B, T, H).

        ``noise="dropconnect"`` drops the LSTM output only (the official
        code's variational output dropout); ``"dropout"`` its input too.
        """
        v = self.embed(x)
        r, _ = self.rnn(v if self.noise == "dropconnect" else self._sequence_dropout(v))
        return v, self._sequence_dropout(r)

    def l2_parameters(self) -> list[torch.Tensor]:
        """What the official code's L2 penalty covers: the embedding, LSTM and task-feature weights (no biases)."""
        lstm = [w for name, w in self.rnn.named_parameters() if name.startswith("weight")]
        return [self.embed.weight, *lstm, *self.task_features.l2_parameters()]

    def forward(self, x: torch.Tensor, step_mask: torch.Tensor | None = None, return_details: bool = False) -> torch.Tensor:
        """Logits (B, D) for ``x`` (B, T, F); ``step_mask`` (B, T) bool, default all valid."""
        if x.ndim != 3:
            raise ValueError(f"TPAMTL expects x of shape (batch, timesteps, features), got {tuple(x.shape)}")
        b, t, _ = x.shape
        valid = torch.ones(b, t, dtype=torch.bool, device=x.device) if step_mask is None else step_mask.bool()
        v, r = self.shared(x)
        features, _, _ = self.task_features(r)  # (B, T, D, H)
        if self.transfer == "none":
            combined = features
            alpha = features.new_zeros(b, t, t, self.n_tasks, self.n_tasks)
            variance = features.new_zeros(features.shape)
        else:
            variance = mc_variance(lambda: self.task_features(self.shared(x)[1])[0], self.n_variance_samples)
            allowed = transfer_mask(t, self.n_tasks, self.transfer).to(x.device)[None]
            allowed = allowed & valid[:, None, :, None, None] & valid[:, :, None, None, None]
            alpha = self.transfer_net.weights(features, variance, allowed)
            combined = self.transfer_net.combine(features, alpha)
        beta = torch.tanh(self.attention(combined))  # (B, T, D, H), Eq. 10
        weights = valid.to(v.dtype)[:, :, None, None]
        context = (beta * v[:, :, None, :] * weights).sum(1) / weights.sum(1).clamp(min=1)  # (B, D, H)
        logits = self.output(context).squeeze(-1)  # Eq. 11
        if return_details:
            self.last_details = {"alpha": alpha.detach(), "variance": variance.detach(),
                                 "features": features.detach(), "combined": combined.detach()}  # fmt: skip
        return logits


class PAMTL(nn.Module):
    """Probabilistic Asymmetric Multi-Task Learning (non-temporal, paper Eqs. 1-2).

    ``x`` (B, F) -> shared layer (linear + leaky ReLU, dropout) -> per-task
    probabilistic features ``z_d ~ N(mu_d, sigma_d^2)`` -> transfer between
    different tasks, ``C_d = z_d + G2_d(sum_{j != d} alpha_{j,d} G1_j(z_j))`` with
    ``alpha_{j,d} = F_{j,d}(z_j, z_d, sigma2_j, sigma2_d)`` (Eq. 1) -> one linear
    output per task.

    Parameters
    ----------
    n_features, n_tasks : int
    hidden : int
        Width of the shared layer and the latent features.
    dropout : float
    uncertainty : str
        One of :data:`UNCERTAINTY_MODES`.
    transfer : {"full", "none"}
        ``"none"`` drops the transfer (a probabilistic STL-like baseline with shared input layer).
    n_variance_samples : int
    stop_gradient : bool
        Stop gradients on the transfer path (see :class:`UncertaintyTransfer`).
    noise : {"dropout", "dropconnect"}
        Dropout on activations, or DropConnect on the task layers' weights
        (one mask per pass; the shared layer keeps activation dropout).
    """

    mc_dropout = True

    def __init__(self, n_features: int, n_tasks: int, hidden: int = 64, dropout: float = 0.3,
                 uncertainty: str = "both", transfer: str = "full", n_variance_samples: int = 5,
                 stop_gradient: bool = True, noise: str = "dropout"):  # fmt: skip
        super().__init__()
        _check_positive_int(n_features, "n_features")
        _check_positive_int(n_tasks, "n_tasks")
        _check_positive_int(hidden, "hidden")
        self.uncertainty = _check_choice(uncertainty, UNCERTAINTY_MODES, "uncertainty")
        self.transfer = _check_choice(transfer, ("full", "none"), "transfer")
        epistemic = uncertainty in ("both", "epistemic")
        aleatoric = uncertainty in ("both", "aleatoric")
        self.dropout = dropout if epistemic else 0.0
        self.n_tasks, self.n_variance_samples = n_tasks, n_variance_samples
        self.shared_layer = nn.Linear(n_features, hidden)
        dropconnect = _check_choice(noise, NOISE_MODES, "noise") == "dropconnect"
        self.task_features = ProbabilisticTaskFeatures(n_tasks, hidden, hidden, dropout, aleatoric, epistemic,
                                                       dropconnect=dropconnect)  # fmt: skip
        self.transfer_net = UncertaintyTransfer(n_tasks, hidden, use_variance=uncertainty != "deterministic",
                                                stop_gradient=stop_gradient)  # fmt: skip
        self.output = TaskLinear(n_tasks, hidden, 1)
        self.last_details: dict = {}

    def l2_parameters(self) -> list[torch.Tensor]:
        """The base network's weights (shared layer and task features, no biases), as for :class:`TPAMTL`."""
        return [self.shared_layer.weight, *self.task_features.l2_parameters()]

    def _shared(self, x: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.shared_layer(x))
        return F.dropout(h, self.dropout, training=self.training) if self.dropout > 0 else h

    def forward(self, x: torch.Tensor, step_mask: torch.Tensor | None = None, return_details: bool = False) -> torch.Tensor:
        """Logits (B, D) for ``x`` (B, F); ``step_mask`` is ignored (non-temporal)."""
        if x.ndim != 2:
            raise ValueError(f"PAMTL expects x of shape (batch, features), got {tuple(x.shape)}")
        z, _, _ = self.task_features(self._shared(x))  # (B, D, H)
        z = z[:, None]  # one "step"
        if self.transfer == "none":
            combined, alpha, variance = z, z.new_zeros(z.shape[0], 1, 1, self.n_tasks, self.n_tasks), torch.zeros_like(z)
        else:
            variance = mc_variance(lambda: self.task_features(self._shared(x))[0][:, None], self.n_variance_samples)
            allowed = ~torch.eye(self.n_tasks, dtype=torch.bool, device=x.device)[None, None, None]
            alpha = self.transfer_net.weights(z, variance, allowed)
            combined = self.transfer_net.combine(z, alpha)
        logits = self.output(combined[:, 0]).squeeze(-1)
        if return_details:
            self.last_details = {"alpha": alpha.detach()[:, 0, 0], "variance": variance.detach()[:, 0],
                                 "features": z.detach()[:, 0], "combined": combined.detach()[:, 0]}  # fmt: skip
        return logits


class LossBasedAMTL(nn.Module):
    """AMTL-Loss (paper Table 1 baseline): P-AMTL's structure with loss-based transfer weights.

    Like :class:`PAMTL`, but deterministic features and ``alpha_{j,d} =
    F_{j,d}(L_j, L_d)``: a small per-pair network (2 -> H -> 1, softplus) over
    the running average training losses of the source and target tasks
    (exponential moving average, updated by the training loop through
    :meth:`combine_task_losses`, which otherwise returns the plain sum).

    Parameters
    ----------
    n_features, n_tasks : int
    hidden : int
    dropout : float
    momentum : float
        Weight of the old value in the running loss average.
    """

    average_loss: torch.Tensor  # a buffer (register_buffer)

    def __init__(self, n_features: int, n_tasks: int, hidden: int = 64, dropout: float = 0.3, momentum: float = 0.9):
        super().__init__()
        _check_positive_int(n_features, "n_features")
        _check_positive_int(n_tasks, "n_tasks")
        self.n_tasks, self.momentum, self.dropout = n_tasks, momentum, dropout
        self.shared_layer = nn.Linear(n_features, hidden)
        self.task_features = ProbabilisticTaskFeatures(n_tasks, hidden, hidden, dropout, sample_latent=False)
        self.loss_w1 = nn.Parameter(torch.randn(n_tasks, n_tasks, 2, hidden) * 0.5)
        self.loss_b1 = nn.Parameter(torch.zeros(n_tasks, n_tasks, hidden))
        self.loss_w2 = nn.Parameter(torch.randn(n_tasks, n_tasks, hidden) / math.sqrt(hidden))
        self.g1 = TaskLinear(n_tasks, hidden, hidden)
        self.g2 = TaskLinear(n_tasks, hidden, hidden)
        self.output = TaskLinear(n_tasks, hidden, 1)
        self.register_buffer("average_loss", torch.full((n_tasks,), math.log(2.0)))

    def transfer_weights(self) -> torch.Tensor:
        """alpha (D, D) = F_{j,d}(L_j, L_d) as ``alpha[d, j]`` (target d, source j), zero diagonal."""
        loss = self.average_loss
        pair = torch.stack([loss[None, :].expand(self.n_tasks, -1), loss[:, None].expand(-1, self.n_tasks)], -1)
        hidden = F.relu(torch.einsum("djk,djkh->djh", pair, self.loss_w1) + self.loss_b1)
        alpha = F.softplus((hidden * self.loss_w2).sum(-1))
        return alpha * (1 - torch.eye(self.n_tasks, device=alpha.device))

    def forward(self, x: torch.Tensor, step_mask: torch.Tensor | None = None) -> torch.Tensor:
        if x.ndim != 2:
            raise ValueError(f"LossBasedAMTL expects x of shape (batch, features), got {tuple(x.shape)}")
        h = F.dropout(F.leaky_relu(self.shared_layer(x)), self.dropout, training=self.training)
        z, _, _ = self.task_features(h)  # (B, D, H)
        shared = F.normalize(F.leaky_relu(self.g1(z)), dim=-1)
        received = torch.einsum("dj,bjh->bdh", self.transfer_weights(), shared)
        combined = z + F.leaky_relu(self.g2(received))
        return self.output(combined).squeeze(-1)

    def combine_task_losses(self, losses: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Update the running losses of the tasks present in the batch; return the plain sum."""
        with torch.no_grad():
            new = self.momentum * self.average_loss + (1 - self.momentum) * losses.detach()
            self.average_loss.copy_(torch.where(present, new, self.average_loss))
        return (losses * present.to(losses.dtype)).sum()
