"""The package's import graph, read from the source with ``ast``: module-level imports and
the lazy ones inside functions alike (a lazy import that breaks a cycle is still a cycle).

Fails on any cycle between files, any cycle between top-level parts of the package
(``nasseg.store``, ``nasseg.search``, ``nasseg.ablation``, ``nasseg.report``, the root
modules such as ``nasseg.versions``), and on the store importing anything above the
foundation modules (it is read by search, ablation, report and the command line).

Imports are made at module level. One inside a function says why on its own line(s), as
``# lazy: <reason>``: an optional dependency (``# lazy: ray is optional (extra "ray")``),
one that takes seconds and only some paths need (monai), the start of the command line
(``# lazy: CLI startup (torch)``: ``nasseg --help`` imports none of torch, pandas, scipy or
plotly, tested below), or a module that commands which only read (``nasseg pareto``,
``nasseg report``, ``nasseg stats``) import without torch. An import inside a function
without such a line fails.
"""
from __future__ import annotations

import ast
import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nasseg"

STORE_MAY_IMPORT = {"nasseg.errors", "nasseg.configio", "nasseg.jsonsafe"}
"""What the store may import from the rest of nasseg: nothing above the config foundation."""


def module_files(root: Path) -> dict[str, Path]:
    """``{dotted module name: file}`` for every ``.py`` file under package folder ``root``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _targets(module: str, node: ast.Import | ast.ImportFrom, is_pkg: bool, known: dict[str, Path]) -> list[str]:
    names = []
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            here = module.split(".") if is_pkg else module.split(".")[:-1]
            here = here[:len(here) - (node.level - 1)]
            base = ".".join(here + ([base] if base else []))
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
    out = []
    for name in names:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name:
            out.append(name)
    return out


def import_graph(root: Path) -> dict[str, dict[str, int]]:
    """``{importer: {imported: first line}}`` between the modules of package folder ``root``,
    counting imports at module level and inside functions; ``if TYPE_CHECKING:`` blocks
    (never executed) are left out."""
    known = module_files(root)
    graph: dict[str, dict[str, int]] = {m: {} for m in known}
    for module, path in known.items():
        tree = ast.parse(path.read_text(), str(path))
        stack: list[ast.AST] = [tree]
        while stack:
            node = stack.pop()
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
                stack.extend(node.orelse)
                continue
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in _targets(module, node, path.name == "__init__.py", known):
                    if target != module:
                        graph[module].setdefault(target, node.lineno)
            stack.extend(ast.iter_child_nodes(node))
    return graph


def part(module: str) -> str:
    """The top-level part of the package a module belongs to (``nasseg.store.read`` ->
    ``nasseg.store``; a root module is its own part)."""
    return ".".join(module.split(".")[:2])


def cycles(graph: dict[str, dict[str, int] | set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(graph.get(start, ())))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph.get(child, ()))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    comp.append(top)
                    if top == node:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def part_graph(graph: dict[str, dict[str, int]]) -> dict[str, dict[str, str]]:
    """``{part: {imported part: one importing 'file:line' as evidence}}``; a package's
    ``__init__`` (``nasseg`` itself) is not a part."""
    out: dict[str, dict[str, str]] = {}
    for src, targets in graph.items():
        for dst, line in targets.items():
            a, b = part(src), part(dst)
            if a != b and "." in a and "." in b:
                out.setdefault(a, {}).setdefault(b, f"{src} -> {dst} (line {line})")
    return out


def _describe(comps: list[list[str]], edges: dict[str, dict]) -> str:
    lines = []
    for comp in comps:
        lines.append(" <-> ".join(comp))
        lines += [f"    {a} -> {b}: {edges[a][b]}" for a in comp for b in edges.get(a, {}) if b in comp]
    return "\n".join(lines)


GRAPH = import_graph(PACKAGE)


def test_no_cycle_between_files():
    found = cycles(GRAPH)
    assert not found, "import cycles between files (value = first line of the import):\n" + _describe(found, GRAPH)


def test_no_cycle_between_parts_of_the_package():
    parts = part_graph(GRAPH)
    found = cycles(parts)
    assert not found, "import cycles between parts of nasseg:\n" + _describe(found, parts)


def test_the_store_imports_nothing_above_it():
    upward = {f"{src} -> {dst} (line {line})" for src, targets in GRAPH.items() if part(src) == "nasseg.store"
              for dst, line in targets.items() if part(dst) != "nasseg.store" and dst not in STORE_MAY_IMPORT}
    assert not upward, "the store imports upward: " + "; ".join(sorted(upward))


def test_the_reader_sees_lazy_imports_and_cycles(tmp_path):
    """The checks above can fail: a cycle made only by an import inside a function, and one
    between two parts through their files, are both found."""
    pkg = tmp_path / "pkg"
    (pkg / "a").mkdir(parents=True)
    (pkg / "b").mkdir()
    for init in (pkg, pkg / "a", pkg / "b"):
        (init / "__init__.py").write_text("")
    (pkg / "a" / "x.py").write_text("from pkg.b import y\n")
    (pkg / "b" / "y.py").write_text("def f():\n    from ..a.x import g\n")
    (pkg / "b" / "z.py").write_text("import typing\nif typing.TYPE_CHECKING:\n    import pkg.a.x\n")
    graph = import_graph(pkg)
    assert graph["pkg.b.y"] == {"pkg.a.x": 2} and graph["pkg.b.z"] == {}
    assert cycles(graph) == [["pkg.a.x", "pkg.b.y"]]
    assert cycles(part_graph(graph)) == [["pkg.a", "pkg.b"]]


@pytest.mark.parametrize("module", ["nasseg.store.study", "nasseg.search.study", "nasseg.ablation.config"])
def test_the_study_files_share_one_base(module):
    """The store finds a study's storage through the base both study kinds extend."""
    assert "nasseg.store.studyfile" in GRAPH[module]


