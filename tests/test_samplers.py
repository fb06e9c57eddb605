"""Task samplers: formulas against float64 references written from the definitions, limits, empirical
frequencies, exact resume and errors."""

import itertools
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare

from taskscope.train.samplers import SAMPLERS, TaskSampler, make_sampler
from taskscope.train.samplers.unimax import unimax_allocation

sizes_strategy = st.lists(st.integers(min_value=1, max_value=100_000), min_size=1, max_size=12)


def reference_temperature(sizes, temperature, cap=None):
    """p_k = min(N_k, cap)^(1/T) / sum_j min(N_j, cap)^(1/T), directly in float64."""
    capped = [min(n, cap) if cap is not None else n for n in sizes]
    weights = [float(n) ** (1.0 / temperature) for n in capped]
    return np.array(weights) / math.fsum(weights)


def test_registry_holds_the_documented_samplers():
    # a superset: a newly registered sampler must not break this test
    assert set(SAMPLERS) >= {"proportional", "uniform", "temperature", "reverse_annealing", "dwa", "unimax"}
    assert all(issubclass(cls, TaskSampler) for cls in SAMPLERS.values())


def test_unknown_sampler_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown sampler 'annealed'; known: dwa, proportional.*uniform"):
        make_sampler("annealed", [1, 2])


@pytest.mark.parametrize(
    "sizes, kwargs, message",
    [
        ([], {}, "no tasks"),
        ([3, 0], {"task_names": ["a", "empty"]}, "task 'empty' has size 0"),
        ([3, 2], {"cap": 0}, "cap must be >= 1"),
        ([3, 2], {"task_names": ["a"]}, "1 task names for 2 task sizes"),
    ],
)
def test_bad_sizes_are_rejected(sizes, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_sampler("proportional", sizes, **kwargs)


@settings(max_examples=60, deadline=None)
@given(sizes=sizes_strategy, cap=st.none() | st.integers(min_value=1, max_value=5_000))
def test_proportional_matches_reference_and_uniform_ignores_sizes(sizes, cap):
    p = make_sampler("proportional", sizes, cap=cap).probabilities(0)
    np.testing.assert_allclose(p, reference_temperature(sizes, 1.0, cap), rtol=1e-12)
    np.testing.assert_allclose(make_sampler("uniform", sizes, cap=cap).probabilities(7), np.full(len(sizes), 1 / len(sizes)))


@settings(max_examples=60, deadline=None)
@given(
    sizes=sizes_strategy,
    temperature=st.floats(min_value=0.2, max_value=200.0),
    cap=st.none() | st.integers(min_value=1, max_value=5_000),
)
def test_temperature_matches_reference(sizes, temperature, cap):
    p = make_sampler("temperature", sizes, temperature=temperature, cap=cap).probabilities(0)
    np.testing.assert_allclose(p, reference_temperature(sizes, temperature, cap), rtol=1e-9)
    assert math.isclose(p.sum(), 1.0, rel_tol=1e-12)


@settings(max_examples=40, deadline=None)
@given(sizes=sizes_strategy)
def test_temperature_limits(sizes):
    at_one = make_sampler("temperature", sizes, temperature=1.0).probabilities(0)
    np.testing.assert_allclose(at_one, make_sampler("proportional", sizes).probabilities(0), rtol=1e-12)
    huge = make_sampler("temperature", sizes, temperature=1e12).probabilities(0)
    np.testing.assert_allclose(huge, make_sampler("uniform", sizes).probabilities(0), rtol=1e-9)


def test_cap_is_applied_before_the_temperature():
    p = make_sampler("temperature", [10, 1000], cap=100, temperature=2.0).probabilities(0)
    np.testing.assert_allclose(p, np.array([math.sqrt(10), 10.0]) / (math.sqrt(10) + 10.0))


@settings(max_examples=30, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=10_000), min_size=2, max_size=8),
    max_temperature=st.sampled_from([1e2, 1e3, 1e4, 1e5]),
    total_steps=st.integers(min_value=1, max_value=5_000),
)
def test_reverse_annealing_schedule(sizes, max_temperature, total_steps):
    sampler = make_sampler("reverse_annealing", sizes, max_temperature=max_temperature, total_steps=total_steps)
    np.testing.assert_allclose(sampler.probabilities(0), reference_temperature(sizes, 1.0), rtol=1e-9)
    np.testing.assert_allclose(
        sampler.probabilities(total_steps), reference_temperature(sizes, max_temperature), rtol=1e-9
    )
    middle = total_steps // 2
    assert sampler.temperature(middle) == pytest.approx(1 + (max_temperature - 1) * middle / total_steps)
    # the largest task loses probability and the smallest gains it as the temperature rises
    steps = np.linspace(0, total_steps, 9).astype(int)
    largest, smallest = int(np.argmax(sizes)), int(np.argmin(sizes))
    p_largest = [sampler.probabilities(int(s))[largest] for s in steps]
    p_smallest = [sampler.probabilities(int(s))[smallest] for s in steps]
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(p_largest))
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(p_smallest))
    np.testing.assert_allclose(sampler.probabilities(10 * total_steps), sampler.probabilities(total_steps))


