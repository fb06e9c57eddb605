"""The layer map: split a model's layers into *shared*, *transition* and *refinement* bands.

Two rules, chosen by ``rule`` (every parameter is stored with the result).

``changepoint`` (default; the paper's reading, see docs/mossa.md).  The bands come from the difference curve
``d_l = mean over tasks of CKA(reference, C_t) - CKA(baseline, C_t)`` (instruction-tuned minus pre-trained):

1. Keep the rows of ``reference_model`` and ``baseline_model`` under ``kernel``; per task and layer the
   paired difference ``D[t, l]``.  Layers where either model's CKA is undefined for every task (NaN, e.g.
   the embedding layer under last-token pooling) are *undefined*: they belong to no band and the
   segmentation below runs over the defined layers only.
2. Segment the defined layers into at most three consecutive segments:
   **shared** ``[0, a)`` with ``a = argmin_a sum_{l<a} d_l`` (the prefix where the instruction-tuned model
   lies below the pre-trained one); then, from ``a`` on, **transition** ``[a, b)``, a rising straight line,
   and **refinement** ``[b, end)``, a constant level: ``b`` minimises the squared error of that fit plus a
   BIC penalty ``2 sigma^2 log m`` for a non-empty transition (``sigma^2``: the mean squared standard error
   of ``d_l`` across tasks; ``m`` defined layers); a transition needs two or more layers and a positive
   slope, otherwise it is empty.
3. Claim a segment only when it beats chance *including the selection in step 2*: a randomisation test
   that flips the sign of whole task curves ``D[t, :]`` (exact when the task count allows, else
   ``n_permutations`` random flips; valid when the two models are exchangeable within a task) repeats
   step 2 and compares the segment's statistic: shared: mean ``d`` over it (claimed if significantly < 0);
   transition: its slope (> 0); refinement: mean ``d`` over it (> 0).  An unclaimed segment's layers
   belong to no band; an empty transition is a valid answer (the held-out setting).
4. Boundary intervals: ``n_bootstrap`` resamples of the tasks (with replacement) rerun step 2; the
   ``confidence`` quantiles of the layer where each segment starts and stops are reported.

``threshold`` (the former rule, on the reference model's curve alone):

1. Per layer ``m_l`` = mean CKA across tasks and ``s_l`` = spread across tasks (``spread="std"``:
   population standard deviation; ``"iqr"``: inter-quartile range).
2. **Shared** = the longest run of leading layers with ``m_l >= shared_min_cka`` and
   ``s_l <= max_spread``; **refinement** = the longest run of trailing layers with
   ``m_l < refinement_max_cka`` or ``s_l > max_spread``; **transition** = the layers in between.
   Undefined layers neither break nor end a run, but belong to no band.

Bands are half-open ``[start, stop)`` layer ranges in the hidden-state numbering (0 = embeddings);
:meth:`LayerMap.band_of` returns ``None`` for a layer in no band.
"""

from __future__ import annotations

import itertools
import json
import math
import warnings
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

BANDS = ("shared", "transition", "refinement")
RULES = ("changepoint", "threshold")


