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
    all_correct = [r[0] > 0.5 for r in trainer.gather_rows([[float(c)] for c in step.correct])]
    a = backtrack_advantages(all_correct, j0, trainer.num_generations, cfg.alpha, cfg.scale_rewards, cfg.mrt_advantage)
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
