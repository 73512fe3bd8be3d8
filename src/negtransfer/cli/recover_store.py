"""``negtransfer recover-store``: copy the readable runs of a damaged run store into a new one."""

from __future__ import annotations

from pathlib import Path

import typer

from negtransfer.cli.console import fail


def recover_store_command(
    damaged: Path = typer.Argument(..., help="The damaged run store (only read)."),
    recovered: Path = typer.Argument(..., help="A new file for the recovered store (must not exist)."),
) -> None:
    """Copy the readable runs of a damaged run store into a new store.

    Use the new file with --store; runs that could not be read are trained again.
    """
    from negtransfer.runs.store import StoreError, recover_store

    try:
        counts = recover_store(damaged, recovered)
    except StoreError as exc:
        fail(str(exc))
    typer.echo(f"recovered {counts['runs']} runs and {counts['artifacts']} cached artifacts into {recovered} "
               f"({counts['skipped']} unreadable rows skipped); use it with --store {recovered}")
