"""The Markdown grouping report and its PNG plots (fast; small fake reports)."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import warnings

import pytest

from negtransfer.jobs.grouping_report import GroupingReport
from negtransfer.report import plots
from negtransfer.report.markdown import WORSE_MARKER, render_table, write_group_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TASKS = ["alpha", "beta", "gamma", "delta", "epsilon"]


def fake_report_dict(*, optimal: bool = True, points: bool = True) -> dict:
    """A report.json of five tasks; the chosen groups are worse than STL for exactly beta and delta."""
    stl = {"alpha": 0.50, "beta": 0.40, "gamma": 1.20, "delta": 0.30, "epsilon": 0.80}
    all_tasks = {"alpha": 0.52, "beta": 0.38, "gamma": 1.10, "delta": 0.35, "epsilon": 0.81}
    selected = {"alpha": 0.45, "beta": 0.44, "gamma": 1.00, "delta": 0.31, "epsilon": 0.80}
    groups = [["alpha", "beta", "gamma"], ["gamma", "delta"], ["epsilon"]]
    affinity = [[(i - j) * 1e-3 if i != j else math.nan for j in range(5)] for i in range(5)]
    report = {
        "method": "etap", "dataset": "toy", "fingerprint": "f" * 16, "seed": 0, "budget": 3, "repeats": 2,
        "objective": "total-loss", "n_train_groups": 2, "design": "random", "gain_split": "validation",
        "options": {"budget": 3}, "config": {"epochs": 5, "lr": 0.01},
        "tasks": list(TASKS),
        "affinity": affinity,
        "affinity_momentum": False,
        "train_groups": [["alpha", "beta"], ["gamma", "delta", "epsilon"]],
        "selected_groups": groups,
        "selected_predicted_objective": 0.1,
        "task_group": {"alpha": groups[0], "beta": groups[0], "gamma": groups[1],
                       "delta": groups[1], "epsilon": groups[2]},
        "rounds": [{"round": 1, "selected": groups, "predicted_objective": 0.1, "unmeasured_selected": 1,
                    "runs_before": 8, "selection_val_loss": 3.1},
                   {"round": 2, "selected": groups, "predicted_objective": 0.1, "unmeasured_selected": 0,
                    "runs_before": 10, "final_among_measured": True, "selection_val_loss": 3.0}],
        "refinement": {"rounds_run": 1, "final_among_measured": True, "stopped": "all 2 rounds used",
                       "max_runs": 60, "one_shot_runs": 20, "runs_used": 22, "runs_vs_one_shot": 1.1},
        "comparison": {"validation_loss": {"selected": 3.0, "all-task model": 3.2}, "better_than_alternatives": True,
                       "best_alternative": "all-task model", "verdict": "On validation data the chosen grouping wins.",
                       "recommendation": "selected", "decided_on": "validation", "rows": 40,
                       "basis": "Decided on the 40 validation rows that also chose the groups.", "audit_loss": {},
                       "audit_difference": {}},
        "noise": {"repeats": 2, "verdict": "gains are measured above the noise", "test": {"repeats": 2},
                  "split": "validation"},
        "prediction": {"pearson": None, "r2": None, "n_groups": 0, "within_task_pearson": None,
                       "per_task_mean_pearson": None, "points": []},
        "test_loss": {"stl": stl, "all_tasks": all_tasks, "selected": selected},
        "totals": {k: sum(v.values()) for k, v in
                   {"stl": stl, "all_tasks": all_tasks, "selected": selected}.items()},
        "totals_se": {"stl": 0.01, "all_tasks": 0.02, "selected": 0.01},
        "runs": {"trained": 11, "recommendation": 22, "stored_total": 13, "folds": 1, "validation_rows_per_fold": [40],
                 "one_split_one_shot": 10, "vs_one_split_one_shot": 2.2},
        "seconds": {"total": 12.5},
    }
    if points:
        pts = []
        for k, g in enumerate([["alpha", "beta"], ["beta", "gamma", "delta"], ["alpha", "delta"]]):
            for i, t in enumerate(g):
                actual = 0.02 * (k - i)
                pts.append({"group": g, "task": t, "predicted": actual + 0.01, "actual": actual})
        report["prediction"] = {"pearson": 0.9, "r2": 0.75, "n_groups": 3, "within_task_pearson": 0.5,
                                "per_task_mean_pearson": 0.2, "points": pts}
    if optimal:
        opt = {t: min(stl[t], selected[t]) for t in TASKS}
        total = sum(opt.values())
        gap = report["totals"]["selected"] / total - 1
        test_oracle = {"groups": [["alpha", "gamma"], ["beta", "delta", "epsilon"]], "test_loss": opt,
                       "total": total, "gap": gap}
        validation_oracle = {"groups": [["alpha", "beta"], ["gamma", "delta", "epsilon"]], "test_loss": selected,
                             "total": report["totals"]["selected"], "gap": 0.0, "val_total": 3.0, "val_gap": 0.0}
        report["optimal"] = {"groups": test_oracle["groups"], "test_loss": opt, "gap": gap,
                             "test_oracle": test_oracle, "validation_oracle": validation_oracle}
        report["test_loss"]["optimal"] = opt
        report["totals"].update(test_oracle=total, validation_oracle=validation_oracle["total"], optimal=total)
    # report.json's key order (the optima before the losses)
    order = [k for k in report if k not in ("optimal", "test_loss", "totals", "totals_se", "runs", "seconds")]
    order += [k for k in ("optimal", "test_loss", "totals", "totals_se", "runs", "seconds") if k in report]
    return {k: report[k] for k in order}


def fake_report(*, optimal: bool = True, points: bool = True) -> GroupingReport:
    return GroupingReport.from_dict(fake_report_dict(optimal=optimal, points=points))


def table_rows(md: str) -> dict[str, str]:
    """Per-task table rows of report.md, keyed by task name."""
    rows = {}
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0] in TASKS:
            rows[cells[0]] = line
    return rows


def referenced_pngs(md: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", md)


def assert_valid_pngs(md: str, out_dir) -> list[str]:
    refs = referenced_pngs(md)
    for rel in refs:
        assert not rel.startswith("/"), f"plot path {rel} must be relative"
        path = out_dir / rel
        assert path.is_file(), f"report references missing {rel}"
        data = path.read_bytes()
        assert len(data) > len(PNG_MAGIC) and data[:8] == PNG_MAGIC, f"{rel} is not a PNG"
    return refs


@pytest.mark.parametrize("optimal", [True, False])
def test_report_contents_and_plots(tmp_path, optimal):
    report = fake_report(optimal=optimal)
    path = write_group_report(report, tmp_path)
    assert path == tmp_path / "report.md"
    md = path.read_text(encoding="utf-8")

    # Summary: the chosen groups and the totals appear.
    assert "alpha + beta + gamma" in md and "gamma + delta" in md and "epsilon (alone" in md
    for key in ("stl", "all_tasks", "selected"):
        assert f"{report.totals[key]:.4f}" in md
    assert ("test oracle (exhaustive" in md) == optimal
    assert ("alpha + gamma" in md) == optimal
    if optimal:
        assert f"{report.totals['optimal']:.4f}" in md
        assert "Validation oracle" in md
    assert "Pearson 0.900" in md and "R² 0.750" in md
    assert "11 runs trained" in md and "13 in the run store" in md
    assert "**Rounds**: 1 (all 2 rounds used; then a final selection among the measured groups)" in md

    # Per-task table: the worse-than-STL marker exactly on beta and delta.
    rows = table_rows(md)
    assert set(rows) == set(TASKS)
    marked = {t for t, line in rows.items() if WORSE_MARKER in line}
    assert marked == {"beta", "delta"}
    assert md.count(WORSE_MARKER) == 2
    assert "−10.0%" in rows["beta"]  # gain (0.40 - 0.44) / 0.40
    assert "G2 (2 tasks)" in rows["delta"]

    refs = assert_valid_pngs(md, tmp_path)
    assert len(refs) == 5 and "plots/rounds.png" in refs
    assert "source task" in md.lower() and "target task" in md.lower()


def test_empty_prediction_skips_scatter_and_says_why(tmp_path):
    md = write_group_report(fake_report(optimal=False, points=False), tmp_path).read_text(encoding="utf-8")
    refs = assert_valid_pngs(md, tmp_path)
    assert len(refs) == 4 and not any("predicted" in r for r in refs)
    assert not (tmp_path / "plots" / "predicted_vs_actual.png").exists()
    assert "no held-out groups were trained" in md
    assert "--evaluate" in md


def test_nan_and_none_values(tmp_path):
    report = fake_report_dict(optimal=True)
    report["test_loss"]["selected"]["gamma"] = math.nan
    report["test_loss"]["all_tasks"]["alpha"] = None
    report["test_loss"]["stl"]["epsilon"] = math.nan
    report["totals"]["all_tasks"] = math.nan
    report["affinity"][0][1] = math.nan
    report["prediction"]["points"][0]["actual"] = math.nan
    report["prediction"]["pearson"] = None
    report["prediction"]["r2"] = math.nan
    # Goes through JSON like the CLI's report.json (NaN survives as NaN), then back into the typed report.
    report = GroupingReport.from_dict(json.loads(json.dumps(report)))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no failed plot, no numpy NaN warnings
        md = write_group_report(report, tmp_path).read_text(encoding="utf-8")
    rows = table_rows(md)
    assert "n/a" in rows["gamma"] and "n/a" in rows["alpha"] and "n/a" in rows["epsilon"]
    marked = {t for t, line in rows.items() if WORSE_MARKER in line}
    assert marked == {"beta", "delta"}  # NaN never counts as worse
    assert "could not be computed" in md
    assert len(assert_valid_pngs(md, tmp_path)) == 5
    assert not re.search(r"\|\s*[+-]?nan%?\s*\|", md, re.IGNORECASE), "NaN leaked into a table cell"


def test_all_prediction_points_nan(tmp_path):
    report = fake_report_dict(optimal=False)
    for p in report["prediction"]["points"]:
        p["predicted"] = math.nan
    md = write_group_report(GroupingReport.from_dict(report), tmp_path).read_text(encoding="utf-8")
    assert len(assert_valid_pngs(md, tmp_path)) == 4
    assert "missing (NaN)" in md


def test_failing_plot_does_not_lose_the_report(tmp_path):
    report = fake_report_dict(optimal=False)
    report["affinity"] = [[0.0, 1.0]]  # wrong shape: the heatmap cannot be drawn
    with pytest.warns(RuntimeWarning, match="affinity"):
        md = write_group_report(GroupingReport.from_dict(report), tmp_path).read_text(encoding="utf-8")
    assert "could not be drawn" in md
    assert len(assert_valid_pngs(md, tmp_path)) == 4


def test_plot_functions_write_pngs(tmp_path):
    report = fake_report()
    outs = [
        plots.plot_affinity_heatmap(report.affinity, TASKS, tmp_path / "a.png"),
        plots.plot_predicted_vs_actual(report.prediction.points, tmp_path / "b.png", 0.9, None),
        plots.plot_selected_groups(TASKS, report.selected_groups, tmp_path / "c.png",
                                   optimal=report.optima.groups),
        plots.plot_task_losses(report.test_loss, TASKS, tmp_path / "d.png"),
        plots.plot_rounds(report.refinement.rounds, tmp_path / "e.png", stl=3.3, all_tasks=3.2),
    ]
    for p in outs:
        assert p.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(ValueError, match="nothing to plot"):
        plots.plot_predicted_vs_actual([], tmp_path / "x.png")
    with pytest.raises(ValueError, match="5 x 5"):
        plots.plot_affinity_heatmap([[0.0]], TASKS, tmp_path / "f.png")


def test_render_table():
    md = render_table([["a|b", 1.5], ["c", "x\ny"]], ["name", "value"])
    assert md.splitlines() == ["| name | value |", "| :--- | ---: |", "| a\\|b | 1.5 |", "| c | x y |"]
    with pytest.raises(ValueError, match="2 columns"):
        render_table([[1]], ["a", "b"])
    with pytest.raises(ValueError, match="align"):
        render_table([[1, 2]], ["a", "b"], align="lx")


def test_markdown_import_does_not_import_matplotlib():
    code = ("import sys, negtransfer.report.markdown, negtransfer.report.plots; "
            "bad = [m for m in sys.modules if m.split('.')[0] == 'matplotlib']; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize("optimal", [True, False])
def test_typed_report_round_trips_report_json(optimal):
    d = fake_report_dict(optimal=optimal)
    report = GroupingReport.from_dict(d)
    again = report.to_dict()
    assert list(again) == list(d) and again == d  # keys, their order and values
    assert report.refinement.rounds_run == 1 and report.refinement.final_among_measured
    assert report.selection.task_group["delta"] == ("gamma", "delta")
    assert (report.optima is not None) == optimal
    with pytest.raises(AttributeError):
        report.method = "tag"  # frozen
    # the command line's fields, set through a copy, come last
    marked = report.with_command_line({t: "binary" for t in TASKS}, ["a note"])
    assert list(marked.to_dict())[-2:] == ["task_kinds", "notes"] and marked.notes == ("a note",)
    assert report.task_kinds is None and "notes" not in report.to_dict()


def test_report_tables_for_python():
    report = fake_report(optimal=True)
    frame = report.to_frame()
    assert list(frame.index) == TASKS and frame.index.name == "task"
    assert list(frame.columns) == ["group", "stl", "all_tasks", "selected", "optimal"]
    assert frame.loc["delta", "group"] == "gamma + delta" and frame.loc["beta", "selected"] == 0.44
    A = report.affinity_frame()
    assert A.index.name == "source" and A.columns.name == "target" and list(A.columns) == TASKS
    assert A.loc["beta", "alpha"] == pytest.approx(1e-3) and math.isnan(A.loc["beta", "beta"])
    d = fake_report_dict()
    d["affinity"] = None
    assert GroupingReport.from_dict(d).affinity_frame() is None
