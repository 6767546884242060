"""Acting at test time: stop rules (hand-computed), the trade-off replay on hand-made records, the
online controller on a real model, and the learned progress estimator."""

import json

import pytest

from mrt.act.rules import parse_rule, should_stop, stop_index
from mrt.act.tradeoff import boundaries, replay, tradeoff


def test_rules_parse_and_refuse_by_name():
    r = parse_rule("stall:eps=0.05,m=2")
    assert r.name == "stall" and r.params == {"eps": 0.05, "m": 2} and r.signal == "j"
    assert str(parse_rule("j-threshold:tau=0.8")) == "j-threshold:tau=0.8"
    assert parse_rule("natural").params == {}
    for bad, msg in [
        ("halt:tau=1", "unknown stop rule 'halt'"),
        ("j-threshold:tau=1.5", "'tau' must be"),
        ("j-threshold", "needs tau"),
        ("stall:eps=0,m=0.5", "'m' must be an integer"),
        ("stall:eps=0,m=2,x=1", "no parameter 'x'"),
        ("confidence:tau=high", "must be a number"),
        ("budget:tokens=-5", "'tokens' must be"),
    ]:
        with pytest.raises(ValueError, match=msg):
            parse_rule(bad)


def test_stop_index_hand_computed():
    tokens = [0, 10, 25, 40, 60]  # boundaries: before thinking, after 1..4 episodes (the last: natural end)
    j = [0.25, 0.5, 0.75, 0.75, 1.0]
    assert stop_index(parse_rule("j-threshold:tau=0.7"), j, tokens) == 2
    assert stop_index(parse_rule("j-threshold:tau=0.2"), j, tokens) == 0  # stop before thinking at all
    # stall: J_j - J_{j-1} <= 0 first at j = 3 (0.75 -> 0.75); over m = 2 episodes never (0.5, 0.25, 0.5)
    assert stop_index(parse_rule("stall:eps=0,m=1"), j, tokens) == 3
    assert stop_index(parse_rule("stall:eps=0,m=2"), j, tokens) == 4
    assert stop_index(parse_rule("stall:eps=0.25,m=2"), j, tokens) == 3  # 0.75 - 0.5 <= 0.25
    assert stop_index(parse_rule("budget:tokens=30"), j, tokens) == 2
    assert stop_index(parse_rule("budget:tokens=5"), j, tokens) == 0
    assert stop_index(parse_rule("natural"), j, tokens) == 4
    assert stop_index(parse_rule("j-threshold:tau=1"), [0.1, 0.2], [0, 9]) == 1  # never reached: natural end
    assert should_stop(parse_rule("confidence:tau=0.9"), [0.5, 0.95])


def _prefix(tokens, grades, labels, lp, answer_tokens=4.0):
    return {
        "tokens": tokens,
        "grades": grades,
        "labels": labels,
        "answers": labels,
        "mean_logprobs": lp,
        "answer_tokens": answer_tokens,
    }


def _record(pid="p", trace=0):
    # 3 boundaries, 4 answers each: the first 2 are the controller's signal, the last 2 measure accuracy
    return {
        "problem_id": pid,
        "trace": trace,
        "prefixes": [
            _prefix(0, [False, False, True, False], ["1", "2", "3", "3"], [-2.0, -1, -1, -1]),
            _prefix(10, [True, False, True, True], ["3", "2", "3", "3"], [-0.5, -1, -1, -1]),
            _prefix(30, [True, True, True, True], ["3", "3", "3", "3"], [-0.01, -1, -1, -1]),
        ],
    }


def test_replay_hand_computed():
    b = boundaries(_record(), k=2)
    assert [x.j for x in b] == [0.0, 0.5, 1.0]  # oracle J from the 2 signal answers
    assert [x.vote for x in b] == [0.5, 0.5, 1.0]  # top vote share of the 2 signal answers
    assert [x.acc for x in b] == [0.5, 1.0, 1.0]  # held-out answers
    # j-threshold 0.5 (oracle) stops at boundary 1: 10 thinking tokens, 2 signal answers of 4 tokens at
    # boundaries 0 and 1 (16 tokens), plus the final answer (4)
    r = replay(b, parse_rule("j-threshold:tau=0.5"), "oracle", k=2)
    assert r == {"stop": 1, "acc": 1.0, "thinking": 10, "overhead": 16.0, "tokens": 30.0}
    # the same rule on the vote share stops at once (0.5 at boundary 0)
    assert replay(b, parse_rule("j-threshold:tau=0.5"), "vote", k=2)["stop"] == 0
    # confidence: one trial answer per boundary; exp(-0.5) = 0.61 < 0.9, exp(-0.01) = 0.99 >= 0.9
    r = replay(b, parse_rule("confidence:tau=0.9"), "none", k=2)
    assert r["stop"] == 2 and r["overhead"] == 12.0 and r["tokens"] == 30 + 12 + 4
    assert replay(b, parse_rule("natural"), "none", k=2)["tokens"] == 34.0
    with pytest.raises(ValueError, match="more than k"):
        boundaries(_record(), k=4)


