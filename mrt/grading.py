"""Grading of math answers with math-verify, on the answer part only, under a timeout.

The MRT authors' grader had three traps (MRT-NOTES §2): a ``\\boxed{}`` inside the thinking
prefix could be graded, nested braces broke its extractor (``\\boxed{\\frac{\\sqrt{3}}{2}}``),
and ``070`` did not equal ``70``. Here the caller passes only the answer part (what follows the
end of thinking, see ``Task.answer_part``); the last ``\\boxed{...}`` (or ``\\boxed 5``) is found
with brace matching; equivalence is math-verify's (symbolic, numeric, and its own string
comparison), bounded by ``timeout`` seconds per parse and per comparison.

Every answer that is graded wrong for a reason other than being a different value is counted in
:data:`failures`, by kind, and logged in one line with the answer cut to 80 characters:

* ``timeout``: math-verify ran out of time (its own time-outs are raised, not swallowed);
* ``error``: math-verify raised;
* ``unparsed``: math-verify found nothing to compare in the answer;
* ``reference_unparsed``: nor in the reference answer.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

log = logging.getLogger(__name__)
failures: Counter = Counter()  # grader failures seen in this process, by kind (module doc)
_scopes: ContextVar[tuple[Counter, ...]] = ContextVar("mrt_grader_scopes", default=())
FAILURE_KINDS = ("timeout", "error", "unparsed", "reference_unparsed")
# math-verify logs whole answers (10,000+ characters for an adversarial one) on a time-out; our
# own one-line message replaces that
logging.getLogger("math_verify").setLevel(logging.CRITICAL)


def last_boxed(text: str | None) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), braces matched; for the
    brace-less ``\\boxed 5`` the characters up to the next space or ``$``. None if none."""
    if not text:
        return None
    starts = [i for key in ("\\boxed", "\\fbox") for i in _find_all(text, key)]
    for start in sorted(starts, reverse=True):
        rest = text[start:].split("{", 1)[0]
        if rest in ("\\boxed", "\\fbox"):  # \boxed{...}
            open_at = start + len(rest)
            depth = 0
            for j in range(open_at, len(text)):
                if text[j] == "{":
                    depth += 1
                elif text[j] == "}":
                    depth -= 1
                    if depth == 0:
                        return text[open_at + 1 : j].strip()
        else:
            m = re.match(r"\\(?:boxed|fbox) +([^\s$]+)", text[start:])
            if m:
                return m.group(1)
    return None


def last_number(text: str | None) -> str | None:
    """The last number in ``text`` (thousands commas dropped), for models that do not box."""
    found = re.findall(r"-?\d[\d,]*(?:\.\d+)?", text or "")
    return found[-1].replace(",", "").rstrip(".") if found else None


def _find_all(text: str, key: str):
    i = text.find(key)
    while i >= 0:
        yield i
        i = text.find(key, i + 1)


@contextmanager
def counting() -> Iterator[Counter]:
    """``with counting() as c:``: the grader failures met inside the block, by kind, whatever
    else counts at the same time (another run in this process, an enclosing scope). A run's
    figures come from these scopes, not from the process-wide :data:`failures`."""
    c: Counter = Counter()
    token = _scopes.set(_scopes.get() + (c,))
    try:
        yield c
    finally:
        _scopes.reset(token)


def _failed(kind: str, answer, detail: str = "") -> bool:
    failures[kind] += 1
    for c in _scopes.get():
        c[kind] += 1
    log.warning(
        "grader %s on answer %.80r%s; counted wrong",
        kind.replace("_", " "),
        str(answer),
        f" ({detail[:80]})" if detail else "",
    )
    return False


def math_equal(answer: str | None, reference: str, timeout: int = 5) -> bool:
    """Is the extracted ``answer`` equivalent to ``reference``? Wrong on a time-out, an error or
    an answer math-verify cannot parse (each counted in :data:`failures`)."""
    if answer is None or not str(answer).strip():
        return False
    from math_verify import parse, verify
    from math_verify.errors import TimeoutException

    try:
        gold = parse("\\boxed{" + str(reference) + "}", parsing_timeout=timeout, raise_on_error=True)
        if not gold:
            return _failed("reference_unparsed", reference)
        pred = parse("\\boxed{" + str(answer) + "}", parsing_timeout=timeout, raise_on_error=True)
        if not pred:
            return _failed("unparsed", answer)
        return bool(verify(gold, pred, timeout_seconds=timeout, raise_on_error=True))
    except (TimeoutException, TimeoutError):
        return _failed("timeout", answer)
    except Exception as e:  # noqa: BLE001 - a checker that chokes never stops a run
        return _failed("error", answer, f"{type(e).__name__}: {e}")


def equivalent(a: str, b: str, timeout: int = 5) -> bool:
    """Are two extracted answers the same (for votes: ``Task.same_answer``)? math-verify, with
    nothing counted or logged: a failure only means the two vote apart."""
    from math_verify import parse, verify
    from math_verify.errors import TimeoutException

    try:
        pa = parse("\\boxed{" + str(a) + "}", parsing_timeout=timeout)
        pb = parse("\\boxed{" + str(b) + "}", parsing_timeout=timeout)
        return bool(pa and pb and verify(pa, pb, timeout_seconds=timeout))
    except (TimeoutException, Exception):  # noqa: BLE001
        return False


def grade_answer_part(answer_part: str | None, reference: str, timeout: int = 5) -> bool:
    """Grade the answer part of an output: its last boxed answer against ``reference``."""
    return math_equal(last_boxed(answer_part), reference, timeout)
