"""Shared fixtures: the real SNI sample folder and writers for small SNI / templated files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

def _sni_sample() -> Path:
    """``shared/data/sni`` beside the checkout (CI and a fresh clone), else the workplace's copy."""
    beside = Path(__file__).resolve().parents[2] / "shared" / "data" / "sni"
    return beside if beside.is_dir() else Path("/work/shared/data/sni")


SNI_SAMPLE = _sni_sample()


@pytest.fixture
def sni_sample() -> Path:
    """The real, truncated SNI sample (skips the test when it is absent)."""
    if not (SNI_SAMPLE / "INDEX.tsv").is_file():
        pytest.skip(f"SNI sample not found at {SNI_SAMPLE}")
    return SNI_SAMPLE


def sni_task_data(n_instances: int = 3, **overrides: Any) -> dict[str, Any]:
    """A small valid SNI task dict; ``overrides`` replace keys, a value of ``None`` removes the key."""
    data: dict[str, Any] = {
        "Contributors": ["A. Writer"],
        "Source": ["toyset"],
        "Categories": ["Sentiment Analysis"],
        "Definition": ["Say whether the sentence is happy or sad"],
        "Positive Examples": [
            {"input": "I won", "output": "happy", "explanation": "Winning is good"},
            {"input": "I lost.", "output": "sad", "explanation": "Losing is bad."},
            {"input": "Rain?", "output": "sad!", "explanation": ""},
        ],
        "Negative Examples": [{"input": "I won", "output": "sad", "explanation": "Wrong label"}],
        "Domains": ["Fiction"],
        "Input_language": ["English"],
        "Output_language": ["English"],
        "Instruction_language": ["English"],
        "Instances": [{"input": f"sentence number {i}", "output": [f"label{i}", f"alt{i}"]} for i in range(n_instances)],
    }
    for key, value in overrides.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


@pytest.fixture
def sni_data():
    """The :func:`sni_task_data` factory."""
    return sni_task_data


@pytest.fixture
def write_sni(tmp_path: Path):
    """``write_sni(name, data=None, text=None, folder=tmp_path/"sni") -> Path`` writes one task file."""

    def write(name: str, data: dict[str, Any] | None = None, text: str | None = None, folder: Path | None = None) -> Path:
        folder = folder or tmp_path / "sni"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.json"
        path.write_text(text if text is not None else json.dumps(data if data is not None else sni_task_data()))
        return path

    return write


@pytest.fixture
def one_torch_thread():
    """Tiny models train much faster on one thread than with every core shared by other processes; modules that
    train use it with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
