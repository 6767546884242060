"""The online controller against the replay, on the shipped model with the real HF sampler:
boundary-aligned generation, one distinct seed per sampler call, and the replay charging exactly
what the controller pays (same traces, same seeds)."""

import json

import pytest

from mrt.act.controller import boundary_ends, boundary_stop_texts, call_seed, reveal_offsets, run_controller
from mrt.act.rules import parse_rule
from mrt.act.tradeoff import Boundary, observed_bounds, replay
from mrt.runloop import problem_seed


class Recording:
    """The real sampler, with every call's seed, prompts and completions written down."""

    def __init__(self, sampler):
        self.sampler, self.tokenizer, self.calls = sampler, sampler.tokenizer, []

    def sample(self, prompts, params):
        out = self.sampler.sample(prompts, params)
        self.calls.append((params, prompts, out))
        return out


@pytest.fixture(scope="module")
def star():
    from mrt.samplers.hf import HFSampler
    from mrt.tasks import get_task
    from mrt.tasks.tiny import shipped_model_path

    return HFSampler.from_pretrained(str(shipped_model_path())), get_task("star")


def _run(sampler, task, problem, index, rule, n=1, **kw):
    prompt = task.prompt_ids(problem, sampler.tokenizer)
    return run_controller(
        sampler,
        task,
        problem,
        prompt,
        n,
        parse_rule(rule),
        max_new_tokens=256,
        answer_tokens=16,
        seed=problem_seed(3, index),
        **kw,
    )


def test_call_seeds_distinct_and_reproducible():
    assert call_seed(1, "gen", 0) != call_seed(1, "gen", 1) != call_seed(1, "signal", 0)
    assert call_seed(1, "gen", 0) == call_seed(1, "gen", 0) < 2**30
    # consecutive problems' seeds (problem_seed steps by 7919) never line up with another call's
    seeds = {call_seed(problem_seed(0, i), kind, c) for i in range(50) for kind in ("gen", "signal") for c in range(40)}
    assert len(seeds) == 50 * 2 * 40


def test_generation_stops_at_boundaries_with_one_seed_per_call(star):
    sampler, task = star
    rec = Recording(sampler)
    tok = sampler.tokenizer
    markers = set(boundary_stop_texts(task))
    assert markers == {"try", "check"}
    problem = task.problems(2, seed=7)[1]
    rows = _run(rec, task, problem, 1, "j-threshold:tau=1", n=3, source="oracle", k=2)
    seeds = [p.seed for p, _, _ in rec.calls]
    assert len(seeds) == len(set(seeds)) > 3  # no two calls of a problem's traces share a seed
    gen = [(p, out) for p, _, out in rec.calls if "try" in p.stop]
    assert gen and all(p.stop == ("try", "check", "</think>") for p, _ in gen)
    for _, out in gen:  # each call ends at a marker (kept in the trace), the end of thinking, or EOS
        for cs in out:
            last = tok.convert_ids_to_tokens(cs[0].token_ids[-1:])[0]
            assert last in ("try", "check", "</think>", "<eos>")
    for r in rows:
        # thinking generated = the whole thinking plus its </think> (tau = 1: no early stop here)
        assert r["natural_end"] and not r["stopped_early"] and r["generated_tokens"] == r["stop_tokens"] + 1
        assert r["boundaries"] == len(r["boundary_tokens"]) >= 1 and r["boundary_tokens"][0] == 0
    # tau = 0 stops every trace at boundary 0 and answers with the majority of its signal answers
    stopped = _run(sampler, task, problem, 1, "j-threshold:tau=0", n=3, source="oracle", k=2)
    assert all(r["stopped_early"] and r["answer_reused"] and r["answer_tokens"] == 0 for r in stopped)
    # the same seed gives the same traces
    again = _run(sampler, task, problem, 1, "j-threshold:tau=1", n=3, source="oracle", k=2)
    assert [r["tokens"] for r in again] == [r["tokens"] for r in rows]


