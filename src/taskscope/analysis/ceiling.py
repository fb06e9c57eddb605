"""The noise ceiling: how similar two controls of one task are when only their training seed differs.

`ceiling_table(replicates, clusters, ...)`: ``replicates[task]`` lists the ``(L+1, n, d)`` states of the
task's controls on its MOSSA inputs, seed 0 first.  For every replicate ``k >= 1`` the pair
``(C_t^0, C_t^k)`` goes through :func:`taskscope.analysis.mossa.mossa_table` (the same CKA, the same bootstrap
and the same per-task resamples as the model-control table), so the ceiling and the MOSSA values are
directly comparable.  Columns: ``task, cluster, pair, layer, kernel, cka, ci_low, ci_high`` (``pair`` =
``"s0-s{k}"``).

`compare_to_ceiling(table, ceiling)`: per MOSSA row, the ceiling averaged over pairs (``ceiling_cka``,
``ceiling_ci_low``, ``ceiling_ci_high``) and ``within_noise``: the model-control CKA cannot be told apart
from seed noise, i.e. its interval reaches the ceiling's (``ci_high >= ceiling_ci_low``; without intervals,
``cka >= ceiling_cka``).  NaN where either side is undefined.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

CEILING_COLUMNS = ["task", "cluster", "pair", "layer", "kernel", "cka", "ci_low", "ci_high"]


def ceiling_table(replicates: Mapping[str, Sequence], clusters: Mapping[str, str], **mossa_options) -> pd.DataFrame:
    """Seed-to-seed CKA per task, pair, layer and kernel (module docstring); empty without replicates."""
    from taskscope.analysis.mossa import mossa_table
    from taskscope.similarity import SimilarityWarning

    frames = []
    n_pairs = max((len(states) for states in replicates.values()), default=1) - 1
    for k in range(1, n_pairs + 1):
        pair = f"s0-s{k}"
        experimental = {pair: {t: states[k] for t, states in replicates.items() if len(states) > k}}
        controls = {t: states[0] for t, states in replicates.items()}
        with warnings.catch_warnings():  # the MOSSA table already warned about undefined layers
            warnings.simplefilter("ignore", SimilarityWarning)
            table = mossa_table(experimental, controls, clusters, **mossa_options)
        frames.append(table.rename(columns={"experimental_model": "pair"}))
    if not frames:
        return pd.DataFrame(columns=CEILING_COLUMNS)
    return pd.concat(frames, ignore_index=True)[CEILING_COLUMNS]


def noise_share(rows: pd.DataFrame) -> pd.Series:
    """Per layer, the share of tasks whose ``within_noise`` flag is true (undefined flags left out; NaN if none)."""
    flags = rows["within_noise"].astype(object).map({True: 1.0, False: 0.0, "True": 1.0, "False": 0.0})
    return pd.to_numeric(flags, errors="coerce").groupby(rows["layer"]).mean()


def compare_to_ceiling(table: pd.DataFrame, ceiling: pd.DataFrame) -> pd.DataFrame:
    """The MOSSA table with the ceiling joined per (task, layer, kernel) and the ``within_noise`` flag."""
    keys = ["task", "layer", "kernel"]
    if ceiling.empty:
        return table.assign(ceiling_cka=np.nan, ceiling_ci_low=np.nan, ceiling_ci_high=np.nan, within_noise=pd.NA)
    mean = ceiling.groupby(keys)[["cka", "ci_low", "ci_high"]].mean().rename(
        columns={"cka": "ceiling_cka", "ci_low": "ceiling_ci_low", "ci_high": "ceiling_ci_high"})
    out = table.join(mean, on=keys)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        has_ci = out["ci_high"].notna() & out["ceiling_ci_low"].notna()
        within = np.where(has_ci, out["ci_high"] >= out["ceiling_ci_low"], out["cka"] >= out["ceiling_cka"])
    undefined = out["cka"].isna() | out["ceiling_cka"].isna()
    out["within_noise"] = pd.array(np.where(undefined, None, within), dtype="boolean")
    return out
