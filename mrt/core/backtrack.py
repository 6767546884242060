"""The backtracking format (MRT's second setting, docs/backtracking.md). Pure functions, no I/O.

A trace is an attempt ``z0`` (numbered steps), then rounds of a backtrack marker that names a
step of the current attempt and a revision from that step. Each round makes a new *current
attempt*: the steps the marker kept plus the revision's steps (``BacktrackTrace.attempts``), so
episodes are Markovian: a revision needs the problem and the attempt before it, not the history.

Two syntaxes:

* text (:func:`parse_text`): steps are lines that open with ``Step N``, ``Line N`` or ``Node N``
  (optionally after ``#``); markers are the authors' ``Backtrack to Line N`` / ``Backtrack to
  beginning`` (their eval code) and their RL marker ``Wait, this seems off. Let's try something
  else.``, which names no step: the revision's first step number ``k`` says it resumes after step
  ``k - 1`` (no numbered step: from the beginning);
* didactic words (:func:`parse_words`): an attempt ``try s a b c dead``, a marker ``back b`` that
  names a node (a step) of the current attempt, a revision ``d e found`` that walks on from it.

A marker that names a step the attempt does not have, a marker with no revision after it and
an empty revision raise :class:`BacktrackFormatError` with a ``kind`` for counting skips. The
lenient ``*_episode_ends`` functions never raise (they cut model output that may be malformed).

Linearized evaluation helpers: :func:`window` (the attempts kept in context),
:func:`running_majority` (majority vote over the answers so far), :func:`revisit_kinds` (a wrong
answer the model had already found wrong, seen or no longer seen).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from mrt.core.advantages import EPS, SCALES, scaled_advantages
from mrt.core.metrics import majority_vote_score

# -------------------------------------------------------------------------- text markers
# The authors' eval code splits at r"Backtrack to Line \d+\n" or r"Backtrack to beginning\n"
# (CMU-AIRe/MRT eval_history_conditioned.py); their RL prompts append this sentence and "\nStep"
# after the first attempt (CohenQU/grpo-metaMATH grpo.py).
RL_MARKER = "Wait, this seems off. Let's try something else."
RL_PROMPT_SUFFIX = "\n" + RL_MARKER + "\nStep"
BACKTRACK_LINE = "Backtrack to Line {n}"
BACKTRACK_BEGINNING = "Backtrack to beginning"
# the user message of the authors' `backtrack` eval template (CMU-AIRe/MRT template.py): the prompt
# their warm-started models were evaluated with, kept exactly (like the termination text) as a format
BACKTRACK_INSTRUCTION = (
    "You are an AI language model designed to assist with math problem-solving. In this task, I will "
    "provide you with math problems. Your goal is to solve the problem step-by-step, optionally backtracking "
    "to previous states if the current steps are unlikely to lead to a correct solution. Each step should be "
    "labeled sequentially as Node #. After you have finished solving the problem, present your final answer "
    "as \\boxed{Your Answer}.\n\nHere is the math word problem for you to solve:\n"
)

TEXT_MARKER_RE = re.compile(
    r"Backtrack to (?:Line|Step|Node) (?P<n>\d+)|Backtrack to (?:the )?beginning|" + re.escape(RL_MARKER),
    re.IGNORECASE,
)
STEP_RE = re.compile(r"^[ \t]*(?:#+[ \t]*)?(?:\*\*)?(?:Step|Line|Node)[ \t]*#?[ \t]*(?P<n>\d+)", re.IGNORECASE | re.M)

# -------------------------------------------------------------------------- didactic words
TRY, BACK, DEAD, FOUND = "try", "back", "dead", "found"
OUTCOMES = (DEAD, FOUND)

ERROR_KINDS = ("missing_step", "no_revision", "empty_revision", "malformed")


class BacktrackFormatError(ValueError):
    """A trace that breaks the format; ``kind`` is one of :data:`ERROR_KINDS` (for skip counts)."""

    def __init__(self, kind: str, message: str):
        if kind not in ERROR_KINDS:
            raise ValueError(f"unknown error kind {kind!r}")
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Marker:
    keep: int  # steps of the current attempt kept (0: from the beginning)
    start: int  # offsets in the trace (characters for text, words for the didactic syntax)
    end: int
    named: bool  # the marker names its step (False: the RL marker, the step read off the revision)


@dataclass(frozen=True)
class Round:
    marker: Marker
    steps: tuple[str, ...]  # the revision's steps
    end: int  # where the revision ends (offset)
    outcome: str | None = None  # didactic: dead, found or None (cut off)


@dataclass(frozen=True)
class BacktrackTrace:
    attempt: tuple[str, ...]  # the steps of z0
    attempt_end: int
    rounds: tuple[Round, ...] = ()
    outcome: str | None = None  # didactic: how z0 ended

    def episode_ends(self) -> list[int]:
        """End offsets of the episodes: z0, then marker and revision of every round."""
        ends = [self.attempt_end] if self.attempt or self.attempt_end else []
        for r in self.rounds:
            ends += [r.marker.end, r.end]
        return ends

    def attempts(self) -> list[tuple[str, ...]]:
        """The current attempt after z0 and after every round: the kept steps plus the revision's."""
        out = [self.attempt]
        for r in self.rounds:
            out.append(out[-1][: r.marker.keep] + r.steps)
        return out

    def outcomes(self) -> list[str | None]:
        return [self.outcome] + [r.outcome for r in self.rounds]


