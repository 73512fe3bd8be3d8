"""kill -9 of a process-pool run leaves no worker and no resource tracker behind."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")


def _parent_and_state(pid: int):
    """(parent PID, state letter) of a live process, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
    return int(fields[1]), fields[0]


def _descendants(root: int) -> set[int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            info = _parent_and_state(int(entry.name))
            if info is not None:
                parents[int(entry.name)] = info[0]
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    info = _parent_and_state(pid)
    return info is not None and info[1] != "Z"  # a zombie has ended; only its exit status is left


def test_kill_9_of_a_process_pool_run_leaves_no_process(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 4))
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(4)])
    for t in range(4):
        frame[f"t{t}"] = (X @ rng.normal(size=4) > 0).astype(int)
    frame.to_csv(tmp_path / "data.csv", index=False)
    cmd = [sys.executable, "-m", "negtransfer", "gains", "--data", str(tmp_path / "data.csv"),
           "--tasks", "t0,t1,t2,t3", "--groups", "all", "--chunk-size", "1", "--epochs", "100000",
           "--patience", "100000", "--executor", "process", "--workers", "2", "--out", str(tmp_path / "out"), "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120  # generous: a loaded machine starts processes slowly
        children: set[int] = set()
        while time.time() < deadline and proc.poll() is None:
            children = _descendants(proc.pid)
            if len(children) >= 3:  # two workers and the resource tracker
                break
            time.sleep(0.05)
        if proc.poll() is not None:
            pytest.fail(f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}")
        assert len(children) >= 3, f"expected two workers and a resource tracker, found {children}"
        time.sleep(1.0)  # let the workers start training
        children |= _descendants(proc.pid)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    deadline = time.time() + 60  # polled: an idle machine passes in well under a second
    while time.time() < deadline and any(_alive(pid) for pid in children):
        time.sleep(0.1)
    left = sorted(pid for pid in children if _alive(pid))
    assert not left, f"processes left behind after kill -9 of their parent: {left}"
