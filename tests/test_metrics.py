import math

import pytest

from mrt import metrics as M


def test_progress():
    assert M.progress([0.25, 0.5, 0.5, 1.0]) == [0.25, 0.0, 0.5]
    assert M.progress([0.3]) == []


def test_normalized_regret_hand_computed():
    ends, j = [10, 30], [0.5, 1.0]
    # area: 0.5*0.5*10 + 0.5*(0.5+1)*20 + 1*10 = 27.5
    assert M.normalized_regret(ends, j, 40) == pytest.approx(1 - 27.5 / 40)
    # cut-off inside the second segment: J(20) = 0.75 by interpolation
    assert M.normalized_regret(ends, j, 20) == pytest.approx(1 - (2.5 + 0.5 * (0.5 + 0.75) * 10) / 20)
    # cut-off inside the first segment, from (0, 0): J(5) = 0.25
    assert M.normalized_regret(ends, j, 5) == pytest.approx(1 - 0.625 / 5)
    # exactly at a boundary
    assert M.normalized_regret(ends, j, 10) == pytest.approx(1 - 2.5 / 10)
    assert M.normalized_regret([], [], 8) == 1.0
    with pytest.raises(ValueError):
        M.normalized_regret(ends, j, 0)


def test_majority_comparator_regret():
    ends, j, maj = [10, 20], [0.0, 1.0], [1.0, 1.0]
    opt, model = M.comparator_areas(ends, j, maj, 20)
    assert opt == pytest.approx(5 + 10)  # (0,0)->(10,1)->(20,1)
    assert model == pytest.approx(5)  # (0,0)->(10,0)->(20,1)
    assert M.majority_regret([(opt, model), (10.0, 10.0)]) == pytest.approx((15 - 5) / 25)


def test_maj_at_k_ties_and_missing():
    answers = ["a", "b", None, "a"]
    correct = [True, False, False, True]
    assert M.maj_at_k(answers, correct, 4) == 1.0
    # subsets of 2: {a,b} tie .5, {a,-} 1, {a,a} 1, {b,-} 0, {b,a} tie .5, {-,a} 1
    assert M.maj_at_k(answers, correct, 2) == pytest.approx(4 / 6)
    assert M.maj_at_k(answers, correct, 1) == pytest.approx(2 / 4)
    assert M.majority_vote_score([None, None], [False, False]) == 0.0
    assert M.majority_vote_score(["a", "b", "c"], [False, True, False]) == pytest.approx(1 / 3)
    assert M.majority_vote_score(["a", "b", "b"], [True, False, False], weights=[3, 1, 1]) == 1.0
    assert M.majority_vote_score(["a", "b", "b"], [True, False, False]) == 0.0


def test_maj_at_k_sampled_when_many_subsets():
    answers = ["a"] * 10 + ["b"] * 10
    correct = [True] * 10 + [False] * 10
    v = M.maj_at_k(answers, correct, 5, max_subsets=500, seed=1)
    assert 0.4 < v < 0.6


def test_pass_at_k():
    assert M.pass_at_k(4, 1, 2) == pytest.approx(0.5)
    assert M.pass_at_k(5, 0, 3) == 0.0
    assert M.pass_at_k(5, 3, 3) == 1.0
    assert M.pass_at_k(10, 3, 1) == pytest.approx(0.3)
    with pytest.raises(ValueError):
        M.pass_at_k(3, 4, 1)


def test_wilson():
    lo, hi = M.wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = M.wilson_interval(5, 10)
    assert lo == pytest.approx(1 - hi) and lo < 0.5 < hi
    assert M.wilson_interval(0, 0) == (0.0, 1.0)


def test_budget_curves():
    ends, j = [10, 30], [0.1, 0.5, 1.0]
    assert [M.j_at_budget(ends, j, b) for b in (0, 9, 10, 29, 30, 99)] == [0.1, 0.1, 0.5, 0.5, 1.0, 1.0]
    assert M.tokens_to_reach([0, 10, 20], [0.1, 0.5, 0.9], 0.5) == 10
    assert M.tokens_to_reach([0, 10], [0.1, 0.2], 0.5) is None
    assert not math.isnan(M.normalized_regret([5], [1.0], 5))


def test_resample_curve():
    from mrt.metrics import resample_curve

    assert resample_curve({"0": 0.1, "5": 0.5, "10": 0.9}, [0, 4, 5, 7, 10, 20]) == [0.1, 0.1, 0.5, 0.5, 0.9, 0.9]


def test_token_efficiency():
    from mrt.metrics import token_efficiency

    b = [0, 10, 20, 30, 40]
    grpo = [0.2, 0.4, 0.6, 0.7, 0.7]  # reaches its final .7 at 30 tokens
    mrt = [0.3, 0.7, 0.8, 0.8, 0.8]  # reaches .7 at 10 tokens
    assert token_efficiency(b, grpo, mrt) == 3.0
    assert token_efficiency(b, grpo, [0.1] * 5) is None
    assert token_efficiency(b, mrt, grpo) is None


def test_extrapolated_accuracy():
    from mrt.metrics import extrapolated_accuracy

    rows = [{"extensions": 0, "extra_tokens": 0.0, "j": 0.6}, {"extensions": 2, "extra_tokens": 10.0, "j": 0.8},
            {"extensions": 4, "extra_tokens": 30.0, "j": 0.7}]
    e = extrapolated_accuracy(rows, base_tokens=10.0, factors=(1, 2, 3, 5))
    assert e["1x"] == {"j": 0.6, "reached": 1.0}
    assert e["2x"]["j"] == pytest.approx(0.8)
    assert e["3x"]["j"] == pytest.approx(0.8 + 0.5 * (0.7 - 0.8))  # halfway from 2x (20 tok) to 4x (40 tok)
    assert e["5x"] == {"j": 0.7, "reached": 4.0}
