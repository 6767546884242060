"""The backtracking benchmark's driver (benchmarks/backtracking.py): the declared design and its
refusals, the compact records of real linearized runs (round progress recomputed by hand), and the
primary endpoint from records alone."""

import json
import math
import statistics
from pathlib import Path

import pytest

from benchmarks import backtracking as BT

ROOT = Path(__file__).resolve().parents[2]


SETTINGS_PATH = ROOT / "benchmarks" / "backtracking_settings.py"
SETTINGS = SETTINGS_PATH.read_text()


def _write(tmp_path, text: str) -> Path:
    p = tmp_path / "settings.py"
    p.write_text(text)
    return p


def test_the_declared_design_and_its_refusals(tmp_path):
    S = BT.load_settings(SETTINGS_PATH)
    assert {len(g) for g in S.TUNE_GRID.values()} == {3} and set(S.TUNE_GRID) == set(S.RL_ARMS)
    assert len(S.FINAL_SEEDS) >= 5 and not set(S.TUNE_SEEDS) & set(S.FINAL_SEEDS)
    assert S.TEST["n_problems"] * S.TEST["samples"] >= 128 * 8
    with pytest.raises(BT.SettingsError, match="no primary endpoint"):
        BT.load_settings(_write(tmp_path, SETTINGS.replace("PRIMARY = {", "SECONDARY = {")))
    with pytest.raises(BT.SettingsError, match="also final seeds"):
        BT.load_settings(_write(tmp_path, SETTINGS.replace("TUNE_SEEDS = [100]", "TUNE_SEEDS = [2]")))
    with pytest.raises(BT.SettingsError, match="unequal tuning"):
        BT.load_settings(
            _write(
                tmp_path,
                SETTINGS.replace(
                    'for lr in LEARNING_RATES],\n    "star"', 'for lr in LEARNING_RATES[:2]],\n    "star"'
                ),
            )
        )
    with pytest.raises(SystemExit):
        BT.parse(["--settings-file", str(SETTINGS_PATH), "--seeds", "100"])


def test_records_and_primary_endpoint_from_real_linearized_runs(tiny_sampler, tmp_path):
    from mrt.measure.linearized import LinearizedConfig, run_linearized

    settings = _write(tmp_path, SETTINGS.replace("B_TOKENS = 0", "B_TOKENS = 40"))
    ns = BT.parse(
        [
            "--settings-file",
            str(settings),
            "--out",
            str(tmp_path / "w"),
            "--records",
            str(tmp_path / "rec"),
            "--results",
            str(tmp_path / "res.json"),
            "--seeds",
            "0",
            "1",
        ]
    )
    for arm, shift in (("grpo", 0), ("mrt-rl", 10)):
        for seed in (0, 1):
            d = BT.final_dir(ns, f"{arm}-s{seed}") / "eval"
            cfg = LinearizedConfig(
                task="tree",
                knobs=ns.S.KNOBS,
                out=str(d),
                n_problems=3,
                samples=2,
                episodes=3,
                answers=2,
                episode_tokens=12,
                problem_seed=1,
                seed=seed + shift,
            )
            run_linearized(cfg, sampler=tiny_sampler)
            rec = BT.write_record(ns, f"{arm}-s{seed}")
            rows = BT.read_rows(d / "linearized.jsonl")
            # round progress by hand: J after each parsed attempt minus J of the attempt in context
            want = []
            for r in rows:
                for tr in r["linearized"]:
                    js = [e["j"] for e in tr["episodes"] if "format_error" not in e]
                    want += [round(b - a, 4) for a, b in zip(js, js[1:])]
            assert rec["eval"]["round_progress"] == want
            for r in rows:
                f = rec["eval"]["per_problem"][r["problem_id"]]
                assert f["linearized"]["at_B"] == pytest.approx(BT.lin_at(r, "linearized", 40), abs=1e-6)
                assert len(f["linearized"]["maj"]) == 3 and len(f["parallel"]["curve"]) == len(BT.token_grid(ns.S))
            # parsed votes: with every round spent, the run's own figure (mrt linearized's summary)
            summary = json.loads((d / "summary.json").read_text())
            whole = statistics.fmean(BT.parsed_at(r["linearized"], 10**9, "expected") for r in rows)
            assert whole == pytest.approx(summary["linearized_parsed_votes"]["maj"]["3"], abs=1e-6)
            assert all("linearized_parsed_at_B" in f for f in rec["eval"]["per_problem"].values())
    json.dumps(rec)  # compact and serialisable
    res = BT.results(ns)
    assert "sft-backtrack" in res["missing"] and set(res["arms"]) == {"grpo", "mrt-rl"}
    c = res["primary"]["comparisons"]["mrt-rl - grpo"]
    per = {a: [json.loads(BT.record_path(ns, f"{a}-s{s}").read_text()) for s in (0, 1)] for a in ("grpo", "mrt-rl")}
    diffs = [
        statistics.fmean(
            per["mrt-rl"][s]["eval"]["per_problem"][p]["linearized"]["at_B"]
            - per["grpo"][s]["eval"]["per_problem"][p]["linearized"]["at_B"]
            for p in per["grpo"][s]["eval"]["per_problem"]
        )
        for s in (0, 1)
    ]
    assert c["mean"] == pytest.approx(statistics.fmean(diffs), abs=1e-9)
    assert c["ci"][0] <= c["mean"] <= c["ci"][1] and "p_holm" in c
    assert res["primary"]["missing"] == ["mrt-star - star"]  # counted in Holm with p = 1
    assert res["parsed_votes"]["mrt-rl - grpo"]["ci"][0] <= res["parsed_votes"]["mrt-rl - grpo"]["mean"]
    text = BT.markdown({"results": res, "declared": {"linearized": ns.S.LINEARIZED}})
    assert "mrt-rl - grpo" in text and "(runs missing)" in text


