"""Hand-computed cases for the rewards, advantages and filters of mrt.advantages."""

import math

import pytest

from mrt.core import advantages as adv


def test_grpo_group_normalised():
    # group 1: [1, 0, 0, 1] mean .5, sample std sqrt(1/3)=.57735; group 2: all equal -> 0
    a = adv.grpo_advantages([1, 0, 0, 1, 1, 1, 1, 1], 4)
    s = math.sqrt(1 / 3) + adv.EPS
    assert a[:4] == pytest.approx([0.5 / s, -0.5 / s, -0.5 / s, 0.5 / s])
    assert a[4:] == [0, 0, 0, 0]
    assert adv.grpo_advantages([1, 0], 2, scale=False) == [0.5, -0.5]
    with pytest.raises(ValueError):
        adv.grpo_advantages([1, 0, 1], 2)


def test_length_penalty():
    r = adv.length_penalty_rewards([True, True, False], [10, 100, 0], max_length=100, coef=0.5)
    assert r == pytest.approx([1 - 0.05, 0.5, 0.0])
    # lengths past the cap are clipped to it
    assert adv.length_penalty_rewards([False], [300], 100, 0.5) == [-0.5]


def test_termination_baseline_unscaled():
    # terminated rows (first half) score 1, 0 -> b = .5; group mean m = (1+0+1+1)/4 = .75
    r, t = [1, 0, 1, 1], [True, True, False, False]
    a = adv.termination_baseline_advantages(r, t, 4, alpha=1.0, scale="none")
    # A = (R - .75) + 1 * (R - .5)
    assert a == pytest.approx([0.25 + 0.5, -0.75 - 0.5, 0.25 + 0.5, 0.25 + 0.5])
    # alpha = 0 is GRPO's unscaled advantage
    assert adv.termination_baseline_advantages(r, t, 4, alpha=0.0, scale="none") == pytest.approx(
        adv.grpo_advantages(r, 4, scale=False)
    )


def test_termination_baseline_progress_sign():
    # stopping now already solves it (b = 1): continuing rows that fail get a large negative
    # advantage, continuing rows that also solve it get only the group term
    a = adv.termination_baseline_advantages([1, 1, 1, 0], [True, True, False, False], 4, alpha=2.0, scale="none")
    m = 0.75
    assert a == pytest.approx([1 - m, 1 - m, 1 - m, (0 - m) + 2 * (0 - 1)])
    with pytest.raises(ValueError, match="force-terminated"):
        adv.termination_baseline_advantages([1, 0], [False, False], 2)


def test_termination_baseline_scaled():
    r, t = [1, 0, 0, 0], [True, True, False, False]
    s = adv._std(r) + adv.EPS  # sample std of [1,0,0,0] = .5
    assert adv._std(r) == pytest.approx(0.5)
    a = adv.termination_baseline_advantages(r, t, 4, alpha=1.0, scale="group")
    # m = .25, b = .5
    assert a == pytest.approx(
        [((1 - 0.25) + 0.5) / s, ((0 - 0.25) - 0.5) / s, ((0 - 0.25) - 0.5) / s, ((0 - 0.25) - 0.5) / s]
    )


def test_termination_baseline_batch_scale_and_authors_form():
    # two groups of 2; batch std of [1, 0, 1, 1] = .5
    r, t = [1, 0, 1, 1], [True, False, True, False]
    s = 0.5 + adv.EPS
    a = adv.termination_baseline_advantages(r, t, 2, alpha=1.0, scale="batch")
    # group 1: m = .5, b = 1 -> (.5 + 0), (-.5 - 1); group 2: m = 1, b = 1 -> 0, 0 (not 0/EPS)
    assert a == pytest.approx([0.5 / s, -1.5 / s, 0.0, 0.0])
    # the authors' RL README: A = R - R_termination, no group-mean term
    a = adv.termination_baseline_advantages(
        [1, 0, 1, 1], [True, True, False, False], 4, scale="none", form="termination"
    )
    assert a == pytest.approx([0.5, -0.5, 0.5, 0.5])  # b = .5
    with pytest.raises(ValueError, match="form"):
        adv.termination_baseline_advantages(r, t, 2, form="paper")
    with pytest.raises(ValueError, match="scale"):
        adv.termination_baseline_advantages(r, t, 2, scale=True)


