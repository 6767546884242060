"""GRPO with a length penalty: the reward is correctness minus a penalty growing with the
completion's length (``mrt.core.advantages.length_penalty_rewards``)."""

from mrt.core import advantages as adv
from mrt.train.algos import Algorithm, register


def reward(correct: list[bool], lengths: list[int], max_length: int, coef: float) -> list[float]:
    return adv.length_penalty_rewards(correct, lengths, max_length, coef)


register(
    Algorithm(
        "length-penalty",
        "GRPO on correctness minus a length penalty (--length-penalty)",
        reward=reward,
        rank=1,
    )
)
