"""The library's layers point one way: no import cycles, no private names across modules.

Every module of ``src/circuitscope`` is parsed with ``ast`` (nothing is imported). Two rules:

* the top-level imports (those run when a module is imported) form no cycle;
* no module imports a private name (``_x``) from another module: what is shared is public.

The checker is a plain function over ``{module name: source}``, tested on small fake module
sets first, so that a broken checker cannot pass the real library silently.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def library_sources(root: Path = SRC, package: str = "circuitscope") -> dict[str, tuple[str, bool]]:
    """``{dotted module name: (source, is a package __init__)}`` for every module of ``package``."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        out[".".join(parts)] = (path.read_text(encoding="utf-8"), is_package)
    return out


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _top_level(tree: ast.Module):
    """The import statements that run at import time: module level, and inside module-level
    ``if``/``try`` blocks (not inside functions or classes)."""
    pending = list(tree.body)
    while pending:
        node = pending.pop(0)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.If, ast.Try)):
            pending[:0] = [*node.body, *getattr(node, "orelse", []), *getattr(node, "finalbody", []),
                           *(s for h in getattr(node, "handlers", []) for s in h.body)]  # fmt: skip


def import_problems(modules: dict[str, tuple[str, bool]]) -> tuple[list[list[str]], list[str]]:
    """``(cycles, private imports)`` among ``modules`` (as :func:`library_sources` gives them).

    A cycle is a list of module names that import each other at the top level (a strongly
    connected component of more than one module, or a module importing itself); a private
    import reads ``"a.b imports _name from a.c"``. ``from package import submodule`` counts as
    importing the submodule; dunder names (``__version__``) are not private.
    """
    edges: dict[str, set[str]] = {name: set() for name in modules}
    private: list[str] = []
    for name, (source, is_package) in modules.items():
        tree = ast.parse(source)
        top = {id(node) for node in _top_level(tree)}
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.ImportFrom):
                base = _absolute(name, is_package, node)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    if sub in modules:
                        targets.append(sub)
                    elif base in modules:
                        targets.append(base)
                        if alias.name.startswith("_") and not alias.name.endswith("__") and base != name:
                            private.append(f"{name} imports {alias.name} from {base}")
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names if alias.name in modules]
            if id(node) in top:
                edges[name].update(targets)
    return _cycles(edges), private


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node, or with a self-loop (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
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
            if len(component) > 1 or v in edges.get(v, ()):
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


# -- the checker, on planted violations ---------------------------------------------------------
def _fake(**sources: str) -> dict[str, tuple[str, bool]]:
    return {name.replace("__", "."): (source, name.endswith("pkg")) for name, source in sources.items()}


def test_the_checker_finds_a_planted_cycle():
    modules = _fake(pkg="", pkg__a="from .b import f\n", pkg__b="from .c import g\n", pkg__c="from .a import h\n")
    cycles, private = import_problems(modules)
    assert cycles == [["pkg.a", "pkg.b", "pkg.c"]] and private == []


def test_the_checker_ignores_a_cycle_broken_by_a_function_local_import():
    modules = _fake(pkg="", pkg__a="from .b import f\n", pkg__b="def g():\n    from .a import h\n")
    assert import_problems(modules) == ([], [])


def test_the_checker_finds_a_cycle_through_a_package_and_a_conditional_import():
    modules = _fake(pkg="from . import a\n", pkg__a="try:\n    import pkg\nexcept ImportError:\n    pass\n")
    assert import_problems(modules)[0] == [["pkg", "pkg.a"]]


def test_the_checker_finds_a_planted_private_import_even_inside_a_function():
    modules = _fake(pkg="", pkg__a="def f():\n    from .b import _secret\n", pkg__b="_secret = 1\n__version__ = 1\n",
                    pkg__c="from .b import __version__\nfrom . import a\n")  # fmt: skip
    cycles, private = import_problems(modules)
    assert cycles == [] and private == ["pkg.a imports _secret from pkg.b"]


# -- the library ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def problems():
    modules = library_sources()
    assert "circuitscope.core.hooks" in modules and "circuitscope.methods.sae.training" in modules
    return import_problems(modules)


def test_the_library_has_no_import_cycle(problems):
    cycles, _ = problems
    assert cycles == [], f"top-level import cycles: {cycles}"


def test_no_module_imports_a_private_name_from_another(problems):
    _, private = problems
    assert private == [], "\n".join(private)