# -------------------------------------------------------------------------- text


def text_steps(text: str) -> list[tuple[int, str]]:
    """(number, text) of the numbered steps of an attempt; text before the first step header is
    dropped. An attempt with no step header is one step numbered 1 (if it has any text)."""
    heads = list(STEP_RE.finditer(text))
    if not heads:
        return [(1, text.strip())] if text.strip() else []
    out = []
    for h, nxt in zip(heads, heads[1:] + [None]):
        out.append((int(h.group("n")), text[h.start() : nxt.start() if nxt else len(text)].strip()))
    return out


def _keep_of(numbers: list[int], n: int, where: str) -> int:
    if n == 0:
        return 0
    if n not in numbers:
        have = ", ".join(map(str, numbers)) or "none"
        raise BacktrackFormatError("missing_step", f"{where} names step {n}; the attempt has steps {have}")
    return numbers.index(n) + 1


MARKER_LINE_RE = re.compile(
    r"^[ \t]*(?:Backtrack to (?:Line|Step|Node) (?P<n>\d+)|Backtrack to (?:the )?beginning|"
    + re.escape(RL_MARKER)
    + r")[ \t]*$",
    re.IGNORECASE,
)
MARKERISH_RE = re.compile(r"Backtrack to|" + re.escape(RL_MARKER), re.IGNORECASE)


def _line_at(text: str, i: int) -> tuple[int, int]:
    """(start, end) of the line holding character ``i`` (end: before its newline)."""
    start = text.rfind("\n", 0, i) + 1
    end = text.find("\n", i)
    return start, len(text) if end < 0 else end


def _strict_steps(block: str, where: str, first: int | None) -> list[tuple[int, str]]:
    """The numbered steps of one attempt or revision, strictly: nothing but space before the first
    step header, numbers rising by one (from ``first`` when given). ``malformed`` otherwise."""
    heads = list(STEP_RE.finditer(block))
    if not heads:
        raise BacktrackFormatError("malformed", f"{where} has no numbered step")
    if block[: heads[0].start()].strip():
        stray = block[: heads[0].start()].strip()
        raise BacktrackFormatError("malformed", f"{where}: text before its first step header: {stray[:60]!r}")
    steps = text_steps(block)
    numbers = [n for n, _ in steps]
    if first is not None and numbers[0] != first:
        raise BacktrackFormatError("malformed", f"{where} starts at step {numbers[0]}, not {first}")
    bad = [(a, b) for a, b in zip(numbers, numbers[1:]) if b != a + 1]
    if bad:
        raise BacktrackFormatError(
            "malformed", f"{where}: step {bad[0][1]} after step {bad[0][0]} (steps must rise by one)"
        )
    return steps


