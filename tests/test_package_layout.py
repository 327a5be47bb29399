"""The package's layout is its design: each subpackage imports only the ones below it, and no module
imports another that imports it back. Read from the source (every import, those inside functions too),
so a lazy import cannot hide a wrong direction."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO

PACKAGE = REPO / "cityscapes_competition"
# Each subpackage and what it may import besides itself; the top-level modules (cli, __main__) may import all.
ALLOWED = {
    "core": set(),
    "png": {"core"},
    "scoring": {"core", "png"},
    "ingestion": {"core", "png"},
    "synthetic": {"core", "png"},
    "baseline": {"core", "png", "scoring"},
    "organiser": {"core", "png", "scoring", "synthetic"},
    "kit": {"core", "png", "scoring", "ingestion", "synthetic"},
}
HEAVY = {"tensorflow", "keras", "tf_keras", "keras_hub"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in it, as a dotted name inside the package ('' for outside
    modules, given with a leading '!': '!numpy')."""
    module = _module_name(path)
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                name = alias.name
                found.add(
                    name.removeprefix("cityscapes_competition.")
                    if name.startswith("cityscapes_competition.")
                    else "!" + name
                )
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                name = node.module or ""
                if name == "cityscapes_competition" or name.startswith("cityscapes_competition."):
                    base = name.removeprefix("cityscapes_competition").lstrip(".")
                    found.update(f"{base}.{a.name}".lstrip(".") for a in node.names)
                else:
                    found.add("!" + name)
                continue
            base = module.split(".") if module else []
            base = base if is_package else base[:-1]
            base = base[: len(base) - (node.level - 1)]
            if node.module:
                found.add(".".join([*base, node.module]))
            else:
                found.update(".".join([*base, alias.name]) for alias in node.names)
    return found


def _all_imports() -> dict[str, set[str]]:
    return {_module_name(path): _imports(path) for path in sorted(PACKAGE.rglob("*.py"))}


def _subpackage(module: str) -> str:
    return module.split(".")[0]


def test_each_subpackage_imports_only_the_ones_below_it() -> None:
    wrong = []
    for module, imported in _all_imports().items():
        if "." not in module and module not in ALLOWED:
            continue  # the top: cli, __main__, the package itself
        own = _subpackage(module)
        for target in imported:
            if target.startswith("!") or not target:
                continue
            other = _subpackage(target)
            if other != own and other not in ALLOWED[own]:
                wrong.append(f"{module} imports {target}")
    assert not wrong, "\n".join(sorted(wrong))


def test_nothing_imports_the_command_line() -> None:
    importers = [module for module, imported in _all_imports().items() if "cli" in imported and module != "__main__"]
    assert not importers


@pytest.mark.parametrize("subpackage", ["core", "png", "scoring", "synthetic"])
def test_the_light_subpackages_never_import_tensorflow(subpackage: str) -> None:
    heavy = [
        f"{module} imports {target[1:]}"
        for module, imported in _all_imports().items()
        if _subpackage(module) == subpackage
        for target in imported
        if target.startswith("!") and target[1:].split(".")[0] in HEAVY
    ]
    assert not heavy


def test_no_module_imports_itself_back() -> None:
    """No cycle among modules, counting imports inside functions (a lazy import is still a dependency)."""
    graph = _all_imports()
    modules = set(graph)
    edges = {m: {t for t in graph[m] if t in modules and t != m} for m in graph}
    # a 'from .x import name' of a submodule is recorded as 'x.name': keep the module part
    for module, targets in graph.items():
        edges[module] |= {t.rpartition(".")[0] for t in targets if t not in modules and t.rpartition(".")[0] in modules}
        edges[module].discard(module)
        edges[module] -= {p for p in edges[module] if module.startswith(p + ".")}  # a module's own packages
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)


def test_the_scorer_runs_without_loading_tensorflow(tiny_case) -> None:
    """What the scoring program imports, in a fresh process: TensorFlow stays out (its import alone takes seconds)."""
    out = tiny_case.ref.parent / "out"
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from cityscapes_competition.scoring.evaluation import evaluate\n"
        "from cityscapes_competition.scoring.score_files import write_score_files\n"
        f"scores = evaluate(Path({str(tiny_case.ref)!r}), Path({str(tiny_case.res)!r}), 1)\n"
        f"write_score_files(Path({str(out)!r}), scores)\n"
        "heavy = sorted(name for name in sys.modules if name.split('.')[0] in ('tensorflow', 'keras'))\n"
        "assert not heavy, heavy[:5]\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=REPO)
