"""The statistics of the didactic benchmarks (second and third design): bootstrap intervals over
problems and seeds, seed-level t intervals, Holm's correction, and token efficiency at fixed
fractions of the baseline's final accuracy with the baseline-vs-itself null from split seeds.

Per-seed figures are ``{problem_id: value}`` dicts, one per seed; paired figures pair seed index
and problem. Pure: numbers in, numbers out (numpy for the resampling).
"""

from __future__ import annotations

import functools
import itertools
import math
import statistics
from collections.abc import Sequence

import numpy as np

REPS = 2000  # bootstrap resamples
FRACTIONS = (0.9, 0.95, 1.0)  # token efficiency targets: these fractions of the baseline's final accuracy


def _quantiles(boots: np.ndarray, level: float) -> list[float]:
    b = np.sort(boots)
    a = (1 - level) / 2
    return [float(b[int(a * len(b))]), float(b[int((1 - a) * len(b)) - 1])]


def bootstrap(per_seed: list[dict[str, float]], reps: int = REPS, seed: int = 0, level: float = 0.95) -> dict:
    """Mean over seeds and problems with an interval from resampling seeds and problems together
    (each draw: n_seeds seeds and n_problems problems with replacement; the mean of the crossed
    grid). ``se``: the standard deviation of the draws."""
    probs = sorted(set.intersection(*(set(d) for d in per_seed)))
    grid = np.array([[d[p] for p in probs] for d in per_seed], dtype=float)
    n_s, n_p = grid.shape
    rng = np.random.default_rng(seed)
    cs = np.zeros((reps, n_s))
    cp = np.zeros((reps, n_p))
    np.add.at(cs, (np.repeat(np.arange(reps), n_s), rng.integers(0, n_s, reps * n_s)), 1)
    np.add.at(cp, (np.repeat(np.arange(reps), n_p), rng.integers(0, n_p, reps * n_p)), 1)
    boots = np.einsum("rs,sp,rp->r", cs, grid, cp) / (n_s * n_p)
    return {
        "mean": float(grid.mean()),
        "ci": _quantiles(boots, level),
        "se": float(boots.std()),
        "seeds": n_s,
        "problems": n_p,
    }


def paired(a: list[dict], b: list[dict], level: float = 0.95) -> dict:
    """a - b, paired by seed index and problem: the bootstrap (``mean``, ``ci``, ``se``, and a
    two-sided ``p`` from its normal approximation) and a seed-level t interval (``t_ci``: the
    per-seed means over problems as the sample)."""
    diffs = [{p: x[p] - y[p] for p in x if p in y} for x, y in zip(a, b)]
    out = bootstrap(diffs, level=level)
    out["p"] = normal_p(out["mean"], out["se"])
    out["t_ci"] = t_interval([statistics.fmean(d.values()) for d in diffs], level)["ci"]
    return out


def relative_gain(
    new: list[dict], ref: list[dict], base: list[dict], reps: int = REPS, seed: int = 0, level: float = 0.95
) -> dict:
    """The MRT paper's headline ratio: (new - base) / (ref - base), the gain over the base relative
    to the reference's (their 2-3x for MRT over GRPO). Paired by seed index and problem; the
    interval from the same resampling of seeds and problems as :func:`bootstrap`, applied to all
    three. ``ref_gain_not_positive``: the share of draws whose reference gain is <= 0, where the
    ratio has no meaning; when it is above the interval's tail the interval is None (unbounded)."""
    n = min(len(new), len(ref), len(base))
    new, ref, base = new[:n], ref[:n], base[:n]
    probs = sorted(set.intersection(*(set(d) for d in new + ref + base)))
    grids = [np.array([[d[p] for p in probs] for d in xs], dtype=float) for xs in (new, ref, base)]
    n_p = len(probs)
    rng = np.random.default_rng(seed)
    cs = np.zeros((reps, n))
    cp = np.zeros((reps, n_p))
    np.add.at(cs, (np.repeat(np.arange(reps), n), rng.integers(0, n, reps * n)), 1)
    np.add.at(cp, (np.repeat(np.arange(reps), n_p), rng.integers(0, n_p, reps * n_p)), 1)
    m_new, m_ref, m_base = (np.einsum("rs,sp,rp->r", cs, g, cp) / (n * n_p) for g in grids)
    num, den = m_new - m_base, m_ref - m_base
    bad = float((den <= 0).mean())
    point_den = float(grids[1].mean() - grids[2].mean())
    point = float(grids[0].mean() - grids[2].mean()) / point_den if point_den > 0 else None
    ok = bad < (1 - level) / 2  # the draws without meaning all fall beyond the upper quantile
    return {
        "mean": point,
        "ci": _quantiles(np.where(den > 0, num / np.where(den > 0, den, 1), np.inf), level) if ok else None,
        "new_gain": float(grids[0].mean() - grids[2].mean()),
        "ref_gain": point_den,
        "ref_gain_not_positive": bad,
        "seeds": n,
        "problems": n_p,
    }


def normal_p(mean: float, se: float) -> float:
    """Two-sided p of mean = 0 under a normal with standard error se."""
    if se <= 0:
        return 0.0 if mean != 0 else 1.0
    return math.erfc(abs(mean) / se / math.sqrt(2))


