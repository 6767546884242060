"""``mrt eval``: the benchmark harness. pass@1 over n samples per problem at a token budget (the
MRT paper: 20 samples at 16K tokens), unbiased pass@k, maj@k of the natural answers, and
budget-forcing extrapolation (after the natural end of thinking, append "Wait" and the like,
think on, then force an answer).

Output (``OUT``): ``samples.jsonl`` (one line per problem, written as it finishes; a rerun with
the same settings resumes), ``run.json`` and ``summary.json`` (one writer at a time, files
written whole: docs/reliability.md). No per-episode J here: that is
``mrt analyze``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from mrt.config import arg
from mrt.core import metrics
from mrt.core.trace import TraceRecord
from mrt.rundir import one_writer, write_json
from mrt.runloop import ProblemLoop, Share, claim, problem_seed, resolve_window, shard_summary, sum_faults
from mrt.runloop.window import WINDOW_HELP, note_window
from mrt.samplers import ENGINE_FIELDS, SamplerArgs, sampler_from
from mrt.samplers.base import SamplingParams


@dataclass
class EvalConfig(SamplerArgs):
    model: str = arg("", "model directory or hub id (default: the shipped didactic base model)")
    task: str = arg("star", "task name, e.g. math500, aime24, gsm8k, gym, data")
    knobs: list[str] = arg([], "task knobs as name=value")
    out: str = arg("runs/eval", "output directory")
    n_problems: int = arg(100000, "problems to evaluate (default: all the task gives)")
    problem_seed: int = arg(0, "problem-set seed (0: a data set's own order)")
    samples: int = arg(20, "samples per problem (pass@1 is their mean accuracy)")
    max_new_tokens: int = arg(0, "token budget of a sample (0: the task's default, 16384 for math)")
    temperature: float | None = arg(
        None,
        "sampling temperature (default: 0.6; with --j-source estimator, the temperature the estimator's "
        "traces were sampled at, from its calibration.json)",
    )
    top_p: float | None = arg(None, "nucleus sampling (default: 0.95; with --j-source estimator, the estimator's)")
    maj_k: list[int] = arg([1, 2, 4, 8, 16], "k values for maj@k and pass@k (those <= samples)")
    extensions: int = arg(0, "budget forcing: extensions past the natural end of thinking (0: off)")
    extension_tokens: int = arg(0, "token cap of each extension (0: the task's default)")
    answer_tokens: int = arg(0, "token cap of the forced answer after an extension (0: the task's default)")
    seed: int = arg(0, "sampling seed")
    window: int = arg(0, WINDOW_HELP)
    stop: str = arg(
        "",
        "stop thinking early by a rule: j-threshold:tau=T, stall:eps=E,m=M, confidence:tau=T, "
        "budget:tokens=B or natural (see docs/early-stopping.md)",
    )
    j_source: str = arg(
        "oracle",
        "J estimate of j-threshold/stall: oracle (graded forced answers), vote "
        "(their top vote share) or estimator (the learned progress estimator)",
    )
    stop_k: int = arg(4, "forced answers per boundary for the oracle/vote J estimate")
    estimator: str = arg("", "trained progress estimator directory (j_source=estimator)")
    chunk_tokens: int = arg(
        32,
        "--stop: N of the token-chunk boundaries used where the task has no episode markers to stop "
        "generation at (thinking=none, or a task whose markers are not known); with markers, "
        "generation runs up to the next boundary and this is not used",
    )
    segmentation: str = arg(
        "task",
        "--stop: episode boundaries: 'task' (the task's own, generation stopped at its markers) or "
        "'chunk:N' (N-token chunks; the fallback for models that do not think in tags)",
    )
    reuse_signal_answer: bool = arg(
        True,
        "--stop: at an early stop, answer with a signal answer already sampled there (the majority of "
        "the k oracle/vote answers, the confidence rule's trial answer) instead of a fresh one",
    )


def eval_window(sampler, task, items: list[tuple], cfg: EvalConfig) -> dict:
    """The rows of the problems ``items`` (``(index, problem)`` pairs), sampled together: all
    their samples in one sampler call, each budget-forcing round in one. Seeds are the first
    problem's (:func:`problem_seed`; with one problem, the one-problem evaluation exactly).
    Returns each problem's row (in a list) by problem id."""
    from mrt.measure.analyze import AnalyzeConfig, extend_many

    tok = sampler.tokenizer
    seed = problem_seed(cfg.seed, items[0][0])
    prompts = [task.prompt_ids(p, tok) for _, p in items]
    params = SamplingParams(
        n=cfg.samples,
        max_new_tokens=cfg.max_new_tokens or task.default_max_new_tokens,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        seed=seed,
    )
    rows, jobs = {}, []
    for (_, problem), prompt, comps in zip(items, prompts, sampler.sample(prompts, params)):
        answers, correct, thinkings, records = [], [], [], []
        for c in comps:
            thinking, answer_ids = task.split_output(c.token_ids, tok)
            answer, ok = task.grade_answer_ids(problem, answer_ids, tok)
            answers.append(answer)
            correct.append(ok)
            thinkings.append((thinking, [len(thinking)]))
            records.append(
                TraceRecord(problem.id, closed_thinking=answer_ids is not None, n_thinking_tokens=len(thinking))
            )
        rows[problem.id] = {
            "problem_id": problem.id,
            "reference": problem.answer,
            "answers": answers,
            "correct": correct,
            "labels": task.answer_labels(answers),  # equivalent answers share a label (one vote)
            "n_tokens": [len(c.token_ids) for c in comps],
            "finish": [c.finish_reason for c in comps],
            "mean_logprobs": [round(c.mean_logprob, 4) for c in comps],
        }
        jobs.append((problem, prompt, thinkings, records))
    if cfg.extensions:
        acfg = AnalyzeConfig(
            extensions=cfg.extensions,
            extension_tokens=cfg.extension_tokens,
            answers_per_prefix=1,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            maj_k=[1],
        )
        n_ans = cfg.answer_tokens or task.default_answer_tokens
        extend_many(sampler, task, jobs, acfg, seed + 2, n_ans, (1,))
        for problem, _, _, records in jobs:
            rows[problem.id]["forcing"] = [r.extension or [] for r in records]
    return {pid: [row] for pid, row in rows.items()}


