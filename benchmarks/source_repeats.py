"""What more repeats would buy for the negative-transfer prediction: measured from stored runs, nothing trained.

A source-selection job with ``--repeats R --independent-holdout`` stores R repeats (seeds 0 .. R-1) of every
fitted subset, 2R repeats (0 .. 2R-1) of every holdout subset and of the subset models' STL run. That is
enough to refit the surrogate on fewer repeats and to score it on other sets of holdout repeats, all paired
on the same runs (R >= 2). For each case (target, seed) and each surrogate (linear, kernel) this prints:

a. **fitted repeats**: the surrogate fitted on repeat 0 alone (and, separately, on repeat 1 alone) against
   the job's own (fitted on the mean of repeats 0 .. R-1), each scored on the independent holdout (repeats
   R .. 2R-1, against f(STL) of those repeats, as ``holdout.independent``): F1 and Spearman, the paired
   difference, and a straight-line extrapolation in 1/R to R + 1 fitted repeats (an extrapolation, not a
   measurement);
b. **holdout repeats**: the surrogate fitted on repeat 0 alone, scored on the holdout repeats 1 .. 2R-1
   (2R - 1 repeats, none shared with the fit) against R .. 2R-1 (and against the mean over every set of R of
   them): F1, its ceiling (:func:`negtransfer.select.sources.holdout_f1_ceiling`, f(STL)'s noise drawn too,
   as on the job's independent holdout), Spearman and its noise
   ceiling (:func:`negtransfer.select.sources.holdout_noise_ceiling`);
c. **where the F1 gap comes from** (the job's surrogate on the independent holdout): the measured and the
   predicted number of harmful subsets (f(S) >= f(STL)); the F1 with the classes drawn by the predicted
   ranking with a count taken from the fitted subsets' measured share of harmful ones (needs no holdout
   label) and with the measured count (an **oracle-count diagnostic**: it uses the holdout's labels); and the
   F1 ceiling with f(STL) taken as exact (as reported before) against one that also draws f(STL)'s own noise
   (``holdout_f1_ceiling(..., stl_values=...)``: its per-repeat values centred like the subsets').

Every pooled figure is the mean ± s.e. over the targets of the per-target means over the seeds (as
``benchmarks/source_selection.py``), paired differences per case first. The store is read through the job's
own run path with an executor that refuses to train: a missing run stops the script with an ``error:`` line.

Last, **the fitted-share count against the job's line** (table (c)'s F1 difference, the test of
docs/methods/source-selection.md "A steadier class line, tested on exam and adult"): per surrogate, the paired
difference over the targets and, beside it, over the cases where both F1s are defined. ``--rows-out`` writes
the per-case rows as JSON; ``--from-rows`` reads such files (several datasets) and prints that test pooled
over all their targets, training and reading nothing.

Run (stores of ``benchmarks/source_selection.py ... --independent-holdout``; ``{seed}`` in ``--store``
stands for each seed):
``python benchmarks/source_repeats.py --dataset tv16 --targets Texas "New York" Pennsylvania California Florida
--seeds 0 1 2 --subsets 400 --holdout 100 --repeats 2 --data-fraction 0.4 --steps-fraction 0.2
--store runs/kernel-tv16-seed{seed}.sqlite``
``python benchmarks/source_repeats.py --dataset adult --group-column occupation --targets Tech-support
Protective-serv Farming-fishing --subsets 96 --holdout 50 --repeats 3 --data-fraction 1 --steps-fraction 1
--store runs/sources-adult-occ.sqlite --rows-out runs/repeats-adult.json`` (the stores of
``benchmarks/source_selection.py``'s defaults: pass its full data and steps), then
``python benchmarks/source_repeats.py --from-rows runs/repeats-adult.json runs/repeats-exam.json``
``python benchmarks/source_repeats.py --smoke`` (planted tasks of 200 rows, seed 0, 12 + 6 subsets, 2 repeats
of 2 epochs: trains that tiny store in a temporary folder first, then reads it like any other)
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, replace
from itertools import combinations
from pathlib import Path

import numpy as np
import torch
from source_selection import fmt, load, mean_se, over_targets

from negtransfer.jobs.sources import (
    NegativeTransferScores,
    SourceOptions,
    SourcesState,
    independent_prediction,
    make_surrogate,
    target_values,
)
from negtransfer.runs.store import RunStore
from negtransfer.select.sources import (
    holdout_f1_ceiling,
    negative_transfer_metrics,
    reference_noise_variance,
    repeat_noise,
)
from negtransfer.train.config import TrainConfig

SURROGATES = ("linear", "kernel")


class RefuseTraining:
    """An executor that trains nothing: the job's run path (``ensure_runs``) reads every stored run and would
    send only missing ones here, so reaching it means the store lacks a run this analysis needs."""

    def __init__(self, store: Path):
        self.store = store

    def _refuse(self, *_args, **_kwargs) -> None:
        raise SystemExit(f"error: the store {self.store} lacks runs this analysis needs (it trains nothing); "
                         "point --store at the job's store and pass the job's --subsets, --holdout, --repeats, "
                         "--data-fraction and --steps-fraction, or run the job with --independent-holdout first")

    run = map = _refuse

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class StoredCase:
    """One (target, seed) job's stored subset measurements: the target's f on the job's validation rows."""

    target: str
    seed: int
    k: int
    S_fit: np.ndarray  # (n_fit, k) membership of the fitted subsets, in the job's order
    S_hold: np.ndarray  # (n_hold, k) of the holdout subsets
    fit: np.ndarray  # (n_fit, R): repeats 0 .. R-1
    hold: np.ndarray  # (n_hold, 2R): repeats 0 .. 2R-1
    stl: np.ndarray  # (2R,): the subset models' STL run, repeats 0 .. 2R-1

    @property
    def repeats(self) -> int:
        """R, the job's repeats."""
        return self.fit.shape[1]


