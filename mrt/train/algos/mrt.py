"""MRT in the paper's form (its RL README's termination baseline): half of each group continues
from a sampled prefix, half is cut there and forced to answer; a continuing rollout's advantage is
its reward minus the terminated ones' (``mrt.core.advantages.termination_baseline_advantages``)."""

from mrt.core import advantages as adv
from mrt.train.algos import Algorithm, Step, register


def prepare(trainer, inputs: list[dict]) -> list[dict]:
    return trainer.mrt_inputs(inputs)  # the prefixes, and which rows terminate at them


def advantages(trainer, step: Step):
    import torch

    device = step.out["advantages"].device
    cfg = trainer.mrt_config
    rewards = (trainer.gathered_rewards * trainer.reward_weights.to(device)).nansum(dim=1).tolist()
    flags = torch.tensor([float(x["mrt_terminated"]) for x in step.inputs], device=device)
    terminated = [f > 0.5 for f in trainer.accelerator.gather(flags).tolist()]
    a = adv.termination_baseline_advantages(
        rewards, terminated, trainer.num_generations, cfg.alpha, cfg.scale_rewards, cfg.mrt_advantage
    )
    for name, rows in (
        ("terminated", [r for r, t in zip(rewards, terminated) if t]),
        ("continued", [r for r, t in zip(rewards, terminated) if not t]),
    ):
        if rows:  # the progress signal: J(continue) - J(stop at the prefix)
            trainer.log_metric(f"mrt/reward_{name}", sum(rows) / len(rows))
    return trainer.local_tensor(a, len(step.inputs), device)


def validate(cfg) -> None:
    if cfg.num_generations < 2:
        raise ValueError("config key 'num_generations' must be >= 2 for mrt (half terminate, half continue)")


register(
    Algorithm(
        "mrt",
        "MRT, the paper's form: termination baseline on sampled prefixes",
        advantages=advantages,
        prepare=prepare,
        validate=validate,
        rank=2,
    )
)
