"""The report pages from Jinja2 templates shipped in the package (``report/templates``).

`render(name, **context)` renders one page, in this order: a fresh `FigureBlocks` joins the context as
``plotly_block`` (figures are turned into HTML when the template reaches them, so the first one in page order
carries plotly.js inline and the others reuse it), then the template renders with autoescape on.  Only the
plotly blocks are marked safe (`markupsafe.Markup`); every other value - titles, task names, config text, table
cells - is escaped by Jinja.

`Table.of(frame, ...)` turns a DataFrame into the cells the ``data_table`` macro draws (numbers through `fmt`);
`fmt` is also the templates' ``fmt`` filter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

PLOTLY_CONFIG = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 2}}


def fmt(value, digits: int = 3) -> str:
    """A table cell: ``–`` for missing / non-finite, yes / no for booleans, ``digits`` significant digits."""
    if value is None or (isinstance(value, (float, np.floating)) and not np.isfinite(value)):
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}g}"
    return str(value)


@dataclass(frozen=True)
class Cell:
    text: str
    css: str = ""


@dataclass(frozen=True)
class Table:
    """A DataFrame's header and formatted cells, for the ``data_table`` macro."""

    columns: list[str]
    rows: list[list[Cell]]

    @classmethod
    def of(cls, frame: pd.DataFrame, *, text: Sequence[str] = (), flag: str | None = None,
           digits: int = 3) -> Table:
        """``text`` columns are left-aligned; ``flag`` names a boolean column whose false cells show in red."""
        rows = []
        for values in frame.itertuples(index=False, name=None):
            cells = []
            for column, value in zip(frame.columns, values):
                css = "flag" if column == flag and not bool(value) else "text" if column in text else ""
                cells.append(Cell(fmt(value, digits), css))
            rows.append(cells)
        return cls([str(c) for c in frame.columns], rows)


class FigureBlocks:
    """Plotly figures as HTML blocks; the first one carries plotly.js inline, the others reuse it."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, fig: go.Figure) -> Markup:
        self.count += 1
        return Markup(fig.to_html(full_html=False, include_plotlyjs=self.count == 1, config=PLOTLY_CONFIG))


ENVIRONMENT = Environment(loader=PackageLoader("taskscope.report", "templates"), autoescape=select_autoescape(),
                          undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
ENVIRONMENT.filters["fmt"] = fmt


def render(name: str, **context) -> str:
    """Render template ``name`` (module docstring: figures become HTML in page order, everything else escaped)."""
    return ENVIRONMENT.get_template(name).render(plotly_block=FigureBlocks(), **context)
