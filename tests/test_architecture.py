"""The package layout is the data flow: check the import rules of docs/DESIGN.md on the source text."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "taskscope"

# package -> taskscope packages it may import
ALLOWED = {
    "common": set(),
    "tasks": set(),
    "similarity": set(),
    "models": {"common", "tasks"},
    "train": {"common", "tasks", "models"},
    "represent": {"common", "tasks", "models"},
    "evaluate": {"common", "tasks", "models", "train", "represent"},
    "analysis": {"common", "tasks", "models", "train", "represent", "similarity", "evaluate"},
    "report": {"common", "analysis", "tasks"},
    # the engine: everything above, but never a study kind (it reaches them through the study registry only)
    "pipeline": {"common", "tasks", "models", "train", "represent", "similarity", "analysis", "evaluate", "report"},
    # the study kinds: what the engine may import, and the engine
    "studies": {"common", "tasks", "models", "train", "represent", "similarity", "analysis", "evaluate", "report",
                "pipeline"},
}


# leaf modules at the package root that every package may import (they import nothing of ours)
LEAF_MODULES = {"registry"}


def _module_parts(path: Path) -> list[str]:
    """``src/taskscope/tasks/sni.py`` -> ``["taskscope", "tasks", "sni"]`` (a package's ``__init__`` is the package)."""
    parts = ["taskscope", *path.relative_to(SRC).with_suffix("").parts]
    return parts[:-1] if parts[-1] == "__init__" else parts


def _absolute(node: ast.ImportFrom, path: Path) -> str:
    """The absolute module a (possibly relative) ``from ... import`` names."""
    if node.level == 0:
        return node.module or ""
    package = _module_parts(path) if path.name == "__init__.py" else _module_parts(path)[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imported_packages(path: Path) -> set[str]:
    """Every first-level taskscope package or leaf module the file imports, relative imports resolved."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node, path)
            # `from taskscope import x` and `from .. import x` import the names as modules
            names = [f"{module}.{alias.name}" for alias in node.names] if module == "taskscope" else [module]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "taskscope" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_relative_imports_are_resolved() -> None:
    """A relative import out of similarity/ into pipeline/ must be seen (it once slipped through)."""
    planted = SRC / "similarity" / "measures" / "planted_probe.py"
    source = "from ...pipeline import run\nfrom .. import kernels\n"
    tree_path = planted  # parse only; nothing is written into the package
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            found.add(_absolute(node, tree_path).split(".")[1])
    assert found == {"pipeline", "similarity"}


def test_leaf_modules_import_nothing_of_ours() -> None:
    for leaf in sorted(LEAF_MODULES):
        assert _imported_packages(SRC / f"{leaf}.py") == set(), f"{leaf}.py must stay a leaf"


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_follow_the_data_flow(package: str) -> None:
    bad = []
    for path in sorted((SRC / package).rglob("*.py")):
        extra = _imported_packages(path) - ALLOWED[package] - LEAF_MODULES - {package, "__init__"}
        if extra:
            bad.append(f"{path.relative_to(SRC)} imports {sorted(extra)}")
    assert not bad, "\n".join(bad)


def test_the_engine_reaches_the_study_kinds_only_through_the_registry() -> None:
    """``pipeline`` imports no study package; the registry names the built-in kinds by module path, each a
    package of ``taskscope.studies`` that registers the kind of the same id when imported."""
    import subprocess
    import sys

    from taskscope.pipeline.kinds import STUDIES

    assert all(module.startswith("taskscope.studies.") for module in STUDIES.builtin_modules)
    assert [module.rsplit(".", 1)[1] for module in STUDIES.builtin_modules] == ["mossa", "transfer"]
    assert set(STUDIES.names()) >= {"mossa", "transfer"}
    code = ("import sys, taskscope.pipeline, taskscope.pipeline.run; "
            "print(sorted(m for m in sys.modules if m.startswith('taskscope.studies')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
