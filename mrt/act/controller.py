"""The online stop controller of ``mrt eval --stop RULE``: generate each trace up to its next
episode boundary, measure the rule's signal there, stop thinking when the rule says so and
continue otherwise; then answer at the stop (the meta-prover) and grade.

Boundary-aligned generation. Episode boundaries are the task's own (``Task.episode_ends`` on the
thinking so far) and every one of them is announced by a marker: the didactic world's ``try`` /
``check`` tokens, R1's marker paragraphs (``\\n\\nWait``, ...). The controller samples with those
markers (and the end of thinking) as stop strings, so each sampler call ends where a boundary can
have appeared; the marker stays in the trace, so the model's stream is what it would have
written in one go. A boundary is decided as soon as it is revealed: thinking tokens generated at
a stop are the thinking up to the boundary plus its marker (one token in the didactic world).
With ``segmentation="chunk:N"`` (the fallback for models without markers: ``thinking=none``, or a
task whose markers are not known) each call generates exactly up to the next N-token boundary.
:func:`reveal_offsets` says, for a recorded trace, where each boundary is revealed: the replay
(:mod:`mrt.act.tradeoff`) charges exactly that.

Seeds: every sampler call of a problem gets its own seed, :func:`call_seed` of the problem's
seed, the call's kind (``gen``, ``signal``, ``answer``) and its index: distinct and reproducible.

Signals, measured only at the boundaries a trace reaches before its end (all counted in its
tokens); the natural end (or the token cap) is never measured, nothing is left to decide there:

* ``j`` rules (``j-threshold``, ``stall``) read a J estimate from ``j_source``: ``oracle`` (k
  forced answers graded against the reference: an upper bound, not deployable), ``vote`` (the
  top vote share of k forced answers: no reference) or ``estimator`` (the learned progress
  estimator: one forward pass, no sampled tokens);
* ``confidence`` samples one trial answer and reads exp(its mean token log-prob) (DEER-style);
* ``budget`` caps the thinking at B tokens and answers at the last boundary within it;
  ``natural`` never stops early.

The answer: at an early stop, with ``reuse_signal_answer`` (the default) and a rule that sampled
answers there, the answer is one of them and costs nothing more: the majority of the k answers
(``oracle``, ``vote``; equivalent answers vote together, a tie goes to the earliest) or the
trial answer (``confidence``, as DEER does). Otherwise (the estimator, no parsed answer among
them, the natural end, the cap) a fresh answer is forced and counted.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass, field

from mrt.act.rules import StopRule, should_stop
from mrt.core.episodes import R1_MARKERS, chunk_ends
from mrt.core.episodes import find_subsequence as _find
from mrt.core.grades import grade_completions
from mrt.core.trace import as_records
from mrt.samplers.base import SamplingParams

log = logging.getLogger(__name__)


def call_seed(seed: int, *parts) -> int:
    """The seed of one sampler call: a hash of the problem's seed and the call's kind and index
    (30 bits, so that backends that add a per-prompt offset stay within 31 bits)."""
    digest = hashlib.blake2b(repr((int(seed), *parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % (1 << 30)


def boundary_stop_texts(task, segmentation: str = "task") -> tuple[str, ...]:
    """Stop strings that end a generation call where an episode boundary may appear: the task's
    ``episode_stop_texts`` if it has them, the didactic world's markers, R1's marker paragraphs
    for the R1 segmentation; () for token chunks or a task whose markers are not known."""
    if segmentation.startswith("chunk:") or not task.think_end_text:
        return ()
    own = getattr(task, "episode_stop_texts", None)
    if own:
        return tuple(own)
    from mrt.tasks.base import Task
    from mrt.tasks.star import EPISODE_MARKERS, StarTask

    if isinstance(task, StarTask):
        return tuple(EPISODE_MARKERS)
    if type(task).episode_ends is Task.episode_ends:  # the R1 segmentation: a boundary opens a marker paragraph
        return tuple("\n\n" + m for m in R1_MARKERS)
    return ()


def boundary_ends(task, thinking: list[int], tok, segmentation: str) -> list[int]:
    """Episode ends of a thinking stream so far (the last one is where the stream stops now)."""
    if segmentation.startswith("chunk:"):
        return chunk_ends(len(thinking), int(segmentation[6:]))
    return task.episode_ends(thinking, tok) if thinking else []


def _end_ids(task, tok) -> list[int]:
    return tok.encode(task.think_end_text, add_special_tokens=False) if task.think_end_text else []


def _hit(tok, ids: list[int], stops: tuple[str, ...]) -> bool:
    """The HF sampler's stop-string test on the tokens of one call so far."""
    tail = tok.decode(ids[-16:], skip_special_tokens=False)
    return any(s in tail for s in stops)


