"""Training configuration: one explicit, validated, hashable dataclass."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field


# Bumped when stored run results gain or change fields, so old stores are not reused.
RESULT_FORMAT = 2


@dataclass(frozen=True)
class TrainConfig:
    """How every model of a run is trained.

    Defaults follow the ETAP paper's Chemical setup (appendix B.1: shared encoder
    Dense 32 -> Dense 16 with ReLU, one output per task, SGD with momentum 0.9)
    and its public code (early stopping on validation loss). The learning rate
    and epoch budget were chosen on the yeast validation split (docs/training.md).

    Parameters
    ----------
    hidden : tuple of int
        Widths of the shared encoder's ReLU layers.
    optimizer : {"sgd", "adam"}
        SGD with (heavy-ball, PyTorch-convention) momentum, or Adam.
    lr : float
        Learning rate.
    momentum : float
        SGD momentum (ignored by Adam).
    weight_decay : float
        L2 penalty added to the gradient (coupled, as in torch.optim).
    batch_size : int
        Rows per step; every model of a vectorised batch sees the same rows.
    max_epochs : int
        Upper bound on passes over the training rows.
    patience : int
        Epochs without improvement of the validation loss before a model stops.
        The weights of its best epoch are restored.
    min_delta : float
        Smallest decrease of the validation loss that counts as improvement.
    shared_init : bool
        Start every model of a run from the same initialisation (and, for
        per-task-rows data, the same batch-order stream) instead of one drawn
        from its group: common random numbers, so that differences between
        group models reflect their tasks rather than their random starts.
    """

    hidden: tuple[int, ...] = (32, 16)
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 32
    max_epochs: int = 100
    patience: int = 10
    min_delta: float = 0.0
    adam_betas: tuple[float, float] = field(default=(0.9, 0.999))
    adam_eps: float = 1e-8
    shared_init: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "adam_betas", tuple(float(b) for b in self.adam_betas))
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden must be positive layer widths, got {self.hidden}")
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.batch_size < 1 or self.max_epochs < 1 or self.patience < 1:
            raise ValueError("batch_size, max_epochs and patience must be >= 1")

    def to_dict(self) -> dict:
        return asdict(self)

    def config_hash(self) -> str:
        """Stable hash of every field and of the result format: part of each stored run's key."""
        blob = json.dumps({**self.to_dict(), "result_format": RESULT_FORMAT}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]