def test_round_progress_skips_format_errors_by_hand(tmp_path):
    """J 0.5, a format error (the attempt in context stays), 0.75, 0.25: progress +0.25 then -0.5."""
    S = BT.load_settings(SETTINGS_PATH)

    def ep(j, tokens, correct, err=False):
        e = {"j": j, "tokens": tokens, "answer_tokens": 2, "correct": correct, "answer": "x"}
        return {**e, "format_error": "missing_step"} if err else e

    eps = [ep(0.5, 5, False), ep(0.0, 4, False, err=True), ep(0.75, 6, True), ep(0.25, 6, False)]
    group = {"episodes": eps, "maj": [0.0, 0.0, 0.5, 0.0], "cum_tokens": [7, 13, 21, 29], "errors": {}, "revisits": []}
    group["labels"] = ["a", "b", "c", "a"]  # the format-error round voted b
    par = {"episodes": eps, "maj": [0.0, 0.0, 1.0, 1.0], "cum_tokens": [7, 14, 21, 28]}
    d = tmp_path / "e"
    d.mkdir()
    (d / "linearized.jsonl").write_text(
        json.dumps({"problem_id": "p", "linearized": [group], "parallel": [par]}) + "\n"
    )
    (d / "summary.json").write_text(
        json.dumps(
            {
                "format_errors": {"missing_step": 1},
                "revision_rounds": 3,
                "revisits": {},
                "unseen_revisit_fraction": None,
            }
        )
    )
    rec = BT.eval_record(S, d)
    assert rec["round_progress"] == [0.25, -0.5]
    f = rec["per_problem"]["p"]
    assert f["round_progress"] == pytest.approx(-0.125)
    # at 24 tokens: linearized after its third attempt (21 tokens) 0.5; parallel 1.0
    assert BT.lin_at({"linearized": [group], "parallel": [par]}, "linearized", 24) == 0.5
    assert BT.lin_at({"linearized": [group], "parallel": [par]}, "parallel", 24) == 1.0
    # parsed votes (b left out): a; a; a, c tied (c right: 1/2); a, c, a (a wins: 0)
    assert BT.parsed_at([group], 24, "expected") == 0.5 and BT.parsed_at([group], 29, "expected") == 0.0
    assert BT.parsed_at([group], 13, "expected") == 0.0
    h = BT.histogram([0.25, -0.5, 0.24, 1.0])
    assert h["+0.25"] == 0.5 and h["-0.5"] == 0.25 and h["+1"] == 0.25 and sum(h.values()) == 1 and len(h) == 9


def test_a_run_that_gave_up_on_problems_is_not_done(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({"failed_problems": {"server": 2}}))
    assert not BT._done(tmp_path)
    (tmp_path / "summary.json").write_text(json.dumps({"failed_problems": {}}))
    assert BT._done(tmp_path) and not BT._done(tmp_path / "nothing")