def parse_text(text: str) -> BacktrackTrace:
    """Parse a text trace in the backtracking format (the module doc), strictly; offsets in characters.

    A marker is a line of its own (the authors' ``Backtrack to Line N`` / ``Backtrack to beginning``
    and their RL marker), followed by a newline and the revision's first step header. Raises
    :class:`BacktrackFormatError`: ``missing_step`` (a marker naming a step the current attempt
    does not have), ``no_revision`` (a marker at the end), ``empty_revision`` (a marker right before
    the next one), ``malformed`` (a broken marker: ``Backtrack to`` text that is not a whole marker
    line, e.g. ``Backtrack to Backtrack to Line 1``, ``Backtrack to Line -1`` or a marker inside a
    line; text between a marker and the next step header; step numbers that repeat, restart or
    skip, or a revision that does not go on from the step its marker keeps; a revision with no
    step). An attempt ``z0`` with no step header at all is one step (models that do not number
    steps); a trace with no marker is an attempt alone.
    """
    marks = []
    for m in MARKERISH_RE.finditer(text):
        a, b = _line_at(text, m.start())
        line = MARKER_LINE_RE.match(text[a:b])
        if line is None:
            raise BacktrackFormatError(
                "malformed", f"broken backtrack marker at character {m.start()}: {text[a:b].strip()[:80]!r}"
            )
        if marks and marks[-1][0] == a:
            continue  # the same marker line (e.g. the RL marker's own words)
        marks.append((a, b, line))
    first = marks[0][0] if marks else len(text)
    z0 = text[:first]
    if z0.strip() and not STEP_RE.search(z0):
        cur = [(1, z0.strip())]  # an attempt with no step header at all: one step
    elif z0.strip():
        cur = _strict_steps(z0, "the first attempt", 1)
    else:
        cur = []
    attempt = tuple(s for _, s in cur)
    rounds = []
    for i, (a, b, line) in enumerate(marks):
        end = marks[i + 1][0] if i + 1 < len(marks) else len(text)
        body = text[b + 1 : end] if b < len(text) else ""
        marker_text = text[a:b].strip()
        if not body.strip():
            kind = "no_revision" if i + 1 == len(marks) else "empty_revision"
            raise BacktrackFormatError(kind, f"marker {marker_text!r} at character {a} has no revision text")
        numbers = [n for n, _ in cur]
        where = f"the revision after {marker_text!r} at character {a}"
        if line.group("n") is not None:
            keep = _keep_of(numbers, int(line.group("n")), f"marker {marker_text!r}")
            rev, named = _strict_steps(body, where, keep + 1), True
        elif marker_text.lower().startswith("backtrack"):
            keep, rev, named = 0, _strict_steps(body, where, 1), True
        else:  # the RL marker: the revision's first step number k resumes after step k - 1
            rev = _strict_steps(body, where, None)
            keep, named = _keep_of(numbers, rev[0][0] - 1, f"{where} (its first step {rev[0][0]})"), False
        start = a + (len(text[a:b]) - len(text[a:b].lstrip()))
        rounds.append(Round(Marker(keep, start, start + len(marker_text), named), tuple(s for _, s in rev), end))
        cur = cur[:keep] + rev
    return BacktrackTrace(attempt, first, tuple(rounds))


def text_episode_ends(text: str) -> list[int]:
    """Episode end offsets (characters) of a possibly malformed text trace: z0 up to the first
    marker, each marker, each revision up to the next marker. Never raises."""
    marks = list(TEXT_MARKER_RE.finditer(text))
    if not text.strip():
        return []
    ends = [m.start() for m in marks[:1] if m.start() > 0]
    for i, m in enumerate(marks):
        ends.append(m.end())
        nxt = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        if nxt > m.end():
            ends.append(nxt)
    if not ends or ends[-1] != len(text):
        ends.append(len(text))
    return ends


def render_text_round(keep: int, revision: str) -> str:
    """The text of one round: the authors' marker naming step ``keep`` (0: the beginning), then
    the revision."""
    marker = BACKTRACK_BEGINNING if keep == 0 else BACKTRACK_LINE.format(n=keep)
    return f"{marker}\n{revision}"


# -------------------------------------------------------------------------- didactic words


