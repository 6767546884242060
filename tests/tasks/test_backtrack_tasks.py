"""The backtracking world (task ``tree``) and the ``format=backtrack`` knob of text tasks."""

import random

import pytest

from mrt.core import backtrack as bt
from mrt.tasks import get_task
from mrt.tasks.star import StarGraph
from mrt.tasks.tree import exact_j, knowledge, make_tree, search_trace


def small_tree() -> StarGraph:
    # start s; trunks s-a and s-b; a forks into a1, a2; b forks into b1, b2; goal b2
    paths = [["a", "a1"], ["a", "a2"], ["b", "b1"], ["b", "b2"]]
    edges = [("s", "a"), ("a", "a1"), ("a", "a2"), ("s", "b"), ("b", "b1"), ("b", "b2")]
    return StarGraph("s", "b2", paths, 3, edges)


def test_make_tree_shape():
    g = make_tree(random.Random(3), arms=3, trunk=2, twigs=2, twig_len=2)
    assert len(g.arms) == 6 and all(len(p) == 4 for p in g.arms)
    assert len(g.edges) == len(set(g.edges)) == 3 * (2 + 2 * 2)  # trunk edges listed once
    assert g.arms[0][:2] == g.arms[1][:2] and g.arms[0][2:] != g.arms[1][2:]  # twins share their trunk
    assert g.goal == g.arms[g.goal_arm][-1]
    nodes = {g.start} | {v for p in g.arms for v in p}
    assert len(nodes) == 1 + 3 * (2 + 2 * 2)
    with pytest.raises(ValueError, match="node names"):
        make_tree(random.Random(0), arms=4, trunk=4, twigs=4, twig_len=4)


def test_search_trace_backtracks_to_the_fork():
    g = small_tree()
    words = search_trace(g, [0, 1, 2, 3])
    assert " ".join(words) == "try s a a1 dead back a a2 dead back s b b1 dead back b b2 found"
    t = bt.parse_words(words)
    assert t.attempts()[-1] == ("s", "b", "b2") and t.outcomes() == ["dead", "dead", "dead", "found"]


def test_exact_j_hand_computed():
    g = small_tree()
    w = search_trace(g, [0, 1, 2, 3])
    # 4 leaves: nothing known 1/4; a1 dead 1/3; a2 dead 1/2; b1 dead 1/1; goal found 1
    ends = bt.parse_words(w).episode_ends()
    assert [exact_j(g, w[:e]) for e in [0] + ends] == [0.25, 1 / 3, 1 / 3, 0.5, 0.5, 1.0, 1.0, 1.0]
    # a walk cut before its outcome tells nothing; a walk that does not reach a leaf tells nothing
    assert exact_j(g, "try s a a1".split()) == 0.25
    assert exact_j(g, "try s a dead".split()) == 0.25
    # a malformed stream counts its attempts before the error
    assert knowledge(g, "try s a a1 dead back zz a2 dead".split()) == (False, {0})
    # the star syntax (format=plain)
    assert exact_j(g, "try s a a2 dead try s b b2 found".split(), "plain") == 1.0
    assert knowledge(g, "try s a a2 dead try s b b1 dead".split(), "plain") == (False, {1, 2})


def test_tree_task_problems_and_knobs():
    from mrt.tasks.tiny import build_tokenizer

    task = get_task("tree", arms="2", arm_len="2", twigs="3", twig_len="1")
    assert task.knobs() == {"arms": "2-2", "arm_len": "2-2", "twigs": "3-3", "twig_len": "1-1", "format": "backtrack"}
    p1, p2 = task.problems(2, seed=5)
    assert p1.id == "tree-5-0" and p1.meta["leaves"] == 6 and p1.meta["depth"] == 3
    assert task.problems(2, seed=5)[1].prompt == p2.prompt  # seeded
    g = task.graph(p1.meta["seed"])
    assert p1.answer == " ".join(g.path) and task.grade(p1, " ".join(g.path))
    tok = build_tokenizer()
    ids = tok(p1.prompt, add_special_tokens=False)["input_ids"]
    assert tok.pad_token_id not in ids  # every prompt word is in the base model's vocabulary
    # episodes through the tokenizer: attempt, marker, revision
    words = search_trace(g, [leaf for leaf in range(6) if leaf != g.goal_arm][:1] + [g.goal_arm])
    ends = task.episode_ends(tok.convert_tokens_to_ids(words), tok)
    assert ends == bt.parse_words(words).episode_ends() and len(ends) == 3
    plain = get_task("tree", format="plain")
    assert plain.episode_ends(tok.convert_tokens_to_ids("try v1 v2 dead try v1 v3 found".split()), tok) == [4, 8]


