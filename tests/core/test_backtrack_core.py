"""The backtracking format's pure core: parsers, segmentation, warm-start pairs, windows (hand-computed)."""

import pytest

from mrt.core import backtrack as bt

# ------------------------------------------------------------------------------------- text

TRACE = (
    "## Step 1: Let x = 3.\n"
    "## Step 2: Then 2x = 5.\n"
    "## Step 3: So the answer is $\\boxed{5}$.\n"
    "Backtrack to Line 1\n"
    "## Step 2: Then 2x = 6.\n"
    "## Step 3: So the answer is $\\boxed{6}$.\n"
)


def test_text_explicit_marker_keeps_the_named_steps():
    t = bt.parse_text(TRACE)
    assert t.attempt == (
        "## Step 1: Let x = 3.",
        "## Step 2: Then 2x = 5.",
        "## Step 3: So the answer is $\\boxed{5}$.",
    )
    (r,) = t.rounds
    assert r.marker.keep == 1 and r.marker.named
    assert TRACE[r.marker.start : r.marker.end] == "Backtrack to Line 1"
    assert r.steps == ("## Step 2: Then 2x = 6.", "## Step 3: So the answer is $\\boxed{6}$.")
    # the attempt after the round: step 1 of z0, then the revision's two steps
    assert t.attempts()[1] == ("## Step 1: Let x = 3.",) + r.steps
    # episodes: z0 up to the marker, the marker, the revision to the end
    first = TRACE.index("Backtrack")
    assert t.episode_ends() == [first, first + len("Backtrack to Line 1"), len(TRACE)]
    assert bt.text_episode_ends(TRACE) == t.episode_ends()


def test_text_beginning_and_two_rounds():
    text = "Step 1: a\nStep 2: b\nBacktrack to beginning\nStep 1: c\nStep 2: d\nBacktrack to Line 2\nStep 3: e\n"
    t = bt.parse_text(text)
    assert [r.marker.keep for r in t.rounds] == [0, 2]
    assert t.attempts() == [
        ("Step 1: a", "Step 2: b"),
        ("Step 1: c", "Step 2: d"),
        ("Step 1: c", "Step 2: d", "Step 3: e"),
    ]


def test_text_rl_marker_reads_the_step_off_the_revision():
    text = "Step 1: a\nStep 2: b\nStep 3: c\n" + bt.RL_PROMPT_SUFFIX.lstrip("\n") + " 3: c2\nStep 4: d\n"
    t = bt.parse_text(text)
    (r,) = t.rounds
    assert not r.marker.named and r.marker.keep == 2  # the revision's first step is 3: it resumes after step 2
    assert t.attempts()[1] == ("Step 1: a", "Step 2: b", "Step 3: c2", "Step 4: d")
    # no numbered step in the revision: refused (it was read as a fresh start, silently)
    with pytest.raises(bt.BacktrackFormatError, match="no numbered step") as e:
        bt.parse_text("Step 1: a\n" + bt.RL_MARKER + "\nTry y = 2 instead.")
    assert e.value.kind == "malformed"


def test_text_bad_input_kinds():
    with pytest.raises(bt.BacktrackFormatError, match="names step 7") as e:
        bt.parse_text("Step 1: a\nStep 2: b\nBacktrack to Line 7\nStep 8: c")
    assert e.value.kind == "missing_step"
    with pytest.raises(bt.BacktrackFormatError) as e:
        bt.parse_text("Step 1: a\nBacktrack to Line 1\n  \n")
    assert e.value.kind == "no_revision"
    with pytest.raises(bt.BacktrackFormatError) as e:
        bt.parse_text("Step 1: a\nBacktrack to Line 1\n\nBacktrack to beginning\nStep 1: b")
    assert e.value.kind == "empty_revision"
    with pytest.raises(bt.BacktrackFormatError) as e:  # RL marker, revision resumes after a step z0 lacks
        bt.parse_text("Step 1: a\n" + bt.RL_MARKER + "\nStep 5: e")
    assert e.value.kind == "missing_step"
    # the lenient segmentation never raises on the same inputs
    assert bt.text_episode_ends("Step 1: a\nBacktrack to Line 1\n  \n") == [10, 29, 33]