def parse_words(words: Sequence[str], nodes: set[str] | None = None) -> BacktrackTrace:
    """Parse a didactic thinking stream ``try s a b dead back a c found`` (offsets in words).

    ``nodes``: the words that are node names (default: anything but the format's own words).
    Errors: the stream does not open with ``try``, a ``back`` is not followed by a node, a walk
    holds a word that is not a node (when ``nodes`` is given) or a word after its outcome, or a
    revision has no step (``back a dead``) (``malformed``); ``back X`` with X not in the current
    attempt (``missing_step``), ``back X`` at the end (``no_revision``), ``back X`` right before
    the next ``back`` (``empty_revision``).
    """
    words = list(words)
    if not words:
        return BacktrackTrace((), 0)
    if words[0] != TRY:
        raise BacktrackFormatError("malformed", f"the stream opens with {words[0]!r}, not {TRY!r}")

    def is_node(w):
        return w in nodes if nodes is not None else w not in (TRY, BACK, DEAD, FOUND)

    backs = [i for i, w in enumerate(words) if w == BACK]
    first = backs[0] if backs else len(words)
    attempt, outcome = _walk(words[1:first], is_node, "the first attempt")
    rounds = []
    cur = attempt
    for j, b in enumerate(backs):
        end = backs[j + 1] if j + 1 < len(backs) else len(words)
        if b + 1 >= len(words) or words[b + 1] == BACK or not is_node(words[b + 1]):
            if b + 1 >= len(words):
                raise BacktrackFormatError("no_revision", f"'{BACK}' at word {b} is the last word")
            raise BacktrackFormatError("malformed", f"'{BACK}' at word {b} is followed by {words[b + 1]!r}, not a node")
        target = words[b + 1]
        if target not in cur:
            raise BacktrackFormatError(
                "missing_step", f"'{BACK} {target}' at word {b}: {target} is not a step of the attempt {' '.join(cur)}"
            )
        if b + 2 >= end:
            kind = "no_revision" if end == len(words) else "empty_revision"
            raise BacktrackFormatError(kind, f"'{BACK} {target}' at word {b} has no revision after it")
        steps, out = _walk(words[b + 2 : end], is_node, f"the revision after '{BACK} {target}' at word {b}")
        if not steps:
            raise BacktrackFormatError("malformed", f"'{BACK} {target}' at word {b}: the revision has no step")
        keep = cur.index(target) + 1
        rounds.append(Round(Marker(keep, b, b + 2, True), steps, end, out))
        cur = cur[:keep] + steps
    return BacktrackTrace(attempt, first, tuple(rounds), outcome)


def _walk(words: list[str], is_node, where: str) -> tuple[tuple[str, ...], str | None]:
    """The steps of a walk up to its outcome; a word that is neither a node nor an outcome, or a
    word after the outcome, is ``malformed`` (it was dropped, silently)."""
    steps, outcome = [], None
    for i, w in enumerate(words):
        if w in OUTCOMES:
            outcome = w
            if i + 1 < len(words):
                raise BacktrackFormatError("malformed", f"{where}: {words[i + 1]!r} after its outcome {w!r}")
            break
        if not is_node(w):
            raise BacktrackFormatError("malformed", f"{where}: {w!r} is not a node")
        steps.append(w)
    return tuple(steps), outcome


def word_episode_ends(words: Sequence[str]) -> list[int]:
    """Episode end offsets (words) of a possibly malformed didactic stream: a new episode at every
    ``try`` and ``back`` (a marker is ``back`` and the word after it), the revision after it.
    Never raises."""
    words = list(words)
    cuts = set()
    for i, w in enumerate(words):
        if w in (TRY, BACK) and i > 0:
            cuts.add(i)
        if w == BACK and i + 2 <= len(words):
            cuts.add(i + 2)
    return sorted(c for c in cuts if 0 < c < len(words)) + ([len(words)] if words else [])


def render_words(attempt: Sequence[str], outcome: str | None) -> list[str]:
    """An attempt as didactic words: ``try`` + its nodes + its outcome."""
    return [TRY, *attempt] + ([outcome] if outcome else [])


def render_word_round(target: str, revision: Sequence[str], outcome: str | None) -> list[str]:
    return [BACK, target, *revision] + ([outcome] if outcome else [])


# -------------------------------------------------------------------------- warm-start pairs


