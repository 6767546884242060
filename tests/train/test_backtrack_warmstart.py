"""Warm-start data of the backtracking format (``mrt warmstart``): the three schemes."""

import json

import pytest

from mrt.core import backtrack as bt
from mrt.tasks import get_task
from mrt.train.warmstart import WarmstartConfig, run_warmstart, text_examples


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("scheme", ["backtrack", "rise", "star"])
def test_tree_schemes(scheme, tmp_path):
    s = run_warmstart(WarmstartConfig(scheme=scheme, n_problems=64, attempts=4, out=str(tmp_path / scheme)))
    rows = _rows(tmp_path / scheme / "data.jsonl")
    assert s["examples"] == len(rows) > 0
    task = get_task("tree")
    probs = {p.id: p for p in task.problems(64, seed=11)}
    for r in rows:
        p = probs[r["problem_id"]]
        g = task.graph(p.meta["seed"])
        path = [g.start] + g.arms[g.goal_arm]
        comp = r["completion"].split()
        assert comp[-len(path) - 2 :] == ["answer", *path, "<eos>"]  # every example ends with the right answer
        thinking = comp[: comp.index("</think>")]
        if scheme == "star":
            assert r["prompt"] == p.prompt and thinking == bt.render_words(path, "found")
            continue
        attempt = r["prompt"][len(p.prompt) :].split()
        assert attempt[0] == "try" and attempt[-1] == "dead" and attempt[1:-1] != path
        t = bt.parse_words(attempt + thinking)  # the prompt's attempt + the completion's round parse
        assert t.attempts()[-1] == tuple(path) and t.outcomes() == ["dead", "found"]
        keep = t.rounds[0].marker.keep
        assert keep == r["keep"] == (bt.shared_prefix(attempt[1:-1], path) if scheme == "backtrack" else 1)
    if scheme == "star":  # rejection sampling: problems with no correct draw are skipped and counted
        assert s["examples"] + s["skipped_problems"].get("no_correct_attempt", 0) >= 64
    else:
        assert s["examples"] + s["skipped_problems"].get("no_failed_and_correct_pair", 0) == 64


def test_backtrack_scheme_keeps_more_than_rise(tmp_path):
    a = run_warmstart(WarmstartConfig(scheme="backtrack", n_problems=128, out=str(tmp_path / "a")))
    b = run_warmstart(WarmstartConfig(scheme="rise", n_problems=128, out=str(tmp_path / "b")))
    assert b["mean_keep"] == 1.0 and a["mean_keep"] > 1.2  # the shared trunk is kept


def test_text_examples_hand_made():
    failed = "Step 1: x = 2\nStep 2: so 2x = 5, \\boxed{5}"
    right = "Step 1: x = 2\nStep 2: so 2x = 4\nStep 3: \\boxed{4}"
    other = "Step 1: let y = 2x\nStep 2: \\boxed{4}"
    att = [(failed, False), (other, True), (right, True)]
    (ex,) = text_examples(None, None, "backtrack", att, "PROMPT ")
    assert ex["prompt"] == "PROMPT " + failed + "\n" and ex["keep"] == 1
    assert ex["completion"] == "Backtrack to Line 1\nStep 2: so 2x = 4\nStep 3: \\boxed{4}"
    t = bt.parse_text(ex["prompt"][len("PROMPT ") :] + ex["completion"])
    assert t.attempts()[-1] == ("Step 1: x = 2", "Step 2: so 2x = 4", "Step 3: \\boxed{4}")
    (rise,) = text_examples(None, None, "rise", att, "P")
    assert rise["completion"].startswith("Backtrack to beginning\nStep 1: let y = 2x") or rise["completion"].startswith(
        "Backtrack to beginning\nStep 1: x = 2"
    )
    assert bt.parse_text(failed + "\n" + rise["completion"]).rounds[0].marker.keep == 0
    star = text_examples(None, None, "star", att, "P")
    assert [e["completion"] for e in star] == [other, right]
    assert text_examples(None, None, "backtrack", [(failed, False)], "P") == []  # no correct attempt: none


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"scheme": "sft"}, "scheme"),
        ({"knobs": ["format=plain"]}, "format=backtrack"),
        ({"task": "star"}, "format=backtrack"),
        ({"attempts": 0}, "attempts"),
    ],
)
def test_warmstart_bad_settings(kw, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        run_warmstart(WarmstartConfig(out=str(tmp_path / "w"), n_problems=2, **kw))


def test_warmstart_resumes_and_extends(tmp_path):
    out = tmp_path / "w"
    a = run_warmstart(WarmstartConfig(scheme="backtrack", n_problems=8, out=str(out)))
    first = (out / "data.jsonl").read_text()
    # a torn last record (a kill mid-write) is dropped and that problem redone
    recs = (out / "problems.jsonl").read_text()
    (out / "problems.jsonl").write_text(recs + '{"problem_id": "tree-11-8", "exam')
    b = run_warmstart(WarmstartConfig(scheme="backtrack", n_problems=12, out=str(out)))
    assert a["examples"] == 8 and b["examples"] == 12
    assert (out / "data.jsonl").read_text().startswith(first)  # the finished problems are kept as they were
    assert len((out / "problems.jsonl").read_text().splitlines()) == 12
    with pytest.raises(ValueError):  # other settings into the same directory are refused
        run_warmstart(WarmstartConfig(scheme="rise", n_problems=12, out=str(out)))
