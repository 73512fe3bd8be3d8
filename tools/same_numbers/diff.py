#!/usr/bin/env python3
"""Compare two trees of golden outputs written by run.sh: did a code change alter any number?

Usage: python diff.py BEFORE AFTER [--ignore KEY ...] [--show N] [--no-console]

For every JSON file (report.json, gains.json, ...) present in both trees the values are compared
recursively: numbers must be exactly equal (the largest relative difference is reported for those
that are not), strings equal, lists of the same length; keys added or removed are listed. CSV files
are compared cell by cell (numbers as numbers), with added or removed columns listed. report.md and
console.txt are compared as text (unified diff). Ignored everywhere: timing keys and columns (any
key or column header containing 'second', 'time', 'timing' or 'wall', also in Markdown tables), run-store
counts that legitimately differ ('stored_total'), timings inside text ("4.7 s", "0.3 min"), the lines that
give the shares of a job's time ("**Time**: ..." in report.md, "time: ..." on the console) and the two
trees' own paths.

Exit status: 0 when every value is identical (added keys are allowed: they are listed, not
counted as differences), 1 otherwise, 2 on bad arguments.
"""
from __future__ import annotations

import argparse
import csv
import difflib
import json
import math
import re
import sys
from pathlib import Path

DEFAULT_IGNORED = ("stored_total",)
TIMING_KEY = re.compile(r"second|time|timing|wall", re.IGNORECASE)
# a whole line of time shares: report.md's "**Time**: training 62% of the job's ..." and the console's "time: ..."
TIMING_LINE = re.compile(r"^(\*\*Time\*\*|time): ")
# "4.7 s", "0.32 s per run", "0.3 min", "12 ms", "1.5 h" inside free text
TIMING_TEXT = re.compile(r"\b\d+(?:\.\d+)?(?:e[-+]?\d+)?\s?(?:s|ms|min|h)\b")
SKIPPED_NAMES = {"times.txt", "runs.sqlite"}


class Findings:
    """What differs between two trees, gathered file by file."""

    def __init__(self, show: int):
        self.show = show
        self.value_diffs: dict[str, list[str]] = {}
        self.added: dict[str, list[str]] = {}
        self.removed: dict[str, list[str]] = {}
        self.max_rel: dict[str, float] = {}
        self.numbers_compared = 0
        self.files_compared = 0
        self.text_diffs: dict[str, str] = {}
        self.only_in: list[str] = []

    def value(self, file: str, where: str, before, after) -> None:
        self.value_diffs.setdefault(file, []).append(f"{where}: {before!r} -> {after!r}")

    def number(self, file: str, where: str, a: float, b: float) -> None:
        self.numbers_compared += 1
        if a == b or (math.isnan(a) and math.isnan(b)):
            return
        if math.isinf(a) or math.isinf(b) or math.isnan(a) or math.isnan(b):
            rel = math.inf
        else:
            rel = abs(a - b) / max(abs(a), abs(b))
        self.max_rel[file] = max(self.max_rel.get(file, 0.0), rel)
        self.value(file, where, a, b)

    @property
    def identical(self) -> bool:
        return not (self.value_diffs or self.removed or self.text_diffs or self.only_in)


def _is_ignored(key: str, ignored: set[str]) -> bool:
    return key in ignored or bool(TIMING_KEY.search(key))


