"""The online stop controller of ``mrt eval --stop RULE``: generate a trace a chunk at a time,
look at every new episode boundary as it appears, measure the rule's signal there, and stop
thinking when the rule says so; then force the answer at that boundary (the meta-prover) and
grade it.

Episode boundaries are the task's own (``Task.episode_ends`` on the thinking so far: every end
but the still-open last one), or fixed token chunks (``segmentation="chunk:N"``, the fallback
for models that do not think in tags). Generation runs in chunks of ``chunk_tokens``; a stop at a
boundary inside a chunk discards the tokens after it, which still count as spent.

Signals, measured only at the boundaries a trace reaches (all counted in its tokens):

* ``j`` rules (``j-threshold``, ``stall``) read a J estimate from ``j_source``: ``oracle`` (k
  forced answers graded against the reference: an upper bound, not deployable), ``vote`` (the
  top vote share of k forced answers: no reference) or ``estimator`` (the learned progress
  estimator: one forward pass, no sampled tokens);
* ``confidence`` samples one trial answer and reads exp(its mean token log-prob) (DEER-style);
* ``budget`` caps the thinking at B tokens and answers at the last boundary within it;
  ``natural`` never stops early.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from mrt.act.rules import StopRule, should_stop
from mrt.core.episodes import chunk_ends
from mrt.core.episodes import find_subsequence as _find
from mrt.core.grades import grade_completions
from mrt.samplers.base import SamplingParams


@dataclass
class Trace:
    thinking: list[int] = field(default_factory=list)
    generated: int = 0  # thinking tokens sampled, discarded ones included
    overhead: float = 0.0  # tokens of the signal answers
    boundaries: list[int] = field(default_factory=list)  # thinking tokens at each boundary seen (0 first)
    signals: list[float] = field(default_factory=list)
    ended: bool = False  # thinking ended by itself (natural end) or by the cap
    natural: bool = False
    stop: int | None = None  # thinking tokens where the controller stopped it


def boundary_ends(task, thinking: list[int], tok, segmentation: str) -> list[int]:
    """Episode ends of a thinking stream so far (the last one is where the stream stops now)."""
    if segmentation.startswith("chunk:"):
        return chunk_ends(len(thinking), int(segmentation[6:]))
    return task.episode_ends(thinking, tok) if thinking else []


def _signals(
    sampler,
    task,
    problem,
    prompt_ids,
    traces: list[Trace],
    cuts: list[int],
    rule: StopRule,
    source: str,
    k: int,
    answer_tokens: int,
    temperature: float,
    seed: int,
    estimator=None,
) -> list[float]:
    """The rule's signal at boundary ``cuts[i]`` of ``traces[i]`` (overhead added to the trace)."""
    tok = sampler.tokenizer
    if rule.signal == "j" and source == "estimator":
        from mrt.value_head import score_sequences

        net, etok = estimator
        return score_sequences(net, etok, [prompt_ids + t.thinking[:c] for t, c in zip(traces, cuts)])
    n = 1 if rule.signal == "confidence" else k
    prompts = [task.forced_ids(tok, prompt_ids, t.thinking[:c]) for t, c in zip(traces, cuts)]
    comps = sampler.sample(
        prompts,
        SamplingParams(
            n=n, max_new_tokens=answer_tokens, temperature=temperature, stop=tuple(task.answer_stop_texts), seed=seed
        ),
    )
    out = []
    for t, cs in zip(traces, comps):
        t.overhead += sum(len(c.token_ids) for c in cs)
        if rule.signal == "confidence":
            out.append(math.exp(cs[0].mean_logprob))
            continue
        est = grade_completions(task, problem, cs, ks=())
        if source == "oracle":
            out.append(est.j)
        else:
            votes = [x for x in est.labels if x is not None]
            out.append(max((votes.count(x) for x in set(votes)), default=0) / n)
    return out


