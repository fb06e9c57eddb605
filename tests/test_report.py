"""Figures and the self-contained HTML report from a synthetic MOSSA table."""

import re

import numpy as np
import pandas as pd
import pytest

from taskscope.analysis.layer_map import LayerMapParams, find_layer_map
from taskscope.report import write_report


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(0)
    rows = []
    for model, drop in (("pretrained", 0.5), ("instruction_tuned", 0.2), ("it_heldout", 0.4)):
        for t in range(6):
            for layer in range(5):
                cka = 1.0 - drop * layer / 4 + rng.normal(0, 0.02)
                rows.append({"experimental_model": model, "task": f"task{t}", "cluster": f"cluster{t % 3}",
                             "heldout": model == "it_heldout" and t < 2, "layer": layer, "kernel": "linear",
                             "cka": cka, "ci_low": cka - 0.05, "ci_high": cka + 0.05})
    return pd.DataFrame(rows)


def test_report_is_self_contained_and_shows_the_layer_map(table, tmp_path):
    layer_map = find_layer_map(table, LayerMapParams(rule="threshold", shared_min_cka=0.85, refinement_max_cka=0.82,
                                                     max_spread=0.1))
    path = write_report(table, layer_map, tmp_path, title="synthetic <study>", config_text="model: tiny:llama\n")
    text = path.read_text()
    assert path == tmp_path / "report.html"
    assert not re.search(r"<script[^>]+src=[\"']?https?:", text), "report loads a script from the network"
    assert "Plotly.newPlot" in text and len(text) > 1_000_000  # plotly.js itself is inlined
    assert "synthetic &lt;study&gt;" in text and "model: tiny:llama" in text
    for name in ("shared_min_cka", "refinement_max_cka", "max_spread", "reference_model"):
        assert name in text
    start, stop = layer_map.shared
    assert f"<th>shared</th><td>{start}</td><td>{stop}</td>" in text
    assert "Rule <code>threshold</code>" in text


