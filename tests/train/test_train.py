"""Every algorithm trains a few real steps on CPU (TRL GRPOTrainer / SFTTrainer) and moves the
weights; config errors name the key; a kill resumes from the last checkpoint; NaN stops the run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import kill_after_checkpoint

from mrt.pipelines import train as run_train
from mrt.train.config import ALGOS, load_config

SMALL = dict(
    max_steps=2,
    prompts_per_step=2,
    num_generations=4,
    mc_answers=2,
    train_problems=32,
    save_every=2,
    logging_steps=1,
    report_to="none",
    eval_problems=0,
    batch_size=4,
    threads=2,
)


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(Path(path) / "model.safetensors"))


# The forms whose trainer paths the kept ones already cover run with -m slow (CI time): length-penalty is
# GRPO with a reward term, star/mrt-star the STaR filter path, mrt-online and anytime MRT's sampling path.
SLOW_ALGOS = {"length-penalty", "star", "mrt-star", "mrt-online", "anytime"}


@pytest.mark.parametrize("algo", [pytest.param(a, marks=pytest.mark.slow) if a in SLOW_ALGOS else a for a in ALGOS])
def test_each_algorithm_changes_the_weights(algo, tmp_path):
    from mrt.tasks.tiny import shipped_model_path

    out = tmp_path / algo
    task = {"task": "tree"} if algo == "mrt-backtrack" else {}  # the backtracking format's world
    s = run_train(load_config(None, dict(SMALL, algo=algo, out=str(out), **task)))
    assert s["algo"] == algo and s["steps"] == 2
    before, after = _weights(shipped_model_path()), _weights(out / "model")
    moved = sum(not torch.equal(before[k], after[k]) for k in before)
    assert moved > 0, f"{algo} did not change any weight"
    assert (out / "train_log.jsonl").read_text().strip()
    if algo != "sft":
        assert s["sampled_tokens"] > 0
    if algo in ("mrt", "mrt-dense", "mrt-star", "mrt-backtrack"):
        assert s["extra_sampled_tokens"] > 0  # prefixes or J estimates were sampled
    summary = json.loads((out / "summary.json").read_text())
    for key in ("algo", "steps", "wall_seconds", "sampled_tokens"):
        assert key in summary


def test_summary_has_final_evaluation(tmp_path):
    cfg = dict(
        SMALL,
        algo="grpo",
        out=str(tmp_path / "g"),
        eval_problems=3,
        eval_traces=2,
        eval_knobs=["arms=5", "arm_len=4"],
        report_to="tensorboard",
    )
    s = run_train(load_config(None, cfg))
    assert list((tmp_path / "g" / "logs").glob("events.out.tfevents.*")), "no TensorBoard events written"
    for name in ("held_out", "hard"):
        e = s["eval"][name]
        assert 0 <= e["accuracy"] <= 1 and e["normalized_regret"] and e["j_by_episode"]
    assert (tmp_path / "g" / "eval" / "report.html").exists()
    # mrt compare: a training run next to an analysis run
    from mrt.report.compare import compare

    res = compare([str(tmp_path / "g"), str(tmp_path / "g" / "eval")], str(tmp_path / "cmp"))
    assert [r["run"] for r in res["held_out"]] == ["g", "eval"] and [r["run"] for r in res["hard"]] == ["g"]
    assert res["held_out"][0]["accuracy"] == s["eval"]["held_out"]["accuracy"]
    table = (tmp_path / "cmp" / "table.md").read_text()
    assert "| g | grpo |" in table and "regret C=16" in table
    for name in ("accuracy_vs_tokens", "regret_vs_budget", "j_by_episode", "training"):
        assert (tmp_path / "cmp" / "plots" / f"{name}.png").stat().st_size > 1000
    with pytest.raises(FileNotFoundError, match="summary.json"):
        compare([str(tmp_path)], str(tmp_path / "cmp2"))
    # a second call with the same settings finds the finished run
    assert run_train(load_config(None, cfg))["steps"] == 2


def test_config_file_and_errors(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("algo: mrt\nalpha: 0.5\nknobs: [arms=2-3]\n")
    cfg = load_config(str(f), {"alpha": 2.0})
    assert cfg.algo == "mrt" and cfg.alpha == 2.0 and cfg.knobs == ["arms=2-3"]
    f.write_text("algo: mrt\nalpah: 0.5\n")
    with pytest.raises(ValueError, match="'alpah'"):
        load_config(str(f), {})
    f.write_text("learning_rate: fast\n")
    with pytest.raises(ValueError, match="'learning_rate'"):
        load_config(str(f), {})
    with pytest.raises(ValueError, match="'algo'"):
        load_config(None, {"algo": "ppo"})
    with pytest.raises(ValueError, match="'num_generations'"):
        load_config(None, {"algo": "mrt", "num_generations": 1})
    with pytest.raises(FileNotFoundError):
        load_config(str(tmp_path / "missing.yaml"), {})


def test_cli_reports_bad_key(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("stepz: 3\n")
    r = subprocess.run(
        [sys.executable, "-m", "mrt.cli", "train", "--config", str(f), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "'stepz'" in r.stderr


def test_reward_error_names_the_problem(tmp_path, monkeypatch):
    from mrt.tasks.star import StarTask
    from mrt.train.trainer import RewardError

    def boom(self, problem, answer):
        raise ZeroDivisionError("grader bug")

    monkeypatch.setattr(StarTask, "grade", boom)
    with pytest.raises(RewardError, match=r"problem 'star-11-\d+'"):
        run_train(load_config(None, dict(SMALL, algo="grpo", out=str(tmp_path / "r"))))


def test_nan_loss_stops_and_keeps_last_checkpoint(tmp_path, monkeypatch):
    from mrt.train import trainer as tr

    out = tmp_path / "n"
    calls = {"n": 0}
    real = tr.GRPOTrainer.training_step

    def step(self, *a, **k):
        calls["n"] += 1
        loss = real(self, *a, **k)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(tr.GRPOTrainer, "training_step", step)
    with pytest.raises(FloatingPointError, match="step 3"):
        run_train(load_config(None, dict(SMALL, algo="grpo", out=str(out), max_steps=4)))
    assert (out / "checkpoints" / "checkpoint-2").is_dir()
    assert not (out / "checkpoints" / "checkpoint-4").exists()
    assert not (out / "summary.json").exists()


@pytest.mark.slow  # in CI the same resume runs on the vLLM engine (tests/samplers/test_vllm.py); here with transformers
def test_killed_run_resumes(tmp_path):
    out = tmp_path / "k"
    cmd = [
        sys.executable,
        "-m",
        "mrt.cli",
        "train",
        "--algo",
        "mrt",
        "--out",
        str(out),
        "--max-steps",
        "4",
        "--prompts-per-step",
        "2",
        "--num-generations",
        "4",
        "--train-problems",
        "32",
        "--save-every",
        "2",
        "--report-to",
        "none",
        "--eval-problems",
        "0",
        "--threads",
        "2",
    ]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    tokens_at_2 = kill_after_checkpoint(cmd, out, wait=120, env=env)
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "resuming from" in r.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["steps"] == 4 and s["sampled_tokens"] > tokens_at_2


def test_thinking_budget_forces_the_answer(tmp_path):
    """A binding budget of 2 thinking tokens: (nearly) every rollout is cut there and its answer
    forced; the forced termination token gets no gradient; every sampled token is counted."""
    from transformers import AutoTokenizer

    from mrt.tasks import StarTask
    from mrt.tasks.tiny import shipped_model_path
    from mrt.train.trainer import MRTTrainer

    seen = {}
    orig = MRTTrainer._force_at_budget

    def spy(self, prompt_ids, comps, logprobs):
        new, lps = orig(self, prompt_ids, comps, logprobs)
        seen.setdefault("rows", []).extend(zip(comps, new, self._forced_spans))
        return new, lps

    MRTTrainer._force_at_budget = spy
    try:
        s = run_train(
            load_config(None, dict(SMALL, algo="anytime", thinking_budget=2, budget_grid=2, out=str(tmp_path / "a")))
        )
    finally:
        MRTTrainer._force_at_budget = orig
    tok = AutoTokenizer.from_pretrained(shipped_model_path())
    task = StarTask()
    forced = [(old, new, span) for old, new, span in seen["rows"] if span]
    assert len(forced) >= 0.75 * len(seen["rows"])
    for old, new, (a, b) in forced:
        think, answer = task.split_output(new, tok)
        assert len(think) <= 2 and answer is not None and new[:a] == old[:a] == think
        assert tok.convert_ids_to_tokens(new[a:b]) == ["</think>"]
    log = [json.loads(x) for x in (tmp_path / "a" / "train_log.jsonl").read_text().splitlines()]
    assert any(r.get("budget/forced_fraction", 0) > 0.7 for r in log)
    assert any("anytime/reward_at_2" in r for r in log)
    assert s["extra_sampled_tokens"] > 0 and s["sampled_tokens"] > s["extra_sampled_tokens"]
    with pytest.raises(ValueError, match="not a distribution"):
        load_config(None, dict(SMALL, algo="anytime", budget_prior="0.7,0.7", budget_grid=2))
    with pytest.raises(ValueError, match="unknown algorithm 'anytme'"):
        load_config(None, dict(SMALL, algo="anytme"))


def test_mrt_prefix_traces_stop_at_the_thinking_budget(tmp_path):
    """Only the thinking inside the budget becomes a prefix: the prefix traces are sampled that far
    (and a closing tag), not to the rollout cap, so no unusable token is sampled and counted."""
    from mrt.train.trainer import MRTTrainer

    prefix_calls, orig_inputs, orig_sample = [], MRTTrainer.mrt_inputs, MRTTrainer._sample

    def spy_inputs(self, inputs):
        self._spy_prefix = True
        return orig_inputs(self, inputs)

    def spy_sample(self, prompt_ids, params):
        comps = orig_sample(self, prompt_ids, params)
        if getattr(self, "_spy_prefix", False):  # the first call of mrt_inputs: the prefix traces
            prefix_calls.append((params.max_new_tokens, [len(c[0].token_ids) for c in comps]))
            self._spy_prefix = False
        return comps

    MRTTrainer.mrt_inputs, MRTTrainer._sample = spy_inputs, spy_sample
    try:
        run_train(
            load_config(
                None, dict(SMALL, algo="mrt", thinking_budget=3, max_completion_length=16, out=str(tmp_path / "m"))
            )
        )
    finally:
        MRTTrainer.mrt_inputs, MRTTrainer._sample = orig_inputs, orig_sample
    assert len(prefix_calls) == 2
    for cap, lengths in prefix_calls:  # </think> is one token of the tiny vocabulary
        assert cap == 3 + 1 and all(1 <= n <= cap for n in lengths)


def test_a_new_algorithm_is_one_registration(tmp_path):
    """An algorithm is a registered advantage function: registered here (as a new module in
    mrt/train/algos/ would), it is a valid --algo, the trainer calls it every step, and it trains."""
    from mrt.tasks.tiny import shipped_model_path
    from mrt.train.algos import Algorithm, names, register, unregister

    calls = []

    def advantages(trainer, step):
        calls.append(len(step.local))
        assert len(step.correct) == len(step.local) == len(step.inputs)
        return -step.out["advantages"]  # GRPO with its sign flipped: anything but GRPO's update

    register(Algorithm("test-flip", "GRPO, sign flipped (a test)", advantages=advantages, rank=999))
    try:
        assert names()[-1] == "test-flip"
        out = tmp_path / "flip"
        s = run_train(load_config(None, dict(SMALL, algo="test-flip", out=str(out))))
        assert s["algo"] == "test-flip" and s["steps"] == 2
        assert calls and all(n == SMALL["num_generations"] * SMALL["prompts_per_step"] for n in calls)
        before, after = _weights(shipped_model_path()), _weights(out / "model")
        assert any(not torch.equal(before[k], after[k]) for k in before)
    finally:
        unregister("test-flip")
    with pytest.raises(ValueError, match="unknown algorithm 'test-flip'"):
        load_config(None, dict(SMALL, algo="test-flip", out=str(tmp_path / "gone")))


def test_a_budget_curriculum_switches_the_thinking_budget_by_tokens_sampled(tmp_path):
    from mrt.train.config import budget_at, parse_schedule

    sched = parse_schedule("16@0,32@0.5")
    assert sched == [(0.0, 16), (0.5, 32)]
    assert [budget_at(sched, f) for f in (0.0, 0.49, 0.5, 0.9)] == [16, 16, 32, 32]
    for bad in ("16@0.1,32@0.5", "16@0,32@0.5,8@0.5", "16", "x@0", "16@1.5"):
        with pytest.raises(ValueError, match="thinking_budget_schedule"):
            parse_schedule(bad)
    with pytest.raises(ValueError, match="needs a token budget"):
        load_config(None, dict(SMALL, thinking_budget_schedule="2@0,6@0.5"))
    cfg = dict(SMALL, algo="grpo", max_steps=100, token_budget=900, thinking_budget_schedule="2@0,6@0.5")
    s = run_train(load_config(None, dict(cfg, out=str(tmp_path / "c"))))
    log = [json.loads(x) for x in (tmp_path / "c" / "train_log.jsonl").read_text().splitlines()]
    budgets = [r["budget/thinking_budget"] for r in log if "budget/thinking_budget" in r]
    assert budgets[0] == 2 and budgets[-1] == 6 and budgets == sorted(budgets)  # B first, then 2B, by tokens
    assert s["sampled_tokens"] >= 900


def test_a_forced_answer_longer_than_a_rollout_is_warned_about(caplog):
    """The text tasks' default answer cap (4,096, the authors') under 256-token rollouts: warned,
    naming the flag; a cap within the rollout, or an algorithm that forces no answer, is quiet."""
    from mrt.tasks import get_task
    from mrt.train.run import warn_long_answers

    task = get_task("gym", dataset="chain_sum", options="max_terms:2,max_digits:1")
    mrt = load_config(None, {"algo": "mrt", "task": "gym", "max_completion_length": 256})
    with caplog.at_level("WARNING", logger="mrt.train.run"):
        assert warn_long_answers(mrt, task, 256)
    assert "4096 tokens (the task's default)" in caplog.text and "--answer-tokens below 256" in caplog.text
    assert not warn_long_answers(load_config(None, {"algo": "mrt", "answer_tokens": 64}), task, 256)
    assert not warn_long_answers(load_config(None, {"algo": "grpo"}), task, 256)  # no budget: nothing forced
    assert warn_long_answers(load_config(None, {"algo": "grpo", "thinking_budget": 128}), task, 256)
