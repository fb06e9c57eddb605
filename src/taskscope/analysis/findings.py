"""Findings: each of a paper's claims as a hypothesis with its statistic, its uncertainty and a verdict.

A study's analysis ends in a list of :class:`Finding` (one per claim: the MOSSA claims F1-F3 and the
cluster claim, the transfer claims T1-T6), written to ``findings.json`` by :func:`write_findings` and shown at
the top of the report.  A verdict is one of

* ``"supported"``: the statistic goes the claimed way and its interval (or test) excludes no effect;
* ``"contradicted"``: it goes the other way, and its interval excludes no effect;
* ``"inconclusive"``: anything else, including too few units (tasks, layers) to decide at this n.

Every finding states ``n`` (the units its statistic rests on) and a one-sentence ``reason``, so a reader can
see why a verdict was given without reading code.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from taskscope.common.files import atomic_write_text

Verdict = Literal["supported", "contradicted", "inconclusive"]
VERDICTS: tuple[str, ...] = ("supported", "contradicted", "inconclusive")


@dataclass(frozen=True)
class Finding:
    """One claim tested: ``id`` (e.g. ``"F2"``), the claim, the statistic and its value, interval, p and n."""

    id: str
    claim: str
    statistic: str
    value: float | None
    interval: tuple[float, float] | None
    p_value: float | None
    n: int
    verdict: Verdict
    reason: str

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"finding {self.id}: verdict {self.verdict!r} is not one of {', '.join(VERDICTS)}")

    def to_dict(self) -> dict:
        out = asdict(self)
        for key in ("value", "p_value"):
            if out[key] is not None and not math.isfinite(out[key]):
                out[key] = None
        if out["interval"] is not None:
            out["interval"] = [None if not math.isfinite(v) else v for v in out["interval"]]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> Finding:
        interval = data.get("interval")
        return cls(**{**data, "interval": None if interval is None else tuple(
            math.nan if v is None else v for v in interval)})


def interval_verdict(interval: tuple[float, float] | None, direction: int, n: int, min_n: int) -> tuple[Verdict, str]:
    """The verdict for a claim that a quantity is ``> 0`` (``direction=1``) or ``< 0`` (``-1``), from its interval."""
    if n < min_n:
        return "inconclusive", f"only {n} units; at least {min_n} are needed to decide"
    if interval is None or not all(math.isfinite(v) for v in interval):
        return "inconclusive", "no interval could be computed"
    low, high = sorted(interval)
    if direction * low > 0 and direction * high > 0:
        return "supported", f"the interval [{low:.3g}, {high:.3g}] lies on the claimed side of 0"
    if direction * low < 0 and direction * high < 0:
        return "contradicted", f"the interval [{low:.3g}, {high:.3g}] lies on the other side of 0"
    return "inconclusive", f"the interval [{low:.3g}, {high:.3g}] contains 0"


def write_findings(findings: Sequence[Finding], path: Path, extra: dict | None = None) -> Path:
    """``findings.json``: ``{"findings": [...], **extra}`` in the given order (atomic write); ``extra`` holds
    structured evidence beside the findings (e.g. ``sensitivity``: the layers whose conclusion flips)."""
    atomic_write_text(Path(path), json.dumps({"findings": [f.to_dict() for f in findings], **(extra or {})},
                                             indent=2))
    return Path(path)


def read_findings(path: Path) -> list[Finding]:
    return [Finding.from_dict(d) for d in json.loads(Path(path).read_text())["findings"]]
