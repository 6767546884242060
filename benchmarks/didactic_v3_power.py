"""How many seeds does the third design need? A power calculation from the second design's run
records (issue 22, point 6).

    python -m benchmarks.didactic_v3_power --results benchmarks/results/didactic_v3_power.json

The third design's primary endpoint is the paired difference (method - GRPO) in normalised
regret at the training budget B, over the held-out problems and seeds. Its noise comes from
three sources, estimated here from the second design's records (strict accounting, every method
against GRPO in the settings where B binds, and in control at C = 96) by a two-way decomposition
of the seeds x problems grid of differences: seed (a run's training luck: sigma_s), problem
(which 128 problems were drawn: sigma_p) and their interaction with the trace sampling (sigma_sp).
With n seeds and 128 problems, the paired bootstrap's standard error is about
sqrt(sigma_s^2 / n + sigma_p^2 / 128 + sigma_sp^2 / (128 n)), and the seed-level t interval's is
sd(per-seed differences) / sqrt(n). The minimum detectable difference at 80% power, two-sided, at
the Bonferroni level of Holm's first step over k methods (alpha = 0.05 / k), is
(z_{1-alpha/2} + z_{0.8}) x SE (t quantiles with n - 1 degrees of freedom for the seed-level one).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from types import SimpleNamespace

from benchmarks import didactic_stats as ST
from benchmarks import didactic_v2 as D
from benchmarks import didactic_v2_settings as S

ROOT = Path(__file__).resolve().parents[1]

Z80 = 0.8416  # z_{0.8}


def z_quantile(q: float) -> float:
    """Normal quantile by bisection on erfc (q > 0.5)."""
    import math

    lo, hi = 0.0, 10.0
    for _ in range(80):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if 1 - 0.5 * math.erfc(mid / math.sqrt(2)) < q else (lo, mid)
    return (lo + hi) / 2


def components(a: list[dict], b: list[dict]) -> dict:
    """Variance components of the seeds x problems grid of a - b."""
    probs = sorted(set.intersection(*(set(d) for d in a + b)))
    grid = [[x[p] - y[p] for p in probs] for x, y in zip(a, b)]
    n_s, n_p = len(grid), len(probs)
    grand = statistics.fmean(v for row in grid for v in row)
    m = [statistics.fmean(row) for row in grid]
    q = [statistics.fmean(grid[s][p] for s in range(n_s)) for p in range(n_p)]
    resid = [grid[s][p] - m[s] - q[p] + grand for s in range(n_s) for p in range(n_p)]
    s2_sp = sum(r * r for r in resid) / ((n_s - 1) * (n_p - 1))
    s2_s = max(0.0, statistics.variance(m) - s2_sp / n_p)
    s2_p = max(0.0, statistics.variance(q) - s2_sp / n_s)
    return {"mean": grand, "var_seed": s2_s, "var_problem": s2_p, "var_interaction": s2_sp, "seeds": n_s}


def project(v: dict, n: int, problems: int, alpha: float) -> dict:
    """Standard errors and minimum detectable differences (80% power, two-sided, ``alpha`` per test)
    with ``n`` seeds and ``problems`` held-out problems, from variance components ``v``
    (:func:`components`): the paired bootstrap's and the seed-level t interval's."""
    se_boot = (v["var_seed"] / n + v["var_problem"] / problems + v["var_interaction"] / (problems * n)) ** 0.5
    se_seed = (v["var_seed"] + v["var_interaction"] / problems) ** 0.5 / n**0.5
    ta, t80 = ST.t_quantile(1 - alpha / 2, n - 1), ST.t_quantile(0.8, n - 1)
    za = z_quantile(1 - alpha / 2)
    return {
        "seeds": n,
        "se_bootstrap": se_boot,
        "mdd_bootstrap": (za + Z80) * se_boot,
        "se_seed_level": se_seed,
        "mdd_seed_level": (ta + t80) * se_seed,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default="", help="also write the JSON here")
    p.add_argument("--methods", type=int, default=4, help="methods compared with GRPO on the endpoint (Holm's k)")
    p.add_argument("--problems", type=int, default=128, help="held-out problems of the third design")
    p.add_argument("--seeds", nargs="+", type=int, default=[5, 8, 10, 12, 15, 20], help="seed counts to project")
    ns = p.parse_args()
    rns = SimpleNamespace(
        records=str(ROOT / "benchmarks" / "results" / "didactic_v2_runs"),
        out="/nonexistent",
        seeds=S.FINAL_SEEDS,
        scale=1.0,
    )
    rows = []
    for setting in S.SETTINGS:
        key = f"regret_C{S.criterion_budget(setting)}"
        grpo = D.load_records(rns, setting, "grpo")
        for m in S.METHODS:
            if m == "grpo":
                continue
            recs = D.load_records(rns, setting, m)
            c = components([r["per_problem"][key] for r in recs], [r["per_problem"][key] for r in grpo])
            rows.append({"setting": setting, "method": m, "endpoint": key, **c})
    alpha = 0.05 / ns.methods
    out = {
        "command": "python -m benchmarks.didactic_v3_power " + " ".join(sys.argv[1:]),
        "alpha_per_test": alpha,
        "components": rows,
        "projection": {},
    }
    for scope, sel in (("binding budget (budget, order)", ("budget", "order")), ("all settings", tuple(S.SETTINGS))):
        rs = [r for r in rows if r["setting"] in sel]
        med = {k: statistics.median(r[k] for r in rs) for k in ("var_seed", "var_problem", "var_interaction")}
        worst = {k: max(r[k] for r in rs) for k in med}
        proj = [
            {"components": label, **project(v, n, ns.problems, alpha)}
            for n in ns.seeds
            for label, v in (("median", med), ("largest", worst))
        ]
        out["projection"][scope] = {"median_components": med, "largest_components": worst, "by_seeds": proj}
    text = json.dumps(out, indent=1)
    if ns.results:
        Path(ns.results).write_text(text)
    for scope, r in out["projection"].items():
        print(f"\n{scope}: minimum detectable difference in regret at B (80% power, alpha {alpha:.3f} per test)")
        print("| seeds | components | bootstrap SE | MDD (bootstrap) | seed-level SE | MDD (seed-level t) |")
        print("|---|---|---|---|---|---|")
        for x in r["by_seeds"]:
            print(
                f"| {x['seeds']} | {x['components']} | {x['se_bootstrap']:.4f} | {x['mdd_bootstrap']:.4f} | "
                f"{x['se_seed_level']:.4f} | {x['mdd_seed_level']:.4f} |"
            )


if __name__ == "__main__":
    main()
