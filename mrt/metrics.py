"""Progress, regret, maj@k, pass@k and budget curves. Pure functions, no I/O.

Notation: a trace has ``k`` episodes ending at output-token offsets ``t_1 < ... < t_k``;
``j[0]`` is J(x, empty) (answer with no thinking) and ``j[i]`` is J after ``i`` episodes.
"""
from __future__ import annotations

import itertools
import math
import random
from collections import defaultdict
from typing import Sequence


def wilson_interval(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a Bernoulli mean (95% by default); (0, 1) when n == 0."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def progress(j: Sequence[float]) -> list[float]:
    """r_prg(z_i) = J(z_{0:i}) - J(z_{0:i-1}); ``j`` includes J(empty) first, so k+1 values -> k."""
    return [b - a for a, b in zip(j[:-1], j[1:])]


def _curve_area(ts: Sequence[float], vs: Sequence[float], budget: float) -> float:
    """Area under the piecewise-linear curve through (0,0), (ts[i], vs[i]) on [0, budget].

    After the last point the curve stays flat at its last value (the trace has finished).
    """
    if budget <= 0:
        raise ValueError(f"budget must be positive, got {budget}")
    area, t_prev, v_prev = 0.0, 0.0, 0.0
    for t, v in zip(ts, vs):
        if t < t_prev:
            raise ValueError("episode end offsets must be non-decreasing")
        if t >= budget:
            v_cut = v_prev + (v - v_prev) * (budget - t_prev) / (t - t_prev) if t > t_prev else v
            return area + 0.5 * (v_prev + v_cut) * (budget - t_prev)
        area += 0.5 * (v_prev + v) * (t - t_prev)
        t_prev, v_prev = t, v
    return area + v_prev * (budget - t_prev)


def normalized_regret(ends: Sequence[int], j_after: Sequence[float], budget: float) -> float:
    """regret(C) = 1 - (1/C) * integral_0^C J(t) dt against the constant comparator J* = 1.

    J(t) is J at the episode ends ``ends`` (``j_after[i]`` after episode i+1), linearly
    interpolated over output tokens starting from (0, 0), cut at the budget C.
    """
    if len(ends) != len(j_after):
        raise ValueError("ends and j_after must have the same length")
    return 1.0 - _curve_area(ends, j_after, budget) / budget


def comparator_areas(ends: Sequence[int], j_after: Sequence[float], comparator: Sequence[float],
                     budget: float) -> tuple[float, float]:
    """(area_opt, area_model) on [0, C] where the comparator curve is max(comparator, J) per end.

    With ``comparator`` = maj@k of the forced answers at each prefix this is the appendix variant;
    the regret over a set of traces is ``sum(area_opt - area_model) / sum(area_opt)``.
    """
    opt = [max(a, b) for a, b in zip(comparator, j_after)]
    return _curve_area(ends, opt, budget), _curve_area(ends, j_after, budget)


def majority_regret(areas: Sequence[tuple[float, float]]) -> float:
    total_opt = sum(a for a, _ in areas)
    return (total_opt - sum(b for _, b in areas)) / total_opt if total_opt > 0 else 0.0


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct: 1 - C(n-c, k) / C(n, k)."""
    if not 0 <= c <= n or k < 1 or k > n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def majority_vote_score(answers: Sequence[str | None], correct: Sequence[bool],
                        weights: Sequence[float] | None = None) -> float:
    """Score of one majority vote: missing answers (None) do not vote; a tie at the top among m
    answers that includes the correct one scores 1/m (0.5 for the common two-way tie); no votes
    scores 0."""
    votes: dict[str, float] = defaultdict(float)
    good: set[str] = set()
    for i, (a, c) in enumerate(zip(answers, correct)):
        if a is None:
            continue
        votes[a] += 1.0 if weights is None else weights[i]
        if c:
            good.add(a)
    if not votes:
        return 0.0
    top = max(votes.values())
    tied = [a for a, v in votes.items() if math.isclose(v, top, rel_tol=1e-9, abs_tol=1e-12)]
    return sum(a in good for a in tied) / len(tied)


def maj_at_k(answers: Sequence[str | None], correct: Sequence[bool], k: int,
             weights: Sequence[float] | None = None, max_subsets: int = 2000,
             seed: int = 0) -> float:
    """Expected majority-vote score over k answers drawn without replacement from the n given.

    Exact (all C(n, k) subsets) when there are at most ``max_subsets`` of them, otherwise the
    mean over ``max_subsets`` random subsets (seeded). The authors weighted votes by
    2^(mean token logprob); pass such ``weights`` to reproduce that.
    """
    n = len(answers)
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")

    def score(idx):
        return majority_vote_score([answers[i] for i in idx], [correct[i] for i in idx],
                                   None if weights is None else [weights[i] for i in idx])

    if math.comb(n, k) <= max_subsets:
        subsets = list(itertools.combinations(range(n), k))
    else:
        rng = random.Random(seed)
        subsets = [rng.sample(range(n), k) for _ in range(max_subsets)]
    return sum(score(s) for s in subsets) / len(subsets)


def j_at_budget(ends: Sequence[int], j: Sequence[float], budget: float) -> float:
    """Accuracy when thinking is cut at ``budget`` tokens and the answer forced at the last
    episode end within it: J after the last episode with end <= budget (``j[0]`` if none)."""
    value = j[0]
    for t, v in zip(ends, j[1:]):
        if t > budget:
            break
        value = v
    return value


def tokens_to_reach(budgets: Sequence[float], accuracy: Sequence[float], target: float) -> float | None:
    """The smallest budget whose accuracy reaches ``target`` (None if none does)."""
    for b, a in zip(budgets, accuracy):
        if a >= target - 1e-12:
            return b
    return None


def resample_curve(points: dict, grid: Sequence[int]) -> list[float]:
    """A step curve {budget: accuracy} (keys may be strings) read at each budget of ``grid``:
    the value at the largest key <= budget (the first value before the first key; the last
    value past the last key)."""
    pts = sorted((float(k), float(v)) for k, v in points.items())
    if not pts:
        raise ValueError("empty curve")
    out, i = [], 0
    for b in grid:
        while i + 1 < len(pts) and pts[i + 1][0] <= b:
            i += 1
        out.append(pts[i][1])
    return out


def token_efficiency(budgets: Sequence[float], acc_ref: Sequence[float], acc_new: Sequence[float]) -> float | None:
    """Tokens the reference needs to reach its own final accuracy divided by the tokens the new
    method needs to reach that accuracy (> 1: the new method is more token-efficient).

    None when the new method never reaches it."""
    target = acc_ref[-1]
    t_ref = tokens_to_reach(budgets, acc_ref, target)
    t_new = tokens_to_reach(budgets, acc_new, target)
    if t_new is None:
        return None
    if t_new == 0:
        return math.inf if t_ref else 1.0
    return t_ref / t_new


def extrapolated_accuracy(extrapolation: list[dict], base_tokens: float,
                          factors: Sequence[float] = (1, 2, 4)) -> dict[str, dict]:
    """Accuracy at ``factor`` x the natural thinking length, from budget-forcing results.

    ``extrapolation`` rows hold ``extensions``, ``extra_tokens`` (mean tokens added) and ``j``;
    the budget of a row is ``base_tokens + extra_tokens``. J is linearly interpolated between
    rows; a factor past the last row gets the last row's J and ``reached`` < factor.
    """
    rows = sorted(extrapolation, key=lambda r: r["extra_tokens"])
    xs = [(base_tokens + r["extra_tokens"]) / base_tokens if base_tokens > 0 else 1.0 for r in rows]
    ys = [r["j"] for r in rows]
    out = {}
    for f in factors:
        if f <= xs[0]:
            out[f"{f:g}x"] = {"j": ys[0], "reached": xs[0]}
        elif f >= xs[-1]:
            out[f"{f:g}x"] = {"j": ys[-1], "reached": xs[-1]}
        else:
            k = next(i for i in range(1, len(xs)) if xs[i] >= f)
            w = (f - xs[k - 1]) / (xs[k] - xs[k - 1]) if xs[k] > xs[k - 1] else 1.0
            out[f"{f:g}x"] = {"j": ys[k - 1] + w * (ys[k] - ys[k - 1]), "reached": f}
    return out