@pytest.mark.parametrize(
    "text,message",
    [
        # the hand-written broken traces, each once read silently
        ("Step 1: a\nBacktrack to Backtrack to Line 1\nStep 2: b\n", "broken backtrack marker"),
        ("Step 1: a\nBacktrack to Line -1\nStep 1: b\n", "broken backtrack marker"),
        ("Step 1: a\nBacktrack to Line\nStep 1: b\n", "broken backtrack marker"),
        ("Step 1: a Backtrack to Line 1\nStep 2: b\n", "broken backtrack marker"),  # inside a line
        ("Step 1: a\nStep 2: b Backtrack to beginning\nStep 1: c\n", "broken backtrack marker"),
        ("Step 1: a\nBacktrack to Line 1\nI will redo this.\nStep 2: b\n", "text before its first step"),
        ("Step 1: a\nStep 1: b\n", "steps must rise by one"),  # a duplicate number
        ("Step 1: a\nStep 2: b\nStep 1: c\n", "steps must rise by one"),  # restarted without a marker
        ("Step 1: a\nStep 3: b\n", "steps must rise by one"),  # skipped
        ("Step 2: a\nStep 3: b\n", "starts at step 2, not 1"),
        ("Step 1: a\nStep 2: b\nBacktrack to Line 1\nStep 3: c\n", "starts at step 3, not 2"),
        ("Step 1: a\nBacktrack to beginning\nStep 2: c\n", "starts at step 2, not 1"),
        ("Step 1: a\nBacktrack to Line 1\nno steps here\n", "has no numbered step"),
        ("Intro.\nStep 1: a\nBacktrack to beginning\nStep 1: b\n", "text before its first step"),
    ],
)
def test_text_strict_parser_refuses_broken_traces(text, message):
    with pytest.raises(bt.BacktrackFormatError, match=message) as e:
        bt.parse_text(text)
    assert e.value.kind == "malformed"
    bt.text_episode_ends(text)  # the lenient segmentation still never raises


def test_text_markers_are_whole_lines():
    t = bt.parse_text("Step 1: a\n  Backtrack to Line 1  \nStep 2: b\n")  # spaces around a marker line are fine
    assert t.rounds[0].marker.keep == 1 and t.attempts()[1] == ("Step 1: a", "Step 2: b")
    assert bt.parse_text("no steps, one attempt").attempt == ("no steps, one attempt",)


def test_text_steps_without_headers_and_empty():
    assert bt.text_steps("just one line of work") == [(1, "just one line of work")]
    assert bt.text_steps("  \n") == []
    assert bt.parse_text("").episode_ends() == []
    assert bt.text_episode_ends("") == []
    assert bt.text_episode_ends("Step 1: x") == [9]


# ------------------------------------------------------------------------------------- words


def test_words_round_trip():
    words = "try s a b c dead back a d e found".split()  # back at word 6
    t = bt.parse_words(words)
    assert t.attempt == ("s", "a", "b", "c") and t.outcome == "dead"
    (r,) = t.rounds
    assert r.marker.keep == 2 and (r.marker.start, r.marker.end) == (6, 8) and r.steps == ("d", "e")
    assert r.outcome == "found"
    assert t.attempts() == [("s", "a", "b", "c"), ("s", "a", "d", "e")]
    assert t.episode_ends() == [6, 8, 11]
    assert bt.word_episode_ends(words) == [6, 8, 11]
    # rendering gives the words back
    assert bt.render_words(t.attempt, t.outcome) + bt.render_word_round("a", r.steps, r.outcome) == words


def test_words_second_round_names_a_step_of_the_revised_attempt():
    words = "try s a b dead back a c dead back c f found".split()
    t = bt.parse_words(words)
    assert t.attempts() == [("s", "a", "b"), ("s", "a", "c"), ("s", "a", "c", "f")]
    with pytest.raises(bt.BacktrackFormatError) as e:  # b left the current attempt in round 1
        bt.parse_words("try s a b dead back a c dead back b f found".split())
    assert e.value.kind == "missing_step"


