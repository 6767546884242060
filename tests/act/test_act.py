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
    return {  # a trace record (mrt.core.trace.TraceRecord) with its figures' fields
        "problem_id": pid,
        "trace": trace,
        "n_output_tokens": 32,
        "n_thinking_tokens": 30,
        "status": "ok",
        "correct": True,
        "closed_thinking": True,
        "episodes": [{"start": 0, "end": 10}, {"start": 10, "end": 30}],
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
    # boundaries 0 and 1 (16 tokens); the answer is the majority of its 2 signal answers ("3" and "2" tie:
    # the earliest, "3", graded right), at no further cost
    r = replay(b, parse_rule("j-threshold:tau=0.5"), "oracle", k=2)
    assert r == {
        "stop": 1,
        "acc": 1.0,
        "thinking": 10,
        "generated": 10.0,
        "overhead": 16.0,
        "answer_tokens": 0.0,
        "reused": True,
        "tokens": 26.0,
    }
    # without reuse: a fresh forced answer (4 tokens), its accuracy the held-out answers' mean
    r = replay(b, parse_rule("j-threshold:tau=0.5"), "oracle", k=2, reuse=False)
    assert (r["acc"], r["tokens"], r["reused"]) == (1.0, 30.0, False)
    # the same rule on the vote share stops at once (0.5 at boundary 0): the majority "1" is wrong
    r = replay(b, parse_rule("j-threshold:tau=0.5"), "vote", k=2)
    assert (r["stop"], r["acc"], r["tokens"]) == (0, 0.0, 8.0)
    # confidence: one trial answer per boundary; exp(-0.5) = 0.61 < 0.9 at boundaries 0 and 1; it would
    # fire at the natural end, which is never measured: 2 trial answers (8 tokens) and a fresh answer
    r = replay(b, parse_rule("confidence:tau=0.9"), "none", k=2)
    assert r["stop"] == 2 and r["overhead"] == 8.0 and r["tokens"] == 30 + 8 + 4 and not r["reused"]
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
    # same accuracy as the 10-token budget, 26 tokens against its 14: 12 tokens lost, none gained
    assert jt["accuracy"] == 1.0 and jt["tokens"] == 26.0
    assert jt["tokens_saved_vs_budget_curve"] == pytest.approx(14.0 - 26.0)
    assert jt["accuracy_vs_budget_curve"] == pytest.approx(0.0)
    # both problems alike: every resample gives the same margins
    assert jt["tokens_saved_vs_budget_curve_ci"] == pytest.approx([-12.0, -12.0])
    assert jt["accuracy_vs_budget_curve_ci"] == pytest.approx([0.0, 0.0])
    assert jt["accuracy_vs_budget_curve_defined_share"] == 1.0
    nat = pts[("natural", "none")]
    assert nat["accuracy_vs_natural"] == 0.0 and nat["token_ratio_vs_natural"] == 1.0
    assert pts[("budget:tokens=0", "none")]["accuracy_vs_natural"] == -0.5


def test_select_on_a_validation_split():
    from mrt.act.tradeoff import select

    def pt(rule, family, source, acc, tokens):
        return {"rule": rule, "family": family, "source": source, "accuracy": acc, "tokens": tokens}

    points = [
        pt("budget:tokens=5", "budget", "none", 0.5, 9.0),
        pt("natural", "natural", "none", 0.7, 20.0),
        pt("j-threshold:tau=0.5", "j-threshold", "estimator", 0.72, 15.0),
        pt("j-threshold:tau=0.75", "j-threshold", "estimator", 0.72, 18.0),  # a tie: the fewer tokens win
        pt("j-threshold:tau=1", "j-threshold", "estimator", 0.80, 21.0),  # more than the natural end's tokens
        pt("j-threshold:tau=0.5", "j-threshold", "oracle", 0.6, 60.0),
        pt("j-threshold:tau=1", "j-threshold", "oracle", 0.7, 80.0),
    ]
    sel = select(points)
    assert (
        sel["j-threshold|estimator"]["rule"] == "j-threshold:tau=0.5" and not sel["j-threshold|estimator"]["never_stop"]
    )
    assert sel["j-threshold|estimator"]["most_accurate"]["rule"] == "j-threshold:tau=1"
    # no oracle parameter spends at most the natural end's tokens: never stop; the most accurate, for context
    assert sel["j-threshold|oracle"]["rule"] == "natural" and sel["j-threshold|oracle"]["never_stop"]
    assert sel["j-threshold|oracle"]["most_accurate"] == {"rule": "j-threshold:tau=1", "accuracy": 0.7, "tokens": 80.0}
    # a cheap parameter that loses accuracy is not chosen over never stopping
    cheap = points + [pt("confidence:tau=0.3", "confidence", "none", 0.4, 8.0)]
    assert select(cheap)["confidence|none"]["rule"] == "natural"


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
    from mrt.measure.analyze import AnalyzeConfig
    from mrt.pipelines import analyze as run_analysis

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
    # seeded and deterministic: the same seed trains the same estimator
    again = train_estimator(
        EstimatorConfig(analysis=[str(an)], out=str(tmp_path / "est2"), steps=20, batch_size=8, held_out=0.34)
    )
    assert again["calibration"] == rep["calibration"]
    assert rep["sampling"] == {"temperature": 1.0, "top_p": 1.0}  # what its traces were sampled at
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
    # mrt early-stop replays the analysis as the controller pays: the natural end costs the thinking and its </think>
    from mrt.cli import main

    assert main(["early-stop", "--analysis", str(an), "--k", "2", "--out", str(tmp_path / "es"), "--estimates",
                 str(tmp_path / "est.jsonl")]) == 0  # fmt: skip
    res = json.loads((tmp_path / "es" / "tradeoff.json").read_text())
    nat = next(p for p in res["points"] if p["family"] == "natural")
    want = sum(r["prefixes"][-1]["tokens"] + r["closed_thinking"] for r in recs) / len(recs)
    assert nat["thinking_tokens"] == pytest.approx(want) and nat["overhead_tokens"] == 0
    assert res["reuse_signal_answer"] and any(p["source"] == "estimator" for p in res["points"])
    # the online stopper with the estimator samples no signal tokens but processes some: both counted
    base = ["eval", "--task", "star", "--knobs", "arms=2-3", "arm_len=2", "--n-problems", "2", "--samples", "2"]
    stop = ["--stop", "j-threshold:tau=0.99", "--j-source", "estimator", "--estimator", str(tmp_path / "est")]
    assert main(base + stop + ["--out", str(tmp_path / "ev")]) == 0
    s = json.loads((tmp_path / "ev" / "summary.json").read_text())["stop"]
    assert s["mean_overhead_tokens"] == 0 and s["mean_estimator_tokens_processed"] > 0
    rows = [json.loads(x) for x in (tmp_path / "ev" / "samples.jsonl").read_text().splitlines()]
    for t in (t for r in rows for t in r["controller"]):
        assert t["estimator_tokens_processed"] >= t["boundaries"] * 10  # a prompt of 10+ tokens per forward pass