def read_case(dataset, options: SourceOptions, config: TrainConfig, seed: int, store: RunStore,
              store_path: Path) -> StoredCase:
    """The job's subsets (sampled as the job samples them) and their stored runs, through the job's own state and
    run path with an executor that refuses to train (:class:`RefuseTraining`)."""
    state = SourcesState(dataset, options, config, seed, store, executor=RefuseTraining(store_path))
    R, n_fit = state.repeats, state.n_fit
    fit_groups, hold_groups = state.subset_groups[:n_fit], state.subset_groups[n_fit:]
    data, cfg = state.subset_data, state.subset_config
    fitted = state.train("fitted subsets", list(dict.fromkeys(fit_groups)), data, cfg)
    held = state.train("holdout subsets, STL", list(dict.fromkeys([state.stl] + hold_groups)), data, cfg,
                       repeats=2 * R)

    def values(results, group) -> np.ndarray:
        return target_values(results[group], state.target, state.loss, state.split)

    return StoredCase(options.target, seed, state.k, state.subsets[:n_fit], state.subsets[n_fit:],
                      np.array([values(fitted, g) for g in fit_groups]), np.array([values(held, g) for g in hold_groups]),
                      values(held, state.stl))


def fit_on(case: StoredCase, kind: str, repeats: list[int], options: SourceOptions):
    """The job's surrogate of ``kind`` (its resolved ridge) fitted on the mean of the fitted subsets' ``repeats``,
    anchored at f(STL) of the same repeats (as the job anchors it at the mean of its repeats)."""
    ridge = replace(options, surrogate=kind).resolved_ridge(len(case.S_fit), case.k)
    return make_surrogate(kind, ridge).fit(case.S_fit, case.fit[:, repeats].mean(axis=1),
                                           stl_loss=float(case.stl[repeats].mean()))


def holdout_prediction(surrogate, case: StoredCase, repeats: list[int]) -> tuple[np.ndarray, np.ndarray, float]:
    """The predicted f(S) of the holdout subsets on ``repeats`` (the surrogate's relative change applied to f(STL)
    of those repeats, as :func:`negtransfer.jobs.sources.independent_prediction`), their measured values (n, len(repeats)) and
    that f(STL)."""
    f_stl = float(case.stl[repeats].mean())
    return f_stl + abs(f_stl) * surrogate.surrogate_value(case.S_hold), case.hold[:, repeats], f_stl