@pytest.mark.parametrize(
    "text,kind",
    [
        ("try s a dead back z b found", "missing_step"),
        ("try s a dead back", "no_revision"),
        ("try s a dead back a", "no_revision"),
        ("try s a dead back a back s b found", "empty_revision"),
        ("back s a found", "malformed"),
        ("try s a dead back back s b found", "malformed"),
        ("try s a dead back s dead", "malformed"),  # a revision with no step (was read as valid)
        ("try s a dead back s found", "malformed"),
        ("try s a dead b back s b found", "malformed"),  # a word after the outcome
    ],
)
def test_words_bad_input(text, kind):
    with pytest.raises(bt.BacktrackFormatError) as e:
        bt.parse_words(text.split())
    assert e.value.kind == kind
    bt.word_episode_ends(text.split())  # never raises


def test_words_nodes_restrict_what_counts_as_a_step():
    with pytest.raises(bt.BacktrackFormatError) as e:
        bt.parse_words("try v1 v2 dead back goal v3 found".split(), nodes={"v1", "v2", "v3"})
    assert e.value.kind == "malformed"
    with pytest.raises(bt.BacktrackFormatError, match="'zz' is not a node") as e:  # was dropped silently
        bt.parse_words("try v1 v2 dead back v1 zz v3 found".split(), nodes={"v1", "v2", "v3"})
    assert e.value.kind == "malformed"
    with pytest.raises(bt.BacktrackFormatError, match="is not a node"):
        bt.parse_words("try v1 oops v2 dead".split(), nodes={"v1", "v2"})
    assert bt.parse_words([]).attempts() == [()]


# ------------------------------------------------------------------------------------- warm start


def test_backtrack_point():
    failed, correct = ["s", "a", "b", "c"], ["s", "a", "d", "e"]
    assert bt.shared_prefix(failed, correct) == 2
    assert bt.backtrack_point(failed, correct, "backtrack") == 2
    assert bt.backtrack_point(failed, correct, "rise", min_keep=1) == 1
    assert bt.backtrack_point(["x"], ["y", "z"], "backtrack") == 0
    with pytest.raises(ValueError, match="no step after"):
        bt.backtrack_point(["s", "a", "b"], ["s", "a"], "backtrack")
    with pytest.raises(ValueError, match="scheme"):
        bt.backtrack_point(failed, correct, "star")


# ------------------------------------------------------------------------------------- linearized


def test_window_and_checks():
    assert bt.window([1, 2, 3], 1) == [3]
    assert bt.window([1, 2, 3], 2) == [2, 3]
    assert bt.window([1], 5) == [1]
    with pytest.raises(ValueError, match="window"):
        bt.window([1, 2], 0)
    with pytest.raises(ValueError, match="K"):
        bt.check_linearized(1, 0)


def test_running_majority_hand_computed():
    # answers 5 (wrong), 6 (right), 6, 5, 5, None
    labels = ["5", "6", "6", "5", "5", None]
    correct = [False, True, True, False, False, False]
    # after 1: 5 alone -> 0; after 2: tie 5/6 -> 1/2; after 3: 6 leads -> 1; after 4: tie -> 1/2;
    # after 5: 5 leads -> 0; a missing answer does not vote -> 0
    assert bt.running_majority(labels, correct) == [0.0, 0.5, 1.0, 0.5, 0.0, 0.0]


def test_revisit_kinds_hand_computed():
    keys = ["a", "b", "a", "c", "a", "b"]
    wrong = [True, True, True, False, True, True]
    # 0 new; 1 new; 2 returns to a (dead at 0, distance 2): unseen with W=1, seen with W=2;
    # 3 new; 4 returns to a (last dead at 2, distance 2); 5 returns to b (dead at 1, distance 4)
    assert bt.revisit_kinds(keys, wrong, 1) == ["new", "new", "unseen", "new", "unseen", "unseen"]
    assert bt.revisit_kinds(keys, wrong, 2) == ["new", "new", "seen", "new", "seen", "unseen"]
    # a right answer given again is no dead end; None never matches
    assert bt.revisit_kinds(["c", "c", None, None], [False, False, True, True], 1) == ["new"] * 4


