"""Transfer findings T1-T6 (issue 16): planted effects get the right verdicts, too few tasks decide nothing, the
sanity rule catches a run whose few-shot loss does not fall."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from taskscope.analysis.transfer_findings import (
    FindingsDesign,
    finding_t1,
    finding_t2,
    finding_t3,
    finding_t5,
    finding_t6,
    sanity_checks,
    support_warnings,
    transfer_findings,
)


def per_task_frame(n_tasks: int, effect: float, *, models=("pre", "it"), seed: int = 0, corr: bool = True) -> pd.DataFrame:
    """Per-task few-shot / ICL losses: model ``models[1]`` is ``effect`` worse than ``models[0]`` on every task."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(2.0, 0.5, n_tasks)
    rows = []
    for m, model in enumerate(models):
        for shots in (0, 5, 20):
            for t in range(n_tasks):
                fewshot = difficulty[t] + m * effect - 0.01 * shots + rng.normal(0, 0.05)
                icl = (difficulty[t] if corr else rng.normal(2.0, 0.5)) + m * effect + rng.normal(0, 0.05)
                rows.append({"model": model, "shots": shots, "task": f"t{t}", "fewshot_loss": fewshot,
                             "icl_loss": icl, "fewshot_rouge_l": 0.0, "icl_rouge_l": 0.0})
    return pd.DataFrame(rows)


DESIGN = FindingsDesign(pair=("pre", "it"), n_boot=400)


@pytest.mark.parametrize(("effect", "verdict"), [(0.5, "supported"), (-0.5, "contradicted")])
def test_t1_verdict_follows_the_planted_effect(effect: float, verdict: str) -> None:
    finding = finding_t1(per_task_frame(12, effect), DESIGN)
    assert finding.verdict == verdict and finding.n == 12
    assert finding.value == pytest.approx(effect, abs=0.06)
    low, high = finding.interval
    assert low <= finding.value <= high


def test_t1_without_an_effect_rarely_decides() -> None:
    """Size: on 200 null data sets (12 tasks) a decided verdict (either way) comes up at most ~10 % of the time
    (nominal 5 %; the percentile bootstrap undercovers a little at n = 12)."""
    design = FindingsDesign(pair=("pre", "it"), n_boot=200)
    decided = [finding_t1(per_task_frame(12, 0.0, seed=s), design).verdict != "inconclusive" for s in range(200)]
    assert np.mean(decided) <= 0.12


def test_too_few_tasks_decide_nothing_even_with_a_large_effect() -> None:
    finding = finding_t1(per_task_frame(3, 2.0), DESIGN)
    assert finding.verdict == "inconclusive" and "only 3 units" in finding.reason
    assert any("Only 3 unseen tasks" in w for w in support_warnings([finding], n_tasks=3))


def test_t2_correlated_tasks_support_uncorrelated_do_not() -> None:
    assert finding_t2(per_task_frame(15, 0.0), DESIGN).verdict == "supported"
    unrelated = finding_t2(per_task_frame(15, 0.0, corr=False, seed=3), DESIGN)
    assert unrelated.verdict != "supported" and unrelated.n == 15


def test_t3_and_t6_compare_the_right_models() -> None:
    limits = per_task_frame(10, 0.4, models=("limit10", "limit5000"))
    t3 = finding_t3(limits, FindingsDesign(data_limits={"limit5000": 5000, "limit10": 10}, n_boot=400))
    assert t3.verdict == "supported" and t3.value == pytest.approx(0.4, abs=0.06)
    mixing = per_task_frame(10, -0.4, models=("plain", "mixed"))  # mixing lowers the loss: less forgetting
    t6 = finding_t6(mixing, FindingsDesign(unsupervised=("plain", "mixed"), n_boot=400))
    assert t6.verdict == "supported" and t6.value == pytest.approx(0.4, abs=0.06)


def test_t5_late_correlation_stronger_than_early() -> None:
    rng = np.random.default_rng(1)
    rows = []
    n = 20
    early, late = rng.normal(0, 1, n), rng.normal(0, 1, n)
    for t in range(n):
        values = {0: (0.0, 0.0), 10: (early[t], rng.normal(0, 1)), 20: (early[t] + late[t], 0.0)}
        icl_after = late[t] + rng.normal(0, 0.1)
        for step, (fewshot, icl) in values.items():
            icl_value = icl if step < 20 else values[10][1] + icl_after
            rows.append({"task": f"t{t}", "step": step, "fewshot_loss": fewshot, "icl_loss": icl_value})
    finding = finding_t5(pd.DataFrame(rows), FindingsDesign(trajectory_step=10, n_boot=400))
    assert finding.verdict == "supported" and finding.value > 0.5


def test_not_run_claims_say_so_and_all_six_come_in_order() -> None:
    tables = {"per_task": per_task_frame(9, 0.3),
              "seen_loss": pd.DataFrame(columns=["model", "task", "split", "loss"]),
              "icl": pd.DataFrame(columns=["model", "task", "loss"])}
    findings = transfer_findings(tables, DESIGN)
    assert [f.id for f in findings] == ["T1", "T2", "T3", "T4", "T5", "T6"]
    assert [f.reason.startswith("not run") for f in findings] == [False, False, True, True, True, True]


def test_sanity_rule_passes_when_loss_falls_with_shots_and_fails_otherwise() -> None:
    rows = []
    for model, slope in (("good", -0.2), ("broken", 0.3)):
        for shots in (0, 5, 10):
            for seed in (0, 1):
                for task in ("a", "b", "c"):
                    rows.append({"model": model, "context": "definition", "shots": shots, "seed": seed,
                                 "task": task, "loss": 2.0 + slope * shots / 5})
    table = sanity_checks(pd.DataFrame(rows)).set_index("model")
    assert bool(table.loc["good", "passes"]) and not bool(table.loc["broken", "passes"])
    assert table.loc["good", "loss_at_10"] == pytest.approx(1.6)


def test_sanity_rule_is_not_checkable_with_one_shot_count() -> None:
    frame = pd.DataFrame([{"model": "m", "context": "none", "shots": 0, "seed": 0, "task": "a", "loss": 1.0}])
    assert sanity_checks(frame).empty
