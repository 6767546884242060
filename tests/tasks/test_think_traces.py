"""Program-written R1 thinking traces (mrt.tasks.think_traces) and ``mrt warmstart --scheme think``."""

import json
import random
import re

import pytest

from mrt.core.episodes import segment_r1
from mrt.tasks import get_task, parse_knobs
from mrt.tasks import think_traces as tt
from mrt.train.warmstart import WarmstartConfig, run_warmstart

KNOBS = ["dataset=chain_sum", "options=min_terms:2,max_terms:4,min_digits:1,max_digits:3", "episode_group_size=1"]


def test_parse_chain():
    assert tt.parse_chain("42 - 25 - 73") == [42, -25, -73]
    assert tt.parse_chain("2 - -1") == [2, 1]
    assert tt.parse_chain("-5 + 3") == [-5, 3]
    for bad in ("2 * 3", "(1 + 2) - 3", "1 +", "7", "1 + x"):
        with pytest.raises(ValueError, match="not a chain"):
            tt.parse_chain(bad)


def test_a_trace_by_hand():
    eps = tt.think_episodes([42, -25, -73], random.Random(0), third=1.0)
    assert eps == [
        ["Let me work out 42 - 25 - 73 from left to right.", "42 - 25 = 17.", "17 - 73 = -56."],
        [
            "Wait, let me check it by place value.",
            "Ones: 2 - 5 - 3 = -6.",
            "Tens: 40 - 20 - 70 = -50.",
            "-50 - 6 = -56.",
        ],
        [
            "But let me double-check by grouping the signs.",
            "Added: 42.",
            "Taken away: 25 + 73 = 98.",
            "42 - 98 = -56.",
            "So the answer is -56.",
        ],
    ]
    two = tt.think_episodes([3, 4], random.Random(0), third=0.0)
    assert two[0] == ["Let me work out 3 + 4 from left to right.", "3 + 4 = 7.", "So I get 7."]
    assert two[1][-1] == "So the answer is 7." and len(two) == 2


def test_a_slipped_trace_by_hand():
    """The quick attempt's second partial result is off by a carry; the check by place value works
    from the terms, says the two differ, and a check by signs settles it."""

    class Rigged(random.Random):  # slip drawn (0.0 < slips), at the 2nd partial result, by -10
        def random(self):
            return 0.0

        def randrange(self, n):
            return 1

        def choice(self, seq):
            return seq[-1] if 10 in seq else seq[1]

    eps, values = tt.think_trace([42, -25, -73], Rigged(), third=0.0, slips=0.5)
    assert eps == [
        ["Let me work out 42 - 25 - 73 from left to right.", "42 - 25 = 17.", "17 - 73 = -66."],
        [
            "Wait, let me check it by place value.",
            "Ones: 2 - 5 - 3 = -6.",
            "Tens: 40 - 20 - 70 = -50.",
            "-50 - 6 = -56.",
            "That is not -66: one of the two is wrong.",
        ],
        [
            "But let me double-check by grouping the signs.",
            "Added: 42.",
            "Taken away: 25 + 73 = 98.",
            "42 - 98 = -56.",
            "So the answer is -56.",
        ],
    ]
    assert values == [-66, -56, -56]


def test_slips_off_draws_nothing_more():
    """Without slips a trace draws one number (the third episode), as the first warm start's did:
    its data rebuild byte for byte."""
    for seed in range(50):
        a, b = random.Random(seed), random.Random(seed)
        eps, values = tt.think_trace([17, -4, 250], a, 0.5, 0.0)
        assert len(eps) == (3 if b.random() < 0.5 else 2) and values == [263] * len(eps)
        assert a.random() == b.random()


def test_slipped_traces_are_right_but_for_the_slip():
    rng = random.Random(2)
    slipped = 0
    for _ in range(300):
        terms = [rng.choice((1, -1)) * rng.randrange(0, 10 ** rng.randint(1, 4)) for _ in range(rng.randint(2, 5))]
        eps, values = tt.think_trace(terms, rng, third=0.5, slips=0.5)
        assert len(values) == len(eps) and values[1:] == [sum(terms)] * (len(eps) - 1)
        text = tt.episode_text(eps)
        assert segment_r1(text, group_size=1).episodes == ["\n\n".join(e) for e in eps]
        assert text.endswith(f"So the answer is {sum(terms)}.")
        _check_arithmetic(tt.episode_text(eps[1:]))  # the checks are right
        if values[0] != sum(terms):
            slipped += 1
            assert len(eps) == 3 and abs(values[0] - sum(terms)) in (1, 10)
            assert eps[1][-1] == f"That is not {values[0]}: one of the two is wrong."
            assert not any(x.startswith("Again") for x in eps[2])  # it agrees with the check, not the slip
    assert 110 < slipped < 190


def _check_arithmetic(text: str) -> int:
    """Every 'a ± b ± ... = c' in the text is right; returns how many there were."""
    n = 0
    for lhs, rhs in re.findall(r"(-?\d+(?: [+-] -?\d+)+) = (-?\d+)", text):
        assert sum(tt.parse_chain(lhs)) == int(rhs), (lhs, rhs)
        n += 1
    return n


