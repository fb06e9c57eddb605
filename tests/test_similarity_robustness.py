"""cka_sensitivity: telling broad agreement from one direction or a few outlier inputs (Davari et al. 2022)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ortho_group
from test_similarity_reference import ref_cka, single_thread  # noqa: F401

from taskscope.similarity import cka_sensitivity


def test_one_shared_dominant_direction_is_exposed():
    rng = np.random.default_rng(0)
    shared = rng.normal(size=(80, 1))
    x = 30.0 * shared @ rng.normal(size=(1, 12)) + rng.normal(size=(80, 12))
    y = 30.0 * shared @ rng.normal(size=(1, 10)) + rng.normal(size=(80, 10))
    report = cka_sensitivity(x, y, top_k=2)
    assert report.cka > 0.9
    assert report.without_top_pcs[0] < 0.3
    assert min(report.top_pc_variance) > 0.9


def test_broad_agreement_survives_removing_top_directions():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 8)) * np.linspace(3, 1, 8)
    y = x @ ortho_group.rvs(8, random_state=2)
    report = cka_sensitivity(x, y, top_k=3)
    np.testing.assert_allclose(report.without_top_pcs, 1.0, atol=1e-6)
    assert report.max_leave_one_out_change < 1e-6


@pytest.mark.parametrize("debiased", [False, True])
def test_leave_one_out_and_influential_removal_match_explicit_deletion(debiased):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(20, 4))
    y = x @ rng.normal(size=(4, 3)) + rng.normal(size=(20, 3))
    report = cka_sensitivity(x, y, debiased=debiased, precision="float64", n_influential=3)
    expected = [ref_cka(np.delete(x, i, 0), np.delete(y, i, 0), debiased=debiased) for i in range(20)]
    np.testing.assert_allclose(report.leave_one_out, expected, atol=1e-10)
    dropped = report.influential[:3]
    np.testing.assert_array_equal(np.sort(np.argsort(-np.abs(np.array(expected) - report.cka))[:3]), np.sort(dropped))
    keep = np.setdiff1d(np.arange(20), dropped)
    assert report.without_influential == pytest.approx(ref_cka(x[keep], y[keep], debiased=debiased), abs=1e-10)


def test_a_single_outlier_input_is_found():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(50, 6)), rng.normal(size=(50, 6))   # unrelated
    x[17] += 40.0
    y[17] += 40.0                                                 # one shared outlier input
    report = cka_sensitivity(x, y, n_influential=1)
    assert report.cka > 0.8
    assert report.influential[0] == 17
    assert report.without_influential < 0.4


def test_sensitivity_arguments_are_checked():
    x = np.random.default_rng(5).normal(size=(10, 3))
    with pytest.raises(ValueError, match="top_k"):
        cka_sensitivity(x, x, top_k=5)
    with pytest.raises(ValueError, match="n_influential"):
        cka_sensitivity(x, x, n_influential=9)
    with pytest.raises(ValueError, match="2-D"):
        cka_sensitivity(np.stack([x, x]), np.stack([x, x]))
