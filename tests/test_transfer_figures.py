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


def _curves() -> pd.DataFrame:
    rows = [{"model": m, "shots": n, "seed": s, "task": t, "instance_id": "i", "rouge_l": 0.1 * n + s,
             "loss": 3.0 - 0.1 * n, "context": "definition"}
            for m in ("pretrained", "instruction_tuned") for n in (0, 4, 16) for s in (0, 1) for t in ("a", "b")]
    return transfer_curves(pd.DataFrame(rows))


def test_plotly_curves_have_one_integer_tick_per_shot_count() -> None:
    from taskscope.report.transfer_figures import transfer_curve_plot

    fig = transfer_curve_plot(_curves(), "loss")
    assert list(fig.layout.xaxis.tickvals) == [0, 4, 16] and list(fig.layout.xaxis.ticktext) == ["0", "4", "16"]
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert sorted(t.name for t in lines) == ["instruction_tuned", "pretrained"]
    assert all(t.mode == "lines" for t in fig.data if t.fill == "toself")  # bands draw no stray markers


def test_plotly_scatter_labels_every_point_with_its_task_and_trajectory_ticks_are_integers() -> None:
    from taskscope.report.transfer_figures import correlation_scatter_plot, trajectory_plot

    per_task = pd.DataFrame({"model": ["m"] * 4 + ["n"] * 4, "task": list("wxyz") * 2,
                             "cluster": ["c1", "c1", "c2", "c2"] * 2,
                             "fewshot_loss": np.arange(8.0), "icl_loss": np.arange(8.0)[::-1]})
    fig = correlation_scatter_plot(per_task, by="model")
    assert [list(t.text) for t in fig.data] == [list("wxyz"), list("wxyz")]
    assert "ρ = -1.00" in fig.layout.annotations[0].text
    assert [tuple(row) for row in fig.data[0].customdata] == [("w", "c1"), ("x", "c1"), ("y", "c2"), ("z", "c2")]
    frame = pd.DataFrame({"task": ["a", "a", "a", "b", "b", "b"], "step": [0, 50, 100] * 2,
                          "icl_loss": [3.0, 2.0, 1.0, 3.5, 2.5, 2.0]})
    trajectory = trajectory_plot(frame, "icl_loss", 50)
    assert list(trajectory.layout.xaxis.tickvals) == [0, 50, 100]
    assert {t.name for t in trajectory.data} == {"a", "b", "mean over tasks"}


def test_per_task_table_and_sample_predictions() -> None:
    from taskscope.report.transfer_report import SAMPLES_PER_TASK, per_task_table, sample_predictions

    per_task = pd.DataFrame({"model": ["p", "p", "q", "q"] * 2, "shots": [0] * 4 + [8] * 4,
                             "task": ["a", "b"] * 4, "cluster": ["ca", "cb"] * 4, "fewshot_loss": np.arange(8.0),
                             "icl_loss": np.arange(8.0) + 10, "fewshot_rouge_l": 0.0, "icl_rouge_l": 0.0})
    wide = per_task_table(per_task)
    assert list(wide["task"]) == ["a", "b"] and list(wide["cluster"]) == ["ca", "cb"]
    assert wide.loc[wide.task == "b", "q: fewshot_loss @8"].item() == 7.0  # largest shot count, model q, task b
    fewshot = pd.DataFrame([{"task": t, "instance_id": f"{t}{i}", "references": "['x']", "prediction": p,
                             "rouge_l": 0.0, "shots": n, "seed": 0, "context": "definition", "model": "p"}
                            for t in ("a", "b") for i in range(5) for n, p in ((0, "zero"), (8, "" if i else "y"))])
    icl = fewshot[fewshot.shots == 8].drop(columns=["shots", "seed", "context"]).assign(k=3, with_definition=True,
                                                                                         prediction="icl")
    samples = sample_predictions(fewshot, icl)
    assert samples.groupby("task")["instance_id"].nunique().tolist() == [SAMPLES_PER_TASK] * 2
    assert set(samples["setting"]) == {"ICL k=3", "fine-tuned, 8 shots"}
    tuned = samples[samples.setting == "fine-tuned, 8 shots"]
    assert "zero" not in set(samples["prediction"]) and "(empty)" in set(tuned["prediction"])
