"""``negtransfer compare-grouping --folds K --audit F``: passed through to every grouping job (issue 25)."""

from __future__ import annotations

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
    assert "no folds, no audit part" in (out / "report.md").read_text()  # the surgery row's data, said plainly
    seen.clear()
    res = runner.invoke(app, [*common, "--surgery", "none", "--out", str(tmp_path / "plain"), "-q"])
    assert res.exit_code == 0, res.output
    assert sorted(seen) == [("etap", 1, 0.0, "validation"), ("hoa", 1, 0.0, "validation")]
    assert "no folds, no audit part" not in (tmp_path / "plain" / "report.md").read_text()
    bad = runner.invoke(app, [*common, "--audit", "1.5", "--out", str(tmp_path / "bad")])
    assert bad.exit_code != 0 and "--audit" in bad.output
