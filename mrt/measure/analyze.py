"""``mrt analyze``: sample traces, split them into episodes, estimate J after every prefix, and
report progress, regret, maj@k / pass@k, accuracy vs tokens and budget extrapolation.

Output (``OUT``): ``traces.jsonl`` (one line per trace, written a problem at a time),
``run.json`` (the settings; a rerun with the same settings resumes), ``summary.json``,
``plots/*.png`` and ``report.html``. One process writes a directory at a time (a lock), every
file but the appended records is written whole (temporary file, rename), and a torn record line
is dropped and its problem redone (docs/reliability.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from mrt.config import arg
from mrt.core import metrics
from mrt.core.episodes import chunk_ends
from mrt.core.figures import REGRET_AXES, aggregate
from mrt.core.grades import VoteRule
from mrt.core.trace import TraceRecord
from mrt.measure.metaprover import estimate_groups
from mrt.rundir import one_writer, write_json
from mrt.runloop import ProblemLoop, Share, claim, problem_seed, resolve_window, shard_summary, sum_faults
from mrt.runloop.window import WINDOW_HELP, note_window
from mrt.samplers import ENGINE_FIELDS, SamplerArgs, sampler_from
from mrt.samplers.base import SamplingParams

log = logging.getLogger(__name__)


@dataclass
class AnalyzeConfig(SamplerArgs):
    model: str = arg("", "model directory or hub id (default: the shipped didactic base model)")
    task: str = arg("star", "task name")
    knobs: list[str] = arg([], "task knobs as name=value, e.g. arms=2-5 arm_len=3")
    out: str = arg("runs/analyze", "output directory")
    n_problems: int = arg(64, "problems to analyse")
    problem_seed: int = arg(0, "seed of the problem set (the base model was pretrained on other seeds)")
    traces_per_problem: int = arg(4, "traces sampled per problem")
    answers_per_prefix: int = arg(8, "forced answers sampled per prefix to estimate J")
    max_new_tokens: int = arg(0, "token cap of a trace (0: the task's default)")
    answer_tokens: int = arg(0, "token cap of a forced answer (0: the task's default)")
    temperature: float = arg(1.0, "sampling temperature of traces and answers")
    top_p: float = arg(1.0, "nucleus sampling of traces and answers")
    budgets: list[int] = arg([], "token budgets C for normalised regret (default: the task's)")
    maj_k: list[int] = arg([1, 2, 4, 8], "k values for maj@k and pass@k")
    extensions: int = arg(4, "budget-forcing extensions past the natural end of thinking (0: off)")
    extension_tokens: int = arg(0, "token cap of each budget-forcing extension (0: the task's default)")
    seed: int = arg(0, "sampling seed")
    window: int = arg(0, WINDOW_HELP)
    traces: str = arg(
        "",
        "JSONL of traces made elsewhere (fields: output, answer, problem or prompt, "
        "optional problem_id): analyse them instead of sampling new ones",
    )
    segmentation: str = arg("task", "episode splitter: 'task' (the task's own) or 'chunk:N' (N-token chunks)")
    termination_text: str = arg("", "text appended to a prefix to force an answer (default: the task's)")
    regret_axis: str = arg(
        "thinking",
        "x-axis of normalized_regret: 'thinking' (thinking tokens, curve from "
        "(0, J(empty))) or 'authors' (their notebook's input + mean answer tokens, "
        "curve from (0, 0)); both are always in summary.json's regret_by_axis",
    )
    vote_tie: str = arg(
        "expected", "maj@k tie that includes the correct answer: 'expected' (1/m of m tied) or 'authors' (0.5)"
    )
    vote_weights: str = arg("none", "maj@k votes: 'none' (one each) or 'logprob' (the authors' 2^mean log-prob)")


def _episode_ends(cfg: AnalyzeConfig, task, thinking: list[int], tok) -> list[int]:
    if cfg.segmentation == "task":
        return task.episode_ends(thinking, tok)
    if cfg.segmentation.startswith("chunk:") and cfg.segmentation[6:].isdigit():
        return chunk_ends(len(thinking), int(cfg.segmentation[6:]))
    raise ValueError(f"segmentation must be 'task' or 'chunk:N', got {cfg.segmentation!r}")


# ---------------------------------------------------------------------------- a window of problems


def analyze_window(sampler, task, items: list[tuple], cfg: AnalyzeConfig, given: list | None = None) -> dict:
    """Analyse the problems ``items`` (``(index, problem)`` pairs) together: every stage (the
    traces, the forced answers after every prefix, each budget-forcing round) is one sampler call
    for all of them, so the engine serves the window's work at once. ``given``: each problem's
    outputs made elsewhere (completions), instead of sampling traces. Returns the record lines
    by problem id. The seeds are the first problem's (:func:`problem_seed`): with one problem
    in the window exactly the one-problem analysis; a window fixed by the problems' index (the
    run loop's batches) draws the same samples in any rerun or process."""
    tok = sampler.tokenizer
    seed = problem_seed(cfg.seed, items[0][0])
    prompts = [task.prompt_ids(p, tok) for _, p in items]
    if given is None:
        max_new = cfg.max_new_tokens or task.default_max_new_tokens
        given = sampler.sample(
            prompts,
            SamplingParams(
                n=cfg.traces_per_problem,
                max_new_tokens=max_new,
                temperature=cfg.temperature,
                top_p=cfg.top_p,
                seed=seed,
            ),
        )
    n_ans = cfg.answer_tokens or task.default_answer_tokens
    ks = tuple(cfg.maj_k)
    jobs = [
        _trace_records(task, problem, prompt, traces, cfg, tok)
        for (_, problem), prompt, traces in zip(items, prompts, given)
    ]
    estimates = estimate_groups(
        sampler,
        task,
        [(problem, prompt, thinkings) for (_, problem), prompt, (thinkings, _) in zip(items, prompts, jobs)],
        n=cfg.answers_per_prefix,
        answer_tokens=n_ans,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        seed=seed + 1,
        ks=ks,
        votes=VoteRule(cfg.vote_tie, cfg.vote_weights),
    )
    for (_, records), per_trace in zip(jobs, estimates):
        for rec, ests in zip(records, per_trace):
            rec.prefixes = [e.to_json() for e in ests]
            rec.progress = metrics.progress([e.j for e in ests])
    if cfg.extensions > 0:
        extend_many(
            sampler,
            task,
            [
                (problem, prompt, thinkings, records)
                for (_, problem), prompt, (thinkings, records) in zip(items, prompts, jobs)
            ],
            cfg,
            seed + 2,
            n_ans,
            ks,
        )
    return {problem.id: [r.to_json() for r in records] for (_, problem), (_, records) in zip(items, jobs)}


