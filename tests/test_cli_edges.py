"""The last edges of the command line (issue 28), each run through the CLI, and a seeded fuzz over them.

Every case ends as the issue asks: one ``error:`` line and exit code 2 before any training, or a ``note:``
where the toolkit adapts, or the result with the fix; none ends in a traceback or in silent wrong numbers.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from negtransfer.cli import app

runner = CliRunner()
FAST = ["--epochs", "2", "--patience", "1", "--repeats", "2"]
SRC = Path(__file__).resolve().parents[1] / "src" / "negtransfer"


def _rows(rng: random.Random, n: int = 60) -> list[list[str]]:
    rows = [["x1", "x2", "x3", "a", "b", "c"]]
    for _ in range(n):
        x = [rng.gauss(0, 1) for _ in range(3)]
        rows.append([f"{v:.3f}" for v in x] + [str(int(x[0] > 0)), str(int(x[1] > 0)), f"{x[2] * 2:.3f}"])
    return rows


def _write(path: Path, rows) -> Path:
    path.write_text("\n".join(",".join(r) for r in rows) + "\n")
    return path


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    return _write(tmp_path_factory.mktemp("edges") / "data.csv", _rows(random.Random(0)))


def _error_line(res) -> str:
    """The one ``error:`` line of an exit-2 result (notes and warnings aside)."""
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip() and not ln.startswith(("note: ", "warning: "))]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    return lines[0]


def _gains(table: Path, out: Path, *extra: str):
    return runner.invoke(app, ["gains", "--data", str(table), "--tasks", "a,b,c", "--groups", "all",
                               "--out", str(out), *FAST, *extra])


# ------------------------------------------------------------------ bad inputs: one error line, nothing trained
@pytest.mark.parametrize("seed", [2**63, 2**32])
def test_seed_beyond_the_range_is_one_error_and_leaves_no_store(table, tmp_path, seed):
    line = _error_line(_gains(table, tmp_path / "o", "--seed", str(seed)))
    assert "--seed" in line and "4294967295" in line
    assert not (tmp_path / "o").exists()  # no empty store left behind


def test_largest_seed_runs(table, tmp_path):
    res = _gains(table, tmp_path / "o", "--seed", str(2**32 - 1), "--repeats", "1")
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("option, value", [("--tasks", "a,,b"), ("--tasks", "a,b,"), ("--features", "x1,,x2")])
def test_an_empty_name_in_a_list_is_an_error(table, tmp_path, option, value):
    args = ["gains", "--data", str(table), "--groups", "all", "--out", str(tmp_path / "o"), *FAST, option, value]
    if option == "--features":
        args += ["--tasks", "a,b"]
    line = _error_line(runner.invoke(app, args))
    assert option in line and "empty name" in line


def test_feature_beyond_float32_is_one_error_before_training(tmp_path):
    rows = _rows(random.Random(1))
    rows[7][0] = "1e39"  # finite in float64, infinite in float32
    data = _write(tmp_path / "big.csv", rows)
    for command in (["gains", "--groups", "all"], ["group", "--budget", "2", "--train-groups", "2"]):
        res = runner.invoke(app, [*command, "--data", str(data), "--tasks", "a,b,c", "--out",
                                  str(tmp_path / command[0]), *FAST])
        line = _error_line(res)
        assert "'x1'" in line and "float32" in line and "warning" not in res.stderr
        assert not (tmp_path / command[0] / "runs.sqlite").exists()


# ------------------------------------------------------------------ divergence
def test_diverged_gains_are_named_and_left_out(table, tmp_path):
    res = _gains(table, tmp_path / "o", "--lr", "1e30")
    assert res.exit_code == 0, res.output
    assert "diverged" in res.stderr and "never improved on its initial weights" in res.stderr
    assert "model(s) diverged" in res.stdout
    import pandas as pd

    frame = pd.read_csv(tmp_path / "o" / "gains.csv")
    assert frame["gain"].isna().all()  # no longer exactly 0.0
    assert (frame["diverged_repeats"] == 2).all()
    report = json.loads((tmp_path / "o" / "gains.json").read_text())
    assert {d["group"] for d in report["diverged"]} >= {"a", "b", "c", "a+b", "a+b+c"}


def test_trained_gains_keep_their_numbers(table, tmp_path):
    res = _gains(table, tmp_path / "o", "--lr", "0.05")
    assert res.exit_code == 0, res.output
    import pandas as pd

    frame = pd.read_csv(tmp_path / "o" / "gains.csv")
    assert frame["gain"].notna().all() and (frame["diverged_repeats"] == 0).all()
    assert json.loads((tmp_path / "o" / "gains.json").read_text())["diverged"] == []


def test_group_stops_when_its_references_diverge(table, tmp_path):
    res = runner.invoke(app, ["group", "--data", str(table), "--tasks", "a,b,c", "--budget", "2",
                              "--train-groups", "2", "--rounds", "1", "--lr", "1e30", "--out", str(tmp_path / "o"),
                              *FAST])
    line = _error_line(res)
    assert "diverged" in line and "STL of a" in line and "--lr" in line
    assert (tmp_path / "o" / "runs.sqlite").exists()  # the runs are kept
    assert not (tmp_path / "o" / "report.json").exists()


def test_group_leaves_a_diverged_training_group_out(table, tmp_path, monkeypatch):
    """A training group whose model diverged: not measured, never chosen, named in report.md, console and JSON."""
    from negtransfer.gains import divergence

    real = divergence.divergence_reason

    def pair_ab_diverges(run):  # the pair a+b "never improved"; every other model trained
        return divergence.NEVER_IMPROVED if tuple(run.group) == (0, 1) else real(run)

    monkeypatch.setattr(divergence, "divergence_reason", pair_ab_diverges)
    res = runner.invoke(app, ["group", "--data", str(table), "--tasks", "a,b,c", "--budget", "2",
                              "--train-groups", "3", "--design", "pairs", "--rounds", "1", "--out",
                              str(tmp_path / "o"), *FAST])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["diverged"].startswith("a+b (2 of 2 repeats")
    assert ["a", "b"] not in report["selected_groups"]
    assert "Diverged" in res.stdout
    assert "**Diverged**" in (tmp_path / "o" / "report.md").read_text()


def test_diverged_repeats_are_left_out_of_mean_and_se():
    from negtransfer.gains.divergence import repeat_mean_se

    G = np.array([[[0.1, 0.3, 5.0]]])
    mean, se = repeat_mean_se(G)
    assert mean[0, 0] == pytest.approx(G.mean()) and se[0, 0] == pytest.approx(G.std(ddof=1) / np.sqrt(3))
    mask = np.array([[[False, False, True]]])
    mean, se = repeat_mean_se(G, mask)
    assert mean[0, 0] == pytest.approx(0.2) and se[0, 0] == pytest.approx(np.std([0.1, 0.3], ddof=1) / np.sqrt(2))
    mean, se = repeat_mean_se(G, np.ones_like(mask))
    assert np.isnan(mean[0, 0]) and np.isnan(se[0, 0])


# ------------------------------------------------------------------ notes where the toolkit adapts
def test_oversized_batch_is_cut_with_a_note(table, tmp_path):
    res = _gains(table, tmp_path / "o", "--batch-size", "1000000000", "--repeats", "1")
    assert res.exit_code == 0, res.output
    match = re.search(r"note: --batch-size 1000000000 is more than the (\d+) training rows; using --batch-size \1",
                      res.stderr)
    assert match, res.stderr
    config = json.loads((tmp_path / "o" / "gains.json").read_text())["config"]
    assert config["batch_size"] == int(match.group(1))


def test_quiet_hides_progress_bars_only(table, tmp_path):
    res = _gains(table, tmp_path / "o", "-q", "--repeats", "1")
    assert res.exit_code == 0
    assert "wrote" in res.stdout and "━" not in res.output
    res = runner.invoke(app, ["group", "--data", str(table), "--tasks", "a,b,c", "--budget", "2",
                              "--train-groups", "2", "--rounds", "1", "--out", str(tmp_path / "g"), "-q", *FAST])
    assert res.exit_code == 0, res.output
    assert "Chosen groups" in res.stdout and "report:" in res.stdout


def test_group_summary_and_report_show_standard_errors(table, tmp_path):
    res = runner.invoke(app, ["group", "--data", str(table), "--tasks", "a,b,c", "--budget", "2",
                              "--train-groups", "2", "--rounds", "2", "--out", str(tmp_path / "g"), *FAST])
    assert res.exit_code == 0, res.output
    total = next(ln for ln in res.stdout.splitlines() if ln.startswith("total test loss"))
    assert total.count("±") >= 5, total  # three totals and two gains
    md = (tmp_path / "g" / "report.md").read_text()
    assert "2 training groups (and the all-task group)" in md  # not 3
    report = json.loads((tmp_path / "g" / "report.json").read_text())
    stl, chosen = report["totals"]["stl"], report["totals"]["selected"]
    gain = 1 - chosen / stl  # ETAP eq. 1's sign, in the totals table as in the per-task table
    table_row = next(ln for ln in md.splitlines() if ln.startswith("| **chosen groups**"))
    assert f"{gain * 100:+.1f}%".replace("-", "\u2212") in table_row and "±" in table_row
    task_row = next(ln for ln in md.splitlines() if ln.startswith("| **total**"))
    assert f"{gain * 100:+.1f}%".replace("-", "\u2212") in task_row
    assert set(report["gain_se"]["selected"]) == {"a", "b", "c"} and "selected_vs_all_tasks" in report["total_gain_se"]


# ------------------------------------------------------------------ packaging and console
def test_no_private_typer_import():
    offenders = [str(p) for p in SRC.rglob("*.py") if "typer._click" in p.read_text() or "from click" in p.read_text()]
    assert offenders == []


def test_datasets_keeps_brackets_of_install_hints(monkeypatch):
    import negtransfer.data.builtin as builtin

    row = {"name": "toy", "default": False, "kind": "table", "tasks": 2, "task_kind": "binary", "rows": 10,
           "features": 3, "source": "pkg[extra]", "license": "MIT [see docs]",
           "available": "no: pip install 'negtransfer[datasets]'"}
    monkeypatch.setattr(builtin, "list_builtin", lambda: [row])
    res = runner.invoke(app, ["datasets"])
    assert res.exit_code == 0, res.output
    assert "pip install 'negtransfer[datasets]'" in res.stdout and "MIT [see docs]" in res.stdout


def test_license_is_an_spdx_expression():
    import tomllib

    project = tomllib.loads((SRC.parents[1] / "pyproject.toml").read_text())
    assert project["project"]["license"] == "BSD-3-Clause"
    assert any(req.startswith("setuptools>=77") for req in project["build-system"]["requires"])


# ------------------------------------------------------------------ seeded fuzz over the new cases
def _edge_case(rng: random.Random, root: Path, table: Path):
    """(what is expected, args): one of issue 28's cases with random values."""
    out = str(root / f"out{rng.randrange(10**9)}")
    base = ["--data", str(table), "--tasks", "a,b,c", "--out", out, "--epochs", "1", "--patience", "1",
            "--repeats", "1"]
    command = rng.choice([["gains", "--groups", "all"], ["group", "--budget", "2", "--train-groups", "2",
                                                         "--rounds", "1"]])
    kind = rng.choice(["seed", "names", "float32", "store", "batch", "lr"])
    if kind == "seed":
        return "error:--seed", [*command, *base, "--seed", str(rng.choice([2**32, 2**63, 2**64 + rng.randrange(9)]))]
    if kind == "names":
        names = ["a", "b", "c"]
        names.insert(rng.randrange(4), "")
        return "error:empty name", [*command, *base, "--tasks", ",".join(names)]
    if kind == "float32":
        rows = _rows(rng, 40)
        rows[rng.randrange(1, 41)][rng.randrange(3)] = rng.choice(["1e39", "-4e38", "1.7e308"])
        big = _write(root / f"big{rng.randrange(10**9)}.csv", rows)
        return "error:float32", [*command, *base, "--data", str(big)]
    if kind == "store":
        other = root / rng.choice(["d.csv", "notes.txt", "t.parquet"])
        other.write_text("a,b\n1,2\n")
        return "error:not a run store", [*command, *base, "--store", str(other)]
    if kind == "batch":
        return "note:--batch-size", [*command, *base, "--batch-size", str(rng.choice([10**6, 10**9, 2**40]))]
    return "diverged", [*command, *base, "--lr", str(rng.choice([1e20, 1e30, 1e300]))]


