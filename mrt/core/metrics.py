"""Progress, regret, maj@k, pass@k and budget curves. Pure functions, no I/O.

Notation: a trace has ``k`` episodes ending at output-token offsets ``t_1 < ... < t_k``;
``j[0]`` is J(x, empty) (answer with no thinking) and ``j[i]`` is J after ``i`` episodes.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import defaultdict
from collections.abc import Sequence


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


def _curve_area(ts: Sequence[float], vs: Sequence[float], budget: float, t0: float = 0.0, v0: float = 0.0) -> float:
    """Area under the piecewise-linear curve through (t0, v0), (ts[i], vs[i]) on [t0, budget].

    After the last point the curve stays flat at its last value (the trace has finished).
    """
    if budget <= 0:
        raise ValueError(f"budget must be positive, got {budget}")
    area, t_prev, v_prev = 0.0, t0, v0
    for t, v in zip(ts, vs):
        if t < t_prev:
            raise ValueError("curve points must be non-decreasing in tokens")
        if t >= budget:
            v_cut = v_prev + (v - v_prev) * (budget - t_prev) / (t - t_prev) if t > t_prev else v
            return area + 0.5 * (v_prev + v_cut) * (budget - t_prev)
        area += 0.5 * (v_prev + v) * (t - t_prev)
        t_prev, v_prev = t, v
    return area + v_prev * (budget - t_prev)


def normalized_regret(ends: Sequence[int], j: Sequence[float], budget: float) -> float:
    """regret(C) = 1 - (1/C) * integral_0^C J(t) dt against the constant comparator J* = 1, on
    the thinking-token axis (this package's default, ``regret_axis="thinking"``).

    ``j`` holds J(empty) and then J after each episode (``len(j) == len(ends) + 1``). J(t) starts
    at (0, J(empty)) -- answering at once is worth J(empty) -- and is linear between episode
    ends, cut at the budget C, flat after the last end. A trace with no thinking scores
    1 - J(empty).
    """
    if len(j) != len(ends) + 1:
        raise ValueError("j must hold J(empty) and one value per episode end")
    return 1.0 - _curve_area(ends, j[1:], budget, 0.0, j[0]) / budget


def _step_area(ends: Sequence[int], j: Sequence[float], budget: float, start: float = 0.0) -> float:
    """Area under the step curve J(t) = J after the last episode ending at or before t (J(empty)
    before the first end) on [start, budget]."""
    area, t_prev, v_prev = 0.0, 0.0, j[0]
    for t, v in zip(list(ends) + [float("inf")], list(j[1:]) + [None]):
        lo, hi = max(t_prev, start), min(t, budget)
        if hi > lo:
            area += v_prev * (hi - lo)
        if t >= budget or v is None:
            break
        t_prev, v_prev = t, v
    return area


def normalized_regret_step(ends: Sequence[int], j: Sequence[float], budget: float) -> float:
    """Normalised regret on the step curve: 1 - (1/C) * integral_0^C J(t) dt with J(t) the
    accuracy of an answer forced at the last episode end within t (J(empty) before the first).
    The same curve as accuracy at budget (:func:`j_at_budget`); a check beside the declared,
    interpolated :func:`normalized_regret`, which credits an episode's progress linearly over it."""
    if len(j) != len(ends) + 1:
        raise ValueError("j must hold J(empty) and one value per episode end")
    if budget <= 0:
        raise ValueError(f"budget must be positive, got {budget}")
    return 1.0 - _step_area(ends, j, budget) / budget


def regret_split(ends: Sequence[int], j: Sequence[float], budget: float, curve: str = "interpolated") -> dict:
    """Where a trace's normalised regret at budget C comes from (docs/concepts.md, "Regret split").

    * ``before_first_end`` + ``after_first_end`` = regret: (1/C) * integral of (1 - J(t)) over
      [0, min(e1, C)] and over [e1, C], e1 the first episode's end (a trace without episodes: all
      before). Before e1 the curve runs from the answer with no thinking, J(empty).
    * ``start`` - ``progress_area`` = regret: ``start`` = 1 - J(empty), the regret of answering
      at once and never improving; ``progress_area`` = (1/C) * integral over [0, C] of
      (J(t) - J(empty)), the area between the curve and its own start (what thinking added; negative
      when thinking lowered J).

    ``curve``: ``interpolated`` (the regret's declared curve, :func:`normalized_regret`) or
    ``step`` (:func:`normalized_regret_step`)."""
    if len(j) != len(ends) + 1:
        raise ValueError("j must hold J(empty) and one value per episode end")
    if budget <= 0:
        raise ValueError(f"budget must be positive, got {budget}")
    if curve == "interpolated":
        total = _curve_area(ends, j[1:], budget, 0.0, j[0])
        first = _curve_area(ends[:1], j[1:2], min(ends[0], budget), 0.0, j[0]) if ends and ends[0] > 0 else None
    elif curve == "step":
        total = _step_area(ends, j, budget)
        first = j[0] * min(ends[0], budget) if ends and ends[0] > 0 else None
    else:
        raise ValueError(f"curve must be interpolated or step, got {curve!r}")
    e1 = min(ends[0], budget) if ends else budget
    if first is None:
        first = total
    elif e1 <= 0:
        first = 0.0
    before = (e1 - first) / budget
    regret = 1.0 - total / budget
    return {
        "regret": regret,
        "before_first_end": before,
        "after_first_end": regret - before,
        "start": 1.0 - j[0],
        "progress_area": total / budget - j[0],
    }


def authors_axis(input_tokens: Sequence[int], answer_tokens: Sequence[float]) -> list[float]:
    """The x-axis of the MRT authors' regret notebook: for every prefix (J(empty) first), the
    tokens of the meta-prover's whole input (prompt, thinking prefix, and the termination text
    or, at a natural end, the end-of-thinking text) plus the mean tokens of its sampled answers.

    Shorter answers at a later prefix can put it before an earlier one; their code assumes the
    axis rises, so each x is raised to the largest x before it (a vertical step in the curve).
    """
    xs, top = [], 0.0
    for i, a in zip(input_tokens, answer_tokens):
        top = max(top, float(i) + float(a))
        xs.append(top)
    return xs


def normalized_regret_authors(xs: Sequence[float], j: Sequence[float], budget: float) -> float:
    """The MRT authors' normalised regret of one trace (``regret_axis="authors"``):
    1 - (1/C) * integral_0^C J, the curve through (0, 0), (xs[0], J(empty)), (xs[1], J_1), ...
    (``xs`` from :func:`authors_axis`), linear, cut at C, flat after the last point. Averaged over
    traces as a plain mean of these per-trace values, as they did."""
    if len(xs) != len(j) or not xs:
        raise ValueError("one x per J value is needed, J(empty) included")
    return 1.0 - _curve_area(xs, j, budget) / budget


def majority_regret(maj_rows: Sequence[Sequence[float]], budget: int) -> float | None:
    """The MRT authors' regret against a majority-vote comparator on the episode axis, for one
    trace (their ``regret_additional`` notebook).

    ``maj_rows[i]`` = (maj@1, maj@2, maj@4, maj@8) of the answers forced after prefix i (J(empty)
    first). Over each of the first ``budget`` steps i -> i+1 the axis runs x = 1..6 and a sampled
    answer costs one unit of it: thinking on is the line from maj@1(i) at x=1 to J(i+1) at x=6,
    and the comparator is the better of that line and stopping to vote, maj@k at x = k (maj@6 =
    the mean of maj@4 and maj@8), taken at x in {1, 2, 4, 6}, trapezoid areas. The trace's value
    is sum(area_opt - area_line) / sum(area_opt) over its steps; None when area_opt is 0 (the
    authors skip such traces) or it has no step. Average the values over traces.
    """
    xs = (1.0, 2.0, 4.0, 6.0)
    opt_total, gap_total = 0.0, 0.0
    for i in range(min(len(maj_rows) - 1, budget)):
        m1, m2, m4, m8 = (float(v) for v in maj_rows[i][:4])
        nxt = float(maj_rows[i + 1][0])
        vote = (m1, m2, m4, (m4 + m8) / 2)
        line = [m1 + (x - 1) / 5 * (nxt - m1) for x in xs]
        opt = [max(a, b) for a, b in zip(vote, line)]
        area_opt, area_line = _trapz(xs, opt), _trapz(xs, line)
        opt_total += area_opt
        gap_total += area_opt - area_line
    return gap_total / opt_total if opt_total > 0 else None


def _trapz(xs: Sequence[float], ys: Sequence[float]) -> float:
    return sum(0.5 * (y0 + y1) * (x1 - x0) for x0, x1, y0, y1 in zip(xs[:-1], xs[1:], ys[:-1], ys[1:]))


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct: 1 - C(n-c, k) / C(n, k)."""
    if not 0 <= c <= n or k < 1 or k > n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


TIE_RULES = ("expected", "authors")


def majority_vote_score(
    answers: Sequence[str | None],
    correct: Sequence[bool],
    weights: Sequence[float] | None = None,
    tie: str = "expected",
) -> float:
    """Score of one majority vote. ``answers`` are vote labels: equivalent answers must carry the
    same label (see ``Task.answer_labels``); None (no answer) does not vote; no votes scores 0.

    A tie at the top that includes the correct answer scores 1/m among m tied answers with
    ``tie="expected"`` (the expected score of a random tie-break) and 0.5 whatever m with
    ``tie="authors"`` (the MRT authors' code); the two agree on the common two-way tie.
    """
    if tie not in TIE_RULES:
        raise ValueError(f"tie must be one of {TIE_RULES}, got {tie!r}")
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
    hits = sum(a in good for a in tied)
    if not hits or len(tied) == 1:
        return float(hits > 0)
    return hits / len(tied) if tie == "expected" else 0.5


def vote_weights(mean_logprobs: Sequence[float]) -> list[float]:
    """The MRT authors' vote weight of an answer: 2 ** (its mean token log-prob, natural log)."""
    return [2.0 ** float(x) for x in mean_logprobs]


def maj_at_k(
    answers: Sequence[str | None],
    correct: Sequence[bool],
    k: int,
    weights: Sequence[float] | None = None,
    max_subsets: int = 2000,
    seed: int = 0,
    tie: str = "expected",
) -> float:
    """Expected majority-vote score over k answers drawn without replacement from the n given.

    Exact (all C(n, k) subsets) when there are at most ``max_subsets`` of them, otherwise the
    mean over ``max_subsets`` random subsets (seeded). ``weights`` (e.g. :func:`vote_weights`)
    weight the votes; ``tie`` is the tie rule of :func:`majority_vote_score`.
    """
    n = len(answers)
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")

    def score(idx):
        return majority_vote_score(
            [answers[i] for i in idx],
            [correct[i] for i in idx],
            None if weights is None else [weights[i] for i in idx],
            tie,
        )

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


def j_interpolated(ends: Sequence[int], j: Sequence[float], t: float) -> float:
    """J(t) on the regret's curve: linear from (0, J(empty)) through each (episode end, J), flat
    after the last end. Beside :func:`j_at_budget` (the step curve: an answer forced at t)."""
    t_prev, v_prev = 0.0, j[0]
    for e, v in zip(ends, j[1:]):
        if t <= e:
            return v_prev + (v - v_prev) * (t - t_prev) / (e - t_prev) if e > t_prev else v
        t_prev, v_prev = e, v
    return v_prev


def tokens_to_reach(budgets: Sequence[float], accuracy: Sequence[float], target: float) -> float | None:
    """The smallest budget whose accuracy reaches ``target`` (None if none does)."""
    for b, a in zip(budgets, accuracy):
        if a >= target - 1e-12:
            return b
    return None


def tokens_to_fraction(
    budgets: Sequence[float], accuracy: Sequence[float], fractions: Sequence[float] = (0.5, 0.75, 0.9, 1.0)
) -> dict[str, dict]:
    """Tokens to reach each fraction of the curve's final accuracy: {"0.9": {"accuracy": target,
    "tokens": budget or None}}. The target is the exact product (never rounded above the final
    accuracy, so the 100% target is always reached)."""
    final = accuracy[-1]
    return {
        f"{f:g}": {"accuracy": f * final, "tokens": tokens_to_reach(budgets, accuracy, f * final)} for f in fractions
    }


def step_points(budgets: Sequence[float], values: Sequence[float]) -> dict[str, float]:
    """A step curve reduced to the points where it changes, plus its first and last point: a
    lossless form of it for :func:`resample_curve` (which reads a step curve)."""
    out = {}
    for i, (b, v) in enumerate(zip(budgets, values)):
        if i == 0 or i == len(values) - 1 or v != values[i - 1]:
            out[f"{b:g}"] = v
    return out


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


def extrapolated_accuracy(
    extrapolation: list[dict], base_tokens: float, factors: Sequence[float] = (1, 2, 4)
) -> dict[str, dict]:
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
