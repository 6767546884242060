"""``mrt eval``: the benchmark harness. pass@1 over n samples per problem at a token budget (the
MRT paper: 20 samples at 16K tokens), unbiased pass@k, maj@k of the natural answers, and
budget-forcing extrapolation (after the natural end of thinking, append "Wait" and the like,
think on, then force an answer).

Output (``OUT``): ``samples.jsonl`` (one line per problem, written as it finishes; a rerun with
the same settings resumes), ``run.json`` and ``summary.json``. No per-episode J here: that is
``mrt analyze``.
"""
from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from mrt import grading, metrics
from mrt.config import arg, claim_run_dir
from mrt.samplers.base import SamplingParams


@dataclass
class EvalConfig:
    model: str = arg("", "model directory or hub id (default: the shipped didactic base model)")
    task: str = arg("star", "task name, e.g. math500, aime24, gsm8k, gym, data")
    knobs: list[str] = arg([], "task knobs as name=value")
    out: str = arg("runs/eval", "output directory")
    n_problems: int = arg(100000, "problems to evaluate (default: all the task gives)")
    problem_seed: int = arg(0, "problem-set seed (0: a data set's own order)")
    samples: int = arg(20, "samples per problem (pass@1 is their mean accuracy)")
    max_new_tokens: int = arg(0, "token budget of a sample (0: the task's default, 16384 for math)")
    temperature: float = arg(0.6, "sampling temperature")
    top_p: float = arg(0.95, "nucleus sampling")
    maj_k: list[int] = arg([1, 2, 4, 8, 16], "k values for maj@k and pass@k (those <= samples)")
    extensions: int = arg(0, "budget forcing: extensions past the natural end of thinking (0: off)")
    extension_tokens: int = arg(0, "token cap of each extension (0: the task's default)")
    answer_tokens: int = arg(0, "token cap of the forced answer after an extension (0: the task's default)")
    seed: int = arg(0, "sampling seed")
    backend: str = arg("hf", "sampler backend: hf, vllm or openai")
    base_url: str = arg("", "openai backend: the server's address, e.g. http://localhost:8000/v1")
    tokenizer: str = arg("", "openai/vllm backends: a local tokenizer of the served model (default: --model)")
    concurrency: int = arg(8, "openai backend: requests in flight")


def eval_problem(sampler, task, problem, cfg: EvalConfig, index: int) -> dict:
    from mrt.analyze import AnalyzeConfig, _extend, problem_seed

    tok = sampler.tokenizer
    seed = problem_seed(cfg.seed, index)
    prompt = task.prompt_ids(problem, tok)
    params = SamplingParams(n=cfg.samples, max_new_tokens=cfg.max_new_tokens or task.default_max_new_tokens,
                            temperature=cfg.temperature, top_p=cfg.top_p, seed=seed)
    comps = sampler.sample([prompt], params)[0]
    answers, correct, thinkings, records = [], [], [], []
    for c in comps:
        thinking, answer_ids = task.split_output(c.token_ids, tok)
        answer, ok = task.grade_answer_ids(problem, answer_ids, tok)
        answers.append(answer)
        correct.append(ok)
        thinkings.append((thinking, [len(thinking)]))
        records.append({"closed_thinking": answer_ids is not None, "n_thinking_tokens": len(thinking)})
    row = {"problem_id": problem.id, "reference": problem.answer, "answers": answers, "correct": correct,
           "labels": task.answer_labels(answers),  # equivalent answers share a label (one vote)
           "n_tokens": [len(c.token_ids) for c in comps], "finish": [c.finish_reason for c in comps],
           "mean_logprobs": [round(c.mean_logprob, 4) for c in comps]}
    if cfg.extensions:
        acfg = AnalyzeConfig(extensions=cfg.extensions, extension_tokens=cfg.extension_tokens, answers_per_prefix=1,
                             temperature=cfg.temperature, top_p=cfg.top_p, maj_k=[1])
        n_ans = cfg.answer_tokens or task.default_answer_tokens
        _extend(sampler, task, problem, prompt, thinkings, records, acfg, seed + 2, n_ans, (1,))
        row["forcing"] = [r.get("extension", []) for r in records]
    return row


