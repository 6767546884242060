import random

import pytest

from mrt.core.episodes import didactic_ends
from mrt.tasks import get_task, parse_knobs, star


def test_graph_is_a_star_with_a_unique_path():
    g = star.make_graph(random.Random(3), arms=4, arm_len=3)
    assert len(g.edges) == 12
    children = {}
    for u, v in g.edges:
        children.setdefault(u, []).append(v)
    assert len(children[g.start]) == 4
    path = g.path
    assert path[0] == g.start and path[-1] == g.goal
    for u, v in zip(path, path[1:]):
        assert (u, v) in g.edges


def test_verifier():
    task = get_task("star", arms="3", arm_len="2")
    p = task.problems(1, seed=5)[0]
    ref = p.answer
    assert task.grade(p, task.extract_answer(f"answer {ref} <eos> junk"))
    assert task.grade(p, task.extract_answer(f"answer {ref}"))
    assert not task.grade(p, task.extract_answer("answer " + " ".join(reversed(ref.split()))))
    assert not task.grade(p, task.extract_answer(f"answer {ref} v63 <eos>"))
    assert task.extract_answer("try v1 v2 dead") is None
    assert task.extract_answer("answer <eos>") is None
    assert not task.grade(p, None)


def test_explorer_traces_are_well_formed():
    task = get_task("star")
    rng = random.Random(0)
    for i in range(200):
        g = task.graph(i)
        words = star.explore(g, rng)
        end = words.index(star.END_THINK)
        assert words[-1] == star.EOS and words[end + 1] == star.ANSWER
        answer = words[end + 2 : -1]
        assert answer[0] == g.start
        thinking = words[:end]
        didactic_ends(thinking)  # segments a teacher trace without error
        if "found" in thinking:
            assert answer == g.path  # a trace that found the goal answers it


def test_guessing_without_exploring_is_near_chance():
    task = get_task("star", arms="4", arm_len="3")
    rng = random.Random(0)
    hits = sum(star.answer_words(task.graph(i), set(), False, rng)[1:-1] == task.graph(i).path for i in range(400))
    assert 0.15 < hits / 400 < 0.35


def test_knob_errors_name_the_knob():
    with pytest.raises(ValueError, match="unknown task"):
        get_task("nope")
    with pytest.raises(ValueError, match="unknown knob 'width'"):
        get_task("star", width=3)
    with pytest.raises(ValueError, match="'arms'"):
        get_task("star", arms="5-2")
    with pytest.raises(ValueError, match="name=value"):
        parse_knobs(["arms"])
    with pytest.raises(ValueError, match="at most 63 nodes"):
        get_task("star", arms="20", arm_len="5")


def test_harder_knobs_change_the_problems():
    easy = get_task("star", arms="2-3", arm_len="2").problems(20)
    hard = get_task("star", arms="6", arm_len="5").problems(20)
    assert max(p.meta["arms"] for p in easy) <= 3
    assert all(p.meta["arms"] == 6 and p.meta["arm_len"] == 5 for p in hard)


def test_cue_points_to_the_goal_arm_with_its_probability():
    StarTask = star.StarTask
    plain = StarTask(arms="3-4", arm_len="3-5")
    hinted = StarTask(arms="3-4", arm_len="3-5", cue=0.75)
    ps, qs = plain.problems(400, seed=5), hinted.problems(400, seed=5)
    assert all(p.answer == q.answer for p, q in zip(ps, qs))  # the hint leaves each graph unchanged
    assert all("try" not in p.prompt.split() for p in ps)
    right = 0
    for q in qs:
        words = q.prompt.split()
        assert words[-3] == "try" and words[-1] == "<think>"
        hint, first = words[-2], q.answer.split()[1]
        right += hint == first
        assert q.meta["cue_right"] == (hint == first)
    assert 0.68 < right / len(qs) < 0.82  # 0.75 +- 3.5 standard errors
    assert all(q.meta["cue_right"] for q in StarTask(cue=1).problems(50, seed=1))
    with pytest.raises(ValueError, match="cue"):
        StarTask(cue=1.5)
    with pytest.raises(ValueError, match="cue"):
        StarTask(cue="often")


