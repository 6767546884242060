"""The accuracy-tokens trade-off of each stop rule, replayed on an analysis directory.

``mrt analyze`` already samples traces, cuts them into episodes and forces ``n`` answers at
every boundary. Stopping is causal, so a trace stopped at boundary j is exactly the trace that
was sampled, cut there: every rule and parameter can be replayed on the same traces (a paired
comparison, no new sampling). At each boundary the first ``k`` forced answers are what the
controller would have sampled for its signal, and the other ``n - k`` are held out to measure
the accuracy of the answer forced where it stops (their mean grade: an unbiased estimate of J
there, independent of the decision).

Tokens of a stopped trace, as the online controller (:mod:`mrt.act.controller`) pays them:

* the thinking it generated: up to the stop, plus the marker that revealed the boundary
  (:func:`mrt.act.controller.reveal_offsets`; at the natural end, the end-of-thinking tokens);
* the signal answers at every boundary it visited before the end (``k`` answers for an oracle
  or vote J, one trial answer for ``confidence``, none for the estimator and the baselines); the
  natural end is never measured, nothing is left to decide there;
* the answer: at an early stop with ``reuse`` (the default) and a rule that sampled answers
  there, one of them at no further cost (the majority of the ``k``, or the trial answer), graded
  as it is; otherwise one fresh forced answer (its accuracy: the held-out answers' mean).

The fixed-budget curve (``budget:tokens=B``) is the idealised comparator: the answer at the last
boundary within B, charged only the thinking up to that boundary (as if it knew where episodes
end), which is fewer tokens than an online budget pays. A margin over it is therefore
conservative.

Signals (J sources of ``j-threshold`` and ``stall``):

* ``oracle``: the fraction of the ``k`` answers graded correct -- it needs the reference
  answer, so it is an upper bound on stopping by progress, not a deployable controller;
* ``vote``: the top vote share of the ``k`` answers (self-consistency; no reference);
* ``estimator``: the learned progress estimator's prediction (one forward pass, no sampling).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from mrt.act.rules import StopRule, parse_rule, should_stop, stop_index
from mrt.core.trace import TraceRecord, as_records

J_SOURCES = ("oracle", "vote", "estimator")
DEFAULT_GRID = {
    "j-threshold": [f"j-threshold:tau={t}" for t in (0.25, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9, 1.0)],
    "stall": [f"stall:eps={e},m={m}" for e in (0.0, 0.25) for m in (1, 2, 3)],
    "confidence": [f"confidence:tau={t}" for t in (0.3, 0.5, 0.7, 0.8, 0.9, 0.95)],
}


@dataclass
class Boundary:
    tokens: int  # thinking tokens at this boundary
    acc: float  # mean grade of the held-out forced answers (accuracy of a fresh answer here)
    answer_tokens: float  # mean tokens of one forced answer here
    j: float  # oracle J estimate from the k signal answers
    vote: float  # top vote share of the k signal answers
    confidence: float  # exp(mean log-prob) of the first signal answer (the trial answer)
    estimate: float | None = None  # the learned estimator's J, when given
    generated: float | None = None  # thinking tokens generated when the controller decides here (None: tokens)
    end: bool = False  # the trace's end (natural end or cap): never measured
    majority: float | None = None  # grade of the majority of the k signal answers (None: none parsed)
    trial: float | None = None  # grade of the trial answer (None: not parsed)
    signal_tokens: float | None = None  # tokens of the signal answers sampled here (None: k x answer_tokens)


def _majority(labels: list, grades: list) -> float | None:
    """Grade of the majority answer (equivalent answers vote together, a tie to the earliest)."""
    votes = [x for x in labels if x is not None]
    if not votes:
        return None
    top = max(votes.count(x) for x in set(votes))
    first = next(i for i, x in enumerate(labels) if x is not None and votes.count(x) == top)
    return float(grades[first])


def boundaries(
    record: TraceRecord | dict, k: int, estimates: list[float] | None = None, generated: list[float] | None = None
) -> list[Boundary]:
    """The boundaries of one ``traces.jsonl`` record (J(empty) first, the natural end last);
    ``generated``: :func:`mrt.act.controller.reveal_offsets` of the trace."""
    (record,) = as_records([record])
    out = []
    last = len(record.prefixes) - 1
    for i, p in enumerate(record.prefixes):
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
                generated=None if generated is None else generated[i],
                end=i == last and last > 0,
                majority=_majority(labels[:k], p["grades"][:k]),
                trial=float(p["grades"][0]) if p["answers"][0] is not None else None,
            )
        )
    return out


def observed_bounds(row: dict) -> list[Boundary]:
    """The boundaries one controller trace measured in observe mode (``run_controller(...,
    observe=True)``): what the replay needs to say where a rule stops it and what that costs."""
    out = []
    for p in row["observed"]:
        reuse = p.get("reuse")
        out.append(
            Boundary(
                tokens=p["tokens"],
                acc=float(p["correct"]),
                answer_tokens=float(p["answer_tokens"]),
                j=p.get("j", 0.0),
                vote=p.get("vote", 0.0),
                confidence=p.get("signal", 0.0),
                estimate=p.get("signal"),
                generated=p["generated"],
                end=bool(p.get("end")),
                majority=None if reuse is None else float(reuse[1]),
                trial=None if reuse is None else float(reuse[1]),
                signal_tokens=p.get("signal_tokens"),
            )
        )
    return out


def replay(bounds: list[Boundary], rule: StopRule, source: str, k: int, reuse: bool = True) -> dict:
    """Where ``rule`` stops this trace, and what that costs and yields (module doc)."""
    samples = False
    if rule.signal == "j":
        if source == "estimator" and bounds[0].estimate is None:
            raise ValueError("j source 'estimator' needs the estimator's predictions (mrt estimator predict)")
        signals = [b.j if source == "oracle" else b.vote if source == "vote" else b.estimate for b in bounds]
        per_visit, samples = (0.0, False) if source == "estimator" else (float(k), True)
    elif rule.signal == "confidence":
        signals, per_visit, samples = [b.confidence for b in bounds], 1.0, True
    else:
        signals, per_visit = [0.0] * len(bounds), 0.0
    last = len(bounds) - 1
    s = stop_index(rule, signals, [b.tokens for b in bounds])
    early = rule.signal is not None and (s < last or (last == 0 and should_stop(rule, signals[:1])))
    visited = bounds[: s + 1] if early or last == 0 else bounds[:last]
    overhead = 0.0
    if rule.signal is not None:
        overhead = sum(b.signal_tokens if b.signal_tokens is not None else per_visit * b.answer_tokens for b in visited)
    b = bounds[s]
    if rule.name == "budget" and s < last:
        think = float(b.tokens)  # the idealised budget: charged to the boundary (module doc)
    elif early and s == 0:
        think = 0.0
    else:
        think = float(b.generated if b.generated is not None else b.tokens)
    acc, answer, reused = b.acc, b.answer_tokens, False
    if reuse and early and samples:
        grade = b.majority if rule.signal == "j" else b.trial
        if grade is not None:
            acc, answer, reused = grade, 0.0, True
    return {
        "stop": s,
        "acc": acc,
        "thinking": b.tokens,
        "generated": think,
        "overhead": overhead,
        "answer_tokens": answer,
        "reused": reused,
        "tokens": think + overhead + answer,
    }


class _Boot:
    """Bootstrap over problems with the per-problem sums precomputed: the mean over traces of a
    resample is (sum of the drawn problems' sums) / (their trace counts)."""

    def __init__(self, problems: list[str], draws: int, seed: int):
        import numpy as np

        self.np = np
        self.index = {p: i for i, p in enumerate(dict.fromkeys(problems))}
        rng = np.random.default_rng(seed)
        n = len(self.index)
        self.draws = rng.integers(0, n, size=(draws, n))
        self.counts = self._sums(problems, [1.0] * len(problems))

    def _sums(self, problems, values):
        out = self.np.zeros(len(self.index))
        for p, v in zip(problems, values):
            out[self.index[p]] += v
        return out

    def means(self, problems, values):
        """The mean of ``values`` over traces in every resample (one per draw)."""
        return self._sums(problems, values)[self.draws].sum(1) / self.counts[self.draws].sum(1)

    def interval(self, problems, values) -> tuple[float, float]:
        m = self.np.sort(self.means(problems, values))
        d = len(m)
        return float(m[int(0.025 * d)]), float(m[min(d - 1, int(0.975 * d))])


def tradeoff(
    records: list[dict],
    k: int = 4,
    rules: list[str] | None = None,
    sources: tuple[str, ...] = ("oracle", "vote"),
    budgets: list[int] | None = None,
    estimates: dict | None = None,
    draws: int = 1000,
    seed: int = 0,
    generated: dict | None = None,
    reuse: bool = True,
    per_trace: bool = False,
) -> dict:
    """Accuracy and tokens of every rule over its parameters (and the baselines) on these
    records; ``estimates``: {(problem_id, trace): [J per prefix]} from the learned estimator;
    ``generated``: {(problem_id, trace): thinking tokens generated when deciding at each
    boundary} (:func:`mrt.act.controller.reveal_offsets`; without it, the boundary's tokens);
    ``per_trace``: each point also lists (stop boundary, accuracy, tokens) per trace."""
    if not records:
        raise ValueError("no traces to replay")
    records = as_records(records)
    keys = [(r.problem_id, r.trace) for r in records]
    bounds = [boundaries(r, k, (estimates or {}).get(key), (generated or {}).get(key)) for r, key in zip(records, keys)]
    return tradeoff_bounds(
        bounds, keys, k, rules, sources, budgets, estimates is not None, draws, seed, reuse, per_trace
    )


def tradeoff_bounds(
    bounds: list[list[Boundary]],
    keys: list[tuple[str, int]],
    k: int = 4,
    rules: list[str] | None = None,
    sources: tuple[str, ...] = ("oracle", "vote"),
    budgets: list[int] | None = None,
    with_estimates: bool = False,
    draws: int = 1000,
    seed: int = 0,
    reuse: bool = True,
    per_trace: bool = False,
) -> dict:
    """:func:`tradeoff` on traces already turned into their boundaries (``keys``: each trace's
    (problem_id, trace)): what a benchmark's committed per-boundary rows are replayed from."""
    if not bounds:
        raise ValueError("no traces to replay")
    estimates = {} if with_estimates else None
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
    problems = [pid for pid, _ in keys]
    boot = _Boot(problems, draws, seed)
    natural = [replay(bs, parse_rule("natural"), "none", k, reuse) for bs in bounds]
    nat_acc = [x["acc"] for x in natural]
    nat_tok = [x["tokens"] for x in natural]
    rows, results = [], []
    for family, src, rule in points:
        res = [replay(bs, rule, src, k, reuse) for bs in bounds]
        results.append(res)
        acc = [x["acc"] for x in res]
        tok = [x["tokens"] for x in res]
        mean_tok, mean_nat = statistics.fmean(tok), statistics.fmean(nat_tok)
        row = {
            "rule": str(rule),
            "family": family,
            "source": src,
            "accuracy": statistics.fmean(acc),
            "accuracy_ci": boot.interval(problems, acc),
            "tokens": mean_tok,
            "tokens_ci": boot.interval(problems, tok),
            "thinking_tokens": statistics.fmean(x["generated"] for x in res),
            "overhead_tokens": statistics.fmean(x["overhead"] for x in res),
            "answer_tokens": statistics.fmean(x["answer_tokens"] for x in res),
            "answer_reused_fraction": statistics.fmean(x["reused"] for x in res),
            "stop_boundary": statistics.fmean(x["stop"] for x in res),
            "accuracy_vs_natural": statistics.fmean(a - b for a, b in zip(acc, nat_acc)),
            "accuracy_vs_natural_ci": boot.interval(problems, [a - b for a, b in zip(acc, nat_acc)]),
            "token_ratio_vs_natural": mean_tok / mean_nat if mean_nat else None,
        }
        if per_trace:
            row["traces"] = [[x["stop"], round(x["acc"], 4), round(x["tokens"], 2)] for x in res]
        rows.append(row)
    _against_budget_curve(rows, results, problems, boot)
    return {
        "k": k,
        "reuse_signal_answer": reuse,
        "n_traces": len(bounds),
        "n_problems": len(set(problems)),
        "sources": list(sources) + (["estimator"] if estimates is not None and "estimator" not in sources else []),
        "points": rows,
        **({"trace_keys": [list(key) for key in keys]} if per_trace else {}),
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


def _curve(points: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    """The fixed-budget curve (tokens, accuracy), made monotone by its running maximum."""
    xs, ys, best = [], [], -1.0
    for t, a in sorted(points):
        best = max(best, a)
        xs.append(t)
        ys.append(best)
    return xs, ys


def _margins(rule_point: tuple[float, float], curve: list[tuple[float, float]]) -> tuple[float | None, float | None]:
    xs, ys = _curve(curve)
    tok, acc = rule_point
    at_equal_tokens = _interp(xs, ys, tok)
    need = _tokens_for(xs, ys, acc)
    return (None if at_equal_tokens is None else acc - at_equal_tokens), (None if need is None else need - tok)


def _against_budget_curve(rows: list[dict], results=None, problems=None, boot=None) -> None:
    """For each point: the fixed-budget curve's accuracy at the same mean tokens (accuracy gained
    at equal tokens) and the tokens that curve needs for the same accuracy (tokens saved at equal
    accuracy; the curve is made monotone by its running maximum). None outside the curve. With
    the per-trace results, 95% bootstrap intervals of both over problems (the curve and the
    point resampled together; draws where the point lies outside the curve are left out, and
    their share is reported)."""
    curve = [(r["tokens"], r["accuracy"]) for r in rows if r["family"] == "budget"]
    for r in rows:
        r["accuracy_vs_budget_curve"], r["tokens_saved_vs_budget_curve"] = _margins((r["tokens"], r["accuracy"]), curve)
    if results is None:
        return
    fam = [r["family"] == "budget" for r in rows]
    acc = [boot.means(problems, [x["acc"] for x in res]) for res in results]
    tok = [boot.means(problems, [x["tokens"] for x in res]) for res in results]
    n_draws = len(acc[0])
    for i, r in enumerate(rows):
        gains, saved = [], []
        for d in range(n_draws):
            c = [(tok[j][d], acc[j][d]) for j in range(len(rows)) if fam[j]]
            g, s = _margins((tok[i][d], acc[i][d]), c)
            if g is not None:
                gains.append(g)
            if s is not None:
                saved.append(s)
        for key, vals in (("accuracy_vs_budget_curve", gains), ("tokens_saved_vs_budget_curve", saved)):
            vals.sort()
            r[key + "_ci"] = (
                [vals[int(0.025 * len(vals))], vals[min(len(vals) - 1, int(0.975 * len(vals)))]] if vals else None
            )
            r[key + "_defined_share"] = len(vals) / n_draws


def select(points: list[dict]) -> dict:
    """The parameter of every (rule family, J source) chosen on a validation split: the highest
    accuracy among the parameters that spend at most the natural end's tokens and the natural end
    itself ("never stop" is always a candidate), ties to the fewer tokens. Also the most accurate
    parameter at any tokens (``most_accurate``, for context: a rule whose signal costs more than
    the thinking it saves can only be chosen as that). Returns {"family|source": {"rule",
    "accuracy", "tokens", "never_stop", "most_accurate"}}."""
    nat = next(p for p in points if p["family"] == "natural")
    out = {}
    for key in dict.fromkeys((p["family"], p["source"]) for p in points if p["family"] not in ("budget", "natural")):
        cands = [p for p in points if (p["family"], p["source"]) == key]
        within = [p for p in cands if p["tokens"] <= nat["tokens"] + 1e-9]
        best = max(within + [nat], key=lambda p: (round(p["accuracy"], 12), -p["tokens"]))
        top = max(cands, key=lambda p: (round(p["accuracy"], 12), -p["tokens"]))
        out["|".join(key)] = {
            "rule": best["rule"],
            "accuracy": best["accuracy"],
            "tokens": best["tokens"],
            "never_stop": best is nat,
            "most_accurate": {"rule": top["rule"], "accuracy": top["accuracy"], "tokens": top["tokens"]},
        }
    return out
