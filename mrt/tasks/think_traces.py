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

Every episode ends at the same value, the right one: the warm start teaches the format and the
checks, and what the model gets wrong is its own. The forced-answer examples teach the answer
after the authors' termination text: after ``j`` episodes the value the prefix reached, with no
episode the answer itself.
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


def quick_attempt(terms: list[int]) -> list[str]:
    """Left to right, one partial result per paragraph; at least three paragraphs."""
    paras = [f"Let me work out {_chain(terms)} from left to right."]
    acc = terms[0]
    for t in terms[1:]:
        paras.append(f"{_chain([acc, t])} = {_num(acc + t)}.")
        acc += t
    if len(paras) < 3:
        paras.append(f"So I get {_num(acc)}.")
    return paras


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


def sign_check(terms: list[int]) -> list[str]:
    """What is added, what is taken away, one difference; with one sign only, right to left."""
    plus = [t for t in terms if t >= 0]
    minus = [-t for t in terms if t < 0]
    if not plus or not minus:
        paras = ["But let me double-check by adding from right to left."]
        back = terms[::-1]
        acc = back[0]
        for t in back[1:]:
            paras.append(f"{_chain([acc, t])} = {_num(acc + t)}.")
            acc += t
        return paras + ([f"Again {_num(acc)}."] if len(paras) < 3 else [])
    paras = ["But let me double-check by grouping the signs."]
    p, m = sum(plus), sum(minus)
    paras.append(f"Added: {_chain(plus) + ' = ' if len(plus) > 1 else ''}{_num(p)}.")
    paras.append(f"Taken away: {_chain(minus) + ' = ' if len(minus) > 1 else ''}{_num(m)}.")
    paras.append(f"{_num(p)} - {_num(m)} = {_num(p - m)}.")
    return paras


def think_episodes(terms: list[int], rng: random.Random, third: float = 0.5) -> list[list[str]]:
    """The episodes of one trace, each a list of paragraphs; the last ends with the conclusion."""
    eps = [quick_attempt(terms), place_value_check(terms)]
    if rng.random() < third:
        eps.append(sign_check(terms))
    eps[-1] = eps[-1] + [f"So the answer is {_num(sum(terms))}."]
    return eps


def episode_text(episodes: list[list[str]]) -> str:
    return "\n\n".join("\n\n".join(e) for e in episodes)


def answer_text(value) -> str:
    """What follows ``</think>``: the answer, boxed."""
    return f"The answer is $\\boxed{{{value}}}$."


def forced_answer_text(value) -> str:
    """What follows the authors' answer opener (``1. **``) in a forced-answer example."""
    return f"Final answer:** $\\boxed{{{value}}}$"
