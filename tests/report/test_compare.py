"""The one comparison renderer: paper-layout cells, markers below the single-task counterpart."""

import numpy as np
import pytest

from negtransfer.jobs.compare import CompareReport, ModelEntry
from negtransfer.report.compare import metric_table, paper_table_markdown


def _report():
    rows = []
    for run, (s, m) in enumerate([(0.70, 0.80), (0.72, 0.60)]):  # task a: mtl mean 0.70 < stl 0.71
        for model, a, b in (("stl-lstm", s, 0.5), ("mtl-lstm", m, 0.9)):
            rows += [{"model": model, "task": "a", "run": run, "metric": "auroc", "value": a},
                     {"model": model, "task": "b", "run": run, "metric": "auroc", "value": b},
                     {"model": model, "task": "average", "run": run, "metric": "auroc", "value": (a + b) / 2}]
    models = [ModelEntry("stl-lstm", "clinical", None, ""), ModelEntry("mtl-lstm", "clinical", "stl-lstm", "")]
    return CompareReport("x", "time-series", 2, 0, None, models, tasks=["a", "b", "average"], rows=rows)


def test_paper_layout_marks_mtl_below_stl():
    table = {row[0]: row[1:] for row in metric_table(_report(), "auroc", percent=False, digits=4)}
    assert table["mtl-lstm"][0] == "0.7000 ± 0.1000 ↓"
    assert table["mtl-lstm"][1] == "0.9000 ± 0.0000"
    assert table["stl-lstm"][2] == "0.6050 ± 0.0050"
    assert not table["mtl-lstm"][2].endswith(" ↓")
    assert paper_table_markdown(_report(), "auroc").splitlines()[0].startswith("| Model | a | b | Average |")
    percent = {row[0]: row[1:] for row in metric_table(_report(), "auroc")}  # report.md: in %
    assert percent["stl-lstm"][2] == "60.5 ± 0.5"


def _report_with_paper_baseline(baselines="ours"):
    """tp-amtl against our stl-lstm and the public stl-lstm-public over 3 runs (runs share splits)."""
    values = {"stl-lstm": [0.80, 0.82, 0.84], "stl-lstm-public": [0.70, 0.71, 0.75], "tp-amtl": [0.78, 0.80, 0.79]}
    rows = [{"model": model, "task": task, "run": run, "metric": "auroc", "value": v}
            for model, vs in values.items() for run, v in enumerate(vs) for task in ("a", "average")]
    models = [ModelEntry("stl-lstm", "clinical", None, ""), ModelEntry("stl-lstm-public", "clinical", None, ""),
              ModelEntry("tp-amtl", "clinical", "stl-lstm", "", "stl-lstm-public")]
    return CompareReport("x", "time-series", 3, 0, None, models, tasks=["a", "average"], rows=rows,
                         baselines=baselines)


def test_counterparts_per_baselines_choice():
    tp = ModelEntry("tp-amtl", "clinical", "stl-lstm", "", "stl-lstm-public")
    assert tp.counterparts("ours") == [("ours", "stl-lstm")]
    assert tp.counterparts("paper") == [("paper", "stl-lstm-public")]
    assert tp.counterparts("both") == [("ours", "stl-lstm"), ("paper", "stl-lstm-public")]
    bmtl = ModelEntry("bmtl", "vmtl", "stl", "")  # the paper's baseline is ours: listed once
    assert bmtl.counterparts("paper") == [("paper", "stl")] and bmtl.counterparts("both") == [("ours", "stl")]
    assert ModelEntry("stl", "vmtl", None, "").counterparts("both") == []
    with pytest.raises(ValueError, match="--baselines must be one of ours, paper, both"):
        tp.counterparts("public")


def test_markers_and_paired_differences_against_both_baselines():
    from negtransfer.report.compare import baseline_differences, report_markdown

    cells = {b: {r[0]: r[1:] for r in metric_table(_report_with_paper_baseline(b), "auroc", percent=False)}
             for b in ("ours", "paper", "both")}
    assert cells["ours"]["tp-amtl"][1] == "0.790 ± 0.006 ↓"  # below stl-lstm's 0.820
    assert cells["paper"]["tp-amtl"][1] == "0.790 ± 0.006"  # above stl-lstm-public's 0.720
    assert cells["both"]["tp-amtl"][1] == "0.790 ± 0.006 ↓"
    worse_than_public = _report_with_paper_baseline("both")
    worse_than_public.rows = [{**r, "value": 0.6} if r["model"] == "tp-amtl" else r for r in worse_than_public.rows]
    assert metric_table(worse_than_public, "auroc", percent=False)[2][1].endswith(" ↓ ⇣")
    diffs = {d["kind"]: d for d in baseline_differences(_report_with_paper_baseline("both"), "auroc")}
    assert set(diffs) == {"ours", "paper"} and diffs["paper"]["baseline"] == "stl-lstm-public"
    assert diffs["ours"]["mean"] == pytest.approx(-0.03) and diffs["ours"]["better"] == 0
    assert diffs["paper"]["mean"] == pytest.approx(0.07) and diffs["paper"]["better"] == 3
    # paired s.e.: of the run-by-run differences 0.08, 0.09, 0.04
    assert diffs["paper"]["se"] == pytest.approx(float(np.std([0.08, 0.09, 0.04], ddof=1) / np.sqrt(3)))
    text = report_markdown(_report_with_paper_baseline("both"))
    assert "## Paired differences from the single-task baselines (auroc, average, in %)" in text
    assert "| tp-amtl | stl-lstm-public | paper | +7.0 ± 1.5 | 3/3 |" in text
    assert "The paper's public baselines: tp-amtl vs stl-lstm-public." in text
    assert "Paired differences" not in report_markdown(_report_with_paper_baseline("ours"))
    missing = _report_with_paper_baseline("paper")
    missing.models = [m for m in missing.models if m.name != "stl-lstm-public"]
    assert "Not run, so not marked against: stl-lstm-public." in report_markdown(missing)
