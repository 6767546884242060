"""``mrt demo``: the didactic pipeline end to end on the shipped base model."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from mrt.config import arg
from mrt.rundir import lock_run_dir, one_writer, write_json


@dataclass
class DemoConfig:
    out: str = arg("runs/demo", "output directory")
    model: str = arg("", "base model (default: the shipped didactic base model)")
    n_problems: int = arg(64, "problems per evaluation set")
    hard_knobs: list[str] = arg(["arms=5-6", "arm_len=4-5"], "knobs of the harder held-out set")
    seed: int = arg(0, "sampling seed")
    train_steps: int = arg(30, "optimizer steps of the GRPO and MRT runs (0: analyse the base only)")


@one_writer
def run_demo(cfg: DemoConfig) -> dict:
    from mrt.measure.analyze import AnalyzeConfig
    from mrt.pipelines import analyze
    from mrt.report.analysis import print_summary

    t0 = time.time()
    out = lock_run_dir(cfg.out)  # its parts (base/, grpo/, ...) take their own locks
    sets = {"base": [], "base-hard": list(cfg.hard_knobs)}
    results = {}
    for i, (name, knobs) in enumerate(sets.items(), 1):
        what = "held-out" if not knobs else f"harder held-out ({' '.join(knobs)})"
        total = len(sets) + (3 if cfg.train_steps else 0)
        print(f"[{i}/{total}] analysing the base model on {cfg.n_problems} {what} star-graph problems")
        acfg = AnalyzeConfig(
            model=cfg.model, task="star", knobs=knobs, out=str(out / name), n_problems=cfg.n_problems, seed=cfg.seed
        )
        results[name] = analyze(acfg)
        print_summary(results[name], acfg.out)
    runs = [str(out / "base")]
    if cfg.train_steps:
        from mrt.pipelines import train
        from mrt.report.compare import compare
        from mrt.train.config import load_config

        for i, algo in enumerate(("grpo", "mrt"), len(sets) + 1):
            print(
                f"[{i}/{len(sets) + 3}] training the base model with {algo} for {cfg.train_steps} steps, "
                "then analysing it"
            )
            tcfg = load_config(
                None,
                dict(
                    algo=algo,
                    model=cfg.model,
                    out=str(out / algo),
                    seed=cfg.seed,
                    max_steps=cfg.train_steps,
                    eval_problems=cfg.n_problems,
                    logging_steps=10,
                    report_to="tensorboard",
                ),
            )
            s = train(tcfg)  # held-out evaluation only: the harder set is the benchmark's (time)
            results[algo] = s["eval"]["held_out"]
            print_summary(json.loads((out / algo / "eval" / "summary.json").read_text()), str(out / algo / "eval"))
            runs.append(str(out / algo))
        print(f"[{len(sets) + 3}/{len(sets) + 3}] comparing base, grpo and mrt")
        compare(runs, str(out / "compare"))
    write_json(
        out / "demo.json",
        {
            name: {
                k: s[k]
                for k in ("accuracy", "mean_output_tokens", "j_by_episode", "normalized_regret", "maj_at_k")
                if k in s
            }
            for name, s in results.items()
        },
    )
    from mrt.report.analysis import write_index

    links = [
        (f"{n}: report", f"{n}/report.html", f"the base model on the {'harder ' if sets[n] else ''}held-out set")
        for n in sets
    ]
    if cfg.train_steps:
        links += [
            (f"{a}: report", f"{a}/eval/report.html", f"the {a} model on the held-out set") for a in ("grpo", "mrt")
        ]
        links.append(("comparison", "compare/compare.html", "base, grpo and mrt side by side, with their traces"))
    from mrt.report.analysis import run_card

    cards = [run_card(n, results[n], href=f"{n}/report.html") for n in sets]
    if cfg.train_steps:
        for a in ("grpo", "mrt"):
            train = json.loads((out / a / "summary.json").read_text())
            analysis = json.loads((out / a / "eval" / "summary.json").read_text())
            cards.append(run_card(a, analysis, train, href=f"{a}/eval/report.html"))
    plot = (
        out / "compare" / "plots" / "accuracy_vs_tokens.png"
        if cfg.train_steps
        else out / "base" / "plots" / "j_tokens.png"
    )
    index = write_index(out, links, "mrt demo: the didactic world end to end", cards, plot)
    print(f"demo finished in {time.time() - t0:.0f} s; open {index.resolve()}")
    return results
