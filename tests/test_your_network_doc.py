"""docs/your-network.md's complete example runs as shown: the factory file, the command, the Python call."""

import re
import shlex
import sys
from pathlib import Path

from typer.testing import CliRunner

from negtransfer.cli import app

PAGE = Path(__file__).resolve().parents[1] / "docs" / "your-network.md"


def _blocks() -> dict[str, str]:
    return dict(re.findall(r"<!-- your-network: (\S+) -->\n```\w+\n(.*?)```", PAGE.read_text(), flags=re.S))


def test_the_example_runs_as_shown(tmp_path, monkeypatch):
    blocks = _blocks()
    assert set(blocks) == {"mynet.py", "command", "python"}
    assert len(blocks["mynet.py"].splitlines()) + len(blocks["command"].splitlines()) <= 25  # about 20 lines
    (tmp_path / "mynet.py").write_text(blocks["mynet.py"])
    monkeypatch.chdir(tmp_path)
    words = shlex.split(blocks["command"].replace("\\\n", " "))
    assert words[0] == "negtransfer"
    res = CliRunner().invoke(app, words[1:])
    assert res.exit_code == 0, res.output
    assert "warning:" not in res.output and (tmp_path / "runs" / "mynet" / "report.json").exists()
    monkeypatch.syspath_prepend(str(tmp_path))
    shown: list = []
    monkeypatch.setattr("builtins.print", lambda *args, **kwargs: shown.append(args))
    try:
        exec(compile(blocks["python"], "your-network.md", "exec"), {})
    finally:
        sys.modules.pop("mynet", None)
    groups = shown[0][0]
    assert 1 <= len(groups) <= 2 and {t for g in groups for t in g} == {"is_0", "is_1", "even"}