def test_reverse_annealing_needs_total_steps():
    with pytest.raises(ValueError, match="needs total_steps"):
        make_sampler("reverse_annealing", [1, 2])


def feed(sampler, window_losses, window):
    """Observe, for window w, loss window_losses[w][k] for task k at every step of the window (None: skip)."""
    for w, losses in enumerate(window_losses):
        for step in range(w * window, (w + 1) * window):
            for k, loss in enumerate(losses):
                if loss is not None:
                    sampler.observe(k, loss, step)


def softmax(values, temperature):
    # shifted by the largest value: the same softmax, without overflowing for large loss ratios
    top = max(values)
    exps = [math.exp((v - top) / temperature) for v in values]
    return np.array(exps) / math.fsum(exps)


def test_dwa_is_uniform_until_two_windows_are_closed():
    sampler = make_sampler("dwa", [5, 50, 500], window=4)
    feed(sampler, [[3.0, 1.0, 2.0]], window=4)
    np.testing.assert_allclose(sampler.probabilities(4), np.full(3, 1 / 3))  # one window closed
    feed(sampler, [[], [1.5, 1.0, 4.0]], window=4)
    np.testing.assert_allclose(sampler.probabilities(7), np.full(3, 1 / 3))  # second window still open


@pytest.mark.parametrize("temperature", [1.0, 2.0, 0.5])
def test_dwa_follows_the_ratio_of_windowed_losses(temperature):
    sampler = make_sampler("dwa", [5, 50, 500], window=3, temperature=temperature)
    previous, last = [3.0, 1.0, 2.0], [1.5, 1.0, 4.0]
    feed(sampler, [previous, last], window=3)
    expected = softmax([a / b for a, b in zip(last, previous)], temperature)
    np.testing.assert_allclose(sampler.probabilities(6), expected, rtol=1e-12)
    # the task whose loss rose is drawn most, the one whose loss halved least
    assert np.argmax(sampler.probabilities(6)) == 2 and np.argmin(sampler.probabilities(6)) == 0


def test_dwa_averages_within_a_window_and_carries_unobserved_tasks():
    sampler = make_sampler("dwa", [1, 1, 1], window=2)
    # window 0: task 0 sees 1 and 3 (mean 2); window 1: task 0 sees 4 and 4; task 1 is never seen after window 0
    for step, (k, loss) in enumerate([(0, 1.0), (0, 3.0)]):
        sampler.observe(k, loss, step)
    sampler.observe(1, 5.0, 1)
    sampler.observe(0, 4.0, 2)
    sampler.observe(0, 4.0, 3)
    np.testing.assert_allclose(sampler.loss_ratios(4), [4.0 / 2.0, 1.0, 1.0])
    # window 2 sees nothing: every average carries, all ratios become 1
    np.testing.assert_allclose(sampler.probabilities(6), np.full(3, 1 / 3))


def reference_dwa(observations, num_tasks, window, temperature, step):
    """DWA probabilities at `step` from (step, task, loss) observations, written from the definition."""
    current = step // window
    averages = {}  # closed window -> per-task average with carry-forward (None: never observed)
    last = [None] * num_tasks
    for w in range(current):
        in_window = [(k, loss) for s, k, loss in observations if s // window == w]
        for k in range(num_tasks):
            losses = [loss for task, loss in in_window if task == k]
            if losses:
                last[k] = math.fsum(losses) / len(losses)
        averages[w] = list(last)
    if current < 2:
        return np.full(num_tasks, 1.0 / num_tasks)
    before, latest = averages[current - 2], averages[current - 1]
    ratios = [b / a if a is not None and b is not None else 1.0 for a, b in zip(before, latest)]
    return softmax(ratios, temperature)


@settings(max_examples=50, deadline=None)
@given(
    data=st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 2), st.floats(0.01, 20.0)), min_size=0, max_size=40
    ),
    window=st.integers(1, 5),
    temperature=st.sampled_from([0.5, 1.0, 2.0]),
    query_gap=st.integers(0, 6),
)
def test_dwa_matches_reference(data, window, temperature, query_gap):
    # observations at non-decreasing steps: each tuple is (step increment, task, loss)
    observations, step = [], 0
    for increment, task, loss in data:
        step += increment
        observations.append((step, task, loss))
    sampler = make_sampler("dwa", [1, 1, 1], window=window, temperature=temperature)
    for s, k, loss in observations:
        sampler.observe(k, loss, s)
    query = step + query_gap
    expected = reference_dwa(observations, 3, window, temperature, query)
    np.testing.assert_allclose(sampler.probabilities(query), expected, rtol=1e-9)