def _trace_records(task, problem, prompt_ids: list[int], traces: list, cfg: AnalyzeConfig, tok) -> tuple:
    """One problem's outputs split into thinking, episodes and a graded answer: ``(thinkings,
    records)``, the (thinking ids, episode ends, closed) of each output and its record."""
    records, thinkings = [], []
    for t_idx, comp in enumerate(traces):
        out_ids = comp.token_ids
        thinking, answer_ids = task.split_output(out_ids, tok)
        closed = answer_ids is not None
        answer, correct = task.grade_answer_ids(problem, answer_ids, tok)
        ends = _episode_ends(cfg, task, thinking, tok)
        thinkings.append((thinking, ends, closed))
        status = (
            "empty"
            if not out_ids or (not thinking and not closed)
            else "truncated"
            if comp.finish_reason == "length"
            else "ok"
        )
        records.append(
            TraceRecord(
                problem_id=problem.id,
                trace=t_idx,
                reference=problem.answer,
                meta=problem.meta,
                output=comp.text,
                n_output_tokens=len(out_ids),
                n_thinking_tokens=len(thinking),
                finish_reason=comp.finish_reason,
                status=status,
                closed_thinking=closed,
                answer=answer,
                correct=correct,
                prompt_ids=list(prompt_ids),
                thinking_ids=list(thinking),  # for the progress estimator
                episodes=[
                    {"start": a, "end": b, "text": tok.decode(thinking[a:b])} for a, b in zip([0] + ends[:-1], ends)
                ],
            )
        )
    return thinkings, records


