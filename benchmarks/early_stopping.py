"""Stop thinking when progress stalls: the accuracy-tokens trade-off of every stop rule, against
the fixed-budget curve and the natural end, for several models.

    python benchmarks/early_stopping.py --out runs/early-stop --results benchmarks/results/early_stopping.json \\
        --models base grpo=runs/bench-didactic/grpo-s0/model mrt=runs/bench-didactic/mrt-s0/model

For each model: ``mrt analyze`` on held-out problems for each seed (problem seeds 0, 1, 2: distinct
problem sets; 8 forced answers per prefix: 4 are the controller's signal, 4 measure accuracy),
one more analysis on training-distribution problems (problem seed 11) to train the learned
progress estimator (``mrt estimator train``), its predictions on the held-out analyses, and the
replay of every rule (``mrt.act.tradeoff``) on the pooled held-out traces, with 95% bootstrap
intervals over problems. Every step is resumable (analyses resume; a finished estimator is
reused). ``--smollm2`` adds SmolLM2-135M-Instruct on 2-term chain sums (reasoning-gym), with
token-chunk episodes. Results: ``OUT/early_stopping.json`` (copied to ``--results``),
``OUT/plots/*.png``, ``OUT/table.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SMOLLM2 = dict(
    task="gym",
    knobs=["dataset=chain_sum", "options=max_terms:2,max_digits:1", "thinking=none", "extract=last-number"],
    max_new_tokens=96,
    answer_tokens=16,
    segmentation="chunk:24",
    n_problems=12,
    traces_per_problem=2,
    estimator_steps=60,
    seeds=[0],
)  # about 90 tokens/s here: one held-out seed


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/early-stop", help="working directory")
    p.add_argument("--results", default="", help="also copy early_stopping.json here")
    p.add_argument(
        "--models",
        nargs="+",
        default=["base"],
        help="NAME=PATH (or 'base' for the shipped model) of the didactic models to compare",
    )
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="held-out problem seeds")
    p.add_argument("--problems", type=int, default=64, help="held-out problems per seed")
    p.add_argument("--k", type=int, default=4, help="signal answers per boundary (of 8)")
    p.add_argument("--estimator-steps", type=int, default=300, help="training steps of the estimator")
    p.add_argument("--smollm2", action="store_true", help="add SmolLM2-135M-Instruct on a text task")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--report-only", action="store_true", help="rewrite plots and table from OUT/early_stopping.json")
    return p.parse_args()


def _analyze(model: str, out: Path, problem_seed: int, n: int, extra: dict) -> Path:
    from mrt.measure.analyze import AnalyzeConfig, run_analysis

    cfg = dict(
        model=model,
        task="star",
        out=str(out),
        n_problems=n,
        problem_seed=problem_seed,
        traces_per_problem=4,
        answers_per_prefix=8,
        extensions=0,
        maj_k=[1, 2, 4, 8],
    )
    cfg.update(extra)
    run_analysis(AnalyzeConfig(**cfg))
    return out


def run_model(name: str, model: str, ns, out: Path, extra: dict | None = None) -> dict:
    from mrt.act.estimator import EstimatorConfig, predict, read_estimates, train_estimator
    from mrt.act.tradeoff import tradeoff

    extra = dict(extra or {})
    n = extra.pop("n_problems", ns.problems)
    steps = extra.pop("estimator_steps", ns.estimator_steps)
    seeds = extra.pop("seeds", ns.seeds)
    t0 = time.time()
    train_dir = _analyze(model, out / name / "train-analysis", 11, n, extra)
    est_dir = out / name / "estimator"
    cal = train_estimator(
        EstimatorConfig(
            analysis=[str(train_dir)], out=str(est_dir), model=model, steps=steps, held_out=0.2, threads=ns.threads
        )
    )
    records, estimates, per_seed = [], {}, {}
    for s in seeds:
        d = _analyze(model, out / name / f"heldout-s{s}", s, n, extra)
        predict(est_dir, d, d / "estimates.jsonl")
        recs = [json.loads(x) for x in (d / "traces.jsonl").read_text().splitlines() if x.strip()]
        for r in recs:  # problem ids are unique within a seed; keep them apart across seeds
            r["problem_id"] = f"s{s}/{r['problem_id']}"
        est = read_estimates(d / "estimates.jsonl")
        estimates.update({(f"s{s}/{pid}", t): v for (pid, t), v in est.items()})
        records += recs
        per_seed[s] = tradeoff(
            recs,
            k=ns.k,
            sources=("oracle", "vote", "estimator"),
            estimates={(f"s{s}/{pid}", t): v for (pid, t), v in est.items()},
            draws=200,
        )
    pooled = tradeoff(records, k=ns.k, sources=("oracle", "vote", "estimator"), estimates=estimates, draws=1000)
    return {
        "model": model,
        "pooled": pooled,
        "calibration": cal,
        "per_seed": {
            str(s): {p["rule"] + "|" + p["source"]: [p["accuracy"], p["tokens"]] for p in v["points"]}
            for s, v in per_seed.items()
        },
        "wall_seconds": round(time.time() - t0, 1),
    }


def plots(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    styles = {
        ("j-threshold", "oracle"): "tab:blue",
        ("j-threshold", "vote"): "tab:cyan",
        ("j-threshold", "estimator"): "tab:green",
        ("stall", "oracle"): "tab:purple",
        ("stall", "vote"): "tab:pink",
        ("stall", "estimator"): "tab:olive",
        ("confidence", "none"): "tab:red",
    }
    for name, r in results.items():
        pts = r["pooled"]["points"]
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
        for ax, key, xlabel in (
            (axes[0], "tokens", "mean tokens per trace (thinking + controller overhead + answer)"),
            (axes[1], "thinking_tokens", "mean thinking tokens (the signal taken as free)"),
        ):
            budget = sorted((p[key], p["accuracy"]) for p in pts if p["family"] == "budget")
            ax.plot([t for t, _ in budget], [a for _, a in budget], color="k", marker=".", label="fixed budget")
            nat = next(p for p in pts if p["family"] == "natural")
            ax.scatter([nat[key]], [nat["accuracy"]], color="k", marker="*", s=120, zorder=5, label="natural end")
            for (fam, src), color in styles.items():
                sel = sorted((p[key], p["accuracy"]) for p in pts if p["family"] == fam and p["source"] == src)
                if sel:
                    ax.plot(
                        [t for t, _ in sel],
                        [a for _, a in sel],
                        marker="o",
                        ms=3,
                        lw=1,
                        color=color,
                        label=f"{fam} ({src})" if src != "none" else fam + " (DEER-style)",
                    )
            ax.set(xlabel=xlabel, ylabel="accuracy")
        axes[0].set_title(f"{name}: every sampled token counted")
        axes[1].set_title(f"{name}: where each rule stops, overhead aside")
        axes[0].legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        fig.savefig(out / f"{name}.png", dpi=100)
        plt.close(fig)


def _f(x, d=3):
    return "—" if x is None else f"{x:.{d}f}"


def table(results: dict) -> str:
    lines = []
    for name, r in results.items():
        c = r["calibration"].get("calibration", {})
        lines += [
            f"### {name}",
            "",
            f"estimator on held-out problems of its training analysis: ECE {_f(c.get('ece'))}, Brier "
            f"{_f(c.get('brier'))} (predicting the mean: {_f(c.get('brier_of_the_mean'))}), correlation "
            f"{_f(c.get('correlation'))}, n = {c.get('n')}",
            "",
            "| rule | J source | accuracy [95% CI] | tokens | thinking | overhead | Δacc vs natural [95% CI] "
            "| tokens / natural | Δacc vs budget curve at equal tokens | tokens saved vs budget curve |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for p in r["pooled"]["points"]:
            lines.append(
                f"| {p['rule']} | {p['source']} | {_f(p['accuracy'])} [{_f(p['accuracy_ci'][0])}, {_f(p['accuracy_ci'][1])}] "
                f"| {_f(p['tokens'], 1)} | {_f(p['thinking_tokens'], 1)} | {_f(p['overhead_tokens'], 1)} "
                f"| {p['accuracy_vs_natural']:+.3f} [{p['accuracy_vs_natural_ci'][0]:+.3f}, {p['accuracy_vs_natural_ci'][1]:+.3f}] "
                f"| {_f(p['token_ratio_vs_natural'], 2)} | {_f(p['accuracy_vs_budget_curve'])} "
                f"| {_f(p['tokens_saved_vs_budget_curve'], 1)} |"
            )
        lines.append("")
    return "\n".join(lines)


def main():
    ns = parse()
    out = Path(ns.out)
    out.mkdir(parents=True, exist_ok=True)
    doc_path = out / "early_stopping.json"
    if ns.report_only:
        doc = json.loads(doc_path.read_text())
    else:
        import torch

        if ns.threads:
            torch.set_num_threads(ns.threads)
        from mrt.tasks.tiny import shipped_model_path

        results = {}
        for spec in ns.models:
            name, _, path = spec.partition("=")
            model = str(shipped_model_path()) if name == "base" and not path else path
            if not Path(model).exists():
                raise SystemExit(f"model {model!r} of {name!r} does not exist (run benchmarks/didactic.py first?)")
            print(f"== {name}: {model}", flush=True)
            results[name] = run_model(name, model, ns, out)
        if ns.smollm2:
            from mrt.models import smollm2

            print("== smollm2", flush=True)
            results["smollm2"] = run_model("smollm2", str(smollm2()), ns, out, SMOLLM2)
        doc = {
            "command": "python benchmarks/early_stopping.py " + " ".join(sys.argv[1:]),
            "settings": {k: v for k, v in vars(ns).items() if k != "report_only"},
            "results": results,
        }
        doc_path.write_text(json.dumps(doc, indent=1))
    if ns.results:
        Path(ns.results).write_text(json.dumps(doc, indent=1))
    plots(doc["results"], out / "plots")
    (out / "table.md").write_text(table(doc["results"]))
    print((out / "table.md").read_text())


if __name__ == "__main__":
    main()
