"""No import circles: every module imports alone, and the module graph is acyclic (EXAMPLES.md section 9)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "auditkit"


def module_names() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


MODULES = set(module_names())


def _target(node: ast.Import | ast.ImportFrom) -> list[str]:
    """The auditkit modules an import statement loads (a submodule when ``from pkg import submodule``)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "auditkit"]
    if node.level or not node.module or node.module.split(".")[0] != "auditkit":
        return []
    return [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module for a in node.names]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(module: str) -> tuple[set[str], set[str]]:
    """(module-level, function-level) auditkit imports of ``module``; TYPE_CHECKING blocks are not imports."""
    path = PACKAGE.parent / Path(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top: set[str] = set()
    inner: set[str] = set()

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child, in_function)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            (inner if in_function else top).update(t for t in _target(node) if t != module)
        function = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(tree, False)
    return top, inner


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := dfs(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := dfs(node)):
            return found
    return None


def test_every_module_imports_alone_in_a_fresh_interpreter():
    # One interpreter; before each module every auditkit module is forgotten, so each is imported
    # alone, as a fresh interpreter would (third-party packages stay loaded, to keep this fast).
    script = (
        "import importlib, sys, traceback\n"
        "failed = []\n"
        f"for name in {sorted(MODULES - {'auditkit.__main__'})!r}:  # __main__ runs the CLI\n"
        "    for loaded in [m for m in sys.modules if m == 'auditkit' or m.startswith('auditkit.')]:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception:\n"
        "        failed.append(name + ': ' + traceback.format_exc().strip().splitlines()[-1])\n"
        "print('\\n'.join(failed))\n"
        "sys.exit(1 if failed else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_core_modules_import_alone_in_separate_interpreters():
    core = ["auditkit.config", "auditkit.predictions", "auditkit.version", "auditkit.results", "auditkit.registry"]
    for name in core:
        proc = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True, cwd=ROOT)
        assert proc.returncode == 0, f"{name}: {proc.stderr.strip().splitlines()[-1:]}"


def test_module_level_imports_form_no_cycle():
    graph = {m: imports(m)[0] for m in MODULES}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_no_function_level_import_dodges_a_cycle():
    """An import moved into a function must not be what keeps two modules from importing each other."""
    graph = {m: imports(m)[0] | imports(m)[1] for m in MODULES}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_torch_free_modules_stay_torch_free():
    for name in ("auditkit.config", "auditkit.predictions", "auditkit.results", "auditkit.version"):
        script = f"import sys, {name}; sys.exit('torch' in sys.modules)"
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
        assert proc.returncode == 0, f"{name} imports torch"


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