class LayerMapParams(BaseModel):
    """Parameters of the layer-map rules (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    rule: Literal["changepoint", "threshold"] = "changepoint"
    reference_model: str = "instruction_tuned"
    baseline_model: str = "pretrained"  # changepoint: the difference curve is reference minus baseline
    kernel: str = "linear"
    # threshold rule
    shared_min_cka: float = Field(0.8, ge=0, le=1)
    refinement_max_cka: float = Field(0.6, ge=0, le=1)
    max_spread: float = Field(0.1, ge=0)
    spread: Literal["std", "iqr"] = "std"
    # changepoint rule
    alpha: float = Field(0.05, gt=0, lt=1)  # level of each segment's randomisation test
    n_permutations: int = Field(1000, ge=16)  # sign flips when 2^tasks is larger
    n_bootstrap: int = Field(500, ge=0)  # task resamples for the boundary intervals
    confidence: float = Field(0.9, gt=0, lt=1)  # of the boundary intervals
    seed: int = 0

    @model_validator(mode="after")
    def _ordered(self) -> LayerMapParams:
        if self.refinement_max_cka > self.shared_min_cka:
            raise ValueError(
                f"refinement_max_cka ({self.refinement_max_cka}) must not exceed shared_min_cka ({self.shared_min_cka})"
            )
        if self.rule == "changepoint" and self.baseline_model == self.reference_model:
            raise ValueError(f"baseline_model and reference_model are both {self.reference_model!r}; the changepoint "
                             "rule compares two models")
        return self


@dataclass(frozen=True)
class LayerMap:
    """Result of :func:`find_layer_map`: claimed bands as ``[start, stop)`` and the curves they came from.

    ``evidence[band]`` (changepoint rule) holds the segment found, whether it is ``claimed``, its
    ``statistic``, ``p_value``, and the bootstrap intervals ``start_interval`` / ``stop_interval`` of its
    boundary layers.  ``difference`` / ``difference_low`` / ``difference_high``: the mean difference curve
    and its per-layer task-bootstrap interval (empty for the threshold rule).
    """

    params: dict
    num_layers: int  # hidden-state layers including the embeddings
    shared: tuple[int, int]
    transition: tuple[int, int]
    refinement: tuple[int, int]
    mean_cka: tuple[float, ...]
    spread: tuple[float, ...]
    undefined: tuple[int, ...] = ()
    difference: tuple[float, ...] = ()
    difference_low: tuple[float, ...] = ()
    difference_high: tuple[float, ...] = ()
    n_tasks: int = 0
    evidence: dict = field(default_factory=dict)

    def band_of(self, layer: int) -> str | None:
        """The band holding ``layer``, or ``None`` (undefined layer, or a segment not claimed)."""
        if not 0 <= layer < self.num_layers:
            raise IndexError(f"layer {layer} outside 0..{self.num_layers - 1}")
        if layer in self.undefined:
            return None
        for name in BANDS:
            start, stop = getattr(self, name)
            if start <= layer < stop:
                return name
        return None

    @property
    def labels(self) -> list[str | None]:
        return [self.band_of(layer) for layer in range(self.num_layers)]

    def describe(self, band: str) -> str:
        """``"transition 10-15 (start 9-11, stop 15-16)"``, ``"transition: none"`` (layer ranges inclusive)."""
        start, stop = getattr(self, band)
        if stop <= start:
            return f"{band}: none"
        text = f"{band} {start}-{stop - 1}"
        info = self.evidence.get(band, {})
        starts, stops = info.get("start_interval"), info.get("stop_interval")
        if starts and stops and None not in starts + stops:
            text += f" (start {starts[0]}-{starts[1]}, end {stops[0] - 1}-{stops[1] - 1})"
        return text

    def to_dict(self) -> dict:
        out = asdict(self)
        out["labels"] = self.labels
        return _json_safe(out)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict) -> LayerMap:
        curves = {name: tuple(math.nan if v is None else v for v in data.get(name, ()))
                  for name in ("mean_cka", "spread", "difference", "difference_low", "difference_high")}
        return cls(params=dict(data["params"]), num_layers=int(data["num_layers"]),
                   undefined=tuple(data.get("undefined", ())), n_tasks=int(data.get("n_tasks", 0)),
                   evidence=dict(data.get("evidence", {})), **curves,
                   **{name: tuple(data[name]) for name in BANDS})


def _json_safe(value):
    if isinstance(value, float):
        return None if not math.isfinite(value) else value
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    return value


# ---------------------------------------------------------------- shared helpers
def task_matrix(table: pd.DataFrame, model: str, kernel: str) -> pd.DataFrame:
    """``layer x task`` CKA of ``model`` under ``kernel`` (every layer 0..max present, NaN where missing)."""
    rows = table[(table["experimental_model"] == model) & (table["kernel"] == kernel)]
    if rows.empty:
        raise KeyError(
            f"layer map: no MOSSA rows for model {model!r} with kernel {kernel!r}; "
            f"models {sorted(set(table['experimental_model']))}, kernels {sorted(set(table['kernel']))}"
        )
    by_layer = rows.pivot_table(index="layer", columns="task", values="cka", dropna=False)
    return by_layer.reindex(range(int(table["layer"].max()) + 1))


def _nan_stats(values: np.ndarray, spread: str) -> tuple[np.ndarray, np.ndarray]:
    with warnings.catch_warnings():  # all-NaN layers give NaN curves, by design
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(values, axis=1)
        if spread == "std":
            return mean, np.nanstd(values, axis=1)
        return mean, np.nanquantile(values, 0.75, axis=1) - np.nanquantile(values, 0.25, axis=1)


def layer_curves(table: pd.DataFrame, params: LayerMapParams) -> tuple[np.ndarray, np.ndarray]:
    """Per-layer mean CKA and spread across tasks of ``params.reference_model`` under ``params.kernel``."""
    return _nan_stats(task_matrix(table, params.reference_model, params.kernel).to_numpy(np.float64), params.spread)


def _band_range(layers: np.ndarray, lo: int, hi: int, num_layers: int) -> tuple[int, int]:
    """Segment ``[lo, hi)`` of the defined ``layers`` as a layer range; empty at its position when ``lo == hi``."""
    if hi > lo:
        return int(layers[lo]), int(layers[hi - 1]) + 1
    pos = int(layers[lo]) if lo < len(layers) else num_layers
    return pos, pos


# ---------------------------------------------------------------- threshold rule
def bands_from_curves(mean: np.ndarray, spread: np.ndarray, params: LayerMapParams) -> dict[str, tuple[int, int]]:
    """The threshold rule on given curves -> ``{"shared": (s, a), "transition": (a, b), "refinement": (b, e)}``.

    Undefined (NaN) layers at either end are trimmed off the outer bands.
    """
    n = len(mean)
    undefined = np.isnan(mean)
    a = 0
    while a < n and (undefined[a] or (mean[a] >= params.shared_min_cka and spread[a] <= params.max_spread)):
        a += 1
    b = n
    while b > a and (undefined[b - 1] or mean[b - 1] < params.refinement_max_cka or spread[b - 1] > params.max_spread):
        b -= 1
    first = next((i for i in range(n) if not undefined[i]), n)
    last = next((i + 1 for i in reversed(range(n)) if not undefined[i]), 0)
    shared = (first, a) if a > first else (a, a)
    refinement = (b, last) if last > b else (b, b)
    return {"shared": shared, "transition": (a, b), "refinement": refinement}


def _threshold_map(table: pd.DataFrame, params: LayerMapParams) -> LayerMap:
    mean, spread = layer_curves(table, params)
    bands = bands_from_curves(mean, spread, params)
    n_tasks = int(task_matrix(table, params.reference_model, params.kernel).shape[1])
    return LayerMap(params=params.model_dump(), num_layers=len(mean), mean_cka=tuple(map(float, mean)),
                    spread=tuple(map(float, spread)), undefined=tuple(int(i) for i in np.flatnonzero(np.isnan(mean))),
                    n_tasks=n_tasks, **bands)


# ---------------------------------------------------------------- changepoint rule
def _line_sse(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every prefix ``y[:k]`` (k = 0..m): the squared error of its least-squares line, and its slope."""
    m = len(y)
    x = np.arange(m, dtype=np.float64)
    sx, sy, sxx, sxy, syy = (np.concatenate([[0.0], np.cumsum(v)]) for v in (x, y, x * x, x * y, y * y))
    k = np.arange(m + 1, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        vxx = sxx - sx ** 2 / k
        vxy = sxy - sx * sy / k
        vyy = syy - sy ** 2 / k
        slope = np.where(k >= 2, vxy / vxx, 0.0)
        sse = np.where(k >= 2, np.maximum(vyy - vxy * np.where(k >= 2, vxy / vxx, 0.0), 0.0), 0.0)
    return sse, slope


def segment(d: np.ndarray, sigma2: float) -> tuple[int, int, float, float]:
    """Step 2 of the changepoint rule on a difference curve ``d`` (defined layers only).

    Returns ``(a, b, slope, gain)``: shared ``[0, a)``, transition ``[a, b)`` with its slope, refinement
    ``[b, m)``, and ``gain`` = how much the transition lowers the penalised squared error (0 when empty).
    """
    m = len(d)
    cumulative = np.concatenate([[0.0], np.cumsum(d)])
    a = int(np.argmin(cumulative))  # first minimum: shared is as short as the data allow
    rest = d[a:]
    r = len(rest)
    penalty = 2.0 * sigma2 * math.log(max(m, 2))
    line_sse, slopes = _line_sse(rest)
    tail = rest[::-1]
    tail_sum = np.concatenate([[0.0], np.cumsum(tail)])
    tail_sq = np.concatenate([[0.0], np.cumsum(tail * tail)])
    j = r - np.arange(r + 1)                                   # refinement length for transition length k
    with np.errstate(invalid="ignore", divide="ignore"):
        const_sse = tail_sq[j] - np.where(j > 0, tail_sum[j] ** 2 / np.maximum(j, 1), 0.0)
    cost = line_sse + const_sse + penalty
    allowed = (np.arange(r + 1) >= 2) & (slopes > 0)
    no_ramp = float(const_sse[0])
    cost = np.where(allowed, cost, np.inf)
    k = int(np.argmin(cost)) if allowed.any() else 0
    if not allowed.any() or cost[k] >= no_ramp - 1e-12:
        return a, a, 0.0, 0.0
    return a, a + k, float(slopes[k]), float(no_ramp - cost[k])


def _statistics(d: np.ndarray, sigma2: float) -> tuple[tuple[int, int], np.ndarray]:
    """Segmentation and the segment statistics (shared mean, transition slope and gain, refinement mean)."""
    a, b, slope, gain = segment(d, sigma2)
    shared = float(d[:a].mean()) if a else 0.0
    refinement = float(d[b:].mean()) if b < len(d) else 0.0
    return (a, b), np.array([shared, slope, refinement, gain])


def _without_transition(d: np.ndarray, a: int) -> np.ndarray:
    """The null curve of the transition test: shared and the rest each at their own constant level."""
    out = np.empty_like(d)
    out[:a] = d[:a].mean() if a else 0.0
    out[a:] = d[a:].mean() if a < len(d) else 0.0
    return out


def _sign_flips(n_tasks: int, n_permutations: int, rng: np.random.Generator) -> np.ndarray:
    if 2 ** n_tasks <= n_permutations:
        return np.array(list(itertools.product((1.0, -1.0), repeat=n_tasks)))
    return np.concatenate([np.ones((1, n_tasks)), rng.choice([1.0, -1.0], size=(n_permutations - 1, n_tasks))])


def _mean_curve(diffs: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nan_to_num(np.nanmean(diffs, axis=1))


def _changepoint_map(table: pd.DataFrame, params: LayerMapParams) -> LayerMap:
    ref = task_matrix(table, params.reference_model, params.kernel)
    base = task_matrix(table, params.baseline_model, params.kernel)
    tasks = [t for t in ref.columns if t in set(base.columns)]
    if not tasks:
        raise KeyError(f"layer map: models {params.reference_model!r} and {params.baseline_model!r} share no task")
    ref_values, base_values = ref[tasks].to_numpy(np.float64), base[tasks].to_numpy(np.float64)
    diffs = ref_values - base_values  # (layers, tasks)
    num_layers = diffs.shape[0]
    mean, spread = _nan_stats(ref_values, params.spread)
    defined = ~np.all(np.isnan(diffs), axis=1)
    layers = np.flatnonzero(defined)
    undefined = tuple(int(i) for i in np.flatnonzero(~defined))
    d_all = _mean_curve(diffs)
    empty = {name: (num_layers, num_layers) for name in BANDS}
    if len(layers) == 0:
        return LayerMap(params=params.model_dump(), num_layers=num_layers, mean_cka=tuple(mean), spread=tuple(spread),
                        undefined=undefined, n_tasks=len(tasks), **empty)
    D = diffs[layers]  # (m, tasks), defined layers only
    n = D.shape[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        se2 = np.nanvar(D, axis=1, ddof=1) / np.sum(~np.isnan(D), axis=1) if n > 1 else np.zeros(len(layers))
    sigma2 = float(np.nanmean(se2)) if np.isfinite(se2).any() else 0.0
    d = _mean_curve(D)
    (a, b), stats = _statistics(d, sigma2)

    rng = np.random.default_rng(params.seed)
    flips = _sign_flips(n, params.n_permutations, rng)
    null = np.array([_statistics(_mean_curve(D * f), sigma2)[1] for f in flips])  # (flips, 4)
    # the transition's null keeps the shared and refinement levels: a flat curve plus the tasks' own
    # deviations from the mean, sign-flipped per task (a wild bootstrap)
    flat, residuals = _without_transition(d, a), np.nan_to_num(D - d[:, None])
    ramp_null = np.array([_statistics(flat + _mean_curve(residuals * f), sigma2)[1][3] for f in flips])
    p_values = [float(np.mean(null[:, 0] <= stats[0])), float((1 + np.sum(ramp_null >= stats[3])) / (1 + len(flips))),
                float(np.mean(null[:, 2] >= stats[2]))]
    segments = {"shared": (0, a), "transition": (a, b), "refinement": (b, len(layers))}
    claims = {"shared": a > 0 and stats[0] < 0, "transition": b > a and stats[3] > 0,
              "refinement": b < len(layers) and stats[2] > 0}

    q = ((1 - params.confidence) / 2, 1 - (1 - params.confidence) / 2)
    boot_bounds, boot_curves = [], []
    for _ in range(params.n_bootstrap):
        pick = rng.integers(0, n, size=n)
        curve = _mean_curve(D[:, pick])
        boot_curves.append(curve)
        ba, bb = segment(curve, sigma2)[:2]
        boot_bounds.append((ba, bb))
    evidence, bands = {}, {}
    for i, name in enumerate(BANDS):
        lo, hi = segments[name]
        claimed = bool(claims[name] and p_values[i] < params.alpha)
        info = {"segment": list(_band_range(layers, lo, hi, num_layers)), "claimed": claimed,
                "statistic": ("mean difference" if i != 1 else "slope per layer"), "value": float(stats[i]),
                "p_value": p_values[i] if hi > lo else None}
        if boot_bounds:
            starts = [(0, ba, bb)[i] for ba, bb in boot_bounds]
            stops = [(ba, bb, len(layers))[i] for ba, bb in boot_bounds]
            to_layer = lambda k: int(layers[k]) if k < len(layers) else int(layers[-1]) + 1  # noqa: E731
            info["start_interval"] = [to_layer(int(np.quantile(starts, q[0], method="lower"))),
                                      to_layer(int(np.quantile(starts, q[1], method="higher")))]
            info["stop_interval"] = [to_layer(int(np.quantile(stops, q[0], method="lower"))),
                                     to_layer(int(np.quantile(stops, q[1], method="higher")))]
        evidence[name] = info
        bands[name] = tuple(info["segment"]) if claimed else _band_range(layers, lo, lo, num_layers)
    low = np.full(num_layers, np.nan)
    high = np.full(num_layers, np.nan)
    if boot_curves:
        low[layers], high[layers] = np.quantile(np.array(boot_curves), q, axis=0)
    difference = np.where(defined, d_all, np.nan)
    return LayerMap(params=params.model_dump(), num_layers=num_layers, mean_cka=tuple(map(float, mean)),
                    spread=tuple(map(float, spread)), undefined=undefined, difference=tuple(map(float, difference)),
                    difference_low=tuple(map(float, low)), difference_high=tuple(map(float, high)), n_tasks=n,
                    evidence=evidence, **bands)


def find_layer_map(table: pd.DataFrame, params: LayerMapParams | None = None) -> LayerMap:
    """Apply ``params.rule`` (module docstring) to a MOSSA table (:func:`taskscope.analysis.mossa.mossa_table`)."""
    params = params or LayerMapParams()
    return _changepoint_map(table, params) if params.rule == "changepoint" else _threshold_map(table, params)
