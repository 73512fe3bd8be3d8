"""The import graph: imports point down the layers, no cycles, nothing registers itself on import.

Read from the source with ``ast`` (every import, also those inside functions),
so a lazy import that points up a layer or closes a cycle fails here too.
docs/architecture.md draws the layers.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

SRC = pathlib.Path(__file__).resolve().parents[1] / "src" / "negtransfer"

#: Top to bottom. A module may import its own package and packages of lower layers; packages of one layer
#: (peers) do not import each other. "negtransfer" is the package itself (``__version__``).
LAYERS = (
    ("__main__",),
    ("cli", "api"),
    ("report",),
    ("jobs",),
    ("models", "select", "runs"),
    ("gains",),
    ("affinity",),
    ("train",),
    ("nn",),
    ("data",),
    ("negtransfer",),
)
RANK = {package: rank for rank, packages in enumerate(LAYERS) for package in packages}


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "negtransfer"


def _imports(module: str) -> set[str]:
    """The negtransfer modules ``module`` imports, anywhere in its code."""
    path = MODULES[module]
    here = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parents = here.split(".")[: len(here.split(".")) - node.level + 1]
                base = ".".join(parents + ([node.module] if node.module else []))
            candidates = [base] + [f"{base}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        found |= {c for c in candidates if c in MODULES and c != module}
    return found


#: The Python API's front door: the package (``negtransfer.group(...)``, lazily, in ``__getattr__``) and the gains
#: package (callable as ``negtransfer.gains(...)``, lazily, in ``__call__``) reach up to negtransfer.api; nothing else.
FRONT_DOOR = {("negtransfer", "negtransfer.api"), ("negtransfer.gains", "negtransfer.api"),
              ("negtransfer", "negtransfer.gains")}
GRAPH = {module: {t for t in _imports(module) if (module, t) not in FRONT_DOOR} for module in MODULES}


def test_every_package_has_a_layer():
    assert {_package(m) for m in MODULES} <= set(RANK), "add the new package to LAYERS (and docs/architecture.md)"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down_the_layers(module):
    mine = _package(module)
    for target in sorted(GRAPH[module]):
        theirs = _package(target)
        if theirs != mine:
            assert RANK[theirs] > RANK[mine], f"{module} imports {target}: {theirs} is not below {mine}"


def test_no_import_cycles():
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    assert cycles == []


@pytest.mark.parametrize("module", sorted(m for m in MODULES if not m.endswith("__main__")))
def test_nothing_runs_on_import(module):
    """No module calls anything at its top level (registering itself somewhere, say): only definitions."""
    tree = ast.parse(MODULES[module].read_text())
    for node in tree.body:
        if isinstance(node, ast.If) and "__name__" in ast.unparse(node.test):
            continue  # the entry point
        for sub in ast.walk(node) if isinstance(node, (ast.If, ast.Try, ast.With, ast.For)) else [node]:
            if isinstance(sub, ast.Expr) and isinstance(sub.value, ast.Call):
                raise AssertionError(f"{module}, line {sub.lineno}: {ast.unparse(sub)} runs on import")


def test_the_checks_see_the_old_mistakes():
    """The checks above would have caught the registries that imported jobs.compare from nn/."""
    assert RANK["jobs"] < RANK["nn"]  # nn -> jobs points up: refused
    assert "negtransfer.nn.vmtl_registry" not in MODULES and "negtransfer.jobs.clinical" not in MODULES
