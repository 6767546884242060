"""Checks that start a vLLM engine, each in its own process (``python tests/samplers/vllm_checks.py NAME
ARGS``, run by tests/samplers/test_vllm.py): an engine changes process-wide settings (torch threads,
torch.distributed), so none is started inside the pytest process. Each prints one JSON line,
``RESULT {...}``, which the test asserts on."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path


def _report(**kw):
    print("RESULT " + json.dumps(kw), flush=True)


def _max_lp_diff(a, b) -> float:
    return max((abs(x - y) for ca, cb in zip(a, b) for x, y in zip(ca[0].logprobs, cb[0].logprobs)), default=0.0)


def parity(
    model: str,
    task_name: str,
    knobs: str,
    n_prompts: int,
    greedy_tokens: int,
    j_traces: int,
    trace_tokens: int,
    answer_tokens: int,
    n_answers: int,
    commands_out: str = "",
):
    """The vLLM and HF samplers on one checkpoint: greedy ids and log-probs, shapes, token
    accounting, per-prompt seeds, and J of every prefix of a few traces from both."""
    from mrt.measure.metaprover import estimate_prefixes
    from mrt.samplers import SamplingParams
    from mrt.samplers.hf import HFSampler
    from mrt.samplers.vllm import VLLMSampler
    from mrt.tasks import get_task, parse_knobs

    task = get_task(task_name, **parse_knobs(knobs.split() if knobs else []))
    from mrt.samplers.errors import SamplerError

    try:  # an engine that cannot start names the setting to change
        VLLMSampler.start(model, max_model_len=100000)
        bad_start = ""
    except SamplerError as e:
        bad_start = str(e)
    v = VLLMSampler.start(model)
    h = HFSampler.from_pretrained(model)
    tok = v.tokenizer
    problems = task.problems(n_prompts, seed=3)
    prompts = [task.prompt_ids(p, tok) for p in problems]
    g = SamplingParams(n=1, max_new_tokens=greedy_tokens, temperature=0)
    gv, gh = v.sample(prompts, g), h.sample(prompts, g)
    same = [a[0].token_ids == b[0].token_ids for a, b in zip(gv, gh)]
    # shapes, stop strings and accounting
    before = v.tokens_generated
    p = SamplingParams(n=3, max_new_tokens=greedy_tokens, temperature=1.0, seed=4, stop=tuple(task.answer_stop_texts))
    out = v.sample(prompts[:2], p)
    shapes = [len(cs) for cs in out]
    counted = v.tokens_generated - before
    summed = sum(len(c.token_ids) for cs in out for c in cs)
    lp_ok = all(len(c.logprobs) == len(c.token_ids) and all(x <= 0 for x in c.logprobs) for cs in out for c in cs)
    stops_cut = all(not any(s in c.text for s in p.stop) for cs in out for c in cs)
    # the same prompt twice in one request: each prompt has its own seed
    twice = v.sample(
        [prompts[0], prompts[0]], SamplingParams(n=4, max_new_tokens=greedy_tokens, temperature=1.0, seed=9)
    )
    independent = [c.token_ids for c in twice[0]] != [c.token_ids for c in twice[1]]
    again = v.sample(
        [prompts[0], prompts[0]], SamplingParams(n=4, max_new_tokens=greedy_tokens, temperature=1.0, seed=9)
    )
    reproducible = [[c.token_ids for c in cs] for cs in twice] == [[c.token_ids for c in cs] for cs in again]
    reproducible = reproducible if v.per_request_seeds else None  # CPU: one generator per engine
    # J of every prefix of j_traces traces (the HF sampler's traces), n_answers answers each from both
    traces = h.sample(prompts[:j_traces], SamplingParams(n=1, max_new_tokens=trace_tokens, seed=2))
    jv, jh = [], []
    for prob, prompt, cs in zip(problems, prompts, traces):
        think, answer = task.split_output(cs[0].token_ids, tok)
        ends = task.episode_ends(think, tok) if think else []
        item = [(think, ends, answer is not None)]
        for sampler, dest in ((v, jv), (h, jh)):
            est = estimate_prefixes(
                sampler, task, prob, prompt, item, n=n_answers, answer_tokens=answer_tokens, seed=7
            )[0]
            dest += [e.j for e in est]
    diffs = [a - b for a, b in zip(jv, jh)]
    mean_diff = sum(diffs) / len(diffs)
    # the standard error of the mean difference: each J from n_answers answers (binomial)
    se = math.sqrt(sum(a * (1 - a) / n_answers + b * (1 - b) / n_answers for a, b in zip(jv, jh))) / len(diffs)
    extra = commands(model, commands_out, v) if commands_out else {}
    _report(
        **extra,
        bad_start=bad_start,
        same=same,
        lp_diff=_max_lp_diff(gv, gh),
        shapes=shapes,
        counted=counted,
        summed=summed,
        lp_ok=lp_ok,
        stops_cut=stops_cut,
        independent=independent,
        reproducible=reproducible,
        n_prefixes=len(diffs),
        j_vllm=sum(jv) / len(jv),
        j_hf=sum(jh) / len(jh),
        mean_diff=mean_diff,
        se=se,
    )


def commands(model: str, out: str, v) -> dict:
    """``mrt eval`` (plain and with a stop rule) and ``mrt diagnose`` on the engine ``v`` (``mrt
    analyze`` is tested through the CLI)."""
    from mrt.measure.evaluate import EvalConfig
    from mrt.measure.linearized import LinearizedConfig, run_linearized
    from mrt.pipelines import evaluate as run_eval
    from mrt.study.diagnose import DiagnoseConfig, run_diagnose

    before = v.tokens_generated
    e = run_eval(
        EvalConfig(model=model, backend="vllm", out=f"{out}/eval", n_problems=4, samples=4, maj_k=[1, 4]), sampler=v
    )
    stop = run_eval(
        EvalConfig(
            model=model,
            backend="vllm",
            out=f"{out}/eval-stop",
            n_problems=3,
            samples=2,
            maj_k=[1],
            stop="stall:eps=0.1,m=1",
            stop_k=2,
        ),
        sampler=v,
    )
    aligned = boundary_aligned(v)
    analyzed = analyze_resumes(model, out, v)
    lin = run_linearized(
        LinearizedConfig(
            model=model,
            backend="vllm",
            task="tree",
            out=f"{out}/lin",
            n_problems=3,
            samples=2,
            episodes=3,
            answers=2,
            batch_problems=2,
            episode_tokens=16,
        ),
        sampler=v,
    )
    d = run_diagnose(
        DiagnoseConfig(
            model=model,
            backend="vllm",
            out=f"{out}/diag",
            n_problems=3,
            rollouts=4,
            mc_problems=1,
            next_segments=2,
            answers_per_prefix=2,
        ),
        sampler=v,
    )
    return {
        "eval": e,
        "eval_stop": stop,
        "diagnose": {k: d[k] for k in d if not isinstance(d[k], (list, dict))},
        "commands_tokens": v.tokens_generated - before,
        "boundary_aligned": aligned,
        "analyze": analyzed,
        "linearized": {k: lin[k] for k in ("n_problems", "revision_rounds", "format_errors", "revisits", "linearized")},
    }


def analyze_resumes(model: str, out: str, v) -> dict:
    """``mrt analyze`` on the engine: 2 problems, then the same run extended to 3 resumes (the
    CLI's ``--backend vllm`` path: tests/samplers/test_vllm.py's slow CLI test)."""
    from mrt.measure.analyze import AnalyzeConfig
    from mrt.pipelines import analyze as run_analysis

    kw = dict(model=model, backend="vllm", out=f"{out}/an", traces_per_problem=2, answers_per_prefix=4, extensions=0)
    run_analysis(AnalyzeConfig(n_problems=2, **kw), sampler=v)
    first = Path(f"{out}/an/traces.jsonl").read_text().splitlines()
    before = v.tokens_generated
    s = run_analysis(AnalyzeConfig(n_problems=3, **kw), sampler=v)
    recs = [json.loads(x) for x in Path(f"{out}/an/traces.jsonl").read_text().splitlines()]
    return {
        "first_kept": [json.dumps(json.loads(x)) for x in first] == [json.dumps(r) for r in recs[: len(first)]],
        "n_first": len(first),
        "n_records": len(recs),
        "resumed_tokens": v.tokens_generated - before,
        "prefixes_ok": all(
            len(r["prefixes"]) == len(r["episodes"]) + 1 and all(len(p["grades"]) == 4 for p in r["prefixes"])
            for r in recs
        ),
        "n_traces": s["n_traces"],
        "accuracy": s["accuracy"],
    }


def boundary_aligned(v) -> dict:
    """The online controller on the engine: every generation call stops at an episode marker
    (kept in the trace), the end of thinking or EOS, and a trace's thinking is its calls' tokens."""
    from mrt.act.controller import run_controller
    from mrt.act.rules import parse_rule
    from mrt.tasks import get_task

    calls = []

    class Recording:
        tokenizer = v.tokenizer

        def sample(self, prompts, params):
            out = v.sample(prompts, params)
            calls.append((params, out))
            return out

    task, tok = get_task("star"), v.tokenizer
    p = task.problems(1, seed=4)[0]
    rows = run_controller(
        Recording(), task, p, task.prompt_ids(p, tok), 3, parse_rule("natural"), max_new_tokens=256, answer_tokens=16
    )
    gen = [out for params, out in calls if "try" in params.stop]
    ends = [tok.convert_ids_to_tokens(cs[0].token_ids[-1:])[0] for out in gen for cs in out]
    return {
        "gen_calls": len(gen),
        "ends": sorted(set(ends)),
        "seeds_distinct": len({params.seed for params, _ in calls}) == len(calls),
        "generated_is_thinking_plus_end": all(
            r["generated_tokens"] == r["stop_tokens"] + 1 for r in rows if r["natural_end"]
        ),
        "boundaries": [r["boundary_tokens"] for r in rows],
    }


def train_sync(algo: str, out: str):
    """A few MRT steps on TRL's colocated engine: the engine follows the policy's weights exactly,
    every MRT sample comes from it, and its J estimates agree with transformers' on the trained
    weights."""
    from pathlib import Path

    from mrt.samplers.base import SamplingParams
    from mrt.samplers.hf import HFSampler
    from mrt.samplers.vllm import VLLMSampler
    from mrt.tasks import get_task
    from mrt.train import run as R
    from mrt.train.config import load_config

    cfg = load_config(
        None,
        dict(
            algo=algo,
            out=out,
            max_steps=2,
            prompts_per_step=2,
            num_generations=4,
            mc_answers=2,
            train_problems=32,
            save_every=2,
            logging_steps=1,
            report_to="none",
            eval_problems=0,
            threads=2,
            learning_rate=1e-3,
            vllm_mode="colocate",
        ),
    )
    task = get_task("star")
    _, model, tok = R._load(cfg)
    trainer = R._build_trainer(cfg, task, model, tok, Path(out))
    calls = {"hf": 0, "engine_tokens": 0}
    real_hf_sample = HFSampler.sample

    def counting_hf(self, *a, **kw):  # the HF sampler must not be used for MRT's samples
        calls["hf"] += 1
        return real_hf_sample(self, *a, **kw)

    HFSampler.sample = counting_hf
    real_vllm = trainer._sample_vllm

    def counting_vllm(*a, **kw):
        comps, n = real_vllm(*a, **kw)
        calls["engine_tokens"] += sum(len(c.token_ids) for cs in comps for c in cs)
        return comps, n

    trainer._sample_vllm = counting_vllm
    probs = task.problems(4, seed=5)
    prompts = [task.prompt_ids(p, tok) for p in probs]
    g = SamplingParams(n=1, max_new_tokens=40, temperature=0)
    trainer._sync_engine()
    before = VLLMSampler(trainer.vllm_generation.llm, tok).sample(prompts, g)
    trainer.train()
    hf_calls_in_training = calls["hf"]
    engine_tokens, extra_tokens, tokens_sampled = calls["engine_tokens"], trainer.extra_tokens, trainer.tokens_sampled
    HFSampler.sample = real_hf_sample
    trainer._sync_engine()
    policy = trainer.accelerator.unwrap_model(trainer.model)
    gv = VLLMSampler(trainer.vllm_generation.llm, tok).sample(prompts, g)
    gh = HFSampler(policy, tok).sample(prompts, g)
    # J on the trained weights from both samplers (mrt-dense's own estimator, 32 answers a prefix)
    inputs = [
        {"prompt": task.render(p, tok), "problem_id": p.id, "answer": p.answer}
        for p in probs[:2]
        for _ in range(trainer.num_generations)
    ]
    rollouts = [
        c.token_ids
        for cs in HFSampler(policy, tok).sample(
            [task.prompt_ids(p, tok) for p in probs[:2]],
            SamplingParams(n=trainer.num_generations, max_new_tokens=64, seed=3),
        )
        for c in cs
    ]
    trainer.mrt_config.mc_answers = 32
    _, jv = trainer.j_curves(inputs, rollouts)
    trainer.use_vllm = False
    _, jh = trainer.j_curves(inputs, rollouts)
    flat_v = [x for c in jv for x in c]
    flat_h = [x for c in jh for x in c]
    se = math.sqrt(sum(a * (1 - a) / 32 + b * (1 - b) / 32 for a, b in zip(flat_v, flat_h))) / len(flat_v)
    _report(
        steps=trainer.state.global_step,
        hf_calls_in_training=hf_calls_in_training,
        engine_tokens=engine_tokens,
        extra_tokens=extra_tokens,
        tokens_sampled=tokens_sampled,
        same_after=[a[0].token_ids == b[0].token_ids for a, b in zip(gv, gh)],
        lp_diff_after=_max_lp_diff(gv, gh),
        moved=_max_lp_diff(before, gv),
        j_vllm=sum(flat_v) / len(flat_v),
        j_hf=sum(flat_h) / len(flat_h),
        se=se,
        n_prefixes=len(flat_v),
    )


if __name__ == "__main__":
    name, args = sys.argv[1], sys.argv[2:]
    if name == "parity":
        parity(args[0], args[1], args[2], *map(int, args[3:9]), *args[9:10])
    elif name == "train_sync":
        train_sync(args[0], args[1])
    else:
        raise SystemExit(f"unknown check {name!r}")