def test_replay_charges_what_the_controller_pays(star):
    """Observe a trace (signals and a fresh answer at every boundary, never stopping); the replay
    on those observations says where each rule stops and what it costs; the controller run with
    the rule on the same problem and seed stops there and pays exactly that."""
    sampler, task = star
    tok = sampler.tokenizer
    problems = task.problems(3, seed=9)
    checked = {"early": 0, "reused": 0}
    for observe_rule, rules in (
        (
            "j-threshold:tau=1",
            [
                ("j-threshold:tau=0.5", "oracle"),
                ("j-threshold:tau=1", "vote"),
                ("stall:eps=0,m=1", "oracle"),
            ],
        ),
        ("confidence:tau=1", [("confidence:tau=0.8", "none")]),
    ):
        for i, p in enumerate(problems):
            obs = _run(sampler, task, p, i, observe_rule, source="oracle", k=2, observe=True)[0]
            bounds = observed_bounds(obs)
            # the replay's own offsets, computed from the recorded tokens, are the ones observed
            thinking = obs["thinking_ids"]
            ends = boundary_ends(task, thinking, tok, "task")
            assert [b.generated for b in bounds] == reveal_offsets(task, tok, thinking, ends, True, "task")
            for n_rule, (rule, src) in enumerate(rules):
                for reuse in (True, False) if n_rule == 0 else (True,):
                    want = replay(bounds, parse_rule(rule), src, k=2, reuse=reuse)
                    got = _run(
                        sampler,
                        task,
                        p,
                        i,
                        rule,
                        source=src if src != "none" else "oracle",
                        k=2,
                        reuse_signal_answer=reuse,
                    )[0]
                    assert got["stop_tokens"] == want["thinking"], (rule, i)
                    assert got["generated_tokens"] == want["generated"]
                    assert got["overhead_tokens"] == want["overhead"]
                    assert got["answer_tokens"] == want["answer_tokens"] and got["answer_reused"] == want["reused"]
                    assert got["tokens"] == want["tokens"] and float(got["correct"]) == want["acc"]
                    checked["early"] += got["stopped_early"]
                    checked["reused"] += got["answer_reused"]
    assert checked["early"] > 0 and checked["reused"] > 0  # the comparison covered early stops and reused answers


def test_replay_hand_computed_overheads():
    # boundaries at 0, 5, 11 thinking tokens; the last is the natural end (never measured)
    def b(tokens, gen, acc, j, end=False, majority=None):
        return Boundary(tokens, acc, 4.0, j, j, j, generated=gen, end=end, majority=majority, trial=majority)

    bounds = [b(0, 0, 0.0, 0.0, majority=0.0), b(5, 6, 0.5, 0.5, majority=1.0), b(11, 12, 1.0, 1.0, end=True)]
    # never fires before the end: signals at boundaries 0 and 1 only (2 x 2 answers x 4 tokens),
    # the whole thinking and its </think> (12), a fresh answer at the natural end (4)
    r = replay(bounds, parse_rule("j-threshold:tau=0.9"), "oracle", k=2)
    assert (r["stop"], r["overhead"], r["generated"], r["answer_tokens"], r["tokens"]) == (2, 16.0, 12.0, 4.0, 32.0)
    # fires at boundary 1: 6 thinking tokens generated (the marker that revealed it), the majority answer reused
    r = replay(bounds, parse_rule("j-threshold:tau=0.5"), "oracle", k=2)
    assert (r["stop"], r["generated"], r["overhead"], r["acc"], r["reused"], r["tokens"]) == (
        1,
        6.0,
        16.0,
        1.0,
        True,
        22.0,
    )
    r = replay(bounds, parse_rule("j-threshold:tau=0.5"), "oracle", k=2, reuse=False)
    assert (r["acc"], r["answer_tokens"], r["tokens"]) == (0.5, 4.0, 26.0)
    # the natural end costs no signal; the estimator costs none anywhere
    assert replay(bounds, parse_rule("natural"), "none", k=2)["tokens"] == 16.0
    # the budget curve is idealised: charged to the boundary, not to the marker after it
    assert replay(bounds, parse_rule("budget:tokens=7"), "none", k=2)["tokens"] == 5.0 + 4.0


def test_eval_stop_defaults_to_the_estimators_sampling(tmp_path, caplog):
    from mrt.measure.evaluate import EvalConfig, resolve_sampling

    est = tmp_path / "est"
    est.mkdir()
    (est / "calibration.json").write_text(json.dumps({"sampling": {"temperature": 1.0, "top_p": 1.0}}))
    cfg = EvalConfig(stop="j-threshold:tau=0.5", j_source="estimator", estimator=str(est))
    resolve_sampling(cfg)
    assert (cfg.temperature, cfg.top_p) == (1.0, 1.0)
    plain = EvalConfig()
    resolve_sampling(plain)
    assert (plain.temperature, plain.top_p) == (0.6, 0.95)
    given = EvalConfig(stop="j-threshold:tau=0.5", j_source="estimator", estimator=str(est), temperature=0.6)
    with caplog.at_level("WARNING"):
        resolve_sampling(given)
    assert given.temperature == 0.6 and given.top_p == 1.0
    assert "differs from the temperature the estimator's traces were sampled at (1.0)" in caplog.text
