"""The import graph of the project's packages: no cycles among knowledge/ modules, no upward
imports between layers.

Usage: python -m tests.import_graph [ROOT]

Reads every module's imports with ast (imports inside functions included: a deferred import
is still a dependency, only a hidden one), prints each cycle and each upward import, and exits
1 when there is any. The layers, top to bottom:

- rag_site: settings, URLs, the WSGI/ASGI and Celery entry points;
- knowledge surfaces: pages, API endpoints, admin, tasks, commands, signal handlers;
- knowledge core: the services and models the surfaces call;
- generation, then retrieval: plain libraries (generation imports from retrieval only its
  types and its language analysis).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable
from pathlib import Path

PACKAGES = ("rag_site", "knowledge", "generation", "retrieval")
SURFACES = (
    "knowledge.urls",
    "knowledge.api_urls",
    "knowledge.views",
    "knowledge.chat_views",
    "knowledge.api",
    "knowledge.openai_api",
    "knowledge.admin",
    "knowledge.tasks",
    "knowledge.signals",
    "knowledge.apps",
    "knowledge.middleware",
    "knowledge.management",
    "knowledge.templatetags",
)
GENERATION_MAY_IMPORT = ("retrieval.types", "retrieval.text", "retrieval.tokenize")
LAYERS = ("rag_site", "surface", "core", "generation", "retrieval")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, module: str, known: set[str]) -> set[str]:
    """The project modules that the module at path imports, wherever the import statement is."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from . import x`
    return {name for name in found if name in known and name != module}


def graph(root: Path) -> dict[str, set[str]]:
    """Each project module and the project modules it imports."""
    paths = {
        module_name(path, root): path
        for package in PACKAGES
        for path in (root / package).rglob("*.py")
        if "migrations" not in path.parts
    }
    known = set(paths)
    return {module: imports_of(path, module, known) for module, path in paths.items()}


def layer(module: str) -> str:
    top = module.split(".")[0]
    if top != "knowledge":
        return top
    return "surface" if module.startswith(SURFACES) else "core"


def may_use(target: str) -> bool:
    """Whether generation/ may import the module target."""
    return layer(target) != "retrieval" or target.startswith(GENERATION_MAY_IMPORT)


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    problems = []
    for module, imported in sorted(edges.items()):
        for target in sorted(imported):
            if LAYERS.index(layer(target)) < LAYERS.index(layer(module)):
                problems.append(f"{module} imports {target} from a layer above it")
            elif layer(module) == "generation" and not may_use(target):
                problems.append(f"{module} imports {target}: generation takes only types and text")
    return problems


def cycles(edges: dict[str, set[str]], within: str = "knowledge") -> list[list[str]]:
    """The import cycles among the modules of one package (strongly connected components of
    more than one module, by Tarjan's algorithm), each as its modules, sorted."""
    nodes = sorted(m for m in edges if m.split(".")[0] == within)
    inside = {
        m: sorted(t for t in edges[m] if t in edges and t.split(".")[0] == within) for m in nodes
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in inside[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in nodes:
        if node not in index:
            visit(node)
    return sorted(found)


def report(root: Path) -> list[str]:
    edges = graph(root)
    problems = [f"cycle: {' <-> '.join(cycle)}" for cycle in cycles(edges)]
    return problems + upward_imports(edges)


def main(argv: Iterable[str]) -> int:
    args = list(argv)
    root = Path(args[0]) if args else Path(__file__).resolve().parent.parent
    problems = report(root)
    for problem in problems:
        print(problem)
    print(f"{len(problems)} problem(s) in the import graph of {', '.join(PACKAGES)}.")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
