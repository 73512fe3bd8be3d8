"""Least squares (eq. 3) vs the ridge chosen by leave-one-out error, as the number of fitted subsets grows.

Reads the report.json files that ``benchmarks/source_selection.py --out DIR`` (or ``negtransfer sources``)
wrote, so nothing is trained: every file holds the measured f(S) of its fitted and holdout subsets. For each
number n of fitted subsets (a prefix of the fitted rows, in their sampled order, so each is itself a uniform
sample), both surrogates are fitted on the relative scale and scored on the same holdout: Spearman of the
predicted vs measured f and the F1 of the minority class. Prints one row per n with the means over the files
and the paired difference (auto minus least squares, ± s.e. over the files; "within noise" when its size is
below one s.e.). Both surrogates see only the fitted subsets; the holdout is never used to choose anything.

Run:
``python benchmarks/surrogate_ridge.py runs/sources-largest-4k/*.json``
``python benchmarks/surrogate_ridge.py runs/sources-small/*.json runs/sources-adult/*.json --multiples 1 1.5 2``
Smallest: ``python benchmarks/source_selection.py --smoke --out DIR`` then
``python benchmarks/surrogate_ridge.py DIR/*.json --multiples 1`` (a check that it runs).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from source_selection import mean_se

from negtransfer.gains.surrogate import LinearSurrogate
from negtransfer.jobs.sources import measured_subsets
from negtransfer.select.sources import negative_transfer_metrics


def load_case(path: Path) -> dict:
    """Membership matrix, measured f and the fit/holdout split of one report.json."""
    report = json.loads(path.read_text())
    names, S, f, fit = measured_subsets(report)
    return {"S": S, "f": f, "fit": fit, "stl": float(report["stl_val_loss"]), "k": len(names), "name": path.stem}


def holdout_scores(case: dict, n: int, alpha) -> tuple[float, float, float]:
    """(Spearman, F1, chosen alpha) of a surrogate fitted on the first n fitted subsets."""
    S_fit, f_fit = case["S"][case["fit"]][:n], case["f"][case["fit"]][:n]
    surrogate = LinearSurrogate(alpha=alpha, underdetermined="min_norm").fit(S_fit, f_fit, stl_loss=case["stl"])
    m = negative_transfer_metrics(surrogate.predict(case["S"][~case["fit"]]), case["f"][~case["fit"]], case["stl"])
    return float(m["spearman"]), float(m["f1"]), float(surrogate.alpha_)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", type=Path, help="report.json files of source-selection runs.")
    parser.add_argument("--multiples", nargs="+", type=float, default=[1.0, 1.5, 2.0, 4.0, 8.0],
                        help="n as multiples of k (those above a file's fitted subsets are skipped for it).")
    args = parser.parse_args()
    cases = [load_case(path) for path in args.reports]
    print(f"{len(cases)} cases; k = {sorted({c['k'] for c in cases})}; fitted subsets "
          f"{sorted({int(c['fit'].sum()) for c in cases})}\n")
    print("| n / k | cases | Spearman, least squares | Spearman, auto ridge | auto - least squares (± s.e.) | "
          "auto better | F1, least squares | F1, auto | auto - least squares | median alpha chosen |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for multiple in args.multiples:
        rows = []
        for case in cases:
            n = int(round(multiple * case["k"]))
            if n > case["fit"].sum():
                continue
            ls, auto = holdout_scores(case, n, 0.0), holdout_scores(case, n, "auto")
            rows.append((ls[0], auto[0], ls[1], auto[1], auto[2]))
        if not rows:
            continue
        r = np.array(rows)
        d_rho, d_f1 = mean_se(r[:, 1] - r[:, 0]), mean_se(r[:, 3] - r[:, 2])
        noise = " (within noise)" if np.isfinite(d_rho[1]) and abs(d_rho[0]) < d_rho[1] else ""
        print(f"| {multiple:g} | {len(r)} | {mean_se(r[:, 0])[0]:.3f} | {mean_se(r[:, 1])[0]:.3f} | "
              f"{d_rho[0]:+.3f} ± {d_rho[1]:.3f}{noise} | {int((r[:, 1] > r[:, 0]).sum())} of {len(r)} | "
              f"{mean_se(r[:, 2])[0]:.3f} | {mean_se(r[:, 3])[0]:.3f} | {d_f1[0]:+.3f} ± {d_f1[1]:.3f} | "
              f"{np.median(r[:, 4]):.3g} |")


if __name__ == "__main__":
    main()
