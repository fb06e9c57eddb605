"""Packaging: package-data patterns match shipped files; a user install carries no test tools; extras exist."""

from __future__ import annotations

import re
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10: the TOML reader pip vendors
    from pip._vendor import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
TEST_TOOLS = ("pytest", "pytest-xdist", "hypothesis")


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[<>=!~; ]", req, maxsplit=1)[0].lower() for req in requirements}


def test_package_data_patterns_match_real_files() -> None:
    for package, patterns in PYPROJECT["tool"]["setuptools"]["package-data"].items():
        folder = ROOT / "src" / package.replace(".", "/")
        for pattern in patterns:
            assert list(folder.glob(pattern)), f"package-data {package}: {pattern!r} matches no file in {folder}"


def test_core_dependencies_carry_no_test_tools_or_cluster_runtime() -> None:
    core = _names(PYPROJECT["project"]["dependencies"])
    assert not core & {*TEST_TOOLS, "ray", "tensorboard"}
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert {*TEST_TOOLS} <= _names(extras["dev"]) and "ray" not in _names(extras["dev"])
    assert "ray" in _names(extras["ray"]) and "tensorboard" in _names(extras["tensorboard"])


def test_make_test_installs_every_extra_the_suite_needs() -> None:
    makefile = (ROOT / "Makefile").read_text()
    extras = set(re.search(r"^EXTRAS \?= (.+)$", makefile, re.M).group(1).split(","))
    assert {"dev", "embedded", "ray", "tensorboard"} <= extras
    assert extras <= set(PYPROJECT["project"]["optional-dependencies"])


def test_license_is_an_spdx_string_with_its_file() -> None:
    project = PYPROJECT["project"]
    assert project["license"] == "Apache-2.0" and (ROOT / project["license-files"][0]).is_file()


def test_the_wheel_ships_every_report_template_and_they_load(tmp_path: Path) -> None:
    """A wheel built from a copy of the project holds every file of report/templates; Jinja loads them all."""
    import shutil
    import subprocess
    import sys
    import zipfile

    project = tmp_path / "project"
    shutil.copytree(ROOT / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, project / name)
    subprocess.run([sys.executable, "-c", "import sys; from setuptools import build_meta; "
                    "build_meta.build_wheel(sys.argv[1])", str(tmp_path / "dist")],
                   cwd=project, check=True, capture_output=True)
    wheel, = (tmp_path / "dist").glob("*.whl")
    shipped = {n for n in zipfile.ZipFile(wheel).namelist() if "/report/templates/" in n}
    folder = ROOT / "src" / "taskscope" / "report" / "templates"
    expected = {f"taskscope/report/templates/{p.relative_to(folder).as_posix()}" for p in folder.rglob("*")
                if p.is_file()}
    assert expected and shipped == expected

    from taskscope.report.templating import ENVIRONMENT

    listed = ENVIRONMENT.list_templates()
    assert sorted(listed) == sorted(n.removeprefix("taskscope/report/templates/") for n in expected)
    for name in listed:
        ENVIRONMENT.get_template(name)  # parses: a syntax error raises