def extend_traces(sampler, task, problem, prompt_ids, thinkings, records, cfg, seed, n_ans, ks):
    """Budget forcing for one problem's traces: :func:`extend_many` with one problem."""
    extend_many(sampler, task, [(problem, prompt_ids, thinkings, records)], cfg, seed, n_ans, ks)


def extend_many(sampler, task, jobs: list[tuple], cfg, seed: int, n_ans: int, ks) -> None:
    """Budget forcing: after the natural end, append an extension text and let the model think
    one more stretch, ``cfg.extensions`` times; J is estimated after each extension. ``jobs``:
    ``(problem, prompt_ids, thinkings, records)`` of each problem; every round is one sampler
    call (and one for its J estimates) for all their closed traces. Each record gets its
    ``extension`` list."""
    tok = sampler.tokenizer
    encoded = [tok.encode(s, add_special_tokens=False) for s in task.extension_stop_texts]
    stop_ids = tuple(e[0] for e in encoded if len(e) == 1)  # one-token stops: exact and cheap
    stop_texts = tuple(s for s, e in zip(task.extension_stop_texts, encoded) if len(e) != 1)
    live = [(g, i) for g, job in enumerate(jobs) for i, r in enumerate(job[3]) if r.closed_thinking]
    cur = {(g, i): list(jobs[g][2][i][0]) for g, i in live}
    for job in jobs:
        for rec in job[3]:
            rec.extension = []
    for e in range(cfg.extensions):
        if not live:
            break
        ext = tok.encode(task.extension_texts[e % len(task.extension_texts)], add_special_tokens=False)
        prompts = [jobs[g][1] + cur[g, i] + ext for g, i in live]
        comps = sampler.sample(
            prompts,
            SamplingParams(
                n=1,
                max_new_tokens=cfg.extension_tokens or task.extension_tokens,
                temperature=cfg.temperature,
                top_p=cfg.top_p,
                stop_token_ids=stop_ids,
                stop=stop_texts,
                seed=seed + 7 * e,
            ),
        )
        for key, cs in zip(live, comps):
            new = cs[0].token_ids
            if new and new[-1] in stop_ids + (tok.eos_token_id,):
                new = new[:-1]
            cur[key] = cur[key] + ext + new
        groups = [g for g in range(len(jobs)) if any(k[0] == g for k in live)]
        ests = estimate_groups(
            sampler,
            task,
            [(jobs[g][0], jobs[g][1], [(cur[g, i], [len(cur[g, i])]) for gg, i in live if gg == g]) for g in groups],
            n=cfg.answers_per_prefix,
            answer_tokens=n_ans,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            seed=seed + 7 * e + 3,
            ks=ks,
            include_empty=False,
            votes=VoteRule(cfg.vote_tie, cfg.vote_weights),
        )
        for g, per_trace in zip(groups, ests):
            for i, est in zip([i for gg, i in live if gg == g], per_trace):
                last = est[-1]
                jobs[g][3][i].extension.append(
                    {"extensions": e + 1, "tokens": len(cur[g, i]), "j": last.j, "ci": list(last.ci)}
                )


# ---------------------------------------------------------------------------- resume / I/O


