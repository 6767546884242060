"""MRT online: one reward per trace, correctness plus ``alpha`` times the progress its episodes
made (``mrt.core.advantages.online_rewards``), group-normalised."""

from mrt.core import advantages as adv
from mrt.train.algos import Algorithm, Step, register


def advantages(trainer, step: Step):
    trainer.check_groups(step.inputs)
    cfg = trainer.mrt_config
    _, curves = trainer.j_curves(step.inputs, step.local, cfg.max_episodes)
    rewards = adv.online_rewards(step.correct, curves, cfg.alpha)
    all_rewards = [r[0] for r in trainer.gather_rows([[r] for r in rewards])]
    a = adv.scaled_advantages(all_rewards, trainer.num_generations, cfg.scale_rewards)
    prg = [c[-1] - c[0] for c in curves]
    trainer.log_metric("mrt/mean_progress", sum(prg) / len(prg) if prg else 0.0)
    return trainer.local_tensor(a, len(step.inputs), step.out["advantages"].device)


register(
    Algorithm(
        "mrt-online",
        "MRT online: a per-trace progress bonus on the outcome reward",
        advantages=advantages,
        uses_j=True,
        rank=4,
    )
)
