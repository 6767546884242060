"""The didactic benchmark: the shipped base model fine-tuned with each algorithm, several seeds,
equal sampled-token budgets, one shared set of hyperparameters; evaluated on held-out problems
and on a harder held-out variant (knobs past the training range).

    python -m benchmarks.didactic --out runs/bench-didactic            # the committed run
    python -m benchmarks.didactic --out runs/bench-quick --quick        # a minute-scale check

Every run is an ``mrt train`` subprocess (resumable: rerunning the script skips finished runs and
resumes killed ones); ``--jobs`` runs several at once. Results: ``OUT/didactic.json`` (copied to
``--results``) and ``OUT/plots``. The numbers in docs/benchmarks-didactic.md come from this script.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

from benchmarks.runner import mrt_cmd, run_jobs

ROOT = Path(__file__).resolve().parent.parent

ALGOS = ["grpo", "length-penalty", "mrt", "mrt-dense", "star", "mrt-star"]
HARD = ["arms=5-6", "arm_len=4-5"]


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/bench-didactic", help="working directory (runs, logs)")
    p.add_argument("--results", default="", help="also copy didactic.json here (default: none)")
    p.add_argument("--algos", nargs="+", default=ALGOS, help="algorithms (default: all six RL/STaR ones)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds (default: 0 1 2)")
    p.add_argument("--token-budget", type=int, default=100_000, help="sampled tokens per run (default: 100000)")
    p.add_argument("--eval-problems", type=int, default=64, help="problems per evaluation set (default: 64)")
    p.add_argument("--eval-extensions", type=int, default=12, help="budget-forcing extensions (default: 12)")
    p.add_argument("--jobs", type=int, default=1, help="runs at once (default: 1)")
    p.add_argument("--threads", type=int, default=0, help="torch threads per run (default: torch's)")
    p.add_argument("--quick", action="store_true", help="tiny budget, 2 algos, 1 seed: checks the pipeline")
    p.add_argument("--report-only", action="store_true", help="rewrite tables and plots from OUT/didactic.json")
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more mrt train flags for every run")
    return p.parse_args()


def _cmd(ns, algo: str, seed: int, out: Path) -> list[str]:
    cmd = mrt_cmd(
        "train",
        algo=algo,
        seed=seed,
        out=out,
        token_budget=ns.token_budget,
        max_steps=100000,
        report_to="none",
        eval_problems=ns.eval_problems,
        eval_knobs=HARD,
        eval_extensions=ns.eval_extensions,
        threads=ns.threads or None,
    )
    return cmd + list(ns.extra)


def _base_cmds(ns, seed: int, out: Path) -> list[list[str]]:
    """The base model through the same evaluation (no training)."""
    common = dict(n_problems=ns.eval_problems, traces_per_problem=4, seed=seed, extensions=ns.eval_extensions)
    return [
        mrt_cmd("analyze", out=out / "eval", **common),
        mrt_cmd("analyze", out=out / "eval-hard", knobs=HARD, **common),
    ]


def _ms(values):
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return {"mean": None, "std": None}
    return {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0}


def _per_seed(run_dir: Path, base: bool) -> dict:
    from mrt.core.figures import eval_figures

    if base:
        sets = {
            n: eval_figures(json.loads((run_dir / d / "summary.json").read_text()))
            for n, d in (("held_out", "eval"), ("hard", "eval-hard"))
        }
        train = {}
    else:
        s = json.loads((run_dir / "summary.json").read_text())
        sets, train = s["eval"], s
    row = {}
    for name, e in sets.items():
        row[name] = {
            "accuracy": e["accuracy"],
            "mean_output_tokens": e["mean_output_tokens"],
            "normalized_regret": e["normalized_regret"],
            "accuracy_at_budget": {k: v["j"] for k, v in e.get("accuracy_at_budget", {}).items()},
            "budget_reached": {k: v["reached"] for k, v in e.get("accuracy_at_budget", {}).items()},
            "accuracy_vs_tokens": e["accuracy_vs_tokens"],
            "j_by_episode": e["j_by_episode"][:8],
            "maj_at_k": e.get("maj_at_k", {}),
        }
    for k in (
        "steps",
        "wall_seconds",
        "wall_seconds_per_step",
        "sampled_tokens",
        "sampled_tokens_per_step",
        "extra_sampled_tokens",
    ):
        row[k] = train.get(k)
    return row


def _aggregate(seeds: list[dict]) -> dict:
    agg = {"seeds": seeds}
    for k in ("accuracy", "mean_output_tokens"):
        agg[k] = _ms([s["held_out"][k] for s in seeds])
    agg["normalized_regret"] = {
        c: _ms([s["held_out"]["normalized_regret"][c] for s in seeds])
        for c in seeds[0]["held_out"]["normalized_regret"]
    }
    agg["accuracy_at_budget"] = {
        b: _ms([s["held_out"]["accuracy_at_budget"].get(b) for s in seeds])
        for b in seeds[0]["held_out"]["accuracy_at_budget"]
    }
    agg["budget_reached"] = {
        b: _ms([s["held_out"]["budget_reached"].get(b) for s in seeds]) for b in seeds[0]["held_out"]["budget_reached"]
    }
    agg["hard"] = {
        "accuracy": _ms([s["hard"]["accuracy"] for s in seeds]),
        "mean_output_tokens": _ms([s["hard"]["mean_output_tokens"] for s in seeds]),
        "normalized_regret": {
            c: _ms([s["hard"]["normalized_regret"][c] for s in seeds]) for c in seeds[0]["hard"]["normalized_regret"]
        },
        "accuracy_at_budget": {
            b: _ms([s["hard"]["accuracy_at_budget"].get(b) for s in seeds])
            for b in seeds[0]["hard"]["accuracy_at_budget"]
        },
    }
    for k in ("wall_seconds_per_step", "sampled_tokens_per_step", "steps", "sampled_tokens"):
        agg[k] = _ms([s[k] for s in seeds])
    return agg


def _mean_curve(seeds: list[dict], grid: list[int], set_name="held_out") -> list[float]:
    from mrt.core.metrics import resample_curve

    curves = [resample_curve(s[set_name]["accuracy_vs_tokens"], grid) for s in seeds]
    return [statistics.fmean(c[i] for c in curves) for i in range(len(grid))]


def headline(results: dict, new: str, ref: str = "grpo") -> dict:
    from mrt.core.metrics import token_efficiency

    out = {}
    if new not in results or ref not in results:
        return out
    a, b, base = results[new], results[ref], results.get("base")
    grid = list(range(0, 257))
    out["token_efficiency"] = token_efficiency(grid, _mean_curve(b["seeds"], grid), _mean_curve(a["seeds"], grid))
    pairs = [
        token_efficiency(grid, _mean_curve([sb], grid), _mean_curve([sa], grid))
        for sa, sb in zip(a["seeds"], b["seeds"])
    ]
    out["token_efficiency_per_seed"] = pairs
    if base:
        g_new = a["accuracy"]["mean"] - base["accuracy"]["mean"]
        g_ref = b["accuracy"]["mean"] - base["accuracy"]["mean"]
        out["gain_over_base"] = {new: g_new, ref: g_ref}
        out["relative_gain"] = g_new / g_ref if g_ref > 0 else None
    wa, wb = a["wall_seconds_per_step"]["mean"], b["wall_seconds_per_step"]["mean"]
    out["wall_seconds_per_step_ratio"] = wa / wb if wa and wb else None
    ta, tb = a["sampled_tokens_per_step"]["mean"], b["sampled_tokens_per_step"]["mean"]
    out["sampled_tokens_per_step_ratio"] = ta / tb if ta and tb else None
    return out


def plots(results: dict, out: Path):
    from mrt.report.analysis import pyplot, save_figure

    plt = pyplot()
    out.mkdir(parents=True, exist_ok=True)
    names = list(results)
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for n in names:
        reg = results[n]["normalized_regret"]
        cs = list(reg)
        ax.errorbar(
            [int(c) for c in cs],
            [reg[c]["mean"] for c in cs],
            yerr=[reg[c]["std"] for c in cs],
            marker="o",
            capsize=2,
            label=n,
        )
    ax.set(
        xlabel="token budget C", ylabel="normalised regret (mean ± std over seeds)", title="Held-out regret vs budget"
    )
    ax.legend(fontsize=7)
    save_figure(plt, fig, out / "regret.png")
    fig, ax = plt.subplots(figsize=(6, 3.8))
    grid = list(range(0, 129))
    for n in names:
        ax.plot(grid, _mean_curve(results[n]["seeds"], grid), label=n)
    ax.set(
        xlabel="thinking tokens before the forced answer",
        ylabel="accuracy (mean over seeds)",
        title="Held-out accuracy vs tokens",
    )
    ax.legend(fontsize=7)
    save_figure(plt, fig, out / "accuracy_vs_tokens.png")
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, key, title in ((axes[0], None, "held-out"), (axes[1], "hard", "harder held-out")):
        for n in names:
            src = results[n] if key is None else results[n]["hard"]
            bb = src["accuracy_at_budget"]
            xs = [float(b[:-1]) for b in bb]
            ax.errorbar(
                xs, [bb[b]["mean"] for b in bb], yerr=[bb[b]["std"] for b in bb], marker="o", capsize=2, label=n
            )
        ax.set(xlabel="thinking budget / natural length (budget forcing)", ylabel="accuracy", title=title)
    axes[0].legend(fontsize=7)
    save_figure(plt, fig, out / "extrapolation.png")


def _f(ms, digits=3):
    return "—" if ms["mean"] is None else f"{ms['mean']:.{digits}f} ± {ms['std']:.{digits}f}"


def _algo_names(doc: dict) -> list[str]:
    return [n for n, v in doc.items() if isinstance(v, dict) and v.get("seeds") and isinstance(v["seeds"][0], dict)]


def markdown(doc: dict) -> str:
    """The tables of docs/benchmarks-didactic.md, from didactic.json."""
    names = _algo_names(doc)
    cs = list(doc["base"]["normalized_regret"])
    bb = list(doc["base"]["accuracy_at_budget"])
    out = [
        "Held-out problems (mean ± std over seeds):",
        "",
        "| algo | accuracy | output tokens | " + " | ".join(f"regret C={c}" for c in cs) + " |",
        "|---|---|---|" + "---|" * len(cs),
    ]
    for n in names:
        r = doc[n]
        out.append(
            f"| {n} | {_f(r['accuracy'])} | {_f(r['mean_output_tokens'], 1)} | "
            + " | ".join(_f(r["normalized_regret"][c]) for c in cs)
            + " |"
        )
    out += [
        "",
        "Accuracy with budget forcing at multiples of the natural thinking length (held-out | harder held-out):",
        "",
        "| algo | "
        + " | ".join(f"held-out {b}" for b in bb)
        + " | "
        + " | ".join(f"hard {b}" for b in bb)
        + " | hard regret C="
        + cs[-1]
        + " |",
        "|---|" + "---|" * (2 * len(bb) + 1),
    ]
    for n in names:
        r = doc[n]
        out.append(
            f"| {n} | "
            + " | ".join(_f(r["accuracy_at_budget"][b]) for b in bb)
            + " | "
            + " | ".join(_f(r["hard"]["accuracy_at_budget"][b]) for b in bb)
            + " | "
            + _f(r["hard"]["normalized_regret"][cs[-1]])
            + " |"
        )
    out += [
        "",
        "Budget actually reached by the forcing (mean thinking length with extensions / natural "
        "length; a multiple past it is read at the last point): "
        + "; ".join(
            f"{n} {b}: {doc[n]['budget_reached'][b]['mean']:.2f}x"
            for n in names
            if "budget_reached" in doc[n]
            for b in bb[-1:]
        )
        + ".",
    ]
    out += [
        "",
        "Cost (all runs had the same sampled-token budget):",
        "",
        "| algo | steps | sampled tokens / step | wall s / step |",
        "|---|---|---|---|",
    ]
    for n in names[1:]:
        r = doc[n]
        out.append(
            f"| {n} | {_f(r['steps'], 1)} | {_f(r['sampled_tokens_per_step'], 0)} | "
            f"{_f(r['wall_seconds_per_step'], 2)} |"
        )
    return "\n".join(out) + "\n"


def main():
    ns = parse()
    if ns.report_only:  # aggregate the finished runs again (settings from OUT/bench.json)
        saved = json.loads((Path(ns.out) / "bench.json").read_text())
        for k in ("algos", "seeds", "token_budget", "eval_problems", "eval_extensions", "jobs", "threads"):
            setattr(ns, k, saved[k])
    if ns.quick:
        ns.algos, ns.seeds = ns.algos[:1] + ["mrt"] if ns.algos == ALGOS else ns.algos, ns.seeds[:1]
        ns.token_budget, ns.eval_problems, ns.eval_extensions = min(ns.token_budget, 4000), min(ns.eval_problems, 8), 2
    out = Path(ns.out)
    out.mkdir(parents=True, exist_ok=True)
    if not ns.report_only:
        (out / "bench.json").write_text(
            json.dumps({**vars(ns), "command": "python -m benchmarks.didactic " + " ".join(sys.argv[1:])}, indent=1)
        )
    jobs = []
    for seed in ns.seeds:
        d = out / f"base-s{seed}"
        if not (d / "eval-hard" / "summary.json").exists() and not ns.report_only:
            jobs.append((f"base-s{seed}", _base_cmds(ns, seed, d), out / f"base-s{seed}.log", ns.threads))
    for algo in ns.algos:
        for seed in ns.seeds:
            d = out / f"{algo}-s{seed}"
            if not (d / "summary.json").exists() and not ns.report_only:
                jobs.append((f"{algo}-s{seed}", [_cmd(ns, algo, seed, d)], out / f"{algo}-s{seed}.log", ns.threads))
    t0 = time.time()
    run_jobs(jobs, ns.jobs, out)  # the shared runner: exits naming failed runs, which a rerun resumes
    results = {"base": _aggregate([_per_seed(out / f"base-s{s}", True) for s in ns.seeds])}
    for algo in ns.algos:
        results[algo] = _aggregate([_per_seed(out / f"{algo}-s{s}", False) for s in ns.seeds])
    cmd = json.loads((out / "bench.json").read_text()).get("command")
    if not cmd and (out / "didactic.json").exists():
        cmd = json.loads((out / "didactic.json").read_text()).get("command")
    cmd = cmd or "python -m benchmarks.didactic " + " ".join(sys.argv[1:])
    doc = {
        "command": cmd,
        "settings": {k: v for k, v in vars(ns).items() if k != "report_only"},
        "wall_seconds_this_run": None if ns.report_only else round(time.time() - t0, 1),
        **results,
    }
    if ns.report_only and (out / "didactic.json").exists():  # keep the timing of the run that made the data
        doc["wall_seconds_this_run"] = json.loads((out / "didactic.json").read_text()).get("wall_seconds_this_run")
    for name in ("mrt", "mrt-dense", "mrt-star"):
        h = headline(results, name)
        if h:
            key = name.replace("-", "_")
            doc[f"headline_{key}_vs_grpo"] = h
    h = doc.get("headline_mrt_vs_grpo", {})
    doc["token_efficiency_mrt_vs_grpo"] = h.get("token_efficiency")
    doc["relative_gain_mrt_vs_grpo"] = h.get("relative_gain")
    doc["notes"] = (
        "token_efficiency: GRPO's thinking tokens to reach its own final forced accuracy divided by "
        "the new method's tokens to reach it, on seed-averaged accuracy-vs-tokens curves; null means "
        "the new method's curve never reaches that accuracy. relative_gain: (acc_new - acc_base) / "
        "(acc_grpo - acc_base), held-out accuracy means."
    )
    (out / "didactic.json").write_text(json.dumps(doc, indent=1))
    if ns.results:
        Path(ns.results).parent.mkdir(parents=True, exist_ok=True)
        Path(ns.results).write_text(json.dumps(doc, indent=1))
    plots(results, out / "plots")
    (out / "table.md").write_text(markdown(doc))
    print(
        f"\n{'algo':16s} {'accuracy':>16s} {'hard acc':>16s} {'tokens':>8s} "
        + " ".join(f"{'reg C=' + c:>14s}" for c in results["base"]["normalized_regret"])
    )
    for n, r in results.items():
        print(
            f"{n:16s} {r['accuracy']['mean']:.3f} ± {r['accuracy']['std']:.3f}   "
            f"{r['hard']['accuracy']['mean']:.3f} ± {r['hard']['accuracy']['std']:.3f} "
            f"{r['mean_output_tokens']['mean']:8.1f} "
            + " ".join(f"{v['mean']:.3f} ± {v['std']:.3f}" for v in r["normalized_regret"].values())
        )
    print(
        f"token efficiency mrt vs grpo: {doc['token_efficiency_mrt_vs_grpo']}; "
        f"relative gain: {doc['relative_gain_mrt_vs_grpo']}"
    )


if __name__ == "__main__":
    main()
