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