def test_progress_from_j():
    assert adv.progress_from_j([0.25, 0.5, 0.5, 1.0]) == pytest.approx([0.25, 0.0, 0.5])
    assert adv.progress_from_j([0.3]) == []


def test_dense_token_advantages():
    # 8 tokens: episode 0 = tokens 0-2, episode 1 = tokens 3-5, answer = tokens 6-7
    a = adv.dense_token_advantages(0.5, [3, 6], [0.25, -0.5], 8, alpha=2.0)
    assert a == pytest.approx([1.0, 1.0, 1.0, -0.5, -0.5, -0.5, 0.5, 0.5])
    # ends past the completion are clipped; no episodes -> outcome everywhere
    assert adv.dense_token_advantages(1.0, [10], [1.0], 3, alpha=1.0) == [2.0, 2.0, 2.0]
    assert adv.dense_token_advantages(-1.0, [], [], 2, alpha=1.0) == [-1.0, -1.0]
    with pytest.raises(ValueError):
        adv.dense_token_advantages(0.0, [1, 2], [0.1], 3, 1.0)


def test_star_filter():
    assert adv.star_keep([1, 0, True, False]) == [True, False, True, False]
    assert adv.kept_advantages([True, False]) == [1.0, 0.0]
    # token-mean loss: kept rows weigh T / T_kept, so the step is the mean over the kept tokens
    # whether 1 or 3 of 4 traces are kept (rows of 10, 20, 30, 40 tokens: T = 100)
    assert adv.kept_advantages([True, False, False, False], [10, 20, 30, 40]) == pytest.approx([10, 0, 0, 0])
    assert adv.kept_advantages([True, True, True, False], [10, 20, 30, 40]) == pytest.approx([100 / 60] * 3 + [0])
    # one process's rows, with the batch totals of all processes
    assert adv.kept_advantages([True, False], [10, 20], total=(200, 50)) == pytest.approx([4.0, 0.0])
    assert adv.kept_advantages([False, False], [10, 20]) == [0.0, 0.0]


def test_mrt_star_filter():
    correct = [True, True, True, False]
    curves = [
        [0.25, 0.5, 1.0],  # 2 episodes: (1 - .25) / 2 = .375
        [0.25, 1.0],  # 1 episode: .75  <- best
        [0.25, 0.0, 0.25, 1.0],  # 3 episodes: .25
        [0.25, 1.0],  # wrong final answer: never kept
    ]
    assert adv.mrt_star_keep(correct, curves, 4) == [False, True, False, False]


def test_mrt_star_filter_final_j_and_ties():
    correct = [True, True, True, True]
    curves = [[0.0, 1.0], [0.5, 1.5 - 1.0], [0.0, 0.4], [0.0, 1.0]]
    # row 2 ends below min_final_j; rows 0 and 3 tie at 1.0; row 1 scores 0
    assert adv.mrt_star_keep(correct, curves, 4) == [True, False, False, True]
    # a group with no candidate keeps nothing
    assert adv.mrt_star_keep([False, False], [[0, 1], [0, 1]], 2) == [False, False]
    # a correct trace with no thinking episode and a confident J(empty) wasted no episode: kept
    assert adv.mrt_star_keep([True, True], [[1.0], [1.0]], 2) == [True, True]
    assert adv.mrt_star_keep([True, True], [[1.0], [0.0, 1.0]], 2) == [True, True]
    assert adv.mrt_star_keep([True, True, True], [[1.0], [0.0, 1.0], [0.0, 0.5, 1.0]], 3) == [True, True, False]
    # ... but not when J(empty) is below min_final_j
    assert adv.mrt_star_keep([True, True], [[0.25], [0.0, 1.0]], 2) == [False, True]


