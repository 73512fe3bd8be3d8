"""Source selection on planted synthetic tasks and the built-in per-task-rows datasets: mean ± s.e. over seeds.

For each (target, seed): ``negtransfer sources`` with alpha = 5 (or fewer when
there are fewer sources), the default training scheme (``--training parity``),
``--repeats`` runs per model and ``--subsets`` fitted subsets (default 8k) plus
``--holdout`` holdout subsets. Prints one Markdown row per (target, seed): the
holdout F1 (minority class) with the class balance, Spearman, its noise
ceiling (the most any predictor could reach against the holdout's measured
f(S), given their s.e. over the repeats), the same two figures for the paper's
least-squares surrogate refitted on the same subsets (the same figures unless
the job used a ridge: ``--ridge``, or ``auto`` below 1.5k fitted subsets), the selection
size, and the target's test loss under STL, all sources and the selection
(± s.e. over the repeats). Then one row per target with the means ± s.e. over
the seeds, and whether the selection's test loss is no worse than the better
of STL and all-source MTL by more than one s.e. (over the seeds; with one seed,
over the repeats). ``--dataset planted`` also checks that the planted cluster
of the target is what was selected; ``--group-attribute race`` (tv16) adds the
fairness rows. Last, the never-knowingly-worse check's noise per case: the
selection minus the better alternative on the stopping half with its s.e. over
the repeats and over rows and repeats and the verdict, STL minus all sources,
and the difference that decided each miss on the stopping half and on test;
then how often "within noise" covers the misses. All runs share one store, so a
second invocation only re-fits.

Run:
``python benchmarks/source_selection.py --dataset planted --seeds 0 1 2``
``python benchmarks/source_selection.py --dataset tv16 --targets largest --seeds 0 1 2 --group-attribute race``
``python benchmarks/source_selection.py --dataset tv16 --targets Oklahoma Nevada Vermont --seeds 0 1 2``
``python benchmarks/source_selection.py --dataset adult --group-column occupation --targets Tech-support Protective-serv Farming-fishing``
``python benchmarks/source_selection.py --dataset exam --targets school14 school17 school08``
``python benchmarks/source_selection.py --dataset tv16 --targets largest --seeds 0 1 2 --subsets 100 --holdout 50 \
--repeats 2 --surrogates linear kernel --independent-holdout`` (linear and kernel surrogates paired on the same runs:
the kernel job reuses every stored subset run and trains only its own threshold candidates; the holdout also
measured with repeat seeds no fitted subset used; then the paired kernel - linear differences)
``python benchmarks/source_selection.py --smoke [--out DIR]`` (planted tasks of 200 rows, seed 0, 12 + 6 subsets,
1 repeat of 2 epochs, a fresh store in a temporary folder unless ``--store``; a check that it runs)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from negtransfer.data.statistics import standard_error
from negtransfer.jobs.sources import SourceOptions, run_sources
from negtransfer.runs.store import RunStore
from negtransfer.train.config import TrainConfig

METHODS = ("stl", "all_sources", "selected")


def load(dataset: str, seed: int, group_column: str | None, planted_rows: int):
    """The dataset of one seed (the planted tasks are regenerated per seed: other clusters, other data)."""
    if dataset == "planted":
        from negtransfer.data.synthetic import make_synthetic_tasks

        # 12 tasks in two planted clusters: 11 sources, C(11, 3) = 165 distinct subsets of 3, enough for
        # 8k = 88 fitted and 50 holdout subsets without repeats
        return make_synthetic_tasks(n_tasks=12, n_clusters=2, task_kind="binary", layout="per-task-rows",
                                    n_samples=planted_rows, seed=seed)
    from negtransfer.data.builtin import load_builtin

    return load_builtin(dataset, seed=seed, **({"group_column": group_column} if group_column else {}))


def resolve_targets(ds, targets: list[str]) -> list[str]:
    """``largest`` stands for the five tasks with the most rows."""
    if targets != ["largest"]:
        return targets
    counts = np.bincount(ds.row_task, minlength=ds.n_tasks)
    return [ds.task_names[i] for i in np.argsort(-counts, kind="stable")[:5]]


def least_squares_holdout(rep) -> tuple[float, float]:
    """Holdout Spearman and F1 of the paper's least-squares surrogate (ridge 0) on the same measured subsets.

    The job's surrogate uses ``--ridge`` (``auto`` below 1.5k fitted subsets, else least squares, when not
    given); refitting eq. 3 on its fitted subsets gives the paired comparison on every case, with no training.
    """
    from negtransfer.gains.surrogate import LinearSurrogate
    from negtransfer.jobs.sources import measured_subsets
    from negtransfer.select.sources import negative_transfer_metrics

    _, S, f, fit = measured_subsets(rep)
    if fit.all():
        return float("nan"), float("nan")
    surrogate = LinearSurrogate(alpha=0.0, underdetermined="min_norm").fit(S[fit], f[fit], stl_loss=rep.stl_val_loss)
    m = negative_transfer_metrics(surrogate.predict(S[~fit]), f[~fit], rep.stl_val_loss)
    return float(m["spearman"]), float(m["f1"])


def mean_se(values) -> tuple[float, float]:
    values = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    if values.size == 0:
        return float("nan"), float("nan")
    return float(values.mean()), standard_error(values)


def fmt(mean: float, se: float, digits: int = 3) -> str:
    return f"{mean:.{digits}f}" + (f" ± {se:.{digits}f}" if np.isfinite(se) else "")


def no_worse(rows: list[dict]) -> tuple[bool, float, float]:
    """Is the selection's test loss within one s.e. of the better of STL and all sources (better on average)?"""
    best = min(("stl", "all_sources"), key=lambda m: np.mean([r["test"][m] for r in rows]))
    diffs = [r["test"]["selected"] - r["test"][best] for r in rows]
    mean, se = mean_se(diffs)
    if len(rows) == 1:  # one seed: the s.e. over the repeats
        se = rows[0]["test_se"]["selected"]
    return bool(mean <= (se if np.isfinite(se) else 0.0)), mean, se


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="tv16", choices=["planted", "tv16", "adult", "exam"])
    parser.add_argument("--group-column", default=None, help="adult: the column whose groups are the tasks.")
    parser.add_argument("--targets", nargs="+", default=["largest"], help="Task names, or 'largest' (five).")
    parser.add_argument("--store", type=Path, default=None, help="Default runs/sources-<dataset>.sqlite.")
    parser.add_argument("--alpha", type=int, default=None, help="Default 5 (3 for planted).")
    parser.add_argument("--subsets", type=int, default=None, help="Fitted subsets (default 8k).")
    parser.add_argument("--holdout", type=int, default=None, help="Default 100 (50 for planted).")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--training", default="parity", choices=["parity", "task-modeling", "legacy"])
    parser.add_argument("--grid", default="all", choices=["all", "paper"])
    parser.add_argument("--loss", default=None, help="f(S); default the judged loss (see negtransfer sources --loss).")
    parser.add_argument("--threshold-by", default="validation", choices=["validation", "surrogate"],
                        help="gamma by the candidates' target validation loss (paper) or the training-free criterion.")
    parser.add_argument("--epochs", type=int, default=None, help="Maximum epochs per model (default TrainConfig's).")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="Split and training seeds.")
    parser.add_argument("--group-attribute", default=None, help="Fairness rows by this row attribute (tv16: race).")
    parser.add_argument("--planted-rows", type=int, default=1500, help="Rows per planted task.")
    parser.add_argument("--chunk-size", type=int, default=64)
    parser.add_argument("--out", type=Path, default=None, help="Also write each case's report.json here.")
    parser.add_argument("--pairwise", action="store_true", help="Also the pairwise-gain baseline (k runs per repeat).")
    parser.add_argument("--surrogates", nargs="+", default=["linear"], choices=["linear", "kernel"],
                        help="Surrogates to run on the same stored runs (paired); the first is the reference.")
    parser.add_argument("--data-fraction", type=float, default=1.0,
                        help="Subset models train on this fraction of the training rows (the paper's speed-up: 0.4).")
    parser.add_argument("--steps-fraction", type=float, default=1.0,
                        help="Subset models get this fraction of the epoch budget (the paper's speed-up: 0.2).")
    parser.add_argument("--independent-holdout", action="store_true",
                        help="Also measure the holdout with repeat seeds no fitted subset used.")
    parser.add_argument("--executor", default="local", choices=["local", "process", "ray"],
                        help="Where the runs train (process: a pool of --workers processes).")
    parser.add_argument("--workers", type=int, default=None, help="Processes or Ray workers.")
    parser.add_argument("--smoke", action="store_true", help="Smallest settings: checks that the script runs.")
    parser.add_argument("--from-json", nargs="+", type=Path, default=None,
                        help="Print the tables from report.json files written by --out (no training); the "
                             "surrogate of each is read from the file.")
    args = parser.parse_args()
    if args.from_json:
        tables_from_json(args)
        return
    torch.set_num_threads(1)
    if args.smoke:
        args.dataset, args.planted_rows, args.seeds, args.repeats, args.epochs = "planted", 200, [0], 1, 2
        args.subsets, args.holdout, args.surrogates, args.independent_holdout = 12, 6, ["linear", "kernel"], True
        if args.store is None:
            import tempfile

            args.store = Path(tempfile.mkdtemp(prefix="source-selection-smoke-")) / "runs.sqlite"
    planted = args.dataset == "planted"
    args.alpha = args.alpha or (3 if planted else 5)
    args.holdout = args.holdout if args.holdout is not None else (50 if planted else 100)
    if planted and args.targets == ["largest"]:
        args.targets = ["task00"]
    store = RunStore(args.store or Path(f"runs/sources-{args.dataset}.sqlite"))
    config = TrainConfig.preset("task-modeling" if args.training == "task-modeling" else "default",
                                **({"max_epochs": args.epochs} if args.epochs else {}))
    from negtransfer.runs.executors import make_executor

    executor = make_executor(args.executor, args.workers)
    rows: list[dict] = []
    print_case_header()
    for seed in args.seeds:
        ds = load(args.dataset, seed, args.group_column, args.planted_rows)
        for target in resolve_targets(ds, args.targets):
            t = ds.task_index([target])[0]
            for surrogate in args.surrogates:
                options = SourceOptions(target=target, alpha=min(args.alpha, ds.n_tasks - 1), n_subsets=args.subsets,
                                        holdout=args.holdout, repeats=args.repeats, training=args.training,
                                        grid=args.grid, loss=args.loss, threshold_by=args.threshold_by,
                                        exhaustive_pairs="off",
                                        affinity_baseline=False, pairwise_baseline=args.pairwise,
                                        group_attribute=args.group_attribute,
                                        chunk_size=args.chunk_size, surrogate=surrogate,
                                        independent_holdout=args.independent_holdout,
                                        data_fraction=args.data_fraction, steps_fraction=args.steps_fraction)
                case = f"{target}, seed {seed}, {surrogate}"
                rep = run_sources(ds, options, config, seed, store, executor=executor,
                                  notify=lambda message, case=case: print(f"{case}: {message}", file=sys.stderr,
                                                                          flush=True))
                if args.out:
                    from negtransfer.report.jsonio import write_json

                    args.out.mkdir(parents=True, exist_ok=True)
                    suffix = "" if surrogate == "linear" else f"-{surrogate}"
                    write_json(args.out / f"{args.dataset}-{target}-{seed}{suffix}.json", rep.to_dict())
                rows.append(case_row(rep, ds, t, target, seed, surrogate, args.dataset))
                print_case(rows[-1], int((ds.row_task == t).sum()) if ds.row_task is not None else ds.n_samples)
    summarise([r for r in rows if r["surrogate"] == args.surrogates[0]], args)
    if len(args.surrogates) > 1 or args.independent_holdout:
        compare_surrogates(rows, args.surrogates)
    print_check_noise(rows)


