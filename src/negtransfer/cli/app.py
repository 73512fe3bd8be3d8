"""The ``negtransfer`` command group: every command, registered explicitly in :func:`build_app`."""

from __future__ import annotations

import typer

from negtransfer import __version__
from negtransfer.cli.compare import compare
from negtransfer.cli.compare_grouping import compare_grouping
from negtransfer.cli.console import Command, Commands
from negtransfer.cli.datasets import datasets
from negtransfer.cli.gains import gains
from negtransfer.cli.group import group
from negtransfer.cli.recover_store import recover_store_command
from negtransfer.cli.sources import sources
from negtransfer.cli.store_info import store_info_command

#: Command name -> function, in the order ``negtransfer --help`` lists them.
COMMANDS = {
    "datasets": datasets,
    "gains": gains,
    "group": group,
    "compare-grouping": compare_grouping,
    "sources": sources,
    "compare": compare,
    "recover-store": recover_store_command,
    "store-info": store_info_command,
}


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"negtransfer {__version__}")
        raise typer.Exit()


def _root(
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_show_version,
                                 help="Print the version and exit."),
) -> None:
    """Find which tasks help or hurt each other, and group them.

    Every command answers a bad input with one `error:` line and exit code 2;
    docs/errors.md lists the messages and what to do.
    """


def build_app() -> typer.Typer:
    """The command group with every command of :data:`COMMANDS`."""
    app = typer.Typer(
        cls=Commands,
        add_completion=False,
        no_args_is_help=True,
        rich_markup_mode="markdown",  # reflows help paragraphs instead of breaking lines mid-sentence
        context_settings={"show_default": True},
        pretty_exceptions_show_locals=False,
        help="Find which tasks help or hurt each other, and group them.",
    )
    app.callback()(_root)
    for name, function in COMMANDS.items():
        app.command(name, cls=Command)(function)
    return app
