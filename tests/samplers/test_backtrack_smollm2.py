"""A real-model proof of the backtracking format: SmolLM2-135M-Instruct on a text task in
``format=backtrack``: the prompt, the markers, the sliding window and an MRT-RL step, end to end.
A pipeline proof: a 135M model does not learn to backtrack in one step."""

import json

import pytest

from mrt.cli import main
from mrt.core import backtrack as bt
from mrt.measure.linearized import LinearizedConfig, run_linearized

KNOBS = ["dataset=chain_sum", "options=max_terms:2,max_digits:1", "extract=last-number", "format=backtrack"]


class Recorder:
    def __init__(self, sampler):
        self.inner, self.tokenizer, self.prompts = sampler, sampler.tokenizer, []

    def sample(self, prompts, params):
        self.prompts.append([list(p) for p in prompts])
        return self.inner.sample(prompts, params)


@pytest.mark.slow  # about 90 s on 2 shared cores
def test_linearized_text_on_smollm2(smollm2_dir, tmp_path):
    from mrt.samplers import load_sampler

    rec = Recorder(load_sampler(str(smollm2_dir)))
    cfg = LinearizedConfig(
        model=str(smollm2_dir),
        task="gym",
        knobs=KNOBS,
        out=str(tmp_path / "lin"),
        n_problems=1,
        samples=1,
        episodes=3,
        window=1,
        episode_tokens=16,
        answer_tokens=8,
        temperature=0.7,
    )
    s = run_linearized(cfg, sampler=rec)
    assert set(s["linearized"]) == {"1", "2", "3"} and s["knobs"]["format"] == "backtrack"
    assert sum(s["format_errors"].values()) + sum(s["revisits"].values()) == s["revision_rounds"] == 2
    tok = rec.tokenizer
    texts = [tok.decode(p) for batch in rec.prompts for p in batch]
    assert all(bt.BACKTRACK_INSTRUCTION.split("\n")[0][:60] in t for t in texts)  # the authors' prompt
    assert "<think>" not in texts[0]
    rounds = [t for t in texts if t.endswith(bt.RL_PROMPT_SUFFIX)]
    assert len(rounds) == 2  # rounds 2 and 3 end with the authors' RL marker
    for t in rounds:  # the window holds one attempt: the marker appears once; no end of turn inside it
        assert t.count(bt.RL_MARKER) == 1
        assert t.count(tok.eos_token) == texts[0].count(tok.eos_token)
    row = json.loads((tmp_path / "lin" / "linearized.jsonl").read_text())
    for tr in row["linearized"]:
        for e in tr["episodes"]:
            assert e["tokens"] > 0 and "answer" in e and isinstance(e["correct"], bool)


@pytest.mark.slow  # about 90 s on 2 shared cores
def test_mrt_backtrack_step_on_smollm2(smollm2_dir, tmp_path):
    out = tmp_path / "rl"
    rc = main(
        ["train", "--algo", "mrt-backtrack", "--model", str(smollm2_dir), "--task", "gym", "--knobs", *KNOBS]
        + ["--alpha", "0.8", "--max-steps", "1", "--prompts-per-step", "1", "--num-generations", "2"]
        + ["--mc-answers", "2", "--max-completion-length", "16", "--answer-tokens", "8", "--train-problems", "4"]
        + ["--learning-rate", "1e-5", "--warmup-steps", "0", "--eval-problems", "0", "--out", str(out)]
    )
    assert rc == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["steps"] == 1 and s["extra_sampled_tokens"] > 0  # z0 and its forced answers were sampled
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    row = next(r for r in log if "backtrack/j0" in r)
    assert 0.0 <= row["backtrack/j0"] <= 1.0
    assert abs(row["backtrack/progress"] - (row["rewards/correct/mean"] - row["backtrack/j0"])) < 1e-6


@pytest.mark.slow  # about a minute on 2 shared cores
def test_warmstart_text_on_smollm2(smollm2_dir, tmp_path):
    from mrt.train.warmstart import WarmstartConfig, run_warmstart

    for scheme in ("star", "backtrack"):
        cfg = WarmstartConfig(
            scheme=scheme,
            task="gym",
            knobs=KNOBS,
            model=str(smollm2_dir),
            n_problems=2,
            attempts=3,
            attempt_tokens=24,
            out=str(tmp_path / scheme),
        )
        s = run_warmstart(cfg)
        rows = [json.loads(x) for x in (tmp_path / scheme / "data.jsonl").read_text().splitlines()]
        # every problem gives examples or is counted as skipped: nothing is lost silently
        assert s["examples"] == len(rows) and (rows or sum(s["skipped_problems"].values()) == 2)
        for r in rows:
            assert r["prompt"].startswith("<|im_start|>") and bt.BACKTRACK_INSTRUCTION[:40] in r["prompt"]
            if scheme == "backtrack":
                assert r["completion"].startswith(("Backtrack to Line", "Backtrack to beginning"))
