"""Fuzz the command line: malformed files and option values never end in a traceback.

A seeded generator (no extra dependency) mutates a small valid CSV and the
options of ``gains``, ``group`` and ``sources``; every case must end with exit
code 0 (and strict-JSON outputs) or exit code 2 with exactly one ``error:``
line. Runs in-process through typer's CliRunner, so the whole test takes a few
seconds. To reproduce a failing case, the assertion message shows its seed,
the command line and the file.
"""

from __future__ import annotations

import gzip
import json
import random
import sqlite3

import pytest
from typer.testing import CliRunner

from negtransfer.cli import app

N_CASES = 70
FAST = ["--epochs", "1", "--patience", "1", "--batch-size", "64", "-q"]


def _valid_rows(rng: random.Random, n: int = 40) -> list[list[str]]:
    rows = [["x1", "x2", "x3", "a", "b", "c"]]
    for _ in range(n):
        x = [rng.gauss(0, 1) for _ in range(3)]
        rows.append([f"{v:.3f}" for v in x] + [str(int(x[0] > 0)), str(int(x[1] > 0)), f"{x[2] * 2:.3f}"])
    return rows


def _text(rows, sep=",") -> str:
    return "\n".join(sep.join(r) for r in rows) + "\n"


def _csv_mutations(rng: random.Random):
    """(suffix, bytes) of a malformed (or, sometimes, valid) table."""
    rows = _valid_rows(rng)
    kind = "valid" if rng.random() < 0.3 else rng.choice([
        "valid", "truncate", "delete_chars", "semicolon", "tab", "extra_field", "missing_field", "text_feature",
        "nan_feature", "inf_feature", "huge_number", "dup_header", "empty_header_name", "bom", "quote", "nul",
        "latin1", "garbage", "empty", "header_only", "gzip_as_csv", "plain_as_gz", "truncated_gz",
        "single_class", "text_labels", "plus_name", "few_rows", "blank_lines", "only_commas",
    ])
    suffix = ".csv"
    if kind == "valid":
        data = _text(rows).encode()
    elif kind == "truncate":
        text = _text(rows)
        data = text[: rng.randrange(len(text))].encode()
    elif kind == "delete_chars":
        chars = list(_text(rows))
        for _ in range(rng.randrange(1, 30)):
            del chars[rng.randrange(len(chars))]
        data = "".join(chars).encode()
    elif kind == "semicolon":
        data = _text(rows, ";").encode()
    elif kind == "tab":
        data = _text(rows, "\t").encode()
    elif kind == "extra_field":
        rows[rng.randrange(1, len(rows))].append("7")
        data = _text(rows).encode()
    elif kind == "missing_field":
        rows[rng.randrange(1, len(rows))].pop()
        data = _text(rows).encode()
    elif kind == "text_feature":
        rows[rng.randrange(1, len(rows))][rng.randrange(3)] = "abc"
        data = _text(rows).encode()
    elif kind == "nan_feature":
        rows[rng.randrange(1, len(rows))][rng.randrange(3)] = rng.choice(["", "NaN", "NA"])
        data = _text(rows).encode()
    elif kind == "inf_feature":
        rows[rng.randrange(1, len(rows))][rng.randrange(3)] = rng.choice(["inf", "-inf"])
        data = _text(rows).encode()
    elif kind == "huge_number":
        rows[rng.randrange(1, len(rows))][rng.randrange(6)] = rng.choice(["1e400", "-1e400", "9" * 400])
        data = _text(rows).encode()
    elif kind == "dup_header":
        rows[0][1] = "x1"
        data = _text(rows).encode()
    elif kind == "empty_header_name":
        rows[0][rng.randrange(6)] = ""
        data = _text(rows).encode()
    elif kind == "bom":
        data = b"\xef\xbb\xbf" + _text(rows).encode()
    elif kind == "quote":
        rows[rng.randrange(1, len(rows))][rng.randrange(6)] = '"1.0'
        data = _text(rows).encode()
    elif kind == "nul":
        text = _text(rows)
        at = rng.randrange(len(text))
        data = (text[:at] + "\x00" + text[at:]).encode()
    elif kind == "latin1":
        rows[rng.randrange(len(rows))][rng.randrange(6)] = "caf\xe9"
        data = _text(rows).encode("latin-1")
    elif kind == "garbage":
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))
    elif kind == "empty":
        data = b""
    elif kind == "header_only":
        data = _text(rows[:1]).encode()
    elif kind == "gzip_as_csv":
        data = gzip.compress(_text(rows).encode())
    elif kind == "plain_as_gz":
        suffix, data = ".csv.gz", _text(rows).encode()
    elif kind == "truncated_gz":
        full = gzip.compress(_text(rows).encode())
        suffix, data = ".csv.gz", full[: rng.randrange(1, len(full))]
    elif kind == "single_class":
        for r in rows[1:]:
            r[3] = "1"
        data = _text(rows).encode()
    elif kind == "text_labels":
        for r in rows[1:]:
            r[3] = rng.choice(["yes", "no", "maybe"])
        data = _text(rows).encode()
    elif kind == "plus_name":
        rows[0][3] = "a+b"
        data = _text(rows).encode()
    elif kind == "few_rows":
        data = _text(rows[: rng.randrange(1, 5)]).encode()
    elif kind == "blank_lines":
        data = _text(rows).replace("\n", "\n\n").encode()
    else:  # only_commas
        data = b",,,\n,,,\n"
    return kind, suffix, data