def scores_on(surrogate, case: StoredCase, repeats: list[int]) -> NegativeTransferScores:
    """F1, Spearman and both ceilings of the surrogate on the holdout subsets' ``repeats`` (none of them fitted):
    the job's own independent prediction (:func:`negtransfer.jobs.sources.independent_prediction`)."""
    return independent_prediction(surrogate, case.S_hold, case.hold[:, repeats], case.stl[repeats], repeats[0]).scores


def f1_of_classes(harmful: np.ndarray, measured: np.ndarray, f_stl: float) -> float:
    """The holdout F1 (:func:`negative_transfer_metrics`) of predicted classes given directly (True: harmful)."""
    return float(negative_transfer_metrics(np.where(harmful, f_stl + 1.0, f_stl - 1.0), measured, f_stl)["f1"])


def top_count(predicted: np.ndarray, count: int) -> np.ndarray:
    """True for the ``count`` subsets with the highest predicted loss (ties by position)."""
    harmful = np.zeros(predicted.size, dtype=bool)
    harmful[np.argsort(-predicted, kind="stable")[:max(0, min(count, predicted.size))]] = True
    return harmful


def reference_noise(values: np.ndarray, stl_values: np.ndarray) -> tuple[float, float]:
    """The noise variance of f(STL) and of a subset's f(S) (each a mean over the repeats of ``values``), from
    values centred per repeat (:func:`negtransfer.select.sources.reference_noise_variance`, ``repeat_noise``);
    NaN for a diverged run."""
    subset = repeat_noise(values)
    return reference_noise_variance(values, stl_values), float("nan") if subset is None else subset[1]


def analyse_case(case: StoredCase, kind: str, options: SourceOptions) -> dict:
    """Every figure of one case and surrogate (module docstring, a-c)."""
    R = case.repeats
    if R < 2:
        raise SystemExit(f"error: the store of {case.target}, seed {case.seed} has {R} repeat; this analysis needs "
                         "the job's --repeats of 2 or more")
    everything, independent = list(range(R)), list(range(R, 2 * R))
    job = fit_on(case, kind, everything, options)
    single = [fit_on(case, kind, [r], options) for r in (0, 1)]
    out: dict = {"target": case.target, "seed": case.seed, "surrogate": kind}  # main() adds "dataset"
    # a. fitted repeats, scored on the independent holdout
    job_scores = scores_on(job, case, independent)
    one = [scores_on(s, case, independent) for s in single]
    for name, value in (("f1", lambda s: s.f1), ("spearman", lambda s: s.spearman)):
        out[f"job_{name}"] = value(job_scores)
        out[f"r0_{name}"] = value(one[0])
        out[f"r01_{name}"] = float(np.nanmean([value(s) for s in one])) if any(
            np.isfinite(value(s)) for s in one) else float("nan")
    out.update(job_f1_ceiling=job_scores.f1_ceiling, job_noise_ceiling=job_scores.noise_ceiling)
    # b. holdout repeats, the surrogate fitted on repeat 0 alone
    unshared = list(range(1, 2 * R))
    more, fewer = scores_on(single[0], case, unshared), one[0]
    every_r = [scores_on(single[0], case, list(c)) for c in combinations(unshared, R)]
    for label, scores in (("more", [more]), ("fewer", [fewer]), ("fewer_all", every_r)):
        for name in ("f1", "f1_ceiling", "spearman", "noise_ceiling"):
            figures = [getattr(s, name) for s in scores]
            out[f"{label}_{name}"] = float(np.nanmean(figures)) if np.isfinite(figures).any() else float("nan")
    # c. the job's surrogate on the independent holdout: the class line and the ceiling's f(STL)
    predicted, per_repeat, f_stl = holdout_prediction(job, case, independent)
    measured = per_repeat.mean(axis=1)
    fitted_share = float(np.mean(case.fit.mean(axis=1) >= case.stl[everything].mean()))
    shared_line = float(case.stl[everything].mean())  # the same subsets measured on the fitted repeats' seeds
    out.update(n_harmful=int((measured >= f_stl).sum()), n_predicted=int((predicted >= f_stl).sum()),
               n_harmful_shared=int((case.hold[:, everything].mean(axis=1) >= shared_line).sum()),
               n_base_rate=int(round(fitted_share * measured.size)),
               f1_base_rate=f1_of_classes(top_count(predicted, int(round(fitted_share * measured.size))), measured,
                                          f_stl),
               f1_oracle_count=f1_of_classes(top_count(predicted, int((measured >= f_stl).sum())), measured, f_stl))
    out["f1_ceiling_exact"] = holdout_f1_ceiling(per_repeat, f_stl)  # f(STL) taken as exact, as reported before
    out["f1_ceiling_stl_noise"] = job_scores.f1_ceiling
    stl_var, subset_var = reference_noise(case.hold, case.stl)  # all 2R repeats: the better estimate of each
    out["stl_to_subset_noise"] = float(np.sqrt(stl_var / subset_var)) if subset_var > 0 else float("nan")
    return out


