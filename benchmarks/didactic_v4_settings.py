"""The didactic benchmark's fourth design (issue 36, point 3): a design where the answer before
thinking cannot carry the result. Declared before any of its runs; run by the third design's driver:

    python -m benchmarks.didactic_v3 --settings-file benchmarks/didactic_v4_settings.py \\
        --results benchmarks/results/didactic_v4.json --jobs 2

Why. In the third design MRT beat GRPO on regret at B = 16, but the whole lead sat in the answer
forced before any thinking (MRT − GRPO: −0.089 before thinking, thinking added 0.060 less;
docs/benchmarks-didactic.md): the prompt's hint named the goal arm for 75% of problems, and MRT's
termination half trains the answer after an empty prefix, which learned to follow it. Here the hint
is written the same way but names an arm drawn uniformly, the goal's included (``cue=chance``): it
is right 1/arms of the time, as often as a guess, so following it before thinking gains nothing,
and the answer with no thinking stays at chance for every method. What is left to win on regret at
B is the thinking.

Everything else is the third design's, unchanged: the world's sizes, the base model (star-dup-base,
which reads a listed-twice hint part of the time), B = 16, 256K sampled tokens per run, the tuning
grid (3 learning rates x 3 values of a second hyperparameter, on a seed that is never a final seed),
the validation and held-out splits, the tuning criterion and the primary metric.

Methods: GRPO, MRT in the paper's form, and dense MRT from the on-policy estimator, the two that
beat GRPO in the third design (the issue's list).

Seeds: 6, from ``python -m benchmarks.didactic_v4_power`` on the third design's records
(``benchmarks/results/didactic_v4_power.json``): with 6 seeds and 128 held-out problems the
minimum detectable difference in regret at B, at 80% power after Holm over the 2 methods, is 0.014
(paired bootstrap, median variance components) to 0.015 (largest); the seed-level t interval 0.013.
The world's variance may differ from the third design's; 6 seeds leave a margin for a difference of
0.02.

Nothing here was chosen from a result of this design.
"""

from __future__ import annotations

NAME = "didactic_v4"  # its records: benchmarks/results/didactic_v4_runs/, _tuning_runs/; plots: docs/img/didactic_v4

BASE = "mrt/tasks/checkpoints/star-dup-base"
B = 16  # the third design's binding budget
CUE_AT = "dup"

SETTING = {
    "name": "order-chance",
    "model": BASE,
    "knobs": ["arms=2-4", "arm_len=3-5", "cue=chance", f"cue_at={CUE_AT}"],
    "thinking_budget": B,
    "budgets": [B // 2, B, 2 * B, 4 * B],
    "max_completion_length": 2 * B,
    "what": "thinking cut at B=16 and the answer forced; a hint inside the edge list names an arm drawn "
    "uniformly (right 1/arms of the time, as often as a guess)",
}

METHODS = {
    "grpo": {"algo": "grpo"},
    "mrt": {"algo": "mrt"},  # the paper's form: termination baseline
    "mrt-dense-onpolicy": {"algo": "mrt-dense", "j_source": "mixed"},  # dense MRT from the on-policy estimator
}
CUT: dict = {}  # the third design's other methods are not in this design's question
LEARNING_RATES = [1e-4, 2e-4, 4e-4]
SECOND_AXIS = {
    "grpo": ("num_generations", [4, 8, 16]),
    "mrt": ("alpha", [0.5, 1.0, 2.0]),
    "mrt-dense-onpolicy": ("alpha", [0.5, 1.0, 2.0]),
}
TOKEN_BUDGET = 256_000
TUNE_SEEDS = [100]  # never a final seed
FINAL_SEEDS = list(range(6))
VALIDATION = {"problem_seed": 1, "n_problems": 64, "traces": 4, "extensions": 0}
TEST = {"problem_seed": 0, "n_problems": 128, "traces": 8, "extensions": 2}
CRITERION = "regret_at_B"
TIE_SE = 2.0

PRIMARY = {
    "name": "regret at the training budget, with the answer before thinking at chance",
    "metric": f"regret_C{B}",
    "lower_is_better": True,
    "comparison": "method - grpo, paired over seeds and held-out problems",
    "methods": ["mrt", "mrt-dense-onpolicy"],
    "correction": "holm",
    "alpha": 0.05,
    "interval": "paired bootstrap over seeds and problems at the Bonferroni level 1 - alpha/k "
    "(k = the number of methods), with Holm-adjusted p from its normal approximation; seed-level t "
    "intervals beside it",
}


def tune_grid(method: str) -> list[dict]:
    """Every configuration a method is tuned over: 3 learning rates x 3 values of its second axis."""
    name, values = SECOND_AXIS[method]
    return [{"learning_rate": lr, name: v} for lr in LEARNING_RATES for v in values]