def _as_number(value):
    """A float for JSON numbers (not booleans) and numeric CSV cells; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _mask(text: str, roots: tuple[str, ...]) -> str:
    for root in roots:
        text = text.replace(root, "<TREE>")
    return TIMING_TEXT.sub("<T>", text)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _mask_tables(lines: list[str]) -> list[str]:
    """Markdown tables: the cells of timing columns ('seconds', 'time' in the header), and the values of
    rows whose first cell is a timing key (key/value tables such as 'seconds_base_model | 2.4'), as <T>."""
    out, timing_columns = [], None
    for i, line in enumerate(lines):
        if not line.lstrip().startswith("|"):
            timing_columns = None
            out.append(line)
            continue
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if timing_columns is None and re.match(r"^\s*\|\s*:?-", following):
            header = _cells(line)
            timing_columns = {k for k, cell in enumerate(header) if TIMING_KEY.search(cell)}
            out.append(line)
            continue
        cells = _cells(line)
        if timing_columns and not re.match(r"^\s*\|\s*:?-", line):
            cells = ["<T>" if k in timing_columns else c for k, c in enumerate(cells)]
        if cells and TIMING_KEY.search(cells[0]) and not re.match(r"^\s*\|\s*:?-", line):
            cells = cells[:1] + ["<T>"] * (len(cells) - 1)
        out.append("| " + " | ".join(cells) + " |")
    return out


def compare_json(file: str, a, b, where: str, found: Findings, ignored: set[str], roots) -> None:
    """Recursively compare two parsed JSON values, recording every difference under `file`."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if _is_ignored(str(key), ignored):
                continue
            path = f"{where}.{key}" if where else str(key)
            if key not in b:
                found.removed.setdefault(file, []).append(path)
            elif key not in a:
                found.added.setdefault(file, []).append(path)
            else:
                compare_json(file, a[key], b[key], path, found, ignored, roots)
        return
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            found.value(file, f"{where} (length)", len(a), len(b))
        # the common prefix is compared too (a length difference is reported above)
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            compare_json(file, x, y, f"{where}[{i}]", found, ignored, roots)
        return
    na, nb = _as_number(a), _as_number(b)
    if na is not None and nb is not None and not isinstance(a, str) and not isinstance(b, str):
        found.number(file, where, na, nb)
    elif isinstance(a, str) and isinstance(b, str):
        if _mask(a, roots) != _mask(b, roots):
            found.value(file, where, a, b)
    elif a != b:
        found.value(file, where, a, b)


def compare_csv(file: str, pa: Path, pb: Path, found: Findings, ignored: set[str], roots) -> None:
    """Compare two CSV files cell by cell (numbers as numbers), rows in order."""
    with pa.open(newline="") as fa, pb.open(newline="") as fb:
        ra, rb = list(csv.DictReader(fa)), list(csv.DictReader(fb))
    cols_a = list(ra[0]) if ra else []
    cols_b = list(rb[0]) if rb else []
    found.removed.setdefault(file, []).extend(c for c in cols_a if c not in cols_b and not _is_ignored(c, ignored))
    found.added.setdefault(file, []).extend(c for c in cols_b if c not in cols_a and not _is_ignored(c, ignored))
    for store in (found.removed, found.added):
        if not store[file]:
            del store[file]
    if len(ra) != len(rb):
        found.value(file, "rows", len(ra), len(rb))
    common = [c for c in cols_a if c in cols_b and not _is_ignored(c, ignored)]
    for i, (row_a, row_b) in enumerate(zip(ra, rb, strict=False)):
        for col in common:
            x, y = row_a[col], row_b[col]
            nx, ny = _as_number(x), _as_number(y)
            if nx is not None and ny is not None:
                found.number(file, f"row {i} {col}", nx, ny)
            elif _mask(x, roots) != _mask(y, roots):
                found.value(file, f"row {i} {col}", x, y)


def _without_timing_lines(lines: list[str]) -> list[str]:
    """The lines less those of time shares (TIMING_LINE), each with the blank line that sets it apart."""
    out: list[str] = []
    for line in lines:
        if TIMING_LINE.match(line):
            if out and not out[-1].strip():
                out.pop()
            continue
        out.append(line)
    return out


