"""The real-model design's driver (benchmarks/real_smollm2.py) and its settings: the pilot's declared
rule, the warm start's checks, the settings' refusal before the pilot, and the commands it builds."""

import json
import shutil
import statistics
from pathlib import Path

import pytest

from benchmarks import didactic_v3 as V3
from benchmarks import real_smollm2 as R

ROOT = Path(__file__).resolve().parents[2]
B = str(R.B)


def _fig(acc: float, j0: float, episodes=3, js=(0.1, 0.3, 0.5)) -> dict:
    return {
        "acc_at": {B: acc},
        "j_empty": j0,
        "thinking_gain": acc - j0,
        "episodes_median": episodes,
        "j_by_episode": list(js),
    }


def test_the_pilot_rule_picks_the_candidate_in_the_band_closest_to_one_half():
    figs = {
        "easy": _fig(0.85, 0.40),  # above the band
        "mid": _fig(0.62, 0.20),  # in the band, 0.12 from 0.5
        "flat": _fig(0.52, 0.47),  # closest to 0.5, but thinking does not pay (0.05)
        "hard": _fig(0.35, 0.05),  # in the band, 0.15 from 0.5
    }
    assert R.choose_task(figs)[0] == "mid"
    figs["hard"] = _fig(0.38, 0.05)  # 0.12 from 0.5 too: the easier (earlier) one wins the tie
    assert R.choose_task(figs)[0] == "mid"
    none, why = R.choose_task({"easy": _fig(0.9, 0.1), "flat": _fig(0.5, 0.45)})
    assert none is None and "PILOT_CANDIDATES" in why and "easy: acc@128 0.90" in why


def test_a_warm_start_that_does_not_think_in_episodes_is_refused():
    assert R.check_thinking("ok", _fig(0.5, 0.1)) == ""
    assert "1 episodes at the median" in R.check_thinking("x", _fig(0.5, 0.1, episodes=1))
    assert "does not rise" in R.check_thinking("x", _fig(0.5, 0.1, js=(0.1, 0.4, 0.4)))
    assert "no J after a second episode" in R.check_thinking("x", _fig(0.5, 0.1, js=(0.1, 0.4)))


def test_pilot_figures_from_a_real_analysis(tmp_path):
    from mrt.measure.analyze import AnalyzeConfig, run_analysis

    d = tmp_path / "a"
    run_analysis(AnalyzeConfig(n_problems=3, traces_per_problem=2, answers_per_prefix=2, extensions=0, out=str(d)))
    f = R.pilot_figures(d)
    rows = [json.loads(x) for x in (d / "traces.jsonl").read_text().splitlines()]
    assert f["n_traces"] == len(rows) == 6
    assert f["thinking_gain"] == pytest.approx(f["acc_at"][B] - f["j_empty"])
    ok = [r for r in rows if r["status"] == "ok"]
    j0 = [r["prefixes"][0]["j"] for r in rows if r["prefixes"]]  # the prompt's alone: truncated traces too
    assert f["j_empty"] == pytest.approx(statistics.fmean(j0))
    assert f["truncated"] == 6 - len(ok)
    assert f["episodes_median"] == statistics.median(len(r["episodes"]) for r in rows)


def test_check_figures_count_checks_that_repeat_or_fix_a_wrong_first_attempt(tmp_path):
    def trace(ref, *episodes):
        return json.dumps({"reference": ref, "episodes": [{"text": t} for t in episodes]}) + "\n"

    f = tmp_path / "traces.jsonl"
    f.write_text(
        trace("3", "85 - 82 = -25.", "Ones: 5 - 2 = 3.\n\n-20 - 5 = -25.")  # wrong, repeated
        + trace("3", "85 - 82 = 13.", "Ones: 5 - 2 = 3.\n\n0 + 3 = 3.\n\nThat is not 13: one is wrong.")  # fixed
        + trace("3", "85 - 82 = 4.", "Ones: 5 - 2 = 3.\n\n0 + 3 = 7.")  # wrong, neither
        + trace("3", "85 - 82 = 3.", "80 - 80 = 0.")  # right first: not counted
        + trace("3", "85 - 82 = 5.")  # no check: not counted
        + trace("3", "I think.", "x = 3.")  # no value in the first: not counted
    )
    assert R.check_figures(f) == {"wrong_first_with_a_check": 3, "check_repeats_it": 1, "check_fixes_it": 1}
    assert R.checks(R.check_figures(f)) == "1 / 1 of 3" and R.checks({}) == "—"


