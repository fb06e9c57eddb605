"""Transfer-study analysis on synthetic frames with planted structure: correlations, curves, size bins, trajectories."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from hypothesis import given, settings
from hypothesis import strategies as st

from taskscope.analysis.correlation import (
    change_correlation,
    loss_correlation,
    spearman,
    task_changes,
)
from taskscope.analysis.transfer import (
    loss_by_task_size,
    size_bins,
    task_means,
    trajectory_changes,
    trajectory_correlation,
    transfer_curves,
)


def rank_formula_rho(x: list[float], y: list[float]) -> float:
    """rho = 1 - 6 sum d^2 / (n (n^2 - 1)) for distinct values, in float64."""
    n = len(x)
    rx = np.argsort(np.argsort(x)).astype(np.float64)
    ry = np.argsort(np.argsort(y)).astype(np.float64)
    return 1.0 - 6.0 * float(((rx - ry) ** 2).sum()) / (n * (n * n - 1))


def test_spearman_of_monotone_relations_is_plus_or_minus_one() -> None:
    x = np.linspace(0.1, 5.0, 12)
    up = spearman(x, np.exp(x) + x**3)
    assert up.rho == pytest.approx(1.0) and up.p_value < 1e-6 and up.n == 12
    assert spearman(x, -np.log(x)).rho == pytest.approx(-1.0)


def test_spearman_of_a_rank_balanced_pairing_is_zero_with_p_one() -> None:
    # ranks (1,2,3,4) vs (2,4,1,3): d = (-1,-2,2,1), sum d^2 = 10 = n(n^2-1)/6 -> rho = 0
    result = spearman([1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 1.0, 3.0])
    assert result.rho == pytest.approx(0.0, abs=1e-12)
    assert result.p_value == pytest.approx(1.0)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 10_000)), min_size=4, max_size=30,
                unique_by=(lambda p: p[0], lambda p: p[1])))
def test_spearman_equals_the_rank_difference_formula(pairs) -> None:
    x, y = [float(a) for a, _ in pairs], [float(b) for _, b in pairs]
    assert spearman(x, y).rho == pytest.approx(rank_formula_rho(x, y), abs=1e-9)
    assert spearman(np.exp(np.array(x) / 1e4), y).rho == pytest.approx(spearman(x, y).rho, abs=1e-9)


def test_spearman_drops_missing_pairs_and_needs_three() -> None:
    result = spearman([1.0, 2.0, math.nan, 4.0, 5.0], [1.0, 4.0, 9.0, math.nan, 25.0])
    assert result.n == 3 and result.rho == pytest.approx(1.0)
    assert math.isnan(spearman([1.0, 2.0], [2.0, 1.0]).rho)
    with pytest.raises(ValueError, match="paired"):
        spearman([1.0, 2.0, 3.0], [1.0, 2.0])


def per_task_frame() -> pd.DataFrame:
    tasks = [f"t{i}" for i in range(8)]
    rng = np.random.default_rng(0)
    rows = []
    for model, shift in (("pretrained", 0.0), ("instruct", 1.0)):
        for i, task in enumerate(tasks):
            fewshot = 1.0 + i + shift * (i % 3)
            rows.append({"model": model, "task": task, "fewshot_loss": fewshot,
                         "icl_loss": 2 * fewshot**2 if model == "pretrained" else rng.normal()})
    return pd.DataFrame(rows)


def test_loss_correlation_per_group() -> None:
    table = loss_correlation(per_task_frame(), by=["model"]).set_index("model")
    assert table.loc["pretrained", "rho"] == pytest.approx(1.0)
    assert table.loc["pretrained", "n_tasks"] == 8
    assert abs(table.loc["instruct", "rho"]) < 1.0
    with pytest.raises(ValueError, match="several rows per task"):
        loss_correlation(per_task_frame())


def test_change_correlation_sees_planted_monotone_changes() -> None:
    tasks = [f"t{i}" for i in range(6)]
    delta = np.array([0.5, -1.0, 2.0, 0.1, -0.3, 1.2])
    before = pd.DataFrame({"model": "a", "task": tasks, "fewshot_loss": 3.0, "icl_loss": np.arange(6.0)})
    after = pd.DataFrame({"model": "b", "task": tasks, "fewshot_loss": 3.0 + delta,
                          "icl_loss": np.arange(6.0) + np.tanh(delta)})
    frame = pd.concat([before, after])
    result = change_correlation(frame, before="a", after="b")
    assert result.rho == pytest.approx(1.0) and result.n == 6
    changes = task_changes(frame, ["fewshot_loss"], before="a", after="b").set_index("task")
    assert changes.loc["t2", "fewshot_loss"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="'c'"):
        change_correlation(frame, before="a", after="c")


def curve_frame() -> pd.DataFrame:
    rows = []
    for seed, offset in ((0, 0.0), (1, 2.0), (2, 4.0)):
        for shots in (0, 5):
            for task, base in (("t1", 10.0), ("t2", 20.0)):
                for instance in range(3):  # instance values base-1, base, base+1: instance mean = base
                    rows.append({"model": "m", "task": task, "shots": shots, "seed": seed, "instance_id": str(instance),
                                 "rouge_l": base + offset + shots + (instance - 1), "loss": 1.0 / (1 + shots)})
    return pd.DataFrame(rows)


def test_transfer_curves_average_instances_then_tasks_then_summarise_seeds() -> None:
    curves = transfer_curves(curve_frame()).set_index(["shots", "metric"])
    # per seed: mean over tasks = 15 + offset + shots; offsets 0, 2, 4 -> mean 17 + shots, std 2
    assert curves.loc[(5, "rouge_l"), "mean"] == pytest.approx(22.0)
    assert curves.loc[(5, "rouge_l"), "std"] == pytest.approx(2.0)
    assert curves.loc[(0, "rouge_l"), "min"] == pytest.approx(15.0)
    assert curves.loc[(0, "rouge_l"), "max"] == pytest.approx(19.0)
    assert curves.loc[(5, "loss"), "mean"] == pytest.approx(1 / 6)
    assert curves.loc[(5, "loss"), "std"] == pytest.approx(0.0)
    assert set(curves["n_seeds"]) == {3} and set(curves["n_tasks"]) == {2}
    means = task_means(curve_frame(), ["seed", "shots"], ["rouge_l"])
    assert len(means) == 3 * 2 * 2


def test_loss_by_task_size_bins_tasks_by_their_size() -> None:
    sizes = {"a": 10, "b": 50, "c": 100, "d": 1000, "e": 5000}
    rows = [{"scheme": s, "task": t, "split": "test", "loss": float(i) + (s == "uniform")}
            for s in ("proportional", "uniform") for i, t in enumerate(sizes)]
    table = loss_by_task_size(pd.DataFrame(rows), sizes, bins=[0, 100, 10_000])
    prop = table[table.scheme == "proportional"].set_index("bin")
    assert prop.loc[0, "n_tasks"] == 2 and prop.loc[0, "mean_loss"] == pytest.approx(0.5)  # a, b
    assert prop.loc[1, "n_tasks"] == 3 and prop.loc[1, "mean_loss"] == pytest.approx(3.0)  # c, d, e
    uni = table[table.scheme == "uniform"].set_index("bin")
    assert uni.loc[1, "mean_loss"] == pytest.approx(4.0)
    assert list(size_bins([1, 2, 3, 4, 5], 2)) == [1.0, 3.0, 5.0]
    with pytest.raises(ValueError, match="'e'"):
        loss_by_task_size(pd.DataFrame(rows), {k: v for k, v in sizes.items() if k != "e"})


def test_trajectory_correlation_separates_before_and_after_the_step() -> None:
    tasks = [f"t{i}" for i in range(7)]
    early = np.array([3.0, 1.0, 4.0, 1.5, 5.0, 9.0, 2.0])
    late = np.array([0.2, 0.9, 0.1, 0.5, 0.4, 0.3, 0.8])
    rows = []
    for i, task in enumerate(tasks):
        rows.append({"task": task, "step": 0, "fewshot_loss": 10.0, "icl_loss": 10.0})
        rows.append({"task": task, "step": 50, "fewshot_loss": 10.0 - early[i], "icl_loss": 10.0 - 2 * early[i]})
        rows.append({"task": task, "step": 100, "fewshot_loss": 10.0 - early[i] - late[i],
                     "icl_loss": 10.0 - 2 * early[i] + late[i]})
    frame = pd.DataFrame(rows)
    changes = trajectory_changes(frame, 50, ["fewshot_loss"]).set_index("task")
    assert changes.loc["t5", "fewshot_loss_before"] == pytest.approx(-9.0)
    assert changes.loc["t5", "fewshot_loss_after"] == pytest.approx(-0.3)
    table = trajectory_correlation(frame, 50).set_index("comparison")
    assert table.loc["fewshot_loss vs icl_loss (before)", "rho"] == pytest.approx(1.0)
    assert table.loc["fewshot_loss vs icl_loss (after)", "rho"] == pytest.approx(-1.0)
    assert set(table["n_tasks"]) == {7}
    with pytest.raises(ValueError, match="interior"):
        trajectory_correlation(frame, 100)


def test_small_samples_get_exact_p_values() -> None:
    """Regression: the t approximation gave p = 0 for three tasks in perfect rank agreement (exact: 2/3! = 1/3)."""
    assert spearman([0.3, 0.6, 3.9], [7.7, 9.2, 12.0]).p_value == pytest.approx(1 / 3)
    assert spearman([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]).p_value == pytest.approx(2 / 24)  # 2 x 1/4!


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), min_size=3, max_size=7))
def test_exact_p_value_matches_scipy_permutation_test(pairs) -> None:
    x, y = np.array([float(a) for a, _ in pairs]), np.array([float(b) for _, b in pairs])
    result = spearman(x, y)
    if math.isnan(result.rho):
        return
    reference = stats.permutation_test((x,), lambda a: stats.spearmanr(a, y).statistic, permutation_type="pairings",
                                       n_resamples=np.inf, alternative="two-sided").pvalue
    assert result.p_value == pytest.approx(min(1.0, reference), abs=1e-9)
