"""The README's tour (the fenced block tagged ``bash tour``) runs verbatim, in a fresh folder, command by command.

Each line is one ``taskscope`` command, run in-process through Typer's CliRunner in a temporary working
directory (so no command may rely on the checkout's files); a trailing ``# comment`` is dropped.  Lines whose
comment starts with ``slow`` (they need the embedded model) run in the ``slow`` test.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from taskscope.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tour_commands() -> list[tuple[str, bool]]:
    """(command, slow) per line of the README's ``bash tour`` block."""
    blocks = re.findall(r"^```bash tour\n(.*?)^```", README.read_text(), re.M | re.S)
    assert len(blocks) == 1, "README.md needs exactly one ```bash tour block"
    commands = []
    for line in blocks[0].splitlines():
        command, _, comment = line.partition("  #")
        if command.strip():
            commands.append((command.strip(), comment.strip().startswith("slow")))
    return commands


def run_tour(commands: list[str], folder: Path, monkeypatch) -> None:
    monkeypatch.chdir(folder)
    runner = CliRunner()
    for command in commands:
        words = shlex.split(command)
        assert words[0] == "taskscope", command
        result = runner.invoke(app, words[1:])
        assert result.exit_code == 0, f"`{command}` failed:\n{result.output}"


def test_the_tour_block_is_parsed() -> None:
    commands = [command for command, _ in tour_commands()]
    assert len(commands) >= 8 and all(command.startswith("taskscope ") for command in commands)
    assert any(" run tiny" in command for command in commands) and any(" compare " in command for command in commands)


def test_readme_tour_runs_verbatim(tmp_path: Path, monkeypatch) -> None:
    run_tour([command for command, slow in tour_commands() if not slow], tmp_path, monkeypatch)
    assert (tmp_path / "runs" / "tiny" / "report.html").is_file()
    assert (tmp_path / "runs" / "tiny" / "compare" / "tiny_one_seed" / "compare.html").is_file()
    assert (tmp_path / "tasks.jsonl").stat().st_size > 0


@pytest.mark.slow
def test_readme_tour_slow_commands(tmp_path: Path, monkeypatch) -> None:
    run_tour([command for command, slow in tour_commands() if slow], tmp_path, monkeypatch)