def test_budget_prior_is_a_distribution():
    assert adv.budget_prior("uniform", 4) == [0.25] * 4
    assert adv.budget_prior("linear", 3) == pytest.approx([1 / 6, 2 / 6, 3 / 6])
    assert adv.budget_prior("0.1,0.2,0.3,0.4", 4) == pytest.approx([0.1, 0.2, 0.3, 0.4])
    for bad, why in (
        ("0.5,0.6", "not a distribution"),
        ("0.5,0.5", "2 probabilities for a grid of 4"),
        ("-0.5,0.5,0.5,0.5", "not a distribution"),
        ("beta", "expected uniform, linear"),
    ):
        with pytest.raises(ValueError, match=why):
            adv.budget_prior(bad, 4 if bad != "0.5,0.6" else 2)
    assert adv.budget_grid(16, 4) == [4, 8, 12, 16]
    with pytest.raises(ValueError):
        adv.budget_grid(3, 4)


def test_brpo_by_hand():
    # prior (.5, .5); rollout 1 fails at b1 and succeeds at b2, rollout 2 succeeds at both
    prior, r = [0.5, 0.5], [[0.0, 1.0], [1.0, 1.0]]
    assert adv.brpo_returns(r[0], prior) == [0.5, 0.5]
    assert adv.brpo_returns(r[1], prior) == [1.0, 0.5]
    a = adv.brpo_segment_advantages(r, prior, 2)
    # s = 0: G_0 - mean G_0 (.75); s = 1: baseline (1 * V1 + 1 * V2) / 2 with V2 = mean G_1 = .5 and
    # V1 = own score at b_1 times p_2: 0 for rollout 1, .5 for rollout 2
    assert a[0] == pytest.approx([0.5 - 0.75, 0.5 - (0.0 + 0.5) / 2])
    assert a[1] == pytest.approx([1.0 - 0.75, 0.5 - (0.5 + 0.5) / 2])
    assert a[0][1] > 0 and a[1][1] == pytest.approx(0.0)  # credit where rollout 1 found the answer
    # three budgets, a group of one, uniform prior, scores (0, 1, 1): G = (2/3, 2/3, 1/3) = V2;
    # s = 1: prev = 0, baseline 2 V2 / 3 = 4/9; s = 2: prev = (1*0 + 2*1) / 3, V1 = prev / 3 = 2/9,
    # baseline (2 * 2/9 + 1/3) / 3 = 7/27
    a = adv.brpo_segment_advantages([[0.0, 1.0, 1.0]], [1 / 3] * 3, 1)
    assert a[0] == pytest.approx([0.0, 2 / 3 - 4 / 9, 1 / 3 - 7 / 27])
    with pytest.raises(ValueError):
        adv.brpo_segment_advantages([[1.0]], prior, 1)


def test_segment_token_advantages():
    # budgets 2, 4: thinking tokens 0-1 in segment 1, 2-3 in segment 2, token 4 past b_m in the last;
    # tokens 5-6 (answer) get the answer's advantage
    assert adv.segment_token_advantages([1.0, 2.0], [2, 4], think_len=5, length=7, answer_adv=9.0) == [
        1.0,
        1.0,
        2.0,
        2.0,
        2.0,
        9.0,
        9.0,
    ]
    assert adv.segment_token_advantages([1.0, 2.0], [2, 4], think_len=0, length=2, answer_adv=3.0) == [3.0, 3.0]


def test_online_rewards_and_scaling():
    # J curves: (.25 -> .5 -> 1) and (.25 -> .25): progress sums .75 and 0
    r = adv.online_rewards([True, False], [[0.25, 0.5, 1.0], [0.25, 0.25]], alpha=2.0)
    assert r == pytest.approx([1 + 2 * 0.75, 0.0])
    assert adv.online_rewards([True], [[0.5]], 1.0) == [1.0]  # no episode: no progress
    assert adv.scaled_advantages([2.5, 0.0], 2, "none") == pytest.approx([1.25, -1.25])
    assert adv.scaled_advantages([2.5, 0.0], 2, "group") == pytest.approx(adv.grpo_advantages([2.5, 0.0], 2))
    assert adv.scaled_advantages([2.5, 0.0, 1, 1], 2, "batch")[2:] == [0.0, 0.0]
