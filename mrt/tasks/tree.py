"""The backtracking world: the star world whose arms branch again (a tree), so a failed walk
shares a prefix with the goal path and backtracking to the fork saves walking the trunk again.

A problem: ``arms`` trunks of ``arm_len`` nodes hang off the start node; the last node of each
trunk forks into ``twigs`` twigs of ``twig_len`` nodes; the goal is the last node of one twig.
The prompt is the star world's (edges in random order, the goal's edge marked, ``start s goal
g <think>``), with the same vocabulary, so the shipped star base model reads it.

``format=backtrack`` (the default) is MRT's backtracking format in the world's words
(docs/backtracking.md): an attempt walks from the start to a leaf, a marker ``back X`` names a
node of that attempt, the revision walks on from X to another leaf:

    try s t1 t2 a1 a2 dead back t2 b1 b2 found </think> answer s t1 t2 b1 b2 <eos>

Episodes: the attempt, each marker (``back X``), each revision (``core.backtrack``).
``format=plain`` is the star world's syntax (every walk from the start, ``try``/``check``).

:func:`exact_j` is the success of the walk-only answer after a thinking prefix: 1 once the goal
was walked, else a uniform guess among the leaves not yet found dead.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from mrt.core import backtrack as bt
from mrt.core.episodes import didactic_ends
from mrt.tasks.star import (
    ANSWER,
    BACK,
    DEAD,
    END_THINK,
    EOS,
    EPISODE_MARKERS,
    FOUND,
    NUM_NODE_NAMES,
    PAD,
    SPECIAL_WORDS,
    THINK,
    TRY,
    StarGraph,
    StarTask,
    node_names,
    parse_range,
)

FORMATS = ("backtrack", "plain")


def make_tree(rng: random.Random, arms: int, trunk: int, twigs: int, twig_len: int) -> StarGraph:
    """A tree as a :class:`StarGraph` whose ``arms`` are its root-to-leaf paths (start excluded):
    trunk ``a``'s nodes then twig ``t``'s, leaf ``a * twigs + t``; shared trunk edges listed once."""
    n = 1 + arms * (trunk + twigs * twig_len)
    if n > NUM_NODE_NAMES:
        raise ValueError(f"a tree of {n} nodes exceeds the {NUM_NODE_NAMES} node names")
    names = rng.sample(node_names(), n)
    start, rest = names[0], iter(names[1:])
    paths, edges = [], []
    for _ in range(arms):
        stem = [next(rest) for _ in range(trunk)]
        edges += list(zip([start] + stem[:-1], stem))
        for _ in range(twigs):
            twig = [next(rest) for _ in range(twig_len)]
            edges += list(zip([stem[-1]] + twig[:-1], twig))
            paths.append(stem + twig)
    goal = rng.randrange(len(paths))
    rng.shuffle(edges)
    return StarGraph(start, paths[goal][-1], paths, goal, edges)


def leaf_of(g: StarGraph, nodes) -> int | None:
    """The leaf index whose full path (start included) is ``nodes``; None if none is."""
    nodes = list(nodes)
    for i, arm in enumerate(g.arms):
        if nodes == [g.start] + arm:
            return i
    return None


def knowledge(g: StarGraph, words: list[str], fmt: str = "backtrack") -> tuple[bool, set[int]]:
    """(goal found, leaves found dead) after a thinking prefix (words before ``</think>``).

    A walk counts when it reached a leaf and says so (``dead``/``found`` after the leaf's full
    path); a malformed backtracking stream counts only its well-formed attempts before the error."""
    attempts: list[tuple[tuple[str, ...], str | None]] = []
    if fmt == "backtrack":
        for cut in range(len(words), -1, -1):  # the longest prefix that parses
            try:
                t = bt.parse_words(words[:cut], nodes={g.start} | {v for arm in g.arms for v in arm})
            except bt.BacktrackFormatError:
                continue
            attempts = list(zip(t.attempts(), t.outcomes()))
            break
    else:
        cur: list[str] = []
        for w in words:
            if w in EPISODE_MARKERS:
                cur = []
            elif w in (DEAD, FOUND):
                attempts.append((tuple(cur), w))
                cur = []
            elif w != BACK:
                cur.append(w)
    found, dead = False, set()
    for nodes, outcome in attempts:
        leaf = leaf_of(g, nodes)
        if leaf is None or outcome is None:
            continue
        if leaf == g.goal_arm and outcome == FOUND:
            found = True
        elif leaf != g.goal_arm and outcome == DEAD:
            dead.add(leaf)
    return found, dead


def exact_j(g: StarGraph, words: list[str], fmt: str = "backtrack") -> float:
    """The walk-only answerer's success after a thinking prefix: 1 once the goal was walked, else
    1 / (leaves not found dead), a uniform guess among the leaves the walks have not ruled out.
    Not a bound: a model that reads part of the path backwards from the goal's marked edge in the
    prompt can do better before walking (docs/backtracking.md)."""
    found, dead = knowledge(g, words, fmt)
    return 1.0 if found else 1.0 / (len(g.arms) - len(dead))


def search_trace(g: StarGraph, order: list[int]) -> list[str]:
    """Thinking words of a backtracking search that visits the leaves in ``order``: the first
    walk from the start, each next one backtracking to where it parts from the attempt before."""
    if not order:
        raise ValueError("a search visits at least one leaf")
    words, prev = [], None
    for leaf in order:
        path = [g.start] + g.arms[leaf]
        outcome = FOUND if leaf == g.goal_arm else DEAD
        if prev is None:
            words += bt.render_words(path, outcome)
        else:
            keep = bt.backtrack_point(prev, path, "backtrack", min_keep=1)
            words += bt.render_word_round(prev[keep - 1], path[keep:], outcome)
        prev = path
    return words


def answer_words(g: StarGraph, leaf: int) -> list[str]:
    return [ANSWER, g.start] + g.arms[leaf] + [EOS]


@dataclass
class TreeTask(StarTask):
    """The backtracking world as a :class:`Task` (knobs: arms, arm_len = trunk length, twigs,
    twig_len, format)."""

    arms: object = "2-3"
    arm_len: object = "1-2"
    twigs: object = "2-3"
    twig_len: object = "1-2"
    format: str = "backtrack"
    name: str = "tree"
    _twigs: tuple[int, int] = field(init=False, repr=False)
    _twig_len: tuple[int, int] = field(init=False, repr=False)

    def __post_init__(self):
        self._arms = parse_range(self.arms, "arms")
        self._len = parse_range(self.arm_len, "arm_len")
        self._twigs = parse_range(self.twigs, "twigs")
        self._twig_len = parse_range(self.twig_len, "twig_len")
        if self._twigs[0] < 2:
            raise ValueError(f"knob 'twigs': a trunk must fork into at least 2 twigs, got {self.twigs!r}")
        n = 1 + self._arms[1] * (self._len[1] + self._twigs[1] * self._twig_len[1])
        if n > NUM_NODE_NAMES:
            raise ValueError(f"knobs make trees of up to {n} nodes; at most {NUM_NODE_NAMES}")
        if self.format not in FORMATS:
            raise ValueError(f"knob 'format' must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if self.cue not in (0, 0.0, "0", "0.0") or getattr(self, "cue_at", "end") != "end":
            raise ValueError("knobs 'cue' and 'cue_at' (hints) are not supported by the tree world")
        self.cue = 0.0
        if self.format == "backtrack":
            self.extension_texts = (BACK,)
            self.extension_stop_texts = (BACK, TRY, END_THINK)  # one more round, then stop

    def knobs(self) -> dict:
        def r(x):
            return f"{x[0]}-{x[1]}"

        return {
            "arms": r(self._arms),
            "arm_len": r(self._len),
            "twigs": r(self._twigs),
            "twig_len": r(self._twig_len),
            "format": self.format,
        }

    @property
    def has_format_check(self) -> bool:
        return self.format == "backtrack"

    def format_error(self, prompt: str, completion: str) -> str | None:
        """The strict parser's error kind (``mrt.core.backtrack.parse_words``) on the whole thinking
        stream: what the prompt holds after ``<think>`` (MRT-RL's first attempt and marker) and the
        completion up to ``</think>``; node names are the prompt's. None for a well-formed stream,
        one the budget cut (no ``</think>``), one whose prompt part is already broken (MRT-RL's z0:
        not the completion's error), and the plain format."""
        if self.format != "backtrack" or END_THINK not in completion or THINK not in prompt:
            return None
        head, given = prompt.split(THINK, 1)
        nodes = {w for w in head.split() if w not in SPECIAL_WORDS}
        before = [w for w in given.split() if w not in (EOS, PAD)]
        words = before + [w for w in completion.split(END_THINK, 1)[0].split() if w not in (EOS, PAD)]
        try:
            bt.parse_words(before[:-1] if before[-1:] == [BACK] else before, nodes)
        except bt.BacktrackFormatError:
            return None  # the prompt's own part is broken
        try:
            bt.parse_words(words, nodes)
        except bt.BacktrackFormatError as e:
            return e.kind
        return None

    def episode_ends(self, thinking_ids: list[int], tokenizer) -> list[int]:
        words = tokenizer.convert_ids_to_tokens(thinking_ids)
        if self.format == "backtrack":
            return bt.word_episode_ends(words)
        return didactic_ends(words, EPISODE_MARKERS)

    def graph(self, seed: int) -> StarGraph:
        rng = random.Random(seed)
        return make_tree(
            rng,
            rng.randint(*self._arms),
            rng.randint(*self._len),
            rng.randint(*self._twigs),
            rng.randint(*self._twig_len),
        )

    def problem_meta(self, g: StarGraph, pid_seed: int) -> dict:
        return {"leaves": len(g.arms), "depth": len(g.arms[0]), "seed": pid_seed}
