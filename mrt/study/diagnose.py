"""``mrt diagnose``: is a base policy on the side where verification scales better?

Samples rollouts per problem and reports (definitions in :mod:`mrt.diagnostics`): the reward
mean and spread per problem, anti-concentration at several margins with a histogram of
z-scores, the heterogeneity of correct traces (lengths, episode counts, styles), and the Monte
Carlo heterogeneity along traces (variance of J over sampled next segments, summed).

Output (``OUT``): ``rollouts.jsonl`` (per problem, written as it finishes; a rerun resumes),
``diagnose.json`` and ``plots/*.png``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from mrt.config import arg, claim_run_dir
from mrt.measure.metaprover import estimate_prefixes
from mrt.rundir import atomic_path, one_writer, write_json
from mrt.runloop import ProblemLoop, problem_seed
from mrt.samplers import ENGINE_FIELDS, SamplerArgs, sampler_from
from mrt.samplers.base import SamplingParams
from mrt.study import diagnostics as dg


@dataclass
class DiagnoseConfig(SamplerArgs):
    model: str = arg("", "model directory or hub id (default: the shipped didactic base model)")
    task: str = arg("star", "task name")
    knobs: list[str] = arg([], "task knobs as name=value")
    out: str = arg("runs/diagnose", "output directory")
    n_problems: int = arg(32, "problems")
    problem_seed: int = arg(0, "problem-set seed")
    rollouts: int = arg(16, "rollouts per problem (reward spread, anti-concentration, correct traces)")
    margins: list[float] = arg([0.5, 1.0, 2.0], "anti-concentration margins c (in problem std units)")
    mc_problems: int = arg(8, "problems whose first rollout gets the Monte Carlo heterogeneity (0: skip)")
    next_segments: int = arg(4, "sampled next segments per prefix (Monte Carlo heterogeneity)")
    answers_per_prefix: int = arg(8, "forced answers per prefix to estimate J")
    segment_tokens: int = arg(0, "token cap of a sampled next segment (0: the task's extension cap)")
    max_new_tokens: int = arg(0, "token cap of a rollout (0: the task's default)")
    answer_tokens: int = arg(0, "token cap of a forced answer (0: the task's default)")
    temperature: float = arg(1.0, "sampling temperature")
    seed: int = arg(0, "sampling seed")


def _style(task, tok, thinking: list[int], ends: list[int]) -> str:
    """A coarse style label: the first word of each episode (e.g. ``try try check``)."""
    words = []
    for a, b in zip([0] + ends[:-1], ends):
        text = tok.decode(thinking[a:b], skip_special_tokens=True).split()
        words.append(text[0] if text else "")
    return " ".join(words)


def rollouts_of(sampler, task, problem, cfg: DiagnoseConfig, index: int) -> dict:
    tok = sampler.tokenizer
    seed = problem_seed(cfg.seed, index)
    prompt = task.prompt_ids(problem, tok)
    comps = sampler.sample(
        [prompt],
        SamplingParams(
            n=cfg.rollouts,
            max_new_tokens=cfg.max_new_tokens or task.default_max_new_tokens,
            temperature=cfg.temperature,
            seed=seed,
        ),
    )[0]
    rows = []
    for c in comps:
        thinking, answer_ids = task.split_output(c.token_ids, tok)
        _, ok = task.grade_answer_ids(problem, answer_ids, tok)
        ends = task.episode_ends(thinking, tok) if thinking else []
        rows.append(
            {
                "reward": float(ok),
                "tokens": len(c.token_ids),
                "episodes": len(ends),
                "style": _style(task, tok, thinking, ends),
                "thinking": thinking,
                "ends": ends,
            }
        )
    out = {
        "problem_id": problem.id,
        "rollouts": [{k: v for k, v in r.items() if k not in ("thinking", "ends")} for r in rows],
    }
    if index < cfg.mc_problems:
        out["mc"] = _next_segment_j(sampler, task, problem, prompt, rows[0]["thinking"], rows[0]["ends"], cfg, seed)
    return out


def _next_segment_j(sampler, task, problem, prompt, thinking, ends, cfg, seed) -> list[list[float]]:
    """For each prefix z_{0:j} of one trace (j = 0..k-1): J after each of M sampled next segments."""
    tok = sampler.tokenizer
    cap = cfg.segment_tokens or task.extension_tokens
    result = []
    for j, cut in enumerate([0] + ends[:-1]):
        prefix = thinking[:cut]
        conts = sampler.sample(
            [prompt + prefix],
            SamplingParams(
                n=cfg.next_segments, max_new_tokens=cap, temperature=cfg.temperature, seed=seed + 101 * (j + 1)
            ),
        )[0]
        segs = []
        for c in conts:
            th, _ = task.split_output(c.token_ids, tok)
            full = prefix + th
            new_ends = [e for e in task.episode_ends(full, tok) if e > cut] if full else []
            segs.append((full, [new_ends[0]] if new_ends else [len(full)]))
        ests = estimate_prefixes(
            sampler,
            task,
            problem,
            prompt,
            segs,
            n=cfg.answers_per_prefix,
            answer_tokens=cfg.answer_tokens or task.default_answer_tokens,
            temperature=cfg.temperature,
            seed=seed + 211 * (j + 1),
            include_empty=False,
        )
        result.append([e[-1].j for e in ests])
    return result


def summarize(rows: list[dict], cfg: DiagnoseConfig) -> dict:
    rewards = [[r["reward"] for r in row["rollouts"]] for row in rows]
    spread = dg.reward_spread(rewards)
    z = dg.z_scores(rewards)
    edges = [-4, -3, -2, -1, 0, 1, 2, 3, 4]
    correct = [[r for r in row["rollouts"] if r["reward"] > 0] for row in rows]
    mc = [dg.mc_heterogeneity(row["mc"]) for row in rows if row.get("mc")]
    means = [s["mean"] for s in spread]
    return {
        "model": cfg.model,
        "task": cfg.task,
        "n_problems": len(rows),
        "rollouts_per_problem": cfg.rollouts,
        "mean_reward": sum(means) / len(means),
        "reward_std_mean": sum(s["std"] for s in spread) / len(spread),
        "solved_fraction": sum(m > 0 for m in means) / len(means),
        "all_correct_fraction": sum(m == 1 for m in means) / len(means),
        "anti_concentration": {str(c): dg.anti_concentration(rewards, c) for c in cfg.margins},
        "z_histogram": {"edges": edges, "counts": dg.histogram(z, edges)},
        "correct_trace_heterogeneity": dg.correct_trace_heterogeneity(correct),
        "mc_heterogeneity": {"mean": sum(mc) / len(mc) if mc else None, "traces": len(mc), "per_trace": mc},
        "per_problem": [{"problem_id": row["problem_id"], **s} for row, s in zip(rows, spread)],
        "settings": {k: v for k, v in asdict(cfg).items() if k != "out"},
    }


def _plots(out: Path, s: dict, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (out / "plots").mkdir(exist_ok=True)
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    e, c = s["z_histogram"]["edges"], s["z_histogram"]["counts"]
    ax[0].bar([(a + b) / 2 for a, b in zip(e[:-1], e[1:])], c, width=0.9)
    ax[0].set_xlabel("(reward - problem mean) / problem std")
    ax[0].set_ylabel("rollouts")
    ax[0].set_title("anti-concentration")
    ax[1].hist([p["mean"] for p in s["per_problem"]], bins=10, range=(0, 1))
    ax[1].set_xlabel("mean reward of a problem")
    ax[1].set_title("reward spread over problems")
    fig.tight_layout()
    with atomic_path(out / "plots" / "rewards.png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


@one_writer
def run_diagnose(cfg: DiagnoseConfig, sampler=None) -> dict:
    from mrt.samplers import describe_backend
    from mrt.tasks import get_task, parse_knobs
    from mrt.tasks.tiny import shipped_model_path

    task = get_task(cfg.task, **parse_knobs(cfg.knobs))
    for name in ("n_problems", "rollouts", "next_segments", "answers_per_prefix"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.rollouts < 2:
        raise ValueError("rollouts must be >= 2 to measure a spread")
    cfg.model = cfg.model or str(shipped_model_path())
    out = Path(cfg.out)
    settings = {k: v for k, v in asdict(cfg).items() if k not in ("out", "n_problems", "base_url", *ENGINE_FIELDS)}
    settings["knobs"] = task.knobs()
    claim_run_dir(out, settings)
    problems = task.problems(cfg.n_problems, seed=cfg.problem_seed)
    loop = ProblemLoop("diagnose", out / "rollouts.jsonl", problems, 1, cfg)
    source = describe_backend(cfg, cfg.model)
    sampler = loop.sampler(sampler, lambda: sampler_from(cfg, cfg.model), cfg.max_retries, source)

    def work(items):
        ((i, p),) = items
        return {p.id: [rollouts_of(sampler, task, p, cfg, i)]}

    loop.run(sampler, work, source=source)
    loop.gave_up.finish()  # the figures need every problem
    rows = [recs[0] for recs in loop.records()]
    s = summarize(rows, cfg)
    write_json(out / "diagnose.json", s)
    _plots(out, s, rows)
    return s
