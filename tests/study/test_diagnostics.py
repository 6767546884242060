"""Hand-computed cases for the VB-vs-VF diagnostics."""

import pytest

from mrt.study import diagnostics as d


def test_reward_spread_and_anti_concentration():
    rewards = [[1, 0, 0, 0], [1, 1, 1, 1], [1, 1, 0, 0]]
    s = d.reward_spread(rewards)
    assert s[0]["mean"] == 0.25 and s[0]["std"] == pytest.approx(0.4330127)  # sqrt(.25 * .75)
    assert s[1]["std"] == 0.0 and s[2]["std"] == 0.5
    # c = 1: problem 0: 1 > 0.25 + 0.433 (one rollout); problem 1: std 0, none; problem 2: 1 > 1.0? no
    assert d.anti_concentration(rewards, c=1.0) == pytest.approx(1 / 12)
    # c = 0.5: problem 2's correct rollouts: 1 > 0.5 + 0.25 -> two more
    assert d.anti_concentration(rewards, c=0.5) == pytest.approx(3 / 12)
    assert d.anti_concentration(rewards, c=0.0) == pytest.approx(3 / 12)
    z = d.z_scores(rewards)
    assert len(z) == 8 and z[0] == pytest.approx(0.75 / 0.4330127) and z[4:] == [1.0, 1.0, -1.0, -1.0]
    with pytest.raises(ValueError):
        d.anti_concentration([])


def test_correct_trace_heterogeneity():
    per_problem = [
        [{"tokens": 10, "episodes": 1, "style": "a"}, {"tokens": 30, "episodes": 3, "style": "b"}],
        [{"tokens": 20, "episodes": 2, "style": "a"}, {"tokens": 20, "episodes": 2, "style": "a"}],
        [{"tokens": 5, "episodes": 1, "style": "a"}],  # one correct trace: not counted
    ]
    h = d.correct_trace_heterogeneity(per_problem)
    assert h["problems"] == 2
    assert h["length_std"] == pytest.approx((10 + 0) / 2)  # std of (10, 30) is 10
    assert h["length_cv"] == pytest.approx((10 / 20 + 0) / 2)
    assert h["episodes_std"] == pytest.approx(0.5) and h["episodes_cv"] == pytest.approx(0.25)
    assert h["distinct_style_fraction"] == pytest.approx((1.0 + 0.5) / 2)
    assert d.correct_trace_heterogeneity([[]])["problems"] == 0


def test_mc_heterogeneity_sums_variances_over_segments():
    # segment 0: J after 3 sampled next segments 0, 0.5, 1 -> variance 1/6; segment 1: constant -> 0
    assert d.mc_heterogeneity([[0.0, 0.5, 1.0], [0.25, 0.25, 0.25], [1.0]]) == pytest.approx(1 / 6)
    assert d.mc_heterogeneity([]) == 0.0


def test_histogram_bins():
    assert d.histogram([-1.0, 0.0, 0.5, 1.0, 2.0, 3.0], [-1, 0, 1, 2]) == [1, 2, 2]