def tables_from_json(args) -> None:
    """The per-case table, the per-target summary and the surrogates' comparison from stored reports."""
    import json

    from negtransfer.jobs.sources import SourcesReport

    rows: list[dict] = []
    for path in sorted(args.from_json):
        rep = SourcesReport.from_dict(_nan_for_null(json.loads(path.read_text())))
        surrogate = rep.surrogate.kind if rep.surrogate is not None else "linear"
        rows.append(case_row(rep, None, -1, rep.target, rep.seed, surrogate, args.dataset))
    rows.sort(key=lambda r: (r["seed"], r["target"], r["surrogate"] != "linear"))
    print_case_header()
    for row in rows:
        print_case(row, "-")
    surrogates = list(dict.fromkeys(r["surrogate"] for r in sorted(rows, key=lambda r: r["surrogate"] != "linear")))
    summarise([r for r in rows if r["surrogate"] == surrogates[0]], args)
    compare_surrogates(rows, surrogates)
    print_check_noise(rows)


def _nan_for_null(value):
    """report.json writes NaN as null: back to NaN inside the figures (dicts of numbers)."""
    if isinstance(value, dict):
        return {k: (float("nan") if v is None and k not in ("fairness", "affinity_onto_target", "test_accuracy",
                                                             "raw_relevance", "task_kinds", "notes", "gamma")
                    else _nan_for_null(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_for_null(v) for v in value]
    return value


def case_row(rep, ds, t: int, target: str, seed: int, surrogate: str, dataset: str) -> dict:
    """The figures of one (target, seed, surrogate) case."""
    planted = ""
    if dataset == "planted" and ds is not None:
        clusters = np.asarray(ds.info["clusters"])
        mates = {ds.task_names[i] for i in np.flatnonzero(clusters == clusters[t]) if i != t}
        planted = "yes" if set(rep.selected) == mates else f"no ({len(set(rep.selected) & mates)} of {len(mates)})"
    h, independent = rep.holdout.scores, rep.holdout.independent
    ind = independent.scores if independent is not None else None
    ls_rho, ls_f1 = least_squares_holdout(rep)
    nan = float("nan")
    return {"target": target, "seed": seed, "surrogate": surrogate, "f1": h.f1 if h else nan,
            "spearman": h.spearman if h else nan, "ceiling": h.noise_ceiling if h else nan,
            "ind_f1": ind.f1 if ind else nan, "ind_spearman": ind.spearman if ind else nan,
            "ind_ceiling": ind.noise_ceiling if ind else nan,
            "f1_ceiling": h.f1_ceiling if h else nan, "ind_f1_ceiling": ind.f1_ceiling if ind else nan,
            "balance": (h.n_negative, h.n_positive) if h else (None, None),
            "ls_spearman": ls_rho, "ls_f1": ls_f1, "test": rep.test_loss, "test_se": rep.test_loss_se,
            "recommended": rep.check.recommended if rep.check else "selected", "check": check_figures(rep.check),
            "kernel": rep.surrogate.kernel if rep.surrogate is not None else None, "planted": planted, "fairness": rep.fairness,
            "selected": len(rep.selected), "runs": rep.runs["selected"], "seconds": rep.seconds}


def pair_key(a: str, b: str, best: str) -> tuple[str, int]:
    """The key of ``check.paired`` holding the difference of two of the three models ``a`` and ``b``, and its sign
    (+1: ``a`` minus ``b``), given the check's ``best_alternative`` (the lower of STL and all sources on its rows)."""
    from negtransfer.jobs.sources import check_pairs

    keys = {pair: key for key, pair in check_pairs(best).items()}
    return (keys[(a, b)], 1) if (a, b) in keys else (keys[(b, a)], -1)


def check_figures(check) -> dict | None:
    """The check's figures a case row needs (None without a check)."""
    from negtransfer.gains.paired_rows import differences_to_dict

    if check is None:
        return None
    return {"best": check.best_alternative, "difference": check.difference, "se_runs": check.difference_se,
            "noise": check.noise, "paired": differences_to_dict(check.paired),
            "test_paired": differences_to_dict(check.test_paired),
            "margin": check.margin_se, "n_rows": check.n_rows}


def check_noise(row: dict) -> dict | None:
    """One case's check against the test split: the stopping-half difference between the recommendation and the
    better of STL and all sources on test (the case's "no worse" reference; the selection against the stopping
    half's better alternative when the recommendation is that one), its s.e. over the repeats and over rows and
    repeats, the verdicts with each, and the same difference on test with its s.e. over rows and repeats."""
    from negtransfer.jobs.sources import check_verdict

    check = row["check"]
    if check is None or not check["paired"]:
        return None
    recommended = row["recommended"]
    winner = min(("stl", "all_sources"), key=lambda m: row["test"][m])
    if recommended == winner:  # no worse by construction: the decisive comparison is against the selection
        winner = "selected" if recommended != "selected" else check["best"]
    key, sign = pair_key(recommended, winner, check["best"])
    stop, test = check["paired"][key], check["test_paired"].get(key, {})
    margin = check["margin"]
    difference = sign * stop["mean"]
    miss = not case_no_worse(row, "recommended")
    return {"pair": f"{recommended} - {winner}", "stop": difference, "se_runs": stop["se_runs"],
            "se": stop["se"], "verdict": check_verdict(difference, stop["se"], margin),
            "runs_verdict": check_verdict(difference, stop["se_runs"], margin), "test": sign * test.get("mean", float("nan")),
            "test_se": test.get("se", float("nan")), "miss": miss, "noise": check["noise"],
            "closest": check["paired"]["selected_minus_best"]["verdict"]}


def print_check_noise(rows: list[dict]) -> None:
    """Per case, the check's noise: the selection minus the better alternative on the stopping half with its s.e.
    over the repeats and over rows and repeats and the verdict, STL minus all sources, and the decisive
    difference (the recommendation minus the test split's better of STL and all sources) on the stopping half
    and on test; then how often "within noise" covers the misses."""
    cases = [(r, check_noise(r)) for r in rows]
    cases = [(r, c) for r, c in cases if c is not None]
    if not cases:
        print("\n(no table of the check's noise: these reports were written before the check recorded its paired "
              "differences over rows and repeats)")
        return
    print("\n| target | seed | surrogate | recommended | selection - better alternative (stopping half) | "
          "s.e. over repeats | s.e. over rows and repeats | verdict | STL - all sources: verdict | "
          "recommendation - test's better, stopping half (verdict over repeats; over rows and repeats) | "
          "on test ± s.e. | miss |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r, c in cases:
        closest, stl_all = (r["check"]["paired"][k] for k in ("selected_minus_best", "stl_minus_all_sources"))
        print(f"| {r['target']} | {r['seed']} | {r['surrogate']} | {r['recommended']} | "
              f"{closest['mean']:+.4f} | {closest['se_runs']:.4f} | {closest['se']:.4f} | {closest['verdict']} | "
              f"{stl_all['mean']:+.4f} ± {stl_all['se']:.4f}: {stl_all['verdict']} | "
              f"{c['pair']}: {c['stop']:+.4f} ({c['runs_verdict']}; {c['verdict']}) | "
              f"{fmt(c['test'], c['test_se'], 4)} | {'yes' if c['miss'] else 'no'} |")
    for surrogate in dict.fromkeys(r["surrogate"] for r, _ in cases):
        mine = [(r["check"]["paired"]["selected_minus_best"], c) for r, c in cases if r["surrogate"] == surrogate]
        misses = [c for _, c in mine if c["miss"]]
        ratio = [p["se"] / p["se_runs"] for p, _ in mine if p["se_runs"] > 0]  # (NaN with one repeat: left out)
        spread = (f"median {np.median(ratio):.1f} (range {min(ratio):.1f}-{max(ratio):.1f}, {len(ratio)} cases with "
                  "a nonzero s.e. over the repeats)" if ratio else "n/a (no case with an s.e. over the repeats)")
        print(f"\n{surrogate}: {len(misses)} misses of {len(mine)} cases; \"within noise\" (the recommendation "
              f"against the test split's better alternative, on the stopping half) covers "
              f"{sum(c['verdict'] == 'within noise' for c in misses)} of them with the s.e. over rows and repeats, "
              f"{sum(c['runs_verdict'] == 'within noise' for c in misses)} with the s.e. over the repeats only; "
              f"the selection against the better alternative within noise in "
              f"{sum(p['verdict'] == 'within noise' for p, _ in mine)} of {len(mine)} cases; its s.e. over rows "
              f"and repeats / over repeats: {spread}")


def print_case_header() -> None:
    """The header of the per-case table."""
    print("| target (rows) | seed | surrogate | holdout F1 (negative / positive) | F1 ceiling | Spearman | noise ceiling | "
          "independent holdout: F1 | F1 ceiling | Spearman | least squares: Spearman, F1 | selected | planted cluster | "
          + " | ".join(f"{m} test loss" for m in METHODS) + " | recommended | runs | seconds |")
    print("|" + "---|" * (13 + len(METHODS) + 3))


def print_case(row: dict, n_rows: int | str) -> None:
    """One Markdown row of the per-case table."""
    cells = [fmt(row["test"][m], row["test_se"][m], 4) for m in METHODS]
    name = row["surrogate"] + (f" ({row['kernel']})" if row["kernel"] else "")
    print(f"| {row['target']} ({n_rows}) | {row['seed']} | {name} | "
          f"{row['f1']:.3f} ({row['balance'][0]} / {row['balance'][1]}) | {row['f1_ceiling']:.3f} | "
          f"{row['spearman']:.3f} | {row['ceiling']:.3f} | "
          f"{row['ind_f1']:.3f} | {row['ind_f1_ceiling']:.3f} | {row['ind_spearman']:.3f} | {row['ls_spearman']:.3f}, {row['ls_f1']:.3f} | "
          f"{row['selected']} | {row['planted'] or '-'} | " + " | ".join(cells)
          + f" | {row['recommended']} | {row['runs']} | {row['seconds']:.0f} |", flush=True)


def summarise(rows: list[dict], args) -> None:
    """One row per target: means ± s.e. over the seeds, and the never-worse check."""
    print()
    print("| target | seeds | holdout F1 | F1 ceiling | Spearman | noise ceiling | selected / STL test loss | "
          "all sources / STL | selection - better of STL and all (± s.e.) | no worse | planted cluster selected |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    passed = 0
    targets = list(dict.fromkeys(r["target"] for r in rows))
    for target in targets:
        mine = [r for r in rows if r["target"] == target]
        ok, diff, se = no_worse(mine)
        passed += ok
        ratio = {m: mean_se([r["test"][m] / r["test"]["stl"] for r in mine]) for m in ("selected", "all_sources")}
        planted = f"{sum(r['planted'] == 'yes' for r in mine)} of {len(mine)}" if args.dataset == "planted" else "-"
        print(f"| {target} | {len(mine)} | {fmt(*mean_se([r['f1'] for r in mine]))} | "
              f"{fmt(*mean_se([r['f1_ceiling'] for r in mine if np.isfinite(r['f1'])]))} | "
              f"{fmt(*mean_se([r['spearman'] for r in mine]))} | {fmt(*mean_se([r['ceiling'] for r in mine]))} | "
              f"{fmt(*ratio['selected'])} | "
              f"{fmt(*ratio['all_sources'])} | {fmt(diff, se, 4)} | {'yes' if ok else 'no'} | {planted} |")
    # the per-target means of the table above (NaN cases left out: F1 is undefined when every holdout
    # subset falls in one class), then their mean over the targets
    f1, rho, ceiling = (mean_se([mean_se([r[key] for r in rows if r["target"] == t])[0] for t in targets])
                        for key in ("f1", "spearman", "ceiling"))
    # the F1 ceiling over the cases whose F1 is defined (as the F1's mean is), and the F1 minus it, paired by case
    defined = [r for r in rows if np.isfinite(r["f1"])]
    f1_ceiling = over_targets(defined, lambda r: r["f1_ceiling"])
    below_ceiling = over_targets(defined, lambda r: r["f1"] - r["f1_ceiling"])
    paired = {key: [mean_se([r[key] - r[base] for r in rows if r["target"] == t])[0] for t in targets]
              for key, base in (("spearman", "ls_spearman"), ("f1", "ls_f1"))}
    undefined = sum(not np.isfinite(r["f1"]) for r in rows)
    print(f"\nall targets: holdout F1 {fmt(*f1)} (undefined in {undefined} of {len(rows)} cases: every holdout "
          f"subset in one class; F1 ceiling over the others {fmt(*f1_ceiling)}, F1 minus it, paired by case, "
          f"{fmt(*below_ceiling)}), Spearman {fmt(*rho)} (noise ceiling {fmt(*ceiling)}; "
          f"means over targets of the per-target means); minus the least-squares surrogate's, paired by case: "
          f"Spearman {fmt(*mean_se(paired['spearman']))}, F1 {fmt(*mean_se(paired['f1']))}; selection no worse than the better of STL and all sources in {passed} of {len(targets)}")
    if args.group_attribute:
        print(f"\n| target | method | accuracy | worst-group accuracy | demographic-parity gap | "
              f"equal-opportunity gap |  (by {args.group_attribute}, means over seeds)")
        print("|---|---|---|---|---|---|")
        for target in targets:
            mine = [r["fairness"] for r in rows if r["target"] == target and r["fairness"]]
            for method in METHODS:
                cells = [fmt(*mean_se([f[method][name] for f in mine])) for name in
                         ("accuracy", "worst_group_accuracy", "demographic_parity_gap", "equal_opportunity_gap")]
                print(f"| {target} | {method} | " + " | ".join(cells) + " |")



def case_no_worse(row: dict, method: str) -> bool:
    """One case: is the method's test loss at most the better of STL and all sources plus its s.e. over the repeats?
    (``method="recommended"``: the one the job's never-knowingly-worse check recommended.)"""
    method = row["recommended"] if method == "recommended" else method
    se = row["test_se"][method]
    return bool(row["test"][method] <= min(row["test"]["stl"], row["test"]["all_sources"])
                + (se if np.isfinite(se) else 0.0))


def over_targets(rows: list[dict], value) -> tuple[float, float]:
    """Mean ± s.e. over the targets of each target's mean over its seeds (NaN cases left out)."""
    targets = list(dict.fromkeys(r["target"] for r in rows))
    return mean_se([mean_se([value(r) for r in rows if r["target"] == t])[0] for t in targets])


def compare_surrogates(rows: list[dict], surrogates: list[str]) -> None:
    """Per surrogate: holdout F1 and Spearman on the shared and the independent seeds, the selection's test
    loss over STL's, and how often the selection and the recommendation are no worse than the better of STL
    and all sources; then each surrogate minus the first, paired by (target, seed)."""
    keys = {"F1, shared seeds": "f1", "Spearman, shared seeds": "spearman", "F1, independent seeds": "ind_f1",
            "F1 ceiling, independent seeds": "ind_f1_ceiling", "Spearman, independent seeds": "ind_spearman",
            "Spearman noise ceiling, independent seeds": "ind_ceiling"}
    print("\n| surrogate | cases | " + " | ".join(keys) + " | selection / STL test loss | "
          "selection no worse | recommendation no worse | recommended STL / all / selection |")
    print("|---|---|" + "---|" * (len(keys) + 4))
    by = {s: [r for r in rows if r["surrogate"] == s] for s in surrogates}
    for name, mine in by.items():
        cells = [fmt(*over_targets(mine, lambda r, k=key: r[k])) for key in keys.values()]
        ratio = fmt(*over_targets(mine, lambda r: r["test"]["selected"] / r["test"]["stl"]), 4)
        picks = [sum(r["recommended"] == m for r in mine) for m in ("stl", "all_sources", "selected")]
        print(f"| {name} | {len(mine)} | " + " | ".join(cells) + f" | {ratio} | "
              f"{sum(case_no_worse(r, 'selected') for r in mine)} of {len(mine)} | "
              f"{sum(case_no_worse(r, 'recommended') for r in mine)} of {len(mine)} | "
              + " / ".join(map(str, picks)) + " |")
    for name, mine in by.items():
        shift = {label: fmt(*over_targets([{**r, "d": r[f"ind_{k}"] - r[k]} for r in mine], lambda r: r["d"]))
                 for label, k in (("F1", "f1"), ("Spearman", "spearman"))}
        below = fmt(*over_targets(mine, lambda r: r["ind_f1"] - r["ind_f1_ceiling"]))
        print(f"\n{name}: independent minus shared seeds, paired by case, mean ± s.e. over the targets: "
              + ", ".join(f"{label} {v}" for label, v in shift.items())
              + f"; independent F1 minus its F1 ceiling {below}")
    reference = {(r["target"], r["seed"]): r for r in by[surrogates[0]]}
    for name in surrogates[1:]:
        pairs = [(r, reference[(r["target"], r["seed"])]) for r in by[name] if (r["target"], r["seed"]) in reference]
        diffs = {label: fmt(*over_targets([{**a, "d": a[k] - b[k]} for a, b in pairs], lambda r: r["d"]))
                 for label, k in keys.items() if "ceiling" not in k}  # the ceilings: the same measurements
        loss = fmt(*over_targets([{**a, "d": a["test"]["selected"] / a["test"]["stl"]
                                   - b["test"]["selected"] / b["test"]["stl"]} for a, b in pairs],
                                 lambda r: r["d"]), 4)
        print(f"\n{name} - {surrogates[0]}, paired by (target, seed), mean ± s.e. over the targets: "
              + ", ".join(f"{label} {v}" for label, v in diffs.items()) + f"; selection / STL test loss {loss}")
        cases = {label: fmt(*mean_se([a[k] - b[k] for a, b in pairs])) for label, k in keys.items()
                 if "ceiling" not in k}
        print(f"the same over the {len(pairs)} cases (NaN F1 left out): "
              + ", ".join(f"{label} {v}" for label, v in cases.items()))


if __name__ == "__main__":
    main()