def _design(tmp_path, pilot: dict | None) -> Path:
    """The settings file in a folder of its own, with a prepare record (or none)."""
    (tmp_path / "results").mkdir(parents=True)
    shutil.copy(ROOT / "benchmarks" / "real_smollm2_settings.py", tmp_path / "settings.py")
    if pilot is not None:
        (tmp_path / "results" / "real_smollm2_prepare.json").write_text(json.dumps({"pilot": pilot}))
    return tmp_path / "settings.py"


def test_the_settings_refuse_to_load_before_the_pilot_and_build_real_model_commands(tmp_path):
    with pytest.raises(V3.SettingsError, match="has not chosen a task"):
        V3.load_settings(_design(tmp_path / "a", None))
    failed = {"chosen": None, "options": None, "thinking_check": "J does not rise ..."}
    with pytest.raises(V3.SettingsError, match="failed the pilot's check: J does not rise"):
        V3.load_settings(_design(tmp_path / "f", failed))
    path = _design(tmp_path / "b", {"chosen": "3x2", "options": R.PILOT_CANDIDATES["3x2"]})
    ns = V3.parse(["--settings-file", str(path), "--out", str(tmp_path / "runs")])
    S = ns.S
    assert f"options={R.PILOT_CANDIDATES['3x2']}" in S.SETTING["knobs"] and S.PRIMARY["metric"] == f"acc_at_{B}"
    assert {len(S.tune_grid(m)) for m in S.METHODS} == {2} and len(S.FINAL_SEEDS) >= 5
    train = V3.train_cmd(ns, "mrt-dense-onpolicy", 0, {"learning_rate": 3e-5}, tmp_path / "t")
    for flag, value in [
        ("--task", "gym"),
        ("--model", S.SETTING["model"]),
        ("--thinking-budget", B),
        ("--prompts-per-step", "4"),
        ("--algo", "mrt-dense"),
        ("--j-source", "mixed"),
        ("--learning-rate", "3e-05"),
        ("--answer-tokens", "64"),
    ]:
        assert train[train.index(flag) + 1] == value, flag
    ana = V3.eval_cmd(ns, S.SETTING["model"], 0, S.TEST, tmp_path / "e")
    for flag, value in [
        ("--task", "gym"),
        ("--backend", "vllm"),
        ("--answers-per-prefix", "4"),
        ("--extensions", "2"),
        ("--answer-tokens", "64"),  # forced answers capped alike in training and evaluation
    ]:
        assert ana[ana.index(flag) + 1] == value, flag


def test_the_settings_train_the_model_the_warm_start_makes(tmp_path):
    S = V3.load_settings(_design(tmp_path, {"chosen": "3x2", "options": R.PILOT_CANDIDATES["3x2"]}))
    assert S.SETTING["model"] == str(R.rel(R.warm_model()))


def test_a_warm_start_with_other_settings_is_kept_as_an_earlier_attempt():
    def ws(settings, fp):
        return {"settings": settings, "fingerprint": fp, "examples": 9, "steps": 2, "loss_first": 1, "loss_last": 0}

    first = {"warmstart": ws({**R.WARMSTART, "slips": 0}, "a"), "pilot": None}
    doc = R.archive_earlier(json.loads(json.dumps(first)))
    assert doc == {"earlier": [first]}
    doc["warmstart"] = ws(dict(R.WARMSTART), "b")
    assert R.archive_earlier(json.loads(json.dumps(doc))) == doc  # this warm start's own record stays
    md = R.markdown(doc)
    assert md.index("Earlier attempt 1") < md.index("(weights a)") < md.index("(weights b)")


def test_a_rebuilt_warm_start_with_other_weights_is_refused():
    R.check_weights(None, "b")  # nothing committed yet
    R.check_weights("a", "a")  # the same weights
    with pytest.raises(SystemExit, match=r"\(b\) differ from the committed record's \(a\).*torch .* threads"):
        R.check_weights("a", "b")


def test_a_rebuild_with_the_same_weights_is_logged_and_the_record_kept():
    env = {"packages": {"torch": "2"}, "python": "3.11", "cpu": "x", "threads": 2}
    made = {"fingerprint": "a", "wall_seconds": 6000.0, "loss_last": 0.05, "environment": env, "steps": 2}
    again = {**made, "wall_seconds": 2900.0}
    kept = R.record_rebuild(json.loads(json.dumps(made)), again)
    assert {k: v for k, v in kept.items() if k != "rebuilds"} == made  # the figures the runs came from
    assert kept["rebuilds"] == [{"wall_seconds": 2900.0, "loss_last": 0.05, "environment": env}]
    assert R.record_rebuild(kept, again) == kept  # a later stage on the same build logs nothing more
    assert "Rebuilt with the same weights in 2900 s (x, 2 threads)" in R.attempt_markdown(
        {**kept, "examples": 9, "settings": R.WARMSTART, "loss_first": 1.0}, None
    )
    assert R.record_rebuild(made, made) == made  # the build that made the record
    assert R.record_rebuild(None, again) == again  # the first build
    assert R.record_rebuild(made, {**again, "fingerprint": "b"})["fingerprint"] == "b"  # a restart


