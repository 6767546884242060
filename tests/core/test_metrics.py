import math

import pytest

from mrt.core import metrics as M


def test_progress():
    assert M.progress([0.25, 0.5, 0.5, 1.0]) == [0.25, 0.0, 0.5]
    assert M.progress([0.3]) == []


def test_normalized_regret_hand_computed():
    # thinking axis: the curve starts at (0, J(empty)) and is linear between episode ends
    ends, j = [10, 30], [0.2, 0.5, 1.0]
    # area on [0, 40]: 10*(0.2+0.5)/2 + 20*(0.5+1)/2 + 10*1 = 3.5 + 15 + 10 = 28.5
    assert M.normalized_regret(ends, j, 40) == pytest.approx(1 - 28.5 / 40)
    # cut-off inside the second segment: J(20) = 0.75
    assert M.normalized_regret(ends, j, 20) == pytest.approx(1 - (3.5 + 0.5 * (0.5 + 0.75) * 10) / 20)
    # cut-off inside the first segment: J(5) = 0.35
    assert M.normalized_regret(ends, j, 5) == pytest.approx(1 - 0.5 * (0.2 + 0.35) * 5 / 5)
    assert M.normalized_regret(ends, j, 10) == pytest.approx(1 - 3.5 / 10)
    # no thinking at all: answering at once is worth J(empty), at every budget (was 1.0)
    assert M.normalized_regret([], [0.3], 8) == pytest.approx(0.7)
    assert M.normalized_regret([], [0.0], 8) == 1.0
    with pytest.raises(ValueError):
        M.normalized_regret(ends, j, 0)
    with pytest.raises(ValueError):
        M.normalized_regret(ends, j[1:], 40)  # J(empty) missing


def test_normalized_regret_authors_axis():
    # the authors' notebook: x_j = meta-prover input tokens + mean answer tokens; curve from (0, 0)
    xs = M.authors_axis([15, 35, 65], [4.0, 4.0, 4.0])
    assert xs == [19, 39, 69]
    assert M.authors_axis([15, 35, 45], [4.0, 30.0, 2.0]) == [19, 65, 65]  # never backwards
    j = [0.2, 0.5, 1.0]
    # area on [0, 100]: 19*0.1 + 20*0.35 + 30*0.75 + 31*1 = 62.4
    assert M.normalized_regret_authors(xs, j, 100) == pytest.approx(0.376)
    # C = 15 falls in the first segment, from (0, 0) to (19, 0.2): J(15) = 0.2*15/19
    assert M.normalized_regret_authors(xs, j, 15) == pytest.approx(1 - 0.5 * 15 * (0.2 * 15 / 19) / 15)
    assert M.normalized_regret_authors(xs, j, 15) == pytest.approx(0.921053, abs=1e-6)
    with pytest.raises(ValueError):
        M.normalized_regret_authors(xs, j[:2], 100)


def test_majority_regret_authors_episode_axis():
    # one trace, rows (maj@1, maj@2, maj@4, maj@8) per prefix (J(empty) first)
    rows = [[0.2, 0.3, 0.5, 0.6], [0.5, 0.6, 0.7, 0.8], [1.0, 1.0, 1.0, 1.0]]
    # step 0: vote (x=1,2,4,6) = .2 .3 .5 .55; thinking on, .2 -> .5 over x 1..6: .2 .26 .38 .5
    # opt = .2 .3 .5 .55: area 0.25 + 0.8 + 1.05 = 2.1; line: 0.23 + 0.64 + 0.88 = 1.75
    assert M.majority_regret(rows, 1) == pytest.approx((2.1 - 1.75) / 2.1)
    # step 1: vote .5 .6 .7 .75; line .5 -> 1: .5 .6 .8 1.0; opt .5 .6 .8 1.0 = line: gap 0
    # area_opt = 0.55 + 1.4 + 1.8 = 3.75, so (0.35 + 0) / (2.1 + 3.75)
    assert M.majority_regret(rows, 2) == pytest.approx(0.35 / 5.85)
    assert M.majority_regret(rows, 6) == pytest.approx(0.35 / 5.85)  # only 2 steps exist
    assert M.majority_regret([[0, 0, 0, 0], [0, 0, 0, 0]], 1) is None  # no comparator area: skipped
    assert M.majority_regret([[1, 1, 1, 1]], 3) is None  # no step


