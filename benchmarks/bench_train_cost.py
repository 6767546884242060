"""Cost per optimizer step of each algorithm at an equal policy-gradient batch (same problems per
step, same group size), one run at a time, no evaluation:

    .venv/bin/python -m benchmarks.bench_train_cost       # about 3 minutes on 2 cores

Writes benchmarks/results/train_cost.json: wall seconds and sampled tokens per step (the first
step, which includes start-up, is left out) and each algorithm's ratio to GRPO.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

ALGOS = ["grpo", "length-penalty", "mrt", "mrt-dense", "star", "mrt-star"]


def main(steps: int = 12):
    from mrt.pipelines import train as run_train
    from mrt.train.config import load_config

    res = {}
    for algo in ALGOS:
        with tempfile.TemporaryDirectory() as d:
            cfg = load_config(
                None,
                dict(
                    algo=algo,
                    out=d,
                    max_steps=steps,
                    eval_problems=0,
                    report_to="none",
                    save_every=10_000,
                    logging_steps=1,
                ),
            )
            t0 = time.time()
            s = run_train(cfg)
            log = [json.loads(x) for x in (Path(d) / "train_log.jsonl").read_text().splitlines()]
        times = [r["step_time"] for r in log if "step_time" in r and "train_runtime" not in r][1:]
        res[algo] = {
            "steps": s["steps"],
            "wall_seconds_per_step": sum(times) / len(times),
            "sampled_tokens_per_step": s["sampled_tokens_per_step"],
            "extra_sampled_tokens_per_step": s["extra_sampled_tokens"] / s["steps"],
            "total_seconds": round(time.time() - t0, 1),
        }
        print(algo, res[algo], flush=True)
    g = res["grpo"]
    for r in res.values():
        r["wall_ratio_vs_grpo"] = r["wall_seconds_per_step"] / g["wall_seconds_per_step"]
        r["token_ratio_vs_grpo"] = r["sampled_tokens_per_step"] / g["sampled_tokens_per_step"]
    import torch

    doc = {
        "command": "python -m benchmarks.bench_train_cost",
        "torch_threads": torch.get_num_threads(),
        "setting": "shipped base model, 8 problems x 8 rollouts per step, defaults of mrt train",
        **res,
    }
    out = ROOT / "benchmarks" / "results" / "train_cost.json"
    out.write_text(json.dumps(doc, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=12, help="optimizer steps per algorithm (the first is left out)")
    main(p.parse_args().steps)
