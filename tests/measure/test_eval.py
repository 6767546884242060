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