def reveal_offsets(task, tok, thinking: list[int], ends: list[int], closed: bool, segmentation: str) -> list[int]:
    """Thinking tokens the controller has generated when it decides at each boundary of a
    recorded trace: ``[0] + ends`` (J(empty) first, the last end is the trace's end).

    The controller's calls are simulated on the recorded tokens: each call ends at the first
    stop string (a marker or the end of thinking) or at the next chunk end; a boundary is
    decided at the end of the first call after which it is a closed episode. The last entry is
    the whole thinking plus the end-of-thinking tokens the model wrote (``closed``)."""
    end_extra = len(_end_ids(task, tok)) if task.think_end_text else 1  # </think>, or EOS without tags
    total = len(thinking) + (end_extra if closed else 0)
    if not ends:  # no thinking: boundary 0 is also the end (the controller pays the end there unless it stops)
        return [total]
    out = [0]
    if segmentation.startswith("chunk:"):
        return out + list(ends[:-1]) + [total]
    stops = boundary_stop_texts(task, segmentation)
    calls, start = [], 0
    for i in range(1, len(thinking) + 1):
        if stops and _hit(tok, thinking[start:i], stops):
            calls.append(i)
            start = i
    pos = 0
    for e in ends[:-1]:
        while pos < len(calls) and not (
            e < calls[pos] and e in boundary_ends(task, thinking[: calls[pos]], tok, segmentation)
        ):
            pos += 1
        out.append(calls[pos] if pos < len(calls) else total)
    return out + [total]


