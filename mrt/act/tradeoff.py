"""The accuracy-tokens trade-off of each stop rule, replayed on an analysis directory.

``mrt analyze`` already samples traces, cuts them into episodes and forces ``n`` answers at
every boundary. Stopping is causal, so a trace stopped at boundary j is exactly the trace that
was sampled, cut there: every rule and parameter can be replayed on the same traces (a paired
comparison, no new sampling). At each boundary the first ``k`` forced answers are what the
controller would have sampled for its signal, and the other ``n - k`` are held out to measure
the accuracy of the answer forced where it stops (their mean grade: an unbiased estimate of J
there, independent of the decision).

Tokens of a stopped trace: its thinking tokens up to the stop, plus the controller's overhead
(the signal answers it sampled at every boundary it visited: ``k`` answers for a J estimate, one
trial answer for ``confidence``, none for the learned estimator or the baselines), plus one
forced answer at the stop.

Signals (J sources of ``j-threshold`` and ``stall``):

* ``oracle``: the fraction of the ``k`` answers graded correct -- it needs the reference
  answer, so it is an upper bound on stopping by progress, not a deployable controller;
* ``vote``: the top vote share of the ``k`` answers (self-consistency; no reference);
* ``estimator``: the learned progress estimator's prediction (one forward pass, no sampling).
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass

from mrt.act.rules import StopRule, parse_rule, stop_index

J_SOURCES = ("oracle", "vote", "estimator")
DEFAULT_GRID = {
    "j-threshold": [f"j-threshold:tau={t}" for t in (0.25, 0.5, 0.75, 1.0)],
    "stall": [f"stall:eps={e},m={m}" for e in (0.0, 0.25) for m in (1, 2, 3)],
    "confidence": [f"confidence:tau={t}" for t in (0.3, 0.5, 0.7, 0.8, 0.9, 0.95)],
}


@dataclass
class Boundary:
    tokens: int  # thinking tokens at this boundary
    acc: float  # mean grade of the held-out forced answers (accuracy of stopping here)
    answer_tokens: float  # mean tokens of one forced answer here
    j: float  # oracle J estimate from the k signal answers
    vote: float  # top vote share of the k signal answers
    confidence: float  # exp(mean log-prob) of the first signal answer (the trial answer)
    estimate: float | None = None  # the learned estimator's J, when given


def boundaries(record: dict, k: int, estimates: list[float] | None = None) -> list[Boundary]:
    """The boundaries of one ``traces.jsonl`` record (J(empty) first, the natural end last)."""
    out = []
    for i, p in enumerate(record["prefixes"]):
        n = len(p["grades"])
        if n <= k:
            raise ValueError(
                f"{n} forced answers per prefix: need more than k={k} (k for the signal, "
                "the rest to measure accuracy); analyse with more --answers-per-prefix"
            )
        labels = p.get("labels") or p["answers"]
        votes = [x for x in labels[:k] if x is not None]
        top = max((votes.count(x) for x in set(votes)), default=0)
        out.append(
            Boundary(
                tokens=p["tokens"],
                acc=sum(p["grades"][k:]) / (n - k),
                answer_tokens=float(p.get("answer_tokens", 0.0)),
                j=sum(p["grades"][:k]) / k,
                vote=top / k,
                confidence=math.exp(p["mean_logprobs"][0]) if p["mean_logprobs"] else 0.0,
                estimate=None if estimates is None else estimates[i],
            )
        )
    return out


def replay(bounds: list[Boundary], rule: StopRule, source: str, k: int) -> dict:
    """Where ``rule`` stops this trace, and what that costs and yields."""
    if rule.signal == "j":
        if source == "estimator" and bounds[0].estimate is None:
            raise ValueError("j source 'estimator' needs the estimator's predictions (mrt estimator predict)")
        signals = [b.j if source == "oracle" else b.vote if source == "vote" else b.estimate for b in bounds]
        per_visit = 0.0 if source == "estimator" else float(k)
    elif rule.signal == "confidence":
        signals, per_visit = [b.confidence for b in bounds], 1.0
    else:
        signals, per_visit = [0.0] * len(bounds), 0.0
    s = stop_index(rule, signals, [b.tokens for b in bounds])
    overhead = per_visit * sum(b.answer_tokens for b in bounds[: s + 1])
    think = bounds[s].tokens
    return {
        "stop": s,
        "acc": bounds[s].acc,
        "thinking": think,
        "overhead": overhead,
        "tokens": think + overhead + bounds[s].answer_tokens,
    }


def _bootstrap(by_problem: dict[str, list[dict]], key, draws: int, seed: int) -> tuple[float, float]:
    """95% percentile interval of the mean of ``key(row)`` over traces, problems resampled."""
    rng = random.Random(seed)
    groups = list(by_problem.values())
    stats = []
    for _ in range(draws):
        rows = [r for g in (rng.choice(groups) for _ in groups) for r in g]
        stats.append(statistics.fmean(key(r) for r in rows))
    stats.sort()
    return stats[int(0.025 * draws)], stats[min(draws - 1, int(0.975 * draws))]


def tradeoff(
    records: list[dict],
    k: int = 4,
    rules: list[str] | None = None,
    sources: tuple[str, ...] = ("oracle", "vote"),
    budgets: list[int] | None = None,
    estimates: dict | None = None,
    draws: int = 1000,
    seed: int = 0,
) -> dict:
    """Accuracy and tokens of every rule over its parameters (and the baselines) on these
    records; ``estimates``: {(problem_id, trace): [J per prefix]} from the learned estimator."""
    if not records:
        raise ValueError("no traces to replay")
    bounds = [boundaries(r, k, (estimates or {}).get((r["problem_id"], r["trace"]))) for r in records]
    if budgets is None:
        ends = sorted({b.tokens for bs in bounds for b in bs})
        budgets = sorted(
            {
                ends[min(len(ends) - 1, int(q * (len(ends) - 1)))]
                for q in (0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
            }
        )
    points = [("budget", "none", parse_rule(f"budget:tokens={b}")) for b in budgets]
    points.append(("natural", "none", parse_rule("natural")))
    for text in rules if rules is not None else [r for g in DEFAULT_GRID.values() for r in g]:
        rule = parse_rule(text)
        for src in sources if rule.signal == "j" else ("none",):
            if src == "estimator" and estimates is None:
                continue
            points.append((rule.name, src, rule))
    natural = [replay(bs, parse_rule("natural"), "none", k) for bs in bounds]
    rows = []
    for family, src, rule in points:
        res = [replay(bs, rule, src, k) for bs in bounds]
        by_problem: dict[str, list[dict]] = {}
        for r, x, nat in zip(records, res, natural):
            by_problem.setdefault(r["problem_id"], []).append(
                {**x, "d_acc": x["acc"] - nat["acc"], "nat_tokens": nat["tokens"]}
            )
        flat = [x for g in by_problem.values() for x in g]
        mean_tok = statistics.fmean(x["tokens"] for x in flat)
        nat_tok = statistics.fmean(x["nat_tokens"] for x in flat)
        rows.append(
            {
                "rule": str(rule),
                "family": family,
                "source": src,
                "accuracy": statistics.fmean(x["acc"] for x in flat),
                "accuracy_ci": _bootstrap(by_problem, lambda x: x["acc"], draws, seed),
                "tokens": mean_tok,
                "tokens_ci": _bootstrap(by_problem, lambda x: x["tokens"], draws, seed),
                "thinking_tokens": statistics.fmean(x["thinking"] for x in flat),
                "overhead_tokens": statistics.fmean(x["overhead"] for x in flat),
                "stop_boundary": statistics.fmean(x["stop"] for x in flat),
                "accuracy_vs_natural": statistics.fmean(x["d_acc"] for x in flat),
                "accuracy_vs_natural_ci": _bootstrap(by_problem, lambda x: x["d_acc"], draws, seed),
                "token_ratio_vs_natural": mean_tok / nat_tok if nat_tok else None,
            }
        )
    _against_budget_curve(rows)
    return {
        "k": k,
        "n_traces": len(records),
        "n_problems": len({r["problem_id"] for r in records}),
        "sources": list(sources) + (["estimator"] if estimates is not None and "estimator" not in sources else []),
        "points": rows,
    }


def _interp(xs: list[float], ys: list[float], x: float) -> float | None:
    """Linear interpolation of a curve sorted by x; None outside its range."""
    if not xs or x < xs[0] - 1e-9 or x > xs[-1] + 1e-9:
        return None
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        if x0 - 1e-9 <= x <= x1 + 1e-9:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return ys[-1]


def _tokens_for(xs: list[float], ys: list[float], a: float) -> float | None:
    """The fewest tokens at which a non-decreasing curve reaches accuracy ``a`` (linear between
    its points); None if it never does."""
    for i, y in enumerate(ys):
        if y >= a - 1e-12:
            if i == 0:
                return xs[0]
            return xs[i - 1] + (xs[i] - xs[i - 1]) * (a - ys[i - 1]) / (y - ys[i - 1])
    return None


def _against_budget_curve(rows: list[dict]) -> None:
    """For each point: the fixed-budget curve's accuracy at the same mean tokens (accuracy gained
    at equal tokens) and the tokens that curve needs for the same accuracy (tokens saved at equal
    accuracy; the curve is made monotone by its running maximum). None outside the curve."""
    curve = sorted((r["tokens"], r["accuracy"]) for r in rows if r["family"] == "budget")
    xs, best, ys = [], -1.0, []
    for t, a in curve:
        best = max(best, a)
        xs.append(t)
        ys.append(best)
    for r in rows:
        at_equal_tokens = _interp(xs, ys, r["tokens"])
        r["accuracy_vs_budget_curve"] = None if at_equal_tokens is None else r["accuracy"] - at_equal_tokens
        need = _tokens_for(xs, ys, r["accuracy"])
        r["tokens_saved_vs_budget_curve"] = None if need is None else need - r["tokens"]
