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

Speed (``stack_passes``, default True; same numbers bit for bit)
    The 5 variance passes of a forward pass, and the features of all the MC
    passes of :meth:`TPAMTL.mc_logits` / :meth:`PAMTL.mc_logits` (the
    validation loss and test predictions), run stacked along the batch: each
    pass's random draws are taken first, in the order one pass at a time takes
    them (:class:`PassNoise`, :class:`FeatureNoise`), then applied to the
    stacked batch. Where torch's kernels would round differently (one row, a
    width not a multiple of 8, unaligned sizes, DropConnect) the passes run one
    at a time. ``benchmarks/amtl_speed.py`` times both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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

    def empty_output(self, lead: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """An uninitialised (*lead, D, out) tensor laid out in memory as :meth:`forward`'s output (task-major).

        Noise drawn into it (``bernoulli_``, ``normal_``) is the noise
        ``torch.nn.functional.dropout`` or ``torch.randn_like`` draw for a tensor
        of that layout: torch fills a tensor in its memory order.
        """
        d, out = self.weight.shape[0], self.weight.shape[-1]
        flat = torch.empty((d, math.prod(lead), out), dtype=like.dtype, device=like.device)
        return flat.transpose(0, 1).reshape(*lead, d, out)


def _cat_or_none(parts: list[torch.Tensor | None]) -> torch.Tensor | None:
    """The tensors concatenated along the first dimension, or None where the first is None (no such draw)."""
    return None if parts[0] is None else torch.cat(parts)  # type: ignore[arg-type]


@dataclass(frozen=True)
class FeatureNoise:
    """The random draws of one :class:`ProbabilisticTaskFeatures` pass.

    Attributes
    ----------
    masks : tuple of five Tensor or None
        For the layers base, mean1, mean2, scale1, scale2, in that order (the
        order the pass uses them): with dropout the scaled keep mask of the
        layer's input (shape of that input, (..., D, in)); with DropConnect the
        0/1 mask of its weight (D, in, out); None where no noise is drawn.
    epsilon : Tensor or None
        Standard normal draws for ``z = mu + sigma * epsilon`` (..., D, hidden);
        None when ``z = mu``.
    """

    masks: tuple[torch.Tensor | None, ...]
    epsilon: torch.Tensor | None

    @staticmethod
    def stack(noises: list[FeatureNoise]) -> FeatureNoise:
        """Several passes' dropout draws concatenated along the batch (first) dimension.

        Row masks only: DropConnect masks are per pass, not per row, and cannot be stacked.
        """
        masks = tuple(_cat_or_none([n.masks[k] for n in noises]) for k in range(len(noises[0].masks)))
        return FeatureNoise(masks, _cat_or_none([n.epsilon for n in noises]))


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

    def draw_noise(self, shared: torch.Tensor) -> FeatureNoise:
        """The random draws of one forward pass on ``shared`` (..., in), in the order the pass uses them.

        Drawing them first and computing afterwards gives the numbers of
        drawing each just before its use: the five masks (see
        :class:`FeatureNoise`), then the latent noise. Only the shape, dtype,
        device and memory layout of ``shared`` matter (an empty tensor will
        do): torch fills a dropout mask in the memory order of the tensor it
        drops, as ``torch.empty_like`` lays it out.
        """
        layers = (self.base, self.mean1, self.mean2, self.scale1, self.scale2)
        lead = tuple(shared.shape[:-1])
        masks: tuple[torch.Tensor | None, ...] = (None,) * len(layers)
        keep = 1.0 - self.dropout
        if self.dropout > 0 and self.training and self.dropconnect:
            masks = tuple(torch.bernoulli(torch.full_like(layer.weight, keep)) for layer in layers)
        elif self.dropout > 0 and self.training and shared.numel() > 0:
            # as F.dropout: empty_like(input).bernoulli_(keep).div_(keep); the base layer's input is
            # expanded from ``shared``, the others are outputs of task layers
            x_mask = torch.empty_like(shared.unsqueeze(-2).expand(*lead, self.n_tasks, shared.shape[-1]))
            h_masks = [layer.empty_output(lead, shared) for layer in (self.base, self.mean1, self.base, self.scale1)]
            masks = tuple(mask.bernoulli_(keep).div_(keep) for mask in (x_mask, *h_masks))
        if not self.sample_latent:
            return FeatureNoise(masks, None)
        return FeatureNoise(masks, self.scale2.empty_output(lead, shared).normal_())

    def _layer(self, layer: TaskLinear, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """``layer(x)`` under one drawn mask: on its input (dropout) or on its weight (DropConnect)."""
        if mask is None:
            return layer(x)
        if self.dropconnect:
            return layer(x, layer.weight * mask / (1.0 - self.dropout))
        return layer(x * mask)

    def forward(self, shared: torch.Tensor, noise: FeatureNoise | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
        """``shared`` (..., in) -> z, mu, sigma, each (..., D, hidden).

        ``noise``: the pass's draws (:meth:`draw_noise`); default: drawn now.
        """
        x = shared.unsqueeze(-2).expand(*shared.shape[:-1], self.n_tasks, shared.shape[-1])
        if noise is None:
            noise = self.draw_noise(shared)
        base, mean1, mean2, scale1, scale2 = noise.masks
        h = F.leaky_relu(self._layer(self.base, x, base))
        mu = F.leaky_relu(self._layer(self.mean2, F.leaky_relu(self._layer(self.mean1, h, mean1)), mean2))
        sigma = F.softplus(self._layer(self.scale2, F.leaky_relu(self._layer(self.scale1, h, scale1)), scale2))
        z = mu + sigma * noise.epsilon if noise.epsilon is not None else mu
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


#: Stacked passes run only when one pass's features (B, T, D, H) hold a multiple of this many numbers.
STACK_ALIGNMENT = 32

#: Upper bound on the elements of the stacked features (passes x B x T x D x H) of one group of MC passes.
STACKED_ELEMENTS = 2**22


def _stacking_exact(elements: int, hidden: int) -> bool:
    """Whether a pass whose features hold ``elements`` numbers of width ``hidden`` computes the same bits stacked
    with other passes along the batch as alone (:meth:`TPAMTL._stackable`).

    Every number must fall on the same code path in both: torch's elementwise
    kernels (softplus) run 2 x 16 floats a step (AVX-512) and the rest by
    scalar code whose last bits may differ, so a pass must hold a multiple of
    :data:`STACK_ALIGNMENT` numbers and the width must be a multiple of 8
    (widths 3 and 5 gave other last bits in a sweep of widths made when this
    was written; every catalogued model has 8 or 16, and
    ``tests/nn/test_amtl_stacked.py`` checks 8 and 16). With more than one thread torch
    splits a large tensor between threads at boundaries that need not be
    aligned, so stacking is exact on one thread only (as ``compare`` trains
    unless ``--threads`` says otherwise).
    """
    return elements % STACK_ALIGNMENT == 0 and hidden % 8 == 0 and torch.get_num_threads() == 1


@dataclass(frozen=True)
class PassNoise:
    """The random draws of one stochastic :class:`TPAMTL` pass (:meth:`TPAMTL.draw_noise`).

    Attributes
    ----------
    input_keep, output_keep : Tensor or None
        0/1 masks (B, 1, H) on the LSTM's input and output, one per sequence;
        None where there is no such dropout.
    features : FeatureNoise
        The task features' draws.
    """

    input_keep: torch.Tensor | None
    output_keep: torch.Tensor | None
    features: FeatureNoise

    @staticmethod
    def stack(noises: list[PassNoise]) -> PassNoise:
        """Several passes' draws concatenated along the batch, to run them as one batch (dropout noise only)."""
        return PassNoise(_cat_or_none([n.input_keep for n in noises]), _cat_or_none([n.output_keep for n in noises]),
                         FeatureNoise.stack([n.features for n in noises]))  # fmt: skip


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
        #: Run MC passes stacked along the batch where the numbers stay identical (False: one pass at a time).
        self.stack_passes = True

    def draw_noise(self, b: int, t: int, like: torch.Tensor) -> PassNoise:
        """The random draws of one stochastic pass over ``b`` sequences of ``t`` steps, in the order it uses them.

        The LSTM's input mask (not with DropConnect), its output mask (one
        per sequence: variational dropout), then the task features' draws;
        ``like`` gives the dtype and device.
        """
        input_keep, output_keep = self._sequence_noise(b, like)
        # laid out as nn.LSTM(batch_first=True) returns its output: step-major (tests/nn/test_amtl_stacked.py checks it)
        lstm_output = torch.empty((t, b, self.hidden), dtype=like.dtype, device=like.device).transpose(0, 1)
        return PassNoise(input_keep, output_keep, self.task_features.draw_noise(lstm_output))

    def _sequence_noise(self, b: int, like: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The 0/1 masks (B, 1, H) on the LSTM's input (not with DropConnect) and output, in that order."""
        def keep() -> torch.Tensor | None:
            if self.dropout == 0 or not self.training:
                return None
            return torch.bernoulli(torch.full((b, 1, self.hidden), 1 - self.dropout, device=like.device))

        input_keep = None if self.noise == "dropconnect" else keep()
        return input_keep, keep()

    def _keep(self, x: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        return x if keep is None else x * keep / (1 - self.dropout)

    def _features(self, v: torch.Tensor, noise: PassNoise | None = None) -> torch.Tensor:
        """Task features f (B, T, D, H) (Eqs. 4-8) of embeddings ``v`` (B, T, H) in one stochastic pass.

        ``noise``: the pass's draws (:meth:`draw_noise`); several passes run as
        one when their ``v`` and noise are stacked along the batch. Default:
        drawn during the pass.
        """
        keeps = self._sequence_noise(v.shape[0], v) if noise is None else (noise.input_keep, noise.output_keep)
        return self.task_features(self._lstm(v, *keeps), None if noise is None else noise.features)[0]

    def _lstm(self, v: torch.Tensor, input_keep: torch.Tensor | None, output_keep: torch.Tensor | None) -> torch.Tensor:
        """LSTM states r (B, T, H) (Eq. 4) of embeddings ``v`` with the sequence dropout masks (None: no dropout there)."""
        r, _ = self.rnn(self._keep(v, input_keep))
        return self._keep(r, output_keep)

    def shared(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embedding v (Eq. 3) and dropped-out LSTM states r (Eq. 4), both (B, T, H).

        ``noise="dropconnect"`` drops the LSTM output only (the official
        code's variational output dropout); ``"dropout"`` its input too.
        """
        v = self.embed(x)
        return v, self._lstm(v, *self._sequence_noise(x.shape[0], v))

    def l2_parameters(self) -> list[torch.Tensor]:
        """What the official code's L2 penalty covers: the embedding, LSTM and task-feature weights (no biases)."""
        lstm = [w for name, w in self.rnn.named_parameters() if name.startswith("weight")]
        return [self.embed.weight, *lstm, *self.task_features.l2_parameters()]

    def _stackable(self, b: int, t: int) -> bool:
        """Whether passes over ``b`` sequences of ``t`` steps may run stacked along the batch with unchanged numbers.

        Not with DropConnect (its masks are per pass, not per row), not when
        ``stack_passes`` is off, not for one sequence (torch computes a one-row
        batch by another kernel, whose last bits differ), and only where
        :func:`_stacking_exact` holds (aligned sizes, one thread).
        """
        exact = _stacking_exact(b * t * self.n_tasks * self.hidden, self.hidden)
        return self.stack_passes and self.noise == "dropout" and b >= 2 and exact

    def _stacked_features(self, v: torch.Tensor, noises: list[PassNoise]) -> torch.Tensor:
        """Features (P, B, T, D, H) of P passes with ``noises`` over embeddings ``v`` (B, T, H)."""
        stacked = self._features(v.repeat(len(noises), 1, 1), PassNoise.stack(noises))
        return stacked.view(len(noises), *v.shape[:2], self.n_tasks, self.hidden)

    def _variance(self, v: torch.Tensor) -> torch.Tensor:
        """Variance of the features over ``n_variance_samples`` MC passes (step 4; no gradient)."""
        b, t = v.shape[:2]
        with torch.no_grad():
            if not self._stackable(b, t):
                return mc_variance(lambda: self._features(v), self.n_variance_samples)
            noises = [self.draw_noise(b, t, v) for _ in range(self.n_variance_samples)]
            return self._stacked_features(v, noises).var(dim=0, unbiased=False)

    def _head(self, v: torch.Tensor, features: torch.Tensor, variance: torch.Tensor | None,
              valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
        """Logits (B, D), alpha and combined features from the features and their variance (steps 5-6).

        ``variance`` None: no transfer (``transfer="none"``).
        """
        b, t = valid.shape
        if variance is None:
            combined, alpha = features, features.new_zeros(b, t, t, self.n_tasks, self.n_tasks)
        else:
            allowed = transfer_mask(t, self.n_tasks, self.transfer).to(valid.device)[None]
            allowed = allowed & valid[:, None, :, None, None] & valid[:, :, None, None, None]
            alpha = self.transfer_net.weights(features, variance, allowed)
            combined = self.transfer_net.combine(features, alpha)
        beta = torch.tanh(self.attention(combined))  # (B, T, D, H), Eq. 10
        weights = valid.to(v.dtype)[:, :, None, None]
        context = (beta * v[:, :, None, :] * weights).sum(1) / weights.sum(1).clamp(min=1)  # (B, D, H)
        return self.output(context).squeeze(-1), alpha, combined  # Eq. 11

    def _valid(self, x: torch.Tensor, step_mask: torch.Tensor | None) -> torch.Tensor:
        if x.ndim != 3:
            raise ValueError(f"TPAMTL expects x of shape (batch, timesteps, features), got {tuple(x.shape)}")
        b, t, _ = x.shape
        return torch.ones(b, t, dtype=torch.bool, device=x.device) if step_mask is None else step_mask.bool()

    def forward(self, x: torch.Tensor, step_mask: torch.Tensor | None = None, return_details: bool = False) -> torch.Tensor:
        """Logits (B, D) for ``x`` (B, T, F); ``step_mask`` (B, T) bool, default all valid."""
        valid = self._valid(x, step_mask)
        v = self.embed(x)
        features = self._features(v)  # (B, T, D, H)
        variance = None if self.transfer == "none" else self._variance(v)
        logits, alpha, combined = self._head(v, features, variance, valid)
        if return_details:
            variance = features.new_zeros(features.shape) if variance is None else variance
            self.last_details = {"alpha": alpha.detach(), "variance": variance.detach(),
                                 "features": features.detach(), "combined": combined.detach()}  # fmt: skip
        return logits

    @torch.no_grad()
    def mc_logits(self, x: torch.Tensor, step_mask: torch.Tensor | None, passes: int) -> list[torch.Tensor]:
        """The logits (B, D) of ``passes`` calls of ``self(x, step_mask)`` in a row without gradient, bit for bit.

        The same random draws in the same order, so the same numbers (each
        tensor laid out in memory as the call returns it) and the same random
        state afterwards; but the passes' LSTM and task features, six passes
        each with the variance passes, run stacked along the batch: a few
        large operations instead of many small ones. The transfer and output
        layers run per pass: torch's products with one output column (the
        transfer weights' last layer, the output layer) change their last bits
        with the batch size. Groups of passes bound the memory (:data:`STACKED_ELEMENTS`).
        """
        valid = self._valid(x, step_mask)
        b, t = valid.shape
        if not self._stackable(b, t):
            return [self(x, step_mask) for _ in range(passes)]
        v = self.embed(x)
        sub = 1 if self.transfer == "none" else 1 + self.n_variance_samples  # sub-passes per pass
        group = max(1, STACKED_ELEMENTS // (sub * b * t * self.n_tasks * self.hidden))
        logits = []
        for start in range(0, passes, group):
            n = min(group, passes - start)
            draws = self._stacked_features(v, [self.draw_noise(b, t, v) for _ in range(n * sub)])
            draws = draws.view(n, sub, *draws.shape[1:])
            for pass_draws in draws:  # the transfer and output per pass: their products change bits with B
                variance = None if sub == 1 else pass_draws[1:].var(dim=0, unbiased=False)
                logits.append(self._head(v, pass_draws[0], variance, valid)[0])
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
        self.hidden = hidden
        #: Run MC passes stacked along the batch where the numbers stay identical (False: one pass at a time).
        self.stack_passes = True

    def l2_parameters(self) -> list[torch.Tensor]:
        """The base network's weights (shared layer and task features, no biases), as for :class:`TPAMTL`."""
        return [self.shared_layer.weight, *self.task_features.l2_parameters()]

    def _shared(self, x: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.shared_layer(x))
        return F.dropout(h, self.dropout, training=self.training) if self.dropout > 0 else h

    def _pass_noise(self, h: torch.Tensor) -> tuple[torch.Tensor | None, FeatureNoise]:
        """The draws of one pass on shared activations ``h`` (B, hidden): their dropout mask (as ``F.dropout``), then the task features'."""
        mask = None
        if self.dropout > 0 and self.training and h.numel() > 0:
            mask = torch.empty_like(h).bernoulli_(1 - self.dropout).div_(1 - self.dropout)
        return mask, self.task_features.draw_noise(h)

    def _stackable(self, b: int) -> bool:
        """As :meth:`TPAMTL._stackable`, for one step."""
        exact = _stacking_exact(b * self.n_tasks * self.hidden, self.hidden)
        return self.stack_passes and not self.task_features.dropconnect and b >= 2 and exact

    def _stacked_features(self, h: torch.Tensor, noises: list[tuple[torch.Tensor | None, FeatureNoise]]) -> torch.Tensor:
        """Features z (P, B, D, H) of P passes with ``noises`` on the shared activations ``h`` (B, hidden), run as one batch."""
        stacked = h.repeat(len(noises), 1)
        if noises[0][0] is not None:
            stacked = stacked * torch.cat([mask for mask, _ in noises])  # type: ignore[misc]
        z = self.task_features(stacked, FeatureNoise.stack([features for _, features in noises]))[0]
        return z.view(len(noises), h.shape[0], self.n_tasks, self.hidden)

    def _variance(self, x: torch.Tensor) -> torch.Tensor:
        """Variance (B, 1, D, H) of the features over ``n_variance_samples`` MC passes (no gradient)."""
        with torch.no_grad():
            if not self._stackable(x.shape[0]):
                return mc_variance(lambda: self.task_features(self._shared(x))[0][:, None], self.n_variance_samples)
            h = F.leaky_relu(self.shared_layer(x))
            draws = self._stacked_features(h, [self._pass_noise(h) for _ in range(self.n_variance_samples)])
            return draws[:, :, None].var(dim=0, unbiased=False)

    def _head(self, z: torch.Tensor, variance: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits (B, D), alpha and combined features from features z (B, 1, D, H) and their variance (None: no transfer)."""
        if variance is None:
            combined, alpha = z, z.new_zeros(z.shape[0], 1, 1, self.n_tasks, self.n_tasks)
        else:
            allowed = ~torch.eye(self.n_tasks, dtype=torch.bool, device=z.device)[None, None, None]
            alpha = self.transfer_net.weights(z, variance, allowed)
            combined = self.transfer_net.combine(z, alpha)
        return self.output(combined[:, 0]).squeeze(-1), alpha, combined

    def forward(self, x: torch.Tensor, step_mask: torch.Tensor | None = None, return_details: bool = False) -> torch.Tensor:
        """Logits (B, D) for ``x`` (B, F); ``step_mask`` is ignored (non-temporal)."""
        if x.ndim != 2:
            raise ValueError(f"PAMTL expects x of shape (batch, features), got {tuple(x.shape)}")
        z, _, _ = self.task_features(self._shared(x))  # (B, D, H)
        z = z[:, None]  # one "step"
        variance = None if self.transfer == "none" else self._variance(x)
        logits, alpha, combined = self._head(z, variance)
        if return_details:
            variance = torch.zeros_like(z) if variance is None else variance
            self.last_details = {"alpha": alpha.detach()[:, 0, 0], "variance": variance.detach()[:, 0],
                                 "features": z.detach()[:, 0], "combined": combined.detach()[:, 0]}  # fmt: skip
        return logits

    @torch.no_grad()
    def mc_logits(self, x: torch.Tensor, step_mask: torch.Tensor | None, passes: int) -> list[torch.Tensor]:
        """As :meth:`TPAMTL.mc_logits`: ``passes`` calls of ``self(x)`` without gradient, their features stacked."""
        if x.ndim != 2 or not self._stackable(x.shape[0]):
            return [self(x, step_mask) for _ in range(passes)]
        b = x.shape[0]
        h = F.leaky_relu(self.shared_layer(x))
        sub = 1 if self.transfer == "none" else 1 + self.n_variance_samples  # sub-passes per pass
        group = max(1, STACKED_ELEMENTS // (sub * b * self.n_tasks * self.hidden))
        logits = []
        for start in range(0, passes, group):
            n = min(group, passes - start)
            draws = self._stacked_features(h, [self._pass_noise(h) for _ in range(n * sub)])
            for pass_draws in draws.view(n, sub, *draws.shape[1:]):
                variance = None if sub == 1 else pass_draws[1:, :, None].var(dim=0, unbiased=False)
                logits.append(self._head(pass_draws[0][:, None], variance)[0])
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