def resolve_sampling(cfg: EvalConfig) -> None:
    """Fill in the temperature and top-p left unset: the estimator's (``--j-source estimator``:
    what its training traces were sampled at, so that its J means what it was trained to mean),
    else 0.6 / 0.95. Warn when the estimator's differ from the ones given."""
    import json

    defaults = {"temperature": 0.6, "top_p": 0.95}
    trained = {}
    if cfg.stop and cfg.j_source == "estimator" and cfg.estimator:
        cal = Path(cfg.estimator) / "calibration.json"
        if cal.is_file():
            trained = {k: v for k, v in (json.loads(cal.read_text()).get("sampling") or {}).items() if v is not None}
        if not trained:
            logging.getLogger(__name__).warning(
                "%s records no sampling settings (an estimator from an older mrt): eval samples at temperature "
                "%s, top-p %s unless told otherwise",
                cal,
                cfg.temperature if cfg.temperature is not None else 0.6,
                cfg.top_p if cfg.top_p is not None else 0.95,
            )
    for key in ("temperature", "top_p"):
        if getattr(cfg, key) is None:
            setattr(cfg, key, float(trained.get(key, defaults[key])))
        elif key in trained and abs(float(trained[key]) - getattr(cfg, key)) > 1e-9:
            logging.getLogger(__name__).warning(
                "--%s %s differs from the %s the estimator's traces were sampled at (%s): its J estimates "
                "were not trained for this sampling",
                key.replace("_", "-"),
                getattr(cfg, key),
                key.replace("_", "-"),
                trained[key],
            )


def summarize(rows: list[dict], cfg: EvalConfig, stopper=None) -> dict:
    n = len(rows)
    if n == 0:
        raise ValueError("no problems to summarise")
    ks = [k for k in cfg.maj_k if k <= cfg.samples]
    p1 = [sum(r["correct"]) / len(r["correct"]) for r in rows]
    mean = sum(p1) / n
    sd = (sum((x - mean) ** 2 for x in p1) / max(n - 1, 1)) ** 0.5
    out = {
        "model": cfg.model,
        "task": cfg.task,
        "n_problems": n,
        "samples": cfg.samples,
        "pass@1": mean,
        "pass@1_stderr": sd / n**0.5,
        "pass_at_k": {
            str(k): sum(metrics.pass_at_k(len(r["correct"]), sum(r["correct"]), k) for r in rows) / n for k in ks
        },
        "maj_at_k": {
            str(k): sum(metrics.maj_at_k(r.get("labels", r["answers"]), r["correct"], k) for r in rows) / n for k in ks
        },
        "mean_tokens": sum(sum(r["n_tokens"]) for r in rows) / sum(len(r["n_tokens"]) for r in rows),
        "truncated_fraction": sum(f == "length" for r in rows for f in r["finish"])
        / sum(len(r["finish"]) for r in rows),
        "no_answer_fraction": sum(a is None for r in rows for a in r["answers"]) / sum(len(r["answers"]) for r in rows),
        "grader_failures": dict(sum((Counter(r.get("grader_failures", {})) for r in rows), Counter())),
        "sampler_faults": sum_faults(rows),
    }
    if stopper is not None:
        out["stop"] = stopper.summary(rows)
    if cfg.extensions:
        by_e: dict[int, list[float]] = {}
        for r in rows:
            for trace in r.get("forcing", []):
                for e in trace:
                    by_e.setdefault(e["extensions"], []).append(e["j"])
        out["forcing_accuracy"] = {str(e): sum(v) / len(v) for e, v in sorted(by_e.items())}
    out["settings"] = {k: v for k, v in asdict(cfg).items() if k != "out"}
    return out


