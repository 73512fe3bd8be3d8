"""Every ```python block of README.md and docs/**/*.md runs, or its page says why it does not.

A block runs with ``exec`` in a fresh namespace (``__name__ == "__main__"``) inside a temporary working
directory, one top-level statement at a time, with the page's own line numbers (a traceback names the page and
its line). A bare expression is evaluated, as a REPL would show it. Where a page states an output beside a block
(a shape in a comment, a printed table, a property the prose promises), :data:`CHECKS` checks it.

What a block is, says an HTML comment on the line just above its fence (a reader of the rendered page does
not see it). The scheme:

* no comment: the block runs on its own;
* ``<!-- snippet: continues -->``: it runs in the namespace the page's previous python block left (it uses
  that block's names); a block and its continuations are one test;
* ``<!-- snippet: needs NAME, NAME -->``: it takes things a reader has of their own (files or folders in the
  working directory, a name with a dot or a trailing slash; or Python names): the test makes a small stand-in
  for each first, as :data:`STAND_INS` says;
* ``<!-- snippet: slow -->``: it takes more than a few seconds (training, or loading data other tests already
  load); it runs with ``-m slow`` only; ``<!-- snippet: slow, needs NAME -->`` both;
* ``<!-- snippet: not run (REASON) -->``: it is not run, for the reason given; it must still compile, and its
  ``import`` statements run (a renamed module or function still fails here);
* ``<!-- docs/examples/NAME.py -->`` and ``<!-- your-network: NAME -->``: tests/test_api.py and
  tests/test_your_network_doc.py run the block (they check that the block is what they run).

A block whose run needs a package that is not installed (an extra: Lightning, RDKit, a data package) is
skipped with the import error. No block reads the ETAP Chemical data (``../shared/data/etap-chemical``).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE_OPEN = re.compile(r"^```python\s*$")
FENCE_CLOSE = re.compile(r"^```\s*$")
COMMENT = re.compile(r"^<!--\s*(.*?)\s*-->\s*$")
DIRECTIVE = re.compile(r"^snippet:\s*(continues|slow|(?P<slow>slow,\s*)?needs\s+(?P<needs>.+)|not run \((?P<reason>.+)\))$")
#: The markers of blocks that another test runs: the comment's pattern and that test.
RUN_ELSEWHERE = {
    re.compile(r"^docs/examples/(?P<file>\w+\.py)$"): "tests/test_api.py",
    re.compile(r"^your-network: \S+$"): "tests/test_your_network_doc.py",
}
#: Packages of extras; a block that cannot import one is skipped (so is one whose built-in data's package is
#: missing: negtransfer's MissingPackageError).
OPTIONAL_PACKAGES = ("lightning", "rdkit", "qm9pack")


@dataclass(frozen=True)
class Block:
    """One ```python block: its page (relative to the repository), the line of its opening fence, its number
    among the page's python blocks (from 1), its code and what the comment above it says (``""``: none)."""

    page: str
    line: int
    index: int
    code: str
    marker: str

    @property
    def name(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def kind(self) -> str:
        """``run``, ``continues``, ``needs``, ``slow``, ``not run`` or ``elsewhere``; ``bad`` for anything else."""
        if not self.marker:
            return "run"
        if any(pattern.match(self.marker) for pattern in RUN_ELSEWHERE):
            return "elsewhere"
        match = DIRECTIVE.match(self.marker)
        if not match:
            return "bad"
        return "needs" if match["needs"] else "not run" if match["reason"] else match[1]

    @property
    def slow(self) -> bool:
        """Marked ``slow`` (or ``slow, needs ...``): run with ``-m slow`` only."""
        match = DIRECTIVE.match(self.marker)
        return bool(match) and (match[1] == "slow" or bool(match["slow"]))

    @property
    def needs(self) -> list[str]:
        match = DIRECTIVE.match(self.marker)
        return [n.strip() for n in match["needs"].split(",")] if match and match["needs"] else []


def doc_pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def page_blocks(page: Path, root: Path = ROOT) -> list[Block]:
    """The python blocks of ``page`` (named relative to ``root``), each with the HTML comment on the last non-blank
    line above its fence."""
    lines = page.read_text().splitlines()
    blocks: list[Block] = []
    start = None
    for number, line in enumerate(lines, 1):
        if start is None and FENCE_OPEN.match(line):
            start = number
        elif start is not None and FENCE_CLOSE.match(line):
            above = [text for text in lines[: start - 1] if text.strip()][-1:]
            comment = COMMENT.match(above[0]) if above else None
            blocks.append(Block(str(page.relative_to(root)), start, len(blocks) + 1,
                                "\n".join(lines[start:number - 1]) + "\n", comment[1] if comment else ""))
            start = None
    return blocks


def all_blocks() -> list[Block]:
    return [block for page in doc_pages() for block in page_blocks(page)]


def chains() -> list[list[Block]]:
    """Each block that runs, with the ``continues`` blocks after it on its page."""
    found: list[list[Block]] = []
    for block in all_blocks():
        if block.kind == "continues" and found and found[-1][-1].page == block.page \
                and found[-1][-1].index == block.index - 1:
            found[-1].append(block)
        elif block.kind in ("run", "needs", "slow"):
            found.append([block])
    return found


# --- stand-ins for what a reader has of their own (``<!-- snippet: needs ... -->``) -------------------------

#: The PhysioNet 2012 record IDs of the stand-in set-a/ folder (Outcomes-a.txt has a row for each).
PHYSIONET_RECORDS = range(132539, 132563)


def _my_csv(folder: Path) -> None:
    """A table of 60 rows: features x0..x2 (one missing value), binary task a, regression task b."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    rows = ["x0,x1,x2,a,b"] + [f"{u:.3f},{'' if i == 5 else f'{v:.3f}'},{w:.3f},{int(u + v > 0)},{2 * w + u:.3f}"
                               for i, (u, v, w) in enumerate(x)]
    (folder / "my.csv").write_text("\n".join(rows) + "\n")


def _faces_npz(folder: Path) -> None:
    """24 small colour images (3 x 8 x 8) and two binary tasks with missing labels, split given."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=(24, 2)).astype(float)
    labels[::5, 1] = np.nan
    np.savez(folder / "faces.npz", X=rng.normal(size=(24, 3, 8, 8)).astype(np.float32), Y=labels,
             tasks=np.array(["smiling", "young"]), split=np.tile([0, 0, 0, 1, 2, 2], 4))


def _feature_folders(folder: Path) -> None:
    """Office-Home layout: two domains x two classes x 10 images, a 16-d feature vector each."""
    rng = np.random.default_rng(0)
    for domain in ("Art", "Clipart"):
        for label in ("Alarm_Clock", "Bike"):
            (folder / "OfficeHome-vgg16" / domain / label).mkdir(parents=True)
            for image in range(10):
                np.save(folder / "OfficeHome-vgg16" / domain / label / f"{image:05d}.npy", rng.normal(size=16))


def _domain_files(folder: Path) -> None:
    """hospitals/north.npz and south.npz: X (40, 4), y (40,) in {0, 1}."""
    (folder / "hospitals").mkdir()
    for domain, (X, y) in _domain_arrays().items():
        np.savez(folder / "hospitals" / f"{domain}.npz", X=X, y=y)


def _domain_arrays() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    return {d: (rng.normal(size=(40, 4)), np.tile([0, 1], 20)) for d in ("north", "south")}


def _physionet_records(folder: Path) -> None:
    """set-a/: one PhysioNet 2012 record file per patient (hourly heart rate, ICU type); its outcomes beside it."""
    (folder / "set-a").mkdir()
    for r, record in enumerate(PHYSIONET_RECORDS):
        lines = ["Time,Parameter,Value", f"00:00,RecordID,{record}", f"00:00,Age,{40 + r}", f"00:00,Gender,{r % 2}",
                 f"00:00,ICUType,{r % 4 + 1}", f"00:00,Weight,{70 + r}"]
        lines += [f"{hour:02d}:10,HR,{80 + (r * hour) % 30}" for hour in range(0, 6 + r)]
        (folder / "set-a" / f"{record}.txt").write_text("\n".join(lines) + "\n")


def _physionet_outcomes(folder: Path) -> None:
    rows = ["RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death"]
    rows += [f"{record},10,5,{2 if r % 3 == 0 else 8},-1,{int(r % 5 == 0)}" for r, record in enumerate(PHYSIONET_RECORDS)]
    (folder / "Outcomes-a.txt").write_text("\n".join(rows) + "\n")


def _images(folder: Path) -> np.ndarray:
    return np.random.default_rng(0).random((12, 3, 64, 64))


def _labels(folder: Path) -> np.ndarray:
    labels = np.random.default_rng(1).integers(0, 2, size=(12, 9)).astype(float)
    labels[::4, 3] = np.nan
    return labels


#: What ``needs`` may name, and how the test makes each: a file or folder written into the working directory
#: (the function returns None), or the value of a Python name.
STAND_INS: dict[str, Callable[[Path], object]] = {
    "my.csv": _my_csv,
    "faces.npz": _faces_npz,
    "OfficeHome-vgg16/": _feature_folders,
    "hospitals/": _domain_files,
    "XA": lambda folder: _domain_arrays()["north"][0],
    "yA": lambda folder: _domain_arrays()["north"][1],
    "XB": lambda folder: _domain_arrays()["south"][0],
    "yB": lambda folder: _domain_arrays()["south"][1],
    "set-a/": _physionet_records,
    "Outcomes-a.txt": _physionet_outcomes,
    "images": _images,
    "labels": _labels,
    "split": lambda folder: np.tile([0, 0, 1, 2], 3),
    "windows": lambda folder: np.random.default_rng(2).normal(size=(30, 7, 3)),
    "next_day": lambda folder: np.random.default_rng(3).normal(size=30),
    "station_of_row": lambda folder: ["Clark", "Austin", "Halsted"] * 10,
}


# --- running a block ---------------------------------------------------------------------------------------


def _bound_names(statement: ast.stmt) -> list[str]:
    targets = statement.targets if isinstance(statement, ast.Assign) else \
        [statement.target] if isinstance(statement, ast.AnnAssign | ast.AugAssign) else []
    return [node.id for target in targets for node in ast.walk(target)
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)]


def run_block(block: Block, namespace: dict, history: dict[str, list]) -> None:
    """Runs ``block`` in ``namespace`` statement by statement; ``history[name]`` gets every value a top-level
    assignment gives ``name``, ``history["_"]`` the value of every bare expression that is not None."""
    tree = ast.parse(block.code, filename=str(ROOT / block.page))
    ast.increment_lineno(tree, block.line)
    for statement in tree.body:
        if isinstance(statement, ast.Expr):
            value = eval(compile(ast.Expression(statement.value), str(ROOT / block.page), "eval"), namespace)
            if value is not None:
                history.setdefault("_", []).append(value)
            continue
        exec(compile(ast.Module([statement], type_ignores=[]), str(ROOT / block.page), "exec"), namespace)
        for name in _bound_names(statement):
            history.setdefault(name, []).append(namespace[name])


def _skip_when_an_extra_is_missing(error: Exception) -> None:
    from negtransfer.data.packages import MissingPackageError

    if isinstance(error, MissingPackageError) or isinstance(error, ModuleNotFoundError) \
            and (error.name or "").split(".")[0] in OPTIONAL_PACKAGES:
        pytest.skip(f"{error}")


def _run_chain(chain: list[Block], folder: Path) -> dict[str, list]:
    """Runs the blocks of ``chain`` in one namespace, after making the stand-ins the first one needs; returns the
    history of :func:`run_block`."""
    namespace: dict = {"__name__": "__main__"}
    history: dict[str, list] = {}
    for name in chain[0].needs:
        value = STAND_INS[name](folder)
        if value is not None:
            namespace[name] = value
    for block in chain:
        try:
            run_block(block, namespace, history)
        except Exception as error:
            _skip_when_an_extra_is_missing(error)
            raise
    return history


def _chain_parameters() -> list:
    return [pytest.param(chain, id=chain[0].name, marks=[pytest.mark.slow] if chain[0].slow else [])
            for chain in chains()]


@pytest.mark.parametrize("chain", _chain_parameters())
def test_the_block_runs_and_shows_what_its_page_says(chain, tmp_path, monkeypatch, capsys):
    """The block (with its continuations) runs in a temporary working directory; what its page states, holds."""
    from negtransfer.jobs.grouping_methods import method_names, unregister

    monkeypatch.chdir(tmp_path)
    methods = method_names()
    try:
        history = _run_chain(chain, tmp_path)
        printed = capsys.readouterr().out
        for block in chain:  # inside the try: a grouping method a block registers is still registered here
            if (block.page, block.index) in CHECKS:
                CHECKS[block.page, block.index](history, printed)
    finally:
        for name in set(method_names()) - set(methods):  # a block may register a grouping method
            unregister(name)


@pytest.mark.parametrize("block", [b for b in all_blocks() if b.kind == "not run"], ids=lambda b: b.name)
def test_a_block_not_run_compiles_and_its_imports_run(block):
    """A block marked not run still compiles, and its imports (it has some) run."""
    tree = ast.parse(block.code, filename=str(ROOT / block.page))
    ast.increment_lineno(tree, block.line)
    imports = [statement for statement in tree.body if isinstance(statement, ast.Import | ast.ImportFrom)]
    namespace: dict = {}
    exec(compile(ast.Module(imports, type_ignores=[]), str(ROOT / block.page), "exec"), namespace)
    assert imports and set(namespace) > {"__builtins__"}


def test_every_block_says_what_it_is():
    """Each block's marker is one of the scheme's; a continuation follows a block that runs; every stand-in that a
    block needs exists and every stand-in is needed; a block run elsewhere names a file that exists; every check
    belongs to a block that runs."""
    problems = []
    blocks = all_blocks()
    for before, block in zip([None, *blocks], blocks, strict=False):
        if block.kind == "bad":
            problems.append(f"{block.name}: unknown marker <!-- {block.marker} -->")
        if block.kind == "continues" and not (before and before.page == block.page
                                              and before.kind in ("run", "needs", "slow", "continues")):
            problems.append(f"{block.name}: continues, but the page's previous python block does not run")
        problems += [f"{block.name}: no stand-in for {name!r}" for name in block.needs if name not in STAND_INS]
        problems += _run_elsewhere_problems(block)
    needed = {name for block in blocks for name in block.needs}
    problems += [f"stand-in {name!r} is needed by no block" for name in set(STAND_INS) - needed]
    running = {(block.page, block.index) for chain in chains() for block in chain}
    problems += [f"CHECKS names {page} block {index}, which does not run" for page, index in set(CHECKS) - running]
    assert not problems, "\n".join(problems)


def _run_elsewhere_problems(block: Block) -> list[str]:
    """The test that runs a block marked as run elsewhere exists, and so does the docs/examples file it names."""
    for pattern, test in RUN_ELSEWHERE.items():
        match = pattern.match(block.marker)
        if match and not (ROOT / test).exists():
            return [f"{block.name}: {test} (that runs this block) does not exist"]
        if match and match.groupdict().get("file") and not (ROOT / "docs" / "examples" / match["file"]).exists():
            return [f"{block.name}: docs/examples/{match['file']} does not exist"]
    return []


def test_every_python_block_of_the_docs_is_found():
    """The parser finds every ```python fence of the pages (none indented, none left open)."""
    fences = sum(len(re.findall(r"```python", page.read_text())) for page in doc_pages())
    blocks = all_blocks()
    assert len(blocks) == fences >= 20
    kinds = [block.kind for block in blocks]
    assert kinds.count("run") + kinds.count("needs") >= 8 and kinds.count("not run") <= 5


def test_the_parser_reads_markers(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("text\n\n<!-- snippet: not run (yours) -->\n\n```python\nx = 1\n```\n<!-- snippet: continues -->\n"
                    "```python\ny = x\n```\n<!-- snippet: needs my.csv, XA -->\n```python\nz = 2\n```\n"
                    "<!-- snippet: sometimes -->\n```python\n```\n")
    blocks = page_blocks(page, tmp_path)
    assert [(b.line, b.index, b.kind) for b in blocks] == [(5, 1, "not run"), (9, 2, "continues"), (13, 3, "needs"),
                                                           (17, 4, "bad")]
    assert blocks[0].code == "x = 1\n" and blocks[2].needs == ["my.csv", "XA"]
    assert Block("page.md", 1, 1, "", "snippet: not run").kind == "bad"  # a block not run says why
    assert Block("page.md", 1, 1, "", "docs/examples/group.py").kind == "elsewhere"
    both = Block("page.md", 1, 1, "", "snippet: slow, needs set-a/")
    assert (both.kind, both.slow, both.needs) == ("needs", True, ["set-a/"])
    assert Block("page.md", 1, 1, "", "snippet: slow").slow and not blocks[2].slow


def test_a_failing_statement_names_the_page_and_its_line(tmp_path):
    block = Block("docs/page.md", 40, 1, "a = 1\nb = a.nope\n", "")
    with pytest.raises(AttributeError) as raised:
        run_block(block, {}, {})
    frame = raised.traceback[-1]
    assert Path(frame.path) == ROOT / "docs/page.md" and frame.lineno + 1 == 42


# --- what the pages state beside their blocks ---------------------------------------------------------------


def _check_grouping_method(history, printed):
    """architecture.md: after register(...), the registry has the method."""
    from negtransfer.jobs.grouping_methods import get_method

    assert get_method("my-method") is history["_"][0]


def _check_datasets(history, printed):
    """datasets.md, the loaders: the stated tasks, shapes and kinds."""
    yeast, _, mine, synthetic, tv16, _, exam, digits, sequences, qm9, faces = history["ds"]
    assert yeast.name == "yeast" and mine.task_names == ("a", "b") and len(synthetic.info["clusters"]) == 8
    assert tv16.task_names == ("Texas", "Ohio")
    assert np.bincount(exam.row_task).min() >= 50
    assert digits.X.shape == (1797, 1, 8, 8) and digits.n_tasks == 14 and {t.kind for t in digits.tasks} == {"binary"}
    assert sequences.X.shape == (5684, 14, 29) and sequences.n_tasks == 20
    assert {t.kind for t in sequences.tasks} == {"regression"}
    assert qm9.X.shape[0] == 5000 and qm9.n_tasks == 12


def _check_time_series(history, printed):
    """datasets.md, time series: the PhysioNet folder by name is the same dataset as through its loader."""
    by_loader, by_name = history["ds"][2:]
    np.testing.assert_array_equal(by_loader.X, by_name.X)
    np.testing.assert_array_equal(by_loader.Y, by_name.Y)


def _check_fairness(history, printed):
    """datasets.md, fairness: the gap is a difference of two rates."""
    assert 0 <= history["_"][-1] <= 1


def _check_arrays(history, printed):
    """datasets.md, the array files: both files load as the table above says."""
    from negtransfer.data import dataset_from_file

    faces = dataset_from_file("faces.npz", seed=0)
    assert faces.task_names == tuple(history["names"][0]) and faces.X.shape == (12, 3, 64, 64)
    stations = dataset_from_file("stations.npz", seed=0)
    assert sorted(stations.task_names) == ["Austin", "Clark", "Halsted"] and stations.row_task is not None


def _check_tracker(history, printed):
    """affinity.md, your own loop: A is (T, T), Z (n_groups, T)."""
    assert history["A"][0].shape == (3, 3) and history["Z"][0].shape == (3, 3)
    assert np.isfinite(history["A"][0][~np.eye(3, dtype=bool)]).all()


def _check_lightning(history, printed):
    """affinity.md, Lightning: the callback's matrix is (T, T), as the tracker's."""
    assert history["_"][-1].shape == (3, 3)


def _check_etap(history, printed):
    """etap-predictor.md: Y_hat is (m, n), NaN outside groups, 0 for groups of one task."""
    U, Y_hat = history["U_candidates"][0], history["Y_hat"][0]
    assert Y_hat.shape == U.shape == (63, 6)
    assert np.isnan(Y_hat[~U]).all() and np.isfinite(Y_hat[U]).all()
    assert (Y_hat[U.sum(axis=1) == 1][U[U.sum(axis=1) == 1]] == 0).all()


def _check_group_selection(history, printed):
    """group-selection.md: U's shape and order, and what sel's fields are said to hold."""
    U, S, sel = history["U"][0], history["S"][0], history["sel"][0]
    assert U.shape == (63, 6) and U.dtype == bool and (U[:6].sum(axis=1) == 1).all() and U[-1].all()
    assert list(sel.groups) == sorted(sel.groups) and 1 <= len(sel.groups) <= 3
    best = [max(S[g, t] for g in sel.groups if U[g, t]) for t in range(6)]
    assert sel.objective == pytest.approx(sum(best))
    assert all(S[g, t] == best[t] for t, g in enumerate(sel.task_group))
    assert len(history["_"]) == 4  # the four fields the block shows


def _check_source_selection(history, printed):
    """source-selection.md: S is (n, k) bool; the scores are named; gamma comes from the grid and the selection is
    select_sources on the surrogate fitted to every row; the metrics are those named."""
    from negtransfer.select.sources import select_sources

    S, surrogate, choice = history["S"][0], history["surrogate"][0], history["choice"][0]
    assert S.shape == (80, 10) and S.dtype == bool
    scores, (gamma, selected) = history["_"][:2]
    assert list(scores) == history["source_names"][0] and list(scores.values()) == list(surrogate.theta_)
    assert choice.gamma == gamma and np.round(gamma, 6) in np.round(np.arange(-0.5, 0.51, 0.1), 6)
    np.testing.assert_array_equal(selected, select_sources(surrogate.theta_, gamma))
    assert {"f1", "spearman", "accuracy"} <= set(history["m"][0])


def _check_tp_amtl(history, printed):
    """tp-amtl.md: each printed row of the table is a row of the page's results (same numbers)."""
    page = (ROOT / "docs" / "methods" / "tp-amtl.md").read_text()
    rows = [line for line in printed.splitlines() if line.startswith("| ") and "±" in line]
    assert len(rows) == 3
    for row in rows:
        cells = row.split("|", 2)[2]
        assert cells in page, row


#: (page, the block's number among the page's python blocks) -> a check of what the page states.
CHECKS: dict[tuple[str, int], Callable[[dict, str], None]] = {
    ("docs/architecture.md", 1): _check_grouping_method,
    ("docs/datasets.md", 1): _check_datasets,
    ("docs/datasets.md", 3): _check_time_series,
    ("docs/datasets.md", 4): _check_fairness,
    ("docs/datasets.md", 5): _check_arrays,
    ("docs/methods/affinity.md", 2): _check_tracker,
    ("docs/methods/affinity.md", 3): _check_lightning,
    ("docs/methods/etap-predictor.md", 1): _check_etap,
    ("docs/methods/group-selection.md", 1): _check_group_selection,
    ("docs/methods/source-selection.md", 1): _check_source_selection,
    ("docs/methods/tp-amtl.md", 1): _check_tp_amtl,
}