def summarize(rows: list[dict], cfg: EvalConfig) -> dict:
    n = len(rows)
    if n == 0:
        raise ValueError("no problems to summarise")
    ks = [k for k in cfg.maj_k if k <= cfg.samples]
    p1 = [sum(r["correct"]) / len(r["correct"]) for r in rows]
    mean = sum(p1) / n
    sd = (sum((x - mean) ** 2 for x in p1) / max(n - 1, 1)) ** 0.5
    out = {"model": cfg.model, "task": cfg.task, "n_problems": n, "samples": cfg.samples,
           "pass@1": mean, "pass@1_stderr": sd / n ** 0.5,
           "pass_at_k": {str(k): sum(metrics.pass_at_k(len(r["correct"]), sum(r["correct"]), k) for r in rows) / n
                         for k in ks},
           "maj_at_k": {str(k): sum(metrics.maj_at_k(r.get("labels", r["answers"]), r["correct"], k) for r in rows) / n
                        for k in ks},
           "mean_tokens": sum(sum(r["n_tokens"]) for r in rows) / sum(len(r["n_tokens"]) for r in rows),
           "truncated_fraction": sum(f == "length" for r in rows for f in r["finish"])
           / sum(len(r["finish"]) for r in rows),
           "no_answer_fraction": sum(a is None for r in rows for a in r["answers"])
           / sum(len(r["answers"]) for r in rows),
           "grader_failures": dict(sum((Counter(r.get("grader_failures", {})) for r in rows), Counter()))}
    if cfg.extensions:
        by_e: dict[int, list[float]] = {}
        for r in rows:
            for trace in r.get("forcing", []):
                for e in trace:
                    by_e.setdefault(e["extensions"], []).append(e["j"])
        out["forcing_accuracy"] = {str(e): sum(v) / len(v) for e, v in sorted(by_e.items())}
    out["settings"] = {k: v for k, v in asdict(cfg).items() if k != "out"}
    return out


def run_eval(cfg: EvalConfig, sampler=None) -> dict:
    from tqdm import tqdm

    from mrt.analyze import load_finished
    from mrt.samplers import load_sampler
    from mrt.tasks import get_task, parse_knobs
    from mrt.tiny import shipped_model_path

    task = get_task(cfg.task, **parse_knobs(cfg.knobs))
    for name in ("n_problems", "samples"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    cfg.model = cfg.model or str(shipped_model_path())
    out = Path(cfg.out)
    settings = {k: v for k, v in asdict(cfg).items() if k not in ("out", "n_problems", "concurrency", "base_url")}
    settings["knobs"] = task.knobs()
    claim_run_dir(out, settings)
    path = out / "samples.jsonl"
    done, _ = load_finished(path, 1)
    problems = task.problems(cfg.n_problems, seed=cfg.problem_seed)
    todo = [(i, p) for i, p in enumerate(problems) if p.id not in done]
    if todo and sampler is None:
        sampler = load_sampler(cfg.model, cfg.backend, base_url=cfg.base_url, tokenizer=cfg.tokenizer,
                               concurrency=cfg.concurrency)
    t0 = time.time()
    with path.open("a") as f:
        for i, p in tqdm(todo, desc="eval", unit="problem"):
            before = Counter(grading.failures)
            row = eval_problem(sampler, task, p, cfg, i)
            row["grader_failures"] = dict(Counter(grading.failures) - before)
            f.write(json.dumps(row) + "\n")
            f.flush()
            done[p.id] = [row]
    wanted = {p.id for p in problems}
    s = summarize([recs[0] for pid, recs in done.items() if pid in wanted], cfg)
    s["wall_seconds_this_run"] = round(time.time() - t0, 2)
    (out / "summary.json").write_text(json.dumps(s, indent=1))
    return s