def work_plan(cfg: EvalConfig, task, n_problems: int, window: int = 1) -> str:
    """The work the settings imply, printed before any (the caps are upper bounds)."""
    from mrt.heartbeat import work_line

    max_new = cfg.max_new_tokens or task.default_max_new_tokens
    n_ans = cfg.answer_tokens or task.default_answer_tokens
    ext = cfg.extension_tokens or task.extension_tokens
    parts = [f"{n_problems} problem{'s' * (n_problems != 1)} x {cfg.samples} samples of up to {max_new:,} tokens"]
    totals = [("sampled tokens", n_problems * cfg.samples * max_new)]
    if cfg.stop:
        parts.append(
            f"stop rule {cfg.stop} (J from {cfg.j_source}, {cfg.stop_k} forced answers of up to {n_ans:,} tokens "
            "per boundary; generation runs up to each episode boundary)"
        )
    if cfg.extensions:
        parts.append(f"{cfg.extensions} budget-forcing extensions of up to {ext:,} tokens per closed sample")
        totals.append(("extension tokens", n_problems * cfg.samples * cfg.extensions * ext))
    parts.append(f"{window} problem{'s' * (window != 1)} in flight")
    return work_line("eval", parts, totals)


@one_writer
def run_eval(cfg: EvalConfig, sampler=None, stopper: Callable | None = None, share=None) -> dict:
    """Evaluate ``cfg.task`` into ``cfg.out``. With ``--stop``, ``stopper(cfg, task)`` builds the
    online controller (the act part's; ``mrt.pipelines.evaluate`` passes it), checked before any
    work. ``share``: as in :func:`mrt.measure.analyze.run_analysis`."""
    from mrt.samplers import describe_backend
    from mrt.tasks import get_task, parse_knobs
    from mrt.tasks.tiny import shipped_model_path

    task = get_task(cfg.task, **parse_knobs(cfg.knobs))
    if cfg.stop and stopper is None:
        raise ValueError("--stop runs the act part's online controller: call mrt.pipelines.evaluate (mrt eval does)")
    controller = stopper(cfg, task) if cfg.stop else None  # a bad rule or setting: error before any work
    resolve_sampling(cfg)
    if controller is not None and cfg.extensions:
        raise ValueError("--stop and --extensions do not go together (stop early, or force thinking on)")
    for name in ("n_problems", "samples"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    cfg.model = cfg.model or str(shipped_model_path())
    out = Path(cfg.out)
    if controller is not None and cfg.window > 1:
        raise ValueError("--stop works a problem at a time: leave --window at 0 or 1")
    window = cfg.window = 1 if controller is not None else resolve_window(cfg.window, cfg.backend)
    note_window(out, window)
    settings = {k: v for k, v in asdict(cfg).items() if k not in ("out", "n_problems", "base_url", *ENGINE_FIELDS)}
    settings["knobs"] = task.knobs()
    share = share or Share()
    claim(out, settings, ("window",), share)
    problems = task.problems(cfg.n_problems, seed=cfg.problem_seed)
    loop = ProblemLoop("eval", out / "samples.jsonl", problems, 1, cfg, annotate=True, batch=window, share=share)
    if loop.todo:
        logging.getLogger(__name__).info("%s", work_plan(cfg, task, len(loop.todo), window))
    source = describe_backend(cfg, cfg.model)
    sampler = loop.sampler(sampler, lambda: sampler_from(cfg, cfg.model), cfg.max_retries, source)

    def work(items):
        if controller is None:
            return eval_window(sampler, task, items, cfg)
        tok = sampler.tokenizer  # the online controller works a problem at a time
        return {
            p.id: [controller.row(sampler, task, p, task.prompt_ids(p, tok), problem_seed(cfg.seed, i))]
            for i, p in items
        }

    t0 = time.time()
    loop.run(sampler, work, source=source)
    if not loop.gather():  # another process's share: process 0 merges and summarises
        return shard_summary(loop)
    rows = [recs[0] for recs in loop.records()]
    if not rows:
        loop.gave_up.finish()
    s = summarize(rows, cfg, controller)
    s["failed_problems"] = dict(loop.gave_up.by_kind)
    s["wall_seconds_this_run"] = round(time.time() - t0, 2)
    write_json(out / "summary.json", s)
    loop.gave_up.finish()
    return s
