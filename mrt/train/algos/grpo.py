"""Outcome-reward GRPO: TRL's own advantages (the group-normalised 0/1 reward), unchanged."""

from mrt.train.algos import Algorithm, register

register(Algorithm("grpo", "outcome-reward GRPO (TRL's group-normalised 0/1 reward)", rank=0))
