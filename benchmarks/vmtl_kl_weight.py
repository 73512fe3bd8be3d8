"""VMTL's classifier-prior KL weight (beta) at full strength, paired with BMTL and STL (issue 29, item 1).

Three arms of ``vmtl``, each a ``negtransfer compare`` run
(:func:`negtransfer.jobs.compare.run_compare`, the same code path) on the same
splits, subsamples and seeds (run r: seed + r):

* ``vmtl``: today's default schedule (+1e-6 every 10 iterations, beta ends at
  6e-5 after 600 iterations);
* ``vmtl[beta=6e-3]``: a linear ramp to the official code's final 6e-3 at the
  last iteration (``--set kl_w_final=6e-3``);
* ``vmtl[beta=1/N_t]``: a linear ramp to the ELBO-consistent 1 / N_t per task
  (supplement eq. 4 divided by N_t; ``--set kl_w_final=1/n``);

with ``stl`` and ``bmtl`` (which have no w-KL) trained once. For each dataset
and train fraction it prints the average test and validation accuracy (%) per
arm (mean ± s.e. over runs) and the paired run-by-run differences of both
(mean ± s.e., runs better, Wilcoxon and paired t p-values) from ``bmtl``,
``stl`` and default ``vmtl``. Choose on the validation columns; the test
columns are reported, never used for the choice. Every fraction prints its
wall time.

Run::

    python benchmarks/vmtl_kl_weight.py --datasets heart-hospitals --fractions 0.05,0.1,0.2 --runs 5 \\
        --set balanced_batches=false --out runs/vmtl-kl-weight
    python benchmarks/vmtl_kl_weight.py --smoke --out DIR   # heart-hospitals, 10%, 2 runs of 20 iterations
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from negtransfer.data.builtin import load_builtin
from negtransfer.jobs.compare import CompareOptions, CompareReport, ModelEntry, run_compare
from negtransfer.models.base import FitOptions
from negtransfer.report.compare import paired_markdown, write_compare_outputs
from negtransfer.runs.store import RunStore

#: The arms: the name in the tables and the ``--set`` settings that make it (on top of ``--set``).
ARMS = {"vmtl": {}, "vmtl[beta=6e-3]": {"kl_w_final": 6e-3}, "vmtl[beta=1/N_t]": {"kl_w_final": "1/n"}}
BASELINES = ("stl", "bmtl")


def parse_settings(text: str) -> dict:
    settings = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        try:
            settings[key] = json.loads(value)
        except json.JSONDecodeError:
            settings[key] = value
    return settings


def run_fraction(dataset: str, fraction: float, args, settings: dict) -> CompareReport:
    """Every arm on one dataset and fraction, merged into one report (rows of the arms renamed)."""
    where = args.out / dataset / f"f{fraction:g}"
    where.mkdir(parents=True, exist_ok=True)
    store = RunStore(where / "runs.sqlite")
    merged: CompareReport | None = None
    for arm, extra in ARMS.items():
        models = (*BASELINES, "vmtl") if arm == "vmtl" else ("vmtl",)
        options = CompareOptions(models=models, runs=args.runs, train_fraction=fraction,
                                 fit=FitOptions(iterations=args.iterations, settings={**settings, **extra}))
        report = run_compare(lambda seed, name=dataset: load_builtin(name, seed=seed), dataset, options, args.seed,
                             store)
        if merged is None:
            merged = report
            continue
        merged.rows += [{**r, "model": arm} for r in report.rows if r["model"] == "vmtl"]
        vmtl = next(m for m in report.models if m.name == "vmtl")
        merged.models.append(ModelEntry(arm, vmtl.family, vmtl.stl_counterpart, f"{vmtl.description}, {extra}"))
        merged.configs[arm] = report.configs["vmtl"]
        merged.seconds.update({k.replace("vmtl/", f"{arm}/"): v for k, v in report.seconds.items()
                               if k.startswith("vmtl/")})
    assert merged is not None
    write_compare_outputs(merged, where)
    return merged


def cell(mean_se) -> str:
    mean, se = mean_se
    return f"{100 * mean:.1f} ± {100 * se:.1f}"


def print_fraction(dataset: str, fraction: float, report: CompareReport) -> None:
    names = [m.name for m in report.models]
    test, val = report.summary("accuracy"), report.summary("validation_accuracy")
    print(f"\n### {dataset} at {fraction:.0%}: average accuracy (%), mean ± s.e. over {report.runs} runs\n")
    print("| model | validation | test |\n|---|---:|---:|")
    for name in names:
        print(f"| {name} | {cell(val[name]['average'])} | {cell(test[name]['average'])} |")
    for metric in ("validation_accuracy", "accuracy"):
        for reference in ("vmtl", "bmtl", "stl"):
            subset = replace(report, models=[m for m in report.models if m.name in ARMS or m.name == reference])
            print(f"\n{dataset} {fraction:.0%}, {metric}, paired (points):\n")
            print(paired_markdown(subset, metric, reference, scale=100.0, digits=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="heart-hospitals")
    parser.add_argument("--fractions", default="0.05,0.1,0.2")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--set", default="", help="Comma-separated KEY=VALUE VariationalConfig settings for all arms.")
    parser.add_argument("--out", type=Path, default=Path("runs/vmtl-kl-weight"))
    parser.add_argument("--smoke", action="store_true", help="Smallest settings: checks that the script runs.")
    args = parser.parse_args()
    if args.smoke:
        args.datasets, args.fractions, args.runs, args.iterations = "heart-hospitals", "0.1", 2, 20
    torch.set_num_threads(1)
    settings = parse_settings(args.set)
    for dataset in args.datasets.split(","):
        for fraction in (float(f) for f in args.fractions.split(",")):
            start = time.time()
            report = run_fraction(dataset, fraction, args, settings)
            print_fraction(dataset, fraction, report)
            print(f"\n# {dataset} fraction {fraction:g}: {time.time() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
