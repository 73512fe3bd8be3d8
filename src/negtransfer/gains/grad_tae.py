"""GRAD-TAE: task affinity from one base model's projected gradients, without training per subset.

"Scalable Multitask Learning Using Gradient-based Estimation of Task Affinity"
(Li, Zhang, Hu, Ji, Zhang and Zhang, KDD 2024; the ETAP paper calls it
GRAD-TAE, its authors Grad-TAG; public code VirtuosoResearch/ScalableMTL):

1. one *base* model is trained on all tasks (here: the job's all-task run of a
   repeat, :func:`train_base_model`);
2. at its trained weights theta0, every example's gradient of the model's output
   (the task's logit) with respect to the weights is computed and projected to
   ``d`` (about 200) dimensions with a random Rademacher matrix ``P``
   (entries +-1/sqrt(d)): ``x_e = P^T grad f(x_e; theta0)``;
3. fine-tuning on a task subset S is replaced by its first-order model,
   ``f(x; theta0 + P w) ~ f(x; theta0) + x_e^T w``: ``w`` is fitted by
   L2-regularised logistic regression (least squares for regression tasks) on
   the projected gradients of S's training examples, with the base outputs as
   offsets; each member's loss is then read on its own validation rows from the
   same linear model, with no network trained;
4. pairwise affinities are averaged from the estimates over sampled subsets:
   ``A[j, i]`` = mean over sampled S containing i and j of task i's estimated
   relative gain in S, ``(L_i({i}) - L_i(S)) / L_i({i})`` (ETAP eq. 1's scale,
   with estimated losses).

Which output: a binary task's logit; a regression task's value (squared error,
as negtransfer trains it); a multiclass task's log-odds of the correct class,
``l_y - logsumexp_{c != y} l_c`` (the public code's "output" for multiclass
images), whose logistic loss with label 1 is exactly the cross-entropy.

All per-example gradients come from one vectorised computation
(``torch.func.vmap`` over ``torch.func.grad_and_value``) in chunks of rows, never
a Python loop over examples; the regressions are Newton steps on d x d systems.

Differences from the public code, on purpose (docs/methods/grouping-methods.md):
the fitted estimate is read from the linear model (the paper's approximation;
the public graph script instead loads ``theta0 + P w`` into the network and
evaluates it); subsets are scored on validation rows; the grouping is
negtransfer's exact budgeted selection on the affinity (mapped to the gain scale
by a line, as for TAG), not the paper's SDP clustering.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from math import comb, isnan

import numpy as np
from sklearn.base import BaseEstimator

from negtransfer.affinity.scores import nan_mean_of_matrices, validate_groups

__all__ = ["GradTAE", "combine_grad_tae", "grad_tae_run", "sample_subsets", "train_base_model"]

#: Which weights the gradients are taken of: every weight, or the shared encoder's only (task heads excluded,
#: as the public code's image script does).
PARAMETER_SETS = ("all", "shared")

_EXCLUDED = -1.0e4  # stands for "no such logit" in the multiclass log-odds (exp underflows to 0)


def sample_subsets(n_tasks: int, size: int, count: int, seed: int) -> list[tuple[int, ...]]:
    """``count`` distinct task subsets of ``size`` tasks drawn uniformly (all of them when there are fewer).

    Deterministic given ``seed``; returned sorted (each subset's tasks ascending).
    """
    if not 1 <= size <= n_tasks:
        raise ValueError(f"subset size must be in 1..{n_tasks}, got {size}")
    if count < 1:
        raise ValueError(f"the number of subsets must be >= 1, got {count}")
    total = comb(n_tasks, size)
    if count >= total:
        from itertools import combinations

        return list(combinations(range(n_tasks), size))
    rng = np.random.default_rng(seed)
    found: set[tuple[int, ...]] = set()
    while len(found) < count:
        found.add(tuple(sorted(int(t) for t in rng.choice(n_tasks, size=size, replace=False))))
    return sorted(found)


def _mlp(params, x):
    """The hard-sharing MLP of :mod:`negtransfer.nn.hard_sharing` on one example (flattened): [W1, b1, W2, b2, ...]."""
    import torch

    h = x.reshape(-1)
    last = len(params) // 2 - 1
    for layer in range(last + 1):
        h = h @ params[2 * layer] + params[2 * layer + 1]
        if layer < last:
            h = torch.relu(h)
    return h


def _mlp_network(parameters, which: str, dataset, layout):
    """The built-in MLP's weights as tensors, the indices to differentiate and its one-row forward pass."""
    import torch

    params = [torch.as_tensor(p, dtype=torch.float32).detach().cpu() for p in parameters]
    if len(params) < 2 or len(params) % 2:
        raise ValueError(f"parameters must be [W1, b1, ..., W_L, b_L]; got {len(params)} tensors")
    inputs = dataset.n_features
    if params[0].shape[0] != inputs or params[-1].shape[-1] != layout.n_outputs:
        raise ValueError(f"the parameters map {params[0].shape[0]} inputs to {params[-1].shape[-1]} outputs; the "
                         f"dataset has {inputs} features per example and {layout.n_outputs} task outputs")
    trainable = list(range(len(params))) if which == "all" else list(range(len(params) - 2))
    if not trainable:
        raise ValueError("parameters='shared' needs a model with at least one hidden layer")
    return params, trainable, _mlp


def _factory_network(state: Mapping, network, which: str, dataset, layout):
    """A factory model's state as tensors (its ``state_dict`` order), the parameters to differentiate (all, or
    the encoder's with ``which="shared"``) and its one-example forward pass through ``torch.func.functional_call``."""
    import torch
    from torch.func import functional_call

    if network is None:
        raise ValueError("a state dict of parameters needs network=, a model of the factory that trained them")
    names = list(network.state_dict())
    if sorted(names) != sorted(state):
        raise ValueError(f"the parameters name {sorted(state)[:3]}...; the network's state has {sorted(names)[:3]}...")
    parameter_names = {name for name, _ in network.named_parameters()}
    params = [torch.as_tensor(state[name]).detach().cpu() for name in names]
    trainable = [i for i, name in enumerate(names)
                 if name in parameter_names and (which == "all" or name.startswith("encoder."))]
    if not trainable:
        raise ValueError(f"parameters={which!r}: the network has no such parameters to differentiate")
    network = network.eval()

    def forward(tensors, x):
        return functional_call(network, dict(zip(names, tensors, strict=True)), (x.unsqueeze(0),))[0]

    with torch.no_grad():
        width = forward(params, torch.from_numpy(dataset.X[:1])[0]).shape[-1]
    if width != layout.n_outputs:
        raise ValueError(f"the network gives {width} outputs; the dataset has {layout.n_outputs} task outputs")
    return params, trainable, forward


class GradTAE(BaseEstimator):
    """Estimated losses of task subsets from a base model's projected per-example gradients (Li et al., 2024).

    Parameters
    ----------
    projection_dim : int
        d, the width of the random Rademacher projection (the public code's 200).
    C : float
        Inverse L2 strength as in scikit-learn's ``LogisticRegression``: the fit
        minimises ``sum over S's training examples of loss + ||w||^2 / (2 C)``
        (the public code's 1e-4).
    subset_size : int or None
        Tasks per sampled subset for :meth:`affinity`; default ``ceil(n / 3)``, at least 2.
    n_subsets : int or None
        Sampled subsets for :meth:`affinity`; default enough for every pair to
        appear in about 10 of them (``ceil(10 n (n-1) / (k (k-1)))``), at most
        every subset of that size.
    parameters : {"all", "shared"}
        Gradients with respect to every weight, or the shared encoder's only.
    max_rows_per_task : int or None
        Training (and validation) rows per task kept, drawn at random beyond
        this many, to bound the gradients' memory; None keeps all.
    chunk_rows : int
        Examples per vectorised gradient computation.
    random_state : int
        Seeds the projection, the row draw and the sampled subsets.

    Attributes (after :meth:`fit`)
    ------------------------------
    projection_ : ndarray (n_parameters, d)
        P; a fitted ``w`` is the weight update ``P w``.
    train_features_, val_features_ : ndarray (examples, d)
        Projected gradients of the training / validation examples.
    train_task_, val_task_ : ndarray of int
        Task of each example.
    train_offset_, val_offset_, train_label_, val_label_ : ndarray
        Base output and label of each example (label 1 for multiclass log-odds).
    regression_ : ndarray of bool (n_tasks,)
        Tasks with squared error (else logistic loss).
    seconds_gradients_ : float
    seconds_regressions_ : float
        Accumulated over the regressions run so far.
    n_regressions_ : int
    """

    def __init__(self, projection_dim: int = 200, C: float = 1e-4, subset_size: int | None = None,
                 n_subsets: int | None = None, parameters: str = "all", max_rows_per_task: int | None = 5000,
                 chunk_rows: int = 512, random_state: int = 0):
        self.projection_dim = projection_dim
        self.C = C
        self.subset_size = subset_size
        self.n_subsets = n_subsets
        self.parameters = parameters
        self.max_rows_per_task = max_rows_per_task
        self.chunk_rows = chunk_rows
        self.random_state = random_state

    # ------------------------------------------------------------------ checks
    def _check_params(self) -> None:
        problems = [
            (not (isinstance(self.projection_dim, (int, np.integer)) and self.projection_dim >= 1),
             f"projection_dim must be a positive integer, got {self.projection_dim!r}"),
            (not (isinstance(self.C, (int, float)) and np.isfinite(self.C) and self.C > 0),
             f"C must be a positive number, got {self.C!r}"),
            (self.parameters not in PARAMETER_SETS,
             f"parameters must be one of {PARAMETER_SETS}, got {self.parameters!r}"),
            (self.max_rows_per_task is not None and self.max_rows_per_task < 1,
             f"max_rows_per_task must be >= 1 or None, got {self.max_rows_per_task!r}"),
            (self.chunk_rows < 1, f"chunk_rows must be >= 1, got {self.chunk_rows!r}"),
        ]
        for bad, message in problems:
            if bad:
                raise ValueError(message)

    # --------------------------------------------------------------------- fit
    def fit(self, parameters, dataset, network=None) -> "GradTAE":
        """Project every example's output gradient at the trained weights ``parameters``.

        Parameters
        ----------
        parameters : list of Tensor, or dict of str to Tensor
            The base model's weights (:func:`train_base_model`,
            ``train_group_models(..., keep_parameters=True)``): for the built-in
            hard-sharing MLP the list ``[W1, b1, ..., W_L, b_L]`` (weights shaped
            (fan_in, fan_out)) with one output block per task of ``dataset``; for
            a model of any other factory its state dict (parameters and buffers by
            name), with ``network``.
        dataset : MultiTaskDataset
            Either layout: shared rows (a row carries the labels of several
            tasks; one example per labelled (row, task)) or per-task rows.
            Training-split examples fit the regressions, validation-split ones
            are where the losses are read.
        network : torch.nn.Module, optional
            With a state dict: a model of the same factory
            (:class:`~negtransfer.nn.contract.MultiHeadModel`, encoder then one
            head per task), whose forward pass is run with ``parameters`` in its
            place (``torch.func.functional_call``, evaluation mode: batch-norm
            running statistics as trained, no dropout). ``parameters="shared"``
            then means the encoder's parameters (``encoder.*``); buffers are
            never differentiated.

        Returns
        -------
        self
        """
        import torch

        from negtransfer.data.dataset import TRAIN, VALIDATION
        from negtransfer.train.losses import TaskLossLayout

        self._check_params()
        layout = TaskLossLayout(dataset.tasks)
        if isinstance(parameters, Mapping):
            params, trainable, forward = _factory_network(parameters, network, self.parameters, dataset, layout)
        else:
            params, trainable, forward = _mlp_network(parameters, self.parameters, dataset, layout)
        n = dataset.n_tasks
        self.n_tasks_ = n
        self.task_names_ = tuple(dataset.task_names)
        self.regression_ = np.array([t.kind == "regression" for t in dataset.tasks])
        n_parameters = sum(params[i].numel() for i in trainable)
        self.n_parameters_ = int(n_parameters)
        gen = torch.Generator().manual_seed(int(self.random_state) % (2**63))
        d = int(self.projection_dim)
        P = (torch.randint(0, 2, (n_parameters, d), generator=gen, dtype=torch.float32) * 2 - 1) / np.sqrt(d)
        self.projection_ = P.numpy()
        rng = np.random.default_rng(int(self.random_state))

        examples = {part: self._examples(dataset, code, rng) for part, code in (("train", TRAIN), ("val", VALIDATION))}
        for part, split in (("train", "training"), ("val", "validation")):
            missing = [dataset.task_names[t] for t in range(n) if not (examples[part][1] == t).any()]
            if missing:
                raise ValueError(f"task {missing[0]!r} has no labelled {split} row; GRAD-TAE fits on training rows "
                                 "and reads losses on validation rows")
        start = time.perf_counter()
        for part, (rows, tasks) in examples.items():
            feats, offset, label = self._project((params, trainable, forward), P, layout, dataset, rows, tasks)
            setattr(self, f"{part}_features_", feats)
            setattr(self, f"{part}_offset_", offset)
            setattr(self, f"{part}_label_", label)
            setattr(self, f"{part}_task_", tasks)
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):  # each task's curvature at w = 0, summed per subset by the regressions
            h0 = _curvature(self.train_offset_, self.train_label_, self.regression_[self.train_task_])[1]
            self._gram0 = np.stack([_gram(self.train_features_[self.train_task_ == t],
                                          h0[self.train_task_ == t]) for t in range(n)])
        self.seconds_gradients_ = time.perf_counter() - start
        self.seconds_regressions_ = 0.0
        self.n_regressions_ = 0
        self._cache: dict[tuple[int, ...], np.ndarray] = {}
        return self

    def _examples(self, dataset, code: int, rng) -> tuple[np.ndarray, np.ndarray]:
        """(row, task) of every labelled example of one split, at most ``max_rows_per_task`` per task."""
        rows_out, tasks_out = [], []
        in_split = dataset.split == code
        for t in range(dataset.n_tasks):
            rows = np.flatnonzero(in_split & ~np.isnan(dataset.Y[:, t]))
            if self.max_rows_per_task is not None and rows.size > self.max_rows_per_task:
                rows = np.sort(rng.choice(rows, size=self.max_rows_per_task, replace=False))
            rows_out.append(rows)
            tasks_out.append(np.full(rows.size, t))
        return np.concatenate(rows_out).astype(np.int64), np.concatenate(tasks_out).astype(np.int64)

    def _project(self, network, P, layout, dataset, rows, tasks):
        """Projected output gradients, base outputs and labels of the examples (one vmap per chunk).

        ``network``: ``(params, trainable, forward)`` as :func:`_mlp_network` returns them."""
        import torch
        from torch.func import grad_and_value, vmap

        n_out = layout.n_outputs
        labels = dataset.Y[rows, tasks]
        # per example: which logit is "the output" (pick), which logits compete with it (multiclass log-odds)
        pick = np.zeros((rows.size, n_out), dtype=np.float32)
        others = np.zeros((rows.size, n_out), dtype=bool)
        multiclass = np.zeros(rows.size, dtype=np.float32)
        target = labels.astype(float).copy()
        for t, task in enumerate(dataset.tasks):
            mine = np.flatnonzero(tasks == t)
            if not mine.size:
                continue
            off = layout.offsets[t]
            if task.kind == "multiclass":
                cls = labels[mine].astype(int)
                pick[mine, off + cls] = 1.0
                others[mine, off:off + task.output_dim] = True
                others[mine, off + cls] = False
                multiclass[mine] = 1.0
                target[mine] = 1.0  # the log-odds of the correct class should be high
            else:
                pick[mine, off] = 1.0
        params, trainable, forward = network
        fixed = {i: params[i] for i in range(len(params)) if i not in trainable}

        def output(train_params, x, pick_e, others_e, mc_e):
            full = list(train_params) if not fixed else [fixed[i] if i in fixed else train_params[trainable.index(i)]
                                                         for i in range(len(params))]
            out = forward(full, x)
            lse = torch.logsumexp(torch.where(others_e, out, torch.full_like(out, _EXCLUDED)), dim=0)
            return (out * pick_e).sum() - mc_e * lse

        per_example = vmap(grad_and_value(output), in_dims=(None, 0, 0, 0, 0))
        train_params = tuple(params[i] for i in trainable)
        X = torch.from_numpy(dataset.X)
        feats = np.empty((rows.size, P.shape[1]), dtype=np.float64)
        offset = np.empty(rows.size, dtype=np.float64)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # the same numbers however many cores the machine has
        try:
            for a in range(0, rows.size, self.chunk_rows):
                b = min(a + self.chunk_rows, rows.size)
                grads, values = per_example(train_params, X[torch.from_numpy(rows[a:b])],
                                            torch.from_numpy(pick[a:b]), torch.from_numpy(others[a:b]),
                                            torch.from_numpy(multiclass[a:b]))
                flat = torch.cat([g.reshape(b - a, -1) for g in grads], dim=1)
                feats[a:b] = (flat @ P).double().numpy()
                offset[a:b] = values.double().numpy()
        finally:
            torch.set_num_threads(threads)
        return feats, offset, target

    # -------------------------------------------------------------- estimates
    def _check_fitted(self) -> None:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "projection_")

    def _members(self, subset) -> tuple[int, ...]:
        members = tuple(sorted({int(t) for t in subset}))
        if not members or members[0] < 0 or members[-1] >= self.n_tasks_:
            raise ValueError(f"a subset must name tasks in 0..{self.n_tasks_ - 1}; got {list(subset)}")
        return members

    def delta(self, subset) -> np.ndarray:
        """The fitted ``w`` (d,) of a task subset: the first-order fine-tuning on its training examples.

        Minimises ``sum_e loss(offset_e + x_e . w, y_e) + ||w||^2 / (2 C)`` over the
        subset's training examples by Newton's method with step halving
        (logistic loss for classification, squared error for regression); the
        weight update it stands for is ``projection_ @ w``.
        """
        self._check_fitted()
        members = self._members(subset)
        if members in self._cache:
            return self._cache[members]
        start = time.perf_counter()
        mask = np.isin(self.train_task_, members)
        X = self.train_features_[mask]
        o, y = self.train_offset_[mask], self.train_label_[mask]
        squared = self.regression_[self.train_task_[mask]]
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):  # d x d systems: threads only contend (and the numbers stay the same anywhere)
            gram0 = self._gram0[list(members)].sum(axis=0)
            w = _newton(X, o, y, squared, 1.0 / float(self.C), gram0)
        self._cache[members] = w
        self.seconds_regressions_ += time.perf_counter() - start
        self.n_regressions_ += 1
        return w

    def estimated_losses(self, subset) -> dict[int, float]:
        """Each member's mean validation loss under the subset's first-order model (no training)."""
        w = self.delta(subset)
        out = {}
        for t in self._members(subset):
            m = self.val_task_ == t
            eta = self.val_offset_[m] + self.val_features_[m] @ w
            out[t] = float(np.mean(_loss(eta, self.val_label_[m], bool(self.regression_[t]))))
        return out

    def estimate_gains(self, U) -> np.ndarray:
        """Estimated relative gains ``(L_t({t}) - L_t(G)) / L_t({t})`` of every member of every group of U.

        Parameters
        ----------
        U : array-like (m, n_tasks) of bool
            Groups; one regression per distinct group (and one per member alone).

        Returns
        -------
        ndarray (m, n_tasks)
            NaN for tasks outside the group; 0 for a group of one task.
        """
        self._check_fitted()
        u = validate_groups(U, n_tasks=self.n_tasks_, name="U")
        alone = {t: self.estimated_losses((t,))[t] for t in range(self.n_tasks_)}
        out = np.full(u.shape, np.nan)
        for r, row in enumerate(u):
            members = tuple(int(t) for t in np.flatnonzero(row))
            losses = self.estimated_losses(members)
            for t in members:
                out[r, t] = (alone[t] - losses[t]) / alone[t] if alone[t] > 0 else 0.0
        return out

    def affinity(self) -> np.ndarray:
        """Pairwise affinity averaged over sampled subsets (the paper's estimate of pairwise affinity).

        Returns
        -------
        ndarray (n, n)
            ``A[j, i]`` = affinity of SOURCE j onto TARGET i: the mean over the
            sampled subsets containing both of task i's estimated relative gain
            (:meth:`estimate_gains`). A pair no sampled subset holds gets the
            estimate from the pair itself. The diagonal is NaN. Also sets
            ``subsets_`` (the sampled subsets).
        """
        self._check_fitted()
        n = self.n_tasks_
        if n < 2:
            raise ValueError("affinity needs at least 2 tasks")
        k = self.subset_size if self.subset_size is not None else max(2, -(-n // 3))
        if not 2 <= k <= n:
            raise ValueError(f"subset_size must be in 2..{n} (the number of tasks), got {k}")
        count = self.n_subsets if self.n_subsets is not None else -(-10 * n * (n - 1) // (k * (k - 1)))
        subsets = sample_subsets(n, k, count, int(self.random_state) + 1)
        self.subsets_ = subsets
        U = np.zeros((len(subsets), n), dtype=bool)
        for r, s in enumerate(subsets):
            U[r, list(s)] = True
        G = self.estimate_gains(U)
        total = np.zeros((n, n))
        count_ij = np.zeros((n, n))
        for r in range(len(subsets)):
            members = np.flatnonzero(U[r])
            for target in members:
                total[members, target] += G[r, target]
                count_ij[members, target] += 1
        with np.errstate(invalid="ignore", divide="ignore"):
            A = total / count_ij
        for j in range(n):
            for i in range(n):
                if i != j and count_ij[j, i] == 0:
                    pair = np.zeros((1, n), dtype=bool)
                    pair[0, [i, j]] = True
                    A[j, i] = self.estimate_gains(pair)[0, i]
        np.fill_diagonal(A, np.nan)
        return A


def _loss(eta: np.ndarray, y: np.ndarray, squared) -> np.ndarray:
    """Per-example loss: squared error where ``squared``, else binary cross-entropy on the logit ``eta``."""
    bce = np.logaddexp(0.0, eta) - y * eta
    return np.where(squared, (eta - y) ** 2, bce)


def _curvature(eta: np.ndarray, y: np.ndarray, squared) -> tuple[np.ndarray, np.ndarray]:
    """Per-example first and second derivative of the loss with respect to the output ``eta``."""
    p = 0.5 * (1.0 + np.tanh(0.5 * eta))  # sigmoid, overflow-free
    return np.where(squared, 2.0 * (eta - y), p - y), np.where(squared, 2.0, p * (1.0 - p))


def _gram(X: np.ndarray, h: np.ndarray) -> np.ndarray:
    return (X * h[:, None]).T @ X


def _newton(X: np.ndarray, offset: np.ndarray, y: np.ndarray, squared: np.ndarray, lam: float,
            gram0: np.ndarray | None = None, max_iter: int = 200, refresh: int = 8, tol: float = 1e-14) -> np.ndarray:
    """argmin_w sum_e loss(offset_e + X_e w, y_e) + lam ||w||^2 / 2 (convex).

    Newton's method with backtracking; the curvature matrix is the one at
    ``w = 0`` (``gram0``, the sum of the members' precomputed matrices, so that a
    subset costs no pass of d x d products over its examples) and is recomputed
    at the current ``w`` only every ``refresh`` steps. The L2 term dominates the
    curvature at GRAD-TAE's penalty, so the fixed matrix converges in a few
    steps. Stops when the Newton decrement falls under ``tol`` relative to the objective.
    """
    from scipy.linalg import cho_factor, cho_solve

    d = X.shape[1]
    w = np.zeros(d)

    def objective(v):
        return float(_loss(offset + X @ v, y, squared).sum() + 0.5 * lam * v @ v)

    current = objective(w)
    H = gram0 if gram0 is not None else _gram(X, _curvature(offset, y, squared)[1])
    factor = cho_factor(H + lam * np.eye(d))
    for it in range(1, max_iter + 1):
        r, h = _curvature(offset + X @ w, y, squared)
        grad = X.T @ r + lam * w
        step = cho_solve(factor, grad)
        decrement = float(grad @ step)
        if decrement <= 2 * tol * max(1.0, abs(current)):
            break
        t = 1.0
        while True:  # Armijo backtracking along the (descent) direction -step
            candidate = w - t * step
            value = objective(candidate)
            if value <= current - 1e-4 * t * decrement or t < 1e-10:
                break
            t *= 0.5
        w, current = candidate, value
        if it % refresh == 0:
            factor = cho_factor(_gram(X, _curvature(offset + X @ w, y, squared)[1]) + lam * np.eye(d))
    return w


# ------------------------------------------------------------------ the job's side
def train_base_model(dataset, config, seed: int, repeat: int = 0):
    """The all-task model of one repeat (the job's all-task run, same seeds) and its best-epoch weights.

    Returns
    -------
    parameters : list of Tensor, or dict of str to Tensor
        The built-in MLP's ``[W1, b1, ...]``; a model of another factory's state dict (:meth:`GradTAE.fit`).
    result : ModelResult
        Bit-identical to the stacked trainer's all-task run of that repeat.
    """
    from negtransfer.train.batched import train_group_models

    result = train_group_models(dataset, [tuple(range(dataset.n_tasks))], config, seed, repeats=[repeat],
                                keep_parameters=True)[0]
    return result.extra.pop("parameters"), result


def check_per_example_gradients(config, dataset) -> None:
    """Raise ValueError, before any training, when GRAD-TAE cannot take per-example gradients of ``config.model``.

    GRAD-TAE differentiates each example's output with ``torch.func.vmap`` over a ``functional_call`` of the
    network (:func:`_factory_network`); a model that vmap cannot run (``nn.GRU``, ``nn.LSTM``, data-dependent
    control flow) failed there, after the base model had trained, with an error from inside torch (e.g. "output
    with shape [1, 8] doesn't match the broadcast shape [270, 1, 8]"). This runs the same kind of call on two
    examples of a freshly built model.
    """
    import torch
    from torch.func import functional_call, grad, vmap

    from negtransfer.nn.contract import build_model

    network = build_model(config.model.factory_function(), dataset.input_shape, dataset.output_dims, seed=0).eval()
    buffers = dict(network.named_buffers())

    def first_output(parameters, x):
        return functional_call(network, {**parameters, **buffers}, (x.unsqueeze(0),))[0, 0]

    examples = torch.from_numpy(dataset.X[:2])
    try:
        vmap(grad(first_output), in_dims=(None, 0))(dict(network.named_parameters()), examples)
    except Exception as exc:
        raise ValueError(f"GRAD-TAE (method 'grad-tae') takes each example's gradient with torch.func.vmap, which "
                         f"cannot run the model of {config.model.name} ({type(exc).__name__}: {exc}); group its "
                         f"tasks with another method (etap, tag, hoa, linear-surrogate, mtgnet, ayman)") from exc


def grad_tae_run(dataset, config, seed: int, repeat: int, estimator: GradTAE | None = None):
    """One repeat of GRAD-TAE: train the base model (the all-task run), fit a clone of ``estimator``, take its affinity.

    The clone's ``random_state`` is the repeat's training seed
    (:func:`~negtransfer.train.batched.repeat_seed`): each repeat has its own
    projection and subsets.

    Returns
    -------
    result : ModelResult
        The base model's result (the all-task run of that repeat).
    record : dict
        JSON-ready: ``affinity`` (n x n nested lists, None on the diagonal),
        the seconds of base training, gradients and regressions, and the sizes
        :func:`combine_grad_tae` reports.
    """
    from sklearn.base import clone

    from negtransfer.train.batched import repeat_seed

    estimator = estimator if estimator is not None else GradTAE()
    if not config.model.is_default:
        check_per_example_gradients(config, dataset)
    start = time.perf_counter()
    parameters, result = train_base_model(dataset, config, seed, repeat)
    trained = time.perf_counter() - start
    model = clone(estimator).set_params(random_state=int(repeat_seed(seed, repeat)))
    network = None
    if isinstance(parameters, Mapping):  # a model of another factory: its state dict and a model to run it in
        from negtransfer.nn.contract import build_model

        network = build_model(config.model.factory_function(), dataset.input_shape,
                              dataset.output_dims, seed=0)
    model.fit(parameters, dataset, network=network)
    A = model.affinity()
    record = {"affinity": [[None if isnan(v) else v for v in row] for row in A.tolist()],
              "seconds_base_model": trained, "seconds_gradients": model.seconds_gradients_,
              "seconds_regressions": model.seconds_regressions_, "regressions": model.n_regressions_,
              "subsets": len(model.subsets_), "subset_size": len(model.subsets_[0]),
              "train_examples": int(model.train_task_.size), "val_examples": int(model.val_task_.size),
              "parameters": model.n_parameters_, "projection_dim": int(model.projection_dim)}
    return result, record


def combine_grad_tae(records: list[dict], C: float, reused: int = 0) -> tuple[np.ndarray, dict]:
    """GRAD-TAE's affinity averaged over repeats, and its costs, from the records of :func:`grad_tae_run`.

    Parameters
    ----------
    records : list of dict
        One per repeat.
    C : float
        The estimator's ``C`` (reported).
    reused : int
        How many records came from the run store (their seconds are those of the run that computed them).

    Returns
    -------
    affinity : ndarray (n, n)
        ``A[i, j]`` = affinity of source i onto target j (NaN-aware mean over repeats; NaN diagonal).
    cost : dict
        Seconds for base training, gradients and regressions (summed over the
        repeats), regressions run, subsets, examples, parameters and d.
    """
    stack = np.stack([np.array(rec["affinity"], dtype=float) for rec in records])
    A = nan_mean_of_matrices(stack)  # the diagonal stays NaN
    cost = {name: float(sum(rec[name] for rec in records))
            for name in ("seconds_base_model", "seconds_gradients", "seconds_regressions")}
    cost["seconds_gradients_and_regressions"] = cost["seconds_gradients"] + cost["seconds_regressions"]
    cost["regressions"] = int(sum(rec["regressions"] for rec in records))
    cost.update({name: records[0][name] for name in ("subsets", "subset_size", "train_examples", "val_examples",
                                                     "parameters", "projection_dim")})
    cost["repeats"] = len(records)
    cost["reused_repeats"] = int(reused)
    cost["C"] = float(C)
    return A, cost