def paired(rows: list[dict], a: str, b: str) -> tuple[float, float]:
    """``a`` minus ``b``, paired by case, pooled over the targets (cases with either NaN left out)."""
    return over_targets([r for r in rows if np.isfinite(r[a]) and np.isfinite(r[b])], lambda r: r[a] - r[b])


def noise_words(mean: float, se: float) -> str:
    """A paired difference against its s.e.: within one s.e., beyond one, or beyond two."""
    if not (np.isfinite(mean) and np.isfinite(se)):
        return "n/a"
    return "within one s.e." if abs(mean) <= se else ("beyond one s.e." if abs(mean) <= 2 * se else "beyond two s.e.")


def pooled(rows: list[dict], key: str) -> str:
    return fmt(*over_targets(rows, lambda r: r[key]))


def difference(rows: list[dict], a: str, b: str) -> str:
    mean, se = paired(rows, a, b)
    return f"{fmt(mean, se)} ({noise_words(mean, se)})"


def print_cases(rows: list[dict], R: int) -> None:
    """One Markdown row per case and surrogate."""
    print(f"| target | seed | surrogate | independent F1: fitted on {R} repeats / repeat 0 / repeats 0 and 1 apart | "
          f"Spearman: the same | fitted on repeat 0, scored on {2 * R - 1} / {R} holdout repeats: F1 | F1 ceiling | "
          "Spearman | noise ceiling | harmful: measured (on the fitted repeats' seeds) / predicted / fitted share | F1: job's line / "
          "fitted share's count / oracle count | F1 ceiling: f(STL) exact / with its noise | f(STL) noise / a "
          "subset's |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['target']} | {r['seed']} | {r['surrogate']} | {r['job_f1']:.3f} / {r['r0_f1']:.3f} / "
              f"{r['r01_f1']:.3f} | {r['job_spearman']:.3f} / {r['r0_spearman']:.3f} / {r['r01_spearman']:.3f} | "
              f"{r['more_f1']:.3f} / {r['fewer_f1']:.3f} | {r['more_f1_ceiling']:.3f} / {r['fewer_f1_ceiling']:.3f} | "
              f"{r['more_spearman']:.3f} / {r['fewer_spearman']:.3f} | "
              f"{r['more_noise_ceiling']:.3f} / {r['fewer_noise_ceiling']:.3f} | "
              f"{r['n_harmful']} ({r['n_harmful_shared']}) / {r['n_predicted']} / {r['n_base_rate']} | {r['job_f1']:.3f} / "
              f"{r['f1_base_rate']:.3f} / {r['f1_oracle_count']:.3f} | {r['f1_ceiling_exact']:.3f} / "
              f"{r['f1_ceiling_stl_noise']:.3f} | {r['stl_to_subset_noise']:.2f} |", flush=True)


