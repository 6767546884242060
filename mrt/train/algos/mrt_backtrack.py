"""MRT-RL on the backtracking format: a first attempt ``z0`` is sampled and kept in the prompt,
the rollout writes a backtrack marker and a revision; its advantage adds ``alpha`` times
R - J(z0) to the outcome advantage (``mrt.core.backtrack.backtrack_advantages``; the authors'
fork form, docs/backtracking.md), or keeps rollouts as STaR does (``mrt_advantage`` star | mrt-star)."""

from mrt.train.algos import Algorithm, Step, register


def prepare(trainer, inputs: list[dict]) -> list[dict]:
    return trainer.backtrack_inputs(inputs)


def advantages(trainer, step: Step):
    import torch

    device = step.out["advantages"].device
    cfg = trainer.mrt_config
    if cfg.mrt_advantage in ("star", "mrt-star"):
        return torch.tensor(trainer.backtrack_filter(step.inputs, step.local, step.correct), device=device)
    from mrt.core.backtrack import backtrack_advantages

    j0 = [r[0] for r in trainer.gather_rows([[float(x["backtrack_j0"])] for x in step.inputs])]
    # R: the reward (0/1 correctness, less the format penalty where one applies)
    rewards = step.rewards if step.rewards is not None else [float(c) for c in step.correct]
    rows = trainer.gather_rows([[float(x), float(c)] for x, c in zip(rewards, step.correct)])
    all_r, all_correct = [r[0] for r in rows], [r[1] for r in rows]
    a = backtrack_advantages(
        all_r, j0, trainer.num_generations, cfg.alpha, cfg.scale_rewards, cfg.mrt_advantage, std_of=all_correct
    )
    trainer.log_metric("backtrack/progress", sum(all_correct) / len(all_correct) - sum(j0) / len(j0))
    return trainer.local_tensor(a, len(step.inputs), device)


register(
    Algorithm(
        "mrt-backtrack",
        "MRT-RL on the backtracking format (the authors' fork form)",
        advantages=advantages,
        prepare=prepare,
        rank=9,
    )
)
