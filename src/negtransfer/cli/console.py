"""How the command line talks: one ``error:`` line and exit code 2 for a bad input, ``note:`` and ``warning:``
lines on stderr, flags shown without a value type, one progress bar per stage of a job.

docs/errors.md lists the messages. Everything here is cheap to import (typer only).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, NoReturn, Optional

import typer
from typer.core import TyperCommand, TyperGroup, TyperOption


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) as one space."""
    return " ".join(str(text).split())


def fail(message: str) -> NoReturn:
    """Print ``error: message`` as one line and exit with code 2."""
    typer.secho(f"error: {one_line(message)}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def note(message: str, notes: Optional[list] = None) -> None:
    """Print ``note: message`` on stderr (also with -q) and keep it for the report."""
    typer.echo(f"note: {one_line(message)}", err=True)
    if notes is not None:
        notes.append(one_line(message))


def _click_error(name: str) -> Any:
    """The command-line library's exception class ``name`` (``UsageError``, ``ClickException``), read from the
    ancestry of the public ``typer.BadParameter``: typer 0.27 ships its own copy of click (a private module), typer
    0.25 and earlier use the click package, and typer exports neither class."""
    return next(cls for cls in typer.BadParameter.__mro__ if cls.__name__ == name)


#: The context of the command that runs now (set by :meth:`Command.invoke`): its name for messages, and a place to
#: register clean-ups (``call_on_close``) without the library's private ``get_current_context``.
_RUNNING_CONTEXT: ContextVar[Any] = ContextVar("negtransfer_running_context", default=None)


def running_context() -> Any:
    """The context of the running ``negtransfer`` command, or None outside one (a job called from Python)."""
    return _RUNNING_CONTEXT.get()


def option_given(name: str) -> bool:
    """Whether the running command's parameter ``name`` came from the command line (or the environment), not from
    its default; True outside a command (a job called from Python gives every value on purpose)."""
    ctx = running_context()
    source = ctx.get_parameter_source(name) if ctx is not None else None
    return source is None or source.name != "DEFAULT"


def _flags_without_value_type(params: list) -> list:
    """Show flags as ``--exhaustive``, not ``--exhaustive <bool>``: they take no value."""
    for param in params:
        if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
            param.metavar = ""
    return params


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Python warnings as one ``warning:`` line, without the source file and line."""
    typer.echo(f"warning: {one_line(str(message))}", err=True)


class Command(TyperCommand):
    """A command whose help shows flags without a value type, and whose context :func:`running_context` returns
    while it runs."""

    def get_params(self, ctx):
        return _flags_without_value_type(super().get_params(ctx))

    def invoke(self, ctx):
        token = _RUNNING_CONTEXT.set(ctx)
        try:
            return super().invoke(ctx)
        finally:
            _RUNNING_CONTEXT.reset(token)


class Commands(TyperGroup):
    """The command group: flags without a value type, and usage errors as one ``error:`` line.

    Typer prints a bad option value (``--epochs abc``, an unknown option, a
    missing required option) as a boxed, multi-line panel; here it is one line
    ``error: ... (see `negtransfer CMD --help`)`` with exit code 2, like every
    other input error of negtransfer.
    """

    def get_params(self, ctx):
        return _flags_without_value_type(super().get_params(ctx))

    def main(self, args: Optional[Sequence[str]] = None, prog_name: Optional[str] = None,
             complete_var: Optional[str] = None, standalone_mode: bool = True, windows_expand_args: bool = True,
             **extra: Any) -> Any:
        usage_error, click_exception = _click_error("UsageError"), _click_error("ClickException")
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False,
                                windows_expand_args=windows_expand_args, **extra)
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _show_warning
                code = super().main(args, prog_name, complete_var, standalone_mode=False,
                                   windows_expand_args=windows_expand_args, **extra)
        except usage_error as exc:
            ctx = getattr(exc, "ctx", None)
            if type(exc).__name__ == "NoArgsIsHelpError":  # `negtransfer` alone: the help (once), exit code 2
                help_text = exc.format_message()  # the rich formatter printed it when the error was made
                if help_text:
                    typer.echo(help_text)
                sys.exit(2)
            where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
            message = one_line(exc.format_message()).replace("Value error, ", "")
            typer.secho(f"error: {message}{where}", fg=typer.colors.RED, err=True)
            sys.exit(2)
        except click_exception as exc:
            typer.secho(f"error: {one_line(exc.format_message())}", fg=typer.colors.RED, err=True)
            sys.exit(exc.exit_code)
        except typer.Abort:
            typer.echo("Aborted.", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def command_name() -> str:
    """``negtransfer CMD`` of the running command (for messages)."""
    ctx = running_context()
    return f"`negtransfer {ctx.info_name}`" if ctx is not None and ctx.info_name else "this command"


@contextmanager
def stage_progress(quiet: bool):
    """One progress bar per stage of a job: ``progress(stage, done, total, detail="")``; a stage's ``detail`` (lines,
    e.g. ``compare``'s fits in flight) is shown below the bars, each line cut to the terminal's width."""
    if quiet:
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class StageBars(Progress):
        def get_renderables(self):
            tasks = self.tasks
            yield self.make_tasks_table(tasks)
            for task in tasks:
                for line in str(task.fields.get("detail", "")).splitlines():
                    yield Text(f"  {line}", no_wrap=True, overflow="ellipsis")

    with StageBars(TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TimeRemainingColumn()) as bar:
        stages: dict = {}  # stage -> the bar's task id

        def progress(stage: str, done: int, total: int, detail: str = "") -> None:
            if stage not in stages:
                stages[stage] = bar.add_task(stage, total=total)
            bar.update(stages[stage], completed=done, total=total, detail=detail)

        yield progress