@pytest.mark.parametrize("block", range(2))
def test_edge_fuzz(tmp_path, table, block):
    for seed in range(block * 6, block * 6 + 6):
        expected, args = _edge_case(random.Random(seed), tmp_path, table)
        res = runner.invoke(app, args)
        where = f"seed {seed}: negtransfer {' '.join(args)}\n--- output ---\n{res.output}"
        assert "Traceback" not in res.output and res.exit_code in (0, 2), where
        if expected.startswith("error:"):
            assert expected[len("error:"):] in _error_line(res), where
        elif expected.startswith("note:"):
            assert res.exit_code == 0 and f"note: {expected[len('note:'):]}" in res.stderr, where
        else:  # diverged: named (gains) or one error line (group, whose references diverged)
            assert "diverged" in (res.stderr + res.stdout), where


# ------------------------------------------------------------------ plots
@pytest.mark.rendered_plots  # measures the PNG
def test_long_and_undrawable_task_names_are_shortened(tmp_path):
    from PIL import Image

    from negtransfer.report import plots

    names = ["a" * 80, "動作", "drama", "日本語のタスク名"]
    labels, renamed = plots.axis_labels(names)
    assert labels[0] == "a" * (plots.LABEL_CHARS - 1) + "\u2026" and labels[2] == "drama"
    assert labels[1] == "T2" and labels[3] == "T4"  # the default font has no glyphs for them
    assert renamed == {labels[0]: names[0], "T2": "動作", "T4": "日本語のタスク名"}
    path = plots.plot_affinity_heatmap(np.eye(4) + 0.1, names, tmp_path / "a.png")
    width, height = Image.open(path).size
    assert width < 1400 and height < 1200  # an 80-character name once made it 5358 x 4394 px


