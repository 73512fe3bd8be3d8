"""Interpretability for TP-AMTL: transfer weights and uncertainties per task and timestep (paper Figs. 3-4).

:func:`transfer_uncertainty_table` runs a trained :class:`~negtransfer.nn.amtl.TPAMTL`
on one record ``mc_samples`` times (dropout on, as at test time) and averages
the transfer weights ``alpha[t, i, d, j]`` (target step t, source step i,
target task d, source task j) and the feature variances. Following the paper:

* uncertainty of task d at step t = the mean of its feature variances;
* normalised outgoing transfer from task j at step t to task d =
  ``sum_{t' >= t} alpha[t', t, d, j] / (T - t + 1)`` (1-based t), the mean over
  the target steps that may receive it;
* normalised incoming transfer to task d at step t from task j =
  ``sum_{i <= t} alpha[t, i, d, j] / t``.

Only the record's valid steps are used (T = its length). :func:`plot_transfer_uncertainty`
draws, per task, the uncertainty and the outgoing (summed over targets) and
incoming (summed over sources) transfer against the timestep.

:func:`within_cell_correlations` tests the paper's claim (Fig. 3: reliable
sources send more, uncertain targets receive more) without pooling tasks or
steps: per (task, step), the Spearman correlation *across records* between a
task's uncertainty and its outgoing (or incoming) transfer, so that a task
that is both uncertain and a large sender on average cannot make the
correlation by itself. :func:`correlation_summary` averages the cells of
each seed and gives the mean over seeds with a t confidence interval.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["correlation_summary", "plot_transfer_uncertainty", "transfer_uncertainty_table",
           "within_cell_correlations"]


def transfer_uncertainty_table(model, dataset, record: int, *, mc_samples: int = 20, seed: int = 0) -> "pd.DataFrame":
    """Per (source task, target task, step): outgoing and incoming transfer and both tasks' uncertainty.

    Parameters
    ----------
    model : TPAMTL
        Trained; its transfer mode must not be ``"none"``.
    dataset : TimeSeriesMultiTaskDataset
    record : int
        Row index into ``dataset.X``.
    mc_samples : int
    seed : int

    Returns
    -------
    pandas.DataFrame
        Columns ``record, step, source, target, outgoing, incoming,
        source_uncertainty, target_uncertainty`` (steps 1-based), one row per
        step and ordered pair of tasks (including a task with itself).
    """
    import pandas as pd
    import torch

    if getattr(model, "transfer", "none") == "none" or not hasattr(model, "last_details"):
        raise ValueError("transfer_uncertainty_table needs a TPAMTL model with transfer (not transfer='none')")
    if not 0 <= record < dataset.X.shape[0]:
        raise ValueError(f"record must be in 0..{dataset.X.shape[0] - 1}, got {record}")
    length = int(dataset.lengths[record])
    x = torch.from_numpy(dataset.X[record : record + 1])
    mask = torch.from_numpy(dataset.step_mask()[record : record + 1])
    torch.manual_seed(seed)
    was_training = model.training
    model.train(True)
    alphas, variances = [], []
    with torch.no_grad():
        for _ in range(mc_samples):
            model(x, mask, return_details=True)
            alphas.append(model.last_details["alpha"][0])
            variances.append(model.last_details["variance"][0])
    model.train(was_training)
    alpha = torch.stack(alphas).mean(0).numpy()[:length, :length]  # (t, i, d, j)
    uncertainty = torch.stack(variances).mean(0).mean(-1).numpy()[:length]  # (t, d)
    names = dataset.task_names
    rows = []
    for t in range(length):
        for j, source in enumerate(names):
            for d, target in enumerate(names):
                outgoing = alpha[t:, t, d, j].sum() / (length - t)
                incoming = alpha[t, : t + 1, d, j].sum() / (t + 1)
                rows.append({"record": record, "step": t + 1, "source": source, "target": target,
                             "outgoing": float(outgoing), "incoming": float(incoming),
                             "source_uncertainty": float(uncertainty[t, j]),
                             "target_uncertainty": float(uncertainty[t, d])})  # fmt: skip
    return pd.DataFrame(rows)


def within_cell_correlations(table: "pd.DataFrame", *, min_records: int = 5) -> "pd.DataFrame":
    """Spearman correlations of uncertainty with transfer within each (task, step), across records.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`transfer_uncertainty_table` rows of many records (one trained model).
    min_records : int
        Cells with fewer records (or a constant column) get no correlation.

    Returns
    -------
    pandas.DataFrame
        Columns ``kind`` (``"outgoing"``: a source's uncertainty vs its transfer
        summed over the other tasks; ``"incoming"``: a target's uncertainty vs
        the transfer it receives from the other tasks), ``task``, ``step``,
        ``rho``, ``records``.
    """
    import numpy as np
    import pandas as pd
    from scipy.stats import spearmanr

    other = table[table["source"] != table["target"]]
    rows = []
    for kind, who, unc in (("outgoing", "source", "source_uncertainty"), ("incoming", "target", "target_uncertainty")):
        per_record = other.groupby([who, "step", "record"]).agg(transfer=(kind, "sum"), uncertainty=(unc, "first"))
        for (task, step), cell in per_record.groupby(level=[0, 1]):
            n = len(cell)
            constant = cell["transfer"].nunique() < 2 or cell["uncertainty"].nunique() < 2
            rho = np.nan if n < min_records or constant else float(spearmanr(cell["uncertainty"], cell["transfer"])[0])
            rows.append({"kind": kind, "task": task, "step": int(step), "rho": rho, "records": n})
    return pd.DataFrame(rows, columns=["kind", "task", "step", "rho", "records"])


def correlation_summary(per_seed: "dict[int, pd.DataFrame]", *, level: float = 0.95) -> "pd.DataFrame":
    """Mean within-cell correlation per seed, then over seeds: mean, standard error and a t interval.

    Parameters
    ----------
    per_seed : dict
        Seed -> :func:`within_cell_correlations` of that seed's model.
    level : float
        Confidence level of the interval (Student t over the seed means).

    Returns
    -------
    pandas.DataFrame
        One row per ``kind`` and ``task`` (``task="all"``: every cell), with
        ``mean``, ``se``, ``low``, ``high``, ``seeds`` and ``positive_seeds``
        (seeds whose mean correlation is above 0).
    """
    import numpy as np
    import pandas as pd
    from scipy.stats import t as student

    from negtransfer.data.statistics import standard_error

    frames = [df.assign(seed=seed) for seed, df in per_seed.items()]
    cells = pd.concat(frames).dropna(subset=["rho"])
    rows = []
    for kind, part in cells.groupby("kind", sort=False):
        groups = [("all", part)] + list(part.groupby("task"))
        for task, sub in groups:
            means = sub.groupby("seed")["rho"].mean().to_numpy()
            n = len(means)
            mean = float(means.mean()) if n else np.nan
            se = standard_error(means)
            half = float(student.ppf(0.5 + level / 2, n - 1) * se) if n > 1 else np.nan
            rows.append({"kind": kind, "task": task, "mean": mean, "se": se, "low": mean - half, "high": mean + half,
                         "seeds": n, "positive_seeds": int((means > 0).sum())})
    return pd.DataFrame(rows)


def plot_transfer_uncertainty(table: "pd.DataFrame", path: str | Path) -> Path:
    """Figure 3/4 analogue for one record: per task, uncertainty and outgoing / incoming transfer by step.

    Outgoing transfer of a task is summed over the *other* tasks (targets);
    incoming over the other tasks (sources). Returns the written path (PNG, PDF
    or SVG by suffix).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    other = table[table["source"] != table["target"]]
    tasks = list(dict.fromkeys(table["source"]))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharex=True)
    for ax, (kind, who, unc) in zip(axes, (("outgoing", "source", "source_uncertainty"),
                                            ("incoming", "target", "target_uncertainty")), strict=True):  # fmt: skip
        twin = ax.twinx()
        for k, task in enumerate(tasks):
            part = other[other[who] == task].groupby("step")
            colour = f"C{k}"
            ax.plot(part[kind].sum().index, part[kind].sum().to_numpy(), "-o", color=colour, label=task, ms=3)
            twin.plot(part[unc].mean().index, part[unc].mean().to_numpy(), "--", color=colour, alpha=0.6)
        ax.set_xlabel("timestep")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(f"normalised {kind} transfer (solid)")
        twin.set_ylabel("uncertainty: mean feature variance (dashed)")
        ax.set_title(f"{kind.capitalize()} transfer {'from sources' if kind == 'outgoing' else 'to targets'}")
    axes[0].legend(fontsize=7, loc="best")
    fig.suptitle(f"record {int(table['record'].iloc[0])}")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
