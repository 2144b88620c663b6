"""The layers are real: translation is pure, and the package has no import cycle.

Each ``translate/`` module is imported in a fresh interpreter, and nothing of HTTP, sockets, metrics or
settings may come along with it. The cycle check walks the package's own ``import`` statements (module
level, where a cycle bites), so a new cycle fails here before it fails at start-up.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "falcon_ollama"
TRANSLATORS = sorted(
    f"falcon_ollama.translate.{p.stem}" for p in (PACKAGE / "translate").glob("*.py") if p.stem != "__init__"
)
FORBIDDEN = (
    "falcon",
    "aiohttp",
    "prometheus_client",
    "uvicorn",
    "falcon_ollama.upstream",
    "falcon_ollama.settings",
    "falcon_ollama.catalog",
    "falcon_ollama.access",
    "falcon_ollama.resources",
)


@pytest.mark.parametrize("module", TRANSLATORS)
def test_translation_module_imports_nothing_impure(module: str) -> None:
    probe = (
        f"import sys, {module}\n"
        f"bad = sorted(m for m in sys.modules if m in {FORBIDDEN!r}"
        " or m.startswith(('falcon.', 'aiohttp.')))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"{module} pulls in {result.stdout.strip()}"


def _module_imports(path: Path, name: str) -> set[str]:
    """The falcon_ollama modules ``path`` imports at module level, ``if TYPE_CHECKING:`` blocks included
    (a cycle that only the type checker follows is still two modules that each need the other)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    body = list(tree.body)
    body += [n for node in tree.body if isinstance(node, ast.If) for n in node.body]
    for node in body:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("falcon_ollama")}
        elif (
            isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("falcon_")
        ):
            module = node.module or ""
            found.add(module)
            found |= {f"{module}.{a.name}" for a in node.names}
    return found


def _graph() -> dict[str, set[str]]:
    modules: dict[str, Path] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return {name: _module_imports(path, name) & modules.keys() - {name} for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle in ``graph`` as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_the_package_has_no_import_cycle() -> None:
    graph = _graph()
    assert "falcon_ollama.settings" in graph["falcon_ollama.app"], "the walk must see the package's imports"
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
        ({"a": {"b"}, "b": {"a"}}, ["a", "b", "a"]),
        ({"a": {"b"}, "b": {"c"}, "c": {"b"}}, ["b", "c", "b"]),
    ],
)
def test_the_cycle_walk(graph: dict[str, set[str]], expected: list[str] | None) -> None:
    assert find_cycle(graph) == expected
