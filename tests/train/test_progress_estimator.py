"""Dense MRT with J from a learned, on-policy progress estimator (--j-source, mrt/train/progress.py):
progress from given estimates by hand, the boundary draw, the estimator's update moving toward
Monte Carlo targets, token accounting of the mixed form, bad input, and resume after a kill."""

import json
import os
import random
import subprocess
import sys

import pytest
import torch
from conftest import kill_after_checkpoint
from test_train import SMALL  # the same few real steps as the other training tests

from mrt.core import advantages as adv
from mrt.pipelines import train as run_train
from mrt.tasks.star import StarTask
from mrt.train.config import load_config
from mrt.train.progress import ProgressEstimator, choose_mc, mc_count


def test_progress_and_dense_advantages_from_estimates_by_hand():
    j = [0.2, 0.5, 0.4, 0.9]  # estimated J after 0..3 episodes
    prg = adv.progress_from_j(j)
    assert prg == pytest.approx([0.3, -0.1, 0.5])
    # episodes end at tokens 2, 5, 6; outcome advantage 1.0, alpha 0.5, 8 token positions
    row = adv.dense_token_advantages(1.0, [2, 5, 6], prg, 8, 0.5)
    assert row == pytest.approx([1.15, 1.15, 0.95, 0.95, 0.95, 1.25, 1.0, 1.0])


def test_mc_count_and_draw():
    assert mc_count(20, 0.05) == 1 and mc_count(21, 0.05) == 2 and mc_count(40, 0.05) == 2
    assert mc_count(3, 1.0) == 3 and mc_count(0, 0.5) == 0 and mc_count(7, 0.0) == 0 and mc_count(1, 0.01) == 1
    with pytest.raises(ValueError, match="mc_share"):
        mc_count(5, 1.5)
    picks = choose_mc(50, 0.1, random.Random(0))
    assert len(picks) == 5 and picks == sorted(set(picks)) and all(0 <= k < 50 for k in picks)


@pytest.mark.parametrize("form", ["head", "model"])
def test_estimator_update_moves_toward_monte_carlo_targets(form):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mrt.tasks.tiny import shipped_model_path

    path = str(shipped_model_path())
    policy, tok = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    est = ProgressEstimator(form, lambda: policy, tok, lr=1e-2 if form == "head" else 1e-3, updates=8, seed=0)
    rng = random.Random(0)
    seqs = [[rng.randrange(3, len(tok)) for _ in range(rng.randrange(4, 12))] for _ in range(16)]
    targets = [0.9 if i % 2 else 0.1 for i in range(16)]
    before = est.predict(seqs)
    err0 = sum((p - t) ** 2 for p, t in zip(before, targets))
    for _ in range(3):
        est.update(seqs, targets)
    after = est.predict(seqs)
    err1 = sum((p - t) ** 2 for p, t in zip(after, targets))
    assert err1 < 0.7 * err0, (err0, err1)
    assert est.tokens_processed > 0
    if form == "head":  # the policy itself is never changed by the estimator
        fresh = AutoModelForCausalLM.from_pretrained(path)
        assert all(torch.equal(a, b) for a, b in zip(policy.state_dict().values(), fresh.state_dict().values()))


def test_estimator_state_round_trips(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mrt.tasks.tiny import shipped_model_path

    path = str(shipped_model_path())
    policy, tok = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    a = ProgressEstimator("head", lambda: policy, tok, seed=1)
    a.update([[5, 6, 7], [8, 9]], [1.0, 0.0])
    a.save(tmp_path)
    b = ProgressEstimator("head", lambda: policy, tok, seed=2)
    assert b.load(tmp_path)
    assert all(torch.equal(x, y) for x, y in zip(a.net.state_dict().values(), b.net.state_dict().values()))
    assert b.buffer == a.buffer and b.tokens_processed == a.tokens_processed
    assert b.rng.random() == a.rng.random()
    assert b.predict([[5, 6, 7]]) == a.predict([[5, 6, 7]])


def test_mixed_form_token_accounting(tmp_path):
    out = tmp_path / "mixed"
    cfg = dict(SMALL, algo="mrt-dense", j_source="mixed", mc_share=0.25, out=str(out))
    s = run_train(load_config(None, cfg))
    split = s["token_split"]
    # every sampled token is a rollout token or a forced answer (mrt-dense samples nothing else)
    assert split["other_mrt_samples_per_step"] == 0
    assert split["rollouts_per_step"] + split["forced_answers_per_step"] == pytest.approx(
        s["sampled_tokens_per_step"], abs=0.2
    )
    rows = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "estimator/mc_boundaries" in r]
    assert len(steps) == 2
    for r in steps:  # a quarter of the step's boundaries, rounded up, got Monte Carlo J
        assert r["estimator/mc_boundaries"] == mc_count(int(r["estimator/boundaries"]), 0.25)
        assert "estimator/brier" in r and 0 <= r["estimator/ece"] <= 1
    n_mc = sum(r["estimator/mc_boundaries"] for r in steps)
    answer_cap = StarTask.default_answer_tokens
    assert 0 < split["forced_answers_per_step"] * 2 <= n_mc * SMALL["mc_answers"] * answer_cap
    assert split["estimator_tokens_processed_per_step"] > 0
    from mrt.report.analysis import pyplot
    from mrt.report.compare import calibration_plot

    png = calibration_plot(pyplot(), [{"name": "mixed", "log": rows}], tmp_path / "cal.png")
    assert png.stat().st_size > 1000  # the per-step calibration plot of mrt compare
    # the Monte Carlo form samples forced answers at every boundary: more per step
    mc = run_train(load_config(None, dict(cfg, j_source="mc", out=str(tmp_path / "mc"))))
    assert mc["token_split"]["forced_answers_per_step"] > split["forced_answers_per_step"]