def test_a_rebuild_in_another_environment_is_refused_before_it_starts():
    """The weights depend on the packages, the CPU and the thread count: a record made elsewhere is
    named before an hour's rebuild, with the pins that restore it; an older record without an
    environment refuses nothing (its fingerprint is still checked after the rebuild)."""
    here = R.environment()
    assert set(here["packages"]) == set(R.ENV_PACKAGES) and here["threads"] >= 1 and here["cpu"]
    R.check_environment(None, here)
    R.check_environment(json.loads(json.dumps(here)), here)
    other = json.loads(json.dumps(here))
    other["packages"]["transformers"], other["threads"] = "5.0.0", here["threads"] + 1
    assert R.environment_differences(other, here) == [
        f"transformers 5.0.0 (here {here['packages']['transformers']})",
        f"threads {here['threads'] + 1} (here {here['threads']})",
    ]
    other_cpu = {**here, "cpu": "another CPU"}
    assert R.environment_differences(other_cpu, here) == []  # a note only: the fingerprint decides
    R.check_environment(other_cpu, here)
    with pytest.raises(SystemExit, match=r"transformers 5\.0\.0 .*pip install transformers==5\.0\.0\) and rebuild"):
        R.check_environment(other, here)


def test_the_didactic_designs_commands_are_unchanged():
    """A setting without a task or extra flags builds the commands it built before (no --task)."""
    ns = V3.parse(["--settings-file", str(ROOT / "benchmarks" / "didactic_v4_settings.py")])
    cmd = V3.train_cmd(ns, "grpo", 0, {"learning_rate": 1e-4}, Path("x"))
    assert "--task" not in cmd and "--prompts-per-step" not in cmd
    assert "--task" not in V3.eval_cmd(ns, "m", 0, ns.S.TEST, Path("y"))


def test_the_minimum_detectable_difference_by_hand(tmp_path):
    # z(1 - 0.05/2/2) = 2.2414, z(0.8) = 0.8416; sqrt(2 * 0.35^2 / (96 * 5)) = 0.022592
    assert R.min_detectable(0.35, 96, 5) == pytest.approx(3.0830 * 0.022592, abs=2e-4)
    path = _design(tmp_path, {"chosen": "3x2", "options": R.PILOT_CANDIDATES["3x2"]})
    S = V3.load_settings(path)  # the driver's constants are the declared design's
    assert (S.TEST["n_problems"], len(S.FINAL_SEEDS), S.B) == (R.TEST_PROBLEMS, R.FINAL_SEEDS, R.B)


def test_the_problem_sets_are_disjoint(tmp_path):
    """reasoning-gym draws item i of seed s from Random(s + i) (mrt maps problem seeds 2^20 apart,
    ``gym_seed``): the held-out, validation and pilot
    problems come from random states none of the training (mrt train's default seed and count) or
    warm-start problems use, nor each other's; on the larger candidates, no held-out prompt is
    shared either (the pilot's with the RL training set aside: it measures the warm start)
    (2 terms of 2 digits have 16,200 problems: 512 training draws meet some by chance)."""
    from mrt.tasks import get_task, parse_knobs
    from mrt.tasks.text import gym_seed
    from mrt.train.config import TrainConfig

    S = V3.load_settings(_design(tmp_path, {"chosen": "3x2", "options": R.PILOT_CANDIDATES["3x2"]}))
    train = TrainConfig()
    spans = {
        "training": (train.train_seed, S.SETTING["train_flags"]["train_problems"]),
        "warm start": (R.WARMSTART["problem_seed"], R.WARMSTART["n_problems"]),
        "test": (S.TEST["problem_seed"], S.TEST["n_problems"]),
        "validation": (S.VALIDATION["problem_seed"], S.VALIDATION["n_problems"]),
        "pilot": (R.PILOT["problem_seed"], R.PILOT["n_problems"]),
    }
    states = {k: set(range(gym_seed(seed), gym_seed(seed) + n)) for k, (seed, n) in spans.items()}
    for held_out in ("test", "validation", "pilot"):
        for other, xs in states.items():
            assert other == held_out or not states[held_out] & xs, (held_out, other)
    warm = get_task("gym", **parse_knobs(R.knobs(R.WARMSTART["options"])))
    warm_prompts = {p.prompt for p in warm.problems(R.WARMSTART["n_problems"], seed=R.WARMSTART["problem_seed"])}
    for name, options in R.PILOT_CANDIDATES.items():
        task = get_task("gym", **parse_knobs(R.knobs(options)))
        prompts = {k: [p.prompt for p in task.problems(n, seed=seed)] for k, (seed, n) in spans.items()}
        prompts["warm start"] = warm_prompts
        for held_out in ("test", "validation", "pilot"):
            assert len(set(prompts[held_out])) >= 0.98 * len(prompts[held_out]), (name, held_out)
            for other, xs in prompts.items():
                if other == held_out or (held_out, other) == ("pilot", "training"):
                    continue  # the pilot measures the warm start, before any RL
                shared = sum(p in set(xs) for p in prompts[held_out])
                # 2 terms of 2 digits have 16,200 problems: a few chance meetings, never a leak
                assert shared <= 0.05 * len(prompts[held_out]), (name, held_out, other, shared)


