"""The layout's promises, read from the source: no import cycles between the project's modules,
imports only point down the package table (docs/architecture.md), no module imports another's
underscore names, and the results format's constants are spelled in the results store only."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("search_spaces", "trainables", "study", "analysis")
# Which project packages each package may import (docs/architecture.md).
MAY_IMPORT = {
    "search_spaces": {"search_spaces"},
    "trainables": {"trainables", "search_spaces"},
    "study": {"study", "trainables", "search_spaces", "analysis"},
    "analysis": {"analysis", "trainables", "search_spaces"},
}
# Modules of other packages that ``analysis`` may import: the torch-free ones.
ANALYSIS_MAY_USE = {
    "trainables",
    "trainables.config",
    "trainables.records",
    "trainables.eval_config",
    "search_spaces",
    "search_spaces.published",
    "search_spaces.genotypes",
    "search_spaces.benchmark",
    "search_spaces.benchmark_cache",
}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(module, imported names, line) of every import that runs (``TYPE_CHECKING`` blocks are
    skipped), at module level or inside functions."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[str, list[str], int]] = []

    def visit(node: ast.AST) -> None:
        if _type_checking_block(node):
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, [], node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [alias.name for alias in node.names], node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _edges() -> dict[str, set[str]]:
    """Project module -> the project modules it imports (``from pkg import mod`` -> pkg.mod)."""
    edges: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for module, names, _ in _imports(path):
            if module.split(".")[0] not in PACKAGES:
                continue
            targets = [f"{module}.{n}" for n in names if f"{module}.{n}" in MODULES]
            if len(targets) < len(names) or not names:  # some names are attributes of module
                targets.append(module)
            edges[name].update(t for t in targets if t in MODULES and t != name)
    return edges


def test_no_import_cycles() -> None:
    edges = _edges()
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    cycles: list[list[str]] = []

    def walk(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                walk(target, [*path, target])
        state[node] = 2

    for start in sorted(edges):
        if start not in state:
            walk(start, [start])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_cycle_check_sees_lazy_imports() -> None:
    """The edges include imports inside functions (a lazy import still makes a cycle)."""
    edges = _edges()
    assert "study.execute" in edges["study.cli"]  # imported inside _run only
    assert "search_spaces.nb201" in edges["search_spaces"]  # inside a registry function


def test_imports_point_down_the_package_table() -> None:
    wrong = []
    for name, path in MODULES.items():
        package = name.split(".")[0]
        for module, _, line in _imports(path):
            top = module.split(".")[0]
            if top in PACKAGES and top not in MAY_IMPORT[package]:
                wrong.append(f"{path.relative_to(REPO)}:{line} imports {module}")
            if package == "analysis" and top in ("torch", "ray", "optuna", "torchvision"):
                wrong.append(f"{path.relative_to(REPO)}:{line} imports {module}")
            if package == "analysis" and top in PACKAGES and top != "analysis" and (
                module not in ANALYSIS_MAY_USE
            ):
                wrong.append(f"{path.relative_to(REPO)}:{line} imports {module} (torch)")
    assert not wrong, "\n".join(wrong)


def test_no_module_imports_another_modules_private_names() -> None:
    wrong = [
        f"{path.relative_to(REPO)}:{line} imports {module}.{n}"
        for name, path in MODULES.items()
        for module, names, line in _imports(path)
        if module.split(".")[0] in PACKAGES
        for n in names
        if n.startswith("_")
    ]
    assert not wrong, "\n".join(wrong)


# The literals that spell the results format; only the store may write them.
FORMAT_LITERALS = ('"experiment="', '"part-"', '".parquet"', '"_metadata.json"', '"compacted"')


@pytest.mark.parametrize("literal", FORMAT_LITERALS)
def test_format_constants_are_defined_in_the_store_only(literal: str) -> None:
    holders = [
        str(path.relative_to(REPO))
        for path in MODULES.values()
        if literal in path.read_text()
    ]
    assert holders == ["analysis/store.py"], f"{literal} spelled in {holders}"


def test_key_column_tuples_are_defined_once() -> None:
    """``KEY_COLUMNS`` / ``RESULT_KEY`` / ``TRIAL_KEY`` / ``ALPHA_COLUMNS`` are assigned in the
    store and nowhere else."""
    pattern = re.compile(r"^(KEY_COLUMNS|RESULT_KEY|TRIAL_KEY|ORDER_COLUMNS|ALPHA_COLUMNS)\b.*=",
                         re.MULTILINE)
    holders = {
        str(path.relative_to(REPO)): pattern.findall(path.read_text())
        for path in MODULES.values()
        if pattern.search(path.read_text())
    }
    assert list(holders) == ["analysis/store.py"], holders


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_names_its_public_surface(package: str) -> None:
    """Every name in a package's ``__all__`` resolves (lazily), and nothing else is promised."""
    import importlib

    module = importlib.import_module(package)
    assert module.__all__, f"{package} names no public surface"
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"
    with pytest.raises(AttributeError):
        module.no_such_name  # noqa: B018


def test_the_readme_imports_only_public_names() -> None:
    """Python in the README imports from the packages themselves (their ``__all__``), never from
    their inner modules."""
    import importlib

    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), flags=re.DOTALL)
    imports = [node for block in blocks for node in ast.walk(ast.parse(block))
               if isinstance(node, ast.ImportFrom | ast.Import)]
    assert imports, "the README shows no Python imports"
    for node in imports:
        assert isinstance(node, ast.ImportFrom) and node.module in PACKAGES, ast.unparse(node)
        public = importlib.import_module(node.module).__all__
        for alias in node.names:
            assert alias.name in public, f"{ast.unparse(node)}: {alias.name} is not public"
