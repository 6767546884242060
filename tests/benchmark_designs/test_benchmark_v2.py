"""The didactic benchmark's own figures (benchmarks/didactic_v2.py): hint uptake, paired
bootstrap intervals, the relative gain, selection from the committed tuning table, and run
records that hold a real analysis' figures."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from benchmarks import didactic_v2 as D
from benchmarks import didactic_v2_settings as S

ROOT = Path(__file__).resolve().parents[2]

from mrt.tasks import get_task, parse_knobs  # noqa: E402


def test_first_walk_arm():
    assert D.first_walk_arm("try v5 v31 v25 dead try v5 v9 found </think> answer v5 v9") == "v31"
    assert D.first_walk_arm("check v1 v2 found") == "v2"
    assert D.first_walk_arm("</think> answer v5 v9 <eos>") is None  # no walk before the answer
    assert D.first_walk_arm("try v5") is None  # cut off before the first arm node


def test_hint_uptake_counts_first_walks(tmp_path):
    knobs = ["arms=3", "arm_len=3", "cue=1.0"]  # the hint always names the goal arm
    task = get_task("star", **parse_knobs(knobs))
    probs = task.problems(4, seed=5)
    rows = []
    for i, p in enumerate(probs):
        g = task.graph(p.meta["seed"])
        other = next(a for k, a in enumerate(g.arms) if k != g.goal_arm)
        arm = g.arms[g.goal_arm] if i < 3 else other  # 3 of 4 first walks on the hinted (goal) arm
        words = ["try", g.start, *arm, "found"] if i else ["</think>", "answer", g.start, *arm]  # 0: no walk
        rows.append({"problem_id": p.id, "meta": p.meta, "status": "ok", "output": " ".join(words)})
    rows.append({**rows[0], "status": "empty"})  # not counted
    (tmp_path / "traces.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    h = D.hint_uptake(tmp_path, knobs)
    assert h == {
        "traces": 4,
        "goal_arm_first": 0.5,
        "hinted_traces": 4,
        "hinted_arm_first": 0.5,
        "walked": 0.75,
        "answer_on_hinted_arm": 0.25,  # only the trace that answered (on the hinted arm) has an answer
    }
    assert D.answer_arm("try v5 v9 found </think> answer v5 v9 v2 <eos>") == "v9" and D.answer_arm("try v5") is None


def test_paired_bootstrap_of_a_constant_difference_is_exact():
    a = [{"p1": 0.5, "p2": 0.7}, {"p1": 0.4, "p2": 0.9}]
    b = [{"p1": 0.3, "p2": 0.5}, {"p1": 0.2, "p2": 0.7}]
    d = D.paired(a, b)
    assert d["mean"] == pytest.approx(0.2) and d["ci"] == pytest.approx([0.2, 0.2])
    assert d["seeds"] == 2 and d["problems"] == 2
    spread = D.bootstrap(a)
    assert spread["ci"][0] < spread["mean"] < spread["ci"][1]


def test_relative_gain_by_hand():
    base = [{"p1": 0.2, "p2": 0.4}]
    ref = [{"p1": 0.4, "p2": 0.6}]  # +0.2 over the base
    new = [{"p1": 0.5, "p2": 0.7}]  # +0.3 over the base
    g = D.relative_gain(new, ref, base)
    assert g["mean"] == pytest.approx(1.5)
    assert g["ci"] == pytest.approx([1.5, 1.5])


def test_selection_from_the_tuning_table(tmp_path):
    grid = S.tune_grid("mrt")
    rows = [{"values": v, "criterion": 0.4 + 0.01 * i} for i, v in enumerate(grid)]
    table = tmp_path / "tuning.json"
    table.write_text(json.dumps({"tuning": {"mrt": {"grid": rows}}}))
    ns = SimpleNamespace(out=str(tmp_path / "out"), tuning=str(table), methods=["mrt"])
    Path(ns.out).mkdir()
    assert D.select(ns)["mrt"]["values"] == grid[-1]
    table.write_text(json.dumps({"tuning": {"mrt": {"grid": rows[:-1]}}}))  # one run missing
    with pytest.raises(SystemExit, match="8 of 9"):
        D.select(ns)


def test_a_run_record_holds_the_analysis_figures(tiny_model_dir, tmp_path):
    from mrt.measure.analyze import AnalyzeConfig
    from mrt.pipelines import analyze as run_analysis

    setting = "order"
    run_dir = tmp_path / "out" / "final" / setting / "base-s0"
    s = run_analysis(
        AnalyzeConfig(
            model=str(tiny_model_dir),
            out=str(run_dir / "eval"),
            n_problems=3,
            traces_per_problem=2,
            answers_per_prefix=2,
            max_new_tokens=24,
            answer_tokens=6,
            extensions=1,
            knobs=S.SETTINGS[setting]["knobs"],
            budgets=S.SETTINGS[setting]["budgets"],
        )
    )
    ns = SimpleNamespace(
        out=str(tmp_path / "out"), records=str(tmp_path / "records"), scale=1.0, seeds=[0], methods=["grpo"]
    )
    rec = D.write_record(ns, setting, "base-s0")
    ok = s["trace_status"].get("ok", 0)
    # every trace is in the record; those that did not end normally count as wrong
    assert rec["n_traces"] == s["n_traces"] and rec["skipped_traces"] == s["n_traces"] - ok
    assert rec["accounting"] == "strict" and rec["hint"]["traces"] == ok
    acc = sum(rec["per_problem"]["natural_accuracy"].values()) / len(rec["per_problem"]["natural_accuracy"])
    assert acc <= s["accuracy"] + 1e-5
    if ok == s["n_traces"]:  # every trace ended: the record's natural accuracy is the analysis'
        assert acc == pytest.approx(s["accuracy"], abs=1e-5)
    assert len(rec["curve"]) == len(D.curve_grid(setting))
    out = D.setting_results(ns, setting)
    assert list(out["methods"]) == ["base"] and out["missing"] == ["grpo"]
    row = out["methods"]["base"]
    assert row["accuracy"]["ci"][0] <= row["accuracy"]["mean"] <= row["accuracy"]["ci"][1]
    assert (Path(ns.records) / setting / "base-s0.json").exists()


def _trace(pid, status, correct, ends, js, tokens=10):
    return {
        "problem_id": pid,
        "status": status,
        "correct": correct,
        "n_output_tokens": tokens,
        "n_thinking_tokens": ends[-1] if ends else 0,
        "episodes": [{"end": e} for e in ends],
        "prefixes": [{"j": j} for j in js],
    }


def test_a_truncated_or_empty_trace_counts_as_wrong(tmp_path):
    rows = [
        _trace("p1", "ok", True, [4, 8], [0.5, 1.0, 1.0]),
        _trace("p1", "truncated", False, [4], [0.5, 1.0], tokens=256),  # J was high: still wrong
        _trace("p2", "ok", True, [4], [1.0, 1.0]),
        _trace("p2", "empty", False, [], [], tokens=0),
    ]
    (tmp_path / "traces.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    tab = D.problem_table(tmp_path, [8])
    assert {p: len(ts) for p, ts in tab.items()} == {"p1": 2, "p2": 2}  # nothing left out
    acc = D.per_problem(tab, lambda t: t["correct"])
    assert acc == {"p1": 0.5, "p2": 0.5}
    at8 = D.per_problem(tab, lambda t: t["acc_at"]["8"])
    assert at8 == {"p1": 0.5, "p2": 0.5}
    reg = D.per_problem(tab, lambda t: t["regret"]["8"])
    assert reg["p2"] == pytest.approx((0.0 + 1.0) / 2)  # J = 1 from the start: regret 0; the empty one: 1
    assert D.acc_curve([tab], [0, 8]) == pytest.approx([(0.5 + 0 + 1 + 0) / 4, (1 + 0 + 1 + 0) / 4])


def test_an_old_record_is_corrected_from_its_own_means():
    split = {"problem_seed": 0, "traces": 8}
    rec = {  # written when left-out traces were skipped: p0 kept 7 of 8 traces (6 correct), p1 all 8
        "run": "x-s0",
        "n_traces": 15,
        "skipped_traces": 1,
        "curve": [0.5, 0.75],
        "per_problem": {
            "accuracy": {"star-0-0": 6 / 7, "star-0-1": 0.5},
            "natural_accuracy": {"star-0-0": 6 / 7, "star-0-1": 0.5},
            "output_tokens": {"star-0-0": 150 / 7, "star-0-1": 20.0},
            "acc_at_16": {"star-0-0": 6 / 7, "star-0-1": 0.5},
            "regret_C16": {"star-0-0": 0.3, "star-0-1": 0.4},
        },
    }
    new = D.strict_record(rec, 2, split)
    pp = new["per_problem"]
    assert pp["accuracy"]["star-0-0"] == pytest.approx(6 / 8) and pp["accuracy"]["star-0-1"] == 0.5
    assert pp["regret_C16"]["star-0-0"] == pytest.approx((0.3 * 7 + 1) / 8)
    assert pp["output_tokens"] == rec["per_problem"]["output_tokens"]
    assert new["curve"] == pytest.approx([0.5 * 15 / 16, 0.75 * 15 / 16]) and new["n_traces"] == 16
    assert new["recovered"] == {"placed": 1, "spread": 0}
    assert D.strict_record(new, 2, split) is new  # already strict
    with pytest.raises(ValueError, match="skipped"):
        D.strict_record({**rec, "skipped_traces": 0}, 2, split)


def test_token_efficiency_at_fractions_of_the_baselines_final_accuracy():
    from benchmarks import didactic_stats as ST

    grid = [0, 1, 2, 3, 4]
    ref = [0.0, 0.5, 0.8, 0.9, 1.0]
    new = [0.0, 0.8, 0.9, 1.0, 1.0]
    assert ST.efficiency(grid, ref, new, 0.9) == pytest.approx(3 / 2)
    assert ST.efficiency(grid, ref, new, 1.0) == pytest.approx(4 / 3)
    assert ST.efficiency(grid, new, ref, 1.0) == pytest.approx(3 / 4)
    assert ST.efficiency(grid, ref, [0, 0.1, 0.2, 0.3, 0.4], 0.9) is None  # never reached
    e = ST.efficiency_vs(grid, [ref, ref], [new, new], [1, 1], [1, 1], fractions=(0.9,))["0.9"]
    assert e["pooled"] == pytest.approx(1.5) and e["reached"] == "2/2"
    assert e["geomean"]["mean"] == pytest.approx(1.5) and e["geomean"]["ci"] == pytest.approx([1.5, 1.5])
    null = ST.self_null(grid, [ref, ref, ref], [1, 1, 1], fractions=(0.9,))["0.9"]
    assert null["seed_pairs"]["min"] == null["seed_pairs"]["max"] == 1.0 and null["split_halves"]["n"] == 6


def test_holm_and_t_quantile_by_hand():
    from benchmarks import didactic_stats as ST

    h = ST.holm({"a": 0.01, "b": 0.04, "c": 0.03})
    assert h["a"]["p_holm"] == pytest.approx(0.03) and h["a"]["survives"]
    assert h["c"]["p_holm"] == pytest.approx(0.06) and h["b"]["p_holm"] == pytest.approx(0.06)
    assert not h["b"]["survives"] and not h["c"]["survives"]
    assert ST.t_quantile(0.975, 4) == pytest.approx(2.776, abs=1e-3)
    assert ST.t_quantile(0.975, 9) == pytest.approx(2.262, abs=1e-3)
    t = ST.t_interval([1.0, 2.0, 3.0])
    assert t["mean"] == 2.0 and t["ci"][1] - 2.0 == pytest.approx(4.303 * 1 / 3**0.5, abs=1e-3)


def test_the_papers_relative_gain_by_hand():
    from benchmarks import didactic_stats as ST

    base = [{"a": 0.0, "b": 0.2}, {"a": 0.2, "b": 0.0}]  # mean 0.1
    ref = [{"a": 0.2, "b": 0.4}, {"a": 0.4, "b": 0.2}]  # mean 0.3: gain 0.2, the same on every cell
    new = [{"a": 0.4, "b": 0.6}, {"a": 0.6, "b": 0.4}]  # mean 0.5: gain 0.4
    r = ST.relative_gain(new, ref, base)
    assert r["mean"] == pytest.approx(2.0) and r["ci"] == pytest.approx([2.0, 2.0])  # every draw: 0.4 / 0.2
    assert (r["new_gain"], r["ref_gain"], r["ref_gain_not_positive"]) == pytest.approx((0.4, 0.2, 0.0))
    flat = [{"a": 0.1, "b": -0.1}, {"a": 0.3, "b": 0.1}]  # the reference gains nothing on average
    r = ST.relative_gain(new, flat, base)
    assert r["mean"] is None and r["ci"] is None and r["ref_gain_not_positive"] > 0.025
    extra = [*new, {"a": 1.0, "b": 1.0}]  # a seed the others lack is left out
    assert ST.relative_gain(extra, ref, base)["seeds"] == 2