def test_maj_at_k_ties_and_missing():
    answers = ["a", "b", None, "a"]
    correct = [True, False, False, True]
    assert M.maj_at_k(answers, correct, 4) == 1.0
    # subsets of 2: {a,b} tie .5, {a,-} 1, {a,a} 1, {b,-} 0, {b,a} tie .5, {-,a} 1
    assert M.maj_at_k(answers, correct, 2) == pytest.approx(4 / 6)
    assert M.maj_at_k(answers, correct, 1) == pytest.approx(2 / 4)
    assert M.majority_vote_score([None, None], [False, False]) == 0.0
    # a three-way tie with the correct answer: 1/3 expected, 0.5 by the authors' rule
    assert M.majority_vote_score(["a", "b", "c"], [False, True, False]) == pytest.approx(1 / 3)
    assert M.majority_vote_score(["a", "b", "c"], [False, True, False], tie="authors") == 0.5
    assert M.majority_vote_score(["a", "b", "c"], [False, False, False], tie="authors") == 0.0
    assert M.majority_vote_score(["a", "b", "b"], [True, False, False], weights=[3, 1, 1]) == 1.0
    assert M.majority_vote_score(["a", "b", "b"], [True, False, False]) == 0.0
    with pytest.raises(ValueError):
        M.majority_vote_score(["a"], [True], tie="coin")


def test_vote_weights_are_the_authors():
    # 2 ** mean log-prob: a confident answer (-0.1) outweighs two unsure ones (-3)
    w = M.vote_weights([-0.1, -3.0, -3.0])
    assert w == pytest.approx([2**-0.1, 0.125, 0.125])
    assert M.majority_vote_score(["a", "b", "b"], [True, False, False], weights=w) == 1.0


def test_maj_at_k_votes_equivalent_answers_together():
    from mrt.tasks import get_task
    from mrt.tasks.base import Problem

    task = get_task("math")
    p = Problem("p", "", "1/2")
    answers = ["\\frac{1}{2}", "0.5", "3", "3"]
    correct = [task.grade(p, a) for a in answers]
    assert correct == [True, True, False, False]
    labels = task.answer_labels(answers)
    assert labels == ["\\frac{1}{2}", "\\frac{1}{2}", "3", "3"]
    # raw strings: "3" wins 2 to 1 (maj@4 = 0); as labels: a two-way tie with the correct answer
    assert M.maj_at_k(answers, correct, 4) == 0.0
    assert M.maj_at_k(labels, correct, 4) == 0.5
    assert M.maj_at_k(labels, correct, 4, tie="authors") == 0.5
    assert task.answer_labels([None, "x", "x"]) == [None, "x", "x"]


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
    assert not math.isnan(M.normalized_regret([5], [0.0, 1.0], 5))


def test_tokens_to_fraction_reaches_the_final_accuracy():
    # final accuracy 2/3: a target rounded to 4 places (0.6667) would never be reached
    b, acc = [0, 10, 20], [0.0, 1 / 3, 2 / 3]
    t = M.tokens_to_fraction(b, acc)
    assert t["1"] == {"accuracy": pytest.approx(2 / 3), "tokens": 20}
    assert t["0.5"]["tokens"] == 10 and t["0.9"]["tokens"] == 20
    assert set(t) == {"0.5", "0.75", "0.9", "1"}


def test_step_points_are_lossless():
    b, acc = [0, 3, 5, 9, 12, 40], [0.1, 0.1, 0.4, 0.4, 0.4, 0.4]
    pts = M.step_points(b, acc)
    assert pts == {"0": 0.1, "5": 0.4, "40": 0.4}  # the changes, and the last point (the tail)
    assert M.resample_curve(pts, b) == acc


def test_resample_curve():
    from mrt.core.metrics import resample_curve

    assert resample_curve({"0": 0.1, "5": 0.5, "10": 0.9}, [0, 4, 5, 7, 10, 20]) == [0.1, 0.1, 0.5, 0.5, 0.9, 0.9]


def test_token_efficiency():
    from mrt.core.metrics import token_efficiency

    b = [0, 10, 20, 30, 40]
    grpo = [0.2, 0.4, 0.6, 0.7, 0.7]  # reaches its final .7 at 30 tokens
    mrt = [0.3, 0.7, 0.8, 0.8, 0.8]  # reaches .7 at 10 tokens
    assert token_efficiency(b, grpo, mrt) == 3.0
    assert token_efficiency(b, grpo, [0.1] * 5) is None
    assert token_efficiency(b, mrt, grpo) is None


def test_extrapolated_accuracy():
    from mrt.core.metrics import extrapolated_accuracy

    rows = [
        {"extensions": 0, "extra_tokens": 0.0, "j": 0.6},
        {"extensions": 2, "extra_tokens": 10.0, "j": 0.8},
        {"extensions": 4, "extra_tokens": 30.0, "j": 0.7},
    ]
    e = extrapolated_accuracy(rows, base_tokens=10.0, factors=(1, 2, 3, 5))
    assert e["1x"] == {"j": 0.6, "reached": 1.0}
    assert e["2x"]["j"] == pytest.approx(0.8)
    assert e["3x"]["j"] == pytest.approx(0.8 + 0.5 * (0.7 - 0.8))  # halfway from 2x (20 tok) to 4x (40 tok)
    assert e["5x"] == {"j": 0.7, "reached": 4.0}


