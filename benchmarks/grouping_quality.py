"""How good are the chosen groups? The grouping job's quality tables (docs/methods/grouping.md).

For each dataset (``grouping_datasets.py``: 10 tasks, 1023 groups) and seed,
every group is trained ``--repeats`` times once (``--exhaustive``, one run store
per dataset and seed); then the grouping job runs in each variant below at each
|G_train| and budget B, reading the store (a variant trains nothing new, so
the variants are compared on the same runs). Per case it records, on the TEST
split (the job itself chooses on validation data):

* the chosen groups' summed test loss relative to STL and to the all-task model;
* the gap to the test oracle (the best budget-B grouping chosen and scored on
  test losses, each task in its best chosen group) and to the validation oracle
  (the best grouping a validation-only chooser could reach with every group
  measured), and the gap to that validation oracle measured on validation
  losses (how close the search came to the best grouping it could see), and
  the validation oracle's own gap to the test oracle (what choosing on
  validation data costs even with every group measured);
* Pearson, within-task Pearson and the per-task-mean baseline's Pearson of the
  one-shot predictor on every group it was not fitted on;
* the runs the recommendation used, relative to the one-shot protocol's;
* the recommendation (the chosen groups, or the STL or all-task fallback of
  the report's verdict) against STL and the all-task model on test, and
  whether the report's verdict ("the chosen groups beat the alternatives it
  compared") agrees with the test split's;
* for audited variants, the verdict against the test split's twice (:func:`print_three_way`): binary (the
  verdict "better" and the chosen groups' summed test loss below both alternatives', or neither) and
  three-way (the audit's better / within noise / worse against the better alternative equals the test rows'
  own, the same paired per-row formula and margin on the test rows), each with the audit's s.e. over rows and
  runs (the job's) and over runs only (before), on the same runs.

Variants (``--variants``; ``default`` is the CLI's defaults):

* ``default``: the CLI defaults (see ``negtransfer group --help``);
* ``one-shot``: the default with ``--rounds 1`` (the paper's protocol, repeats kept);
* ``one-shot-r1``: ``--rounds 1 --repeats 1`` (this project's behaviour before repeats);
* ``refine-r1``: the default with ``--repeats 1``;
* ``pairs`` / ``stratified`` / ``random``: the default with that ``--design``;
* ``mean-gain``: the default with ``--objective mean-gain``;
* ``kappa0`` / ``kappa2``: the default with ``--kappa 0`` (no optimism) or 2;
* ``rounds3`` / ``rounds10``: the default with ``--rounds 3`` or 10;
* ``train5`` / ``train20``: the default with 5 or 20 training groups (whatever ``--train-groups`` says);
* ``no-momentum`` / ``until-best`` / ``momentum-all``: affinity variants;
* ``paper``: the paper's protocol exactly: one round, one repeat, every
  candidate scored by prediction, predictor fitted on TEST gains;
* ``audit`` / ``audit0.1`` / ``audit0.2`` / ``audit0.3``: the default with ``--audit 0.2`` (0.1, 0.2, 0.3): the
  verdict and the fallback decided on held-back audit rows (issue 25); ``audit-val``: 0.2 drawn from the
  validation rows only. Audit rows change the training rows, so these variants train their own runs (with
  ``--exhaustive-store``, every group of the audited data);
* ``refit``: the default with ``--refit``: after the decision the chosen groups, STL and the all-task model are
  retrained on every non-test row for each run's stopping epoch; ``audit+refit`` does so after an audited decision
  (the audit rows then train the deployed models too). Their "what a user gets" is the refit recommendation's
  test total (the refit columns and the paired table); ``refit-passes`` (``audit+refit-passes``) trains each
  refit its stopping epoch unscaled (``--refit-epochs passes``) instead of scaled by the row ratio (the default);
* ``folds3`` / ``folds5``: cross-validated gains, ``--folds 3`` or 5 with one repeat (runs per group: 3 or 5,
  against the default's 3 repeats of one split); their runs are not in the exhaustive store (it holds one split),
  so they run without ``--exhaustive`` and their chosen groups (and each task's group) are scored on the
  exhaustive store's test losses (the K = 1 models, mean over ``--repeats``), as the default's are;
* ``A+B``: variants combined (``paper+no-momentum``: the paper's protocol
  with the affinity scored without the momentum term).

Prints one Markdown table of means ± s.e. over seeds per dataset, and writes
every case to ``OUT/quality.json``.

Run: ``python benchmarks/grouping_quality.py [--datasets yeast chicago chemical tv16] [--seeds 0 1 2]
[--train-groups 5 10] [--budgets 2 3 4] [--variants default one-shot ...] [--data-dir DIR] [--repeats 3]``.
``--audit-cost FRACTION``: only what holding back audit rows costs STL and the all-task model on test.
``--no-exhaustive``: train only what each variant's job asks for (no test or validation oracle, no
prediction quality on every group): the cheap way to measure the recommendation and the verdict.
``--smoke``: yeast's first 4 tasks, seed 0, B = 2, 3 training groups, the default, paper, audit and audit+refit variants,
2 epochs, stores named smoke-* in ``--out`` (a check that it runs).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import grouping_datasets
import numpy as np
from grouping_datasets import mean_se

from negtransfer.gains.paired_rows import NOISE_VERDICTS, noise_verdict
from negtransfer.jobs.grouping import AUDIT_MARGIN_SE, GroupingOptions, run_grouping
from negtransfer.runs.store import RunStore
from negtransfer.train.config import TrainConfig

DEFAULT = GroupingOptions()
VARIANTS = {
    "default": {},
    "one-shot": {"rounds": 1},
    "one-shot-r1": {"rounds": 1, "repeats": 1},
    "refine-r1": {"repeats": 1},
    "random": {"design": "random"},
    "stratified": {"design": "stratified"},
    "pairs": {"design": "pairs"},
    "mean-gain": {"objective": "mean-gain"},
    "total-loss": {"objective": "total-loss"},
    "no-momentum": {"affinity_momentum": False},
    "momentum": {"affinity_momentum": True},
    "until-best": {"affinity_epochs": "until-best"},
    "all-epochs": {"affinity_epochs": "all"},
    "train20": {"n_train_groups": 20},
    "train5": {"n_train_groups": 5},
    "rounds3": {"rounds": 3},
    "rounds10": {"rounds": 10},
    "kappa0": {"kappa": 0.0},
    "kappa2": {"kappa": 2.0},
    "paper": {"rounds": 1, "repeats": 1, "use_measured": False, "gain_split": "test"},
    "audit": {"audit": 0.2},
    "audit0.1": {"audit": 0.1},
    "audit0.2": {"audit": 0.2},
    "audit0.3": {"audit": 0.3},
    "audit-val": {"audit": 0.2, "audit_source": "validation"},
    "refit": {"refit": True},
    "refit-passes": {"refit": True, "refit_epochs": "passes"},
    "folds3": {"folds": 3, "repeats": 1},
    "folds5": {"folds": 5, "repeats": 1},
}
PCT = "{:+.2%}"


def variant_options(name: str) -> dict:
    """The job options of a variant; ``A+B`` merges A's and B's (B's win)."""
    options = {}
    for part in name.split("+"):
        if part not in VARIANTS:
            raise SystemExit(f"unknown variant {part!r}; the variants are: {', '.join(VARIANTS)} (combine with +)")
        options.update(VARIANTS[part])
    return options
KEYS = ("vs_stl", "vs_all", "gap_test", "gap_val", "pearson", "within", "per_task_mean", "runs_ratio",
        "reliability")


def verdict_agrees(report: dict) -> bool:
    """Does the report's verdict (the chosen groups beat every alternative it compared, on audit or validation
    rows) agree with the test split's (their test total below each of those alternatives')?"""
    t, comparison = report["totals"], report["comparison"]
    compared = [key for key in ("stl", "all_tasks")
                if comparison.get("decided_on") == "audit" or {"stl": "STL (one model per task)",
                                                               "all_tasks": "all-task model"}[key]
                in comparison["validation_loss"]]
    return bool(comparison["better_than_alternatives"]) == all(t["selected"] < t[key] for key in compared)


def case(report: dict) -> dict:
    t = report["totals"]
    pred = report["prediction"]
    optimal = report.get("optimal")
    recommended = t[report["comparison"].get("recommendation", "selected")]
    return {
        "vs_stl": t["selected"] / t["stl"] - 1, "vs_all": t["selected"] / t["all_tasks"] - 1,
        "gap_test": optimal["test_oracle"]["gap"] if optimal else None,
        "gap_val": optimal["validation_oracle"]["gap"] if optimal else None,
        "val_gap_on_val": optimal["validation_oracle"].get("val_gap") if optimal else None,
        "val_oracle_gap": optimal["validation_oracle"]["total"] / optimal["test_oracle"]["total"] - 1 if optimal else None,
        "oracle_vs_stl": t["test_oracle"] / t["stl"] - 1 if optimal else None,
        "pearson": pred["pearson"], "within": pred["within_task_pearson"],
        "per_task_mean": pred["per_task_mean_pearson"],
        "runs_ratio": report["refinement"]["runs_vs_one_shot"],
        "reliability": report["noise"]["reliability"],
        "split_reliability": (report["noise"].get("split_noise") or {}).get("split_reliability"),
        "never_worse": t["selected"] <= min(t["stl"], t["all_tasks"]),
        "selected": report["selected_groups"], "rounds": report["refinement"]["rounds_run"],
        "recommendation": report["comparison"].get("recommendation", "selected"),
        "decided_on": report["comparison"].get("decided_on", "validation"),
        "rec_vs_stl": recommended / t["stl"] - 1, "rec_vs_all": recommended / t["all_tasks"] - 1,
        "rec_never_worse": recommended <= min(t["stl"], t["all_tasks"]),
        "verdict_agrees": verdict_agrees(report),
        "audit_difference": report["comparison"].get("audit_difference"),
        "audit_loss": report["comparison"].get("audit_loss"),
        "noise_verdict": report["comparison"].get("noise_verdict"),
        "best_alternative": report["comparison"].get("best_alternative"),
        "test_difference": report["comparison"].get("test_difference"),
        "totals": {key: t[key] for key in ("selected", "stl", "all_tasks")},
        **refit_case(report),
    }


def refit_case(report: dict) -> dict:
    """The refit block of a ``--refit`` case (empty without one): the refit test totals of the chosen groups, STL
    and the all-task model, the recommendation's, and ``user_total`` (what a user gets: the refit recommendation)."""
    refit = report.get("refit")
    if not refit:
        return {}
    totals = {key: option["total"] for key, option in refit["options"].items()}
    recommended = totals[refit["recommendation"]]
    return {"refit_totals": totals, "refit_se": {key: option["se"] for key, option in refit["options"].items()},
            "refit_rec_vs_stl": recommended / totals["stl"] - 1, "refit_rec_vs_all": recommended / totals["all_tasks"] - 1,
            "refit_rows": refit["rows"], "user_total": recommended}


def user_total(r: dict) -> float:
    """What a user of the case gets: the refit recommendation's test total, else the early-stopped one's."""
    return r["user_total"] if "user_total" in r else r["totals"][r["recommendation"]]


def rescored(report: dict, every: dict, names, budget: int) -> dict:
    """:func:`case` of a job run without ``--exhaustive``: its choice (groups and each task's group) scored on
    the exhaustive store's results ``every`` (group -> repeated result), with that store's oracles."""
    from negtransfer.jobs.grouping import oracle_grouping

    n = len(names)
    index = {name: t for t, name in enumerate(names)}
    where = {index[task]: tuple(sorted(index[m] for m in group)) for task, group in report["task_group"].items()}
    selected = sum(every[where[t]].test_loss[t] for t in range(n))
    stl = sum(every[(t,)].test_loss[t] for t in range(n))
    everything = every[tuple(range(n))]
    all_tasks = sum(everything.test_loss[t] for t in range(n))
    test_oracle = sum(oracle_grouping(every, n, budget, by="test_loss")[1].values())
    val_oracle = sum(oracle_grouping(every, n, budget, by="val_loss")[1].values())
    totals = {**report["totals"], "selected": selected, "stl": stl, "all_tasks": all_tasks, "test_oracle": test_oracle}
    row = case({**report, "totals": totals, "optimal": None})
    row.update({"gap_test": selected / test_oracle - 1, "gap_val": selected / val_oracle - 1, "val_gap_on_val": None,
                "val_oracle_gap": val_oracle / test_oracle - 1, "oracle_vs_stl": test_oracle / stl - 1})
    return row


def table_head(columns: list[str], title: str | None = None) -> None:
    """Print a markdown table's ``### title`` and a blank line (when given), its header row and its separator."""
    if title is not None:
        print(f"### {title}")
        print()
    print(table_row(columns))
    print("|" + "---|" * len(columns))


def table_row(cells: list) -> str:
    """One markdown table row: the cells (``str``) between bars."""
    return "| " + " | ".join(map(str, cells)) + " |"


def print_tables(rows: list[dict], datasets, variants, train_groups, budgets) -> None:
    """One Markdown table per dataset: means ± s.e. over seeds of every (variant, |G_train|, B)."""
    print()
    for name in datasets:
        sel = [r for r in rows if r["dataset"] == name]
        if not sel:
            continue
        seeds = sorted({r["seed"] for r in sel})
        table_head(["variant", "\\|G_train\\|", "B", "chosen vs STL", "chosen vs all-task", "gap to test oracle",
                    "gap to val. oracle", "same, on validation", "val. oracle to test oracle", "never worse", "Pearson",
                    "within-task", "per-task mean", "runs / one-shot", "recommended vs STL", "recommended vs all-task",
                    "recommended never worse", "verdict agrees with test"],
                   f"{name} (seeds {', '.join(map(str, seeds))}; mean ± s.e. over seeds)")
        for variant in variants:
            for n_train in train_groups:
                for budget in budgets:
                    c = [r for r in sel if r["variant"] == variant and r["train_groups"] == n_train
                         and r["budget"] == budget]
                    if not c:
                        continue
                    percents = [mean_se([r.get(key) for r in c], PCT) for key in (
                        "vs_stl", "vs_all", "gap_test", "gap_val", "val_gap_on_val", "val_oracle_gap")]
                    print(table_row([variant, n_train, budget, *percents,
                                     f"{sum(r['never_worse'] for r in c)}/{len(c)}",
                                     *(mean_se([r[key] for r in c]) for key in ("pearson", "within", "per_task_mean")),
                                     f"{np.mean([r['runs_ratio'] for r in c]):.2f}",
                                     mean_se([r.get('rec_vs_stl') for r in c], PCT),
                                     mean_se([r.get('rec_vs_all') for r in c], PCT),
                                     f"{sum(bool(r.get('rec_never_worse')) for r in c)}/{len(c)}",
                                     f"{sum(bool(r.get('verdict_agrees')) for r in c)}/{len(c)}"]))
        print()



MARGINS = (0.0, 1.0, 2.0)
ALTERNATIVE_KEYS = {"STL (one model per task)": "stl", "all-task model": "all_tasks"}


def relative_totals(r: dict) -> dict:
    """The case's test totals relative to STL's (from ``totals``, or from its ratios in rows written before)."""
    if r.get("totals"):
        return {k: v / r["totals"]["stl"] for k, v in r["totals"].items()}
    selected = 1 + r["vs_stl"]
    return {"selected": selected, "stl": 1.0, "all_tasks": selected / (1 + r["vs_all"])}


def recommend_with_margin(r: dict, margin: float, se_key: str = "se") -> tuple[str, bool]:
    """(recommendation, verdict) of an audited case had the job kept its choice only when it beat the better
    alternative (the lower audit loss) by more than ``margin`` standard errors of the paired difference
    (``se_key``: ``"se"`` over audit rows and runs, the job's; ``"se_runs"`` over runs only, the s.e. before)."""
    difference = r["audit_difference"]
    best = max(difference, key=lambda name: difference[name]["mean"])  # chosen minus the lowest alternative: largest
    se = difference[best].get(se_key, difference[best]["se"])
    se = se if se == se else 0.0
    kept = difference[best]["mean"] < -margin * se
    return ("selected" if kept else ALTERNATIVE_KEYS[best]), kept


def three_way(r: dict, se_key: str = "se") -> tuple[str, str]:
    """(audit verdict, test verdict) of an audited case, each three-way (better beyond noise / within noise /
    worse beyond noise, :func:`~negtransfer.gains.paired_rows.noise_verdict` at the job's margin): the chosen
    groups against the better alternative on those rows (the lower summed loss: on the audit rows the report's,
    on the test rows the test split's own), the paired difference's s.e. over rows and runs on test, and
    ``se_key`` (``"se"`` rows and runs, ``"se_runs"`` runs only) on the audit rows."""
    audit, test = r["audit_difference"], r["test_difference"]
    best = max(audit, key=lambda name: audit[name]["mean"])
    d = audit[best]
    se = d.get(se_key, d["se"])
    best_test = max(test, key=lambda name: test[name]["mean"])
    return noise_verdict(d["mean"], se, AUDIT_MARGIN_SE), test[best_test]["verdict"]


def print_three_way(rows: list[dict]) -> None:
    """The binary verdict (chosen groups beat both alternatives) and the three-way one against the test split's,
    with the audit's s.e. over rows and runs (the job's) and over runs only (before), on the same runs.

    Binary: the verdict is "better" and the chosen groups' summed test loss is below STL's and the all-task
    model's, or it is not "better" and they are not below both. Three-way: the audit's three-way verdict equals
    the test rows' (the same formula and margin on the test rows' paired per-row differences, against the
    alternative with the lower test total)."""
    audited = [r for r in rows if r.get("decided_on") == "audit" and r.get("test_difference")]
    if not audited:
        return
    table_head(["dataset", "variant", "cases", "binary agrees (rows+runs s.e.)", "binary agrees (runs-only s.e.)",
                "three-way agrees (rows+runs)", "three-way agrees (runs only)", "audit verdicts better/within/worse",
                "test verdicts better/within/worse"],
               "The verdict against the test split's: binary and three-way, both standard errors (same runs)")
    total = np.zeros(4, dtype=int)
    for name, variant, cases in by_dataset_variant(audited):
        counts = np.zeros(4, dtype=int)
        audit_seen, test_seen = dict.fromkeys(NOISE_VERDICTS, 0), dict.fromkeys(NOISE_VERDICTS, 0)
        for r in cases:
            t = relative_totals(r)
            truth = t["selected"] < min(t["stl"], t["all_tasks"])
            new, test = three_way(r, "se")
            old, _ = three_way(r, "se_runs")
            counts += [(new == "better") == truth, (old == "better") == truth, new == test, old == test]
            audit_seen[new] += 1
            test_seen[test] += 1
        total += counts
        print(table_row([name, variant, len(cases), *(f"{c}/{len(cases)}" for c in counts),
                         "/".join(map(str, audit_seen.values())), "/".join(map(str, test_seen.values()))]))
    print(f"| all | | {len(audited)} | " + " | ".join(f"{c}/{len(audited)} ({c / len(audited):.0%})" for c in total)
          + " | | |")
    print()


def by_dataset_variant(rows: list[dict]):
    """The rows grouped by (dataset, variant), in first-seen order: ``(dataset, variant, rows)``."""
    for name, variant in dict.fromkeys((r["dataset"], r["variant"]) for r in rows):
        yield name, variant, [r for r in rows if r["dataset"] == name and r["variant"] == variant]


def print_margins(rows: list[dict]) -> None:
    """For the audited cases: the recommendation and the verdict's agreement with test under other margins."""
    audited = [r for r in rows if r.get("decided_on") == "audit" and r.get("audit_difference")]
    if not audited:
        return
    table_head(["dataset", "variant", "margin (s.e.)", "cases", "recommended vs STL", "recommended never worse",
                "verdict agrees with test"],
               "The audit's margin (every audited case; recomputed from the audit differences)")
    for name, variant, cases in by_dataset_variant(audited):
        for margin in MARGINS:
            vs_stl, never, agrees = [], 0, 0
            for r in cases:
                t = relative_totals(r)
                recommendation, verdict = recommend_with_margin(r, margin)
                vs_stl.append(t[recommendation] - 1)
                never += t[recommendation] <= min(t["stl"], t["all_tasks"])
                agrees += verdict == (t["selected"] < min(t["stl"], t["all_tasks"]))
            print(table_row([name, variant, f"{margin:g}", len(cases), mean_se(vs_stl, PCT), f"{never}/{len(cases)}",
                             f"{agrees}/{len(cases)}"]))
    print()


def print_paired(rows: list[dict], base: str = "default") -> None:
    """Each variant's recommendation against ``base``'s on the same dataset, seed, |G_train| and B: the ratio of
    their summed test losses minus 1 (what a user gets, :func:`user_total`: a refit variant's refit recommendation;
    an audit variant trains on fewer rows, so its own STL differs), mean ± s.e. over the pairs."""
    key = {(r["dataset"], r["seed"], r["train_groups"], r["budget"]): r for r in rows
           if r["variant"] == base and r.get("totals")}
    lines = []
    for name in dict.fromkeys(r["dataset"] for r in rows):
        for variant in dict.fromkeys(r["variant"] for r in rows if r["variant"] != base):
            ratios = []
            for r in rows:
                other = key.get((name, r["seed"], r["train_groups"], r["budget"]))
                if r["dataset"] == name and r["variant"] == variant and r.get("totals") and other:
                    ratios.append(user_total(r) / user_total(other) - 1)
            if ratios:
                lines.append(table_row([name, variant, len(ratios), mean_se(ratios, PCT)]))
    if lines:
        table_head(["dataset", "variant", "pairs", f"recommended / {base}'s recommended - 1"],
                   f"What a user gets (the refit recommendation where refit) against {base}'s (paired by seed and B)")
        print("\n".join(lines))
        print()


def audit_cost(datasets, seeds, data_dir, n_tasks, config, repeats: int, fraction: float) -> None:
    """What holding back audit rows costs: STL's and the all-task model's summed test loss on the full data,
    with ``fraction`` of the train and validation rows held back, and with ``fraction`` of the validation rows
    held back (mean ± s.e. over the repeats, per dataset and seed)."""
    from negtransfer.data.dataset import AUDIT, TRAIN, VALIDATION
    from negtransfer.train.batched import train_group_models

    table_head(["dataset", "seed", "data", "train / validation / audit rows", "STL total", "all-task total"])
    for name, seed, ds in grouping_datasets.each_loaded(datasets, seeds, data_dir, n_tasks):
        n = ds.n_tasks
        groups = [(t,) for t in range(n)] + [tuple(range(n))]
        versions = {"full": ds, "train+validation": ds.with_audit(fraction),
                    "validation": ds.with_audit(fraction, source="validation")}
        for label, data in versions.items():
            rows = " / ".join(str(int((data.split == code).sum())) for code in (TRAIN, VALIDATION, AUDIT))
            runs = train_group_models(data, groups * repeats, config, seed,
                                      repeats=[r for r in range(repeats) for _ in groups])
            stl = [sum(runs[r * len(groups) + t].test_loss[t] for t in range(n)) for r in range(repeats)]
            every = [sum(runs[r * len(groups) + n].test_loss.values()) for r in range(repeats)]
            print(table_row([name, seed, label, rows, mean_se(stl, "{:.3f}"), mean_se(every, "{:.3f}")]), flush=True)


def print_verdicts(rows: list[dict]) -> None:
    """Per dataset and variant, over every seed and B: the recommendation on test (against its own STL and
    all-task model), how it was chosen, and how often the report's verdict agreed with the test split's."""
    table_head(["dataset", "variant", "cases", "recommended vs STL", "recommended vs all-task", "at or below STL",
                "at or below all-task", "verdict agrees with test", "recommended: chosen / STL / all-task"],
               "The recommendation and the verdict (every seed and B)")
    for name, variant, c in by_dataset_variant([r for r in rows if "rec_vs_stl" in r]):
        picks = "/".join(str(sum(r["recommendation"] == key for r in c)) for key in ("selected", "stl", "all_tasks"))
        print(table_row([name, variant, len(c), mean_se([r["rec_vs_stl"] for r in c], PCT),
                         mean_se([r["rec_vs_all"] for r in c], PCT), f"{sum(r['rec_vs_stl'] <= 0 for r in c)}/{len(c)}",
                         f"{sum(r['rec_vs_all'] <= 0 for r in c)}/{len(c)}",
                         f"{sum(r['verdict_agrees'] for r in c)}/{len(c)}", picks]))
    print()


def print_refits(rows: list[dict]) -> None:
    """Per dataset and refit variant: the refit recommendation against the refit STL and all-task models."""
    refits = [r for r in rows if "refit_totals" in r]
    if not refits:
        return
    table_head(["dataset", "variant", "cases", "refit recommended vs refit STL", "refit recommended vs refit all-task",
                "at or below STL", "at or below all-task", "refit chosen vs refit STL"],
               "After the refit on every non-test row (every seed and B)")
    for name, variant, c in by_dataset_variant(refits):
        chosen = [r["refit_totals"]["selected"] / r["refit_totals"]["stl"] - 1 for r in c]
        print(table_row([name, variant, len(c), mean_se([r["refit_rec_vs_stl"] for r in c], PCT),
                         mean_se([r["refit_rec_vs_all"] for r in c], PCT),
                         f"{sum(r['refit_rec_vs_stl'] <= 0 for r in c)}/{len(c)}",
                         f"{sum(r['refit_rec_vs_all'] <= 0 for r in c)}/{len(c)}", mean_se(chosen, PCT)]))
    print()


def print_summary(rows: list[dict], datasets, variants, train_groups, budgets) -> None:
    """Every table of the cases ``rows``: per dataset (:func:`print_tables`), the recommendation and the verdict,
    the audit's margin, the three-way verdict, the refits, and each variant against the default's (and the
    refit's, when there is one)."""
    print_tables(rows, datasets, variants, train_groups, budgets)
    print_verdicts(rows)
    print_margins(rows)
    print_three_way(rows)
    print_refits(rows)
    print_paired(rows)
    if any(r["variant"] == "refit" for r in rows):
        print_paired(rows, base="refit")


def print_case(r: dict) -> None:
    """One line per case as it finishes."""
    def pct(value) -> str:
        return "n/a" if value is None else f"{value:+.2%}"

    print(f"  {r['variant']} |G|={r['train_groups']} B={r['budget']}: vs STL {r['vs_stl']:+.2%}, vs all "
          f"{r['vs_all']:+.2%}, gap test {pct(r['gap_test'])}, gap val {pct(r['gap_val'])} "
          f"(on val. {pct(r['val_gap_on_val'])}; val. oracle {pct(r['val_oracle_gap'])}), "
          f"Pearson {r['pearson'] if r['pearson'] is None else round(r['pearson'], 3)}, "
          f"runs x{r['runs_ratio']:.2f}; recommended {r['recommendation']} ({r['decided_on']}): vs STL "
          f"{r['rec_vs_stl']:+.2%}, verdict agrees with test: {r['verdict_agrees']}"
          + (f"; refit recommended {r['user_total']:.4f} (vs refit STL {r['refit_rec_vs_stl']:+.2%})"
             if "user_total" in r else ""), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(grouping_datasets.NAMES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--train-groups", type=int, nargs="+", default=[10])
    parser.add_argument("--budgets", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--variants", nargs="+", default=["default", "one-shot", "one-shot-r1", "paper"])
    parser.add_argument("--repeats", type=int, default=max(3, DEFAULT.repeats),
                        help="Repeats trained for every group (variants use the first ones they need).")
    parser.add_argument("--data-dir", default=None, help="ETAP Chemical Task_Splits folder.")
    parser.add_argument("--n-tasks", type=int, default=None, help="Keep only the first N tasks of each dataset.")
    parser.add_argument("--out", type=Path, default=Path("runs/grouping_quality"))
    grouping_datasets.add_result_format_option(parser)
    parser.add_argument("--store-only", action="store_true", help="Train the stores; run no variant.")
    parser.add_argument("--no-exhaustive", dest="exhaustive", action="store_false",
                        help="Train only what each variant's job asks for: no oracles, no prediction quality on "
                             "every group (the recommendation and the verdict columns only).")
    parser.add_argument("--summarize", type=Path, nargs="+", default=None,
                        help="Only print the tables of these quality.json files (no training).")
    parser.add_argument("--audit-cost", type=float, default=None, metavar="FRACTION",
                        help="Only measure what holding back FRACTION of the rows as audit rows costs STL and the "
                             "all-task model on test (from train and validation, or from validation alone).")
    grouping_datasets.add_smoke_option(parser)
    args = parser.parse_args()
    n_tasks, config, prefix = args.n_tasks, TrainConfig(), ""
    if args.smoke:
        args.datasets, args.seeds, args.budgets, args.train_groups = ["yeast"], [0], [2], [3]
        args.variants, prefix = ["default", "paper", "audit", "audit+refit"], "smoke-"
        n_tasks, config = grouping_datasets.SMOKE_TASKS, TrainConfig(max_epochs=grouping_datasets.SMOKE_EPOCHS)
    for variant in args.variants:
        variant_options(variant)
    if args.summarize:
        rows = [r for path in args.summarize for r in json.loads(path.read_text())]
        datasets = list(dict.fromkeys(r["dataset"] for r in rows))
        variants = [v for v in args.variants if any(r["variant"] == v for r in rows)]
        print_summary(rows, datasets, variants, args.train_groups, args.budgets)
        return
    if args.audit_cost is not None:
        audit_cost(args.datasets, args.seeds, args.data_dir, n_tasks, config, args.repeats, args.audit_cost)
        return
    grouping_datasets.use_result_format(args.result_format)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, seed, ds in grouping_datasets.each_loaded(args.datasets, args.seeds, args.data_dir, n_tasks):
        store = RunStore(args.out / f"{prefix}{name}-seed{seed}.sqlite")
        every = None
        if args.exhaustive:
            start = time.perf_counter()
            every = run_grouping(ds, replace(DEFAULT, exhaustive=True, repeats=args.repeats, rounds=1,
                                             chunk_size=256), config, seed, store).results
            print(f"{name} seed {seed}: every group trained ({args.repeats} repeats) in "
                  f"{time.perf_counter() - start:.0f} s", flush=True)
        for variant in [] if args.store_only else args.variants:
            for n_train in args.train_groups:
                for budget in args.budgets:
                    opts = replace(replace(DEFAULT, exhaustive=args.exhaustive, n_train_groups=n_train,
                                           budget=budget), **variant_options(variant))
                    if opts.repeats > args.repeats:
                        continue
                    if opts.folds > 1:  # its runs are not in the exhaustive store: scored on it
                        opts = replace(opts, exhaustive=False)
                    rep = run_grouping(ds, opts, config, seed, store).report.to_dict()
                    found = case(rep) if opts.exhaustive or every is None else rescored(rep, every, ds.task_names, budget)
                    rows.append({"dataset": name, "seed": seed, "variant": variant, "train_groups": n_train,
                                 "budget": budget, **found})
                    print_case(rows[-1])
        (args.out / f"{prefix}quality.json").write_text(json.dumps(rows, indent=1))
    print_summary(rows, args.datasets, args.variants, args.train_groups, args.budgets)


if __name__ == "__main__":
    main()