def test_revisit_window_counts_parsed_attempts_only():
    # a format-error round between two visits of L3 keeps L3 in a window of 1 (it was read "unseen")
    assert bt.revisit_kinds(["L3", None, "L3"], [True, False, True], 1, [True, False, True]) == ["new", "new", "seen"]
    assert bt.revisit_kinds(["L3", None, "L3"], [True, False, True], 1) == ["new", "new", "unseen"]  # all parsed
    # two parsed attempts after it push it out of a window of 1, not of 2
    keys, wrong, parsed = ["L3", "L1", None, "L3"], [True, True, False, True], [True, True, False, True]
    assert bt.revisit_kinds(keys, wrong, 1, parsed)[-1] == "unseen"
    assert bt.revisit_kinds(keys, wrong, 2, parsed)[-1] == "seen"
    with pytest.raises(ValueError, match="one parsed flag"):
        bt.revisit_kinds(["a"], [True], 1, [True, False])


# ------------------------------------------------------------------------------------- MRT-RL advantages


def test_backtrack_advantages_hand_computed():
    # one group of 4 revisions after a z0 with J(z0) = 0.25: R = 1, 0, 1, 1
    correct, j0 = [True, False, True, True], [0.25] * 4
    # outcome+progress, no scaling, alpha 1: (R - 0.75) + (R - 0.25)
    assert bt.backtrack_advantages(correct, j0, 4, 1.0, "none") == pytest.approx([1.0, -1.0, 1.0, 1.0])
    # group std of R = 0.5: divided by 0.5 + 1e-4
    assert bt.backtrack_advantages(correct, j0, 4, 1.0, "group") == pytest.approx([x / 0.5001 for x in [1, -1, 1, 1]])
    # alpha 0: GRPO's advantage on the same prompts
    assert bt.backtrack_advantages(correct, j0, 4, 0.0, "none") == pytest.approx([0.25, -0.75, 0.25, 0.25])
    # all correct, nothing to divide by: the bonus alone, alpha (1 - J(z0)) each
    assert bt.backtrack_advantages([True] * 2, [0.25] * 2, 2, 0.4, "group") == pytest.approx([0.3, 0.3])
    # the authors' reward R + alpha (R - J0) under GRPO: (1 + alpha)(R - mean R) / ((1 + alpha) std + 1e-4)
    a = bt.backtrack_advantages(correct, j0, 4, 0.8, "group", "authors")
    assert a == pytest.approx([1.8 * x / (1.8 * 0.5 + 1e-4) for x in [0.25, -0.75, 0.25, 0.25]])
    # ... which is GRPO's advantage to 1e-4: the bonus only shifts the group
    assert a == pytest.approx(bt.backtrack_advantages(correct, j0, 4, 0.0, "group", "authors"), abs=1e-3)
    # without scaling it is a step-size factor (1 + alpha)
    assert bt.backtrack_advantages(correct, j0, 4, 0.8, "none", "authors") == pytest.approx(
        [1.8 * x for x in [0.25, -0.75, 0.25, 0.25]]
    )
    with pytest.raises(ValueError, match="form"):
        bt.backtrack_advantages(correct, j0, 4, 1.0, "group", "mrt")
    with pytest.raises(ValueError, match="whole groups"):
        bt.backtrack_advantages(correct, j0, 3, 1.0)
    # the README's termination baseline: R - J(z0)
    assert bt.backtrack_advantages(correct, j0, 4, 1.0, "none", "termination") == pytest.approx(
        [0.75, -0.25, 0.75, 0.75]
    )


def test_mrt_star_backtrack_keep_hand_computed():
    # two groups of 3 revisions; group 1 after a z0 with J = 0.25, group 2 after one with J = 1.0
    correct = [True, True, False, True, True, True]
    j_after = [1.0, 0.75, 1.0, 1.0, 1.0, 0.25]
    j0 = [0.25] * 3 + [1.0] * 3
    # group 1: candidates 0 (progress .75) and 1 (.5); row 2 is wrong -> keep row 0 only
    # group 2: progress 0 for rows 3, 4 (no gain over z0), row 5 below min_final_j -> keep none
    assert bt.mrt_star_backtrack_keep(correct, j_after, j0, 3) == [True, False, False, False, False, False]
    # ties are all kept; a lower min_final_j admits row 1 of a group whose best is lower
    assert bt.mrt_star_backtrack_keep([True, True], [0.75, 0.75], [0.0, 0.0], 2) == [True, True]
    assert bt.mrt_star_backtrack_keep([True, False], [0.25, 1.0], [0.0, 0.0], 2, min_final_j=0.2) == [True, False]
    with pytest.raises(ValueError, match="whole groups"):
        bt.mrt_star_backtrack_keep([True], [1.0], [0.0, 0.0], 1)


