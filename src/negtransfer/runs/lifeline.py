"""Worker processes that end with their parent, even when the parent is killed with SIGKILL.

A pool's workers normally notice a dead parent only when they next talk to it,
and a worker in the middle of a long training chunk would go on for minutes
with parent PID 1 (and keep multiprocessing's resource tracker alive with it).
:func:`die_with_parent` is a pool *initializer*: on Linux it asks the kernel to
send the worker SIGKILL when its parent dies (``prctl(PR_SET_PDEATHSIG)``);
elsewhere a daemon thread polls the parent PID once a second. It then checks
that the parent is still the one that started the worker, which closes the
window between the worker's start and the ``prctl`` call.

This module imports nothing heavy, so a worker runs it before it imports
PyTorch: the window in which a killed parent can leave a worker behind is the
interpreter's start-up only, and the PID check covers that too.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

__all__ = ["die_with_parent"]

_PR_SET_PDEATHSIG = 1


def _set_parent_death_signal() -> bool:
    """Ask Linux to SIGKILL this process when its parent dies; False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent_pid: int, every: float) -> None:
    while True:
        if os.getppid() != parent_pid:
            os._exit(1)
        time.sleep(every)


def die_with_parent(parent_pid: int, poll_seconds: float = 1.0) -> None:
    """Make the calling (worker) process end when process ``parent_pid`` ends.

    Parameters
    ----------
    parent_pid : int
        The PID of the process that started this worker (``os.getpid()`` there).
    poll_seconds : float
        Polling interval of the fallback watchdog thread (non-Linux systems).

    Notes
    -----
    ``PR_SET_PDEATHSIG`` fires when the *thread* that created the worker
    exits; negtransfer's executors start their pools from the calling thread
    and wait for them there, so that thread lives as long as the pool.
    """
    if not _set_parent_death_signal():
        threading.Thread(target=_watch_parent, args=(parent_pid, poll_seconds), daemon=True).start()
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)
