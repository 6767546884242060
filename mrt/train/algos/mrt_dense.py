"""Dense MRT: the outcome advantage on every token, plus ``alpha`` times each episode's progress
(J after it minus J before it) on that episode's tokens (``mrt.core.advantages.dense_token_advantages``).
J comes from Monte Carlo forced answers, the learned estimator, or the on-policy mix (--j-source)."""

from mrt.core import advantages as adv
from mrt.train.algos import Algorithm, Step, register


def prepare(trainer, inputs: list[dict]) -> list[dict]:
    trainer.check_groups(inputs)
    return inputs


def advantages(trainer, step: Step):
    import torch

    mask = step.out["completion_mask"]
    ends, curves = trainer.j_curves(step.inputs, step.local)
    outcome = step.out["advantages"].tolist()
    alpha = trainer.mrt_config.alpha
    rows = [
        adv.dense_token_advantages(outcome[i], ends[i], adv.progress_from_j(curves[i]), mask.shape[1], alpha)
        for i in range(len(step.local))
    ]
    prg = [p for c in curves for p in adv.progress_from_j(c)]
    trainer.log_metric("mrt/mean_progress", sum(prg) / len(prg) if prg else 0.0)
    return torch.tensor(rows, device=step.out["advantages"].device)


register(
    Algorithm(
        "mrt-dense",
        "dense MRT: per-episode progress bonus on each episode's tokens",
        advantages=advantages,
        prepare=prepare,
        uses_j=True,
        rank=3,
    )
)
