"""STaR: supervised steps on the model's own correct rollouts (a kept rollout's tokens get a
constant advantage, the others none: ``mrt.core.advantages.kept_advantages``)."""

from mrt.core import advantages as adv
from mrt.train.algos import Algorithm, Step, register


def kept(trainer, step: Step, keep: list[bool]):
    """Advantages that make the loss the mean log-likelihood of the kept rollouts' tokens."""
    import torch

    device = step.out["advantages"].device
    lengths = [len(x) for x in step.local]
    kept_tokens = sum(n for n, k in zip(lengths, keep) if k)
    tot = trainer.accelerator.gather(torch.tensor([sum(lengths), kept_tokens], device=device).reshape(1, 2))
    total = (int(tot[:, 0].sum().item()), int(tot[:, 1].sum().item()))
    trainer.log_metric("star/kept_fraction", sum(keep) / len(keep))
    return torch.tensor(adv.kept_advantages(keep, lengths, total), device=device)


def advantages(trainer, step: Step):
    return kept(trainer, step, adv.star_keep(step.correct))


register(Algorithm("star", "STaR: SFT on the model's own correct rollouts", advantages=advantages, rank=6))
