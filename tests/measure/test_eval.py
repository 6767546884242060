"""``mrt eval``: pass@1 over n samples, pass@k, maj@k and budget forcing, resumable."""

import json

import pytest

from mrt.cli import main


def test_eval_harness_on_the_shipped_model(tmp_path):
    out = tmp_path / "ev"
    args = [
        "eval",
        "--task",
        "star",
        "--n-problems",
        "6",
        "--samples",
        "4",
        "--maj-k",
        "1",
        "2",
        "4",
        "--temperature",
        "1.0",
        "--top-p",
        "1.0",
        "--extensions",
        "1",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    rows = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    s = json.loads((out / "summary.json").read_text())
    assert len(rows) == 6 and all(len(r["correct"]) == 4 for r in rows)
    p1 = sum(sum(r["correct"]) / 4 for r in rows) / 6
    assert s["pass@1"] == pytest.approx(p1)
    assert s["pass_at_k"]["1"] == pytest.approx(p1) and s["maj_at_k"]["1"] == pytest.approx(p1)
    assert s["pass_at_k"]["1"] <= s["pass_at_k"]["2"] <= s["pass_at_k"]["4"]
    assert s["pass_at_k"]["4"] == pytest.approx(sum(any(r["correct"]) for r in rows) / 6)
    assert set(s["forcing_accuracy"]) == {"1"} and 0 <= s["forcing_accuracy"]["1"] <= 1
    assert main(args) == 0  # resumed: nothing sampled again
    assert [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()] == rows
    assert main(args[:-2] + ["--samples", "0", "--out", str(tmp_path / "x")]) == 2


def test_eval_serves_a_window_of_problems_in_one_call(tiny_sampler, tiny_model_dir, tmp_path):
    from mrt.measure.evaluate import EvalConfig
    from mrt.pipelines import evaluate

    calls = []

    class Counting:
        tokenizer = tiny_sampler.tokenizer

        def sample(self, prompts, params):
            calls.append(len(prompts))
            return tiny_sampler.sample(prompts, params)

    def cfg(out, window, **kw):
        kw = {"extensions": 1, **kw}
        return EvalConfig(model=str(tiny_model_dir), out=str(out), n_problems=5, samples=3, window=window, **kw)

    s = evaluate(cfg(tmp_path / "w4", 4), Counting())
    assert calls[0] == 4 and len(calls) <= 6  # two windows: samples, one forcing round and its answers
    rows = [json.loads(x) for x in (tmp_path / "w4" / "samples.jsonl").read_text().splitlines()]
    assert [r["problem_id"] for r in rows] == [f"star-0-{i}" for i in range(5)]
    assert all(len(r["correct"]) == 3 and len(r["forcing"]) == 3 for r in rows) and s["n_problems"] == 5
    with pytest.raises(ValueError, match="a problem at a time"):
        evaluate(cfg(tmp_path / "stop", 2, stop="natural", extensions=0), Counting())
