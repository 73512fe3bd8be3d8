"""Where a grouping job's time went: the trainer's and the predictor's shares, seconds per trained run."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from negtransfer.data.synthetic import make_synthetic_tasks
from negtransfer.jobs.grouping import GroupingOptions, run_grouping
from negtransfer.jobs.grouping_report import GroupingReport, JobTiming
from negtransfer.runs.store import RunStore
from negtransfer.train.config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]


def test_shares_and_seconds_per_run():
    timing = JobTiming(job_seconds=20.0, trainer_seconds=15.0, predictor_seconds=1.0, selection_seconds=0.5,
                       trained_runs=60, predictor_fits=7, predictor_setup_seconds=0.6)
    assert (timing.trainer_share, timing.predictor_share, timing.selection_share) == (0.75, 0.05, 0.025)
    assert timing.seconds_per_trained_run == 0.25
    assert timing.summary() == ("training 75% of the job's 20.0 s (0.250 s per trained run, 60 runs), "
                                "gain predictor 5% (7 fits; 3% its imports), selection 2%")
    assert JobTiming.from_dict(json.loads(json.dumps(timing.to_dict()))) == timing
    stored = JobTiming(2.0, 0.1, 1.0, 0.1, trained_runs=0, predictor_fits=1)
    assert stored.seconds_per_trained_run is None and "every run was in the run store" in stored.summary()
    assert math.isnan(JobTiming(0.0, 0.0, 0.0, 0.0, 0, 0).trainer_share)


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    """The same small job twice on one store: the first trains every run, the second reads them back."""
    ds = make_synthetic_tasks(n_tasks=4, n_clusters=2, n_samples=200, seed=2)
    store = RunStore(tmp_path_factory.mktemp("timing") / "s.sqlite")
    options = GroupingOptions(budget=2, n_train_groups=3, repeats=2, rounds=2)
    first = run_grouping(ds, options, TrainConfig(max_epochs=3), 0, store).report
    again = run_grouping(ds, options, TrainConfig(max_epochs=3), 0, store).report
    return first, again


def test_the_job_reports_its_time_shares(jobs):
    first, again = jobs
    timing = first.timing
    assert timing is not None and timing.trained_runs == first.runs.trained > 0
    assert timing.job_seconds == first.seconds["total"]
    assert timing.trainer_seconds > 0 and timing.predictor_seconds > 0 and timing.predictor_fits >= 2
    assert 0 < timing.predictor_setup_seconds < timing.predictor_seconds
    # three disjoint parts of the job
    assert timing.trainer_seconds + timing.predictor_seconds + timing.selection_seconds <= timing.job_seconds
    assert timing.seconds_per_trained_run == pytest.approx(timing.trainer_seconds / first.runs.trained)
    assert again.timing is not None and again.timing.trained_runs == 0
    assert again.timing.seconds_per_trained_run is None
    assert GroupingReport.from_dict(first.to_dict()).timing == timing


def test_report_md_has_one_time_line(jobs, tmp_path):
    from negtransfer.report.markdown import write_group_report

    text = write_group_report(jobs[0], tmp_path, plots=False).read_text()
    lines = [line for line in text.splitlines() if line.startswith("**Time**: ")]
    assert len(lines) == 1 and "gain predictor" in lines[0] and "per trained run" in lines[0]


def test_same_numbers_ignores_the_time_shares(jobs, tmp_path):
    """tools/same_numbers/diff.py: a report written before the time shares existed and one with them are the
    same numbers (the timing key and the time line are ignored); every other line is still compared."""
    from negtransfer.report.markdown import write_group_report

    first, _ = jobs
    slower = JobTiming(first.timing.job_seconds * 2, 1.0, 2.0, 0.0, first.timing.trained_runs, 3, 1.5)
    before, after = tmp_path / "before" / "job", tmp_path / "after" / "job"
    for folder, report in ((before, replace(first, timing=None)), (after, replace(first, timing=slower))):
        write_group_report(report, folder, plots=False)
        (folder / "report.json").write_text(json.dumps(report.to_dict()))
    diff = [sys.executable, str(ROOT / "tools" / "same_numbers" / "diff.py"), str(before.parent), str(after.parent)]
    same = subprocess.run(diff, capture_output=True, text=True)
    assert same.returncode == 0, same.stdout
    text = (after / "report.md").read_text()
    (after / "report.md").write_text(text.replace("**Runs**: ", "**Runs**: 1 more, "))
    assert subprocess.run(diff, capture_output=True, text=True).returncode == 1  # other lines are still compared
