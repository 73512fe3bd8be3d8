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
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    import pandas as pd

__all__ = ["plot_transfer_uncertainty", "transfer_uncertainty_table"]


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
                                            ("incoming", "target", "target_uncertainty"))):  # fmt: skip
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
