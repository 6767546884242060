"""Thinking traces in R1's format, written by a program, for chains of sums and differences of
integers (reasoning-gym's ``chain_sum``). Pure: no I/O.

A real instruct model such as SmolLM2-135M-Instruct does not think in episodes. ``mrt warmstart
--scheme think`` fine-tunes it on these traces (docs/real-models.md, "MRT on SmolLM2"). A trace is
two or three episodes, separated the way the R1 segmentation cuts them (a paragraph opening with
a marker, at least three paragraphs after the previous episode's start):

1. a quick attempt, left to right, one partial result per paragraph;
2. ``Wait, let me check it by place value.``: each place (ones, tens, ...) summed on its own, then
   the places added: more steps, each one easier;
3. (with probability ``third``) ``But let me double-check ...``: by grouping the signs (what is
   added, what is taken away, one difference), or from right to left when there is nothing to group.

With ``slips = 0`` every episode ends at the same value, the right one. A model warm-started on
such traces learns that a check repeats what came before: SmolLM2 fitted its checks' sums to its
first attempt's wrong result, so J did not rise across episodes (docs/real-models.md). With
probability ``slips`` the quick attempt slips once instead (one partial result off by 1 or 10, a
digit or a carry, carried on to its end); the check by place value then reaches another value and
says so, and a third episode (by signs, or right to left) settles it. The checks are therefore worked out from the
terms, never from the attempt before them, as the MRT authors' backtracking warm start pairs a
failed attempt with the correction that follows it. The forced-answer examples teach the answer
after the authors' termination text: after ``j`` episodes the value the prefix reached (a slipped
attempt's own value), with no episode the answer itself.
"""

from __future__ import annotations

import random
import re

_NUMBER = re.compile(r"^-?\d+$")
PLACES = ("ones", "tens", "hundreds", "thousands", "ten-thousands", "hundred-thousands")


def parse_chain(expression: str) -> list[int]:
    """Signed terms of ``a ± b ± c ...`` (integers, single spaces around the operators, a term
    may be negative: ``2 - -1``). Anything else (products, quotients, brackets) is refused."""
    parts = expression.split()
    if len(parts) < 3 or len(parts) % 2 == 0:
        raise ValueError(f"not a chain of sums and differences: {expression!r}")
    terms = []
    for i, p in enumerate(parts):
        if i % 2 == 0:
            if not _NUMBER.match(p):
                raise ValueError(f"not a chain of sums and differences: {expression!r} ({p!r} is not an integer)")
            terms.append(int(p))
        elif p not in ("+", "-"):
            raise ValueError(f"not a chain of sums and differences: {expression!r} (operator {p!r})")
    ops = parts[1::2]
    return [terms[0]] + [t if op == "+" else -t for op, t in zip(ops, terms[1:])]


def _num(v: int) -> str:
    return str(v)


def _chain(values: list[int]) -> str:
    """``a + b - c`` from signed values (a first value may be negative; ``- -1`` never appears:
    a negative later value is written as a difference)."""
    out = _num(values[0])
    for v in values[1:]:
        out += f" - {_num(-v)}" if v < 0 else f" + {_num(v)}"
    return out


def quick_attempt(terms: list[int], slip: tuple[int, int] | None = None) -> tuple[list[str], int]:
    """Left to right, one partial result per paragraph; at least three paragraphs. ``slip = (k,
    delta)``: the k-th partial result is off by ``delta``, and what follows builds on it. Returns the
    paragraphs and the value reached."""
    paras = [f"Let me work out {_chain(terms)} from left to right."]
    acc = terms[0]
    for k, t in enumerate(terms[1:]):
        new = acc + t + (slip[1] if slip and slip[0] == k else 0)
        paras.append(f"{_chain([acc, t])} = {_num(new)}.")
        acc = new
    if len(paras) < 3:
        paras.append(f"So I get {_num(acc)}.")
    return paras, acc


