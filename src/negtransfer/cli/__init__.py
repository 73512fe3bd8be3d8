"""The ``negtransfer`` command line.

Heavy packages (torch, pandas, scikit-learn) are imported inside the commands,
so ``negtransfer --help`` answers at once.

Conventions (docs/errors.md): a bad input ends in one ``error:`` line on
stderr and exit code 2 (:func:`~negtransfer.cli.console.fail`; typer's usage
errors are reformatted the same way by :class:`~negtransfer.cli.console.Commands`);
paths (``--out``, ``--store``) and option values are checked before anything is
trained; where a command uses less than was asked for, or infers something, it
prints a ``note:`` line and records it in its JSON output.

Layout: :mod:`~negtransfer.cli.console` (error, note and warning lines,
progress bars), :mod:`~negtransfer.cli.options` (the option groups, each option
defined once, with choices from the domain tuples), :mod:`~negtransfer.cli.job`
(the one path every training command takes: check ``--out`` and ``--store``,
executor, output folder, run store, guarded writes), one module per command,
and :mod:`~negtransfer.cli.app` (the command group).
"""

from __future__ import annotations

import sys

from negtransfer.cli.app import build_app
from negtransfer.cli.compare import compare
from negtransfer.cli.compare_grouping import compare_grouping
from negtransfer.cli.datasets import datasets
from negtransfer.cli.gains import gains
from negtransfer.cli.group import group
from negtransfer.cli.job import Job, writes_guarded
from negtransfer.cli.options import DataOptions, RunOptions, TrainingOptions
from negtransfer.cli.recover_store import recover_store_command
from negtransfer.cli.sources import sources
from negtransfer.cli.store_info import store_info_command

__all__ = ["DataOptions", "Job", "RunOptions", "TrainingOptions", "app", "compare", "compare_grouping", "datasets",
           "gains", "group", "main", "recover_store_command", "sources", "store_info_command",
           "writes_guarded"]

app = build_app()


def main() -> None:  # pragma: no cover - entry point
    """The ``negtransfer`` entry point (``python -m negtransfer`` too)."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