def test_value_at_tokens_hand_computed():
    cum, maj = [10, 25, 40], [0.0, 0.5, 1.0]
    assert [bt.value_at_tokens(cum, maj, b) for b in (5, 10, 24, 25, 39, 40, 100)] == [0, 0, 0, 0.5, 0.5, 1, 1]
    with pytest.raises(ValueError):
        bt.value_at_tokens([1], [0.0, 1.0], 5)


def test_round_progress_hand_computed():
    # J(empty) .2, after z0 .25, after marker .3, after revision .75, after marker .7, after revision 1
    assert bt.round_progress([0.2, 0.25, 0.3, 0.75, 0.7, 1.0]) == pytest.approx([0.5, 0.25])
    assert bt.round_progress([0.2, 0.25]) == []  # z0 alone: no round
    with pytest.raises(ValueError, match="even length"):
        bt.round_progress([0.2, 0.25, 0.3])  # a marker with no revision


def test_per_episode_credit_on_the_backtracking_format_by_hand():
    """The paper's bonus on this format is dense MRT on the tree world's episodes (``mrt-dense --task
    tree``): z0, the marker, the revision each get their own progress on their own tokens; the fork
    form gives the whole completion one scalar."""
    from mrt.core import advantages as adv

    words = "try s a b dead back a c found".split()
    ends = bt.word_episode_ends(words)
    assert ends == [5, 7, 9]  # z0 = try s a b dead | marker = back a | revision = c found
    j = [0.2, 0.4, 0.5, 0.9]  # J(empty), after z0, after the marker, after the revision (forced answers)
    prog = adv.progress_from_j(j)
    assert prog == pytest.approx([0.2, 0.1, 0.4])
    a = adv.dense_token_advantages(0.5, ends, prog, 11, alpha=1.0)
    assert a == pytest.approx([0.7] * 5 + [0.6] * 2 + [0.9] * 2 + [0.5] * 2)  # the answer tokens: the outcome alone
    # two rollouts of one group with the same outcome but different first attempts: per-episode
    # credit tells them apart where the one-scalar form (R - J(z0)) summed over a round cannot
    other = adv.dense_token_advantages(0.5, ends, adv.progress_from_j([0.2, 0.8, 0.8, 0.9]), 11, alpha=1.0)
    assert other[:5] != a[:5] and other[7:9] != a[7:9]
    assert sum(prog) == pytest.approx(j[-1] - j[0])  # the sum telescopes: one scalar per completion


def test_a_penalised_reward_keeps_the_grades_std_as_divisor():
    """R = [1, 1, 1, 0.9] (a format penalty of 0.1 on a right answer), J(z0) = 0.25, alpha = 1: with
    the 0/1 grades all equal the group is not divided, so the penalty weighs 0.1 and no more:
    m = 0.975; 0.025 + 0.75 = 0.775 and -0.075 + 0.65 = 0.575. Divided by R's own std (0.05) the
    same rows would get about 15.5 and 11.5."""
    from mrt.core.backtrack import backtrack_advantages

    r, j0 = [1.0, 1.0, 1.0, 0.9], [0.25] * 4
    a = backtrack_advantages(r, j0, 4, 1.0, "group", std_of=[1, 1, 1, 1])
    assert a == pytest.approx([0.775, 0.775, 0.775, 0.575])
    assert backtrack_advantages(r, j0, 4, 1.0, "group")[0] > 10  # what std_of prevents
    # without a penalty, std_of = the grades changes nothing
    c = [1.0, 0.0, 1.0, 0.0]
    assert backtrack_advantages(c, j0, 4, 0.8, "group", std_of=c) == backtrack_advantages(c, j0, 4, 0.8, "group")
