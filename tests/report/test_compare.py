"""The one comparison renderer: paper-layout cells, markers below the single-task counterpart."""

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
