"""Are the controls task specialists?  Each control's validation scores next to the base model's.

`controls_table(rows, margin, n_bootstrap, confidence, seed)`: one row per control.  Each input row holds
``task``, ``cluster``, ``seed``, ``item``, ``steps``, ``stop_reason`` and, under ``control`` and ``base``, the
per-example scores of that model on the task's validation examples (``loss``; ``rouge_l`` and
``exact_match`` when generated), the same examples in the same order on both sides.  Order of operations:

1. means of every score per side (``control_loss``, ``base_loss``, ``control_rouge_l``, ...);
2. ``loss_gain = base_loss - control_loss`` (nats per target token; positive = the control fits its task
   better) and its paired percentile interval from ``n_bootstrap`` resamples of the examples
   (``loss_gain_ci_low``, ``loss_gain_ci_high``; NaN without resamples);
3. ``learned = loss_gain > margin``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

METRICS = ("loss", "rouge_l", "exact_match")
CONTROLS_COLUMNS = [
    "task", "cluster", "seed", "item", "steps", "stop_reason", "n_validation", "control_loss", "base_loss",
    "loss_gain", "loss_gain_ci_low", "loss_gain_ci_high", "control_rouge_l", "base_rouge_l",
    "control_exact_match", "base_exact_match", "learned",
]


def paired_gain_interval(base: np.ndarray, control: np.ndarray, *, n_bootstrap: int, confidence: float,
                         seed: int = 0) -> tuple[float, float]:
    """Percentile interval of ``mean(base - control)`` over ``n_bootstrap`` resamples of the paired examples."""
    gain = np.asarray(base, dtype=np.float64) - np.asarray(control, dtype=np.float64)
    if n_bootstrap == 0 or gain.size < 2:
        return float("nan"), float("nan")
    picks = np.random.default_rng(seed).integers(0, gain.size, size=(n_bootstrap, gain.size))
    alpha = (1 - confidence) / 2
    low, high = np.quantile(gain[picks].mean(axis=1), [alpha, 1 - alpha])
    return float(low), float(high)


def controls_table(rows: Sequence[dict], *, margin: float, n_bootstrap: int = 1000, confidence: float = 0.95,
                   seed: int = 0) -> pd.DataFrame:
    """The ``controls.csv`` table (module docstring), one row per control, in input order."""
    out = []
    for row in rows:
        control, base = row["control"], row["base"]
        if len(control["loss"]) != len(base["loss"]):
            raise ValueError(f"control {row['item']!r}: {len(control['loss'])} validation losses but the base model "
                             f"has {len(base['loss'])}; both must score the same examples")
        record = {key: row[key] for key in ("task", "cluster", "seed", "item", "steps", "stop_reason")}
        record["n_validation"] = len(control["loss"])
        for metric in METRICS:
            for side, scores in (("control", control), ("base", base)):
                values = scores.get(metric)
                record[f"{side}_{metric}"] = float(np.mean(values)) if values else float("nan")
        record["loss_gain"] = record["base_loss"] - record["control_loss"]
        record["loss_gain_ci_low"], record["loss_gain_ci_high"] = paired_gain_interval(
            np.array(base["loss"]), np.array(control["loss"]), n_bootstrap=n_bootstrap, confidence=confidence,
            seed=seed)
        record["learned"] = bool(record["loss_gain"] > margin)
        out.append(record)
    return pd.DataFrame(out, columns=CONTROLS_COLUMNS)