def read_traces(path: str) -> list[tuple]:
    """Problems and their outputs from a JSONL file of traces made elsewhere.

    Each line: ``output`` (the model's text after the prompt), ``answer`` (the reference), and
    ``problem`` (the question, rendered with the task's template) or ``prompt`` (the exact prompt
    text the output continued); ``problem_id`` groups lines (default: the problem/prompt text).
    A malformed line or a missing field is an error naming the line.
    """
    from mrt.config import read_jsonl
    from mrt.tasks.base import Problem

    groups: dict[str, tuple] = {}
    for n, row in read_jsonl(path, ("output", "answer")):
        if "problem" not in row and "prompt" not in row:
            raise ValueError(f"{path}:{n}: missing field(s) problem (or prompt)")
        text = row.get("prompt") if "prompt" in row else row["problem"]
        pid = str(row.get("problem_id", text))
        if pid not in groups:
            groups[pid] = (
                Problem(id=pid, prompt=str(text), answer=str(row["answer"]), meta={"rendered": "prompt" in row}),
                [],
            )
        groups[pid][1].append(str(row["output"]))
    if not groups:
        raise ValueError(f"traces file {path!r} holds no traces")
    return list(groups.values())


def _as_completions(outputs: list[str], tok) -> list:
    """Given output texts as completions: token ids by the model's tokenizer, ended by EOS."""
    from mrt.samplers.base import Completion

    comps = []
    for text in outputs:
        ids = list(tok.encode(text, add_special_tokens=False))
        if tok.eos_token_id is not None and (not ids or ids[-1] != tok.eos_token_id):
            ids.append(tok.eos_token_id)
        comps.append(Completion(ids, text, [], "stop"))
    return comps


def _settings(cfg: AnalyzeConfig, task) -> dict:
    s = asdict(cfg)
    s.pop("out")
    s["knobs"] = task.knobs()
    return s


# ---------------------------------------------------------------------------- summary


def summarize(records: list[TraceRecord], cfg: AnalyzeConfig, task, model_name: str) -> dict:
    """summary.json: the run's identity, the figures of ``mrt.core.figures.aggregate``, the
    sampler faults met (and retried) on these problems, per kind, and the settings."""
    figs = aggregate(records, list(cfg.budgets or task.default_budgets), cfg.regret_axis)
    return {
        "model": model_name,
        "task": cfg.task,
        "knobs": task.knobs(),
        **figs,
        "sampler_faults": sum_faults(records),
        "settings": {k: v for k, v in asdict(cfg).items() if k != "out"},
    }


def work_plan(cfg: AnalyzeConfig, task, n_problems: int, given: bool, window: int = 1) -> str:
    """The work the settings imply, printed before any (the caps are upper bounds)."""
    from mrt.heartbeat import work_line

    max_new = cfg.max_new_tokens or task.default_max_new_tokens
    n_ans = cfg.answer_tokens or task.default_answer_tokens
    ext = cfg.extension_tokens or task.extension_tokens
    a, t, e = cfg.answers_per_prefix, cfg.traces_per_problem, cfg.extensions
    parts = [
        f"{n_problems} problem{'s' * (n_problems != 1)}"
        + (" with their given traces" if given else f" x {t} traces of up to {max_new:,} tokens"),
        f"{a} forced answers of up to {n_ans:,} tokens after every episode of every trace",
    ]
    if e:
        parts.append(f"{e} budget-forcing extensions of up to {ext:,} tokens per closed trace, {a} answers after each")
    parts.append(f"{window} problem{'s' * (window != 1)} in flight")
    totals = [
        ("trace tokens", 0 if given else n_problems * t * max_new),
        ("extension tokens", n_problems * t * e * ext),
        ("answer tokens per prefix", a * n_ans),
    ]
    return work_line("analyze", parts, totals)


# ---------------------------------------------------------------------------- driver


