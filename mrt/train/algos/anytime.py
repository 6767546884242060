"""AnytimeReasoner (BRPO): the thinking is cut at budgets drawn from a prior, an answer is forced
at each, and each thinking segment's advantage comes from the rewards at the budgets after it
(``mrt.core.advantages.brpo_segment_advantages``); the answer tokens keep GRPO's outcome advantage."""

from mrt.core import advantages as adv
from mrt.train.algos import Algorithm, Step, register


def advantages(trainer, step: Step):
    import torch

    trainer.check_groups(step.inputs)
    mask = step.out["completion_mask"]
    cfg = trainer.mrt_config
    budgets, thinks, rewards = trainer.budget_rewards(step.inputs, step.local)
    all_rewards = trainer.gather_rows(rewards)
    prior = adv.budget_prior(cfg.budget_prior, cfg.budget_grid)
    seg = adv.brpo_segment_advantages(all_rewards, prior, trainer.num_generations)
    start = trainer.accelerator.process_index * len(step.inputs)
    outcome = step.out["advantages"].tolist()  # the summary (answer) tokens: GRPO on the final outcome
    rows = [
        adv.segment_token_advantages(seg[start + i], budgets, thinks[i], mask.shape[1], outcome[i])
        for i in range(len(step.local))
    ]
    for j, b in enumerate(budgets):
        trainer.log_metric(f"anytime/reward_at_{b}", sum(r[j] for r in rewards) / len(rewards))
    return torch.tensor(rows, device=step.out["advantages"].device)


def validate(cfg) -> None:
    adv.budget_prior(cfg.budget_prior, cfg.budget_grid)  # a prior that is not a distribution is refused


register(
    Algorithm(
        "anytime",
        "AnytimeReasoner (BRPO over thinking budgets)",
        advantages=advantages,
        validate=validate,
        rank=5,
    )
)