def test_plan_and_report_run_on_the_settings_before_any_record(tmp_path):
    path = _design(tmp_path, {"chosen": "3x2", "options": R.PILOT_CANDIDATES["3x2"], "thinking_check": "ok"})
    d = tmp_path / "w"
    flags = ["--out", d / "runs", "--records", d / "rec", "--tune-records", d / "tr", "--tuning", d / "t.json"]
    ns = V3.parse(["--settings-file", str(path), *map(str, flags), "--plots", str(d / "plots")])
    (d / "runs").mkdir(parents=True)
    plan = V3.plan(ns)
    assert plan["tuning_runs_to_do"] == 1 + 3 * 2 and plan["final_runs_without_record"] == 4 * 5
    doc = V3.report(ns, None)
    assert doc["settings"]["smollm2-chain-sum"]["missing"] and doc["declared"]["second_axis"] == {}


def test_final_runs_also_evaluate_the_harder_split(tmp_path):
    path = _design(tmp_path, {"chosen": "3x2", "options": R.PILOT_CANDIDATES["3x2"], "thinking_check": "ok"})
    ns = V3.parse(["--settings-file", str(path), "--out", str(tmp_path / "runs")])
    S = ns.S
    assert "options=min_terms:3,max_terms:3,min_digits:3,max_digits:3" in S.HARD["knobs"]
    _, cmds, _, _ = V3._job(ns, "final/grpo-s0", tmp_path / "f", "grpo", 0, {"learning_rate": 1e-4}, S.TEST)
    assert [c[c.index("--out") + 1].rsplit("/", 1)[-1] for c in cmds] == ["train", "eval", "eval-hard"]
    hard = cmds[2]
    assert hard[hard.index("--knobs") + 2] == S.HARD["knobs"][1] and hard[hard.index("--n-problems") + 1] == "48"
    _, cmds, _, _ = V3._job(ns, "tune/grpo-0-s100", tmp_path / "t", "grpo", 100, {}, S.VALIDATION)
    assert len(cmds) == 2  # tuning runs are not evaluated on the harder split
    v4 = V3.parse(["--settings-file", str(ROOT / "benchmarks" / "didactic_v4_settings.py")])
    _, cmds, _, _ = V3._job(v4, "final/grpo-s0", tmp_path / "v4", "grpo", 0, {}, v4.S.TEST)
    assert len(cmds) == 2  # a design without HARD: as before


def test_the_plan_says_how_long_the_rest_takes(tmp_path):
    path = _design(tmp_path, {"chosen": "3x2", "options": R.PILOT_CANDIDATES["3x2"], "thinking_check": "ok"})
    d = tmp_path / "w"
    ns = V3.parse(
        ["--settings-file", str(path), "--out", str(d), "--tune-records", str(d / "tr"), "--records", str(d / "r")]
    )
    p = V3.plan(ns)
    S = ns.S.RUN_SECONDS
    trained = (2 + 5) * S["train"] + (4 + 10) * S["train_by_method"]["mrt"]  # grpo; the 2 MRT forms; base: none
    by_hand = trained + 7 * S["eval_validation"] + 20 * S["eval_test"]
    assert p["hours_left_one_run_at_a_time"] == round(by_hand / 3600, 1) and p["seconds_per_run_from"] == S["source"]