def print_pooled(rows: list[dict], R: int) -> None:
    """The three tables of the module docstring, pooled over the targets, per surrogate."""
    print(f"\n(a) fitted repeats, scored on the independent holdout (repeats {R}-{2 * R - 1}); mean ± s.e. over "
          "the targets of the per-target means over the seeds; differences paired by case")
    print(f"| surrogate | F1: fitted on {R} repeats | on repeat 0 | on repeats 0, 1 apart (mean) | {R} minus repeat 0 | "
          f"{R} minus one (mean) | F1 at {R + 1}, extrapolated | Spearman: {R} repeats | repeat 0 | "
          f"{R} minus repeat 0 | {R} minus one (mean) | Spearman at {R + 1}, extrapolated |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for kind in dict.fromkeys(r["surrogate"] for r in rows):
        mine = [r for r in rows if r["surrogate"] == kind]
        cells = []
        for name in ("f1", "spearman"):
            gain = paired(mine, f"job_{name}", f"r01_{name}")[0]
            # straight line in 1/R through one repeat and R: the next repeat adds gain x (1/R - 1/(R+1)) / (1 - 1/R)
            ahead = over_targets(mine, lambda r, n=name: r[f"job_{n}"])[0] + gain * (1 / R - 1 / (R + 1)) / (1 - 1 / R)
            cells += [pooled(mine, f"job_{name}"), pooled(mine, f"r0_{name}")]
            if name == "f1":
                cells.append(pooled(mine, "r01_f1"))
            cells += [difference(mine, f"job_{name}", f"r0_{name}"), difference(mine, f"job_{name}", f"r01_{name}"),
                      f"{ahead:.3f}"]
        print(f"| {kind} | " + " | ".join(cells) + " |")
    print(f"\n(b) holdout repeats: the surrogate fitted on repeat 0 alone, scored on holdout repeats 1-{2 * R - 1} "
          f"against {R}-{2 * R - 1} (and against the mean over every set of {R} of repeats 1-{2 * R - 1})")
    print(f"| surrogate | figure | {2 * R - 1} holdout repeats | {R} ({R}-{2 * R - 1}) | {R} (every set) | "
          f"{2 * R - 1} minus {R} ({R}-{2 * R - 1}) | {2 * R - 1} minus {R} (every set) |")
    print("|---|---|---|---|---|---|---|")
    for kind in dict.fromkeys(r["surrogate"] for r in rows):
        mine = [r for r in rows if r["surrogate"] == kind]
        for name in ("f1", "f1_ceiling", "spearman", "noise_ceiling"):
            print(f"| {kind} | {name.replace('_', ' ')} | {pooled(mine, f'more_{name}')} | {pooled(mine, f'fewer_{name}')} | "
                  f"{pooled(mine, f'fewer_all_{name}')} | {difference(mine, f'more_{name}', f'fewer_{name}')} | "
                  f"{difference(mine, f'more_{name}', f'fewer_all_{name}')} |")
        gap = {label: paired(mine, f"{label}_f1", f"{label}_f1_ceiling") for label in ("more", "fewer")}
        print(f"| {kind} | F1 minus its ceiling | {fmt(*gap['more'])} | {fmt(*gap['fewer'])} | | | |")
    print("\n(c) where the F1 gap comes from (the job's surrogate on the independent holdout)")
    print(f"| surrogate | harmful subsets: measured | the same subsets on repeats 0-{R - 1} | their difference, "
          "absolute | predicted | predicted minus measured | the same, absolute | F1: job's line | fitted share's "
          "count | minus job's | oracle count (diagnostic) | oracle minus job's | F1 ceiling: f(STL) exact | "
          "with f(STL)'s noise | exact minus with noise | f(STL) noise / a subset's (median) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for kind in dict.fromkeys(r["surrogate"] for r in rows):
        mine = [{**r, "shared_error": abs(r["n_harmful_shared"] - r["n_harmful"]),
                 "count_error": abs(r["n_predicted"] - r["n_harmful"])} for r in rows if r["surrogate"] == kind]
        ratio = float(np.nanmedian([r["stl_to_subset_noise"] for r in mine]))
        print(f"| {kind} | {pooled(mine, 'n_harmful')} | {pooled(mine, 'n_harmful_shared')} | "
              f"{pooled(mine, 'shared_error')} | {pooled(mine, 'n_predicted')} | "
              f"{difference(mine, 'n_predicted', 'n_harmful')} | {pooled(mine, 'count_error')} | "
              f"{pooled(mine, 'job_f1')} | {pooled(mine, 'f1_base_rate')} | {difference(mine, 'f1_base_rate', 'job_f1')} | "
              f"{pooled(mine, 'f1_oracle_count')} | "
              f"{difference(mine, 'f1_oracle_count', 'job_f1')} | {pooled(mine, 'f1_ceiling_exact')} | "
              f"{pooled(mine, 'f1_ceiling_stl_noise')} | {difference(mine, 'f1_ceiling_exact', 'f1_ceiling_stl_noise')} | "
              f"{ratio:.2f} |")
    by_case = {(r["target"], r["seed"]): r for r in rows}  # the ceilings: the same measurements for every surrogate
    print(f"\nF1 ceiling on the independent holdout ({len(by_case)} case{'s' * (len(by_case) != 1)}): f(STL) exact "
          f"{pooled(list(by_case.values()), 'f1_ceiling_exact')}, with f(STL)'s noise "
          f"{pooled(list(by_case.values()), 'f1_ceiling_stl_noise')}, exact minus with noise "
          f"{difference(list(by_case.values()), 'f1_ceiling_exact', 'f1_ceiling_stl_noise')}")


def share_count_test(rows: list[dict]) -> list[dict]:
    """Per surrogate: the job's F1 and the fitted-share count's on the independent holdout, and their paired
    difference (share count minus job's line) over the targets (per-target means over the seeds first) and over
    the cases where both are defined, with the number of such cases."""
    out = []
    for kind in dict.fromkeys(r["surrogate"] for r in rows):
        mine = [r for r in rows if r["surrogate"] == kind]
        both = [r for r in mine if np.isfinite(r["job_f1"]) and np.isfinite(r["f1_base_rate"])]
        over_cases = mean_se([r["f1_base_rate"] - r["job_f1"] for r in both])
        out.append({"surrogate": kind, "datasets": sorted({str(r.get("dataset", "")) for r in mine}),
                    "cases": len(mine), "cases_defined": len(both), "targets": len({r["target"] for r in both}),
                    "job_f1": over_targets(mine, lambda r: r["job_f1"]),
                    "share_f1": over_targets(mine, lambda r: r["f1_base_rate"]),
                    "difference_over_targets": paired(mine, "f1_base_rate", "job_f1"),
                    "difference_over_cases": over_cases})
    return out


def print_share_count_test(rows: list[dict]) -> None:
    """The fitted-share count against the job's line (module docstring), one line per surrogate."""
    print("\nThe fitted-share count against the job's line (independent holdout; share count minus job's line, "
          "paired; cases with either F1 undefined left out)")
    print("| datasets | surrogate | cases (both F1 defined) | F1: job's line | fitted share's count | difference, "
          "over targets | difference, over cases |")
    print("|---|---|---|---|---|---|---|")
    for t in share_count_test(rows):
        (dt, st), (dc, sc) = t["difference_over_targets"], t["difference_over_cases"]
        print(f"| {', '.join(t['datasets'])} | {t['surrogate']} | {t['cases']} ({t['cases_defined']}, "
              f"{t['targets']} targets) | {fmt(*t['job_f1'])} | {fmt(*t['share_f1'])} | {fmt(dt, st)} "
              f"({noise_words(dt, st)}) | {fmt(dc, sc)} ({noise_words(dc, sc)}) |")


def smoke_store(args) -> None:
    """The tiny job the smoke run reads: planted tasks, 12 + 6 subsets, 2 repeats of 2 epochs, the independent
    holdout (the only training this script does, and only with --smoke)."""
    import tempfile

    from negtransfer.jobs.sources import run_sources

    args.dataset, args.planted_rows, args.seeds, args.repeats, args.epochs = "planted", 200, [0], 2, 2
    args.subsets, args.holdout, args.alpha, args.targets = 12, 6, 3, ["task00"]
    if args.store is None:
        args.store = str(Path(tempfile.mkdtemp(prefix="source-repeats-smoke-")) / "runs.sqlite")
    for seed in args.seeds:
        dataset = load(args.dataset, seed, args.group_column, args.planted_rows)
        run_sources(dataset, job_options(args, args.targets[0], dataset), train_config(args), seed,
                    RunStore(Path(args.store.format(seed=seed))))


def job_options(args, target: str, dataset) -> SourceOptions:
    """The job's options that decide which runs it stored (the others do not matter here)."""
    return SourceOptions(target=target, alpha=min(args.alpha, dataset.n_tasks - 1), n_subsets=args.subsets,
                         holdout=args.holdout, repeats=args.repeats, training=args.training, ridge=args.ridge,
                         independent_holdout=True, threshold_by="surrogate", exhaustive_pairs="off",
                         affinity_baseline=False, pairwise_baseline=False, data_fraction=args.data_fraction,
                         steps_fraction=args.steps_fraction)


def train_config(args) -> TrainConfig:
    return TrainConfig.preset("task-modeling" if args.training == "task-modeling" else "default",
                              **({"max_epochs": args.epochs} if args.epochs else {}))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="tv16", choices=["planted", "tv16", "adult", "exam"])
    parser.add_argument("--group-column", default=None, help="adult: the column whose groups are the tasks "
                        "(the job's --group-column).")
    parser.add_argument("--targets", nargs="+", default=["Texas", "New York", "Pennsylvania", "California", "Florida"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--store", default=None,
                        help="The job's run store; '{seed}' in it stands for each seed (one store per seed).")
    parser.add_argument("--alpha", type=int, default=5)
    parser.add_argument("--subsets", type=int, default=400)
    parser.add_argument("--holdout", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--training", default="parity", choices=["parity", "task-modeling", "legacy"])
    parser.add_argument("--ridge", default=None, help="The job's --ridge, if it set one.")
    parser.add_argument("--epochs", type=int, default=None, help="The job's maximum epochs, if it set them.")
    parser.add_argument("--data-fraction", type=float, default=0.4)
    parser.add_argument("--steps-fraction", type=float, default=0.2)
    parser.add_argument("--planted-rows", type=int, default=1500)
    parser.add_argument("--surrogates", nargs="+", default=list(SURROGATES), choices=SURROGATES)
    parser.add_argument("--smoke", action="store_true", help="Train a tiny store first, then read it (a check).")
    parser.add_argument("--rows-out", type=Path, default=None, help="Also write the per-case rows here (JSON).")
    parser.add_argument("--from-rows", nargs="+", type=Path, default=None,
                        help="Read rows written by --rows-out (any datasets) and print the share-count test only.")
    args = parser.parse_args(argv)
    if args.ridge is not None and args.ridge != "auto":
        args.ridge = float(args.ridge)
    return args


def main(argv: list[str] | None = None) -> list[dict]:
    """Read every case's stored runs, print the tables; returns the per-case rows."""
    args = parse_args(argv)
    if args.from_rows:
        rows = [row for path in args.from_rows for row in json.loads(path.read_text())]
        print_share_count_test(rows)
        return rows
    torch.set_num_threads(1)
    if args.smoke:
        smoke_store(args)
    if args.store is None:
        raise SystemExit("error: --store is required (the job's run store; '{seed}' stands for each seed)")
    rows: list[dict] = []
    for seed in args.seeds:
        path = Path(args.store.format(seed=seed))
        if not path.is_file():
            raise SystemExit(f"error: no run store at {path}; pass the job's --store ('{{seed}}' for each seed)")
        store = RunStore(path)
        dataset = load(args.dataset, seed, args.group_column, args.planted_rows)
        for target in args.targets:
            options = job_options(args, target, dataset)
            case = read_case(dataset, options, train_config(args), seed, store, path)
            for kind in args.surrogates:
                rows.append({"dataset": args.dataset, **analyse_case(case, kind, options)})
            print(f"read {target}, seed {seed}", file=sys.stderr, flush=True)
    rows.sort(key=lambda r: (r["target"], r["seed"], r["surrogate"]))
    print_cases(rows, args.repeats)
    print_pooled(rows, args.repeats)
    print_share_count_test(rows)
    if args.rows_out:
        args.rows_out.write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