def test_rounds_plot_marks_the_final_selection(tmp_path, monkeypatch):
    from negtransfer.jobs.grouping_report import RoundRecord
    from negtransfer.report import plots

    rounds = [RoundRecord(k, (("a", "b"),), 0.1, 0, 0, selection_val_loss=3.0 - 0.1 * k) for k in (1, 2, 3)]
    rounds.append(RoundRecord(4, (("a", "b"),), 0.1, 0, 0, final_among_measured=True, selection_val_loss=2.65))
    seen = {}
    save = plots.save_figure

    def keep(fig, path):
        ax = fig.axes[0]
        seen["ticks"] = [t.get_text() for t in ax.get_xticklabels()]
        seen["texts"] = [t.get_text() for t in ax.texts]
        seen["xlabel"] = ax.get_xlabel()
        return save(fig, path)

    monkeypatch.setattr(plots, "save_figure", keep)
    plots.plot_rounds(rounds, tmp_path / "r.png", stl=3.2)
    assert seen["ticks"] == ["1", "2", "3", "final"]  # 3 rounds, not 4
    assert seen["texts"] == ["2.65"] and "3 played" in seen["xlabel"]


def test_task_gain_plot_draws_error_bars(tmp_path, monkeypatch):
    from negtransfer.report import plots

    test_loss = {"stl": {"a": 1.0, "b": 2.0}, "all_tasks": {"a": 0.9, "b": 2.2}, "selected": {"a": 0.8, "b": 2.1}}
    gain_se = {"all_tasks": {"a": 0.01, "b": 0.02}, "selected": {"a": 0.03, "b": 0.04}}
    seen = {}
    save = plots.save_figure

    def keep(fig, path):
        ax = fig.axes[0]
        seen["bars"] = sorted(round(p.get_width(), 6) for p in ax.patches)
        seen["errorbars"] = len(ax.containers) - 2  # two bar containers, then the error bars
        return save(fig, path)

    monkeypatch.setattr(plots, "save_figure", keep)
    plots.plot_task_losses(test_loss, ["a", "b"], tmp_path / "t.png", gain_se)
    assert seen["bars"] == [-10.0, -5.0, 10.0, 20.0]  # gains in %, positive = lower loss than STL
    assert seen["errorbars"] == 2
