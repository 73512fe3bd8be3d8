"""The one path every command that trains takes: check ``--out`` and ``--store``, load the data, start the
executor, make the output folder, open the run store, train with progress bars, write the outputs, each write
guarded so that a full disk or a lost permission is one error line and the finished runs stay for a resume.
"""

from __future__ import annotations

import shlex
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

from negtransfer.cli.console import fail, note, stage_progress
from negtransfer.cli.options import RunOptions


def check_out(out: Path) -> None:
    """Fail unless ``out`` is, or can be created as, a writable folder; creates nothing."""
    if out.exists() and not out.is_dir():
        fail(f"--out {str(out)!r} is a file; give a folder (it is created if missing), e.g. --out {out}-results")
    for parent in (out, *out.parents):
        if parent.exists():
            if not parent.is_dir():
                fail(f"--out {str(out)!r} cannot be created: {str(parent)!r} is a file, not a folder")
            import os

            if not os.access(parent, os.W_OK | os.X_OK):
                fail(f"--out {str(out)!r}: no write permission in {str(parent)!r}; choose another folder")
            return


def make_out(out: Path) -> None:
    """Create the output folder (checked first), or one error line."""
    check_out(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"cannot create --out folder {str(out)!r}: {exc.strerror or exc}; choose another folder")


def store_path(store: Optional[Path], out: Path) -> Path:
    """The run store's path, checked (folder, permissions) before anything is trained."""
    from negtransfer.runs.store import StoreError, check_store_path

    path = store if store is not None else out / "runs.sqlite"
    try:
        return check_store_path(path)
    except StoreError as exc:
        fail(str(exc))


def open_store(path: Path):
    """Open (or create) the run store, refusing a damaged one with the way out."""
    from negtransfer.runs.store import RunStore, StoreError

    try:
        return RunStore(path)
    except StoreError as exc:
        fail(str(exc))


@contextmanager
def writes_guarded(store: Optional[Path], out: Path):
    """A full disk or a file made read-only mid-run ends in one error line; stored runs stay for a resume."""
    import sqlite3

    try:
        yield
    except sqlite3.OperationalError as exc:
        fail(f"cannot write run store {str(store)!r} ({exc}); the runs finished so far are kept in it: "
             f"free disk space or fix its permissions, then run the same command again to resume")
    except OSError as exc:
        where = exc.filename or out
        kept = "finished runs are kept in the run store" if store is not None else "the results are lost"
        fail(f"cannot write {str(where)!r} ({exc.strerror or exc}); {kept}: free disk space or fix the "
             f"permissions, then run the same command again")


def make_executor(executor: str, workers: Optional[int], notes: list, *, ray_address: Optional[str] = None,
                  quiet: bool = False, device: str = "cpu", cpus_per_task: int = 1):
    """The command's executor, stopped (a local Ray instance) when the command ends; bad options fail here.

    With ``--executor ray`` Ray starts (or connects to ``--ray-address``) now, so
    a missing Ray, an unreachable cluster or a cluster without the GPUs that
    ``--device cuda`` needs is one error line before anything is trained. Each
    Ray task declares ``cpus_per_task`` CPUs and, on a GPU, one GPU.
    """
    from negtransfer.runs.executors import make_executor as executor_by_name

    if ray_address is not None and executor != "ray":
        fail(f"--ray-address applies to --executor ray only; add --executor ray or leave out --ray-address "
             f"(got --executor {executor})")
    if workers is not None and ray_address is not None:
        note(f"--workers {workers} is ignored with --ray-address: Ray tasks use the cluster's CPUs", notes)
        workers = None
    try:
        if executor != "ray":
            return executor_by_name(executor, workers)
        runner: Any = executor_by_name("ray", workers, address=ray_address, quiet=quiet, cpus_per_task=cpus_per_task,
                                  gpus_per_task=0 if device == "cpu" else 1)
        from negtransfer.cli.console import running_context

        ctx = running_context()
        if ctx is not None:
            ctx.call_on_close(runner.close)
        runner.start()
        return runner
    except (ValueError, ImportError) as exc:
        fail(str(exc))


class Job:
    """The steps every command that trains through the run store takes, in order.

    Creating it checks ``--out`` and ``--store`` (before any data is read or
    model trained); :meth:`start` makes the executor, the output folder and the
    run store; :meth:`training` shows the progress bars and turns a failing
    write into one error line; :meth:`writing` guards the writing of outputs.

    Parameters
    ----------
    run : RunOptions
        The runs group of the command.
    notes : list of str
        The command's ``note:`` lines (the executor's are added).
    """

    def __init__(self, run: RunOptions, notes: list):
        self.run, self.notes = run, notes
        check_out(run.out)
        self.store_path = store_path(run.store, run.out)
        self.executor: Any = None  # set by start()
        self.store: Any = None

    def start(self) -> "Job":
        """Start the executor, create ``--out`` and open the run store."""
        run = self.run
        self.executor = make_executor(run.executor, run.workers, self.notes, ray_address=run.ray_address,
                                      quiet=run.quiet, device=run.device, cpus_per_task=run.threads)
        make_out(self.run.out)
        self.store = open_store(self.store_path)
        return self

    @contextmanager
    def training(self):
        """Progress bars (none with -q), a failing write as one error line, a dead worker of ``--executor
        process`` as one error line (its message is written for Python scripts), and Ctrl-C as one line saying
        where the finished runs are and how to resume (exit code 130 as before); yields ``progress`` or None."""
        from negtransfer.runs.executors import WorkerPoolBroken

        try:
            with writes_guarded(self.store_path, self.run.out), stage_progress(self.run.quiet) as progress:
                yield progress
        except KeyboardInterrupt:
            interrupted(self.store_path)
            raise
        except WorkerPoolBroken:
            fail(f"a worker process of --executor process ended abruptly, most often killed for memory: use fewer "
                 f"--workers or --executor local; the runs that finished are kept in the run store "
                 f"{str(self.store_path)!r} and the same command resumes")

    @contextmanager
    def writing(self):
        """A failing write of an output file as one error line."""
        with writes_guarded(self.store_path, self.run.out):
            yield


def interrupted(store: Path) -> None:
    """The line Ctrl-C ends a training command with: it once stopped without a word (docs/errors.md, exit code
    130), leaving a user to guess whether the work so far was lost."""
    import typer

    typer.echo(f"interrupted: the runs that finished are kept in the run store {str(store)!r}; run the same "
               f"command again to resume (negtransfer store-info {shlex.quote(str(store))} shows what it holds)", err=True)
