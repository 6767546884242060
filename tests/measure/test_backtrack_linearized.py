"""Linearized evaluation (``mrt linearized``) on a real tiny model: windows, counts, resume, bad input."""

import json

import pytest

from mrt.measure.linearized import LinearizedConfig, run_linearized


class Recorder:
    """The real tiny sampler, with every prompt it was given kept (a spy, not a mock)."""

    def __init__(self, sampler):
        self.inner, self.tokenizer, self.prompts = sampler, sampler.tokenizer, []

    def sample(self, prompts, params):
        self.prompts.append([list(p) for p in prompts])
        return self.inner.sample(prompts, params)


def test_linearized_run_counts_and_windows(tiny_sampler, tmp_path):
    rec = Recorder(tiny_sampler)
    cfg = LinearizedConfig(
        task="tree", out=str(tmp_path / "lin"), n_problems=2, samples=2, episodes=3, window=1, episode_tokens=12
    )
    s = run_linearized(cfg, sampler=rec)
    assert s["n_problems"] == 2 and set(s["linearized"]) == set(s["parallel"]) == {"1", "2", "3"}
    for mode in ("linearized", "parallel"):
        toks = [s[mode][k]["tokens"] for k in ("1", "2", "3")]
        assert toks == sorted(toks) and toks[0] > 0  # tokens accumulate
        assert all(0.0 <= s[mode][k]["maj"] <= 1.0 for k in ("1", "2", "3"))
    rows = [json.loads(line) for line in (tmp_path / "lin" / "linearized.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    rounds = 0
    for r in rows:
        for tr in r["linearized"]:
            assert len(tr["episodes"]) == 3 and len(tr["maj"]) == 3 and len(tr["revisits"]) == 3
            assert all("format_error" in e or "attempt" in e for e in tr["episodes"])
            # a revision round follows a parsed attempt; a first attempt that broke the format is tried again
            rounds += sum(1 for e in tr["episodes"][1:] if not e.get("first"))
            firsts = [i for i, e in enumerate(tr["episodes"]) if i == 0 or e.get("first")]
            assert firsts == list(range(len(firsts)))  # only until one first attempt parses
            assert all("format_error" in tr["episodes"][i] for i in firsts[:-1])
        assert all(len(p["episodes"]) == 3 for p in r["parallel"])
    assert rounds == s["revision_rounds"] <= 2 * 2 * 2
    # equal tokens: every trace's majority at parallel maj@k's mean token cost, recomputed from the records
    from mrt.core.backtrack import value_at_tokens

    for k, v in s["equal_tokens"].items():
        assert v["tokens"] == s["parallel"][k]["tokens"]
        for mode in ("linearized", "parallel"):
            groups = [g for r in rows for g in r[mode]]
            want = sum(value_at_tokens(g["cum_tokens"], g["maj"], v["tokens"]) for g in groups) / len(groups)
            assert v[mode] == pytest.approx(want, abs=1e-6)
            # per problem (the pairing unit of the benchmark): their mean is the summary's figure
            per = [s["per_problem"][r["problem_id"]][mode]["equal_tokens"][k] for r in rows]
            assert sum(per) / len(per) == pytest.approx(v[mode], abs=1e-5)
    assert sum(s["format_errors"].values()) + sum(s["revisits"].values()) == s["revision_rounds"]
    # every revision round's context: the prompt, at most W = 1 attempt written whole, then the opener 'back'
    tok = tiny_sampler.tokenizer
    back, try_ = tok.convert_tokens_to_ids(["back", "try"])
    episode_batches = [b for b in rec.prompts if b and b[0][-1] in (back, try_) and len(b) == 2 * 2]
    assert len(episode_batches) == 3  # rounds 0, 1 and 2: both problems' traces in one batch (batch_problems=16)
    revision_ctx = [p for b in episode_batches[1:] for p in b if p[-1] == back]
    assert len(revision_ctx) == s["revision_rounds"]
    assert all(p.count(try_) <= 1 for p in revision_ctx)  # at most W = 1 attempt written whole
    # a rerun with the same settings resumes: nothing is sampled again
    again = Recorder(tiny_sampler)
    assert run_linearized(LinearizedConfig(**{**cfg.__dict__}), sampler=again)["n_problems"] == 2
    assert again.prompts == []


def test_linearized_chunks_answers_and_exact_j(tiny_sampler, tmp_path):
    """Chunks of problems sample together; M forced answers give J; the tree's exact J is recorded;
    a run killed after its first chunk redoes only the second, and gives the same rows as a whole run."""
    kw = dict(task="tree", n_problems=3, samples=2, episodes=2, episode_tokens=12, answers=3, batch_problems=2)
    s = run_linearized(LinearizedConfig(out=str(tmp_path / "a"), **kw), sampler=tiny_sampler)
    rows = [json.loads(line) for line in (tmp_path / "a" / "linearized.jsonl").read_text().splitlines()]
    assert len(rows) == s["n_problems"] == 3
    for r in rows:
        for tr in r["linearized"]:
            for e in tr["episodes"]:
                assert e["j"] in (0.0, 1 / 3, 2 / 3, 1.0) or e["j"] == pytest.approx(round(e["j"] * 3) / 3, abs=1e-5)
                assert 0.0 < e["exact_j"] <= 1.0
        assert all("j" not in e and "exact_j" not in e for g in r["parallel"] for e in g["episodes"])
    # the same run cut after its first chunk (two problems): the rerun redoes chunk 2 only
    b = tmp_path / "b"
    run_linearized(LinearizedConfig(out=str(b), **{**kw, "n_problems": 2}), sampler=tiny_sampler)
    rec = Recorder(tiny_sampler)
    run_linearized(LinearizedConfig(out=str(b), **kw), sampler=rec)
    assert rec.prompts and all(len(batch) <= 2 * 2 for batch in rec.prompts if batch and len(batch[0]) > 0)
    again = [json.loads(line) for line in (b / "linearized.jsonl").read_text().splitlines()]
    assert again == rows


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"window": 0}, "window"),
        ({"episodes": 0}, "K"),
        ({"task": "star"}, "backtracking format"),
        ({"answers": 0}, "answers"),
        ({"batch_problems": 0}, "batch_problems"),
    ],
)
def test_linearized_bad_settings(kw, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        run_linearized(LinearizedConfig(out=str(tmp_path / "x"), n_problems=1, **kw), sampler=object())
    assert not (tmp_path / "x" / "linearized.jsonl").exists()


def test_linearized_cli_help():
    from mrt.cli import build_parser

    text = build_parser()._subparsers._group_actions[0].choices["linearized"].format_help()
    for flag in ("--window", "--episodes", "--samples", "--vote-tie"):
        assert flag in text


def test_linearized_majority_without_the_format_error_votes(tiny_sampler, tmp_path):
    """Sensitivity (issue 35): the same traces' majority with format-error rounds left out of the
    vote, recomputed from the records; equal to the plain one where no round broke the format."""
    from mrt.core import backtrack as bt

    cfg = LinearizedConfig(task="tree", out=str(tmp_path / "s"), n_problems=2, samples=2, episodes=3, episode_tokens=12)
    s = run_linearized(cfg, sampler=tiny_sampler)
    rows = [json.loads(line) for line in (tmp_path / "s" / "linearized.jsonl").read_text().splitlines()]
    groups = [g for r in rows for g in r["linearized"]]
    want = []
    for g in groups:
        labels = [None if "format_error" in e else lab for e, lab in zip(g["episodes"], g["labels"])]
        want.append(bt.running_majority(labels, [e["correct"] for e in g["episodes"]]))
    for k in range(3):
        got = s["linearized_parsed_votes"]["maj"][str(k + 1)]
        assert got == pytest.approx(sum(m[k] for m in want) / len(want), abs=1e-6)
    clean = [g for g in groups if not any("format_error" in e for e in g["episodes"])]
    for g in clean:
        assert bt.running_majority([lab for lab in g["labels"]], [e["correct"] for e in g["episodes"]]) == g["maj"]
    assert set(s["linearized_parsed_votes"]["equal_tokens"]) == set(s["equal_tokens"])
