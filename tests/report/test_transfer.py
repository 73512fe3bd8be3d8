"""TP-AMTL interpretability export: normalised transfer and uncertainty per task and step."""

import numpy as np
import pytest
import torch

from negtransfer.data.timeseries import timeseries_dataset
from negtransfer.nn.amtl import TPAMTL
from negtransfer.report.transfer import plot_transfer_uncertainty, transfer_uncertainty_table

torch.set_num_threads(1)


def _dataset():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(30, 5, 3))
    values[0, 4:] = np.nan  # record 0 has 4 valid steps
    labels = (rng.random((30, 2)) < 0.5).astype(float)
    return timeseries_dataset(values, labels, task_names=["a", "b"], feature_names=["x", "y", "z"],
                              lengths=np.r_[4, np.full(29, 5)], seed=0)  # fmt: skip


def test_transfer_table_follows_the_paper_normalisation(tmp_path):
    ds = _dataset()
    torch.manual_seed(0)
    model = TPAMTL(3, 2)
    record = int(np.flatnonzero(ds.lengths == 4)[0])
    table = transfer_uncertainty_table(model, ds, record, mc_samples=3, seed=1)
    assert len(table) == 4 * 2 * 2 and table["step"].max() == 4
    # recompute one cell by hand from the same MC passes
    torch.manual_seed(1)
    x = torch.from_numpy(ds.X[record : record + 1])
    m = torch.from_numpy(ds.step_mask()[record : record + 1])
    alphas = []
    with torch.no_grad():
        for _ in range(3):
            model(x, m, return_details=True)
            alphas.append(model.last_details["alpha"][0])
    alpha = torch.stack(alphas).mean(0).numpy()
    row = table[(table.step == 2) & (table.source == "a") & (table.target == "b")].iloc[0]
    assert row.outgoing == pytest.approx(alpha[1:4, 1, 1, 0].sum() / 3, rel=1e-5)
    assert row.incoming == pytest.approx(alpha[1, :2, 1, 0].sum() / 2, rel=1e-5)
    assert (table["source_uncertainty"] > 0).all()
    path = plot_transfer_uncertainty(table, tmp_path / "fig.png")
    assert path.stat().st_size > 1000
    with pytest.raises(ValueError, match="transfer"):
        transfer_uncertainty_table(TPAMTL(3, 2, transfer="none"), ds, 0)


def _cells(records, rule):
    """A transfer table with two tasks, two steps; ``rule(record, task, step) -> (uncertainty, outgoing)``."""
    import pandas as pd

    rows = []
    for r in range(records):
        for step in (1, 2):
            for source in ("a", "b"):
                for target in ("a", "b"):
                    unc_s, out_s = rule(r, source, step)
                    unc_t, out_t = rule(r, target, step)
                    rows.append({"record": r, "step": step, "source": source, "target": target,
                                 "outgoing": out_s, "incoming": -unc_t, "source_uncertainty": unc_s,
                                 "target_uncertainty": unc_t})  # fmt: skip
    return pd.DataFrame(rows)


def test_within_cell_correlations_do_not_pool_tasks():
    from negtransfer.report.transfer import correlation_summary, within_cell_correlations

    # within every task, a more uncertain record sends *less*; but task b is both more uncertain
    # and a larger sender on average, so the pooled correlation is positive
    table = _cells(8, lambda r, task, step: (r + (100 if task == "b" else 0), -r + (500 if task == "b" else 0)))
    from scipy.stats import spearmanr

    other = table[table["source"] != table["target"]]
    assert spearmanr(other["source_uncertainty"], other["outgoing"])[0] > 0.5  # the pooled number misleads
    cells = within_cell_correlations(table)
    out = cells[cells["kind"] == "outgoing"]
    assert len(out) == 4 and np.allclose(out["rho"], -1.0)  # 2 tasks x 2 steps, each perfectly negative
    inc = cells[cells["kind"] == "incoming"]
    assert np.allclose(inc["rho"], -1.0)  # incoming = -uncertainty of the target
    few = within_cell_correlations(table[table["record"] < 3])
    assert few["rho"].isna().all()  # under min_records: no correlation
    summary = correlation_summary({0: cells, 1: cells.assign(rho=cells["rho"] + 0.5)})
    row = summary[(summary["kind"] == "outgoing") & (summary["task"] == "all")].iloc[0]
    assert row["mean"] == pytest.approx(-0.75) and row["se"] == pytest.approx(0.25)
    assert row["low"] < row["mean"] < row["high"] and row["seeds"] == 2 and row["positive_seeds"] == 0
