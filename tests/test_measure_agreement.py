"""Layer-wise conclusions across measures: orientation of distances, the sign-flip test, the M1 verdict."""

import itertools

import numpy as np
import pandas as pd
import pytest
import torch

from taskscope.analysis.measures import measure_agreement, measure_table, measures_finding, sign_flip_p
from taskscope.analysis.mossa import mossa_table


def test_sign_flip_p_is_the_exact_permutation_p_value():
    values = np.array([0.3, -0.1, 0.5, 0.2, 0.4])
    flips = [abs(np.dot(s, values)) / 5 for s in itertools.product((1, -1), repeat=5)]
    assert sign_flip_p(values) == pytest.approx(np.mean(np.array(flips) >= abs(values.mean()) - 1e-12))
    assert sign_flip_p(np.zeros(4)) == 1.0
    # all of 8 tasks the same way: only the all-plus and all-minus flips reach the observed mean
    assert sign_flip_p(np.full(8, 0.2)) == pytest.approx(2 / 256)


def _planted(n_tasks=8, n=40, d=12, seed=0):
    """Layer 1: 'close' is a small perturbation of the control, 'far' a large one; layer 0 the same for both."""
    g = torch.Generator().manual_seed(seed)
    controls, close, far = {}, {}, {}
    for t in range(n_tasks):
        base = torch.randn(2, n, d, generator=g, dtype=torch.float64)
        noise = torch.randn(2, n, d, generator=g, dtype=torch.float64)
        controls[f"t{t}"] = base
        close[f"t{t}"] = base + torch.stack([noise[0], 0.1 * noise[1]])
        far[f"t{t}"] = base + torch.stack([noise[0], 3.0 * noise[1]])
    return {"far": far, "close": close}, controls


def test_a_distance_and_a_similarity_reach_the_same_conclusion():
    experimental, controls = _planted()
    clusters = {t: "c" for t in controls}
    table = measure_table(experimental, controls, clusters, [("procrustes", {}), ("rsa", {})])
    mossa = mossa_table(experimental, controls, clusters, top_k=0)
    agreement = measure_agreement(table, mossa, baseline="far")
    layer1 = agreement[agreement.layer == 1].set_index("measure")
    assert set(layer1.index) == {"procrustes", "rsa", "cka[linear]"}
    assert (layer1["conclusion"] == "higher").all() and layer1["agrees"].all()
    assert (layer1["mean_diff"] > 0).all()  # procrustes is a distance: oriented so that > 0 = more similar
    layer0 = agreement[agreement.layer == 0]
    assert (layer0["conclusion"] == "no difference").all()
    assert measures_finding(agreement).verdict == "supported"


def test_opposite_significant_conclusions_contradict_the_claim():
    rows = [("m", "base", 1, name, diff, 0.01, 8, concl, "cka[linear]", "higher", concl == "higher")
            for name, diff, concl in (("cka[linear]", 0.2, "higher"), ("rsa", -0.2, "lower"))]
    agreement = pd.DataFrame(rows, columns=["experimental_model", "baseline", "layer", "measure", "mean_diff",
                                            "p_value", "n_tasks", "conclusion", "reference",
                                            "reference_conclusion", "agrees"])
    assert measures_finding(agreement).verdict == "contradicted"
    assert measures_finding(agreement.iloc[:1]).verdict == "inconclusive"  # one measure: nothing to compare