@one_writer
def run_analysis(cfg: AnalyzeConfig, sampler=None, report: Callable | None = None, share=None) -> dict:
    """Analyse ``cfg.task``'s problems into ``cfg.out``; ``report(out, summary, records)``, if
    given, writes the report while the directory is still this run's (``mrt.pipelines.analyze``
    passes the report part's ``write_report``). ``share``: this process's place among several
    (:class:`mrt.runloop.Share`; default one process; ``mrt analyze`` reads it from the
    launcher's environment): the other processes return their share's counts, process 0 the
    summary of all."""
    from mrt.samplers import describe_backend
    from mrt.tasks import get_task, parse_knobs
    from mrt.tasks.tiny import shipped_model_path

    task = get_task(cfg.task, **parse_knobs(cfg.knobs))  # bad task / knob: error before any work
    if cfg.termination_text:
        task.termination_text = cfg.termination_text.replace("\\n", "\n")  # "\n" from a shell
    if cfg.segmentation != "task":
        _episode_ends(cfg, task, [], None)  # a bad value fails before any work
    for name in ("n_problems", "traces_per_problem", "answers_per_prefix"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.regret_axis not in REGRET_AXES:
        raise ValueError(f"regret_axis must be one of {REGRET_AXES}, got {cfg.regret_axis!r}")
    VoteRule(cfg.vote_tie, cfg.vote_weights)  # bad values fail before any work
    if any(k < 1 for k in cfg.maj_k) or any(b < 1 for b in cfg.budgets):
        raise ValueError("maj_k and budgets must be positive")
    model_name = cfg.model or str(shipped_model_path())
    out = Path(cfg.out)
    given = read_traces(cfg.traces)[: cfg.n_problems] if cfg.traces else None  # bad file: error first
    window = cfg.window = resolve_window(cfg.window, cfg.backend)  # a bad value: error before any work
    note_window(out, window)
    share = share or Share()
    free = ("n_problems", "budgets", "regret_axis", "base_url", "window", *ENGINE_FIELDS)
    claim(out, _settings(cfg, task), free, share)
    if given is not None:
        problems = [p for p, _ in given]
        expected = {p.id: len(outs) for p, outs in given}
    else:
        problems = task.problems(cfg.n_problems, seed=cfg.problem_seed)
        expected = {p.id: cfg.traces_per_problem for p in problems}
    loop = ProblemLoop(
        "analyze", out / "traces.jsonl", problems, expected, cfg, annotate=True, batch=window, share=share
    )
    if loop.todo:
        log.info("%s", work_plan(cfg, task, len(loop.todo), given is not None, window))
    source = describe_backend(cfg, model_name)
    sampler = loop.sampler(sampler, lambda: sampler_from(cfg, model_name), cfg.max_retries, source)

    def work(items):
        if given is None:
            return analyze_window(sampler, task, items, cfg)
        tok = sampler.tokenizer
        return analyze_window(sampler, task, items, cfg, [_as_completions(given[i][1], tok) for i, _ in items])

    t0 = time.time()
    loop.run(sampler, work, source=source)
    if not loop.gather():  # another process's share: process 0 merges and summarises
        return shard_summary(loop)
    records = [TraceRecord.from_json(r, f"{out / 'traces.jsonl'}: problem {r.get('problem_id')}") for r in loop.flat()]
    if not records:
        loop.gave_up.finish()  # every problem skipped: nothing to summarise
    summary = summarize(records, cfg, task, model_name)
    summary["failed_problems"] = dict(loop.gave_up.by_kind)
    summary["wall_seconds_this_run"] = round(time.time() - t0, 2)
    odd = {k: v for k, v in summary["trace_status"].items() if k != "ok"}
    if odd:
        log.warning("traces that did not end normally (counted in summary.json): %s", odd)
    if summary["grader_failures"]:
        log.warning(
            "answers graded wrong by a grader failure (counted in summary.json): %s", summary["grader_failures"]
        )
    if summary["sampler_faults"]:
        log.info("sampler faults met and retried (counted in summary.json): %s", summary["sampler_faults"])
    write_json(out / "summary.json", summary)
    if report is not None:
        report(out, summary, records)
    loop.gave_up.finish()
    return summary
