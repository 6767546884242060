"""``mrt study vb-vf``: verifier-based vs verifier-free scaling on the didactic world.

Arms, all starting from the same base model (the shipped didactic model unless ``--model``):

* **VF** (verifier-free): SFT on ``n`` correct expert search traces whose heterogeneity is set
  by a level: ``low`` (one expert style), ``mid`` (four styles), ``high`` (the noisy explorer's
  whole style distribution, correct traces only);
* **VB-RL**: GRPO with the 0/1 outcome reward on ``n`` training problems;
* **VB-search**: an outcome verifier (the base model with a value head) trained on ``n`` of the
  base policy's own rollouts, labelled by the grader, then best-of-N over base rollouts.

Accuracy at a test budget H (sampled tokens per problem):
* a sequential model (VF, VB-RL, the base) thinks for at most H tokens and answers at the last
  episode end within H (J there, estimated by forced answers: ``metrics.j_at_budget``);
* the same model may instead spend H on k = H / (mean trace length) independent traces and a
  majority vote (no verifier); the VF arm is credited with the better of the two at each H;
* best-of-N uses the largest N of ``--best-of`` whose mean sampled tokens (N x mean rollout
  length) fit in H; below N = 2 it is the base model's sequential accuracy at H.

``--backend`` (hf, vllm, openai) samples the base model's traces and rollouts (the base curve and
the verifier's best-of-N); the trained arms are evaluated by ``mrt train``'s own evaluation.

Every run writes into ``OUT/seed{S}/...`` and is skipped when finished, so an interrupted study
resumes. ``OUT/vb_vf.json`` holds every figure; ``OUT/table.md`` and ``OUT/plots/`` summarise.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from mrt.config import arg, claim_run_dir
from mrt.rundir import atomic_path, one_writer, write_atomic, write_json
from mrt.samplers import ENGINE_FIELDS, SamplerArgs, sampler_from

log = logging.getLogger(__name__)


@dataclass
class StudyConfig(SamplerArgs):
    out: str = arg("runs/vb-vf", "output directory")
    quick: bool = arg(False, "a minute-long smoke run (tiny sizes; what the tests run)")
    model: str = arg("", "base model (default: the shipped didactic base model)")
    knobs: list[str] = arg(
        ["arms=4", "arm_len=3-4"],
        "didactic-world knobs of training and held-out problems "
        "(the hardest corner of the base model's pretraining range)",
    )
    seeds: list[int] = arg([0, 1, 2], "seeds (each: its own training runs, verifier and evaluation sampling)")
    levels: list[str] = arg(["low", "mid", "high"], "heterogeneity levels of the VF traces")
    data_sizes: list[int] = arg([128, 1024], "training data n: SFT traces, verifier rollouts, RL problems")
    budgets: list[int] = arg([16, 32, 64, 128, 256, 512], "test budgets H in sampled tokens per problem")
    best_of: list[int] = arg([1, 2, 4, 8, 16], "N of best-of-N")
    sft_steps: int = arg(150, "SFT steps (batch 32)")
    grpo_steps: int = arg(30, "GRPO steps (8 problems x 8 rollouts)")
    rl_all_sizes: bool = arg(False, "GRPO at every data size (default: the largest only)")
    verifier_steps: int = arg(300, "verifier training steps (batch 32)")
    verifier_rollouts: int = arg(4, "base rollouts per verifier training problem")
    eval_problems: int = arg(64, "held-out problems")
    eval_traces: int = arg(4, "traces per held-out problem for the sequential arms")
    threads: int = arg(1, "torch CPU threads")

    def apply_quick(self):
        if self.quick:
            self.seeds, self.levels, self.data_sizes = self.seeds[:1], ["low", "high"], [32]
            self.budgets, self.best_of = [16, 128], [1, 2, 4]
            self.sft_steps, self.grpo_steps, self.verifier_steps = 3, 2, 6
            self.eval_problems, self.eval_traces = 4, 2
        return self


# ---------------------------------------------------------------------------- arms


def _train(cfg: StudyConfig, seed: int, out: Path, **kw) -> Path:
    from mrt.pipelines import train
    from mrt.train.config import TrainConfig, validate

    tc = TrainConfig(
        model=cfg.model,
        task="star",
        knobs=list(cfg.knobs),
        seed=seed,
        out=str(out),
        eval_problems=cfg.eval_problems,
        eval_traces=cfg.eval_traces,
        eval_extensions=0,
        threads=cfg.threads,
        report_to="none",
        save_every=max(10, cfg.grpo_steps),
        warmup_steps=0 if cfg.quick else 5,
        **kw,
    )
    validate(tc)
    train(tc)
    return out / "eval" / "traces.jsonl"


def sequential_curve(traces: Path, budgets: list[int]) -> dict[str, float]:
    """Mean over traces of J at each budget (thinking cut, answer forced at the last episode end)."""
    from mrt.core.metrics import j_at_budget
    from mrt.core.trace import TraceRecord

    lines = [x for x in traces.read_text().splitlines() if x.strip()]
    recs = [TraceRecord.from_json(json.loads(x), f"{traces}:{n}") for n, x in enumerate(lines, 1)]
    out = {}
    for h in budgets:
        out[str(h)] = sum(j_at_budget(r.episode_ends, r.j_curve, h) for r in recs) / len(recs)
    return out


def majority_curve(traces: Path, budgets: list[int], sequential: dict[str, float]) -> dict[str, float]:
    """Verifier-free parallel sampling: at budget H, majority vote over k = H / (mean trace
    length) of a model's independent traces of each problem (at most as many as were sampled);
    below k = 2, the sequential accuracy at H."""
    from collections import defaultdict

    from mrt.core.metrics import maj_at_k

    recs = [json.loads(x) for x in traces.read_text().splitlines() if x.strip()]
    by_problem = defaultdict(list)
    for r in recs:
        by_problem[r["problem_id"]].append(r)
    mean_len = sum(r["n_output_tokens"] for r in recs) / len(recs)
    k_max = min(len(v) for v in by_problem.values())
    out = {}
    for h in budgets:
        k = min(k_max, int(h // mean_len))
        if k < 2:
            out[str(h)] = sequential[str(h)]
        else:
            out[str(h)] = sum(
                maj_at_k([r["answer"] for r in v], [r["correct"] for r in v], k) for v in by_problem.values()
            ) / len(by_problem)
    return out


def _base_curve(cfg: StudyConfig, seed: int, out: Path) -> dict[str, float]:
    from mrt.measure.analyze import AnalyzeConfig
    from mrt.pipelines import analyze

    engine = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(SamplerArgs)}
    analyze(
        AnalyzeConfig(
            model=cfg.model,
            task="star",
            knobs=list(cfg.knobs),
            out=str(out),
            n_problems=cfg.eval_problems,
            traces_per_problem=cfg.eval_traces,
            extensions=0,
            seed=seed,
            **engine,
        )
    )
    return sequential_curve(out / "traces.jsonl", cfg.budgets)


def _search_arm(cfg: StudyConfig, seed: int, n: int, out: Path, base_curve: dict) -> dict:
    """Verifier trained on n base rollouts; best-of-N on the held-out problems."""
    done = out / "search.json"
    if done.is_file():
        return json.loads(done.read_text())
    from mrt.study import verifier as vf
    from mrt.tasks import get_task, parse_knobs
    from mrt.tasks.tiny import shipped_model_path

    model = cfg.model or str(shipped_model_path())
    task = get_task("star", **parse_knobs(cfg.knobs))
    sampler = sampler_from(cfg, model)
    k = cfg.verifier_rollouts
    train_p = task.problems(max(1, n // k), seed=11)  # the training problems of the other arms
    train = [
        r
        for rs in vf.sample_rollouts(sampler, task, train_p, k, task.default_max_new_tokens, seed=seed + 17)
        for r in rs
    ][:n]
    ver, tok = vf.train_verifier(
        model, train, out / "verifier", steps=cfg.verifier_steps, seed=seed, threads=cfg.threads
    )
    test_p = task.problems(cfg.eval_problems, seed=0)
    test = vf.sample_rollouts(sampler, task, test_p, max(cfg.best_of), task.default_max_new_tokens, seed=seed + 29)
    flat = [r for rs in test for r in rs]
    scores = vf.score(ver, tok, flat)
    per = []
    i = 0
    for rs in test:
        per.append(scores[i : i + len(rs)])
        i += len(rs)
    curve = vf.best_of_n_curve(test, per, cfg.best_of, seed=seed)
    mean_len = sum(len(r.output) for r in flat) / len(flat)
    at_budget = {}
    for rule in ("best", "weighted"):
        at_budget[rule] = {}
        for h in cfg.budgets:
            fit = [row for row in curve if row["n"] >= 2 and row["n"] * mean_len <= h]
            at_budget[rule][str(h)] = fit[-1][rule] if fit else base_curve[str(h)]
    res = {
        "n": n,
        "verifier_train_rollouts": len(train),
        "verifier_train_positive_fraction": sum(r.correct for r in train) / len(train),
        "verifier_heldout": vf.verifier_accuracy(scores, [r.correct for r in flat]),
        "mean_rollout_tokens": mean_len,
        "best_of_n": curve,
        "at_budget": at_budget,
    }
    write_json(done, res)
    return res


def _trace_stats(level: str, n: int, knobs: list[str]) -> dict:
    """Length spread of the VF training traces of a level (the heterogeneity knob, measured)."""
    import random

    from mrt.study.diagnostics import spread
    from mrt.tasks import get_task, parse_knobs
    from mrt.tasks.star import correct_trace

    task, rng = get_task("star", **parse_knobs(knobs)), random.Random(f"stats-{level}")
    lens, eps = [], []
    for p in task.problems(min(n, 512), seed=11):
        w = correct_trace(task.graph(p.meta["seed"]), rng, level)
        lens.append(len(w))
        eps.append(sum(x in ("try", "check") for x in w))
    return {"length": spread(lens), "episodes": spread(eps)}


# ---------------------------------------------------------------------------- study


@one_writer
def run_study(cfg: StudyConfig) -> dict:
    import torch

    cfg.apply_quick()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    for lv in cfg.levels:
        if lv not in ("low", "mid", "high"):
            raise ValueError(f"heterogeneity level must be low, mid or high, got {lv!r}")
    if not cfg.seeds or not cfg.data_sizes or not cfg.budgets:
        raise ValueError("seeds, data_sizes and budgets must not be empty")
    if any(n < 1 for n in cfg.data_sizes + cfg.best_of + cfg.budgets):
        raise ValueError("data_sizes, best_of and budgets must be positive")
    out = Path(cfg.out)
    claim_run_dir(
        out,
        {k: v for k, v in asdict(cfg).items() if k not in ("out", "threads")},
        free=("seeds", "base_url", *ENGINE_FIELDS),
    )
    results: dict = {"settings": {k: v for k, v in asdict(cfg).items() if k != "out"}, "seeds": {}}
    n_max = max(cfg.data_sizes)
    for seed in cfg.seeds:
        sd = out / f"seed{seed}"
        r: dict = {
            "base": _base_curve(cfg, seed, sd / "base"),
            "vf": {},
            "vf_maj": {},
            "rl": {},
            "rl_maj": {},
            "search": {},
        }
        for n in cfg.data_sizes:
            for lv in cfg.levels:
                t = _train(
                    cfg,
                    seed,
                    sd / f"vf-{lv}-n{n}",
                    algo="sft",
                    sft_style=f"hetero-{lv}",
                    train_problems=n,
                    max_steps=cfg.sft_steps,
                    batch_size=32,
                )
                r["vf"][f"{lv}/{n}"] = sequential_curve(t, cfg.budgets)
                r["vf_maj"][f"{lv}/{n}"] = majority_curve(t, cfg.budgets, r["vf"][f"{lv}/{n}"])
            if cfg.rl_all_sizes or n == n_max:
                t = _train(
                    cfg,
                    seed,
                    sd / f"rl-n{n}",
                    algo="grpo",
                    train_problems=n,
                    max_steps=cfg.grpo_steps,
                    prompts_per_step=8 if not cfg.quick else 2,
                    num_generations=8 if not cfg.quick else 4,
                )
                r["rl"][str(n)] = sequential_curve(t, cfg.budgets)
                r["rl_maj"][str(n)] = majority_curve(t, cfg.budgets, r["rl"][str(n)])
            r["search"][str(n)] = _search_arm(cfg, seed, n, sd / f"search-n{n}", r["base"])
        results["seeds"][str(seed)] = r
        write_json(out / "vb_vf.json", results)
    results["heterogeneity_of_vf_data"] = {lv: _trace_stats(lv, n_max, cfg.knobs) for lv in cfg.levels}
    results["aggregate"] = aggregate(results, cfg)
    results["claims"] = claims(results["aggregate"], cfg)
    write_json(out / "vb_vf.json", results)
    write_table(out, results, cfg)
    plot(out, results, cfg)
    return results


def _ms(xs: list[float]) -> dict:
    m = sum(xs) / len(xs)
    sd = (sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) ** 0.5 if len(xs) > 1 else 0.0
    return {"mean": m, "std": sd, "n": len(xs)}


def aggregate(results: dict, cfg: StudyConfig) -> dict:
    """Mean and std over seeds of every curve, keyed like the per-seed results."""
    seeds = list(results["seeds"].values())
    agg: dict = {"base": {}, "vf": {}, "vf_maj": {}, "rl": {}, "rl_maj": {}, "search_best": {}, "search_weighted": {}}
    for h in map(str, cfg.budgets):
        agg["base"][h] = _ms([s["base"][h] for s in seeds])
    for arm in ("vf", "vf_maj", "rl", "rl_maj"):
        for key in seeds[0][arm]:
            agg[arm][key] = {h: _ms([s[arm][key][h] for s in seeds]) for h in map(str, cfg.budgets)}
    # the best verifier-free method at each budget: one trace, or majority over several
    for key in seeds[0]["vf"]:
        agg.setdefault("vf_best", {})[key] = {
            h: _ms([max(s["vf"][key][h], s["vf_maj"][key][h]) for s in seeds]) for h in map(str, cfg.budgets)
        }
    for key in seeds[0]["search"]:
        for rule in ("best", "weighted"):
            agg[f"search_{rule}"][key] = {
                h: _ms([s["search"][key]["at_budget"][rule][h] for s in seeds]) for h in map(str, cfg.budgets)
            }
    agg["verifier_heldout_accuracy"] = {
        key: _ms([s["search"][key]["verifier_heldout"]["accuracy"] for s in seeds]) for key in seeds[0]["search"]
    }
    return agg


def claims(agg: dict, cfg: StudyConfig) -> dict:
    """The paper's three claims, checked on the mean curves at the largest data size."""
    n = str(max(cfg.data_sizes))
    lo, hi = str(min(cfg.budgets)), str(max(cfg.budgets))
    vb_arms = {"best-of-N": agg["search_best"][n], "verifier-weighted majority": agg["search_weighted"][n]}
    if n in agg["rl"]:
        vb_arms["RL"] = agg["rl"][n]
    out = {}
    for name, vb in vb_arms.items():  # against the better VF method (one trace or majority) at each H
        gaps = {
            lv: {h: vb[h]["mean"] - agg["vf_best"][f"{lv}/{n}"][h]["mean"] for h in map(str, cfg.budgets)}
            for lv in cfg.levels
        }
        out[name] = {
            "gap_by_level_and_budget": gaps,
            "vb_ge_vf_at_largest_budget": {lv: gaps[lv][hi] >= 0 for lv in cfg.levels},
            "gap_grows_with_budget": {lv: gaps[lv][hi] > gaps[lv][lo] for lv in cfg.levels},
            "gap_grows_with_heterogeneity": (
                gaps[cfg.levels[-1]][hi] > gaps[cfg.levels[0]][hi] if len(cfg.levels) > 1 else None
            ),
        }
    return out


