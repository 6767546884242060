"""SFT on given traces (TRL's ``SFTTrainer``): warm starts and the verifier-free arm of the study."""

from mrt.train.algos import Algorithm, register


def validate(cfg) -> None:
    styles = ("expert", "noisy", "hetero-low", "hetero-mid", "hetero-high")
    if cfg.sft_style not in styles:
        raise ValueError(
            f"config key 'sft_style' must be expert, noisy, hetero-low, hetero-mid or hetero-high, got {cfg.sft_style!r}"
        )


register(Algorithm("sft", "SFT on given traces (TRL's SFTTrainer)", validate=validate, trainer="sft", rank=8))