def test_tradeoff_against_the_budget_curve():
    recs = [_record("p", 0), _record("q", 0)]
    res = tradeoff(recs, k=2, rules=["j-threshold:tau=0.5"], sources=("oracle",), budgets=[0, 10, 30], draws=50)
    pts = {(p["rule"], p["source"]): p for p in res["points"]}
    b10 = pts[("budget:tokens=10", "none")]
    assert b10["accuracy"] == 1.0 and b10["tokens"] == 14.0 and b10["accuracy_ci"] == (1.0, 1.0)
    jt = pts[("j-threshold:tau=0.5", "oracle")]
    # same accuracy as the 10-token budget, 30 tokens against its 14: 16 tokens lost, none gained
    assert jt["accuracy"] == 1.0 and jt["tokens"] == 30.0
    assert jt["tokens_saved_vs_budget_curve"] == pytest.approx(14.0 - 30.0)
    assert jt["accuracy_vs_budget_curve"] == pytest.approx(0.0)
    nat = pts[("natural", "none")]
    assert nat["accuracy_vs_natural"] == 0.0 and nat["token_ratio_vs_natural"] == 1.0
    assert pts[("budget:tokens=0", "none")]["accuracy_vs_natural"] == -0.5


def test_online_controller_on_the_shipped_model(tmp_path):
    from mrt.cli import main

    base = [
        "eval",
        "--task",
        "star",
        "--knobs",
        "arms=2",
        "arm_len=2",
        "--n-problems",
        "3",
        "--samples",
        "2",
        "--temperature",
        "1",
        "--top-p",
        "1",
    ]
    assert main(base + ["--stop", "natural", "--out", str(tmp_path / "nat")]) == 0
    assert main(base + ["--stop", "j-threshold:tau=0", "--out", str(tmp_path / "j0")]) == 0
    assert main(base + ["--stop", "budget:tokens=0", "--out", str(tmp_path / "b0")]) == 0
    nat = json.loads((tmp_path / "nat" / "summary.json").read_text())
    j0 = json.loads((tmp_path / "j0" / "summary.json").read_text())
    b0 = json.loads((tmp_path / "b0" / "summary.json").read_text())
    assert nat["stop"]["stopped_early_fraction"] == 0.0 and nat["stop"]["mean_thinking_tokens"] > 0
    # tau = 0 stops at the first boundary, before any thinking, after paying for its 4 signal answers
    assert j0["stop"]["stopped_early_fraction"] == 1.0 and j0["stop"]["mean_thinking_tokens"] == 0
    assert j0["stop"]["mean_overhead_tokens"] > 0
    assert b0["stop"]["mean_thinking_tokens"] == 0 and b0["stop"]["mean_overhead_tokens"] == 0
    rows = [json.loads(x) for x in (tmp_path / "j0" / "samples.jsonl").read_text().splitlines()]
    assert all(t["stop_tokens"] == 0 and t["signals"] for r in rows for t in r["controller"])
    # bad input is refused by name, before any work
    assert main(base + ["--stop", "stall:eps=0,m=0", "--out", str(tmp_path / "bad")]) == 2
    assert main(base + ["--stop", "j-threshold:tau=0.5", "--j-source", "guess", "--out", str(tmp_path / "bad")]) == 2
    assert (
        main(base + ["--stop", "j-threshold:tau=0.5", "--j-source", "estimator", "--out", str(tmp_path / "bad")]) == 2
    )


def test_estimator_trains_calibrates_and_predicts(tmp_path):
    from mrt.act.estimator import EstimatorConfig, calibration, predict, read_estimates, train_estimator
    from mrt.measure.analyze import AnalyzeConfig, run_analysis

    cal = calibration([0.1, 0.15, 0.9, 0.95], [0.0, 0.5, 1.0, 1.0], bins=2)
    assert [b["n"] for b in cal["bins"]] == [2, 2]
    assert cal["ece"] == pytest.approx((2 * abs(0.125 - 0.25) + 2 * abs(0.925 - 1.0)) / 4)
    assert cal["brier"] == pytest.approx((0.01 + 0.1225 + 0.01 + 0.0025) / 4)
    an = tmp_path / "an"
    run_analysis(
        AnalyzeConfig(
            out=str(an),
            n_problems=6,
            traces_per_problem=2,
            answers_per_prefix=4,
            extensions=0,
            maj_k=[1, 2, 4],
            knobs=["arms=2-3", "arm_len=2"],
        )
    )
    rep = train_estimator(
        EstimatorConfig(analysis=[str(an)], out=str(tmp_path / "est"), steps=20, batch_size=8, held_out=0.34)
    )
    c = rep["calibration"]
    assert rep["held_out_problems"] == 2 and c["n"] == rep["held_out_examples"] > 0
    assert 0 <= c["ece"] <= 1 and (tmp_path / "est" / "reliability.png").is_file()
    n = predict(tmp_path / "est", an, tmp_path / "est.jsonl")
    est = read_estimates(tmp_path / "est.jsonl")
    recs = [json.loads(x) for x in (an / "traces.jsonl").read_text().splitlines()]
    assert n == len(recs) == len(est) == 12
    assert all(len(est[(r["problem_id"], r["trace"])]) == len(r["prefixes"]) for r in recs)
    assert all(0 < v < 1 for vs in est.values() for v in vs)
    with pytest.raises(ValueError, match="traces.jsonl"):
        train_estimator(EstimatorConfig(analysis=[str(tmp_path)], out=str(tmp_path / "e2")))
