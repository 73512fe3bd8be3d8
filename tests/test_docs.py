"""The docs' commands and links point at things that exist.

Read from README.md and docs/**/*.md, in fenced code blocks (continuation lines joined, ``#`` comment lines
skipped) and inline code spans:

- ``negtransfer CMD --option ...`` (also ``python -m negtransfer``): CMD is a command of the CLI and every
  option one of CMD's, read from the click command objects in this process (no subprocess);
- ``python benchmarks/NAME.py --option ...`` (also with a prefix, ``nice -n 10 python ...``, or the bare path):
  the script exists and declares the option, read from the ``add_argument`` calls of its source (and of the
  helpers it calls from benchmarks/grouping_datasets.py); nothing is imported or run;
- a literal value of an option with fixed choices (a ``Literal`` option of the CLI, an argparse ``choices=``
  list) is one of them (``--x a|b`` alternatives each; placeholders such as ``NAME`` or ``...`` are skipped);
- every relative markdown link ``[text](path)``, ``[text](path#anchor)``, ``[text](#anchor)`` outside code:
  the file exists inside the repository and the anchor is a heading of that file (GitHub's slug rule);
- an inline span that starts with an option (``--budget 3`` in prose) names an option of some negtransfer
  command or benchmark script (the span does not say which);
- every repository path named in code (``src/...``, ``tests/...``, ``benchmarks/...``, ``docs/...``,
  ``tools/...``) exists.

Each failure names the page, the line and the bad token, with the closest existing names.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import functools
import itertools
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pytest
import typer

from negtransfer.cli import app

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"

#: A fence opens or closes a code block (CommonMark: three or more backticks or tildes).
FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
#: An inline code span: matching backtick runs, within one paragraph (no blank line inside).
CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)((?:(?!\n[ \t]*\n).)+?)(?<!`)\1(?!`)", re.S)
#: An inline link or image: [text](target "title"); the text may hold one level of brackets and line breaks.
LINK = re.compile(r"(?<!\\)\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(\s*(<[^>\n]*>|[^)\s]+)(?:\s+\"[^\"]*\")?\s*\)")
#: A reference-style link definition: [label]: target
LINK_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?([^\s>]+)>?", re.M)
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
SECTION = re.compile(r"^ {0,3}(#{1,2})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
HTML_ANCHOR = re.compile(r"<a\s[^>]*\b(?:name|id)=\"([^\"]+)\"", re.I)
#: What may come before a command: a prompt, environment assignments, nice/time/timeout.
PREFIX = r"^(?:\$\s+)?(?:[A-Za-z_]\w*=\S*\s+)*(?:(?:nice(?:\s+-n\s*-?\d+)?|time|timeout\s+\S+)\s+)*"
NEGTRANSFER = re.compile(PREFIX + r"(?:\S*python3?\s+-m\s+)?negtransfer(?=\s|$)(.*)", re.S)
#: A benchmark script anywhere in a code line (``python benchmarks/x.py --a``, ``nice ... python ...``, or a bare
#: ``benchmarks/x.py --a``), with its arguments up to the next script named.
BENCHMARK = re.compile(r"(?<![\w/.-])(benchmarks/[\w./-]+?\.py)(?![\w.-])((?:(?!benchmarks/[\w./-]+\.py).)*)", re.S)
#: Shell operators that end one command: &&, ||, a pipe between spaces (a bare | is an alternative: a|b), >, and
#: a ; before a space or the line's end (one inside a quoted value, "hidden=32;dropout=0.3", separates nothing).
SHELL_SEPARATOR = re.compile(r"\s+(?:&&|\|\|?|\d?>>?)\s+|;(?:\s+|$)")
OPTION = re.compile(r"(?<![\w-])(--[A-Za-z][\w-]*|-[A-Za-z])(?![\w-])")
#: The one allow-list. Commands kept beside the figures they produced with an earlier version of a benchmark
#: script, which the page names (``git show COMMIT:benchmarks/...``); today's script lacks these options, and the
#: old one is in the git history only, so they cannot be checked here. (page, its level-1/2 section) -> options.
HISTORICAL_OPTIONS = {
    ("docs/methods/source-selection.md", "measured-before-issue-11-tv16-adult-by-occupation-exam"):
        frozenset({"--grids", "--exhaustive-pairs", "--common-init"}),
}
#: Options of other tools that the prose names in a span of their own (``--no-deps``: pip's, see docs/datasets.md).
OTHER_TOOLS_OPTIONS = frozenset({"--no-deps"})
#: A command written as a placeholder (``negtransfer CMD --help``): its options must belong to some command.
PLACEHOLDER = re.compile(r"^(?:[A-Z][A-Z_]*|<[^>]*>|\.\.\.|\[.*)$")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
#: A path inside the repository named in code; it ends before a glob (``models/*.py``) or a trailing slash.
REPOSITORY_PATH = re.compile(r"(?<![\w/.-])((?:src|tests|benchmarks|docs|tools)/[\w./-]*\w)")


@dataclass(frozen=True)
class Code:
    """One fenced-block command line (continuations joined) or inline code span of a page."""

    page: str
    line: int
    text: str
    #: a fenced block's line holds shell commands (split at &&, |, ;); a span is one command or none
    in_block: bool = True
    #: the slug of the level-1 or level-2 heading above it
    section: str = ""


@dataclass(frozen=True)
class Link:
    page: str
    line: int
    target: str


@dataclass(frozen=True)
class Page:
    """A markdown file split into its code (blocks and spans) and its links outside code."""

    name: str
    codes: tuple[Code, ...]
    links: tuple[Link, ...]


def doc_pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _fenced_blocks(lines: list[str]) -> tuple[list[list[tuple[int, str]]], list[str]]:
    """The fenced code blocks (numbered lines) and the page's other lines, with blanks for the blocks' lines."""
    blocks: list[list[tuple[int, str]]] = []
    prose: list[str] = []
    fence = ""
    for number, line in enumerate(lines, 1):
        match = FENCE.match(line)
        if not fence:
            if match:
                fence = match.group(1)
                blocks.append([])
            prose.append("" if match else line)
            continue
        prose.append("")
        closes = match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence)
        if closes and not line.strip()[len(match.group(1)):].strip():
            fence = ""
        else:
            blocks[-1].append((number, line))
    return blocks, prose


def _block_commands(name: str, block: list[tuple[int, str]]) -> list[Code]:
    """A block's logical lines: a trailing backslash joins the next line; lines starting with # are comments."""
    codes: list[Code] = []
    start, parts = 0, []
    for number, line in block:
        if not parts and line.strip().startswith("#"):
            continue
        start = start if parts else number
        stripped = line.rstrip()
        if stripped.endswith("\\"):
            parts.append(stripped[:-1])
            continue
        codes.append(Code(name, start, " ".join([*parts, stripped]).strip()))
        parts = []
    if parts:
        codes.append(Code(name, start, " ".join(parts).strip()))
    return codes