def test_a_final_run_with_a_record_is_not_run_again(tmp_path, monkeypatch):
    """The records are committed and the working folder is not: a rerun on a fresh checkout plans
    only the runs without a record, and prepares a seed's data only when one of its runs lacks one."""
    settings = _write(tmp_path, SETTINGS.replace("B_TOKENS = 0", "B_TOKENS = 40"))
    ns = BT.parse(["--settings-file", str(settings), "--out", str(tmp_path / "w"), "--records", str(tmp_path / "rec")])
    ns.seeds = [0, 1]
    for seed in (0, 1):
        for a in BT.arms(ns.S):
            if (a, seed) != ("sft-star", 1):
                BT.record_path(ns, f"{a}-s{seed}").parent.mkdir(parents=True, exist_ok=True)
                BT.record_path(ns, f"{a}-s{seed}").write_text("{}")
    prepared = []
    monkeypatch.setattr(BT, "prepare_data", lambda ns, seed: prepared.append(seed))
    table = {a: {"chosen": {"i": 0, "learning_rate": 1e-4, "criterion": 0.5, "se": 0.1}} for a in ns.S.RL_ARMS}
    first, second = BT.final_jobs(ns, table)
    names = [j[0] for j in first + second if j]
    assert names == ["final/sft-star-s1"] and prepared == [1]


def test_the_per_episode_design_runs_the_papers_arm_as_mrt_dense(tmp_path):
    """The second backtracking design: its arms' commands (the paper's per-episode form is
    ``mrt-dense``, the fork's one-scalar form ``mrt-backtrack``), equal tuning, seeds from its power
    calculation, and its own record files."""
    path = ROOT / "benchmarks" / "backtracking_episode_settings.py"
    ns = BT.parse(["--settings-file", str(path), "--out", str(tmp_path / "w")])
    S = ns.S
    assert set(S.RL_ARMS) == {"grpo", "mrt-fork", "mrt-episode"} and len(S.FINAL_SEEDS) == 18
    assert {len(g) for g in S.TUNE_GRID.values()} == {3}
    assert S.PRIMARY["primary"] == "mrt-episode" and set(S.PRIMARY["comparisons"].values()) == {"grpo"}
    assert ns.records.endswith("benchmarks/results/backtracking_episode_records")
    assert ns.tuning.endswith("backtracking_episode_tuning.json")

    def algo(arm):
        cmd = BT.rl_cmd(ns, 0, arm, 2e-4, {"alpha": 0.8}, tmp_path / arm)
        return cmd[cmd.index("--algo") + 1], "--mrt-advantage" in cmd

    assert algo("mrt-episode") == ("mrt-dense", False)
    assert algo("mrt-fork") == ("mrt-backtrack", True) and algo("grpo") == ("mrt-backtrack", True)
    n = ((2.241 + 0.842) * 0.041 / 0.03) ** 2  # the power calculation in the settings' docstring
    assert math.ceil(n) == len(S.FINAL_SEEDS)
    # the sensitivity runs: each rerun arm at its parent's tuned configuration with the penalty, on 6 seeds
    table = {a: {"chosen": {"i": 0, "learning_rate": 1e-4, "alpha": 0.8}} for a in S.RL_ARMS}
    ns.records = str(tmp_path / "rec")  # never the committed records folder
    for arm in S.RL_ARMS:
        BT.record_path(ns, f"{arm}-s0").parent.mkdir(parents=True, exist_ok=True)
    for run in ("base-s0", "sft-backtrack-s0", "grpo-s0", "mrt-fork-s0", "mrt-episode-s0"):
        BT.record_path(ns, run).write_text("{}")  # the primary arms of seed 0 are done
    ns.seeds = [0, 7]
    first, second = BT.final_jobs(ns, table)
    names = [j[0] for j in second if j]
    sens = {j[0]: j[1][0] for j in second if j and "-fp-" in j[0]}
    assert set(sens) == {"final/grpo-fp-s0", "final/mrt-episode-fp-s0"}  # seed 7 is not a sensitivity seed
    assert names.index("final/grpo-fp-s0") > names.index("final/mrt-episode-s7")  # after every primary run
    for cmd in sens.values():
        assert cmd[cmd.index("--format-penalty") + 1] == "0.5" and cmd[cmd.index("--alpha") + 1] == "0.8"
    assert sens["final/mrt-episode-fp-s0"][sens["final/mrt-episode-fp-s0"].index("--algo") + 1] == "mrt-dense"
    assert any(j and j[0] == "prep/sft-backtrack-s0" for j in first)  # its warm start, though seed 0's arms are done
    diag = {j[0]: j[1][0] for j in second if j and "stream-grpo" in j[0]}
    assert set(diag) == {"final/stream-grpo-s0"}  # the diagnostic: mrt-episode's configuration, alpha 0
    assert names.index("final/mrt-episode-s7") < names.index("final/stream-grpo-s0") < names.index("final/base-s7")
    cmd = diag["final/stream-grpo-s0"]
    assert cmd[cmd.index("--algo") + 1] == "mrt-dense" and cmd[cmd.index("--alpha") + 1] == "0.0"
    assert "--format-penalty" not in cmd
    assert BT.plan(ns)["final_runs"] == 2 * len(BT.arms(S)) + 3


