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
}


def _imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "taskscope" and len(parts) > 1:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_follow_the_data_flow(package: str) -> None:
    bad = []
    for path in sorted((SRC / package).rglob("*.py")):
        extra = _imported_packages(path) - ALLOWED[package] - {package, "__init__"}
        if extra:
            bad.append(f"{path.relative_to(SRC)} imports {sorted(extra)}")
    assert not bad, "\n".join(bad)