def write_table(out: Path, results: dict, cfg: StudyConfig) -> None:
    agg, n = results["aggregate"], str(max(cfg.data_sizes))
    hs = list(map(str, cfg.budgets))

    def row(name, curve):
        return f"| {name} | " + " | ".join(f"{curve[h]['mean']:.3f} ± {curve[h]['std']:.3f}" for h in hs) + " |"

    lines = [
        f"Accuracy at test budget H (sampled tokens), data size n = {n}, mean ± std over "
        f"{len(results['seeds'])} seed(s).",
        "",
        "| arm | " + " | ".join(f"H={h}" for h in hs) + " |",
        "|---|" + "---|" * len(hs),
        row("base", agg["base"]),
    ]
    for lv in cfg.levels:
        lines.append(row(f"VF: SFT on {lv}-heterogeneity traces", agg["vf"][f"{lv}/{n}"]))
        lines.append(row("VF: same, majority over H/length traces", agg["vf_maj"][f"{lv}/{n}"]))
    if n in agg["rl"]:
        lines.append(row("VB: RL (GRPO, 0/1 reward)", agg["rl"][n]))
        lines.append(row("VB: RL, majority over H/length traces", agg["rl_maj"][n]))
    lines.append(row("VB: best-of-N, trained verifier", agg["search_best"][n]))
    lines.append(row("VB: verifier-weighted majority", agg["search_weighted"][n]))
    write_atomic(out / "table.md", "\n".join(lines) + "\n")