@dataclass
class Trace:
    thinking: list[int] = field(default_factory=list)
    generated: int = 0  # thinking tokens sampled (a stop's marker and the end-of-thinking tokens included)
    overhead: float = 0.0  # tokens of the signal answers
    processed: int = 0  # token positions the learned estimator ran forward passes over (computed, not sampled)
    boundaries: list[int] = field(default_factory=list)  # thinking tokens at each boundary seen (0 first)
    signals: list[float] = field(default_factory=list)
    reusable: list = field(default_factory=list)  # per boundary: (answer, correct) the stop could answer with
    observed: list[dict] = field(default_factory=list)  # observe mode: everything measured per boundary
    ended: bool = False  # thinking ended by itself (natural end) or by the cap
    natural: bool = False
    stop: int | None = None  # thinking tokens where the controller stopped it


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
    top_p: float,
    seed: int,
    estimator=None,
) -> list[tuple[float, tuple | None, dict]]:
    """Per trace: the rule's signal at boundary ``cuts[i]`` of ``traces[i]`` (overhead added to
    the trace), the answer a stop there could reuse, and what was measured (observe mode)."""
    tok = sampler.tokenizer
    if rule.signal == "j" and source == "estimator":
        from mrt.value_head import score_sequences

        net, etok = estimator
        seqs = [prompt_ids + t.thinking[:c] for t, c in zip(traces, cuts)]
        scores = score_sequences(net, etok, seqs)
        for t, q in zip(traces, seqs):
            t.processed += len(q)  # one forward pass over the prompt and the prefix: no sampled token
        return [(s, None, {"signal": s, "signal_tokens": 0}) for s in scores]
    n = 1 if rule.signal == "confidence" else k
    prompts = [task.forced_ids(tok, prompt_ids, t.thinking[:c]) for t, c in zip(traces, cuts)]
    comps = sampler.sample(
        prompts,
        SamplingParams(
            n=n,
            max_new_tokens=answer_tokens,
            temperature=temperature,
            top_p=top_p,
            stop=tuple(task.answer_stop_texts),
            seed=seed,
        ),
    )
    out = []
    for t, cs in zip(traces, comps):
        spent = sum(len(c.token_ids) for c in cs)
        t.overhead += spent
        est = grade_completions(task, problem, cs, ks=())
        labels = est.labels or est.answers
        votes = [x for x in labels if x is not None]
        top = max((votes.count(x) for x in set(votes)), default=0)
        if rule.signal == "confidence":
            sig = math.exp(cs[0].mean_logprob)
            reuse = (est.answers[0], est.grades[0]) if est.answers[0] is not None else None
        else:
            sig = est.j if source == "oracle" else top / n
            first = next((i for i, x in enumerate(labels) if x is not None and votes.count(x) == top), None)
            reuse = None if first is None else (est.answers[first], est.grades[first])
        seen = {"signal": sig, "j": est.j, "vote": top / n, "signal_tokens": spent}
        out.append((sig, reuse, seen))
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
    reuse_signal_answer: bool = True,
    observe: bool = False,
) -> list[dict]:
    """``n`` traces of one problem under the controller; one dict per trace (see module doc).

    ``observe``: measure the rule's signal at every boundary and never stop; each trace's dict
    then holds ``observed``, per boundary what was measured and the fresh answer a stop there
    would get (sampled with the seed the answer call uses): what the replay needs to say, trace
    by trace, where the rule stops and what that costs (:func:`mrt.act.tradeoff.observed_bounds`).
    """
    tok = sampler.tokenizer
    end_ids = _end_ids(task, tok)
    stops = boundary_stop_texts(task, segmentation)
    chunk = int(segmentation[6:]) if segmentation.startswith("chunk:") else 0
    if not chunk and not stops:
        chunk = chunk_tokens  # no marker known: generate a chunk at a time, look at its boundaries
    cap = rule.params["tokens"] if rule.name == "budget" else max_new_tokens
    traces = [Trace() for _ in range(n)]
    calls = {"gen": 0, "signal": 0}

    def visit(idx: list[int], cuts: list[int]):
        """Boundary ``cuts[i]`` of trace ``idx[i]`` is reached: measure, and maybe stop."""
        if rule.signal is None:
            for i, c in zip(idx, cuts):
                traces[i].boundaries.append(c)
                traces[i].observed.append({"tokens": c, "generated": traces[i].generated})
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
            top_p,
            call_seed(seed, "signal", calls["signal"]),
            estimator,
        )
        calls["signal"] += 1
        for i, c, (s, reuse, seen) in zip(idx, cuts, sig):
            t = traces[i]
            t.boundaries.append(c)
            t.signals.append(s)
            t.reusable.append(reuse)
            t.observed.append({"tokens": c, "generated": t.generated, **seen, "reuse": reuse})
            if not observe and should_stop(rule, t.signals):
                t.stop = c

    visit(list(range(n)), [0] * n)  # before any thinking
    for t in traces:
        t.ended = cap <= 0
    live = [i for i in range(n) if traces[i].stop is None and not traces[i].ended]
    while live:
        sizes = [cap - len(traces[i].thinking) for i in live]
        if chunk:
            sizes = [min(s, chunk - len(traces[i].thinking) % chunk) for i, s in zip(live, sizes)]
        comps = sampler.sample(
            [prompt_ids + traces[i].thinking for i in live],
            SamplingParams(
                n=1,
                max_new_tokens=max(1, max(sizes)),
                temperature=temperature,
                top_p=top_p,
                stop=stops + ((task.think_end_text,) if task.think_end_text else ()),
                seed=call_seed(seed, "gen", calls["gen"]),
            ),
        )
        calls["gen"] += 1
        for i, size, cs in zip(live, sizes, comps):
            t, new = traces[i], list(cs[0].token_ids)[:size]
            tail = t.thinking[-len(end_ids) :] if end_ids else []
            at = _find(tail + new, end_ids) - len(tail) if end_ids else -1
            if end_ids and at >= -len(tail):  # the natural end in this call
                t.generated += max(at, 0) + len(end_ids)
                new, t.ended, t.natural = new[: max(at, 0)], True, True
            elif new and new[-1] == tok.eos_token_id:  # EOS: the natural end of a model without tags
                t.generated += len(new)
                new, t.ended, t.natural = new[:-1], True, not task.think_end_text
            else:
                t.generated += len(new)
            t.thinking += new
            t.ended = t.ended or len(t.thinking) >= cap
        # the new boundaries of each live trace (closed episodes only), visited in order
        pending = {}
        for i in live:
            t = traces[i]
            seen = t.boundaries[-1] if t.boundaries else 0
            ends = boundary_ends(task, t.thinking, tok, segmentation if not chunk else f"chunk:{chunk}")
            last = len(t.thinking) + (1 if chunk and not t.ended else 0)  # a chunk end is closed once reached
            pending[i] = [e for e in ends if seen < e < last]
        while any(pending.values()):
            idx = [i for i in live if pending[i]]
            visit(idx, [pending[i].pop(0) for i in idx])
            for i in idx:
                if traces[i].stop is not None:
                    pending[i] = []
        live = [i for i in live if traces[i].stop is None and not traces[i].ended]
    rows = _answer(
        sampler, task, problem, prompt_ids, traces, rule, answer_tokens, temperature, top_p, seed, reuse_signal_answer
    )
    if observe:
        _observe_answers(sampler, task, problem, prompt_ids, traces, rows, answer_tokens, temperature, top_p, seed)
    return rows