def parse_page(name: str, text: str) -> Page:
    """Split a markdown page into its code and its links (links inside code are not links)."""
    blocks, prose_lines = _fenced_blocks(text.splitlines())
    codes = [code for block in blocks for code in _block_commands(name, block)]
    prose = "\n".join(prose_lines)
    for span in CODE_SPAN.finditer(prose):
        line = prose.count("\n", 0, span.start()) + 1
        codes.append(Code(name, line, " ".join(span.group(2).split()), in_block=False))
    # blank the spans (keeping line breaks) so that brackets inside code are not read as links
    outside = CODE_SPAN.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), prose)
    links = [Link(name, outside.count("\n", 0, m.start(2)) + 1, m.group(2).strip("<>")) for m in LINK.finditer(outside)]
    links += [Link(name, outside.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in LINK_DEFINITION.finditer(outside)]
    sections = list(itertools.accumulate(
        prose_lines, lambda current, line: github_slug(m.group(2)) if (m := SECTION.match(line)) else current,
        initial=""))[1:]
    codes = [dataclasses.replace(code, section=sections[code.line - 1]) for code in codes]
    return Page(name, tuple(codes), tuple(links))


@functools.cache
def pages() -> tuple[Page, ...]:
    return tuple(parse_page(p.relative_to(ROOT).as_posix(), p.read_text(encoding="utf-8")) for p in doc_pages())


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text (link targets and HTML tags dropped) lower-cased, every character
    but letters, digits, '-', '_' and spaces removed, each space turned into '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text)
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor of a page: its headings' slugs (repeats get -1, -2, ...) and explicit <a name/id="...">."""
    _, prose = _fenced_blocks(text.splitlines())
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in prose:
        match = HEADING.match(line)
        if not match:
            continue
        slug = github_slug(match.group(2))
        found.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    found.update(HTML_ANCHOR.findall("\n".join(prose)))
    return found


@functools.cache
def _file_anchors(path: Path) -> frozenset[str]:
    return frozenset(anchors(path.read_text(encoding="utf-8")))


# --------------------------------------------------------------------------------------------- the CLI


@dataclass(frozen=True)
class Spec:
    """What an option takes: nothing (a flag), one value, or (argparse nargs + or *) every word up to the next
    option; ``choices`` empty: any value."""

    takes_value: bool = True
    choices: frozenset[str] = frozenset()
    many: bool = False


FLAG = Spec(takes_value=False)


def _literal_choices(annotation) -> frozenset[str]:
    """The values of a ``Literal[...]`` annotation (also inside ``Optional``); empty for any other type."""
    if typing.get_origin(annotation) is typing.Literal:
        return frozenset(str(value) for value in typing.get_args(annotation))
    return frozenset().union(*(_literal_choices(arg) for arg in typing.get_args(annotation)))


@functools.cache
def cli_options() -> dict[str, dict[str, Spec]]:
    """Command name -> its options ('' is the command group itself), read from the click command objects."""
    root = typer.main.get_command(app)

    def specs(command) -> dict[str, Spec]:
        found = {"--help": FLAG}
        for param in command.params:
            if getattr(param, "param_type_name", "") != "option":
                continue
            descriptor = getattr(param, "type_descriptor", None)
            choices = _literal_choices(descriptor.annotation) if descriptor else frozenset()
            spec = FLAG if param.is_flag or param.count else Spec(choices=choices)
            found.update(dict.fromkeys([*param.opts, *param.secondary_opts], spec))
        return found

    return {"": specs(root), **{name: specs(command) for name, command in root.commands.items()}}


def _suggest(token: str, choices) -> str:
    close = difflib.get_close_matches(token, sorted(choices), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def _arguments(code: Code, command: re.Pattern) -> list[re.Match]:
    """The commands of one code line, cut at a ' #' comment; a block's line is split at shell operators, a span
    (often an error message or prose) is read from its start only."""
    text = re.split(r"(?:^|\s)#", code.text.replace("\\|", "|"), maxsplit=1)[0]
    parts = SHELL_SEPARATOR.split(text) if code.in_block else [text]
    if command is BENCHMARK:
        return [match for part in parts for match in command.finditer(part.strip())]
    return [match for part in parts if (match := command.match(part.strip()))]


def _values(words: list[str], index: int, spec: Spec) -> list[str]:
    """The literal values a doc gives the option at ``words[index]`` (``--x v``, ``--x=v``, ``[--x a|b]``);
    placeholders (``NAME``, ``...``, ``<x>``, ``$VAR``) are left out."""
    word = words[index].lstrip("[(")
    given = [word.split("=", 1)[1]] if "=" in word else []
    if not given and spec.takes_value:
        following = words[index + 1:] if spec.many else words[index + 1:index + 2]
        given = list(itertools.takewhile(lambda w: not OPTION.match(w.lstrip("[(")), following))
    values = [v for g in given for v in g.strip("[](),.;:'\"").split("|")]
    return [v for v in values if v and not re.search(r"[A-Z<>{}$*]|\.\.\.", v)]


def _check_words(where: str, label: str, body: str, options: dict[str, Spec]) -> list[str]:
    """Each option of a command line is one of ``options``, and each literal value of a choice option one of its
    choices."""
    failures = []
    words = body.split()
    for index, word in enumerate(words):
        for option in OPTION.findall(word.split("=", 1)[0]):
            if option not in options:
                failures.append(f"{where}: `{option}` is not an option of `{label}`{_suggest(option, options)}")
                continue
            spec = options[option]
            if spec.choices and OPTION.fullmatch(word.lstrip("[(").split("=", 1)[0].rstrip("])")):
                failures += [f"{where}: `{option} {value}`: `{value}` is not a choice of `{label} {option}` "
                             f"({'|'.join(sorted(spec.choices))})"
                             for value in _values(words, index, spec) if value not in spec.choices]
    return failures


def _check_negtransfer(code: Code, rest: str) -> list[str]:
    commands = cli_options()
    words = rest.split()
    where = f"{code.page}:{code.line}"
    if not words or words[0].startswith("-"):
        name, options, label = "", commands[""], "negtransfer"
    elif PLACEHOLDER.match(words[0]):
        name, label = words[0], f"any negtransfer command (placeholder {words[0]})"
        options = {option: FLAG for specs in commands.values() for option in specs}
    elif words[0] in commands:
        name, options, label = words[0], commands[words[0]], f"negtransfer {words[0]}"
    else:
        return [f"{where}: `negtransfer {words[0]}`: no such command{_suggest(words[0], commands)} in `{code.text}`"]
    body = rest.split(name, 1)[1] if name else rest
    return [f"{failure} in `{code.text}`" for failure in _check_words(where, label, body, options)]


# ---------------------------------------------------------------------------------------- the benchmarks

#: argparse actions that take no value.
NO_VALUE_ACTIONS = {"store_true", "store_false", "store_const", "append_const", "count", "help", "version"}


def _added_options(call: ast.Call) -> dict[str, Spec]:
    """The options of a ``parser.add_argument("--x", "-x", ...)`` call (empty for any other call): a flag for the
    store_true-like actions, the literal ``choices`` (a list or tuple of constants), nargs + or * as many."""
    if not (isinstance(call.func, ast.Attribute) and call.func.attr == "add_argument"):
        return {}
    names = [arg.value for arg in call.args if isinstance(arg, ast.Constant) and str(arg.value).startswith("-")]
    keywords = {keyword.arg: keyword.value for keyword in call.keywords}
    action, nargs, choices = keywords.get("action"), keywords.get("nargs"), keywords.get("choices")
    if isinstance(action, ast.Constant) and action.value in NO_VALUE_ACTIONS:
        return dict.fromkeys(names, FLAG)
    literal = frozenset()
    if isinstance(choices, (ast.List, ast.Tuple)) and all(isinstance(e, ast.Constant) for e in choices.elts):
        literal = frozenset(str(e.value) for e in choices.elts if isinstance(e, ast.Constant))
    many = isinstance(nargs, ast.Constant) and nargs.value in ("+", "*")
    return dict.fromkeys(names, Spec(choices=literal, many=many))


def _calls_options(node: ast.AST) -> dict[str, Spec]:
    return {name: spec for call in ast.walk(node) if isinstance(call, ast.Call)
            for name, spec in _added_options(call).items()}


@functools.cache
def _module(name: str) -> ast.Module | None:
    path = BENCHMARKS / f"{name}.py"
    return ast.parse(path.read_text(encoding="utf-8")) if path.is_file() else None


def _helper_options(module: str, function: str) -> dict[str, Spec]:
    """The options a function of another benchmark module adds (``grouping_datasets.add_smoke_option(parser)``)."""
    tree = _module(module)
    for node in tree.body if tree else ():
        if isinstance(node, ast.FunctionDef) and node.name == function:
            return _calls_options(node)
    return {}


@functools.cache
def benchmark_options(script: str) -> dict[str, Spec]:
    """Every option a benchmark script declares, read from its source: its own add_argument calls and those of
    the helpers it calls from the other benchmark modules; argparse adds -h/--help."""
    tree = _module(script)
    assert tree is not None, script
    modules = {a.asname or a.name: a.name for node in ast.walk(tree) if isinstance(node, ast.Import)
               for a in node.names if _module(a.name)}
    functions = {a.asname or a.name: (node.module, a.name) for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and _module(node.module) for a in node.names}
    found = {"-h": FLAG, "--help": FLAG, **_calls_options(tree)}
    for call in (node for node in ast.walk(tree) if isinstance(node, ast.Call)):
        target = call.func
        if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id in modules:
            found |= _helper_options(modules[target.value.id], target.attr)
        elif isinstance(target, ast.Name) and target.id in functions:
            found |= _helper_options(*functions[target.id])
    return found


def _check_benchmark(code: Code, script: str, rest: str) -> list[str]:
    where = f"{code.page}:{code.line}"
    name = script.removeprefix("benchmarks/").removesuffix(".py")
    if not (BENCHMARKS / f"{name}.py").is_file():
        existing = [p.name for p in BENCHMARKS.glob("*.py")]
        return [f"{where}: `{script}` does not exist{_suggest(name + '.py', existing)} in `{code.text}`"]
    historical = HISTORICAL_OPTIONS.get((code.page, code.section), frozenset())
    options = {**benchmark_options(name), **dict.fromkeys(historical, Spec())}
    return [f"{failure} in `{code.text}`" for failure in _check_words(where, script, rest, options)]


# ------------------------------------------------------------------------------------------------- links


def _check_link(link: Link) -> list[str]:
    where = f"{link.page}:{link.line}"
    if SCHEME.match(link.target):
        return []  # a web address (https:, mailto:): not checked offline
    path_part, _, anchor = link.target.partition("#")
    page = ROOT / link.page
    if not path_part:
        target = page
    elif path_part.startswith("/"):
        target = ROOT / unquote(path_part).lstrip("/")
    else:
        target = page.parent / unquote(path_part)
    target = target.resolve()
    if not target.is_relative_to(ROOT):
        return [f"{where}: link `{link.target}` leaves the repository"]
    if not target.exists():
        return [f"{where}: link `{link.target}`: {target.relative_to(ROOT)} does not exist"]
    if not anchor or target.suffix != ".md":
        return []  # anchors into other files (a source line: #L10) are GitHub's viewer's, not headings
    found = _file_anchors(target)
    if anchor in found:
        return []
    return [f"{where}: link `{link.target}`: no heading of {target.relative_to(ROOT)} has the anchor "
            f"#{anchor}{_suggest(anchor, found)}"]


# ------------------------------------------------------------------------------------------------- tests


def _cli_codes() -> list[tuple[Code, str]]:
    return [(code, m.group(1)) for page in pages() for code in page.codes for m in _arguments(code, NEGTRANSFER)]


def _benchmark_codes() -> list[tuple[Code, str, str]]:
    return [(code, m.group(1), m.group(2)) for page in pages() for code in page.codes
            for m in _arguments(code, BENCHMARK)]


def test_every_negtransfer_command_and_option_in_the_docs_exists():
    found = _cli_codes()
    assert len(found) >= 80, f"only {len(found)} negtransfer commands found in the docs: is the parser broken?"
    failures = [f for code, rest in found for f in _check_negtransfer(code, rest)]
    assert not failures, "\n".join(failures)


def test_every_benchmark_command_and_option_in_the_docs_exists():
    found = _benchmark_codes()
    assert len(found) >= 80, f"only {len(found)} benchmark commands found in the docs: is the parser broken?"
    failures = [f for code, script, rest in found for f in _check_benchmark(code, script, rest)]
    assert not failures, "\n".join(failures)


def test_every_relative_link_in_the_docs_exists():
    links = [link for page in pages() for link in page.links]
    assert len(links) >= 60, f"only {len(links)} links found in the docs: is the parser broken?"
    failures = [f for link in links for f in _check_link(link)]
    assert not failures, "\n".join(failures)


def test_every_option_named_in_prose_exists_somewhere():
    known = {option for specs in cli_options().values() for option in specs} | OTHER_TOOLS_OPTIONS
    known |= {option for script in BENCHMARKS.glob("*.py") for option in benchmark_options(script.stem)}
    named = [(code, m.group(1)) for page in pages() for code in page.codes
             if not code.in_block and (m := OPTION.match(code.text))]
    assert len(named) >= 300, f"only {len(named)} option spans found in the docs: is the parser broken?"
    failures = [f"{code.page}:{code.line}: `{option}` is an option of no negtransfer command and no benchmark script"
                f"{_suggest(option, known)} in `{code.text}`" for code, option in named if option not in known]
    assert not failures, "\n".join(failures)


def test_every_repository_path_named_in_code_exists():
    named = [(code, m.group(1)) for page in pages() for code in page.codes
             for m in REPOSITORY_PATH.finditer(code.text)]
    assert len(named) >= 150, f"only {len(named)} repository paths found in the docs' code: is the parser broken?"
    failures = [f"{code.page}:{code.line}: `{path}` does not exist in the repository"
                for code, path in named if not (ROOT / path).exists()]
    assert not failures, "\n".join(failures)


# ------------------------------------------------------------------------------ the checker catches errors

SAMPLE = """\
# Title
Run `negtransfer group --budjet 3` or [the guide](docs/nowhere.md).
## A *heading*, with `code`
## A heading, with code
```bash
# negtransfer group --not-checked (a comment)
negtransfer group --seed 0 \\
    --bogus 1
python benchmarks/grouping_quality.py --seeds 0 --smoke --nope
```
[here](#a-heading-with-code-1) [there](#missing) `[not a link](nowhere.md)`
`negtransfer group [--objective total-loss|mean-gains] --executor=ray --method NAME`
`nice -n 10 python benchmarks/tp_amtl_interpret.py --noise dropout` and `benchmarks/nowhere.py`
"""


def test_the_parser_reads_blocks_spans_continuations_and_links():
    page = parse_page("sample.md", SAMPLE)
    texts = [(code.line, code.text) for code in page.codes]
    assert (7, "negtransfer group --seed 0      --bogus 1") in texts
    assert (2, "negtransfer group --budjet 3") in texts
    assert not any("--not-checked" in text for _, text in texts)
    assert {code.section for code in page.codes if code.line >= 7} == {"a-heading-with-code"}
    assert [(link.line, link.target) for link in page.links] == [
        (2, "docs/nowhere.md"), (11, "#a-heading-with-code-1"), (11, "#missing")]


def test_the_checks_name_the_bad_token():
    page = parse_page("README.md", SAMPLE)
    failures = [f for code in page.codes for m in _arguments(code, NEGTRANSFER)
                for f in _check_negtransfer(code, m.group(1))]
    assert len(failures) == 3, failures
    assert failures[0].startswith("README.md:7: `--bogus` is not an option of `negtransfer group`")
    assert "README.md:2: `--budjet` is not an option of `negtransfer group` (did you mean --budget" in failures[1]
    assert failures[2].startswith("README.md:12: `--objective mean-gains`: `mean-gains` is not a choice of")
    bench = [f for code in page.codes for m in _arguments(code, BENCHMARK)
             for f in _check_benchmark(code, m.group(1), m.group(2))]
    assert len(bench) == 2, bench
    assert bench[0].startswith("README.md:9: `--nope` is not an option of `benchmarks/grouping_quality.py`")
    assert bench[1].startswith("README.md:13: `benchmarks/nowhere.py` does not exist")
    assert not _check_negtransfer(Code("x.md", 1, ""), "--version") and _check_negtransfer(Code("x.md", 1, ""), "grup")


def test_choice_values_are_checked_and_placeholders_skipped():
    spec = Spec(choices=frozenset({"a", "b"}))
    assert _values(["--x", "a|b]"], 0, spec) == ["a", "b"]
    assert _values(["--x=c"], 0, spec) == ["c"]
    assert _values(["--x", "NAME"], 0, spec) == [] and _values(["--x", "..."], 0, spec) == []
    assert _values(["--x", "a", "b", "--y", "c"], 0, Spec(many=True)) == ["a", "b"]
    assert _values(["--x", "a", "b"], 0, FLAG) == []
    assert benchmark_options("source_selection")["--grid"].choices == {"all", "paper"}
    assert benchmark_options("grouping_quality")["--smoke"] == FLAG  # added by grouping_datasets.add_smoke_option


def test_the_allow_list_is_still_needed():
    """Each historical option is used in its section and is not an option of today's script (else check it)."""
    pages_by_name = {page.name: page for page in pages()}
    for (name, section), options in HISTORICAL_OPTIONS.items():
        codes = [m for code in pages_by_name[name].codes if code.section == section
                 for m in _arguments(code, BENCHMARK)]
        used = {option for m in codes for option in OPTION.findall(m.group(2))}
        scripts = {m.group(1).removeprefix("benchmarks/").removesuffix(".py") for m in codes}
        assert options <= used, (name, section, options - used)
        assert not any(options & benchmark_options(script).keys() for script in scripts), (name, section)


def test_anchor_slugs_follow_github():
    assert github_slug("Measured: every core, `benchmarks/executors_cores.py`") == (
        "measured-every-core-benchmarksexecutors_corespy")
    assert github_slug("Sampling (`sample_subsets(k, size, n, seed)`)") == "sampling-sample_subsetsk-size-n-seed"
    assert github_slug("PCGrad and [others](x.md) — 2026-12-07") == "pcgrad-and-others--2026-12-07"
    assert anchors(SAMPLE) == {"title", "a-heading-with-code", "a-heading-with-code-1"}


@pytest.mark.parametrize("target, problem", [("docs/nowhere.md", "does not exist"),
                                             ("docs/errors.md#no-such-section", "no heading"),
                                             ("../../outside.md", "leaves the repository")])
def test_bad_links_are_reported(target, problem):
    failures = _check_link(Link("README.md", 3, target))
    assert len(failures) == 1 and problem in failures[0] and failures[0].startswith("README.md:3:")


def test_good_links_pass():
    assert not _check_link(Link("docs/methods/tp-amtl.md", 1, "../datasets.md"))
    assert not _check_link(Link("README.md", 1, "https://example.org/x#y"))