def run_controller(
    sampler,
    task,
    problem,
    prompt_ids: list[int],
    n: int,
    rule: StopRule,
    *,
    source: str = "oracle",
    k: int = 4,
    max_new_tokens: int,
    answer_tokens: int,
    chunk_tokens: int = 32,
    segmentation: str = "task",
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    estimator=None,
) -> list[dict]:
    """``n`` traces of one problem under the controller; one dict per trace (see module doc)."""
    tok = sampler.tokenizer
    end_ids = tok.encode(task.think_end_text, add_special_tokens=False) if task.think_end_text else []
    cap = rule.params["tokens"] if rule.name == "budget" else max_new_tokens
    traces = [Trace() for _ in range(n)]
    live = list(range(n))
    step = 0

    def visit(idx: list[int], cuts: list[int]):
        """Boundary ``cuts[i]`` of trace ``idx[i]`` is reached: measure, and maybe stop."""
        nonlocal step
        step += 1
        if rule.signal is None:
            for i, c in zip(idx, cuts):
                traces[i].boundaries.append(c)
            return
        sig = _signals(
            sampler,
            task,
            problem,
            prompt_ids,
            [traces[i] for i in idx],
            cuts,
            rule,
            source,
            k,
            answer_tokens,
            temperature,
            seed + 7919 * step,
            estimator,
        )
        for i, c, s in zip(idx, cuts, sig):
            t = traces[i]
            if t.stop is not None:
                continue
            t.boundaries.append(c)
            t.signals.append(s)
            if should_stop(rule, t.signals):
                t.stop = c

    visit(live, [0] * n)  # before any thinking
    live = [i for i in live if traces[i].stop is None]
    for i in live:
        traces[i].ended = cap <= 0
    live = [i for i in live if not traces[i].ended]
    while live:
        prompts = [prompt_ids + traces[i].thinking for i in live]
        budget_left = [cap - len(traces[i].thinking) for i in live]
        size = max(1, min(chunk_tokens, max(budget_left)))
        comps = sampler.sample(
            prompts,
            SamplingParams(
                n=1, max_new_tokens=size, temperature=temperature, top_p=top_p, seed=seed + 104729 * (step + 1)
            ),
        )
        for i, cs in zip(live, comps):
            t, new = traces[i], list(cs[0].token_ids)[: cap - len(traces[i].thinking)]
            if end_ids and _find(t.thinking[-len(end_ids) :] + new, end_ids) >= 0:  # natural end in this chunk
                at = _find(t.thinking[-len(end_ids) :] + new, end_ids) - len(t.thinking[-len(end_ids) :])
                new, t.ended, t.natural = new[: max(at, 0)], True, True
            elif new and new[-1] == tok.eos_token_id:
                new, t.ended, t.natural = new[:-1], True, not task.think_end_text
            t.generated += len(new)
            t.thinking += new
            t.ended = t.ended or len(t.thinking) >= cap
        # the new boundaries of each live trace (complete episodes only), visited in order
        pending = {}
        for i in live:
            t = traces[i]
            seen = t.boundaries[-1] if t.boundaries else 0
            pending[i] = [e for e in boundary_ends(task, t.thinking, tok, segmentation) if seen < e < len(t.thinking)]
        while any(pending.values()):
            idx = [i for i in live if pending[i]]
            visit(idx, [pending[i].pop(0) for i in idx])
            for i in idx:
                if traces[i].stop is not None:
                    pending[i] = []
        live = [i for i in live if traces[i].stop is None and not traces[i].ended]
    return _answer(sampler, task, problem, prompt_ids, traces, answer_tokens, temperature, seed)


def _answer(sampler, task, problem, prompt_ids, traces: list[Trace], answer_tokens, temperature, seed) -> list[dict]:
    """Force and grade the answer of every trace: at its stop, at the last boundary within the
    cap, or after its natural end (the model answers on its own there)."""
    tok = sampler.tokenizer
    rows, prompts = [], []
    for t in traces:
        if t.stop is not None:
            cut = t.stop
        elif t.natural:
            cut = len(t.thinking)
        else:  # the cap: the last boundary within it
            cut = t.boundaries[-1] if t.boundaries else 0
        prompts.append(task.forced_ids(tok, prompt_ids, t.thinking[:cut], natural_end=t.natural and t.stop is None))
        rows.append(
            {
                "stop_tokens": cut,
                "stopped_early": t.stop is not None,
                "natural_end": t.natural,
                "boundaries": len(t.boundaries),
                "signals": [round(s, 4) for s in t.signals],
                "generated_tokens": t.generated,
                "overhead_tokens": t.overhead,
            }
        )
    comps = sampler.sample(
        prompts,
        SamplingParams(
            n=1,
            max_new_tokens=answer_tokens,
            temperature=temperature,
            stop=tuple(task.answer_stop_texts),
            seed=seed + 3,
        ),
    )
    for row, cs in zip(rows, comps):
        est = grade_completions(task, problem, cs, ks=())
        row.update(answer=est.answers[0], correct=est.grades[0], answer_tokens=len(cs[0].token_ids))
        row["tokens"] = row["generated_tokens"] + row["overhead_tokens"] + row["answer_tokens"]
    return rows
