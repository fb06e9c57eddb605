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
    layer_map = find_layer_map(table, LayerMapParams(shared_min_cka=0.85, refinement_max_cka=0.82, max_spread=0.1))
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
