"""Every script in ``benchmarks/`` runs to completion with its smallest settings and prints its headline figure.

Each script runs in a subprocess (``--smoke``, or the smallest arguments it takes), in a temporary working
directory, with this checkout's ``src/`` first on the path; the test checks that it exits 0 and that every
line pattern of its headline output is printed. The scripts' figures mean nothing at these settings; the
test catches a benchmark that no longer runs against the package (slow: several minutes on 2 cores; run
with ``-m slow tests/benchmarks``). The ETAP Chemical benchmark skips where the data
(``../shared/data/etap-chemical`` beside the repository, or ``$NEGTRANSFER_CHEMICAL_DIR``) is absent.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"
CHEMICAL = Path(os.environ.get("NEGTRANSFER_CHEMICAL_DIR") or ROOT.parent / "shared" / "data" / "etap-chemical")
NUMBER = r"[-+]?(?:\d+\.?\d*(?:e[-+]?\d+)?|nan)"

# script: (arguments, patterns of the headline lines that must be printed, scripts run first with their arguments)
# "{tmp}" in an argument is the test's temporary directory (also the working directory).
CASES: dict[str, tuple[list[str], list[str], list[tuple[str, list[str]]]]] = {
    "any_network_grouping": (["--smoke", "--datasets", "digit-images", "--out", "{tmp}/anynet"],
                             [rf"^\| digit-images \(cnn\) \| 2 \| 1 \| {NUMBER} \| {NUMBER} \| {NUMBER} \|"], []),
    "affinity_momentum": (["--smoke"], [rf"^\| yeast \| with \| 1 \| {NUMBER} \|"], []),
    "affinity_overhead": (["--smoke"], [rf"^affinity_run_overhead: {NUMBER}$"], []),
    "affinity_step_cost": (["--smoke"], [rf"^loop / batched = {NUMBER}$"], []),
    "amtl_speed": (["--smoke"], [rf"^epoch_speedup: {NUMBER}$", rf"^validation_speedup: {NUMBER}$",
                                 r"^identical_numbers: True$"], []),
    "batched_training": (["--smoke"], [rf"^repeat_cost_ratio: {NUMBER}$", rf"^batched_vs_sequential_speedup: {NUMBER}$",
                                       r"^\s+32 .* True$"], []),
    "batching": (["--smoke"], [rf"^\| exam \| per-task\+oversample \| 0 \| {NUMBER} \|"], []),
    "clinical_comparison": (["--smoke", "--out", "{tmp}/clinical"],
                            [rf"^\| tp-amtl \| {NUMBER}", r"^Mean training seconds per run: stl-lstm"], []),
    "etap_chemical": (["--smoke", "--data-dir", str(CHEMICAL), "--out", "{tmp}/chemical"],
                      [rf"^Table 2, pairwise affinity vs pairwise test gain \(Pearson\): {NUMBER}",
                       rf"^\| 2 \| CLI defaults \| {NUMBER} \|"], []),
    "etap_preset": (["--smoke", "--part", "both", "--data-dir", str(CHEMICAL)],
                    [rf"^\| glorot \| {NUMBER} \| {NUMBER} \|", rf"^\| chemical \| 0 \| True \| {NUMBER}%",
                     rf"^\| chemical \| {NUMBER}% \| {NUMBER}% \|"], []),
    "executors_cores": (["--smoke", "--data-dir", str(CHEMICAL)],
                        [r"^identical numbers on 1 and 2 cores: True$", rf"^cores_speedup: {NUMBER}$"], []),
    "executors": (["--smoke"], [r"^bit-identical results on all [23]: True", rf"^process_vs_inprocess: {NUMBER}$"], []),
    "gain_noise": (["--smoke"], [rf"^\| yeast \| common \| 3 \| {NUMBER} \|"], []),
    "grad_tae_affinity": (["--smoke"], [rf'^\{{"dataset": "yeast", "seed": 0, "pearson_test": {NUMBER}, '], []),
    "group_selection_scaling": (["--smoke"], [rf"^selection_n14_b4_seconds: {NUMBER}$"], []),
    "grouping_methods": (["--smoke"], [rf"^\| {method} \| 2 \| {NUMBER}%" for method in
                                       ("etap", "tag", "hoa", "linear-surrogate", "mtgnet", "ayman", "grad-tae",
                                        "all tasks, one model, PCGrad")], []),
    "grouping_quality": (["--smoke"], [rf"^\| {variant} \| 3 \| 2 \| {NUMBER}%" for variant in ("default", "paper", "audit")]
                         + [r"^\| all \| \| 2 \| [0-2]/2 \(\d+%\) \| [0-2]/2 \(\d+%\) \| [0-2]/2 \("], []),
    "learning_rate_sweep": (["--smoke"], [rf"^\| 0\.01 \| 32 \| {NUMBER} \| {NUMBER} \|"], []),
    "pair_results": (["--smoke"], [rf"^\| accuracy \| {NUMBER} ± {NUMBER} \| {NUMBER} ± {NUMBER} \| \+0\.0080 ± "], []),
    "small_tasks": (["--smoke", "--out", "{tmp}/small"], [rf"^\| 0 \| {NUMBER} \| {NUMBER}% \| {NUMBER}%"], []),
    "source_repeats": (["--smoke"], [r"^F1 ceiling on the independent holdout \(1 case\): f\(STL\) exact "], []),
    "source_selection": (["--smoke"], [r"^all targets: holdout F1 "], []),
    "stacked_any_model": (["--smoke"], [rf"^stacked_speedup_cnn: {NUMBER} ", rf"^stacked_speedup_lstm: {NUMBER} "], []),
    "startup": (["--smoke"], [r"^\| negtransfer --help \| ", rf"^help_vs_bare_python: {NUMBER}$"], []),
    "step_anatomy": (["--smoke"], [rf"^products_ratio: {NUMBER}$", rf"^step_ratio: {NUMBER}$"], []),
    "surrogate_ridge": (["{tmp}/sources/planted-task00-0.json", "--multiples", "1"],
                        [rf"^\| 1 \| 1 \| {NUMBER} \| {NUMBER} \|"],
                        [("source_selection", ["--smoke", "--out", "{tmp}/sources"])]),
    "tag_step_cost": (["--smoke"], [rf"^tag_lookahead_speedup: {NUMBER}$"], []),
    "training_floor": (["--smoke"], [rf"^floor_ratio: {NUMBER}$"], []),
    "tp_amtl_interpret": (["--smoke", "--out", "{tmp}/interpret"],
                          [rf"^\| outgoing \| all \| {NUMBER} \|", r"^Pooled over tasks and steps"], []),
    "vmtl_kl_weight": (["--smoke", "--out", "{tmp}/kl"],
                       [rf"^\| vmtl\[beta=1/N_t\] \| {NUMBER} ± {NUMBER} \| {NUMBER} ± {NUMBER} \|"], []),
    "vmtl_runtime": (["--smoke"], [rf"^vmtl_L1_train_time_ratio: {NUMBER}$", rf"^vmtl_L2_train_time_ratio: {NUMBER}$"],
                     []),
    "vmtl_tables": (["--smoke", "--out", "{tmp}/vmtl"],
                    [r"^### heart-hospitals: average test accuracy", rf"^\| vmtl \| {NUMBER} ± {NUMBER} \|"], []),
}
NEEDS_CHEMICAL = {"etap_chemical", "etap_preset"}


def _scripts() -> set[str]:
    """The runnable scripts of benchmarks/ (helper modules such as grouping_datasets.py have no __main__)."""
    return {p.stem for p in BENCHMARKS.glob("*.py") if 'if __name__ == "__main__":' in p.read_text()}


def _run(script: str, args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MPLBACKEND": "Agg",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, str(BENCHMARKS / f"{script}.py"), *(a.replace("{tmp}", str(tmp_path)) for a in args)]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)


def test_every_benchmark_script_has_a_smoke_case():
    assert _scripts() == set(CASES), "add each new benchmark script to CASES with its smallest settings"


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(CASES))
def test_benchmark_runs_with_its_smallest_settings(script, tmp_path):
    if script in NEEDS_CHEMICAL and not (CHEMICAL / "55_X_train.npy").exists():
        pytest.skip(f"no ETAP Chemical data in {CHEMICAL} (set NEGTRANSFER_CHEMICAL_DIR)")
    args, headlines, before = CASES[script]
    for first, first_args in before:
        done = _run(first, first_args, tmp_path)
        assert done.returncode == 0, f"{first} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    done = _run(script, args, tmp_path)
    assert done.returncode == 0, f"{script} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    for pattern in headlines:
        assert re.search(pattern, done.stdout, re.MULTILINE), f"{script} printed no line matching {pattern!r}:\n" \
                                                              f"{done.stdout[-3000:]}"
