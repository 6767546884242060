"""How many seeds does the fourth design need? A power calculation from the third design's run
records (issue 36, point 3), before any run of the fourth.

    python -m benchmarks.didactic_v4_power --results benchmarks/results/didactic_v4_power.json

The fourth design keeps the third's world, base model, budget, training tokens and held-out split
(128 problems x 8 traces), and compares MRT and on-policy dense MRT with GRPO on regret at B (Holm
over 2 methods). The noise of the paired difference (method - GRPO) is estimated from the third
design's records, decomposed as in ``benchmarks.didactic_v3_power`` (seed, problem, interaction);
the minimum detectable difference at 80% power, two-sided, at Holm's first step (alpha = 0.05 / 2)
is projected for several seed counts. The third design's world had an informative hint; the fourth's
variance may differ, which is why the projection also uses the largest components.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from benchmarks.didactic_v3_power import components, project

ROOT = Path(__file__).resolve().parents[1]
V3_RECORDS = ROOT / "benchmarks" / "results" / "didactic_v3_runs"
METHODS = ("mrt", "mrt-dense-onpolicy")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default="", help="also write the JSON here")
    p.add_argument("--problems", type=int, default=128, help="held-out problems")
    p.add_argument("--seeds", nargs="+", type=int, default=[4, 5, 6, 8, 10, 12], help="seed counts to project")
    ns = p.parse_args(argv)

    def per_problem(method: str) -> list[dict]:
        return [
            json.loads((V3_RECORDS / f"{method}-s{s}.json").read_text())["per_problem"]["regret_C16"] for s in range(12)
        ]

    grpo = per_problem("grpo")
    rows = [{"method": m, **components(per_problem(m), grpo)} for m in METHODS]
    alpha = 0.05 / len(METHODS)
    keys = ("var_seed", "var_problem", "var_interaction")
    med = {k: statistics.median(r[k] for r in rows) for k in keys}
    worst = {k: max(r[k] for r in rows) for k in keys}
    proj = [
        {"components": label, **project(v, n, ns.problems, alpha)}
        for n in ns.seeds
        for label, v in (("median", med), ("largest", worst))
    ]
    out = {
        "command": "python -m benchmarks.didactic_v4_power " + " ".join(sys.argv[1:]),
        "alpha_per_test": alpha,
        "components": rows,
        "by_seeds": proj,
    }
    if ns.results:
        Path(ns.results).write_text(json.dumps(out, indent=1))
    print(f"minimum detectable difference in regret at B (80% power, alpha {alpha:.3f} per test)")
    print("| seeds | components | MDD (paired bootstrap) | MDD (seed-level t) |")
    print("|---|---|---|---|")
    for x in proj:
        print(f"| {x['seeds']} | {x['components']} | {x['mdd_bootstrap']:.4f} | {x['mdd_seed_level']:.4f} |")
    return out


if __name__ == "__main__":
    main()