LAZY_REASON = re.compile(r"#\s*lazy:\s*\S")
"""The comment an import inside a function carries: ``# lazy: <reason>``."""

PENDING: dict[str, int] = {}
"""Files other work on issue 25 was changing when the rule came in, and how many imports
inside their functions had no reason then: their number may only go down, and an entry
must go once it is 0 (the test says so)."""


def lazy_imports(root: Path) -> list[tuple[str, int, str, bool]]:
    """``(file, line, statement, has a reason)`` for every import inside a function (at
    any depth: methods and nested functions too) of the package folder ``root``; the
    reason is a ``# lazy: ...`` comment on any line of the statement."""
    out = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text()
        comments: dict[int, str] = {}
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.COMMENT:
                comments[tok.start[0]] = tok.string
        lines = text.splitlines()
        name = str(path.relative_to(root.parent))
        for fn in ast.walk(ast.parse(text, name)):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    said = any(LAZY_REASON.search(comments.get(n, ""))
                               for n in range(node.lineno, node.end_lineno + 1))
                    out.append((name, node.lineno, lines[node.lineno - 1].strip(), said))
    return sorted(set(out))  # a nested function's import is seen from both functions


def test_every_import_inside_a_function_says_why_it_is_lazy():
    found = lazy_imports(PACKAGE)
    missing = [f"{f}:{line}: {stmt}" for f, line, stmt, said in found if not said and f not in PENDING]
    assert not missing, ("imports inside functions without a `# lazy: <reason>` comment (move them to "
                         "module level, or say why they must wait):\n" + "\n".join(missing))
    for f, allowed in PENDING.items():
        n = sum(1 for g, _, _, said in found if g == f and not said)
        assert 0 < n <= allowed, (f"{f}: {n} imports inside functions without a reason (PENDING allows "
                                  f"{allowed}; at 0 remove its entry)")


def test_the_lazy_reader_sees_every_import_inside_a_function(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "m.py").write_text(
        "import os\n"
        "def f():\n    import json\n"
        "def g():\n    import ray  # lazy: ray is optional\n"
        "class C:\n    def h(self):\n        def inner():\n            from x import (  # lazy: x is slow\n"
        "                a,\n            )\n        from y import b  # lazy:\n")
    assert lazy_imports(pkg) == [("pkg/m.py", 3, "import json", False),
                                 ("pkg/m.py", 5, "import ray  # lazy: ray is optional", True),
                                 ("pkg/m.py", 9, "from x import (  # lazy: x is slow", True),
                                 ("pkg/m.py", 12, "from y import b  # lazy:", False)]


def test_the_command_line_starts_without_torch_pandas_scipy_or_plotly():
    """What ``nasseg --help`` imports (building every sub-command's parser): the heavy
    libraries stay behind the commands that use them (the ``CLI startup`` reasons)."""
    code = ("import sys; from nasseg.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'pandas', 'scipy', 'plotly', 'ray', 'monai', 'nnunetv2') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert out.stdout.strip() == "[]", out.stdout
