"""The package layout (docs/design.md#architecture): no import cycles, dependencies one way only,
and the entry points light enough to import on their own."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bench", "attacks", "defenses")
# layer of each part; a module may import its own layer or lower ones. Same-layer packages do not
# import each other, except inside the bottom layer (core, attacks and defenses build on each other)
LAYERS = {"bench.core": 0, "attacks": 0, "defenses": 0, "bench.zoo": 1, "bench.submissions": 2, "bench.eval": 2,
          "bench.reports": 3, "bench.experiments": 4, "bench.cli": 5, "bench.perf": 5, "bench.__main__": 6}


def module_files() -> dict[str, Path]:
    """Dotted name -> file, for every module of the project's packages."""
    out = {}
    for pkg in PACKAGES:
        for f in (ROOT / pkg).rglob("*.py"):
            parts = f.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of the nodes inside ``if TYPE_CHECKING:`` blocks (never executed)."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            skip |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return skip


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports anywhere in its code (functions included)."""
    mods = module_files()
    graph = {}
    for name, f in mods.items():
        tree = ast.parse(f.read_text())
        skip = _type_checking_only(tree)
        found = set()
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                for a in node.names:  # `from pkg import module` imports the module
                    found.add(f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in mods else node.module)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
        graph[name] = {m for m in found if m in mods and m != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while not comp or comp[-1] != v:
                comp.append(stack.pop())
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def part(module: str) -> str | None:
    """The layered part a module belongs to (``None``: the ``bench`` facade itself)."""
    return next((p for p in sorted(LAYERS, key=len, reverse=True) if module == p or module.startswith(p + ".")), None)


def test_the_graph_sees_imports_inside_functions_but_not_type_checking_blocks(tmp_path: Path) -> None:
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import a\ndef f():\n    import b\n")
    skipped = _type_checking_only(tree)
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) and id(n) not in skipped for a in n.names}
    assert names == {"b"}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_inside_the_project() -> None:
    found = cycles(import_graph())
    assert found == [], f"import cycles: {found}"


def test_dependencies_run_one_way() -> None:
    wrong = []
    for a, targets in import_graph().items():
        pa = part(a)
        if a == "bench":
            continue  # the public API facade (lazy) may name anything
        assert pa is not None, f"{a}: a module outside the layered packages ({sorted(LAYERS)}): add it to a layer"
        for b in targets:
            pb = part(b)
            if b == "bench":
                wrong.append(f"{a} imports the `bench` facade (import the module that defines the name)")
            elif LAYERS[pb] > LAYERS[pa] or (LAYERS[pb] == LAYERS[pa] > 0 and pb != pa):
                wrong.append(f"{a} ({pa}, layer {LAYERS[pa]}) imports {b} ({pb}, layer {LAYERS[pb]})")
    assert wrong == [], "\n".join(sorted(wrong))


@pytest.mark.parametrize("code", [
    "import attacks",
    "import defenses",
    "import bench; assert 'jax' not in sys.modules, 'import bench pulls in JAX'",
    "import bench.cli.main; assert 'jax' not in sys.modules, 'the CLI module pulls in JAX before a command runs'",
    "from bench import build_defense; assert repr(build_defense('jpeg(quality=75)')) == 'jpeg(quality=75)'",
])
def test_entry_points_import_alone(code: str) -> None:
    out = subprocess.run([sys.executable, "-c", f"import sys\n{code}"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]


def test_shieldbench_help_runs_without_importing_jax() -> None:
    code = ("import runpy, sys\nsys.argv = ['shieldbench', '--help']\ntry:\n    runpy.run_module('bench', "
            "run_name='__main__')\nexcept SystemExit:\n    pass\nassert 'jax' not in sys.modules, 'shieldbench --help imports JAX'")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and "usage: shieldbench" in out.stdout, out.stderr[-2000:]
