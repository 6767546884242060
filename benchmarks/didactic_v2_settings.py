"""The didactic benchmark's settings, methods and tuning grid, declared before any final run.

Read by ``benchmarks/didactic_v2.py``; documented in docs/benchmarks-didactic.md. Nothing here
was chosen from a method's results: the budget B is the base model's median thinking length on
the validation problems of the new world (16 tokens, measured before any training run), the
cue probability and arm lengths come from the issue's design, and the tuning grid is the same
size for every method that has a coefficient of its own.
"""

from __future__ import annotations

SHIPPED = ""  # the shipped base model (mrt/tasks/checkpoints/star-base)
CUE_BASE = "mrt/tasks/checkpoints/star-cue-base"  # continued pretraining with hints in half the prompts
B = 16  # binding thinking budget: the cue base's median thinking tokens on validation problems

# setting -> base model, task knobs, training thinking budget, regret budgets of the evaluation
SETTINGS = {
    # today's world: loose budget (256 tokens, base traces at most ~96), order not learnable
    "control": {
        "model": SHIPPED,
        "knobs": ["arms=2-4", "arm_len=2-4"],
        "thinking_budget": 0,
        "budgets": [16, 32, 48, 64, 96],
        "max_completion_length": 0,
        "what": "today's world: no budget pressure, order of exploration not learnable",
    },
    # thinking cut at B and the answer forced there; arms of 3-5 nodes (no one-hop backward shortcut)
    "budget": {
        "model": CUE_BASE,
        "knobs": ["arms=2-4", "arm_len=3-5"],
        "thinking_budget": B,
        "budgets": [B // 2, B, 2 * B, 4 * B],
        "max_completion_length": 2 * B,
        "what": "binding budget: thinking cut at B=16 tokens and the answer forced; arms of 3-5",
    },
    # as budget, and the prompt's hint names the goal arm's first node with probability 0.75
    "order": {
        "model": CUE_BASE,
        "knobs": ["arms=2-4", "arm_len=3-5", "cue=0.75"],
        "thinking_budget": B,
        "budgets": [B // 2, B, 2 * B, 4 * B],
        "max_completion_length": 2 * B,
        "what": "learnable order: as budget, plus a hint naming the goal arm with probability 0.75",
    },
}
TUNE_SETTING = "order"  # tune where the methods should differ most; the values are reused elsewhere

METHODS = ["grpo", "length-penalty", "mrt", "mrt-dense", "mrt-online", "anytime", "star", "mrt-star"]
LEARNING_RATES = [1e-4, 2e-4, 4e-4]
# each method's own coefficient, three values (None: the method has none; only the learning rate)
COEFFICIENTS = {
    "grpo": None,
    "length-penalty": ("length_penalty", [0.1, 0.3, 0.5]),
    "mrt": ("alpha", [0.5, 1.0, 2.0]),
    "mrt-dense": ("alpha", [0.5, 1.0, 2.0]),
    "mrt-online": ("alpha", [0.5, 1.0, 2.0]),
    "anytime": ("budget_prior", ["uniform", "linear", "0,0,0,1"]),  # AnytimeReasoner's three priors
    "star": None,
    "mrt-star": ("min_final_j", [0.25, 0.5, 0.75]),
}
TOKEN_BUDGET = 64_000  # sampled tokens per training run, every method (rollouts, prefixes, J, summaries)
TUNE_SEED = 0
FINAL_SEEDS = [0, 1, 2, 3, 4]
# problem sets: training seed 11 (the trainer's default), validation seed 1, held-out test seed 0
VALIDATION = {"problem_seed": 1, "n_problems": 64, "traces": 4, "extensions": 0}
TEST = {"problem_seed": 0, "n_problems": 128, "traces": 8, "extensions": 4}
CRITERION = "auc_at_B"  # 1 - normalised regret at the training budget (control: at 96 tokens)


def criterion_budget(setting: str) -> int:
    s = SETTINGS[setting]
    return s["thinking_budget"] or max(s["budgets"])


def tune_grid(method: str) -> list[dict]:
    """Every configuration a method is tuned over (the same 3 learning rates for all)."""
    coef = COEFFICIENTS[method]
    if coef is None:
        return [{"learning_rate": lr} for lr in LEARNING_RATES]
    name, values = coef
    return [{"learning_rate": lr, name: v} for lr in LEARNING_RATES for v in values]