def _final_cut(t: Trace, rule: StopRule) -> tuple[int, bool]:
    """(thinking tokens, natural end?) where trace ``t`` answers."""
    if t.stop is not None:
        return t.stop, False
    if t.natural:
        return len(t.thinking), True
    if rule.name == "budget":  # the budget: the last boundary within it
        return (t.boundaries[-1] if t.boundaries else 0), False
    return len(t.thinking), False  # the token cap: answer after everything (as mrt analyze forces it)


def _answer_params(task, answer_tokens, temperature, top_p, seed) -> SamplingParams:
    return SamplingParams(
        n=1,
        max_new_tokens=answer_tokens,
        temperature=temperature,
        top_p=top_p,
        stop=tuple(task.answer_stop_texts),
        seed=call_seed(seed, "answer"),
    )


def _answer(
    sampler, task, problem, prompt_ids, traces: list[Trace], rule, answer_tokens, temperature, top_p, seed, reuse
) -> list[dict]:
    """Answer and grade every trace: a reused signal answer at an early stop, or a fresh
    answer forced at its stop, at the cap, or after its natural end."""
    tok = sampler.tokenizer
    rows, prompts, fresh = [], [], []
    for t in traces:
        cut, natural = _final_cut(t, rule)
        row = {
            "stop_tokens": cut,
            "stopped_early": t.stop is not None,
            "natural_end": t.natural,
            "boundaries": len(t.boundaries),
            "boundary_tokens": list(t.boundaries),
            "signals": [round(s, 4) for s in t.signals],
            "generated_tokens": t.generated,
            "overhead_tokens": t.overhead,
            "estimator_tokens_processed": t.processed,
        }
        reused = t.reusable[-1] if reuse and t.stop is not None and t.reusable else None
        if reused is not None:
            row.update(answer=reused[0], correct=bool(reused[1]), answer_tokens=0, answer_reused=True)
        else:
            row["answer_reused"] = False
            fresh.append(row)
            prompts.append(task.forced_ids(tok, prompt_ids, t.thinking[:cut], natural_end=natural))
        rows.append(row)
    if prompts:
        comps = sampler.sample(prompts, _answer_params(task, answer_tokens, temperature, top_p, seed))
        for row, cs in zip(fresh, comps):
            est = grade_completions(task, problem, cs, ks=())
            row.update(answer=est.answers[0], correct=est.grades[0], answer_tokens=len(cs[0].token_ids))
    for row in rows:
        row["tokens"] = row["generated_tokens"] + row["overhead_tokens"] + row["answer_tokens"]
    return rows


def _observe_answers(sampler, task, problem, prompt_ids, traces, rows, answer_tokens, temperature, top_p, seed):
    """Observe mode: the fresh answer at every boundary and at the end, each sampled alone with
    the answer call's seed (what a single-trace run that answered there would get)."""
    tok = sampler.tokenizer
    params = _answer_params(task, answer_tokens, temperature, top_p, seed)
    for t, row in zip(traces, rows):
        points = [dict(o) for o in t.observed]
        points.append({"tokens": len(t.thinking), "generated": t.generated, "end": True, "natural": t.natural})
        for p in points:
            prompt = task.forced_ids(tok, prompt_ids, t.thinking[: p["tokens"]], natural_end=bool(p.get("natural")))
            cs = sampler.sample([prompt], params)[0]
            est = grade_completions(task, problem, cs, ks=())
            p.update(answer=est.answers[0], correct=bool(est.grades[0]), answer_tokens=len(cs[0].token_ids))
        row["observed"] = points
        row["thinking_ids"] = list(t.thinking)


def analysis_offsets(directory, records: list[dict]) -> dict:
    """{(problem_id, trace): :func:`reveal_offsets`} for the traces of an ``mrt analyze``
    directory: its task, knobs, segmentation and tokenizer come from its ``run.json``."""
    import json
    from pathlib import Path

    from transformers import AutoTokenizer

    from mrt.tasks import get_task
    from mrt.tasks.tiny import shipped_model_path

    run = json.loads((Path(directory) / "run.json").read_text())
    knobs = run.get("knobs") or {}
    task = get_task(run.get("task", "star"), **(knobs if isinstance(knobs, dict) else {}))
    tok = AutoTokenizer.from_pretrained(run.get("tokenizer") or run.get("model") or str(shipped_model_path()))
    seg = run.get("segmentation", "task")
    out = {}
    for r in as_records(records):
        ends = [p["tokens"] for p in r.prefixes[1:]]
        out[(r.problem_id, r.trace)] = reveal_offsets(task, tok, r.thinking_ids, ends, r.closed_thinking, seg)
    return out
