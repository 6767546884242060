"""The didactic world: find the path from a start node to a goal node in a star graph.

A star graph has ``arms`` branches of ``arm_len`` nodes hanging off a start node; the goal is
the last node of one arm. The prompt lists the directed edges in random order, so the only way
to know which arm leads to the goal is to walk arms in the output stream (explore):

    <bos> v3 v17 | v17 v9 goal | ... start v3 goal v9 <think>
    try v3 v40 v22 dead try v3 v17 v9 found </think> answer v3 v17 v9 <eos>

* generation/verification asymmetry: checking an arm is a chain of one-hop in-context look-ups
  (what follows the current node in the edge list: its child, or at the end of the arm ``goal``
  or nothing), which a small transformer learns; naming the goal arm without walking needs
  ``arm_len`` hops backwards in one forward pass, and a guess succeeds with probability 1/arms;
* explicit episodes: each ``try``/``check`` walk is one episode; ``</think>`` ends thinking and
  asks for the answer, so forced termination is just appending ``</think>``;
* knobs: ``arms`` and ``arm_len`` (ranges such as ``2-5``) set the search space and the length of
  an attempt; held-out and harder held-out sets use other seeds or larger knobs; ``cue`` (a
  probability) adds a hint to the prompt, ``try <node>``, naming the first node of the goal arm
  with that probability and of another arm otherwise: learnable structure in the order of
  exploration, which the noisy explorer ignores (``cue=chance``: the hinted arm is drawn uniformly,
  the goal's included, so the hint is right 1/arms of the time and following it gains nothing over
  a guess); ``cue_at`` says where the hint is written:
  ``end`` (the prompt's tail, as above), ``edge`` (the word ``try`` before the hinted arm's first
  edge inside the edge list, ``try v3 v17 |``) or ``dup`` (that edge listed twice);
* an exact verifier: the answer is correct iff it is the start-to-goal path.

The module also holds the *noisy explorer* that writes the base model's pretraining traces. It
does not minimise regret: it revisits dead arms, abandons walks half way, re-checks after it has
found the goal, and sometimes stops early with a guess.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from mrt.core.episodes import didactic_ends
from mrt.tasks.base import Problem, Task

BOS, EOS, PAD = "<bos>", "<eos>", "<pad>"
THINK, END_THINK = "<think>", "</think>"
TRY, CHECK, DEAD, FOUND, BACK = "try", "check", "dead", "found", "back"
ANSWER, SEP, START, GOAL = "answer", "|", "start", "goal"
EPISODE_MARKERS = (TRY, CHECK)
SPECIAL_WORDS = [PAD, BOS, EOS, THINK, END_THINK, TRY, CHECK, DEAD, FOUND, BACK, ANSWER, SEP, START, GOAL]
NUM_NODE_NAMES = 64


def node_names(n: int = NUM_NODE_NAMES) -> list[str]:
    return [f"v{i}" for i in range(n)]


def vocabulary() -> list[str]:
    return SPECIAL_WORDS + node_names()


def parse_range(value, name: str) -> tuple[int, int]:
    """``3`` -> (3, 3); ``"2-5"`` -> (2, 5). Raises ValueError naming the knob."""
    try:
        if isinstance(value, int):
            lo = hi = value
        elif isinstance(value, (tuple, list)) and len(value) == 2:
            lo, hi = int(value[0]), int(value[1])
        else:
            parts = str(value).split("-")
            lo, hi = (int(parts[0]), int(parts[-1])) if len(parts) in (1, 2) else (None, None)
    except (TypeError, ValueError):
        lo = hi = None
    if lo is None or lo < 1 or hi < lo:
        raise ValueError(f"knob {name!r}: expected an integer or a range like '2-5', got {value!r}")
    return lo, hi


@dataclass
class StarGraph:
    """One problem instance."""

    start: str
    goal: str
    arms: list[list[str]]  # arms[i] = nodes of arm i in walking order (start excluded)
    goal_arm: int
    edges: list[tuple[str, str]]  # shuffled, as shown in the prompt
    cue: str | None = None  # first node of the arm the prompt's hint points to (None: no hint)
    cue_at: str = "end"  # where the hint is written (CUE_PLACES)
    dup_at: int = 0  # cue_at="dup": the copy of the hinted edge goes before edge dup_at

    @property
    def path(self) -> list[str]:
        return [self.start] + self.arms[self.goal_arm]

    def prompt_words(self) -> list[str]:
        def edge(u, v):  # the goal's edge is marked: "u goal_node goal |"
            return [u, v, GOAL, SEP] if v == self.goal else [u, v, SEP]

        words = [BOS]
        for i, (u, v) in enumerate(self.edges):
            if self.cue and self.cue_at == "dup" and i == self.dup_at:
                words += edge(self.start, self.cue)
            hinted = self.cue and self.cue_at == "edge" and (u, v) == (self.start, self.cue)
            words += ([TRY] if hinted else []) + edge(u, v)
        if self.cue and self.cue_at == "dup" and self.dup_at == len(self.edges):
            words += edge(self.start, self.cue)
        hint = [TRY, self.cue] if self.cue and self.cue_at == "end" else []
        return words + [START, self.start, GOAL, self.goal] + hint + [THINK]


CUE_PLACES = ("end", "edge", "dup")
CHANCE = "chance"  # knob cue=chance: the hint names an arm drawn uniformly, as informative as a guess


def make_graph(rng: random.Random, arms: int, arm_len: int, cue: float | str = 0.0, cue_at: str = "end") -> StarGraph:
    if 1 + arms * arm_len > NUM_NODE_NAMES:
        raise ValueError(f"arms*arm_len+1 = {1 + arms * arm_len} exceeds {NUM_NODE_NAMES} node names")
    names = rng.sample(node_names(), 1 + arms * arm_len)
    start, rest = names[0], names[1:]
    arm_nodes = [rest[i * arm_len : (i + 1) * arm_len] for i in range(arms)]
    goal_arm = rng.randrange(arms)
    edges = []
    for arm in arm_nodes:
        prev = start
        for v in arm:
            edges.append((prev, v))
            prev = v
    rng.shuffle(edges)
    hint = None
    if cue == CHANCE:  # an arm drawn uniformly, the goal's included: the hint is right 1/arms of the time
        hint = arm_nodes[rng.randrange(arms)][0]
    elif cue > 0:  # drawn after the graph, so a cue leaves the graph of a seed unchanged
        others = [a for a in range(arms) if a != goal_arm]
        arm = goal_arm if rng.random() < cue or not others else rng.choice(others)
        hint = arm_nodes[arm][0]
    dup_at = rng.randrange(len(edges) + 1) if hint and cue_at == "dup" else 0  # drawn last: other places unchanged
    return StarGraph(start, arm_nodes[goal_arm][-1], arm_nodes, goal_arm, edges, hint, cue_at, dup_at)


# --------------------------------------------------------------------------- explorer


@dataclass
class ExplorerStyle:
    """Knobs of the noisy explorer (drawn per trace so that traces are heterogeneous)."""

    p_revisit: float = 0.15  # chance an episode re-walks an arm already known dead
    p_abandon: float = 0.1  # chance a walk stops half way with ``back``
    p_early_stop: float = 0.12  # per-episode chance of giving up and guessing
    p_good_guess: float = 0.8  # a guess avoids arms known dead with this chance
    mean_checks: float = 1.0  # mean number of redundant re-check episodes after the goal is found


def sample_style(rng: random.Random) -> ExplorerStyle:
    return ExplorerStyle(
        p_revisit=rng.choice([0.0, 0.1, 0.25]),
        p_abandon=rng.choice([0.0, 0.1, 0.2]),
        p_early_stop=rng.choice([0.05, 0.12, 0.2]),
        p_good_guess=rng.choice([0.6, 0.9]),
        mean_checks=rng.choice([0.0, 1.0, 2.0]),
    )


EXPERT = ExplorerStyle(0.0, 0.0, 0.0, 1.0, 0.0)  # walks unexplored arms until it finds the goal
# Heterogeneity levels of expert search traces (the verifier-free arm's training data): which
# explorer styles write them; every trace kept is correct.
HETEROGENEITY: dict[str, list[ExplorerStyle] | None] = {
    "low": [EXPERT],
    "mid": [
        EXPERT,
        ExplorerStyle(0.0, 0.0, 0.0, 1.0, 1.0),
        ExplorerStyle(0.1, 0.0, 0.0, 1.0, 0.0),
        ExplorerStyle(0.0, 0.1, 0.0, 1.0, 0.0),
    ],
    "high": None,  # the noisy explorer's whole style distribution (sample_style)
}


def correct_trace(g: StarGraph, rng: random.Random, level: str, tries: int = 64) -> list[str]:
    """A correct search trace written by a style of heterogeneity ``level`` (low, mid, high)."""
    if level not in HETEROGENEITY:
        raise ValueError(f"heterogeneity level must be one of {', '.join(HETEROGENEITY)}, got {level!r}")
    styles = HETEROGENEITY[level]
    for _ in range(tries):
        words = explore(g, rng, rng.choice(styles) if styles else sample_style(rng))
        if words[words.index(ANSWER) + 1 : -1] == g.path:
            return words
    return explore(g, rng, EXPERT)  # always correct


def walk(g: StarGraph, arm: int, marker: str, upto: int | None = None) -> list[str]:
    nodes = g.arms[arm] if upto is None else g.arms[arm][:upto]
    if upto is not None:
        return [marker, g.start] + nodes + [BACK]
    return [marker, g.start] + nodes + [FOUND if arm == g.goal_arm else DEAD]


def explore(
    g: StarGraph,
    rng: random.Random,
    style: ExplorerStyle | None = None,
    max_episodes: int = 16,
    first_arm: int | None = None,
) -> list[str]:
    """A noisy exploration trace: thinking words, ``</think>``, the answer, ``<eos>``.

    ``first_arm``: walk this arm first (in full), then explore as usual (the hint-following
    teacher of ``mrt pretrain --follow-cue``); None: the first arm is drawn like every other."""
    style = style or sample_style(rng)
    words: list[str] = []
    dead: set[int] = set()
    found = False
    n_arms = len(g.arms)
    episodes = 0
    while not found and episodes < max_episodes:
        if rng.random() < style.p_early_stop:
            break
        unexplored = [a for a in range(n_arms) if a not in dead]
        forced = episodes == 0 and first_arm is not None
        if forced:
            arm = first_arm
        elif dead and rng.random() < style.p_revisit:
            arm = rng.choice(sorted(dead))
        else:
            arm = rng.choice(unexplored)
        if len(g.arms[arm]) > 1 and not forced and rng.random() < style.p_abandon:
            words += walk(g, arm, TRY, upto=rng.randrange(1, len(g.arms[arm])))
        else:
            words += walk(g, arm, TRY)
            found = arm == g.goal_arm
            if not found:
                dead.add(arm)
        episodes += 1
    if found:
        n_checks = 0
        while rng.random() < style.mean_checks / (1.0 + style.mean_checks) and n_checks < 4:
            n_checks += 1
        for _ in range(n_checks):
            arm = g.goal_arm if rng.random() < 0.7 or not dead else rng.choice(sorted(dead))
            words += walk(g, arm, CHECK)
    return words + [END_THINK] + answer_words(g, dead, found, rng, style.p_good_guess)


def answer_words(g: StarGraph, dead: set[int], found: bool, rng: random.Random, p_good_guess: float = 1.0) -> list[str]:
    """The answer the trace has earned: the goal path if found, else a guessed arm."""
    if found:
        arm = g.goal_arm
    else:
        candidates = [a for a in range(len(g.arms)) if a not in dead]
        if rng.random() >= p_good_guess or not candidates:
            candidates = list(range(len(g.arms)))
        arm = rng.choice(candidates)
    return [ANSWER, g.start] + g.arms[arm] + [EOS]


# --------------------------------------------------------------------------- task


@dataclass
class StarTask(Task):
    """The didactic star-graph world as a :class:`Task`."""

    arms: object = "2-4"
    arm_len: object = "2-4"
    cue: object = 0.0
    cue_at: str = "end"
    name: str = "star"
    _arms: tuple[int, int] = field(init=False, repr=False)
    _len: tuple[int, int] = field(init=False, repr=False)

    termination_text = END_THINK
    natural_end_text = None  # the same END_THINK as a forced stop
    think_end_text = END_THINK
    extension_texts = (TRY,)
    extension_stop_texts = (TRY, CHECK, END_THINK)  # one more episode, then stop
    extension_tokens = 32
    default_budgets = (16, 32, 48, 64, 96)
    default_max_new_tokens = 256
    default_answer_tokens = 16

    def episode_ends(self, thinking_ids: list[int], tokenizer) -> list[int]:
        return didactic_ends(tokenizer.convert_ids_to_tokens(thinking_ids), EPISODE_MARKERS)

    def __post_init__(self):
        self._arms = parse_range(self.arms, "arms")
        self._len = parse_range(self.arm_len, "arm_len")
        if 1 + self._arms[1] * self._len[1] > NUM_NODE_NAMES:
            raise ValueError(
                f"knobs arms={self.arms} arm_len={self.arm_len}: at most {NUM_NODE_NAMES - 1} nodes besides the start"
            )
        if self.cue != CHANCE:
            try:
                self.cue = float(self.cue)
            except (TypeError, ValueError):
                self.cue = None
            if self.cue is None or not 0.0 <= self.cue <= 1.0:
                raise ValueError(f"knob 'cue': expected a probability in [0, 1] or 'chance', got {self.cue!r}")
        if self.cue_at not in CUE_PLACES:
            raise ValueError(f"knob 'cue_at': expected one of {', '.join(CUE_PLACES)}, got {self.cue_at!r}")

    def knobs(self) -> dict:
        k = {"arms": f"{self._arms[0]}-{self._arms[1]}", "arm_len": f"{self._len[0]}-{self._len[1]}"}
        if self.cue and self.cue_at != "end":
            k["cue_at"] = self.cue_at
        return {**k, "cue": self.cue} if self.cue else k

    def graph(self, seed: int) -> StarGraph:
        rng = random.Random(seed)
        return make_graph(rng, rng.randint(*self._arms), rng.randint(*self._len), self.cue, self.cue_at)

    def problems(self, n: int, seed: int = 0) -> list[Problem]:
        out = []
        for i in range(n):
            pid_seed = seed * 1_000_003 + i
            g = self.graph(pid_seed)
            out.append(
                Problem(
                    id=f"{self.name}-{seed}-{i}",
                    prompt=" ".join(g.prompt_words()),
                    answer=" ".join(g.path),
                    meta=self.problem_meta(g, pid_seed),
                )
            )
        return out

    def problem_meta(self, g: StarGraph, pid_seed: int) -> dict:
        return {
            "arms": len(g.arms),
            "arm_len": len(g.arms[0]),
            "seed": pid_seed,
            "cue_right": g.cue == g.arms[g.goal_arm][0] if g.cue else None,
        }

    def extract_answer(self, completion: str) -> str | None:
        """The answer part of a completion: the words after ``answer`` up to ``<eos>``."""
        words = completion.split()
        if ANSWER not in words:
            return None
        rest = words[words.index(ANSWER) + 1 :]
        if EOS in rest:
            rest = rest[: rest.index(EOS)]
        return " ".join(rest) if rest else None

    def grade(self, problem: Problem, answer: str | None) -> bool:
        return answer is not None and answer.split() == problem.answer.split()