def test_bad_estimator_settings_name_the_flag(tmp_path):
    with pytest.raises(ValueError, match="mc_share"):
        load_config(None, dict(algo="mrt-dense", j_source="mixed", mc_share=1.5))
    with pytest.raises(ValueError, match="j_source"):
        load_config(None, dict(algo="mrt-dense", j_source="oracle"))
    with pytest.raises(ValueError, match="--estimator DIR"):
        load_config(None, dict(algo="mrt-dense", j_source="estimator", estimator_form="model"))
    with pytest.raises(ValueError, match="'estimator'.*no trained estimator"):
        load_config(None, dict(algo="mrt-dense", j_source="mixed", estimator=str(tmp_path / "missing")))
    with pytest.raises(ValueError, match="j_source"):
        load_config(None, dict(algo="grpo", j_source="mixed"))


def test_estimator_of_another_tokenizer_is_refused(tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    from mrt.train.progress import check_estimator_dir

    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text("{}")
    (other / "model.safetensors").write_bytes(b"")  # a finished save has its weights (rundir.has_weights)
    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    tok.add_tokens(["an-extra-token"])
    tok.save_pretrained(str(other))
    with pytest.raises(ValueError, match="tokenizer differs"):
        check_estimator_dir(str(other), AutoTokenizer.from_pretrained(str(tiny_model_dir)), "star")
    (other / "model.safetensors").unlink()  # a save killed before its weights: not an estimator
    with pytest.raises(ValueError, match="no trained estimator there"):
        check_estimator_dir(str(other), tok, "star")
    (other / "model.safetensors").write_bytes(b"")
    (other / "calibration.json").write_text(json.dumps({"task": "gsm8k"}))
    with pytest.raises(ValueError, match="trained on task 'gsm8k'"):
        check_estimator_dir(str(other), tok, "star")


@pytest.mark.slow  # minutes: two mixed-form runs, one killed
def test_killed_mixed_run_resumes_with_its_estimator(tmp_path):
    out = tmp_path / "k"
    cmd = [sys.executable, "-m", "mrt.cli", "train", "--algo", "mrt-dense", "--j-source", "mixed"]
    cmd += ["--out", str(out), "--max-steps", "3", "--prompts-per-step", "2", "--num-generations", "4"]
    cmd += ["--mc-answers", "2", "--train-problems", "32", "--save-every", "1", "--report-to", "none"]
    cmd += ["--eval-problems", "0", "--threads", "2"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    tokens_at_1 = kill_after_checkpoint(cmd, out, step=1, wait=240, env=env)
    saved = torch.load(out / "checkpoints" / "checkpoint-1" / "progress_estimator.pt", weights_only=True)
    assert len(saved["buffer_targets"]) > 0  # the estimator had been updated before the kill
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "resuming from" in r.stderr and "starts afresh" not in r.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["steps"] == 3 and s["sampled_tokens"] > tokens_at_1
    final = torch.load(out / "checkpoints" / "checkpoint-3" / "progress_estimator.pt", weights_only=True)
    # the resumed estimator kept the targets gathered before the kill, then added more
    assert final["buffer_targets"][: len(saved["buffer_targets"])] == saved["buffer_targets"]
    assert len(final["buffer_targets"]) > len(saved["buffer_targets"])
