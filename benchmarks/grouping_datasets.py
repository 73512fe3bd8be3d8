"""The real datasets the grouping benchmarks measure on, 10 tasks each (1023 groups).

* ``yeast``: the first 10 of yeast's 14 gene-function labels (multi-label, binary);
* ``chicago``: the first 10 of chicago-ridership's 20 stations (multi-label, regression);
* ``chemical``: the ETAP paper's 10 Chemical (MHC-I) tasks, read from
  ``--data-dir`` (default ``../shared/data/etap-chemical``; per-task rows,
  binary); skipped with a message when the folder is absent;
* ``tv16``: the 8th to 17th largest states of tv16 (about 1000-1500 voters
  each; per-task rows, binary);
* ``exam``, ``hsb82``, ``chem97``: the 10 schools with the most pupils of
  each (per-task rows, regression; 83-198, 61-67 and 83-188 pupils a school);
* ``adult``: the 5 race domains of UCI Adult (per-task rows, binary);
* ``small-tasks``: issue 25's ten small, nearly separable per-task-rows tasks
  of 1000 rows (:func:`negtransfer.data.synthetic.make_small_tasks`, generator
  seed = the benchmark's seed);
* ``small-tasks-heldout``: the same generator with seeds 1000 + seed, never
  used to build or tune anything (issue 25's held-out check).

Imported by the benchmark scripts, not by the package.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_CHEMICAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "etap-chemical"
NAMES = (
    "yeast", "chicago", "chemical", "tv16", "exam", "hsb82", "chem97", "adult", "small-tasks", "small-tasks-heldout",
)
#: The generator seed of ``small-tasks-heldout`` is this plus the benchmark's seed.
HELDOUT_SEED = 1000
# ``--smoke``: the smallest settings of a benchmark (a check that it runs end to end, not a measurement)
SMOKE_TASKS = 4
SMOKE_EPOCHS = 2


def _largest(ds, count: int, skip: int = 0):
    sizes = ds.summary()["labels_per_task"]
    names = sorted(sizes, key=lambda t: -sizes[t])[skip : skip + count]
    return ds.subset_tasks(names)


def mean_se(values, fmt: str = "{:+.3f}") -> str:
    """``mean ± s.e.`` over the finite values (one value alone as it is; ``n/a`` for none)."""
    import numpy as np

    from negtransfer.data.statistics import standard_error

    v = np.array([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if v.size == 0:
        return "n/a"
    if v.size == 1:
        return fmt.format(v[0])
    return f"{fmt.format(v.mean())} ± {fmt.format(standard_error(v)).lstrip('+')}"


def add_result_format_option(parser) -> None:
    """``--result-format``: read the run stores written before result format 4."""
    parser.add_argument("--result-format", type=int, default=None,
                        help="Read and write the stores under this older result format (stores trained before "
                             "format 4, commit 132a147, differ from format 4 only in the last bits of evaluation).")


def use_result_format(result_format: int | None) -> None:
    """Key stored runs under ``result_format`` (a benchmark re-reading stores of an older format), with a note."""
    if result_format is None:
        return
    import negtransfer.train.config as config_module

    print(f"note: stores read under result format {result_format}, not {config_module.RESULT_FORMAT}")
    config_module.RESULT_FORMAT = result_format


def add_smoke_option(parser) -> None:
    """``--smoke``: run with the smallest settings (a few tasks, epochs, seeds), to check the script runs."""
    parser.add_argument("--smoke", action="store_true",
                        help=f"Smallest settings ({SMOKE_TASKS} tasks, {SMOKE_EPOCHS} epochs, one seed): checks that "
                             "the script runs end to end; its figures mean nothing.")


def chemical_dir(data_dir: str | Path | None = None) -> Path | None:
    """The Chemical Task_Splits folder, or None (with a printed note) when it is absent.

    ``data_dir``, else the environment variable ``NEGTRANSFER_CHEMICAL_DIR``, else ``../shared/data/etap-chemical``
    beside the repository.
    """
    path = Path(data_dir or os.environ.get("NEGTRANSFER_CHEMICAL_DIR") or DEFAULT_CHEMICAL)
    if not (path / "55_X_train.npy").exists():
        print(f"note: no ETAP Chemical data in {path}; skipping it (give --data-dir)")
        return None
    return path


def load(name: str, seed: int, data_dir: str | Path | None = None, n_tasks: int | None = None):
    """The named benchmark dataset split with ``seed``, or None when unavailable.

    ``n_tasks`` keeps only the first that many of its tasks (``--smoke``).
    """
    ds = _load(name, seed, data_dir)
    if ds is None or n_tasks is None or n_tasks >= ds.n_tasks:
        return ds
    return ds.subset_tasks(list(ds.task_names[:n_tasks]))


def each_loaded(datasets, seeds, data_dir: str | Path | None = None, n_tasks: int | None = None):
    """``(name, seed, dataset)`` for every name of ``datasets`` and every seed, in that order, each loaded with
    :func:`load` as it is reached; a dataset that is unavailable (``load`` gives None) is left after its first seed."""
    for name in datasets:
        for seed in seeds:
            ds = load(name, seed, data_dir, n_tasks)
            if ds is None:
                break
            yield name, seed, ds


def _load(name: str, seed: int, data_dir: str | Path | None = None):
    from negtransfer.data.builtin import load_builtin

    if name == "yeast":
        full = load_builtin("yeast", seed=seed)
        return full.subset_tasks(list(full.task_names[:10]))
    if name == "chicago":
        full = load_builtin("chicago-ridership", seed=seed)
        return full.subset_tasks(list(full.task_names[:10]))
    if name == "chemical":
        from negtransfer.data.task_splits import load_task_splits

        path = chemical_dir(data_dir)
        return None if path is None else load_task_splits(path, seed=seed)
    if name == "tv16":
        return _largest(load_builtin("tv16", seed=seed), 10, skip=7)
    if name == "exam":  # per-task-rows regression: the 10 schools with the most pupils
        return _largest(load_builtin("exam", seed=seed), 10)
    if name in ("hsb82", "chem97"):  # per-task-rows regression: the 10 schools with the most pupils, as exam
        return _largest(load_builtin(name, seed=seed), 10)
    if name == "adult":  # one binary task per domain (5), rows of one domain each
        return load_builtin("adult", seed=seed)
    if name in ("small-tasks", "small-tasks-heldout"):
        from negtransfer.data.synthetic import make_small_tasks

        ds = make_small_tasks(seed if name == "small-tasks" else HELDOUT_SEED + seed)
        ds.name = name
        return ds
    raise ValueError(f"unknown benchmark dataset {name!r}; use one of {', '.join(NAMES)}")
