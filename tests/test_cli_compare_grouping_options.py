"""``negtransfer compare-grouping --folds K --audit F``: passed through to every grouping job (issue 25)."""

from __future__ import annotations

import pandas as pd
from typer.testing import CliRunner

from negtransfer.cli import app

runner = CliRunner()


def test_folds_and_audit_reach_every_grouping_job(tmp_path, monkeypatch, three_task_csv):
    from negtransfer.jobs import grouping_comparison

    seen = []
    real = grouping_comparison.run_grouping

    def recording(dataset, options, *args, **kwargs):
        result = real(dataset, options, *args, **kwargs)
        seen.append((options.method, options.folds, options.audit, result.report.comparison.decided_on))
        return result

    monkeypatch.setattr(grouping_comparison, "run_grouping", recording)
    out = tmp_path / "cmp"
    common = ["compare-grouping", "--data", str(three_task_csv(tmp_path / "data.csv", 300)), "--tasks", "one,two,three", "--features", "a,b,c",
              "--methods", "etap,hoa", "--budgets", "2", "--seeds", "0", "--train-groups", "2", "--repeats", "1",
              "--rounds", "1", "--epochs", "3"]
    res = runner.invoke(app, [*common, "--folds", "2", "--audit", "0.2", "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    assert sorted(seen) == [("etap", 2, 0.2, "audit"), ("hoa", 2, 0.2, "audit")]
    md = (out / "report.md").read_text()
    assert "no folds, no audit part" not in md  # the old note: the surgery row no longer trains on the plain split
    # the surgery row trained as the grouping jobs did, and the report says on which rows
    assert "train and score their all-task model as every grouping job" in md and "each of 2 folds" in md
    assert "audit rows (--audit 0.2) are held back from every run" in md
    table = pd.read_csv(out / "comparison.csv")
    pcgrad, groupings = table[table["kind"] == "all-task model"], table[table["kind"] == "grouping"]
    assert len(pcgrad) == 1 and pcgrad["runs"].iloc[0] == 2  # 1 repeat x 2 folds
    assert set(groupings["all_tasks"]) == set(pcgrad["all_tasks"])  # the grouping jobs' own all-task runs
    assert set(groupings["stl"]) == set(pcgrad["stl"])
    seen.clear()
    res = runner.invoke(app, [*common, "--surgery", "none", "--out", str(tmp_path / "plain"), "-q"])
    assert res.exit_code == 0, res.output
    assert sorted(seen) == [("etap", 1, 0.0, "validation"), ("hoa", 1, 0.0, "validation")]
    assert "gradient-surgery rows" not in (tmp_path / "plain" / "report.md").read_text()
    bad = runner.invoke(app, [*common, "--audit", "1.5", "--out", str(tmp_path / "bad")])
    assert bad.exit_code != 0 and "--audit" in bad.output
