"""Math grading: nested braces, leading zeros, answer part only, time-outs counted wrong."""

import time

from mrt.grading import grade_answer_part, last_boxed, math_equal
from mrt.tasks.base import Task


def test_last_boxed_nested_braces():
    assert last_boxed(r"so \boxed{\frac{\sqrt{3}}{2}}.") == r"\frac{\sqrt{3}}{2}"
    assert last_boxed(r"\boxed{1} then \boxed{\{1,2\}}") == r"\{1,2\}"
    assert last_boxed(r"\fbox{x^{2}}") == "x^{2}"
    assert last_boxed("no box") is None
    assert last_boxed(r"\boxed{unclosed") is None
    assert last_boxed(None) is None


def test_equivalence():
    assert math_equal(r"\frac{\sqrt{3}}{2}", r"\frac{\sqrt3}{2}")
    assert math_equal("070", "70")
    assert math_equal("0.5", r"\frac{1}{2}")
    assert not math_equal("71", "70")
    assert not math_equal(None, "70") and not math_equal("  ", "70")


def test_only_the_answer_part_is_graded():
    task = Task()  # R1 defaults: thinking ends at </think>
    out = r"I guess \boxed{70} ... Wait, no. </think> The answer is \boxed{\frac{\sqrt{3}}{2}}."
    part = task.answer_part(out)
    assert grade_answer_part(part, r"\frac{\sqrt{3}}{2}")
    assert not grade_answer_part(part, "70")  # the boxed 70 of the thinking is never read
    # thinking that never ended has no answer part
    assert task.answer_part(r"\boxed{70} still thinking") is None
    assert not grade_answer_part(None, "70")
    # a forced answer (the prompt ended thinking) is graded whole
    assert grade_answer_part(task.answer_part(r"\boxed{070}", terminated=True), "70")


def test_adversarial_answer_is_wrong_not_a_hang():
    t0 = time.time()
    assert not grade_answer_part(r"\boxed{9^{9^{9^{9^{9^{9}}}}}}", "70", timeout=2)
    assert time.time() - t0 < 30


def test_boxed_without_braces():
    assert last_boxed(r"so the answer is \boxed 5.") == "5."
    assert last_boxed(r"$\boxed 5$") == "5"
    assert last_boxed(r"\boxed{3} then \boxed 7") == "7"
    assert grade_answer_part(r"</think> Hence $\boxed 5$", "5")


def test_grader_failures_counted_by_kind_and_logged_short(caplog, capfd):
    import logging

    from mrt import grading

    before = dict(grading.failures)
    with caplog.at_level(logging.WARNING):
        # math-verify's own time-out (it used to swallow it: nothing was counted)
        assert not math_equal(r"10^{10^{10^{10}}}", "70", timeout=2)
        # an answer math-verify finds nothing in: graded wrong and counted, no string fallback
        assert not math_equal("}}}{", "70")
        # an adversarial 10,000-character answer: at most ~80 characters of it reach the log
        assert not math_equal("(" * 10000 + "1", "70", timeout=2)
    added = {k: grading.failures[k] - before.get(k, 0) for k in grading.FAILURE_KINDS}
    assert added["timeout"] >= 1 and added["unparsed"] >= 1
    # the adversarial answer is graded wrong either way: counted as a time-out, or (on a loaded
    # machine, seen in the full suite) parsed within the time-out into a different value
    assert sum(added.values()) >= 2
    lines = [r.getMessage() for r in caplog.records if "grader" in r.getMessage()]
    assert lines and all(len(line) < 250 for line in lines)
    err = capfd.readouterr().err
    assert "(" * 200 not in err and "(" * 200 not in caplog.text