BAD_VALUES = {
    "--epochs": ["0", "-1", "abc", "1.5", ""],
    "--batch-size": ["0", "-5", "x"],
    "--lr": ["0", "-1", "nan", "inf", "abc"],
    "--patience": ["0", "-2"],
    "--optimizer": ["bogus", "SGD", ""],
    "--chunk-size": ["0", "-3", "many"],
    "--workers": ["0", "-1", "two"],
    "--executor": ["bogus", "dask"],
    "--seed": ["-1", "abc", "1e3"],
    "--groups": ["random:0", "random:x", "random:-1", "random:", "nonexistent-file", "FOLDER", "", "all",
                 "GROUPFILE", "random:3"],
    "--sizes": ["", "x", "3-2", "0", "9", "-", "2-", "1"],
    "--tasks": ["", "zz", "a,a", "a,,b", ",", "a+b"],
    "--features": ["nope", "", "a", "x1,x1"],
    "--impute": ["bogus", "mean"],
    "--task-kinds": ["a=foo", "x", "a=binary", "zz=regression", "c=binary"],
    "--out": ["FILE", "FILE/sub"],
    "--store": ["FOLDER", "JUNK", "TRUNCATED_DB", "FILE/s.sqlite"],
    "--dataset": ["nope"],
    "--budget": ["0", "-1", "100"],
    "--train-groups": ["0", "1000"],
    "--evaluate": ["-1", "50"],
    "--target": ["zz", "a", ""],
    "--alpha": ["0", "9", "1"],
    "--nonsense-option": ["1"],
}
COMMAND_OPTIONS = {
    "gains": {"--groups", "--sizes"},
    "group": {"--budget", "--train-groups", "--evaluate"},
    "sources": {"--target", "--alpha"},
}
COMMON = ["--epochs", "--batch-size", "--lr", "--patience", "--optimizer", "--chunk-size", "--workers",
          "--executor", "--seed", "--tasks", "--features", "--impute", "--task-kinds", "--out", "--store",
          "--dataset", "--nonsense-option"]


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    (root / "FOLDER").mkdir()
    (root / "FILE").write_text("not a folder\n")
    (root / "JUNK").write_bytes(b"junk " * 100)
    db = root / "good.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE t (x)")
    con.executemany("INSERT INTO t VALUES (?)", [("x" * 500,)] * 200)
    con.commit()
    con.close()
    (root / "TRUNCATED_DB").write_bytes(db.read_bytes()[:6000])
    (root / "GROUPFILE").write_text("a+b\n# comment\nb, c\na+zz\n")
    return root


def _resolve(value: str, root) -> str:
    for token in ("FOLDER", "FILE", "JUNK", "TRUNCATED_DB", "GROUPFILE"):
        if value.startswith(token):
            return str(root / value)
    return value


def _case(seed: int, root):
    rng = random.Random(seed)
    command = rng.choice(["gains", "gains", "gains", "group", "sources"])
    kind, suffix, data = _csv_mutations(rng)
    path = root / f"case{seed}{suffix}"
    path.write_bytes(data)
    options = {"--data": str(path), "--out": str(root / f"out{seed}")}
    options["--tasks"] = rng.choice(["a,b,c", "a,b", "a,c"]) if command != "sources" else "a,b,c"
    options["--features"] = "x1,x2,x3"
    if command == "gains":
        options["--groups"] = "all"
    if command == "group":
        options.update({"--budget": "2", "--train-groups": "2"})
    if command == "sources":
        options.update({"--target": "a", "--alpha": "1", "--subsets": "2", "--holdout": "0",
                        "--exhaustive-pairs": "off"})
    candidates = sorted(COMMON + sorted(COMMAND_OPTIONS[command]))
    for option in rng.sample(candidates, rng.choice([0, 0, 1, 1, 1, 2])):
        options[option] = _resolve(rng.choice(BAD_VALUES[option]), root)
    if "--dataset" in options:  # a built-in dataset instead of the file
        for option in ("--data", "--features"):
            options.pop(option, None)
    args = [command, *FAST]  # the options after FAST: a bad --epochs etc. wins over it
    for option, value in options.items():
        args += [option, value]
    return kind, args


def _strict_json(path):
    def refuse(token):
        raise ValueError(f"non-standard JSON token {token} in {path}")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.mark.parametrize("block", range(5))
def test_cli_fuzz(places, block):
    runner = CliRunner()
    for seed in range(block * N_CASES // 5, (block + 1) * N_CASES // 5):
        kind, args = _case(seed, places)
        res = runner.invoke(app, args)
        where = f"seed {seed} ({kind}): negtransfer {' '.join(args)}\n--- output ---\n{res.output}"
        assert "Traceback" not in res.output, where
        assert res.exit_code in (0, 2), where
        assert res.exception is None or isinstance(res.exception, SystemExit), where
        lines = [ln for ln in res.stderr.splitlines() if ln.strip() and not ln.startswith(("note: ", "warning: "))]
        if res.exit_code == 2:
            assert len(lines) == 1 and lines[0].startswith("error: "), where
        else:
            assert lines == [], where
            out = places / f"out{seed}"
            for name in ("gains.json", "report.json"):
                if (out / name).exists():
                    _strict_json(out / name)
