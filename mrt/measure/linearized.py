"""``mrt linearized``: linearized evaluation of the backtracking format (docs/backtracking.md).

Because a revision needs only the problem and the attempt before it, a model can run many rounds
past its training context: keep the problem and the last ``window`` attempts in context, let the
model write a backtrack marker and a revision, make the revised attempt the newest one, repeat
until ``episodes`` attempts (z0 and ``episodes - 1`` revisions). After every attempt an answer is
forced; the score after k attempts is the majority vote over the k answers so far, against the
tokens spent so far (each attempt's and each forced answer's generated tokens). Beside it, the
parallel form: k independent first attempts, each with its forced answer, majority over them.

Each round's context is the problem prompt, the window's attempts written whole (didactic:
``try s a b dead``; text: their steps, joined by the authors' RL marker), then the marker's opener
(didactic ``back``; text the authors' RL prompt suffix, ``Wait, this seems off. Let's try something
else.`` and ``Step``); the model writes the rest. A round whose marker names a step the attempt does
not have, or whose revision is empty or malformed, is counted by kind (``format_errors``), its forced
answer still counts, and the attempt in context stays the one before. A first attempt that breaks the
format (``first_attempt_format_errors``) leaves no attempt in context: the next round is a first
attempt again (marked ``first``), not a revision. A revision that returns to a branch
found wrong earlier is counted ``seen`` (that attempt was in the window) or ``unseen`` (it had left).

Output (``OUT``): ``linearized.jsonl`` (one line per problem, written as it finishes; a rerun with
the same settings resumes), ``run.json``, ``summary.json``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from mrt.config import arg, claim_run_dir
from mrt.core import backtrack as bt
from mrt.rundir import one_writer, write_json
from mrt.runloop import ProblemLoop, problem_seed
from mrt.samplers import ENGINE_FIELDS, SamplerArgs, sampler_from
from mrt.samplers.base import SamplingParams
from mrt.tasks.backtrack_format import Attempt, format_for

log = logging.getLogger(__name__)


@dataclass
class LinearizedConfig(SamplerArgs):
    model: str = arg("", "model directory or hub id (default: the shipped didactic base model)")
    task: str = arg("tree", "task in the backtracking format: tree, or a text task with format=backtrack")
    knobs: list[str] = arg([], "task knobs as name=value (text tasks need format=backtrack)")
    out: str = arg("runs/linearized", "output directory")
    n_problems: int = arg(32, "problems to evaluate")
    problem_seed: int = arg(0, "problem-set seed (0: a data set's own order; the didactic worlds train on 7)")
    samples: int = arg(4, "linearized traces per problem, and as many parallel sets of K attempts")
    episodes: int = arg(10, "K: attempts per trace (the first and K-1 revisions); parallel: K independent attempts")
    window: int = arg(1, "W: attempts kept in context besides the problem (the newest W)")
    episode_tokens: int = arg(0, "token cap of one attempt or one marker and revision (0: the task's default)")
    answer_tokens: int = arg(0, "token cap of a forced answer (0: the task's default)")
    temperature: float = arg(1.0, "sampling temperature of attempts and revisions")
    answer_temperature: float = arg(1.0, "sampling temperature of the forced answers")
    top_p: float = arg(1.0, "nucleus sampling")
    answers: int = arg(
        1,
        "M: answers forced after each attempt; the first is the vote's, the fraction correct of all M is J (records 'j')",
    )
    batch_problems: int = arg(16, "problems sampled together (each round of all their traces in one call)")
    vote_tie: str = arg("expected", "majority-vote tie rule: expected (1/m of m tied answers) or authors (0.5)")
    seed: int = arg(0, "sampling seed")

    def check(self) -> None:
        bt.check_linearized(self.window, self.episodes)
        for name in ("n_problems", "samples", "answers", "batch_problems"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.vote_tie not in ("expected", "authors"):
            raise ValueError(f"vote_tie must be expected or authors, got {self.vote_tie!r}")


# ---------------------------------------------------------------------------- one problem


def _sample_texts(sampler, prompts, params):
    return [cs[0] for cs in sampler.sample(prompts, params)]


def _j(forced: list[dict]) -> float:
    return round(sum(f["correct"] for f in forced) / len(forced), 6)


def linearized_chunk(sampler, task, items: list[tuple[int, object]], cfg: LinearizedConfig) -> list[dict]:
    """Linearized and parallel traces of a chunk of problems (``items``: (index, problem)), every
    round of every trace of the chunk in one sampler call; one row per problem."""

    tok = sampler.tokenizer
    seed = problem_seed(cfg.seed, items[0][0])
    S, K, W, M = cfg.samples, cfg.episodes, cfg.window, cfg.answers
    fmts = [format_for(task, p, tok) for _, p in items]
    prompts = [task.prompt_ids(p, tok) for _, p in items]
    ep_params = dict(
        n=1,
        max_new_tokens=cfg.episode_tokens or task.default_max_new_tokens,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        stop=fmts[0].stops,
    )
    slots = [(j, s) for j in range(len(items)) for s in range(S)]  # every trace of the chunk
    traces = {js: {"episodes": [], "errors": Counter(), "first_errors": Counter()} for js in slots}
    current: dict[tuple[int, int], list[Attempt]] = {js: [] for js in slots}
    for k in range(K):
        # a trace starts (again) with a first attempt while it has none in context: round 0, or every
        # round after first attempts that were format errors
        starts = {js: not current[js] for js in slots}
        ctxs = [
            prompts[j]
            + fmts[j].render(bt.window(current[j, s], W) if not starts[j, s] else [])
            + fmts[j].opener(starts[j, s])
            for j, s in slots
        ]
        comps = _sample_texts(sampler, ctxs, SamplingParams(**ep_params, seed=seed + 101 * k))
        eps = [fmts[j].kept(c.text) for (j, _), c in zip(slots, comps)]
        forced = _force_chunk(sampler, task, items, tok, slots, ctxs, eps, cfg, seed + 101 * k + 50)
        for (j, s), c, ep, f in zip(slots, comps, eps, forced):
            fmt, first = fmts[j], starts[j, s]
            rec = {"text": c.text, "tokens": len(fmt.opener(first)) + len(ep), **f[0]}
            if first and k > 0:
                rec["first"] = True  # a first attempt again: every earlier one was a format error
            if M > 1:
                rec["j"] = _j(f)
            ej = fmt.exact_j(bt.window(current[j, s], W) if not first else [], first, c.text)
            if ej is not None:
                rec["exact_j"] = ej
            try:
                att = fmt.parse(current[j, s][-1] if current[j, s] else None, c.text)
                current[j, s].append(att)
                rec["attempt"] = list(att.steps)
                rec["outcome"] = att.outcome
            except bt.BacktrackFormatError as e:
                traces[j, s]["first_errors" if first else "errors"][e.kind] += 1
                rec["format_error"] = e.kind
                log.info("problem %s trace %d round %d: %s (counted, attempt in context kept)", items[j][1].id, s, k, e)
            traces[j, s]["episodes"].append(rec)
    # parallel: S sets of K independent first attempts per problem
    pctxs = [prompts[j] + fmts[j].opener(True) for j in range(len(items))]
    pcomps = sampler.sample(pctxs, SamplingParams(**{**ep_params, "n": S * K}, seed=seed + 7))
    pslots = [(j, i) for j in range(len(items)) for i in range(S * K)]
    flat = [pcomps[j][i] for j, i in pslots]
    peps = [fmts[j].kept(c.text) for (j, _), c in zip(pslots, flat)]
    pforced = _force_chunk(
        sampler, task, items, tok, pslots, [pctxs[j] for j, _ in pslots], peps, cfg, seed + 8, answers=1
    )  # the parallel vote needs one answer per attempt
    rows = []
    for j, (_, problem) in enumerate(items):
        fmt = fmts[j]
        parallel = []
        for s in range(S):
            recs = []
            for i in range(s * K, (s + 1) * K):
                n = j * S * K + i
                recs.append({"text": flat[n].text, "tokens": len(fmt.opener(True)) + len(peps[n]), **pforced[n][0]})
            parallel.append({"episodes": recs})
        lin = [traces[j, s] for s in range(S)]
        for group in lin + parallel:
            _score(group, task, cfg)
        for tr in lin:
            tr["errors"], tr["first_errors"] = dict(tr["errors"]), dict(tr["first_errors"])
            keys = []
            for rec, lab in zip(tr["episodes"], tr["labels"]):
                attempt = Attempt(tuple(rec.get("attempt", ())), rec.get("outcome"))
                key, wrong = fmt.key(attempt, lab) if "attempt" in rec else (None, False)
                keys.append((key, (not rec["correct"]) if wrong is None else wrong))
            parsed = ["attempt" in rec for rec in tr["episodes"]]  # a format-error round keeps the window as it was
            kinds = bt.revisit_kinds([k for k, _ in keys], [w for _, w in keys], W, parsed)
            tr["revisits"] = [
                kind if "format_error" not in e else "format_error" for kind, e in zip(kinds, tr["episodes"])
            ]
        rows.append({"problem_id": problem.id, "reference": problem.answer, "linearized": lin, "parallel": parallel})
    return rows


def _force_chunk(sampler, task, items, tok, slots, ctxs, eps, cfg, seed, answers: int = 0) -> list[list[dict]]:
    """M forced answers (``answers``, default ``cfg.answers``) after each (context, episode) of a
    chunk; per slot, its graded answers (the first one is the vote's)."""
    n_ans = cfg.answer_tokens or task.default_answer_tokens
    prompts = [task.forced_ids(tok, ctx, ep) for ctx, ep in zip(ctxs, eps)]
    params = SamplingParams(
        n=answers or cfg.answers,
        max_new_tokens=n_ans,
        temperature=cfg.answer_temperature,
        top_p=cfg.top_p,
        stop=tuple(task.answer_stop_texts),
        seed=seed,
    )
    out = []
    for (j, _), cs in zip(slots, sampler.sample(prompts, params)):
        problem = items[j][1]
        graded = []
        for c in cs:
            try:
                a = task.extract_answer(c.text)
                ok = a is not None and bool(task.grade(problem, a))
            except Exception as e:  # noqa: BLE001 - a grader that chokes grades wrong, never the run
                log.warning("grading failed on problem %s: %.80s", problem.id, str(e))
                a, ok = None, False
            graded.append({"answer": a, "correct": ok, "answer_tokens": len(c.token_ids)})
        out.append(graded)
    return out


def _score(group: dict, task, cfg) -> None:
    eps = group["episodes"]
    labels = task.answer_labels([e["answer"] for e in eps])
    group["labels"] = labels
    group["maj"] = bt.running_majority(labels, [e["correct"] for e in eps], tie=cfg.vote_tie)
    total, cum = 0, []
    for e in eps:
        total += e["tokens"] + e["answer_tokens"]
        cum.append(total)
    group["cum_tokens"] = cum


# ---------------------------------------------------------------------------- summary


def problem_figures(row: dict, budgets: dict[str, float]) -> dict:
    """One problem's figures, means over its traces (the unit a paired bootstrap over problems
    resamples): per mode, the majority after k attempts (``maj``, k = 1..K in order) and at each
    equal-token budget (``equal_tokens``, the keys of ``budgets``)."""
    out = {}
    for mode in ("linearized", "parallel"):
        groups = row[mode]
        out[mode] = {
            "maj": [round(sum(g["maj"][k] for g in groups) / len(groups), 6) for k in range(len(groups[0]["maj"]))],
            "equal_tokens": {
                k: round(sum(bt.value_at_tokens(g["cum_tokens"], g["maj"], b) for g in groups) / len(groups), 6)
                for k, b in budgets.items()
            },
        }
    return out


def summarize(rows: list[dict], cfg: LinearizedConfig) -> dict:
    K = cfg.episodes

    def curve(kind):
        groups = [g for r in rows for g in r[kind]]
        if not groups:
            return {}
        return {
            str(k + 1): {
                "maj": round(sum(g["maj"][k] for g in groups) / len(groups), 6),
                "tokens": round(sum(g["cum_tokens"][k] for g in groups) / len(groups), 2),
                "accuracy": round(sum(g["episodes"][k]["correct"] for g in groups) / len(groups), 6),
            }
            for k in range(K)
        }

    # both modes at equal tokens: each trace's majority at the token costs of parallel maj@k
    par, lin = curve("parallel"), [g for r in rows for g in r["linearized"]]
    pgroups = [g for r in rows for g in r["parallel"]]
    equal = {}
    for k, v in par.items():
        b = v["tokens"]
        equal[k] = {
            "tokens": b,
            "linearized": round(sum(bt.value_at_tokens(g["cum_tokens"], g["maj"], b) for g in lin) / len(lin), 6),
            "parallel": round(sum(bt.value_at_tokens(g["cum_tokens"], g["maj"], b) for g in pgroups) / len(pgroups), 6),
        }
    # sensitivity (issue 35): the linearized majority with the format-error rounds' answers left out of the vote
    lin_groups = [g for r in rows for g in r["linearized"]]
    parsed_majs = [
        bt.running_majority(
            [None if "format_error" in e else lab for e, lab in zip(g["episodes"], g["labels"])],
            [e["correct"] for e in g["episodes"]],
            tie=cfg.vote_tie,
        )
        for g in lin_groups
    ]
    parsed_votes = {
        "maj": {str(k + 1): round(sum(m[k] for m in parsed_majs) / len(parsed_majs), 6) for k in range(K)},
        "equal_tokens": {
            key: round(
                sum(bt.value_at_tokens(g["cum_tokens"], m, v["tokens"]) for g, m in zip(lin_groups, parsed_majs))
                / len(lin_groups),
                6,
            )
            for key, v in equal.items()
        },
    }
    errors: Counter = Counter()
    first_errors: Counter = Counter()
    revisits: Counter = Counter()
    revision_rounds = 0
    for r in rows:
        for tr in r["linearized"]:
            errors.update(tr["errors"])
            first_errors.update(tr.get("first_errors", {}))
            for i, (kind, rec) in enumerate(zip(tr["revisits"], tr["episodes"])):
                if i == 0 or rec.get("first"):
                    continue  # a first attempt, not a revision
                revision_rounds += 1
                if kind != "format_error":
                    revisits[kind] += 1  # the parsed revisions
    rounds = sum(revisits.values())
    return {
        "n_problems": len(rows),
        "samples": cfg.samples,
        "episodes": K,
        "window": cfg.window,
        "linearized": curve("linearized"),
        "parallel": par,
        "equal_tokens": equal,
        "linearized_parsed_votes": parsed_votes,
        "revisits": dict(revisits),
        "unseen_revisit_fraction": round(revisits["unseen"] / rounds, 6) if rounds else None,
        "format_errors": dict(errors),
        "first_attempt_format_errors": dict(first_errors),
        "revision_rounds": revision_rounds,
        "per_problem": {r["problem_id"]: problem_figures(r, {k: v["tokens"] for k, v in equal.items()}) for r in rows},
    }


@one_writer
def run_linearized(cfg: LinearizedConfig, sampler=None) -> dict:
    from mrt.samplers import describe_backend
    from mrt.tasks import get_task, parse_knobs
    from mrt.tasks.tiny import shipped_model_path

    cfg.check()
    task = get_task(cfg.task, **parse_knobs(cfg.knobs))
    problems = task.problems(cfg.n_problems, seed=cfg.problem_seed)
    format_for(task, None, None)  # a task not in the format: an error before any work
    cfg.model = cfg.model or str(shipped_model_path())
    out = Path(cfg.out)
    settings = {k: v for k, v in asdict(cfg).items() if k not in ("out", "n_problems", "base_url", *ENGINE_FIELDS)}
    settings["knobs"] = task.knobs()
    claim_run_dir(out, settings)
    loop = ProblemLoop("linearized", out / "linearized.jsonl", problems, 1, cfg, batch=cfg.batch_problems)
    source = describe_backend(cfg, cfg.model)
    sampler = loop.sampler(sampler, lambda: sampler_from(cfg, cfg.model), cfg.max_retries, source)

    def work(items):
        return {r["problem_id"]: [r] for r in linearized_chunk(sampler, task, items, cfg)}

    t0 = time.time()
    # a chunk of problems is sampled together, fixed by index: a rerun redoes the same chunk
    loop.run(sampler, work, source=source, bar=False)
    rows = [recs[0] for recs in loop.records()]
    s = summarize(rows, cfg)
    s.update(model=cfg.model, task=cfg.task, knobs=task.knobs(), failed_problems=dict(loop.gave_up.by_kind))
    s["wall_seconds_this_run"] = round(time.time() - t0, 2)
    write_json(out / "summary.json", s)
    loop.gave_up.finish()
    return s
