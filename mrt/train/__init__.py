"""Training: GRPO, length penalty, MRT (termination baseline, dense progress), STaR, MRT-STaR, SFT."""

from mrt.train.config import ALGOS, TrainConfig, load_config

__all__ = ["ALGOS", "TrainConfig", "load_config"]