def test_hint_following_teacher_walks_the_hinted_arm_first(tmp_path):
    from mrt.tasks.pretrain import PretrainConfig, make_batch
    from mrt.tasks.tiny import build_tokenizer

    g = star.StarTask(arms=4, arm_len=3, cue=0.5).graph(3)
    for k in range(4):  # first_arm: that arm is walked first, in full, then exploration goes on
        words = star.explore(g, random.Random(k), first_arm=k)
        assert words[: 2 + 3] == ["try", g.start, *g.arms[k]]
        assert words[5] == ("found" if k == g.goal_arm else "dead")
    tok = build_tokenizer()

    def hinted_first(follow):
        cfg = PretrainConfig(cue=0.75, cue_fraction=1.0, follow_cue=follow, batch_size=200, arm_len="3")
        ids, _, _ = make_batch(0, cfg, tok, star.StarTask(arm_len=3), star.StarTask(arm_len=3, cue=0.75))
        hits = walks = 0
        for row in ids.tolist():
            w = tok.convert_ids_to_tokens(row)
            think = w.index("<think>")
            if w[think + 1] == "try":  # not an early stop before any walk
                walks += 1
                hits += w[think - 1] == w[think + 3]  # prompt "... try <hint> <think>", trace "try <start> <arm>"
        return hits / walks

    assert hinted_first(1.0) == 1.0
    assert 0.2 < hinted_first(0.0) < 0.5  # about 1 / arms: the plain explorer ignores the hint
    with pytest.raises(ValueError, match="follow-cue"):
        from mrt.tasks.pretrain import pretrain

        pretrain(PretrainConfig(follow_cue=2.0, out=str(tmp_path / "never")))


def edge_words(words: list[str], u: str, v: str) -> list[str]:
    i = next(k for k in range(len(words) - 1) if words[k : k + 2] == [u, v])
    return words[i : words.index("|", i) + 1]  # "u v |" or "u v goal |"


def test_cue_at_writes_the_same_hint_inside_the_edge_list():
    StarTask = star.StarTask
    knobs = dict(arms="2-4", arm_len="3-5", cue=0.75)
    tail, edge, dup = (StarTask(**knobs, cue_at=c).problems(200, seed=4) for c in ("end", "edge", "dup"))
    assert [p.prompt for p in tail] == [p.prompt for p in StarTask(**knobs).problems(200, seed=4)]  # default
    for t, e, d in zip(tail, edge, dup):
        assert t.answer == e.answer == d.answer and t.meta == e.meta == d.meta  # same graph, same hint
        words = t.prompt.split()
        start, hint = words[words.index("start") + 1], words[-2]
        ew, dw = e.prompt.split(), d.prompt.split()
        assert ew[-5:] == dw[-5:] == words[-7:-3] + ["<think>"]  # "start s goal g <think>": no hint at the tail
        i = ew.index("try")  # one marked edge, the hinted one: "try <start> <hint>"
        assert ew.count("try") == 1 and ew[i + 1 : i + 3] == [start, hint]
        assert [w for w in ew if w != "try"] == words[:-3] + ["<think>"]  # otherwise the same prompt
        pairs = [tuple(dw[k : k + 2]) for k in range(len(dw) - 1)]
        assert pairs.count((start, hint)) == 2 and "try" not in dw  # the hinted edge, listed twice
        assert len(dw) == len(words) - 2 + len(edge_words(dw, start, hint))
    assert StarTask(**knobs, cue_at="dup").knobs()["cue_at"] == "dup" and "cue_at" not in StarTask(**knobs).knobs()
    with pytest.raises(ValueError, match="cue_at"):
        StarTask(cue=0.5, cue_at="middle")