@pytest.mark.parametrize(
    "knobs,match",
    [
        ({"format": "linear"}, "format"),
        ({"twigs": "1"}, "twigs"),
        ({"cue": "0.5"}, "cue"),
        ({"arms": "0"}, "arms"),
        ({"arms": "9", "arm_len": "9"}, "at most"),
    ],
)
def test_tree_task_bad_knobs(knobs, match):
    with pytest.raises(ValueError, match=match):
        get_task("tree", **knobs)


def test_text_format_knob(smollm2_tok):
    from mrt.tasks.base import Problem

    task = get_task("data", source="x.jsonl", format="backtrack", template="raw")
    assert task.knobs()["format"] == "backtrack" and task.thinking == "none" and task.think_end_text == ""
    assert "format" not in get_task("data", source="x.jsonl").knobs()  # old run identities unchanged
    prompt = task.render(Problem("1", "What is 2+3?", "5"), None)
    assert prompt.startswith(bt.BACKTRACK_INSTRUCTION) and "What is 2+3?" in prompt
    with pytest.raises(ValueError, match="format"):
        get_task("data", source="x.jsonl", format="tree")
    text = "Step 1: 2+3=6\nBacktrack to Line 0\nStep 1: 2+3=5, so \\boxed{5}."
    ids = smollm2_tok(text, add_special_tokens=False)["input_ids"]
    ends = task.episode_ends(ids, smollm2_tok)
    pieces = [smollm2_tok.decode(ids[a:b]) for a, b in zip([0] + ends, ends)]
    assert pieces[0].startswith("Step 1") and "Backtrack" not in pieces[0]
    assert pieces[1].strip() == "Backtrack to Line 0" and pieces[2].strip().startswith("Step 1: 2+3=5")


@pytest.mark.slow  # about 20 s on 2 shared cores
def test_meta_prover_j_against_exact_j():
    """The meta-prover's Monte Carlo J (the shipped star model, 16 answers per prefix) against the
    walk-only exact J on search traces of the tree world: walking the goal raises both."""
    from mrt.measure.metaprover import estimate_prefixes
    from mrt.samplers import load_sampler
    from mrt.tasks import star
    from mrt.tasks.tiny import shipped_model_path

    task = get_task("tree", format="plain")
    sampler = load_sampler(str(shipped_model_path()))
    tok = sampler.tokenizer
    found, not_found = [], []
    for p in task.problems(8, seed=1):
        g = task.graph(p.meta["seed"])
        order = [leaf for leaf in range(len(g.arms)) if leaf != g.goal_arm][:2] + [g.goal_arm]
        words = [w for leaf in order for w in star.walk(g, leaf, star.TRY)]
        ids = tok.convert_tokens_to_ids(words)
        ends = task.episode_ends(ids, tok)
        est = estimate_prefixes(sampler, task, p, task.prompt_ids(p, tok), [(ids, ends)], n=16, answer_tokens=16)[0]
        for e, cut in zip(est, [0] + ends):
            (found if exact_j(g, words[:cut], "plain") == 1.0 else not_found).append(e.j)
    assert len(found) == 8 and len(not_found) == 8 * 3
    assert sum(found) / len(found) > sum(not_found) / len(not_found) + 0.2