def place_value_check(terms: list[int]) -> list[str]:
    """Each place summed on its own (signed), then the places added."""
    width = max(len(str(abs(t))) for t in terms)
    paras = ["Wait, let me check it by place value."]
    sums = []
    for p in range(width):
        parts = [(1 if t >= 0 else -1) * (abs(t) // 10**p % 10) * 10**p for t in terms]
        s = sum(parts)
        sums.append(s)
        paras.append(f"{PLACES[p].capitalize() if p < len(PLACES) else f'10^{p}'}: {_chain(parts)} = {_num(s)}.")
    if width > 1:
        paras.append(f"{_chain(sums[::-1])} = {_num(sum(sums))}.")
    else:
        paras.append(f"That is {_num(sum(sums))}.")
    return paras


def sign_check(terms: list[int], after_slip: bool = False) -> list[str]:
    """What is added, what is taken away, one difference; with one sign only, right to left. After a
    slip, a short right-to-left check closes by naming the check it agrees with."""
    plus = [t for t in terms if t >= 0]
    minus = [-t for t in terms if t < 0]
    if not plus or not minus:
        paras = ["But let me double-check by adding from right to left."]
        back = terms[::-1]
        acc = back[0]
        for t in back[1:]:
            paras.append(f"{_chain([acc, t])} = {_num(acc + t)}.")
            acc += t
        if len(paras) < 3:
            paras.append(f"{_num(acc)}, as by place value." if after_slip else f"Again {_num(acc)}.")
        return paras
    paras = ["But let me double-check by grouping the signs."]
    p, m = sum(plus), sum(minus)
    paras.append(f"Added: {_chain(plus) + ' = ' if len(plus) > 1 else ''}{_num(p)}.")
    paras.append(f"Taken away: {_chain(minus) + ' = ' if len(minus) > 1 else ''}{_num(m)}.")
    paras.append(f"{_num(p)} - {_num(m)} = {_num(p - m)}.")
    return paras


def draw_slip(terms: list[int], rng: random.Random) -> tuple[int, int]:
    """Which partial result of the quick attempt slips, and by how much: a digit (1) or a carry (10)."""
    return rng.randrange(len(terms) - 1), rng.choice((1, -1)) * rng.choice((1, 10))


def think_trace(
    terms: list[int], rng: random.Random, third: float = 0.5, slips: float = 0.0
) -> tuple[list[list[str]], list[int]]:
    """The episodes of one trace, each a list of paragraphs, the last ending with the conclusion;
    and the value each episode reached. ``rng`` is drawn for a slip only when ``slips > 0`` (traces
    without slips are the same as before slips existed)."""
    right = sum(terms)
    slip = draw_slip(terms, rng) if slips > 0 and rng.random() < slips else None
    first, reached = quick_attempt(terms, slip)
    eps, values = [first, place_value_check(terms)], [reached, right]
    if slip:  # the check disagrees: it says so, and a third check settles it
        eps[1] = eps[1] + [f"That is not {_num(reached)}: one of the two is wrong."]
        eps.append(sign_check(terms, after_slip=True))
        values.append(right)
    elif rng.random() < third:
        eps.append(sign_check(terms))
        values.append(right)
    eps[-1] = eps[-1] + [f"So the answer is {_num(right)}."]
    return eps, values


def think_episodes(terms: list[int], rng: random.Random, third: float = 0.5, slips: float = 0.0) -> list[list[str]]:
    """The episodes of :func:`think_trace` alone."""
    return think_trace(terms, rng, third, slips)[0]


def episode_text(episodes: list[list[str]]) -> str:
    return "\n\n".join("\n\n".join(e) for e in episodes)


def answer_text(value) -> str:
    """What follows ``</think>``: the answer, boxed."""
    return f"The answer is $\\boxed{{{value}}}$."


def forced_answer_text(value) -> str:
    """What follows the authors' answer opener (``1. **``) in a forced-answer example."""
    return f"Final answer:** $\\boxed{{{value}}}$"
