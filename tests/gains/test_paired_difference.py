"""The paired difference's record (report.json's ``audit_difference``, ``test_difference``, the sources check's
``paired`` and ``test_paired``) and the verdict's words in each style."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from negtransfer.gains.paired_rows import (
    NOISE_VERDICTS,
    VERDICT_PHRASES,
    PairedDifference,
    paired_difference,
    row_contributions,
    verdict_phrase,
)


def test_to_dict_keeps_report_json_key_order_and_reads_back_through_json():
    rng = np.random.default_rng(3)
    losses = {0: rng.normal(0.1, 0.3, (3, 40)), 1: rng.normal(-0.05, 0.3, (3, 25))}
    positions = {0: np.arange(40), 1: np.arange(30, 55)}
    z = row_contributions(losses, positions, 55)
    d = paired_difference(z.mean(axis=1), z, 1.0)
    record = d.to_dict()
    assert list(record) == ["mean", "se", "se_runs", "se_rows", "verdict"]
    assert record["verdict"] in NOISE_VERDICTS and record["se"] >= record["se_runs"]
    back = PairedDifference.from_dict(json.loads(json.dumps(record)))
    assert back == d and json.dumps(back.to_dict()) == json.dumps(record)


def test_without_rows_the_se_is_the_over_runs_one_and_nan_survives_the_round_trip():
    d = paired_difference(np.array([0.3, 0.1, 0.2]), None, 1.0)
    assert d.se == d.se_runs and math.isnan(d.se_rows) and d.verdict == "worse"
    back = PairedDifference.from_dict(json.loads(json.dumps(d.to_dict())))
    assert (back.mean, back.se, back.se_runs, back.verdict) == (d.mean, d.se, d.se_runs, d.verdict)
    assert math.isnan(back.se_rows)


def test_a_record_written_before_the_row_se_reads_back_with_nan_and_no_verdict():
    old = PairedDifference.from_dict({"mean": -0.02, "se": 0.01})
    assert (old.mean, old.se, old.verdict) == (-0.02, 0.01, "")
    assert math.isnan(old.se_runs) and math.isnan(old.se_rows)


def test_null_in_strict_report_json_reads_back_as_nan():
    from negtransfer.report.jsonio import dumps_strict

    d = PairedDifference(0.1, float("nan"), float("nan"), float("nan"), "better")
    back = PairedDifference.from_dict(json.loads(dumps_strict(d.to_dict())))
    assert back.mean == 0.1 and back.verdict == "better"
    assert all(math.isnan(x) for x in (back.se, back.se_runs, back.se_rows))


def test_with_verdict_changes_only_the_words():
    d = PairedDifference(0.5, 0.1, 0.1, 0.2, "worse")
    loss = d.with_verdict(verdict_phrase(d.verdict, "loss"))
    assert loss == PairedDifference(0.5, 0.1, 0.1, 0.2, "higher beyond noise")


def test_every_verdict_has_words_in_every_style():
    assert [verdict_phrase(v) for v in NOISE_VERDICTS] == ["better beyond noise", "within noise",
                                                           "worse beyond noise"]
    assert [verdict_phrase(v, "than") for v in NOISE_VERDICTS] == ["better beyond noise than", "within noise of",
                                                                   "worse beyond noise than"]
    assert [verdict_phrase(v, "loss") for v in NOISE_VERDICTS] == ["lower beyond noise", "within noise",
                                                                   "higher beyond noise"]
    assert all(set(phrases) == set(NOISE_VERDICTS) for phrases in VERDICT_PHRASES.values())
    with pytest.raises(ValueError, match="verdict style 'loud'"):
        verdict_phrase("better", "loud")
    with pytest.raises(ValueError, match="unknown verdict 'best'"):
        verdict_phrase("best")