def test_dwa_rejects_bad_feedback():
    sampler = make_sampler("dwa", [1, 1], window=2, task_names=["qa", "nli"])
    with pytest.raises(ValueError, match="non-finite loss nan for task 'nli'"):
        sampler.observe(1, float("nan"), 0)
    sampler.observe(0, 1.0, 5)
    with pytest.raises(ValueError, match="already closed"):
        sampler.observe(0, 1.0, 0)


@settings(max_examples=60, deadline=None)
@given(
    sizes=sizes_strategy,
    budget=st.integers(min_value=1, max_value=500_000),
    max_epochs=st.sampled_from([0.5, 1.0, 4.0]),
)
def test_unimax_allocation_properties(sizes, budget, max_epochs):
    allocation = unimax_allocation(np.array(sizes, dtype=float), budget, max_epochs)
    limits = max_epochs * np.array(sizes, dtype=float)
    assert np.all(allocation <= limits + 1e-9)
    assert allocation.sum() == pytest.approx(min(budget, limits.sum()))
    below_limit = allocation < limits - 1e-9
    if below_limit.any():
        share = allocation[below_limit]
        np.testing.assert_allclose(share, share[0])  # uniform among tasks not at their epoch cap
        assert np.all(limits[~below_limit] <= share[0] + 1e-9)  # capped tasks are the small ones


def test_unimax_worked_example():
    # budget 600 over sizes 10, 100, 1000 at one epoch: shares 200 -> 10, 590/2 -> 100, rest 490
    sampler = make_sampler("unimax", [1000, 10, 100], budget=600)
    np.testing.assert_allclose(sampler.probabilities(0), np.array([490, 10, 100]) / 600)
    by_steps = make_sampler("unimax", [1000, 10, 100], total_steps=150, examples_per_step=4)
    np.testing.assert_allclose(by_steps.probabilities(0), sampler.probabilities(0))
    with pytest.raises(ValueError, match="needs a budget or total_steps"):
        make_sampler("unimax", [1, 2])


SAMPLER_ARGS = {
    "proportional": {},
    "uniform": {},
    "temperature": {"temperature": 3.0},
    "reverse_annealing": {"max_temperature": 1e3, "total_steps": 100},
    "dwa": {"window": 10},
    "unimax": {"budget": 300},
}


@pytest.mark.parametrize("name", sorted(SAMPLER_ARGS))
def test_empirical_frequencies_match_probabilities(name):
    sampler = make_sampler(name, [40, 400, 4000, 20], seed=3, **SAMPLER_ARGS[name])
    step, draws = 50, 20_000
    counts = np.bincount([sampler.sample(step) for _ in range(draws)], minlength=4)
    expected = sampler.probabilities(step) * draws
    assert chisquare(counts, expected).pvalue > 1e-3


@pytest.mark.parametrize("name", sorted(SAMPLER_ARGS))
def test_state_dict_round_trip_gives_identical_future_draws(name):
    sizes = [40, 400, 4000, 20]
    sampler = make_sampler(name, sizes, seed=11, **SAMPLER_ARGS[name])
    for step in range(35):
        task = sampler.sample(step)
        sampler.observe(task, 1.0 + ((step * 7 + task) % 5) / 4, step)
    state = json.loads(json.dumps(sampler.state_dict()))  # checkpoints store it as JSON
    resumed = make_sampler(name, sizes, seed=999, **SAMPLER_ARGS[name])
    resumed.load_state_dict(state)
    for step in range(35, 80):
        np.testing.assert_array_equal(resumed.probabilities(step), sampler.probabilities(step))
        task = sampler.sample(step)
        assert resumed.sample(step) == task
        loss = 1.0 + step % 3
        sampler.observe(task, loss, step)
        resumed.observe(task, loss, step)


def test_same_seed_same_draws_and_other_seed_differs():
    first = make_sampler("uniform", [1] * 10, seed=5)
    second = make_sampler("uniform", [1] * 10, seed=5)
    other = make_sampler("uniform", [1] * 10, seed=6)
    a = [first.sample(s) for s in range(50)]
    assert a == [second.sample(s) for s in range(50)]
    assert a != [other.sample(s) for s in range(50)]


def test_load_state_dict_rejects_another_sampler():
    state = make_sampler("uniform", [1, 2]).state_dict()
    with pytest.raises(ValueError, match="state is for 'uniform' over 2 tasks, not 'proportional' over 2"):
        make_sampler("proportional", [1, 2]).load_state_dict(state)


def test_log_record_names_tasks():
    sampler = make_sampler("reverse_annealing", [10, 90], total_steps=10, task_names=["qa", "nli"])
    record = sampler.log_record(0)
    assert record["sampler"] == "reverse_annealing" and record["temperature"] == 1.0
    assert record["p"] == pytest.approx({"qa": 0.1, "nli": 0.9})
    json.dumps(record)
