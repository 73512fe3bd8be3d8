"""Baselines of the TP-AMTL paper (Table 2) for multi-task clinical time series.

Every model maps ``x`` (B, T, F) and ``step_mask`` (B, T, True = valid step) to
``n_outputs`` logits. The same class is the STL model (``n_outputs=1``, one
model per task) and the hard-sharing MTL model (``n_outputs = n_tasks``: one
shared network, one output per task); :mod:`negtransfer.train.temporal` trains
either. Implemented:

* :class:`LSTMClassifier`: LSTM, last valid hidden state -> linear heads;
* :class:`AttentionLSTM`: the TP-AMTL official code's LSTM baseline: a
  two-layer LSTM of width 8 under TP-AMTL's attention output head (Eqs. 10-11
  of the TP-AMTL paper with the LSTM states in place of the combined features);
* :class:`TransformerClassifier`: Transformer encoder (Vaswani et al. 2017) with
  learned positions, masked mean pooling;
* :class:`SAnDClassifier`: SAnD (Song et al. 2018): causal self-attention and
  dense interpolation of the states into ``n_interpolation`` summary vectors;
* :class:`RETAIN`: reverse-time attention (Choi et al. 2016), visit-level alpha
  and variable-level beta attention;
* :class:`UncertaintyAwareRETAIN`: UA (Heo et al. 2018), RETAIN whose attention
  logits are Gaussian with learned, input-dependent variance, sampled in
  training (MC at test time);
* :class:`AdaCare`: AdaCare (Ma et al. 2020), simplified: dilated causal
  convolutions at several scales, squeeze-and-excitation recalibration of the
  input features and the convolution outputs, a GRU, the last valid state;
* :class:`AMTLLSTM`: AMTL (Lee, Yang & Hwang 2016) on a shared LSTM: each
  task's output weights are regularised towards a sparse combination of the
  other tasks' weights, ``w_d ~ sum_j B[j, d] w_j``, with the outgoing edges of
  task j penalised by ``(1 + mu L_j)``: low-loss tasks transfer more (a static,
  loss-based asymmetric graph, paper Figure 1a);
* :class:`MLPClassifier`: the MNIST-variation STL/MTL base network;
* AMTL-Loss (paper Table 1) is :class:`negtransfer.nn.amtl.LossBasedAMTL`.

MTL-RETAIN with Kendall et al.'s uncertainty weights (``retain-kendall``) is
:class:`RETAIN` trained with :class:`negtransfer.train.weighting.KendallWeighting`
(the model catalogue, :mod:`negtransfer.models.clinical`, pairs them).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _valid(x: torch.Tensor, step_mask: torch.Tensor | None) -> torch.Tensor:
    if step_mask is None:
        return torch.ones(x.shape[0], x.shape[1], dtype=torch.bool, device=x.device)
    return step_mask.bool()


def _check_3d(x: torch.Tensor, name: str) -> None:
    if x.ndim != 3:
        raise ValueError(f"{name} expects x of shape (batch, timesteps, features), got {tuple(x.shape)}")


class LSTMClassifier(nn.Module):
    """LSTM over the embedded steps; the hidden state at each record's last valid step feeds the heads.

    Parameters
    ----------
    n_features, n_outputs : int
    hidden : int
    dropout : float
        Dropout on the final state.
    """

    def __init__(self, n_features: int, n_outputs: int, hidden: int = 16, dropout: float = 0.3):
        super().__init__()
        self.embed = nn.Linear(n_features, hidden, bias=False)
        self.rnn = nn.LSTM(hidden, hidden, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, n_outputs)

    def forward(self, x: torch.Tensor, step_mask: torch.Tensor | None = None) -> torch.Tensor:
        _check_3d(x, "LSTMClassifier")
        valid = _valid(x, step_mask)
        states, _ = self.rnn(self.embed(x))
        last = (valid.sum(1) - 1).clamp(min=0)
        final = states[torch.arange(x.shape[0], device=x.device), last]
        return self.head(self.drop(final))


class AttentionLSTM(nn.Module):
    """The TP-AMTL official code's (MTL- and STL-) LSTM baseline.

    ``v = x W_emb`` (no bias), ``r = LSTM(v)`` with ``n_layers`` layers,
    ``beta(t) = tanh(r(t) W_beta + b)`` and one logit per output from
    ``mean_t(beta(t) * v(t))`` over the valid steps: the attention head of
    TP-AMTL (Nam et al. 2021, Eqs. 10-11) on the shared LSTM states, shared by
    all outputs. No dropout (the official baseline keeps every unit).
    ``l2_parameters`` are the weight matrices (the official code's L2 covers
    every kernel, no bias).

    Parameters
    ----------
    n_features, n_outputs : int
    hidden : int
        8 in the official code.
    n_layers : int
        2 in the official code.
    """

    def __init__(self, n_features: int, n_outputs: int, hidden: int = 8, n_layers: int = 2):
        super().__init__()
        self.embed = nn.Linear(n_features, hidden, bias=False)
        self.rnn = nn.LSTM(hidden, hidden, num_layers=n_layers, batch_first=True)
        self.attention = nn.Linear(hidden, hidden)
        self.head = nn.Linear(hidden, n_outputs)

    def forward(self, x: torch.Tensor, step_mask: torch.Tensor | None = None) -> torch.Tensor:
        _check_3d(x, "AttentionLSTM")
        weights = _valid(x, step_mask).to(x.dtype)[:, :, None]
        v = self.embed(x)
        states, _ = self.rnn(v)
        beta = torch.tanh(self.attention(states))
        context = (beta * v * weights).sum(1) / weights.sum(1).clamp(min=1)
        return self.head(context)

    def l2_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if "weight" in name]


class TransformerClassifier(nn.Module):
    """Transformer encoder over the steps (padding masked), masked mean pooling, linear heads.

    Parameters
    ----------
    n_features, n_outputs : int
    hidden : int
        Model width (divisible by ``n_heads``).
    n_heads, n_layers : int
    max_steps : int
        Length of the learned position table.
    dropout : float
    causal : bool
        Let step t attend only to steps <= t.
    """

    def __init__(self, n_features: int, n_outputs: int, hidden: int = 16, n_heads: int = 2, n_layers: int = 1,
                 max_steps: int = 512, dropout: float = 0.1, causal: bool = False):  # fmt: skip
        super().__init__()
        if hidden % n_heads:
            raise ValueError(f"hidden ({hidden}) must be divisible by n_heads ({n_heads})")
        self.embed = nn.Linear(n_features, hidden)
        self.position = nn.Parameter(torch.randn(max_steps, hidden) * 0.02)
        layer = nn.TransformerEncoderLayer(hidden, n_heads, dim_feedforward=2 * hidden, dropout=dropout,
                                           batch_first=True)  # fmt: skip
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.head = nn.Linear(hidden, n_outputs)
        self.causal = causal
        self.max_steps = max_steps

    def encode(self, x: torch.Tensor, step_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        _check_3d(x, type(self).__name__)
        if x.shape[1] > self.max_steps:
            raise ValueError(f"{x.shape[1]} timesteps but max_steps={self.max_steps}; pass a larger max_steps")
        valid = _valid(x, step_mask)
        h = self.embed(x) + self.position[: x.shape[1]]
        attn_mask = None
        if self.causal:
            t = x.shape[1]
            attn_mask = torch.triu(torch.ones(t, t, dtype=torch.bool, device=x.device), diagonal=1)
        return self.encoder(h, mask=attn_mask, src_key_padding_mask=~valid), valid

    def forward(self, x: torch.Tensor, step_mask: torch.Tensor | None = None) -> torch.Tensor:
        states, valid = self.encode(x, step_mask)
        w = valid.to(states.dtype)[..., None]
        return self.head((states * w).sum(1) / w.sum(1).clamp(min=1))


class SAnDClassifier(TransformerClassifier):
    """SAnD (Song et al. 2018): causal self-attention, then dense interpolation.

    Dense interpolation: the valid states are summarised into ``n_interpolation``
    vectors ``u_m = sum_t (1 - |s_t - m| / M)^2 h_t`` with ``s_t = M t / L``
    (L = the record's length), concatenated and fed to the heads.
    """

    def __init__(self, n_features: int, n_outputs: int, hidden: int = 16, n_heads: int = 2, n_layers: int = 1,
                 max_steps: int = 512, dropout: float = 0.1, n_interpolation: int = 4):  # fmt: skip
        super().__init__(n_features, n_outputs, hidden, n_heads, n_layers, max_steps, dropout, causal=True)
        self.n_interpolation = n_interpolation
        self.head = nn.Linear(hidden * n_interpolation, n_outputs)

    def forward(self, x: torch.Tensor, step_mask: torch.Tensor | None = None) -> torch.Tensor:
        states, valid = self.encode(x, step_mask)
        m = self.n_interpolation
        lengths = valid.sum(1, keepdim=True).clamp(min=1).to(states.dtype)  # (B, 1)
        t = torch.arange(1, x.shape[1] + 1, device=x.device, dtype=states.dtype)[None]
        s = m * t / lengths  # (B, T)
        centres = torch.arange(1, m + 1, device=x.device, dtype=states.dtype)
        w = (1 - (s[:, :, None] - centres).abs() / m).clamp(min=0) ** 2 * valid[..., None]  # (B, T, M)
        u = torch.einsum("btm,bth->bmh", w, states)
        return self.head(u.flatten(1))


class RETAIN(nn.Module):
    """RETAIN (Choi et al. 2016): two reverse-time GRUs give step attention alpha and variable attention beta.

    ``v_t = W_emb x_t``; ``g, h = GRU_a(reversed v), GRU_b(reversed v)``;
    ``alpha = softmax_t(w_a . g_t)`` over valid steps; ``beta_t = tanh(W_b h_t)``;
    ``c = sum_t alpha_t beta_t * v_t``; logits ``= W_o c + b``.
    """

    def __init__(self, n_features: int, n_outputs: int, hidden: int = 16, dropout: float = 0.3):
        super().__init__()
        self.embed = nn.Linear(n_features, hidden, bias=False)
        self.gru_alpha = nn.GRU(hidden, hidden, batch_first=True)
        self.gru_beta = nn.GRU(hidden, hidden, batch_first=True)
        self.alpha_out = nn.Linear(hidden, 1)
        self.beta_out = nn.Linear(hidden, hidden)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, n_outputs)

    def attention_logits(self, g: torch.Tensor) -> torch.Tensor:
        return self.alpha_out(g).squeeze(-1)

    def forward(self, x: torch.Tensor, step_mask: torch.Tensor | None = None) -> torch.Tensor:
        _check_3d(x, type(self).__name__)
        valid = _valid(x, step_mask)
        v = self.embed(x)
        # Reverse each record within its own length, so the GRUs start from the latest valid step.
        lengths = valid.sum(1)
        idx = (lengths[:, None] - 1 - torch.arange(x.shape[1], device=x.device)[None]).clamp(min=0)
        reversed_v = torch.gather(v, 1, idx[..., None].expand_as(v)) * valid[..., None]
        g, _ = self.gru_alpha(reversed_v)
        h, _ = self.gru_beta(reversed_v)
        g = torch.gather(g, 1, idx[..., None].expand_as(g))  # back to forward time
        h = torch.gather(h, 1, idx[..., None].expand_as(h))
        e = self.attention_logits(g).masked_fill(~valid, float("-inf"))
        alpha = torch.softmax(e, dim=1)
        beta = torch.tanh(self.beta_out(h))
        context = (alpha[..., None] * beta * v).sum(1)
        return self.head(self.drop(context))


class UncertaintyAwareRETAIN(RETAIN):
    """UA (Heo et al. 2018): RETAIN with Gaussian attention logits of learned, input-dependent variance.

    ``e_t ~ N(mu(g_t), softplus(s(g_t))^2)``, sampled by reparameterisation in
    training and at test time (``mc_dropout = True``: average several passes).
    """

    mc_dropout = True

    def __init__(self, n_features: int, n_outputs: int, hidden: int = 16, dropout: float = 0.3):
        super().__init__(n_features, n_outputs, hidden, dropout)
        self.alpha_scale = nn.Linear(hidden, 1)

    def attention_logits(self, g: torch.Tensor) -> torch.Tensor:
        mu = self.alpha_out(g).squeeze(-1)
        if not self.training:
            return mu
        scale = F.softplus(self.alpha_scale(g)).squeeze(-1)
        return mu + scale * torch.randn_like(scale)


class MLPClassifier(nn.Module):
    """A shared MLP with one logit per output (the MNIST-variation STL / MTL base network).

    Parameters
    ----------
    n_features, n_outputs : int
    hidden : int
    n_layers : int
        Hidden layers.
    dropout : float
    """

    def __init__(self, n_features: int, n_outputs: int, hidden: int = 64, n_layers: int = 1, dropout: float = 0.3):
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features
        for _ in range(n_layers):
            layers += [nn.Linear(width, hidden), nn.LeakyReLU(), nn.Dropout(dropout)]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, n_outputs)

    def forward(self, x: torch.Tensor, step_mask: torch.Tensor | None = None) -> torch.Tensor:
        if x.ndim != 2:
            raise ValueError(f"MLPClassifier expects x of shape (batch, features), got {tuple(x.shape)}")
        return self.head(self.body(x))



class AdaCare(nn.Module):
    """AdaCare (Ma et al. 2020), simplified: multi-scale dilated convolutions with feature recalibration.

    ``x`` -> squeeze-and-excitation weights over the input features (from the
    mean over valid steps) -> causal 1-D convolutions with dilations 1, 3 and 5
    (kernel 2) -> squeeze-and-excitation over the concatenated channels -> GRU
    -> state at the last valid step -> linear heads.

    Parameters
    ----------
    n_features, n_outputs : int
    hidden : int
        Channels per dilation and GRU width.
    dilations : tuple of int
    dropout : float
    """

    def __init__(self, n_features: int, n_outputs: int, hidden: int = 16, dilations: tuple = (1, 3, 5),
                 dropout: float = 0.3):  # fmt: skip
        super().__init__()
        self.dilations = tuple(dilations)
        self.convs = nn.ModuleList(nn.Conv1d(n_features, hidden, kernel_size=2, dilation=d) for d in self.dilations)
        self.input_excite = nn.Sequential(nn.Linear(n_features, max(n_features // 2, 1)), nn.ReLU(),
                                          nn.Linear(max(n_features // 2, 1), n_features), nn.Sigmoid())  # fmt: skip
        width = hidden * len(self.dilations)
        self.conv_excite = nn.Sequential(nn.Linear(width, max(width // 4, 1)), nn.ReLU(),
                                         nn.Linear(max(width // 4, 1), width), nn.Sigmoid())  # fmt: skip
        self.rnn = nn.GRU(width + n_features, hidden, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, n_outputs)

    def forward(self, x: torch.Tensor, step_mask: torch.Tensor | None = None) -> torch.Tensor:
        _check_3d(x, "AdaCare")
        valid = _valid(x, step_mask)
        w = valid.to(x.dtype)[..., None]
        x = x * w
        x = x * self.input_excite((x * w).sum(1) / w.sum(1).clamp(min=1))[:, None, :]
        seq = x.transpose(1, 2)  # (B, F, T)
        outs = [F.relu(conv(F.pad(seq, (d, 0)))) for conv, d in zip(self.convs, self.dilations, strict=True)]  # causal
        conv = torch.cat(outs, dim=1).transpose(1, 2)  # (B, T, C)
        conv = conv * self.conv_excite((conv * w).sum(1) / w.sum(1).clamp(min=1))[:, None, :]
        states, _ = self.rnn(torch.cat([conv, x], dim=-1))
        last = (valid.sum(1) - 1).clamp(min=0)
        return self.head(self.drop(states[torch.arange(x.shape[0], device=x.device), last]))


class AMTLLSTM(nn.Module):
    """AMTL-LSTM: loss-based asymmetric transfer between task output weights (Lee, Yang & Hwang 2016).

    A shared LSTM (as :class:`LSTMClassifier`) gives the final state h; task d's
    logit is ``h . w_d + b_d``. The training loop calls
    :meth:`combine_task_losses`, which returns

    ``sum_d L_d + sum_j (1 + mu * L_j) * lam * ||B[j, :]||_1 + gamma * ||W - W B||_F^2``

    with ``W`` (H, D) the output weights, ``B`` (D, D) non-negative transfer
    weights with a zero diagonal (``B[j, d]``: from task j to task d) and the
    task losses ``L_j`` detached in the asymmetry term, so tasks with a high loss
    are pushed to send less.

    Parameters
    ----------
    n_features, n_outputs : int
    hidden : int
    dropout : float
    mu, lam, gamma : float
        Loss-asymmetry strength, sparsity of B and reconstruction weight.
    """

    def __init__(self, n_features: int, n_outputs: int, hidden: int = 16, dropout: float = 0.3,
                 mu: float = 1.0, lam: float = 1e-3, gamma: float = 1e-2):  # fmt: skip
        super().__init__()
        self.embed = nn.Linear(n_features, hidden, bias=False)
        self.rnn = nn.LSTM(hidden, hidden, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, n_outputs)
        self.transfer_logits = nn.Parameter(torch.full((n_outputs, n_outputs), -2.0))
        self.mu, self.lam, self.gamma = mu, lam, gamma

    def transfer_weights(self) -> torch.Tensor:
        """B (D, D): non-negative, zero diagonal; ``B[j, d]`` is the transfer from task j to task d."""
        d = self.transfer_logits.shape[0]
        return F.softplus(self.transfer_logits) * (1 - torch.eye(d, device=self.transfer_logits.device))

    def forward(self, x: torch.Tensor, step_mask: torch.Tensor | None = None) -> torch.Tensor:
        _check_3d(x, "AMTLLSTM")
        valid = _valid(x, step_mask)
        states, _ = self.rnn(self.embed(x))
        last = (valid.sum(1) - 1).clamp(min=0)
        return self.head(self.drop(states[torch.arange(x.shape[0], device=x.device), last]))

    def combine_task_losses(self, losses: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Task losses plus the AMTL regulariser (see the class docstring)."""
        present = present.to(losses.dtype)
        b = self.transfer_weights()
        w = self.head.weight.t()  # (H, D)
        asymmetry = ((1 + self.mu * losses.detach() * present) * b.abs().sum(1)).sum()
        reconstruction = ((w - w @ b) ** 2).sum()
        return (losses * present).sum() + self.lam * asymmetry + self.gamma * reconstruction
