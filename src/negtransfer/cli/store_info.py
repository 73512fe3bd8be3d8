"""``negtransfer store-info``: what a run store holds, and how far the fits of a running job have come."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from negtransfer.cli.console import fail

if TYPE_CHECKING:
    from negtransfer.runs.store_info import FitProgress, StoreInfo


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _ago(seconds: float) -> str:
    """``12 s ago``, ``3 min ago``, ``2 h 5 min ago``, ``3 days ago``."""
    return f"{duration(seconds)} ago"


def duration(seconds: float) -> str:
    """``40 s``, ``12 min``, ``1 h 40 min``, ``2 days 3 h`` (to the nearest second, minute or hour)."""
    seconds = max(round(seconds), 0)
    if seconds < 60:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(round(seconds / 3600), 24)
    return f"{days} days {hours} h" if hours else f"{days} days"


def time_left(fit: FitProgress) -> str:
    """``about 1 h 40 min left`` at the fit's rate, as of its last save; ``rate not known`` where the state holds no
    wall time (saved before negtransfer recorded it)."""
    left = fit.seconds_left
    return "rate not known" if left is None else f"about {duration(left)} left"


def _rate(fit: FitProgress) -> str:
    """``3.1 s an epoch, about 1 h 40 min left`` for a fit still training (empty for one that ended or cannot be
    read); ``rate not known`` for a state saved without its wall time."""
    if fit.ended or not fit.readable:
        return ""
    rate = fit.seconds_per_round
    if rate is None:
        return "rate not known"
    per = "an epoch" if fit.unit == "epoch" else "a round"
    return f"{rate:.3g} s {per}, {time_left(fit)}"


def _progress(fit: FitProgress) -> str:
    """``epoch 549 of 2000 (27%)``; a fit counted in iterations says its evaluation rounds and iterations."""
    if not fit.readable or fit.rounds is None or fit.max_rounds is None:
        return "unreadable (a damaged file, or saved by another version of negtransfer)"
    where = f"{'epoch' if fit.unit == 'epoch' else 'round'} {fit.rounds:,} of {fit.max_rounds:,}"
    steps = "" if fit.unit == "epoch" else _count(fit.steps or 0, str(fit.unit))
    if fit.stopped:
        where = f"stopped early at {where}"
    elif fit.ended:
        where = f"done: {where}"
    else:
        steps = ", ".join(filter(None, (f"{int(100 * (fit.fraction or 0.0))}%", steps)))
    return f"{where} ({steps})" if steps else where


def _unit(fit: FitProgress) -> str:
    """``tp-amtl run 3 (39b1369d…)`` where the state names its unit, else the folder's digest alone."""
    return f"{fit.label} ({fit.digest[:8]}…)" if fit.label else f"{fit.digest[:8]}…"


def summary_lines(info: StoreInfo) -> list[str]:
    """The command's text: the stored runs on one line, then one line per fit in flight."""
    runs = info.runs
    kinds = ", ".join(f"{kind} {n:,}" for kind, n in runs.artifact_kinds.items())
    lines = [f"{info.path.name}: {_count(runs.model_runs, 'model run')}, {_count(runs.artifacts, 'artifact')}"
             + (f" ({kinds})" if kinds else "")]
    if not info.fits:
        lines.append(f"no fits in flight ({info.checkpoints.name}/ holds none)")
        return lines
    lines.append(f"fits in flight ({_count(info.units, 'unit')}, in {info.checkpoints.name}/):")
    lines += [f"  unit {_unit(fit)}, fit {fit.fit}: "
              + ", ".join(filter(None, (_progress(fit), _rate(fit),
                                        f"saved {_ago(info.read_at - fit.saved)}")))
              for fit in info.fits]
    return lines


def store_info_command(
    path: Path = typer.Argument(..., metavar="STORE", help="The run store file of a job (OUT/runs.sqlite, or its --store); only read."),
    as_json: bool = typer.Option(False, "--json", help="Print the same as JSON."),
) -> None:
    """Show what a run store holds and how far its fits in flight are.

    Counts the finished model runs and artifacts (by kind), and for each fit
    that saves its state while it trains (a `compare` unit, in
    STORE.checkpoints/) the rounds done of its budget, when it last saved
    (every minute of training), its seconds per round and the time left to its
    budget at that rate as of the save (early stopping may end it sooner).
    Opens the store read-only: safe while a job writes it.
    """
    from negtransfer.runs.store import StoreError
    from negtransfer.runs.store_info import store_info

    try:
        info = store_info(path)
    except StoreError as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps(info.to_dict(), indent=2))
        return
    for line in summary_lines(info):
        typer.echo(line)
