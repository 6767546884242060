"""MRT-STaR: STaR with a progress filter: of the correct rollouts, keep those whose J rises to
at least ``min_final_j`` along the way (``mrt.core.advantages.mrt_star_keep``; docs/training.md)."""

from mrt.core import advantages as adv
from mrt.train.algos import Algorithm, Step, register
from mrt.train.algos.star import kept


def prepare(trainer, inputs: list[dict]) -> list[dict]:
    trainer.check_groups(inputs)
    return inputs


def advantages(trainer, step: Step):
    _, curves = trainer.j_curves(step.inputs, step.local)
    keep = adv.mrt_star_keep(step.correct, curves, trainer.num_generations, trainer.mrt_config.min_final_j)
    return kept(trainer, step, keep)


register(
    Algorithm(
        "mrt-star",
        "MRT-STaR: STaR with a progress filter",
        advantages=advantages,
        prepare=prepare,
        uses_j=True,
        rank=7,
    )
)