def test_figures_exist_as_png_and_pdf(table, tmp_path):
    layer_map = find_layer_map(table)
    write_report(table, layer_map, tmp_path, figure_formats=("png", "pdf"))
    names = sorted(p.name for p in (tmp_path / "figures").iterdir())
    for stem in ("cka_distribution_linear", "cluster_curves_linear", "heldout_comparison_linear", "layer_map"):
        assert f"{stem}.png" in names and f"{stem}.pdf" in names
    assert (tmp_path / "figures" / "layer_map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "figures" / "layer_map.pdf").read_bytes()[:5] == b"%PDF-"


def test_distribution_ticks_name_the_layers_they_stand_under(table, tmp_path, monkeypatch):
    """A regression: boxplot's own 1..N labels once stayed on ticks placed at other layers."""
    from taskscope.report import figures

    wide = pd.concat([table.assign(layer=table["layer"] + 5 * k) for k in range(4)])  # 20 layers
    captured = []
    monkeypatch.setattr(figures, "save_figure", lambda fig, *args, **kwargs: captured.append(fig) or [])
    figures.cka_distribution(wide, find_layer_map(wide), "linear", tmp_path, ("png",))
    ax = captured[0].axes[0]
    ax.figure.canvas.draw()
    ticks = ax.get_xticks()
    labels = [label.get_text() for label in ax.get_xticklabels()]
    assert len(ticks) >= 5
    assert labels == [str(int(t)) for t in ticks]


# ---------------------------------------------------------------- findings, controls, ceiling, differences
from taskscope.analysis.ceiling import compare_to_ceiling  # noqa: E402
from taskscope.analysis.findings import Finding  # noqa: E402
from taskscope.report import html as report_html  # noqa: E402
from taskscope.report.figure_data import band_means  # noqa: E402


def model_differences(table, baseline: str):
    """Point differences to ``baseline`` per (task, layer, kernel), as the report reads them (no intervals)."""
    keys = ["task", "layer", "kernel"]
    base = table[table["experimental_model"] == baseline].set_index(keys)["cka"].rename("baseline_cka")
    diff = table[table["experimental_model"] != baseline].join(base, on=keys)
    diff = diff.assign(baseline=baseline, cka_diff=diff["cka"] - diff["baseline_cka"])
    return diff[["experimental_model", "baseline", "task", "cluster", "layer", "kernel", "cka_diff"]]


@pytest.fixture(scope="module")
def study(table):
    """The synthetic table with an undefined layer 0, a ceiling, two controls (one not learned) and findings."""
    table = table.copy()
    table.loc[table["layer"] == 0, ["cka", "ci_low", "ci_high"]] = np.nan
    ceiling = (table[table["experimental_model"] == "pretrained"][["task", "cluster", "layer", "kernel", "cka"]]
               .assign(pair="s0-s1", cka=0.97, ci_low=0.95, ci_high=0.99))
    ceiling.loc[ceiling["layer"] == 0, ["cka", "ci_low", "ci_high"]] = np.nan
    controls = pd.DataFrame([
        {"task": "task0", "cluster": "cluster0", "seed": 0, "item": "task0", "steps": 5, "stop_reason": "max_steps",
         "n_validation": 10, "control_loss": 1.0, "base_loss": 2.0, "loss_gain": 1.0, "loss_gain_ci_low": 0.8,
         "loss_gain_ci_high": 1.2, "learned": True},
        {"task": "task1", "cluster": "cluster1", "seed": 0, "item": "task1@s1", "steps": 5,
         "stop_reason": "max_steps", "n_validation": 10, "control_loss": 1.99, "base_loss": 2.0, "loss_gain": 0.01,
         "loss_gain_ci_low": -0.1, "loss_gain_ci_high": 0.1, "learned": False}])
    findings = [Finding("F1", "pre-trained spreads <late>", "std growth", 0.1, (0.05, 0.15), None, 6, "supported",
                        "the interval lies above 0"),
                Finding("F2", "three bands", "bands claimed", 1.0, None, 0.2, 6, "inconclusive", "p too large")]
    return table, compare_to_ceiling(table, ceiling), controls, findings


def test_report_opens_with_findings_then_controls_and_flags_unlearned_controls(study, tmp_path):
    table, comparison, controls, findings = study
    layer_map = find_layer_map(table, LayerMapParams(n_bootstrap=50, n_permutations=64))
    differences = model_differences(table, "pretrained")
    path = write_report(table, layer_map, tmp_path, figure_formats=("png",), findings=findings, controls=controls,
                        comparison=comparison, differences=differences)
    text = path.read_text()
    assert text.index("<h2>Findings</h2>") < text.index("<h2>Controls") < text.index("<h2>Layer map</h2>")
    assert "<td class='supported'>supported</td>" in text and "<td class='inconclusive'>inconclusive</td>" in text
    assert "pre-trained spreads &lt;late&gt;" in text and "[0.05, 0.15]" in text
    assert "Not learned" in text and "task1@s1" in text and "<td class='flag'>no</td>" in text
    assert "noise ceiling (seed-to-seed)" in text and "Rule <code>changepoint</code>" in text
    assert (tmp_path / "figures" / "differences_linear.png").is_file()


def test_mean_cka_per_band_columns_follow_band_order(study):
    table = study[0]
    layer_map = find_layer_map(table, LayerMapParams(rule="threshold", shared_min_cka=0.9, refinement_max_cka=0.85,
                                                     max_spread=0.1))
    bands = band_means(table, layer_map)
    order = [b for b in ("shared", "transition", "refinement") if b in bands.columns]
    assert list(bands.columns) == order and len(order) >= 2


def _layer_axes_of(fig):
    return [getattr(fig.layout, name) for name in dir(fig.layout) if name.startswith("xaxis")]


def test_every_curve_has_its_interval_integer_ticks_gaps_and_hover(study):
    table, comparison, _, _ = study
    layer_map = find_layer_map(table, LayerMapParams(n_bootstrap=20, n_permutations=64))
    figures = [report_html.ceiling_figure(table, layer_map, "linear", comparison),
               report_html.task_curves_figure(table, layer_map, "linear"),
               report_html.cluster_figure(table, layer_map, "linear"),
               report_html.difference_figure(model_differences(table, "pretrained"), layer_map, "linear"),
               *report_html.heldout_figures(table, layer_map, "linear")]
    for fig in figures:
        for axis in _layer_axes_of(fig):
            assert axis.tickformat == "d" and axis.dtick == 1  # 5 layers: every integer, no 0.5 ticks
        lines = [t for t in fig.data if t.mode and "lines" in t.mode and t.fill is None]
        bands = [t for t in fig.data if t.fill == "toself"]
        assert lines and len(bands) >= 1
        for trace in lines:
            if len(trace.x) == layer_map.num_layers and trace.name != "noise ceiling (seed-to-seed)":
                assert np.isnan(float(trace.y[0]))  # the undefined layer 0 is a gap, not a point
    curves = figures[1]
    line = next(t for t in curves.data if t.fill is None)
    assert "interval [%{customdata[3]" in line.hovertemplate and "task %{customdata[1]}" in line.hovertemplate
    assert list(line.customdata[1][:3]) == [line.customdata[1][0], line.customdata[1][1], line.customdata[1][2]]
    assert line.customdata[2][0] == "pretrained" or line.customdata[0][0] in set(table["experimental_model"])


def test_difference_figure_uses_paired_intervals_when_the_table_has_them(study):
    table = study[0]
    layer_map = find_layer_map(table, LayerMapParams(n_bootstrap=20, n_permutations=64))
    differences = model_differences(table, "pretrained")
    with_ci = differences.assign(ci_low=differences["cka_diff"] - 0.01, ci_high=differences["cka_diff"] + 0.01,
                                 p_value=0.5)
    fig = report_html.difference_figure(with_ci, layer_map, "linear")
    per_task = [t for t in fig.data if t.customdata is not None]
    row = per_task[0].customdata[2]
    assert float(row[4]) - float(row[3]) == pytest.approx(0.02) and "p %{customdata[5]" in per_task[0].hovertemplate
    assert report_html.difference_figure(differences.iloc[0:0], layer_map, "linear") is None


def test_the_page_escapes_every_value_and_inlines_plotly_js_once(study):
    """Autoescape is on in the templates: table cells, findings and the config are text, never markup."""
    table, comparison, controls, findings = study
    layer_map = find_layer_map(table, LayerMapParams(n_bootstrap=20, n_permutations=64))
    manifest = pd.DataFrame([("code", "<b>taskscope</b>", "x & y")], columns=["section", "name", "value"])
    text = report_html.render_html(table, layer_map, title="t", config_text="a: </pre><script>alert(1)</script>",
                                   findings=findings, controls=controls.assign(item="<i>task1</i>"),
                                   comparison=comparison, manifest=manifest)
    assert "&lt;b&gt;taskscope&lt;/b&gt;" in text and "x &amp; y" in text and "<b>taskscope" not in text
    assert "&lt;/pre&gt;&lt;script&gt;alert(1)" in text and "<script>alert(1)" not in text
    assert "Not learned (loss gain at most the margin): &lt;i&gt;task1&lt;/i&gt;" in text
    # ceiling, layer map, task curves, heatmap, distribution, clusters, held-out: each drawn, plotly.js once
    assert text.count("class=\"plotly-graph-div\"") == text.count("Plotly.newPlot(") == 7
    assert text.count("plotly.js v") == 1


def test_the_comparison_page_escapes_run_names_in_the_page_and_in_plotly_text(table):
    from taskscope.report.compare import compare_table, compare_tasks, comparison_figure, render_compare_html

    per_task = compare_tasks(table, table.assign(cka=table["cka"] - 0.05))
    layer_map = find_layer_map(table)
    names = ("runs/<a>", "runs/b")
    fig = comparison_figure(per_task, "pretrained", "linear", (layer_map, layer_map), names)
    assert fig.layout.annotations[0].text == "A: runs/&lt;a&gt;" and fig.data[1].name == "runs/&lt;a&gt;"
    page = render_compare_html(per_task, compare_table(per_task), (layer_map, layer_map), names, ["only <here>"])
    assert "Run A: <code>runs/&lt;a&gt;</code>" in page and "<li>only &lt;here&gt;</li>" in page
    assert page.count("plotly.js v") == 1 and page.count("Plotly.newPlot(") == table["experimental_model"].nunique()