def shared_prefix(a: Sequence, b: Sequence) -> int:
    """Length of the longest common prefix of two step sequences."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def backtrack_point(failed: Sequence, correct: Sequence, scheme: str, min_keep: int = 0) -> int:
    """Steps kept by the marker that joins a failed attempt to a correct one.

    ``backtrack``: the step where the two attempts part (their longest common prefix, the
    authors' "two attempts sharing a prefix"); ``rise``: the beginning (``min_keep``: the steps
    every attempt shares, 1 for the didactic start node). Raises ValueError when the correct
    attempt adds nothing after that point (it is a prefix of the failed one).
    """
    if scheme == "backtrack":
        keep = max(shared_prefix(failed, correct), min_keep)
    elif scheme == "rise":
        keep = min_keep
    else:
        raise ValueError(f"scheme must be 'backtrack' or 'rise', got {scheme!r}")
    if keep >= len(correct):
        raise ValueError("the correct attempt has no step after the backtrack point")
    return keep


# -------------------------------------------------------------------------- linearized evaluation


def check_linearized(window_size: int, episodes: int) -> None:
    """A window below 1 or fewer than 1 episode is refused with a clear message."""
    if not isinstance(window_size, int) or window_size < 1:
        raise ValueError(f"the window must hold at least 1 attempt, got {window_size!r}")
    if not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"K (episodes per trace) must be at least 1, got {episodes!r}")


def window(attempts: Sequence, window_size: int) -> list:
    """The attempts in context for the next round: the last ``window_size`` of them."""
    check_linearized(window_size, 1)
    return list(attempts)[-window_size:]


def running_majority(labels: Sequence[str | None], correct: Sequence[bool], tie: str = "expected") -> list[float]:
    """Majority-vote score over the answers produced so far, after each one (``labels`` are vote
    labels, equivalent answers equal; None does not vote)."""
    if len(labels) != len(correct):
        raise ValueError("labels and correct must have the same length")
    return [majority_vote_score(labels[: i + 1], correct[: i + 1], tie=tie) for i in range(len(labels))]


def revisit_kinds(
    keys: Sequence[str | None], wrong: Sequence[bool], window_size: int, parsed: Sequence[bool] | None = None
) -> list[str]:
    """For each attempt i: ``new``, or a return to a dead end found earlier (an earlier attempt j
    with the same key that was wrong): ``seen`` when attempt j was still in the context window of
    attempt i, ``unseen`` when it had left. The window holds the last ``window_size`` parsed
    attempts: its distance counts the parsed attempts after j up to i (``parsed[k]`` False: a round
    that was a format error, which leaves the attempt in context as it was and pushes nothing out;
    default: every round parsed). ``keys``: what identifies a branch (the didactic leaf, a text
    attempt's answer); None never matches."""
    check_linearized(window_size, 1)
    parsed = [True] * len(keys) if parsed is None else list(parsed)
    if len(parsed) != len(keys):
        raise ValueError("one parsed flag per attempt is needed")
    out = []
    for i, k in enumerate(keys):
        dead = [j for j in range(i) if k is not None and keys[j] == k and wrong[j]]
        if not dead:
            out.append("new")
        else:
            j = max(dead)
            distance = sum(parsed[j + 1 : i + 1])
            out.append("seen" if distance <= window_size else "unseen")
    return out


# -------------------------------------------------------------------------- MRT-RL on the format

BACKTRACK_FORMS = ("outcome+progress", "termination", "authors")
BACKTRACK_FILTERS = ("star", "mrt-star")


def backtrack_advantages(
    correct: Sequence[bool],
    j0: Sequence[float],
    group_size: int,
    alpha: float,
    scale: str = "group",
    form: str = "outcome+progress",
    std_of: Sequence[float] | None = None,
) -> list[float]:
    """Advantages of revisions sampled after the policy's own first attempt z0 (one z0 per group,
    ``j0[i]``: the meta-prover's J(z0) of row i's group). ``correct``: each row's R, its 0/1 grade
    or a reward (the grade less a format penalty); ``std_of``: the values whose std divides the
    first two forms (default: R; the 0/1 grades when R holds a penalty, so that a small penalty
    does not shrink the divisor and blow up ``alpha (R - J(z0))``).

    ``authors``: the reward ``R + alpha * (R - J(z0))`` (the authors' GRPO fork sums their final
    and info-gain rewards), then GRPO's advantage ``(r - mean_G r) / (std_G r + 1e-4)``. With one
    z0 per group the bonus's ``- alpha * J(z0)`` is a constant of the group and the result is
    ``(1 + alpha)(R - mean_G R)`` scaled: GRPO's advantage again (exactly so with ``scale=group``).

    ``outcome+progress`` (the paper's objective, like ``mrt``'s termination baseline):
    ``(R - mean_G R) + alpha * (R - J(z0))``, divided by the group's std of R (``group``; a group
    whose R are all equal is not divided), the batch's (``batch``) or nothing (``none``).
    ``termination``: ``R - J(z0)`` alone, scaled the same way (the authors' RL README, ``A = R -
    R_termination``, with J(z0) the value of answering right after z0).
    ``alpha = 0`` is GRPO on the same prompts in the first two forms.
    """
    if form not in BACKTRACK_FORMS:
        raise ValueError(f"form must be one of {BACKTRACK_FORMS}, got {form!r}")
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    if len(correct) != len(j0) or group_size < 1 or len(correct) % group_size:
        raise ValueError("need one J(z0) per row and whole groups")
    r = [float(c) for c in correct]
    if form == "authors":
        return scaled_advantages([x + alpha * (x - j) for x, j in zip(r, j0)], group_size, scale)

    def std(xs):
        m = sum(xs) / len(xs)
        return (sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) ** 0.5 if len(xs) > 1 else 0.0

    sd = r if std_of is None else [float(x) for x in std_of]
    batch = std(sd)
    out = []
    for s in range(0, len(r), group_size):
        g, jg = r[s : s + group_size], j0[s : s + group_size]
        m = sum(g) / len(g)
        d = {"group": std(sd[s : s + group_size]), "batch": batch, "none": 0.0}[scale]
        for x, j in zip(g, jg):
            a = (x - m) + alpha * (x - j) if form == "outcome+progress" else x - j
            out.append(a / (d + EPS) if d > 0 else a)
    return out


def mrt_star_backtrack_keep(
    correct: Sequence[bool],
    j_after: Sequence[float],
    j0: Sequence[float],
    group_size: int,
    min_final_j: float = 0.5,
) -> list[bool]:
    """MRT-STaR on the backtracking format, per group (the revisions of one first attempt z0).

    A revision is a *candidate* when its own answer is correct and the meta-prover's J right after
    it is at least ``min_final_j``; its progress is ``J(after) - J(z0)``. Kept: the candidates whose
    progress is the group's largest (ties within 1e-9 all kept), when that progress is positive.
    So among correct revisions the filter keeps those that gained most over the attempt they revise.
    """
    if not (len(correct) == len(j_after) == len(j0)) or group_size < 1 or len(correct) % group_size:
        raise ValueError("need one J after and one J(z0) per row, and whole groups")
    keep: list[bool] = []
    for s in range(0, len(correct), group_size):
        rows = range(s, s + group_size)
        prog = {i: j_after[i] - j0[i] for i in rows if correct[i] and j_after[i] >= min_final_j}
        best = max(prog.values()) if prog else None
        keep += [i in prog and best > 0 and abs(prog[i] - best) < 1e-9 for i in rows]
    return keep


def value_at_tokens(cum_tokens: Sequence[float], values: Sequence[float], budget: float) -> float:
    """A trace's score at a token budget: the value after the last attempt whose cumulative tokens
    fit in ``budget`` (0 before the first attempt fits: no answer yet)."""
    if len(cum_tokens) != len(values):
        raise ValueError("one cumulative token count per value is needed")
    out = 0.0
    for t, v in zip(cum_tokens, values):
        if t > budget:
            break
        out = v
    return out


def round_progress(j: Sequence[float]) -> list[float]:
    """Progress of each backtrack round (marker and revision) over the attempt it revises, from
    J after 0, 1, ... episodes of a well-formed trace (episodes: z0, then marker and revision per
    round, so ``len(j) == 2 + 2 * rounds``): round r's is J(after its revision) - J(after the
    attempt before it), ``j[2r + 1] - j[2r - 1]``. The paper's histograms plot these."""
    if len(j) < 2 or len(j) % 2:
        raise ValueError(f"J after z0 and after each marker and revision is needed (an even length >= 2), got {len(j)}")
    return [j[2 * r + 1] - j[2 * r - 1] for r in range(1, len(j) // 2)]