def test_regret_split_by_hand():
    # J(empty) 0.5, J 1.0 after the first episode (ends at 4) and after the second (ends at 8), C = 8.
    # Interpolated: area 0.75 * 4 (the ramp) + 1.0 * 4 = 7, regret 1/8; before the first end
    # (1 - J) on the ramp: 4 - 3 = 1, so 1/8; after it: 0. Start 1 - 0.5; progress area 7/8 - 0.5.
    s = M.regret_split([4, 8], [0.5, 1.0, 1.0], 8)
    assert s == pytest.approx(
        {"regret": 0.125, "before_first_end": 0.125, "after_first_end": 0.0, "start": 0.5, "progress_area": 0.375}
    )
    assert s["regret"] == pytest.approx(M.normalized_regret([4, 8], [0.5, 1.0, 1.0], 8))
    # Step curve: 0.5 on [0, 4), 1 on [4, 8]: area 6, regret 1/4, all of it before the first end
    t = M.regret_split([4, 8], [0.5, 1.0, 1.0], 8, "step")
    assert t == pytest.approx(
        {"regret": 0.25, "before_first_end": 0.25, "after_first_end": 0.0, "start": 0.5, "progress_area": 0.25}
    )
    assert M.normalized_regret_step([4, 8], [0.5, 1.0, 1.0], 8) == pytest.approx(0.25)
    # Thinking that loses: J(empty) 1, 0 after the episode ending at 2, C = 4. Interpolated area
    # 0.5 * 2 + 0 = 1: regret 3/4, before the first end 2 - 1 = 1 -> 1/4, after 2 -> 1/2;
    # start 0, progress area 1/4 - 1 = -3/4 (thinking lowered J)
    u = M.regret_split([2], [1.0, 0.0], 4)
    assert u == pytest.approx(
        {"regret": 0.75, "before_first_end": 0.25, "after_first_end": 0.5, "start": 0.0, "progress_area": -0.75}
    )
    # No thinking: the whole regret is the answer before thinking, before any episode end
    assert M.regret_split([], [0.25], 8) == pytest.approx(
        {"regret": 0.75, "before_first_end": 0.75, "after_first_end": 0.0, "start": 0.75, "progress_area": 0.0}
    )
    # A budget inside the first episode: the ramp from 0.5 to 1 over [0, 4] cut at 2 (area 1.25)
    assert M.regret_split([4], [0.5, 1.0], 2)["before_first_end"] == pytest.approx(1 - 1.25 / 2)
    with pytest.raises(ValueError):
        M.regret_split([4], [0.5, 1.0], 8, "cubic")


def test_interpolated_and_step_accuracy_by_hand():
    ends, j = [4, 8], [0.5, 1.0, 0.0]
    assert [M.j_interpolated(ends, j, t) for t in (0, 2, 4, 6, 8, 20)] == pytest.approx([0.5, 0.75, 1.0, 0.5, 0.0, 0.0])
    assert [M.j_at_budget(ends, j, t) for t in (0, 2, 4, 6, 8, 20)] == [0.5, 0.5, 1.0, 1.0, 0.0, 0.0]


def test_summary_holds_the_split_and_both_curves():
    from mrt.core.figures import aggregate

    rec = {
        "problem_id": "p",
        "n_output_tokens": 9,
        "n_thinking_tokens": 8,
        "status": "ok",
        "correct": True,
        "episodes": [{"end": 4}, {"end": 8}],
        "progress": [0.5, 0.0],
        "prefixes": [
            {"j": j, "maj_at_k": {"1": j}, "pass_at_k": {"1": j}, "input_tokens": 10 + t, "answer_tokens": 2}
            for j, t in ((0.5, 0), (1.0, 4), (1.0, 8))
        ],
    }
    s = aggregate([rec, dict(rec, problem_id="q")], [8], "thinking")
    assert s["regret_split"]["8"] == pytest.approx(M.regret_split([4, 8], [0.5, 1.0, 1.0], 8))
    assert s["regret_by_curve"]["interpolated"] == pytest.approx({"8": 0.125})
    assert s["regret_by_curve"]["step"] == pytest.approx({"8": 0.25})
    assert s["accuracy_vs_tokens_interpolated"] == pytest.approx({"0": 0.5, "4": 1.0, "8": 1.0})
    assert s["accuracy_vs_tokens"] == {"0": 0.5, "4": 1.0, "8": 1.0}
