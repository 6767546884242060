"""Can the tiny model read a hint? The pilot of the third design (issue 22, point 2).

    python -m benchmarks.didactic_v3_hint_pilot --out runs/v3-hint-pilot \
        --results benchmarks/results/didactic_v3_hint_pilot.json

The second design's hint sits at the prompt's tail (``try <node>``) and no training made the
2-layer model use it. Here the hint is written inside the edge list, where the model's edge
look-up already attends (``cue_at`` of the star world): ``edge`` puts the word ``try`` before the
hinted arm's first edge, ``dup`` lists that edge twice. For each model and each place the
pilot measures, on held-out problems (problem seed 1, ``arms=2-4 arm_len=3-5 cue=0.75``), the
share of the start node's children's next-token mass that the hinted child gets after the
prompt and ``try <start>``: the hinted-first rate of sampled first walks at temperature 1
(chance: 1/arms, about 0.36). Intervals: 95% bootstrap over problems.

Models: the second design's hinted base (``star-cue-base``, pretrained with hints at the tail
that its teacher ignores), and one continued pretraining run per place in ``--train``
(``mrt pretrain`` from ``star-cue-base``, resumable after a kill): ``<place>-follow``, hints at
that place in half the prompts and a teacher whose first walk takes the hinted arm in a share
``--follow`` of hinted prompts (the imitation test of learnability); and per place in ``--ignore``,
``<place>-ignore``: the same with a teacher that ignores the hints (can a base be made that does
not use a hint it can read?). A rerun skips finished runs.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CUE_BASE = "mrt/tasks/checkpoints/star-cue-base"
KNOBS = {"arms": "2-4", "arm_len": "3-5", "cue": 0.75}


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/v3-hint-pilot", help="working directory (pretraining runs, logs)")
    p.add_argument("--results", default="", help="also write the results JSON here")
    p.add_argument("--places", nargs="+", default=["edge", "dup"], help="hint places to test (cue_at values)")
    p.add_argument("--train", nargs="*", default=["edge"], help="places to run the imitation test for")
    p.add_argument("--ignore", nargs="*", default=["dup"], help="places to pretrain an ignoring base for")
    p.add_argument("--steps", type=int, default=600, help="steps of each continued pretraining run")
    p.add_argument("--follow", type=float, default=0.8, help="the following teacher's share (--follow-cue)")
    p.add_argument("--problems", type=int, default=300, help="held-out problems per measurement")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--probe-only", action="store_true", help="measure the models that exist, train nothing")
    return p.parse_args()


def pretrain_cmd(init: str, out: Path, place: str, follow: float, steps: int, seed: int, threads: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mrt.cli",
        "pretrain",
        "--init",
        init,
        "--out",
        str(out),
        "--arm-len",
        "2-5",
        "--cue",
        "0.75",
        "--cue-at",
        place,
        "--follow-cue",
        str(follow),
        "--steps",
        str(steps),
        "--lr",
        "1e-3",
        "--warmup",
        "20",
        "--seed",
        str(seed),
        "--threads",
        str(threads),
    ]


def hint_mass(model_dir: str, place: str, n: int, seed: int = 1) -> dict:
    """Per held-out problem: the hinted child's share of the start's children's next-token mass
    after ``prompt try <start>``, and the goal arm's share; means with bootstrap intervals."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mrt.tasks import StarTask
    from mrt.tasks.star import TRY

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    task = StarTask(**KNOBS, cue_at=place)
    hinted, goal, chance = [], [], []
    for prob in task.problems(n, seed=seed):
        g = task.graph(prob.meta["seed"])
        ids = tok.convert_tokens_to_ids(g.prompt_words() + [TRY, g.start])
        with torch.no_grad():
            p = model(torch.tensor([ids])).logits[0, -1].softmax(-1)
        kids = [a[0] for a in g.arms]
        mass = p[tok.convert_tokens_to_ids(kids)]
        share = (mass / mass.sum()).tolist()
        hinted.append(share[kids.index(g.cue)])
        goal.append(share[g.goal_arm])
        chance.append(1 / len(kids))
    return {
        "hinted_first": _boot(hinted),
        "goal_first": _boot(goal),
        "chance": statistics.fmean(chance),
        "problems": n,
    }


def _boot(xs: list[float], reps: int = 2000) -> dict:
    rng = random.Random(0)
    bs = sorted(statistics.fmean(rng.choices(xs, k=len(xs))) for _ in range(reps))
    return {"mean": statistics.fmean(xs), "ci": [bs[int(0.025 * reps)], bs[int(0.975 * reps) - 1]]}


def main():
    ns = parse()
    out = Path(ns.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = {}
    for place in ns.train:
        fol = out / f"{place}-follow"
        runs[f"{place}-follow"] = (pretrain_cmd(CUE_BASE, fol, place, ns.follow, ns.steps, 6, ns.threads), fol)
    for place in ns.ignore:
        ign = out / f"{place}-ignore"
        runs[f"{place}-ignore"] = (pretrain_cmd(CUE_BASE, ign, place, 0.0, ns.steps, 5, ns.threads), ign)
    wall = {}
    if not ns.probe_only:
        for name, (cmd, d) in runs.items():
            if (d / "pretrain.json").exists():
                continue
            t0 = time.time()
            print(f"{name}: {' '.join(cmd)}", flush=True)
            with open(out / f"{name}.log", "a") as f:
                subprocess.run(cmd, check=True, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
            wall[name] = round(time.time() - t0)
    models = {"star-cue-base": CUE_BASE} | {k: str(d) for k, (_, d) in runs.items() if (d / "pretrain.json").exists()}
    doc = {
        "command": "python -m benchmarks.didactic_v3_hint_pilot " + " ".join(sys.argv[1:]),
        "knobs": KNOBS,
        "problem_seed": 1,
        "follow": ns.follow,
        "steps": ns.steps,
        "pretrain_commands": {k: " ".join(c[2:]) for k, (c, _) in runs.items()},
        "measured": {},
    }
    for name, path in models.items():
        places = ["end", *ns.places] if name == "star-cue-base" else [name.split("-")[0]]
        for place in places:
            r = hint_mass(path, place, ns.problems)
            pj = Path(path) / "pretrain.json"
            if pj.exists():
                r["pretrain_wall_seconds"] = json.loads(pj.read_text()).get("wall_seconds_this_run")
                r["final_loss"] = json.loads(pj.read_text()).get("final_loss")
            doc["measured"][f"{name} @ {place}"] = r
            h = r["hinted_first"]
            print(
                f"{name:16s} hint at {place:4s}: hinted first {h['mean']:.3f} [{h['ci'][0]:.3f}, {h['ci'][1]:.3f}]"
                f"  goal first {r['goal_first']['mean']:.3f}  chance {r['chance']:.3f}",
                flush=True,
            )
    text = json.dumps(doc, indent=1)
    (out / "hint_pilot.json").write_text(text)
    if ns.results:
        Path(ns.results).write_text(text)


if __name__ == "__main__":
    main()