def compare_text(file: str, pa: Path, pb: Path, found: Findings, roots) -> None:
    """Unified diff of two text files after masking timings and the trees' paths."""
    la = _mask_tables(_without_timing_lines(_mask(pa.read_text(errors="replace"), roots).splitlines()))
    lb = _mask_tables(_without_timing_lines(_mask(pb.read_text(errors="replace"), roots).splitlines()))
    if la != lb:
        found.text_diffs[file] = "\n".join(difflib.unified_diff(la, lb, "before/" + file, "after/" + file,
                                                                lineterm="", n=1))


def _files(root: Path, with_console: bool) -> set[str]:
    suffixes = {".json", ".csv", ".md"} | ({".txt"} if with_console else set())
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_file() and p.suffix in suffixes and p.name not in SKIPPED_NAMES}


def compare_trees(before: Path, after: Path, ignored: set[str], show: int, with_console: bool) -> Findings:
    """Compare every JSON, CSV, Markdown (and console) file of two output trees."""
    found = Findings(show)
    roots = (str(before.resolve()), str(after.resolve()))
    fa, fb = _files(before, with_console), _files(after, with_console)
    found.only_in = [f"only in before: {f}" for f in sorted(fa - fb)] + [f"only in after: {f}" for f in sorted(fb - fa)]
    for file in sorted(fa & fb):
        pa, pb = before / file, after / file
        found.files_compared += 1
        if pa.suffix == ".json":
            compare_json(file, json.loads(pa.read_text()), json.loads(pb.read_text()), "", found, ignored, roots)
        elif pa.suffix == ".csv":
            compare_csv(file, pa, pb, found, ignored, roots)
        else:
            compare_text(file, pa, pb, found, roots)
    return found


def print_findings(found: Findings) -> None:
    """The summary: identical, or each file's differences (the first `show` of each kind)."""
    n = found.show
    for line in found.only_in:
        print(line)
    for file, keys in sorted(found.removed.items()):
        print(f"{file}: {len(keys)} key(s)/column(s) REMOVED: " + ", ".join(keys[:n]) + (" ..." if len(keys) > n else ""))
    for file, keys in sorted(found.added.items()):
        print(f"{file}: {len(keys)} key(s)/column(s) added: " + ", ".join(keys[:n]) + (" ..." if len(keys) > n else ""))
    for file, diffs in sorted(found.value_diffs.items()):
        rel = found.max_rel.get(file)
        head = f"{file}: {len(diffs)} value(s) differ" + (f", largest relative difference {rel:.3g}" if rel else "")
        print(head)
        for d in diffs[:n]:
            print("    " + d)
        if len(diffs) > n:
            print(f"    ... {len(diffs) - n} more")
    for file, text in sorted(found.text_diffs.items()):
        lines = text.splitlines()
        print(f"{file}: text differs")
        print("\n".join("    " + line for line in lines[: 4 * n]) + ("\n    ..." if len(lines) > 4 * n else ""))
    worst = max(found.max_rel.values(), default=0.0)
    verdict = "identical" if found.identical else "DIFFERENT"
    print(f"{verdict}: {found.files_compared} files, {found.numbers_compared} numbers compared; "
          f"{sum(map(len, found.value_diffs.values()))} values differ (largest relative difference {worst:.3g}), "
          f"{sum(map(len, found.added.values()))} keys added, {sum(map(len, found.removed.values()))} removed, "
          f"{len(found.text_diffs)} text files differ, {len(found.only_in)} files in one tree only")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--ignore", nargs="*", default=[], help="further JSON keys / CSV columns to ignore")
    parser.add_argument("--show", type=int, default=10, help="differences shown per file (default 10)")
    parser.add_argument("--no-console", action="store_true", help="skip the console.txt files")
    args = parser.parse_args(argv)
    for tree in (args.before, args.after):
        if not tree.is_dir():
            parser.error(f"{tree} is not a folder: give two output folders of run.sh")
    found = compare_trees(args.before, args.after, set(DEFAULT_IGNORED) | set(args.ignore), args.show,
                          not args.no_console)
    print_findings(found)
    return 0 if found.identical else 1


if __name__ == "__main__":
    sys.exit(main())