def test_every_step_of_random_traces_is_right():
    rng = random.Random(1)
    for _ in range(300):
        terms = [rng.choice((1, -1)) * rng.randrange(0, 10 ** rng.randint(1, 4)) for _ in range(rng.randint(2, 5))]
        eps = tt.think_episodes(terms, rng, third=0.7)
        text = tt.episode_text(eps)
        assert _check_arithmetic(text) >= len(terms) - 1
        assert text.endswith(f"So the answer is {sum(terms)}.")
        assert segment_r1(text, group_size=1).episodes == ["\n\n".join(e) for e in eps]


def test_episodes_are_the_r1_segmentation_of_the_trace_in_tokens(smollm2_tok):
    task = get_task("gym", **parse_knobs(KNOBS))
    rng = random.Random(0)
    for p in task.problems(40, seed=3):
        eps = tt.think_episodes(tt.parse_chain(task.entry(p)["metadata"]["expression"]), rng)
        ids = smollm2_tok(tt.episode_text(eps), add_special_tokens=False)["input_ids"]
        assert len(task.episode_ends(ids, smollm2_tok)) == len(eps)


def test_warmstart_think_writes_traces_and_forced_answers(smollm2_dir, smollm2_tok, tmp_path):
    cfg = WarmstartConfig(
        scheme="think", task="gym", knobs=KNOBS, model=str(smollm2_dir), n_problems=24, out=str(tmp_path / "ws")
    )
    s = run_warmstart(cfg)
    rows = [json.loads(x) for x in (tmp_path / "ws" / "data.jsonl").read_text().splitlines()]
    assert s["examples"] == len(rows) and 24 < len(rows) < 48
    task = get_task("gym", **parse_knobs(KNOBS))
    whole = [r for r in rows if r["prompt"].endswith("<think>\n")]
    forced = [r for r in rows if not r["prompt"].endswith("<think>\n")]
    assert len(whole) == 24 and forced
    for r in whole:
        thinking, _, answer = r["completion"].partition("\n</think>\n\n")
        assert answer.startswith("The answer is $\\boxed{")
        assert _check_arithmetic(thinking) >= 1
    for r in forced:
        assert r["prompt"].endswith(task.termination_text.lstrip("\n"))
        assert r["completion"].startswith("Final answer:** $\\boxed{")
        if r["episodes"] == 0:  # right after <think>\n
            assert "<think>\nTime is up." in r["prompt"]
        else:
            assert ".\n\nTime is up." in r["prompt"]
    # a forced example's prompt is what the meta-prover sees after j episodes (Task.forced_ids)
    for r in forced:
        prompt = next(w["prompt"] for w in whole if w["problem_id"] == r["problem_id"])
        thinking = r["prompt"][len(prompt) :].split("Time is up.")[0]
        ids = smollm2_tok(thinking, add_special_tokens=False)["input_ids"]
        p_ids = smollm2_tok(prompt, add_special_tokens=False)["input_ids"]
        assert smollm2_tok.decode(task.forced_ids(smollm2_tok, p_ids, ids)) == r["prompt"]
    # a rerun resumes: nothing is written twice
    assert run_warmstart(cfg)["examples"] == len(rows)


def test_warmstart_think_with_slips_forces_the_value_the_prefix_reached(smollm2_dir, tmp_path):
    cfg = WarmstartConfig(
        scheme="think", task="gym", knobs=KNOBS, model=str(smollm2_dir), n_problems=24, out=str(tmp_path / "ws"),
        slips=1.0, forced_share=1.0,
    )  # fmt: skip
    run_warmstart(cfg)
    rows = [json.loads(x) for x in (tmp_path / "ws" / "data.jsonl").read_text().splitlines()]
    task = get_task("gym", **parse_knobs(KNOBS))
    answers = {p.id: p.answer for p in task.problems(24, seed=11)}
    forced = [r for r in rows if not r["prompt"].endswith("<think>\n")]
    assert len(forced) == 24 and {r["episodes"] for r in forced} == {0, 1, 2}
    for r in forced:
        value = re.search(r"boxed\{(-?\d+)\}", r["completion"]).group(1)
        if r["episodes"] == 1:  # the slipped attempt's own value, the last one its prefix states
            assert value != answers[r["problem_id"]]
            assert r["prompt"].split("Time is up.")[0].rstrip().endswith(f"{value}.")
        else:
            assert value == answers[r["problem_id"]]


def test_warmstart_think_refuses_what_it_cannot_write(smollm2_dir, tmp_path):
    base = dict(scheme="think", model=str(smollm2_dir), n_problems=2)
    with pytest.raises(ValueError, match="use --task gym"):
        run_warmstart(WarmstartConfig(task="tree", out=str(tmp_path / "a"), **base))
    with pytest.raises(ValueError, match="thinking=r1"):
        run_warmstart(WarmstartConfig(task="gym", knobs=["thinking=none"], out=str(tmp_path / "b"), **base))
    with pytest.raises(ValueError, match="episode_group_size=1"):
        run_warmstart(WarmstartConfig(task="gym", out=str(tmp_path / "g"), **base))
    bad = ["dataset=products", "episode_group_size=1"]
    with pytest.raises(ValueError, match="not a chain"):
        run_warmstart(WarmstartConfig(task="gym", knobs=bad, out=str(tmp_path / "c"), **base))
    assert not (tmp_path / "c").exists()  # refused before anything was written: the folder stays free
    with pytest.raises(ValueError, match="forced_share"):
        run_warmstart(WarmstartConfig(task="gym", forced_share=2, out=str(tmp_path / "d"), **base))
