"""Conformance with the MRT authors' own code (CMU-AIRe/MRT), kept in the test suite.

The golden cases in tests/data/golden/ were made by the authors' functions themselves
(scripts/golden_authors.py reads them from a clone of their repository at the commit named in
each file's header and runs them; docs/concepts.md, "Golden tests"). Each test compares this
project's function with every case and says which rule it checks: **authors'** (the same result)
or **ours** (a documented difference: a row of the conventions table of docs/concepts.md).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from mrt.core import figures
from mrt.core import metrics as M
from mrt.core.episodes import segment_r1
from mrt.tasks import get_task
from mrt.tasks.base import Problem

GOLDEN = Path(__file__).parents[1] / "data" / "golden"
COMMIT = "1815a8c54e00ac673dff75c0b5750379107f75e7"
SEP = "\n\n"


def _load(name: str) -> dict:
    return json.loads((GOLDEN / name).read_text(encoding="utf-8"))


SEG, MET, PROMPTS = _load("segmentation.json"), _load("metrics.json"), _load("prompts.json")


def _config(name: str) -> tuple[int, int]:
    max_steps, group_size = name.split("/")
    return int(max_steps), int(group_size)


def _collapse(text: str) -> str:
    """Runs of blank lines as one paragraph break: what the authors' re-joined episodes keep of
    the newlines that end an episode (they drop them and join with exactly \\n\\n)."""
    return re.sub(r"\n{2,}", SEP, text)


def test_golden_data_names_its_source_and_the_docs_name_it_too():
    docs = (Path(__file__).parents[2] / "docs" / "concepts.md").read_text(encoding="utf-8")
    for data in (SEG, MET, PROMPTS):
        h = data["header"]
        assert h["source"] == "github.com/CMU-AIRe/MRT" and h["commit"] == COMMIT
        assert h["command"] == f"python scripts/golden_authors.py PATH/TO/MRT --commit {COMMIT}"
        assert h["command"] in docs
    assert COMMIT in docs


# ---------------------------------------------------------------------------- segmentation


def test_segmentation_episode_by_episode():
    """Authors': the same episodes (each one's trailing newlines dropped before merging), and each
    character end is that episode's last character. Ours: blank thinking has no episode (theirs
    makes one empty episode of it)."""
    checked = blank = 0
    for case in SEG["cases"]:
        text = case["text"]
        for name, theirs in case["episodes"].items():
            seg = segment_r1(text, *_config(name))
            if not text.strip():  # ours: no episode; theirs: one, the text less its trailing newlines
                assert seg.episodes == [] and seg.char_ends == []
                assert theirs == [text.rstrip("\n")]
                blank += 1
                continue
            assert seg.episodes == theirs, (text, name)
            for j, end in enumerate(seg.char_ends):
                assert text[:end] == text[:end].rstrip("\n") or end == 0
                assert _collapse(text[:end]) == _collapse(SEP.join(theirs[: j + 1]))
            assert all(seg.prefix(j) == SEP.join(theirs[:j]) + SEP for j in range(1, len(theirs) + 1))
            checked += 1
    assert checked >= 400 and blank == 16  # 4 blank texts x 4 settings


def test_segmentation_cases_cover_the_stress_patterns():
    texts = [c["text"] for c in SEG["cases"]]
    assert "a\n\n" in texts and "a\n\nb\n\nc\n\n\n\nWait d" in texts  # issue 25's minimal cases
    assert any("\n\n\n\nWait" in t or "\n\n\n\nBut" in t for t in texts)  # an empty paragraph before a marker
    assert sum(t.endswith("\n\n") for t in texts) >= 10 and sum(t.endswith("\n\n\n") for t in texts) >= 5
    assert any("\n\n Wait" in t for t in texts) and any("\n\n\nWait" in t for t in texts)
    assert any(len(c["episodes"]["2/2"]) == 2 and len(c["episodes"]["49/1"]) > 3 for c in SEG["cases"])


def test_the_text_the_meta_prover_sees_after_each_episode(r1_tok):
    """Authors': after an episode, its text with the newlines that end it dropped, then exactly
    "\\n\\n" + their termination text, or "\\n</think>" at the natural end. Ours: the prefix is the
    model's own text, so blank lines that ended an *earlier* episode stay in it (their prefix
    re-joins the stripped episodes); blank thinking has only the J(empty) prompt, and an episode
    with no text (blank paragraphs before the first boundary) gets the J(empty) prompt."""
    term, natural = PROMPTS["r1"]["termination"], PROMPTS["r1"]["natural_end"]
    tok, differ, empty = r1_tok, 0, 0
    for case in SEG["cases"]:
        text = case["text"]
        ids = tok.encode(text, add_special_tokens=False)
        assert tok.decode(ids) == text
        for name in ("49/1", "49/5"):
            theirs = case["episodes"][name]
            max_steps, group_size = _config(name)
            task = get_task("math", episode_max_steps=max_steps, episode_group_size=group_size)
            ends = task.episode_ends(ids, tok)
            if not text.strip():
                assert ends == [] and len(theirs) == 1
                continue
            char_ends = segment_r1(text, max_steps, group_size).char_ends
            assert len(ends) == len(theirs)
            for j, end in enumerate(ends, start=1):
                last = j == len(ends)
                ours = tok.decode(task.forced_ids(tok, [], ids[:end], natural_end=last))
                want = SEP.join(theirs[:j]) + (natural if last else SEP + term)
                # ours: the model's text up to the episode's last character, then the authors' seam
                mine = text[: char_ends[j - 1]] if not last else text.rstrip("\n")
                if not mine.strip():  # ours: an episode with no text gets the J(empty) prompt
                    assert ours == (natural.lstrip("\n") if last else term) and want == SEP + term
                    empty += 1
                    continue
                assert ours == mine + (natural if last else SEP + term), (text, name, j)
                if mine == SEP.join(theirs[:j]):
                    assert ours == want
                else:  # only blank lines that ended an earlier episode (or its trailing newlines)
                    assert _collapse(ours) == _collapse(want)
                    differ += 1
    assert differ > 0 and empty == 1  # the stress cases reach both differences


def test_issue_25_minimal_cases(r1_tok):
    """The three cases of issue 25, spelled out (max_steps 49)."""
    term = PROMPTS["r1"]["termination"]
    cases = {c["text"]: c["episodes"] for c in SEG["cases"]}

    def forced(text, group, j, natural=False):
        task = get_task("math", episode_max_steps=49, episode_group_size=group)
        ids = r1_tok.encode(text, add_special_tokens=False)
        ends = task.episode_ends(ids, r1_tok)
        return r1_tok.decode(task.forced_ids(r1_tok, [], ids[: ends[j - 1]] if j else [], natural_end=natural))

    # authors': "a\n\n" is the episode "a", and its natural end "a\n</think>" (ours was "a\n\n</think>")
    assert cases["a\n\n"]["49/5"] == ["a"] == segment_r1("a\n\n").episodes
    assert forced("a\n\n", 5, 1, natural=True) == "a\n</think>"
    # authors': after the episode, its trailing blank paragraph dropped, then "\n\n" + the text
    text = "a\n\nb\n\nc\n\n\n\nWait d"
    assert cases[text]["49/1"] == ["a\n\nb\n\nc", "Wait d"] == segment_r1(text, 49, 1).episodes
    assert forced(text, 1, 1) == "a\n\nb\n\nc\n\n" + term
    # ours: inside a later prefix the model's own blank paragraph stays (theirs re-joins without it)
    assert cases[text]["49/5"] == ["a\n\nb\n\nc\n\nWait d"] == segment_r1(text).episodes
    assert forced(text, 5, 1, natural=True) == "a\n\nb\n\nc\n\n\n\nWait d\n</think>"
    # ours: blank thinking has no episode (theirs: one empty episode, two prompts)
    for blank in ("", "   ", "\n"):
        assert segment_r1(blank).episodes == [] and len(cases[blank]["49/5"]) == 1
    # ours: a tie within a relative 1e-9 is a tie, whatever the order of the float sum
    lp = [math.log2(0.1), math.log2(0.2), math.log2(0.3)]
    w = M.vote_weights(lp + lp[::-1])  # A: 0.1, 0.2, 0.3; B: 0.3, 0.2, 0.1
    assert (w[0] + w[1]) + w[2] != (w[3] + w[4]) + w[5]  # summed in vote order: A "wins" in floats
    votes = ["A", "A", "A", "B", "B", "B"]
    assert M.majority_vote_score(votes, [v == "A" for v in votes], w, tie="authors") == 0.5


# ---------------------------------------------------------------------------- meta-prover ids


def _theirs_ids(tok, name: str, head: str, text: str) -> list[int]:
    """Their meta-prover input: the text their code gave vLLM, encoded as vLLM does. R1: their
    text[21:] cut the template's BOS and the tokenizer added it back (the original tokenizer adds
    BOS; so does the GGUF: tokenizer.ggml.add_bos_token = true). SmolLM2: their 21-character cut
    is R1-specific (it would cut the ChatML system header), so it is undone; SmolLM2 adds no BOS."""
    if name == "r1":
        assert head == tok.bos_token
        return [tok.bos_token_id] + tok.encode(text, add_special_tokens=False)
    return tok.encode(head + text, add_special_tokens=False)


@pytest.mark.parametrize("name", ["r1", "smollm2"])
def test_meta_prover_input_ids_against_the_authors_construction(name, r1_tok, smollm2_tok):
    """Authors': after every episode the ids equal their re-encoding of prompt + prefix +
    termination text (BOS included where they include it). Ours, three documented differences:
    J(empty) keeps the "<think>\\n" the traces were sampled after (their empty assistant turn has
    none); blank lines that ended an earlier episode stay (the model's own text); and where the
    model's last token has no newline and a re-encoding would merge it with the appended newline
    ("}$" + "\\n" -> "}" "$\\n"), the model's tokens stay: the same text, other ids at the seam."""
    tok = {"r1": r1_tok, "smollm2": smollm2_tok}[name]
    data = PROMPTS[name]
    assert not data["generation_prompt_opens_think"]  # their traces begin with the model's "<think>\n"
    same = seam = blank = 0
    for case in data["cases"]:
        max_steps, group_size = _config(case["config"])
        task = get_task("math", instruction="", episode_max_steps=max_steps, episode_group_size=group_size)
        prompt = task.prompt_ids(Problem("p", case["problem"], "0"), tok)
        thinking = tok.encode(case["thinking"], add_special_tokens=False)
        ends = task.episode_ends(thinking, tok)
        assert len(ends) == len(case["episodes"]) and case["trace"] == "<think>\n" + case["thinking"]
        ours = [task.forced_ids(tok, prompt, [])]
        ours += [task.forced_ids(tok, prompt, thinking[:e]) for e in ends[:-1]]
        ours += [task.forced_ids(tok, prompt, thinking, natural_end=True)]
        theirs = [_theirs_ids(tok, name, case["head"], t) for t in case["texts"]]
        assert len(ours) == len(theirs)
        # J(empty): theirs is ours without "<think>\n" (their empty assistant message has none)
        think_open = tok.encode("<think>\n", add_special_tokens=False)
        assert ours[0][: len(prompt)] == prompt and prompt[-len(think_open) :] == think_open
        assert ours[0][: len(prompt) - len(think_open)] + ours[0][len(prompt) :] == theirs[0]
        for j, (a, b) in enumerate(zip(ours[1:], theirs[1:]), start=1):
            ta, tb = tok.decode(a), tok.decode(b)
            if a == b:
                same += 1
            elif ta == tb:  # the seam: same text, the model's last tokens kept
                first = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
                assert j == len(ours) - 1 and first >= len(a) - 4  # at the natural end, "\n</think>" is 2 ids
                seam += 1
            else:  # blank lines that ended an earlier episode: the model's own text
                assert "\n\n\n\n" in case["thinking"] and _collapse(ta) == _collapse(tb)
                blank += 1
    assert same >= 8 and blank >= 1
    assert seam >= (2 if name == "r1" else 0)


# ---------------------------------------------------------------------------- regret


def _answer_adjusted(t: dict) -> list[float]:
    """The authors' answer-token term: 8 answers summed and divided by 16 (half the mean)."""
    return [sum(a) / 16 for a in t["answer_tokens"]]


def test_regret_per_trace_on_both_axes():
    """Authors': regret at budgets below, between, at and beyond the points, on their axis once
    their answer-token term (sum of 8 over 16) is given, and on the thinking axis (their loop with
    x = thinking tokens, J(empty) at 0); to 1e-9. Ours by default: the mean answer tokens."""
    budgets, moved = MET["budgets"], 0
    for t in MET["regret_traces"]:
        theirs = t["authors"]
        xs = M.authors_axis(t["input_tokens"], _answer_adjusted(t))
        assert xs == pytest.approx(theirs["flops"], abs=1e-9)
        for c, ra, rt in zip(budgets, theirs["regret_authors_axis"], theirs["regret_thinking_axis"]):
            assert M.normalized_regret_authors(xs, t["j"], c) == pytest.approx(ra, abs=1e-9)
            assert M.normalized_regret(t["ends"], t["j"], c) == pytest.approx(rt, abs=1e-9)
        mean_xs = M.authors_axis(t["input_tokens"], [sum(a) / len(a) for a in t["answer_tokens"]])
        moved += M.normalized_regret_authors(mean_xs, t["j"], budgets[0]) != pytest.approx(
            theirs["regret_authors_axis"][0], abs=1e-9
        )
    assert moved > 0  # the answer-token convention matters (docs/concepts.md, regret axis)
    xs_all = [x for t in MET["regret_traces"] for x in t["authors"]["flops"]]
    assert min(xs_all) < budgets[0] and max(xs_all) > budgets[-1] and budgets[0] in xs_all


def test_majority_regret_per_trace():
    """Authors': the majority-comparator regret of one trace at episode budgets 1..8 (None where
    they would skip it: no comparator area)."""
    nones = 0
    for t in MET["regret_traces"]:
        for b, want in t["authors"]["majority_regret"].items():
            got = M.majority_regret(t["maj"], int(b))
            if want is None:
                assert got is None
                nones += 1
            else:
                assert got == pytest.approx(want, abs=1e-12)
    assert nones > 0


def _records(traces: list[dict], per_problem: int = 16) -> list[dict]:
    """Trace records as ``mrt analyze`` writes them (the fields figures.aggregate reads), with the
    authors' answer-token term as ``answer_tokens``."""
    out = []
    for i, t in enumerate(traces):
        prefixes = [
            {
                "j": j,
                "input_tokens": n,
                "answer_tokens": a,
                "maj_at_k": {"1": m[0], "2": m[1], "4": m[2], "8": m[3]},
                "pass_at_k": {"1": j, "2": j, "4": j, "8": j},
            }
            for j, n, a, m in zip(t["j"], t["input_tokens"], _answer_adjusted(t), t["maj"])
        ]
        n_think = t["ends"][-1] if t["ends"] else 0
        out.append(
            {
                "problem_id": f"p{i // per_problem}",
                "episodes": [{"end": e} for e in t["ends"]],
                "prefixes": prefixes,
                "progress": M.progress(t["j"]),
                "correct": t["j"][-1] >= 0.5,
                "status": "ok",
                "n_output_tokens": n_think + 10,
                "n_thinking_tokens": n_think,
                "closed_thinking": False,
            }
        )
    return out


def test_summary_regret_matches_their_per_problem_then_overall_mean():
    """Authors': summary.json's regret_by_axis["authors"] (and "thinking") and majority_regret
    over 15 problems x 16 traces equal their notebooks' per-problem-then-overall means."""
    traces, theirs = MET["regret_set_traces"], MET["regret_set_authors"]
    assert len(traces) == 240
    s = figures.aggregate(_records(traces), MET["budgets"], "thinking")
    assert s["n_problems"] == 15
    for c, ra, rt in zip(MET["budgets"], theirs["regret_authors_axis"], theirs["regret_thinking_axis"]):
        assert s["regret_by_axis"]["authors"][str(c)] == pytest.approx(ra, abs=1e-9)
        assert s["regret_by_axis"]["thinking"][str(c)] == pytest.approx(rt, abs=1e-9)
    for b, want in theirs["majority_regret"].items():
        assert s["majority_regret"][b] == pytest.approx(want, abs=1e-12)


# ---------------------------------------------------------------------------- maj@k, pass@k


def _votes(case: dict) -> tuple[list, list[bool], list[float]]:
    answers, lps = [], []
    for key, probs in case["answers_dict"]:  # their order: the correct key first
        answers += [key] * len(probs)
        lps += probs
    return answers, [a == case["correct"] for a in answers], lps


def test_maj_at_k_with_their_weights_and_tie_rule():
    """Authors': maj@k with weights 2^(mean log-prob) and their tie rule (0.5), against their
    function over every k-subset with the weights summed exactly. Ours: ties within a relative
    1e-9 (theirs: float equality, so a tie can be won or lost by the order of a float sum; the
    cases where that happens are checked to exist)."""
    order_dependent = 0
    for case in MET["maj_at_k"]:
        answers, correct, lps = _votes(case)
        weights = M.vote_weights(lps)
        plain = all(p == 0.0 for p in lps)
        for k, row in case["authors"].items():
            ours = M.maj_at_k(answers, correct, int(k), weights, tie="authors")
            assert ours == pytest.approx(row["exact"], abs=1e-12), (case, k)
            if plain:  # weight 1 each: a plain majority, ours with no weights at all
                assert M.maj_at_k(answers, correct, int(k), tie="authors") == pytest.approx(row["exact"], abs=1e-12)
            if row["float"] != row["float_reversed"]:  # their float tie went one way or the other
                assert abs(row["float"] - ours) > 1e-9 or abs(row["float_reversed"] - ours) > 1e-9
                order_dependent += 1
            else:
                assert row["float"] == pytest.approx(row["exact"], abs=1e-12)
    assert order_dependent >= 2


def test_maj_at_k_expected_tie_rule():
    """Ours (the default, --vote-tie expected): a tie of m answers that includes the correct one
    scores 1/m. It equals the authors' 0.5 wherever no three answers can tie, never exceeds it,
    and is below it on the three-way tie case."""
    below = 0
    for case in MET["maj_at_k"]:
        answers, correct, lps = _votes(case)
        weights = M.vote_weights(lps)
        labels = {a for a in answers if a is not None}
        for k, row in case["authors"].items():
            ours = M.maj_at_k(answers, correct, int(k), weights, tie="expected")
            if len(labels) <= 2:
                assert ours == pytest.approx(row["exact"], abs=1e-12)
            assert ours <= row["exact"] + 1e-12
            below += ours < row["exact"] - 1e-9
    assert below >= 1


def test_pass_at_k_grid():
    """Authors': their product form of the unbiased pass@k (ours: the binomial ratio)."""
    rows = MET["pass_at_k"]
    assert len(rows) > 400
    for n, c, k, want in rows:
        assert M.pass_at_k(n, c, k) == pytest.approx(want, abs=1e-12), (n, c, k)
    assert any(n == 64 for n, *_ in rows) and any(0 < v < 1 for *_, v in rows)
    assert all(math.isfinite(v) for *_, v in rows)
