import json

import pytest

from mrt.cli import main
from mrt.measure.analyze import AnalyzeConfig
from mrt.pipelines import analyze as run_analysis

REQUIRED = [
    "model",
    "task",
    "n_problems",
    "n_traces",
    "accuracy",
    "mean_output_tokens",
    "mean_episodes",
    "j_by_episode",
    "progress_by_episode",
    "normalized_regret",
    "maj_at_k",
]


def _cfg(model, out, n=2, **kw):
    base = dict(
        model=str(model),
        out=str(out),
        n_problems=n,
        traces_per_problem=2,
        answers_per_prefix=4,
        max_new_tokens=24,
        answer_tokens=6,
        extensions=1,
        maj_k=[1, 2, 4],
        knobs=["arms=2", "arm_len=2"],
    )
    base.update(kw)
    return AnalyzeConfig(**base)


def test_analyze_writes_everything_and_resumes(tiny_sampler, tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    s = run_analysis(_cfg(tiny_model_dir, out), sampler=tiny_sampler)
    for key in REQUIRED:
        assert key in s
    assert s["n_problems"] == 2 and s["n_traces"] == 4
    assert set(s["maj_at_k"]) == {"1", "2", "4"}
    for f in (
        "traces.jsonl",
        "summary.json",
        "report.html",
        "plots/j_progress.png",
        "plots/regret.png",
        "plots/j_tokens.png",
        "plots/majk.png",
    ):
        assert (out / f).exists(), f
    lines = (out / "traces.jsonl").read_text().splitlines()
    assert len(lines) == 4
    rec = json.loads(lines[0])
    assert len(rec["prefixes"]) == len(rec["episodes"]) + 1
    assert len(rec["progress"]) == len(rec["episodes"])
    for p in rec["prefixes"]:
        assert len(p["answers"]) == 4 and p["ci"][0] <= p["j"] <= p["ci"][1]
    # an interrupted write: a partial problem and a torn line
    with (out / "traces.jsonl").open("a") as f:
        f.write(json.dumps({**rec, "problem_id": "star-0-2"}) + "\n" + '{"problem_id": "star-0-')
    s2 = run_analysis(_cfg(tiny_model_dir, out, n=3), sampler=tiny_sampler)
    lines2 = (out / "traces.jsonl").read_text().splitlines()
    assert lines2[:4] == lines  # finished work kept byte for byte
    assert len(lines2) == 6 and s2["n_problems"] == 3
    with pytest.raises(ValueError, match="other settings"):
        run_analysis(_cfg(tiny_model_dir, out, answers_per_prefix=3), sampler=tiny_sampler)


def test_same_settings_give_the_same_results_after_resume(tiny_sampler, tiny_model_dir, tmp_path):
    run_analysis(_cfg(tiny_model_dir, tmp_path / "a", n=3), sampler=tiny_sampler)
    run_analysis(_cfg(tiny_model_dir, tmp_path / "b", n=1), sampler=tiny_sampler)
    run_analysis(_cfg(tiny_model_dir, tmp_path / "b", n=3), sampler=tiny_sampler)
    a = (tmp_path / "a" / "traces.jsonl").read_text()
    b = (tmp_path / "b" / "traces.jsonl").read_text()
    assert a == b


def test_cli_errors_name_the_problem(tmp_path, capsys):
    assert main(["analyze", "--task", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "unknown task 'nope'" in capsys.readouterr().err
    assert main(["analyze", "--knobs", "width=3", "--out", str(tmp_path / "x")]) == 2
    assert "unknown knob 'width'" in capsys.readouterr().err
    assert main(["analyze", "--model", str(tmp_path / "missing"), "--out", str(tmp_path / "y")]) == 2
    assert "does not exist" in capsys.readouterr().err


class _Counting:
    """The sampler, with every call's number of prompts recorded."""

    def __init__(self, inner):
        self.inner, self.tokenizer, self.calls = inner, inner.tokenizer, []

    def sample(self, prompts, params):
        self.calls.append(len(prompts))
        return self.inner.sample(prompts, params)


def test_a_window_of_problems_is_served_together_and_resumes_the_same(tiny_sampler, tiny_model_dir, tmp_path):
    one, three = _Counting(tiny_sampler), _Counting(tiny_sampler)
    s1 = run_analysis(_cfg(tiny_model_dir, tmp_path / "w1", n=5, window=1), sampler=one)
    s3 = run_analysis(_cfg(tiny_model_dir, tmp_path / "w3", n=5, window=3), sampler=three)
    # traces, forced answers, one extension round and its answers: at most 4 calls per window
    assert len(three.calls) <= 4 * 2 < len(one.calls) <= 4 * 5
    assert max(three.calls) > max(one.calls)
    assert three.calls[0] == 3 and one.calls[0] == 1  # the first window's traces in one call
    lines = (tmp_path / "w3" / "traces.jsonl").read_text().splitlines()
    assert [json.loads(x)["problem_id"] for x in lines] == [f"star-0-{i}" for i in range(5) for _ in range(2)]
    assert s1["n_traces"] == s3["n_traces"] == 10
    # killed inside the first window (two of its three problems written): the rerun redoes the
    # window with the same seeds, keeps what was written, and ends with the same records
    (tmp_path / "w3" / "traces.jsonl").write_text("".join(x + "\n" for x in lines[:4]))
    (tmp_path / "w3" / "summary.json").unlink()
    run_analysis(_cfg(tiny_model_dir, tmp_path / "w3", n=5, window=3), sampler=tiny_sampler)
    assert (tmp_path / "w3" / "traces.jsonl").read_text().splitlines() == lines
    # a window of one problem is the one-problem analysis: a rerun at window 1 matches
    run_analysis(_cfg(tiny_model_dir, tmp_path / "again", n=5, window=1), sampler=tiny_sampler)
    assert (tmp_path / "again" / "traces.jsonl").read_text() == (tmp_path / "w1" / "traces.jsonl").read_text()
    with pytest.raises(ValueError, match="window must be >= 1"):
        run_analysis(_cfg(tiny_model_dir, tmp_path / "bad", window=-1), sampler=tiny_sampler)
    assert not (tmp_path / "bad").exists()
