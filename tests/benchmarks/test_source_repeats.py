"""benchmarks/source_repeats.py on a tiny stored job: it reproduces the job's independent holdout from the store,
trains nothing, and stops with an ``error:`` line where the store lacks a run."""

from __future__ import annotations

import json
import sqlite3
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from negtransfer.jobs.sources import run_sources
from negtransfer.runs.store import RunStore

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import source_repeats  # noqa: E402


def _stored_runs(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COUNT(*) FROM runs").fetchone()[0])


def test_source_repeats_reproduces_the_jobs_independent_holdout_from_its_store(tmp_path):
    path = tmp_path / "runs.sqlite"
    args = source_repeats.parse_args(["--dataset", "planted", "--planted-rows", "200", "--targets", "task00",
                                      "--seeds", "0", "--subsets", "12", "--holdout", "6", "--alpha", "3",
                                      "--epochs", "2", "--data-fraction", "0.5", "--steps-fraction", "0.5",
                                      "--store", str(path)])
    data, config = source_repeats.load("planted", 0, None, 200), source_repeats.train_config(args)
    options = source_repeats.job_options(args, "task00", data)
    reports = {kind: run_sources(data, replace(options, surrogate=kind), config, 0, RunStore(path))
               for kind in source_repeats.SURROGATES}
    stored = _stored_runs(path)
    case = source_repeats.read_case(data, options, config, 0, RunStore(path), path)
    assert case.fit.shape == (12, 2) and case.hold.shape == (6, 4) and case.stl.shape == (4,)
    for kind, report in reports.items():
        row = source_repeats.analyse_case(case, kind, options)
        scores = report.holdout.independent.scores
        # the job's surrogate (fitted on the mean of repeats 0, 1), scored on repeats 2, 3: the job's own figures
        np.testing.assert_equal([row["job_f1"], row["job_spearman"], row["job_f1_ceiling"], row["job_noise_ceiling"]],
                                [scores.f1, scores.spearman, scores.f1_ceiling, scores.noise_ceiling])
        assert row["n_harmful"] == scores.n_negative and row["f1_ceiling_stl_noise"] == scores.f1_ceiling
        assert np.isfinite([row["r0_spearman"], row["more_spearman"], row["more_noise_ceiling"],
                            row["fewer_all_spearman"]]).all()
        assert 0 <= row["n_predicted"] <= 6 and 0 <= row["n_base_rate"] <= 6
    assert _stored_runs(path) == stored  # read, nothing trained
    # another job's subsets are not in the store: refused, not trained
    with pytest.raises(SystemExit, match=r"^error: the store .* lacks runs this analysis needs"):
        source_repeats.read_case(data, replace(options, n_subsets=13), config, 0, RunStore(path), path)
    assert _stored_runs(path) == stored
    # the tables, pooled over the one case
    rows = [source_repeats.analyse_case(case, kind, options) for kind in source_repeats.SURROGATES]
    source_repeats.print_pooled(rows, 2)


def test_a_helper_counts_and_f1_of_given_classes():
    predicted = np.array([0.1, 0.5, 0.3, 0.5])
    assert source_repeats.top_count(predicted, 2).tolist() == [False, True, False, True]
    assert not source_repeats.top_count(predicted, 0).any() and source_repeats.top_count(predicted, 9).all()
    measured = np.array([0.0, 1.0, 0.0, 0.0])  # one harmful subset at the line 0.5: the minority class
    assert source_repeats.f1_of_classes(np.array([False, True, False, True]), measured, 0.5) == pytest.approx(2 / 3)
    assert source_repeats.noise_words(0.01, 0.02) == "within one s.e."
    assert source_repeats.noise_words(0.03, 0.02) == "beyond one s.e."
    assert source_repeats.noise_words(-0.05, 0.02) == "beyond two s.e."


def test_the_share_count_test_pairs_by_case_and_reads_rows_back(tmp_path, capsys):
    def row(dataset, target, seed, job, share):
        return {"dataset": dataset, "target": target, "seed": seed, "surrogate": "linear", "job_f1": job,
                "f1_base_rate": share}

    rows = [row("exam", "a", 0, 0.2, 0.5), row("exam", "a", 1, 0.4, 0.5),  # target a: +0.3, +0.1 -> +0.2
            row("adult", "b", 0, 0.1, 0.0), row("adult", "b", 1, float("nan"), 0.9)]  # b: -0.1 (NaN case left out)
    (test,) = source_repeats.share_count_test(rows)
    assert test["cases"] == 4 and test["cases_defined"] == 3 and test["targets"] == 2
    assert test["datasets"] == ["adult", "exam"]
    assert test["difference_over_targets"][0] == pytest.approx(0.05)  # mean of +0.2 and -0.1
    assert test["difference_over_targets"][1] == pytest.approx(0.15)  # s.e. of two values: |0.2 + 0.1| / 2
    assert test["difference_over_cases"][0] == pytest.approx(0.1)  # mean of +0.3, +0.1, -0.1
    paths = [tmp_path / f"{dataset}.json" for dataset in ("exam", "adult")]
    for path in paths:
        path.write_text(json.dumps([r for r in rows if r["dataset"] == path.stem]))
    capsys.readouterr()
    read = source_repeats.main(["--from-rows", *map(str, paths)])
    assert [(r["dataset"], r["target"], r["seed"]) for r in read] == [(r["dataset"], r["target"], r["seed"])
                                                                      for r in rows]
    assert "| adult, exam | linear | 4 (3, 2 targets) | " in capsys.readouterr().out
