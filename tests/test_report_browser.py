"""The MOSSA and transfer reports of tiny runs, loaded in a real headless Chromium (Debian's package).

A test fails on any console error, uncaught error, failed resource load (the network is unreachable for the
browser: an offline report must not need it), a plotly figure that did not draw or an image that did not
load.  Without Chromium / chromedriver the tests FAIL; ``TASKSCOPE_NO_BROWSER=1`` says no browser is wanted
here and skips them (CI installs the browser in ``.ci/run`` and never sets it).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from browser import NO_BROWSER_ENV, browser_wanted, check_page, driver

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

pytestmark = pytest.mark.skipif(not browser_wanted(), reason=f"{NO_BROWSER_ENV} is set: no browser wanted")


@pytest.fixture(scope="module")
def chromium():
    with driver() as d:  # raises (the test fails) when Chromium or chromedriver is missing
        yield d


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The tiny MOSSA and transfer studies, run end to end in a temporary folder."""
    from taskscope.pipeline.run import run_study

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    root = tmp_path_factory.mktemp("runs")
    return {"mossa": run_study(CONFIGS / "tiny.yaml", run_dir=root / "tiny").run_dir,
            "transfer": run_study(CONFIGS / "transfer_tiny.yaml", run_dir=root / "transfer").run_dir}


def test_the_browser_check_catches_errors_and_failed_loads(chromium, tmp_path):
    """The check itself can fail: a console error, a script from the network and a missing image are caught."""
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><head><title>bad</title>"
                    "<script src='https://cdn.plot.ly/plotly-2.35.2.min.js'></script></head><body>"
                    "<img src='missing.png'><script>console.error('boom')</script></body></html>")
    result = check_page(chromium, page, settle_s=0.2)
    text = "\n".join(result.errors)
    assert "boom" in text and "cdn.plot.ly" in text and "missing.png" in text
    assert result.broken_images


@pytest.mark.parametrize("study", ["mossa", "transfer"])
def test_report_loads_without_errors(chromium, runs, study):
    result = check_page(chromium, runs[study] / "report.html")
    assert result.errors == [], f"{study} report: " + "; ".join(result.errors)
    assert result.broken_images == []
    assert result.drawn == result.figures, f"{study}: {result.figures - result.drawn} plotly figures did not draw"
    assert "taskscope" in result.title


def test_mossa_report_draws_its_sections(chromium, runs):
    """Every section is present and the interactive figures drew (ceiling, sensitivity, differences, ...)."""
    result = check_page(chromium, runs["mossa"] / "report.html")
    assert result.figures >= 9 and result.drawn == result.figures
    sections = chromium.script("return Array.from(document.querySelectorAll('section')).map(s => s.id)")
    assert sections[:4] == ["findings", "controls", "ceiling", "robustness"]
    assert {"differences", "heldout", "training", "provenance"} <= set(sections)
    ticks = chromium.script("return Array.from(document.querySelectorAll('#ceiling .xtick text'))"
                            ".map(t => t.textContent)")
    assert ticks and all(t.lstrip("−-").isdigit() for t in ticks), ticks  # integer layer ticks only
