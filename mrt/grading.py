"""Grading of math answers with math-verify, on the answer part only, under a timeout.

The MRT authors' grader had three traps (MRT-NOTES §2): a ``\\boxed{}`` inside the thinking
prefix could be graded, nested braces broke its extractor (``\\boxed{\\frac{\\sqrt{3}}{2}}``),
and ``070`` did not equal ``70``. Here the caller passes only the answer part (what follows the
end of thinking, see ``Task.answer_part``); the last ``\\boxed{...}`` is found with brace
matching; equivalence is math-verify's (symbolic and numeric), bounded by ``timeout`` seconds;
an answer that times out or makes the checker raise is graded wrong and counted.
"""
from __future__ import annotations

import logging
from collections import Counter

log = logging.getLogger(__name__)
failures: Counter = Counter()  # grader time-outs / errors seen in this process, by kind


def last_boxed(text: str | None) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), braces matched; None if none."""
    if not text:
        return None
    starts = [i for key in ("\\boxed{", "\\fbox{") for i in _find_all(text, key)]
    for start in sorted(starts, reverse=True):
        open_at = text.index("{", start)
        depth = 0
        for j in range(open_at, len(text)):
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
                if depth == 0:
                    return text[open_at + 1:j].strip()
    return None


def last_number(text: str | None) -> str | None:
    """The last number in ``text`` (thousands commas dropped), for models that do not box."""
    import re

    found = re.findall(r"-?\d[\d,]*(?:\.\d+)?", text or "")
    return found[-1].replace(",", "").rstrip(".") if found else None


def _find_all(text: str, key: str):
    i = text.find(key)
    while i >= 0:
        yield i
        i = text.find(key, i + 1)


def math_equal(answer: str | None, reference: str, timeout: int = 5) -> bool:
    """Is the extracted ``answer`` equivalent to ``reference``? Wrong on a time-out or error."""
    if answer is None or not str(answer).strip():
        return False
    try:
        from math_verify import parse, verify

        gold = parse("\\boxed{" + str(reference) + "}", parsing_timeout=timeout)
        pred = parse("\\boxed{" + str(answer) + "}", parsing_timeout=timeout)
        if not gold or not pred:
            return _plain_equal(answer, reference)
        return bool(verify(gold, pred, timeout_seconds=timeout)) or _plain_equal(answer, reference)
    except TimeoutError:
        failures["timeout"] += 1
        log.warning("grader timed out on answer %.80r; counted wrong", answer)
    except Exception as e:  # noqa: BLE001 - a checker that chokes never stops a run
        failures["error"] += 1
        log.warning("grader failed on answer %.80r (%s); counted wrong", answer, e)
    return False


def _plain_equal(a: str, b: str) -> bool:
    """String fallback: same after dropping spaces; integers compared as numbers (070 == 70)."""
    a, b = "".join(str(a).split()), "".join(str(b).split())
    if a.lstrip("-").isdigit() and b.lstrip("-").isdigit():
        return int(a) == int(b)
    return a == b


def grade_answer_part(answer_part: str | None, reference: str, timeout: int = 5) -> bool:
    """Grade the answer part of an output: its last boxed answer against ``reference``."""
    return math_equal(last_boxed(answer_part), reference, timeout)
