"""MTG-Net: a small transformer over task embeddings predicting each member's gain (Song et al., 2022).

"Efficient and Effective Multi-task Grouping via Meta Learning on Task
Combinations" (Song, Zheng, Li, Qi and Liu, NeurIPS 2022; public code
ShawnKS/MTG-Net): every task has a learned embedding; a group is the sequence of
its members' embeddings; self-attention layers in which a member attends only
to the other members (the group mask) turn them into context-dependent
representations, and a linear head reads each member's gain. Trained with an
L1 loss on measured gains; the prediction averages an ensemble of networks.

Differences from the public code, on purpose: PyTorch's own transformer encoder
layer (the public code writes its own, with a fixed attention temperature of
0.2 and 1x1 convolutions as the feed-forward part); the ensemble is of
independently seeded networks instead of training snapshots; the job's active
sampling of training groups is negtransfer's own refinement
(``negtransfer.select.acquisition``) rather than MTG-Net's.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator

from negtransfer.affinity.scores import validate_groups
from negtransfer.gains.table import check_gain_table

__all__ = ["MTGNetPredictor"]


def _network(n_tasks: int, d_model: int, n_layers: int, n_heads: int, dropout: float):
    import torch
    from torch import nn

    class MTGNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Parameter(torch.randn(n_tasks, d_model) * 0.1)
            layer = nn.TransformerEncoderLayer(d_model, n_heads, dim_feedforward=2 * d_model, dropout=dropout,
                                               batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
            self.head = nn.Linear(d_model, 1)

        def forward(self, members: torch.Tensor) -> torch.Tensor:
            """Gains (m, n) of every task for groups ``members`` (m, n) bool; non-members' outputs are meaningless."""
            x = self.embedding.unsqueeze(0).expand(members.shape[0], -1, -1)
            return self.head(self.encoder(x, src_key_padding_mask=~members)).squeeze(-1)

    return MTGNet()


class MTGNetPredictor(BaseEstimator):
    """Transformer over task embeddings predicting per-task MTL gains of groups (MTG-Net).

    Parameters
    ----------
    d_model : int
        Width of the task embeddings and the attention layers.
    n_layers, n_heads : int
        Self-attention layers and heads.
    epochs : int
        Full-batch Adam steps.
    lr, weight_decay, dropout : float
    ensemble : int
        Independently seeded networks whose predictions are averaged.
    random_state : int

    Attributes
    ----------
    networks_ : list of torch.nn.Module
    n_tasks_ : int
    """

    def __init__(self, d_model: int = 32, n_layers: int = 2, n_heads: int = 2, epochs: int = 150, lr: float = 0.01,
                 weight_decay: float = 1e-4, dropout: float = 0.0, ensemble: int = 2, random_state: int = 0):
        self.d_model = d_model
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.ensemble = ensemble
        self.random_state = random_state

    def fit(self, U, Y):
        """Train on every member entry of the gain table (one-task groups count with gain 0)."""
        import torch

        u, y = check_gain_table(U, Y)
        y = np.where(u & (u.sum(axis=1) == 1)[:, None], 0.0, y)
        if not np.isfinite(y[u]).all():
            raise ValueError("Y has missing or non-finite gains of member tasks")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be a multiple of n_heads ({self.n_heads})")
        self.n_tasks_ = self.n_features_in_ = u.shape[1]
        members = torch.from_numpy(u)
        target = torch.from_numpy(np.nan_to_num(y)).float()
        mask = members.float()
        self.networks_ = []
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for k in range(self.ensemble):
                torch.manual_seed(int(self.random_state) * 1009 + k)
                net = _network(self.n_tasks_, self.d_model, self.n_layers, self.n_heads, self.dropout)
                opt = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
                net.train()
                for _ in range(self.epochs):
                    opt.zero_grad()
                    loss = ((net(members) - target).abs() * mask).sum() / mask.sum()
                    loss.backward()
                    opt.step()
                net.eval()
                self.networks_.append(net)
        finally:
            torch.set_num_threads(threads)
        return self

    def predict(self, U):
        """Mean prediction of the ensemble for every member task (0 for one-task groups, NaN outside)."""
        import torch
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "networks_")
        u = validate_groups(U, n_tasks=self.n_tasks_, name="U")
        with torch.no_grad():
            members = torch.from_numpy(u)
            pred = np.mean([net(members).numpy() for net in self.networks_], axis=0)
        out = np.where(u, pred, np.nan)
        out[u & (u.sum(axis=1) == 1)[:, None]] = 0.0
        return out