def plot(out: Path, results: dict, cfg: StudyConfig) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    agg, n = results["aggregate"], str(max(cfg.data_sizes))
    hs = cfg.budgets
    (out / "plots").mkdir(exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))

    def line(curve, label, **kw):
        m = [curve[str(h)]["mean"] for h in hs]
        s = [curve[str(h)]["std"] for h in hs]
        ax.errorbar(hs, m, yerr=s, label=label, capsize=2, **kw)

    line(agg["base"], "base", color="gray", ls=":")
    for lv, c in zip(cfg.levels, ("tab:blue", "tab:cyan", "tab:purple")):
        line(agg["vf_best"][f"{lv}/{n}"], f"VF SFT ({lv} het.), best of 1 trace / majority", color=c, ls="--")
    if n in agg["rl"]:
        line(agg["rl"][n], "VB RL (GRPO)", color="tab:red")
    line(agg["search_best"][n], "VB best-of-N + verifier", color="tab:orange")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("test budget H (sampled tokens per problem)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"verifier-based vs verifier-free, n = {n}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(out / "plots" / "accuracy_vs_budget.png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    if len(cfg.data_sizes) > 1:
        fig, ax = plt.subplots(figsize=(6, 4))
        h = str(max(hs))
        ns = sorted(cfg.data_sizes)
        for lv in cfg.levels:
            ax.plot(ns, [agg["vf_best"][f"{lv}/{k}"][h]["mean"] for k in ns], "--o", label=f"VF ({lv})")
        ax.plot(ns, [agg["search_best"][str(k)][h]["mean"] for k in ns], "-o", label="VB best-of-N")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("training data n")
        ax.set_ylabel(f"accuracy at H = {h}")
        ax.legend(fontsize=7)
        fig.tight_layout()
        with atomic_path(out / "plots" / "accuracy_vs_data.png") as tmp:
            fig.savefig(tmp, dpi=110)
        plt.close(fig)
