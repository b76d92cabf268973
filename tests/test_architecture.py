"""The library's layers point one way: no import cycles, no private names across modules.

Every module of ``src/circuitscope`` is parsed with ``ast`` (nothing is imported). Three rules:

* the top-level imports (those run when a module is imported) form no cycle;
* no module imports a private name (``_x``) from another module: what is shared is public;
* no import, even inside a function, reaches a higher layer: core <- methods <- figures <- tools
  (the folders ``circuitscope/core``, ``methods``, ``figures``, ``tools``); the exercise checks
  (``circuitscope/checks``) stand on core and methods and draw nothing.

The checker is a plain function over ``{module name: source}``, tested on small fake module
sets first, so that a broken checker cannot pass the real library silently.
"""

from __future__ import annotations

import ast
import re
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


#: Which layers a module of each layer may import from (its own included).
ALLOWED = {
    "core": {"core"},
    "methods": {"core", "methods"},
    "figures": {"core", "methods", "figures"},
    "tools": {"core", "methods", "figures", "tools"},
    "checks": {"core", "methods", "checks"},
}


def layer_of(module: str) -> str | None:
    """``"circuitscope.methods.sae.model"`` -> ``"methods"``; the package itself and ``data`` -> None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else None


def layer_violations(modules: dict[str, tuple[str, bool]]) -> list[str]:
    """Every import (top level or inside a function) from a layer the importer may not use, as
    ``"a.core.x imports a.methods.y (core may import core)"``."""
    found = []
    for name, (source, is_package) in modules.items():
        mine = layer_of(name)
        if mine is None:
            continue
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom):
                base = _absolute(name, is_package, node)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            for target in targets:
                theirs = layer_of(target) if target.split(".")[0] == name.split(".")[0] else None
                if theirs is not None and theirs not in ALLOWED[mine]:
                    found.append(f"{name} imports {target} ({mine} may import {', '.join(sorted(ALLOWED[mine]))})")
    return sorted(set(found))


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


def test_the_checker_finds_an_upward_import_even_inside_a_function():
    modules = _fake(pkg="", pkg__core="", pkg__core__a="def f():\n    from ..figures import b\n",
                    pkg__figures="", pkg__figures__b="from ..core import a\n",
                    pkg__methods="", pkg__methods__c="import pkg.tools.d\n", pkg__tools="", pkg__tools__d="")  # fmt: skip
    modules = {name: (src, name.count(".") < 2) for name, (src, _) in modules.items()}
    assert layer_violations(modules) == [
        "pkg.core.a imports pkg.figures.b (core may import core)",
        "pkg.methods.c imports pkg.tools.d (methods may import core, methods)",
    ]


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


def test_every_module_lives_in_a_layer():
    loose = [name for name in library_sources() if name.count(".") == 1 and layer_of(name) is None
             and name not in ("circuitscope.data",)]  # fmt: skip
    assert loose == [], f"modules outside core/methods/figures/tools/checks: {loose}"


def test_no_module_imports_from_a_higher_layer():
    problems = layer_violations(library_sources())
    assert problems == [], "\n".join(problems)


def test_architecture_md_names_every_module_and_only_files_that_exist():
    """ARCHITECTURE.md is the newcomer's map: every module of the library is named in it, and
    every path it names (``methods/optvis/objectives.py``, ``tests/test_optvis.py``) exists."""
    root = SRC.parent
    text = (root / "ARCHITECTURE.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`([\w./]+\.py)`", text))
    package = SRC / "circuitscope"
    bases = [root, SRC, package, *(d for d in package.rglob("*") if d.is_dir() and d.name != "__pycache__")]
    missing = [p for p in named if "chN" not in p and not any((base / p).exists() for base in bases)]
    assert missing == [], f"ARCHITECTURE.md names files that do not exist: {missing}"
    stems = set(re.findall(r"\b(\w+)(?:\.py|/)?\b", text))
    unnamed = [str(p.relative_to(package)) for p in package.rglob("*.py")
               if p.stem != "__init__" and p.stem not in stems]  # fmt: skip
    assert unnamed == [], f"modules ARCHITECTURE.md does not mention: {unnamed}"
