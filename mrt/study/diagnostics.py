"""Diagnostics of a base policy for verifier-based vs verifier-free scaling (MRT-NOTES §6).
Pure functions, no I/O; ``mrt diagnose`` (mrt/diagnose.py) samples and calls them.

* reward spread: per-problem mean and standard deviation of the rollouts' 0/1 rewards;
* anti-concentration at margin ``c``: the fraction of rollouts whose reward exceeds their
  problem's mean by ``c`` standard deviations. A base policy whose rewards are anti-concentrated
  gives a verifier (or RL) something to select: rollouts well above the mean exist with
  non-trivial probability. Problems whose rollouts all get the same reward have std 0 and no
  rollout exceeds their mean;
* heterogeneity of correct traces: the spread of their lengths and episode counts (std and
  coefficient of variation, per problem, then averaged), and the share of distinct styles;
* Monte Carlo heterogeneity: along a trace, the variance over sampled next segments of the
  success probability J after that segment, summed over the trace's segments:
  ``sum_j Var_{z_{j+1} ~ pi(.|x, z_{0:j})} [ J(x, z_{0:j+1}) ]``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence


def _mean_std(xs: Sequence[float]) -> tuple[float, float]:
    """Mean and population standard deviation (0 for fewer than two values)."""
    if not xs:
        raise ValueError("need at least one value")
    m = sum(xs) / len(xs)
    return m, (sum((x - m) ** 2 for x in xs) / len(xs)) ** 0.5


def reward_spread(rewards: Sequence[Sequence[float]]) -> list[dict]:
    """Per problem (one list of rollout rewards each): ``mean`` and ``std`` of the rewards."""
    out = []
    for rs in rewards:
        m, s = _mean_std(rs)
        out.append({"mean": m, "std": s, "n": len(rs)})
    return out


def anti_concentration(rewards: Sequence[Sequence[float]], c: float = 1.0) -> float:
    """Fraction of all rollouts with reward > mean + c * std of their problem."""
    hits = total = 0
    for rs in rewards:
        m, s = _mean_std(rs)
        total += len(rs)
        if s > 0:
            hits += sum(r > m + c * s for r in rs)
    if total == 0:
        raise ValueError("no rollouts")
    return hits / total


def z_scores(rewards: Sequence[Sequence[float]]) -> list[float]:
    """(reward - problem mean) / problem std of every rollout of problems with std > 0 (for the
    anti-concentration histogram)."""
    out = []
    for rs in rewards:
        m, s = _mean_std(rs)
        if s > 0:
            out += [(r - m) / s for r in rs]
    return out


def spread(values: Sequence[float]) -> dict:
    """``mean``, ``std`` and coefficient of variation ``cv`` (std / mean; 0 when mean is 0)."""
    m, s = _mean_std(values)
    return {"mean": m, "std": s, "cv": s / m if m else 0.0, "n": len(values)}


def correct_trace_heterogeneity(per_problem: Sequence[Sequence[dict]]) -> dict:
    """Spread of the correct traces of each problem: ``per_problem[i]`` lists its correct traces
    as dicts with ``tokens``, ``episodes`` and ``style`` (any hashable description).

    Returns the mean over problems with at least two correct traces of the within-problem std and
    cv of lengths and episode counts, and of the fraction of distinct styles among them.
    """
    rows = [p for p in per_problem if len(p) >= 2]
    if not rows:
        return {
            "problems": 0,
            "length_std": 0.0,
            "length_cv": 0.0,
            "episodes_std": 0.0,
            "episodes_cv": 0.0,
            "distinct_style_fraction": 0.0,
        }
    acc = Counter()
    for traces in rows:
        ln = spread([t["tokens"] for t in traces])
        ep = spread([t["episodes"] for t in traces])
        acc["length_std"] += ln["std"]
        acc["length_cv"] += ln["cv"]
        acc["episodes_std"] += ep["std"]
        acc["episodes_cv"] += ep["cv"]
        acc["distinct_style_fraction"] += len({t["style"] for t in traces}) / len(traces)
    return {"problems": len(rows), **{k: v / len(rows) for k, v in acc.items()}}


def mc_heterogeneity(next_segment_j: Sequence[Sequence[float]]) -> float:
    """Sum over a trace's segments j of the variance, over M sampled next segments, of the J
    estimate after that segment: ``next_segment_j[j]`` holds those M estimates."""
    total = 0.0
    for js in next_segment_j:
        if len(js) >= 2:
            total += _mean_std(js)[1] ** 2
    return total


def histogram(values: Sequence[float], edges: Sequence[float]) -> list[int]:
    """Counts of ``values`` in the bins [edges[i], edges[i+1]) (the last bin closed)."""
    counts = [0] * (len(edges) - 1)
    for v in values:
        for i in range(len(counts)):
            last = i == len(counts) - 1
            if edges[i] <= v < edges[i + 1] or (last and v == edges[-1]):
                counts[i] += 1
                break
    return counts
