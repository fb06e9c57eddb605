"""Transfer-study figures render from synthetic analysis tables and are written as PNG and PDF."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from taskscope.analysis.transfer import loss_by_task_size, transfer_curves
from taskscope.report.figures import save_figure
from taskscope.report.transfer_figures import (
    correlation_scatter_figure,
    task_size_figure,
    trajectory_figure,
    transfer_curve_figure,
)

PNG_MAGIC = b"\x89PNG"
PDF_MAGIC = b"%PDF"


def check_written(paths: list[Path]) -> None:
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    assert paths[0].read_bytes()[:4] == PNG_MAGIC
    assert paths[1].read_bytes()[:4] == PDF_MAGIC
    assert not [p for p in paths[0].parent.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_transfer_curves_figure(tmp_path: Path) -> None:
    rows = [{"model": m, "task": t, "shots": s, "seed": seed, "rouge_l": 10 * s ** 0.5 + seed + (m == "it"), "loss": 1.0}
            for m in ("pt", "it") for t in ("a", "b") for s in (0, 5, 10) for seed in (0, 1, 2)]
    curves = transfer_curves(pd.DataFrame(rows))
    fig = transfer_curve_figure(curves, "rouge_l")
    ax = fig.axes[0]
    assert len(ax.lines) == 2 and "ROUGE-L" in ax.get_ylabel()
    check_written(save_figure(fig, tmp_path / "fig1" / "transfer_curves"))
    with pytest.raises(ValueError, match="exact_match"):
        transfer_curve_figure(curves, "exact_match")


def test_scatter_figure_puts_spearman_rho_in_the_title(tmp_path: Path) -> None:
    x = np.arange(1.0, 9.0)
    frame = pd.DataFrame({"model": ["pt"] * 8 + ["it"] * 8, "task": [f"t{i}" for i in range(8)] * 2,
                          "fewshot_loss": np.concatenate([x, x]), "icl_loss": np.concatenate([x**2, -x])})
    fig = correlation_scatter_figure(frame)
    titles = sorted(ax.get_title() for ax in fig.axes)
    assert titles[0].startswith("it: Spearman ρ = -1.00") and titles[1].startswith("pt: Spearman ρ = 1.00")
    check_written(save_figure(fig, tmp_path / "scatter"))


def test_task_size_and_trajectory_figures(tmp_path: Path) -> None:
    sizes = {"a": 10, "b": 60, "c": 300, "d": 2000}
    rows = [{"scheme": s, "task": t, "split": split, "loss": i + (split == "test")}
            for s in ("proportional", "uniform") for split in ("train", "test") for i, t in enumerate(sizes)]
    fig = task_size_figure(loss_by_task_size(pd.DataFrame(rows), sizes, bins=2))
    assert len(fig.axes) == 2
    check_written(save_figure(fig, tmp_path / "sizes"))
    trajectory = pd.DataFrame([{"task": t, "step": s, "icl_loss": 5.0 - s / 100 + i}
                               for i, t in enumerate("abc") for s in (0, 100, 200)])
    fig = trajectory_figure(trajectory, "icl_loss", step=100)
    assert len(fig.axes[0].lines) == 3 + 1 + 1  # tasks, mean, marker
    check_written(save_figure(fig, tmp_path / "trajectory"))
    with pytest.raises(ValueError, match="step"):
        trajectory_figure(trajectory.drop(columns="step"))
