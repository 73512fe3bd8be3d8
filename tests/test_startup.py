"""The command line's common path stays light: its help imports none of the heavy packages."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("numpy", "scipy", "torch", "pandas", "sklearn", "matplotlib")


@pytest.mark.parametrize("args", [["--help"], ["group", "--help"], ["gains", "--help"]])
def test_help_imports_no_heavy_package(args):
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "negtransfer", *args], capture_output=True,
                         text=True, check=True)
    imported = {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}
    assert "Usage" in out.stdout
    assert not [m for m in HEAVY if m in imported]
