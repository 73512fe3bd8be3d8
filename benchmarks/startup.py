"""Start-up costs: the seconds a fresh interpreter takes to import negtransfer, show the command line's help, or
fit the gain predictor, against a bare ``python -c pass``.

Each variant is a fresh subprocess of this interpreter (this checkout's ``src/`` first on the path), timed
wall-clock from start to exit; the variants run interleaved (one of each per round, ``--rounds`` rounds) and
the medians are printed, each also as a ratio to the bare interpreter's median of the same run. Each variant
also reports which heavy packages it imported: the command line's common path (``--help``, a command's
``--help``) imports none of numpy, scipy.stats, torch, pandas, scikit-learn or matplotlib; training
(AUROC included) no scipy.stats (the row "numpy + scipy.stats" is what AUROC's ``scipy.stats.rankdata``
cost every training process before); the ETAP gain predictor, fitted and predicting, numpy alone (the row
"scikit-learn" is what it imported before: scikit-learn, and through it scipy.stats and pandas).

Run: ``python benchmarks/startup.py [--rounds 15]`` (``--smoke``: 2 rounds; a check that it runs).
The last line is ``help_vs_bare_python: X`` (``negtransfer --help`` over ``python -c pass``). The figures
depend on the machine's load: state it with them (the script prints the load average before and after).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
HEAVY = ("numpy", "scipy.stats", "torch", "pandas", "sklearn", "matplotlib")
#: A ``python -c`` variant ends by printing the heavy packages it loaded.
REPORT = f"import sys; print('loaded:', ','.join(m for m in {HEAVY!r} if m in sys.modules) or '-')"
#: What each variant runs: ``python -c CODE``, or (CODE None) ``python -m negtransfer ARGS``.
VARIANTS: dict[str, tuple[str | None, list[str]]] = {
    "bare python": ("pass", []),
    "import negtransfer": ("import negtransfer; " + REPORT, []),
    "negtransfer --help": (None, ["--help"]),
    "negtransfer group --help": (None, ["group", "--help"]),
    "training metrics (AUROC)": ("import numpy as np; from negtransfer.train.metrics import auroc_rows; "
                                 "auroc_rows(np.array([0, 1, 1]), np.array([[0.2, 0.5, 0.9]])); " + REPORT, []),
    "numpy + scipy.stats (AUROC before)": ("import numpy, scipy.stats; " + REPORT, []),
    "ETAP predictor fitted": ("import numpy as np; from negtransfer.gains.etap import ETAPPredictor; "
                              "U = np.array([[1, 1, 0], [1, 0, 1], [0, 1, 1], [1, 1, 1]], dtype=bool); "
                              "ETAPPredictor(np.full((3, 3), 0.1), cv=2, spline_degrees=(2,), spline_n_knots=(2, 3))"
                              ".fit(U, np.where(U, 0.1, np.nan)).predict(U); " + REPORT, []),
    "scikit-learn (ETAP predictor before)": ("import sklearn.model_selection, sklearn.linear_model, sklearn.pipeline, "
                                             "sklearn.preprocessing; " + REPORT, []),
}


def command(code: str | None, args: list[str]) -> list[str]:
    return [sys.executable, "-c", code] if code is not None else [sys.executable, "-m", "negtransfer", *args]


def run_once(code: str | None, args: list[str], env: dict) -> float:
    """Wall seconds of one fresh interpreter, from start to exit."""
    start = time.perf_counter()
    subprocess.run(command(code, args), env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - start


def heavy_packages(code: str | None, args: list[str], env: dict) -> str:
    """The heavy packages a variant imports: its own report, or for the command line ``-X importtime``'s list."""
    if code is not None:
        out = subprocess.run(command(code, args), env=env, capture_output=True, text=True, check=True).stdout
        return next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("loaded:")), "-")
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "negtransfer", *args], env=env,
                         capture_output=True, text=True, check=True).stderr
    names = {line.rsplit("|", 1)[-1].strip() for line in out.splitlines() if line.startswith("import time:")}
    return ",".join(m for m in HEAVY if m in names) or "-"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds (one run of each variant)")
    parser.add_argument("--smoke", action="store_true", help="2 rounds: a check that it runs")
    args = parser.parse_args(argv)
    rounds = 2 if args.smoke else args.rounds
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    print(f"python {sys.version.split()[0]}, {rounds} interleaved rounds, load average before: "
          f"{os.getloadavg()[0]:.2f}")
    loaded = {name: heavy_packages(code, cli_args, env) for name, (code, cli_args) in VARIANTS.items()}
    seconds: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(rounds):
        for name, (code, cli_args) in VARIANTS.items():
            seconds[name].append(run_once(code, cli_args, env))
    bare = statistics.median(seconds["bare python"])
    print()
    print("| start-up | median seconds | x bare python | heavy packages imported |")
    print("| :--- | ---: | ---: | :--- |")
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.3f} | {median / bare:.1f} | {loaded[name]} |")
    print()
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    for name, key in (("import negtransfer", "import_negtransfer"), ("negtransfer group --help", "group_help"),
                      ("ETAP predictor fitted", "etap_predictor_fitted")):
        print(f"{key}_vs_bare_python: {statistics.median(seconds[name]) / bare:.2f}")
    print(f"help_vs_bare_python: {statistics.median(seconds['negtransfer --help']) / bare:.2f}")


if __name__ == "__main__":
    main()
