"""Figure data shared by the static and interactive report, on tables with planted effects."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from taskscope.analysis.layer_map import LayerMapParams, find_layer_map
from taskscope.report import figure_data, write_report

LAYERS = np.arange(6)


def mossa_rows(models: dict[str, float], tasks: int = 6, heldout: dict[str, set[str]] | None = None, seed: int = 0):
    """CKA = level of the model - 0.05 * layer + noise; layer 0 undefined; ``top_k`` sensitivity columns."""
    rng = np.random.default_rng(seed)
    rows = []
    for model, level in models.items():
        for t in range(tasks):
            task = f"task{t}"
            for layer in LAYERS:
                cka = np.nan if layer == 0 else level - 0.05 * layer + rng.normal(0, 0.005)
                rows.append({"experimental_model": model, "task": task, "cluster": f"c{t % 2}",
                             "heldout": task in (heldout or {}).get(model, set()), "layer": int(layer),
                             "kernel": "linear", "cka": cka, "ci_low": cka - 0.02, "ci_high": cka + 0.02,
                             "top_k": 2, "topk_var_share_exp": 0.5, "topk_var_share_ctrl": 0.4,
                             "cka_without_topk": cka})
    return pd.DataFrame(rows)


def test_heldout_comparison_is_like_for_like():
    """Every model is averaged over the held-out tasks only: planted values on those tasks must come back."""
    table = mossa_rows({"pretrained": 0.9, "it": 0.95, "it_heldout": 0.93}, heldout={"it_heldout": {"task0", "task1"}})
    held = table["task"].isin(["task0", "task1"])
    table.loc[held, "cka"] = table.loc[held, "experimental_model"].map({"pretrained": 0.1, "it": 0.2,
                                                                        "it_heldout": 0.3})
    table.loc[held & (table["layer"] == 0), "cka"] = np.nan
    sets = figure_data.heldout_sets(table, "linear", LAYERS)
    assert [(holder, tasks) for holder, tasks, _ in sets] == [("it_heldout", ["task0", "task1"])]
    curves = sets[0][2].set_index(["experimental_model", "layer"])["mean"]
    for model, planted in {"pretrained": 0.1, "it": 0.2, "it_heldout": 0.3}.items():
        assert np.isnan(curves[(model, 0)])  # undefined layer stays a gap
        assert curves[model].iloc[1:].to_numpy() == pytest.approx(planted)


def differences_with(planted: dict[str, float], base: float = 0.05) -> pd.DataFrame:
    rows = []
    for t in range(6):
        task = f"task{t}"
        for layer in LAYERS:
            diff = planted.get(task, base + 0.001 * t) if layer >= 3 else 0.001 * (t - 2.5)
            rows.append({"experimental_model": "it", "baseline": "pretrained", "task": task, "cluster": "c",
                         "layer": int(layer), "kernel": "linear", "cka_diff": diff, "ci_low": diff - 0.01,
                         "ci_high": diff + 0.01, "p_value": 0.01})
    return pd.DataFrame(rows)


def test_against_trend_names_the_tasks_whose_paired_interval_lies_across_zero():
    table = differences_with({"task4": -0.04}, base=0.2)
    found = figure_data.against_trend(table, "linear", LAYERS)
    assert set(found["task"]) == {"task4"} and sorted(found["layer"]) == [3, 4, 5]
    assert (found["trend"] == 1).all()
    # an interval that touches 0 is not against the trend; nor is anything in layers without a trend
    touching = differences_with({"task4": -0.005}, base=0.2)
    assert figure_data.against_trend(touching, "linear", LAYERS).empty


def test_sensitivity_flags_exactly_the_layers_whose_sign_flips():
    table = mossa_rows({"pretrained": 0.9, "it": 0.95})
    flip = (table["experimental_model"] == "it") & table["layer"].isin([2, 4])
    base = table[table["experimental_model"] == "pretrained"].set_index(["task", "layer"])["cka"]
    keys = list(zip(table.loc[flip, "task"], table.loc[flip, "layer"]))
    table.loc[flip, "cka_without_topk"] = base.loc[keys].to_numpy() - 0.03  # below the baseline without top-k
    data = figure_data.sensitivity(table, "linear", "pretrained")
    flips = data[data["flips"].astype(bool)]
    assert list(zip(flips["experimental_model"], flips["layer"])) == [("it", 2), ("it", 4)]
    assert data.loc[data["experimental_model"] == "pretrained", "flips"].eq(False).all()
    assert data["var_share_exp"].dropna().to_numpy() == pytest.approx(0.5)
    assert figure_data.sensitivity(table, "linear", None)["flips"].eq(False).all()
    assert figure_data.sensitivity(table.drop(columns=["cka_without_topk"]), "linear", "pretrained").empty


def test_band_spans_leave_out_undefined_layers():
    table = mossa_rows({"pretrained": 0.99, "it": 0.99})
    layer_map = find_layer_map(table, LayerMapParams(rule="threshold", shared_min_cka=0.85, refinement_max_cka=0.8,
                                                     max_spread=0.1, reference_model="it"))
    spans = figure_data.band_spans(layer_map)
    assert spans and min(x0 for _, x0, _ in spans) >= 0.5  # layer 0 (NaN) is in no band
    covered = {layer for _, x0, x1 in spans for layer in range(int(x0 + 0.5), int(x1 + 0.5))}
    assert covered == {layer for layer in range(6) if layer_map.band_of(layer)}


def test_write_report_draws_every_new_section(tmp_path):
    table = mossa_rows({"pretrained": 0.9, "it": 0.95, "it_heldout": 0.93}, heldout={"it_heldout": {"task0"}})
    layer_map = find_layer_map(table, LayerMapParams(n_bootstrap=20, n_permutations=64, reference_model="it",
                                                     baseline_model="pretrained"))
    logs = pd.DataFrame([{"role": "control", "model": "task0", "kind": kind, "step": step, "loss": 3.0 / step}
                         for step in (1, 2, 3) for kind in ("train", "eval")])
    manifest = pd.DataFrame([("code", "taskscope", "0.1.0 (abc123)")], columns=["section", "name", "value"])
    path = write_report(table, layer_map, tmp_path, figure_formats=("png",), training_logs=logs, manifest=manifest,
                        baseline="pretrained", differences=differences_with({"task4": -0.04}, base=0.2))
    text = path.read_text()
    order = [text.index(f"<section id='{key}'>") for key, _ in figure_data_sections()]
    assert order == sorted(order)
    assert "0.1.0 (abc123)" in text and "task4" in text and "against the trend" in text
    names = {p.name for p in (tmp_path / "figures").iterdir()}
    for stem in ("ceiling_linear", "heatmap_linear", "sensitivity_linear", "differences_linear", "training_curves",
                 "heldout_comparison_linear"):
        assert f"{stem}.png" in names


def figure_data_sections():
    from taskscope.report.html import SECTIONS

    return SECTIONS


def test_rebuild_report_rebuilds_a_finished_run(tmp_path):
    """`rebuild_report(run_dir)` reads only the run folder and writes its report there, with training curves."""
    from taskscope.pipeline.run import CONFIG_DIR, rebuild_report, run_study

    run = run_study(CONFIG_DIR / "tiny.yaml", run_dir=tmp_path / "tiny")
    report = run.run_dir / "report.html"
    report.unlink()
    assert rebuild_report(run.run_dir) == report
    text = report.read_text()
    assert "<section id='training'>" in text and "No training logs found" not in text
    assert json.loads((run.run_dir / "manifest.json").read_text())["python"]["version"] in text
    with pytest.raises(FileNotFoundError, match="study.yaml"):
        rebuild_report(tmp_path)


def test_heatmap_hover_names_cluster_and_interval_and_keeps_undefined_cells_blank():
    from taskscope.report.html import heatmap_figure

    table = mossa_rows({"pretrained": 0.9, "it": 0.95})
    layer_map = find_layer_map(table, LayerMapParams(rule="threshold", reference_model="it"))
    fig = heatmap_figure(table, layer_map, "linear")
    trace = fig.data[0]
    assert "interval [%{customdata[1]" in trace.hovertemplate and "%{customdata[0]}" in trace.hovertemplate
    z = np.asarray(trace.z, dtype=np.float64)
    assert np.isnan(z[:, 0]).all() and np.isfinite(z[:, 1:]).all()
    row = list(trace.y).index("task3")
    expected = table[(table["experimental_model"] == "pretrained") & (table["task"] == "task3") & (table["layer"] == 2)]
    assert trace.customdata[row][2][0] == "c1"
    assert float(trace.customdata[row][2][1]) == pytest.approx(float(expected["ci_low"].iloc[0]))