def test_the_sensitivity_runs_against_their_parents_by_hand(tmp_path):
    """Each declared sensitivity comparison with its flags, and the same comparison without them on
    the same seeds; by hand on two seeds of two problems."""
    path = ROOT / "benchmarks" / "backtracking_episode_settings.py"
    ns = BT.parse(["--settings-file", str(path), "--out", str(tmp_path / "w"), "--records", str(tmp_path / "r")])
    ns.seeds = [0, 1, 7]  # 7: not a sensitivity seed
    value = {"grpo": 0.5, "mrt-episode": 0.6, "grpo-fp": 0.45, "mrt-episode-fp": 0.65}
    (tmp_path / "r").mkdir()
    for arm, v in value.items():
        for s in (0, 1):
            pp = {p: {"linearized": {"at_B": v + (0.1 if p == "b" else 0.0) + 0.01 * s}} for p in ("a", "b")}
            BT.record_path(ns, f"{arm}-s{s}").write_text(json.dumps({"eval": {"per_problem": pp}}))
    out = BT.sensitivity_results(ns)["comparisons"]["mrt-episode-fp - grpo-fp"]
    assert out["seeds"] == [0, 1]
    assert out["with_flags"]["mean"] == pytest.approx(0.20) and out["with_flags"]["ci"] == pytest.approx([0.2, 0.2])
    assert out["without_on_the_same_seeds"]["mean"] == pytest.approx(0.10)
    assert out["grpo-fp - grpo"]["mean"] == pytest.approx(-0.05)
    BT.record_path(ns, "grpo-fp-s1").unlink()  # a missing record: the comparison waits
    assert BT.sensitivity_results(ns)["comparisons"] == {}


def test_the_diagnostic_runs_against_the_arms_by_hand(tmp_path):
    """The diagnostic's comparisons (its own arm against RL arms), paired over its seeds; by hand on
    two seeds of two problems."""
    path = ROOT / "benchmarks" / "backtracking_episode_settings.py"
    ns = BT.parse(["--settings-file", str(path), "--out", str(tmp_path / "w"), "--records", str(tmp_path / "r")])
    ns.seeds = [0, 1, 7]  # 7: not a diagnostic seed
    (tmp_path / "r").mkdir()
    lin = {"grpo": 0.5, "mrt-episode": 0.4, "stream-grpo": 0.45}
    first = {"grpo": 0.3, "mrt-episode": 0.35, "stream-grpo": 0.36}
    for arm in lin:
        for s in (0, 1, 7):
            pp = {
                p: {
                    "linearized": {"at_B": lin[arm] + 0.01 * s, "maj": [first[arm], 0.9]},
                    "parallel": {"at_B": 0.4},
                }
                for p in ("a", "b")
            }
            BT.record_path(ns, f"{arm}-s{s}").write_text(json.dumps({"eval": {"per_problem": pp}}))
    out = BT.diagnostic_results(ns)["comparisons"]
    bonus, shape = out["mrt-episode - stream-grpo"], out["stream-grpo - grpo"]
    assert bonus["seeds"] == [0, 1]
    assert bonus["lin_at_B"]["mean"] == pytest.approx(-0.05) and bonus["par_at_B"]["mean"] == pytest.approx(0.0)
    assert bonus["lin_minus_par_at_B"]["mean"] == pytest.approx(-0.05)
    assert bonus["first_attempt"]["mean"] == pytest.approx(-0.01)
    assert shape["lin_at_B"]["mean"] == pytest.approx(-0.05) and shape["first_attempt"]["mean"] == pytest.approx(0.06)
    primary = {"declared": {"name": "x"}, "B_tokens": 128, "comparisons": {}, "missing": []}
    doc = {"results": {"K": 10, "primary": primary, "arms": {}, "diagnostic": BT.diagnostic_results(ns)}}
    text = BT.markdown(doc)
    assert "| mrt-episode - stream-grpo | 2 |" in text and "added after results" in text
    BT.record_path(ns, "stream-grpo-s1").unlink()  # a missing record: its comparisons wait
    assert BT.diagnostic_results(ns)["comparisons"] == {}


def test_a_diagnostic_naming_an_unknown_arm_is_refused(tmp_path):
    text = (ROOT / "benchmarks" / "backtracking_episode_settings.py").read_text()
    bad = tmp_path / "bad.py"
    bad.write_text(
        text.replace('"comparisons": {"mrt-episode": "stream-grpo"', '"comparisons": {"nope": "stream-grpo"')
    )
    with pytest.raises(BT.SettingsError, match="DIAGNOSTIC's comparisons must name its own arms or RL arms"):
        BT.load_settings(bad)
