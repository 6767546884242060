"""The didactic benchmark's own figures (benchmarks/didactic_v2.py): hint uptake, paired
bootstrap intervals, the relative gain, selection from the committed tuning table, and run
records that hold a real analysis' figures."""

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import didactic_v2 as D  # noqa: E402
import didactic_v2_settings as S  # noqa: E402

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
        rows.append(
            {"problem_id": p.id, "meta": p.meta, "status": "ok", "output": " ".join(["try", g.start, *arm, "found"])}
        )
    rows.append({**rows[0], "status": "empty"})  # not counted
    (tmp_path / "traces.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    h = D.hint_uptake(tmp_path, knobs)
    assert h == {"traces": 4, "goal_arm_first": 0.75, "hinted_traces": 4, "hinted_arm_first": 0.75}


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
    from mrt.measure.analyze import AnalyzeConfig, run_analysis

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
    assert rec["n_traces"] == ok and rec["skipped_traces"] == s["n_traces"] - ok
    assert rec["hint"]["traces"] == ok
    if ok == s["n_traces"]:  # every trace kept: the record's natural accuracy is the analysis'
        acc = sum(rec["per_problem"]["natural_accuracy"].values()) / len(rec["per_problem"]["natural_accuracy"])
        assert acc == pytest.approx(s["accuracy"], abs=1e-5)
    assert len(rec["curve"]) == len(D.curve_grid(setting))
    out = D.setting_results(ns, setting)
    assert list(out["methods"]) == ["base"] and out["missing"] == ["grpo"]
    row = out["methods"]["base"]
    assert row["accuracy"]["ci"][0] <= row["accuracy"]["mean"] <= row["accuracy"]["ci"][1]
    assert (Path(ns.records) / setting / "base-s0.json").exists()