@functools.cache
def t_quantile(q: float, df: int) -> float:
    """The q-quantile (q > 0.5) of Student's t with df degrees of freedom (bisection on the CDF,
    the density integrated by Simpson's rule; 4-digit accurate)."""
    c = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)

    def cdf(x):
        n = 2000
        h = x / n
        f = [c * (1 + (i * h) ** 2 / df) ** (-(df + 1) / 2) for i in range(n + 1)]
        return 0.5 + h / 3 * (f[0] + f[-1] + 4 * sum(f[1:-1:2]) + 2 * sum(f[2:-1:2]))

    lo, hi = 0.0, 1000.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) < q else (lo, mid)
    return (lo + hi) / 2


def t_interval(xs: Sequence[float], level: float = 0.95) -> dict:
    """Mean of per-seed values with a Student t interval (the seeds as the sample)."""
    xs = [x for x in xs if x is not None]
    if len(xs) < 2:
        return {"mean": xs[0] if xs else None, "ci": [None, None], "seeds": len(xs)}
    m, s = statistics.fmean(xs), statistics.stdev(xs)
    h = t_quantile(1 - (1 - level) / 2, len(xs) - 1) * s / math.sqrt(len(xs))
    return {"mean": m, "ci": [m - h, m + h], "seeds": len(xs)}


def holm(pvalues: dict[str, float], alpha: float = 0.05) -> dict[str, dict]:
    """Holm's step-down correction: each name's adjusted p and whether it survives at alpha."""
    order = sorted(pvalues, key=lambda k: pvalues[k])
    m, running, out = len(order), 0.0, {}
    for i, k in enumerate(order):
        running = max(running, min(1.0, (m - i) * pvalues[k]))
        out[k] = {"p": pvalues[k], "p_holm": running, "survives": running < alpha}
    return out


# --------------------------------------------------------------------------- token efficiency


def tokens_to_reach(grid: Sequence[float], curve: Sequence[float], target: float) -> float | None:
    for b, a in zip(grid, curve):
        if a >= target - 1e-12:
            return b
    return None


def efficiency(grid: Sequence[float], ref: Sequence[float], new: Sequence[float], fraction: float) -> float | None:
    """Tokens the reference needs to reach ``fraction`` of its own final accuracy over the tokens
    the new curve needs to reach the same accuracy (> 1: the new one gets there sooner); None
    when the new curve never does."""
    target = fraction * ref[-1]
    t_ref, t_new = tokens_to_reach(grid, ref, target), tokens_to_reach(grid, new, target)
    if t_new is None:
        return None
    if t_new == 0:
        return math.inf if t_ref else 1.0
    return t_ref / t_new


def pooled(curves: list[Sequence[float]], weights: list[float]) -> list[float]:
    w = sum(weights)
    return [sum(c[i] * x for c, x in zip(curves, weights)) / w for i in range(len(curves[0]))]


def efficiency_vs(grid, ref: list[list[float]], new: list[list[float]], ref_w, new_w, fractions=FRACTIONS) -> dict:
    """Per fraction: the ratio on curves pooled over seeds, the ratio of each seed pair (same
    seed index), and their geometric mean with a seed-level t interval (on the log ratios;
    ``reached``: seeds whose curve reaches the target; the interval needs all of them)."""
    out = {}
    for f in fractions:
        per_seed = [efficiency(grid, a, b, f) for a, b in zip(ref, new)]
        ok = [x for x in per_seed if x is not None and 0 < x < math.inf]
        row = {
            "pooled": efficiency(grid, pooled(ref, ref_w), pooled(new, new_w), f),
            "per_seed": per_seed,
            "reached": f"{sum(x is not None for x in per_seed)}/{len(per_seed)}",
        }
        if len(ok) == len(per_seed) and len(ok) > 1:
            t = t_interval([math.log(x) for x in ok])
            row["geomean"] = {"mean": math.exp(t["mean"]), "ci": [math.exp(t["ci"][0]), math.exp(t["ci"][1])]}
        else:
            row["geomean"] = None
        out[f"{f:g}"] = row
    return out


def self_null(grid, curves: list[list[float]], weights, fractions=FRACTIONS) -> dict:
    """The baseline against itself: per fraction, the ratios between every ordered pair of its
    seeds, and between the two halves of every split of its seeds (pooled curves; both
    directions). Where a method's ratio falls inside this spread, it is not evidence of efficiency."""
    n = len(curves)
    out = {}
    if n < 2:
        return out  # one seed: no pair to compare
    for f in fractions:
        pairs = [efficiency(grid, curves[i], curves[j], f) for i in range(n) for j in range(n) if i != j]
        halves = []
        for a in itertools.combinations(range(n), n // 2):
            b = [i for i in range(n) if i not in a]
            ca = pooled([curves[i] for i in a], [weights[i] for i in a])
            cb = pooled([curves[i] for i in b], [weights[i] for i in b])
            halves += [efficiency(grid, ca, cb, f), efficiency(grid, cb, ca, f)]
        out[f"{f:g}"] = {"seed_pairs": _spread(pairs), "split_halves": _spread(halves)}
    return out


def _spread(xs: list[float | None]) -> dict:
    ok = sorted(x for x in xs if x is not None)
    return {
        "n": len(xs),
        "not_reached": len(xs) - len(ok),
        "min": ok[0] if ok else None,
        "median": statistics.median(ok) if ok else None,
        "max": ok[-1] if ok else None,
        "share_at_least_1.1": sum(x >= 1.1 for x in ok) / len(xs) if xs else None,
    }
