"""The didactic benchmark's third design (issue 22): its setting, methods, tuning grid, seeds and
its one primary endpoint, declared before any tuning or final run.

Read by ``benchmarks/didactic_v3.py``, which refuses a settings file without ``PRIMARY``;
documented in docs/benchmarks-didactic.md ("Third design"). Where each choice comes from:

* the hint is written inside the edge list (``cue_at``), where the model's edge look-up reads it:
  ``benchmarks/didactic_v3_hint_pilot.py`` measured which place the tiny model can read and learn
  (``benchmarks/results/didactic_v3_hint_pilot.json``);
* the world, the base model and the binding budget B = 16 are the second design's ``order``
  setting (B is the base's median thinking length on validation problems, measured there);
* the token budget is 256K sampled tokens per run. The issue asks for about 512K, or what GRPO
  needs to gain +0.10 over the base; the budget pilot (``benchmarks/didactic_v3_budget_pilot.py``,
  ``benchmarks/results/didactic_v3_budget_pilot.json``; GRPO, lr 1e-4, 512K tokens) shows that
  GRPO never gains +0.10 here: its accuracy at B rises by +0.08 within 77K tokens and then holds,
  and its use of the hint rises 0.45 -> 0.71 of first walks on the hinted arm by 224K and 0.76 by
  295K, flat after. 256K is three times the accuracy plateau and leaves most of the order learned,
  and it halves the compute, which lets the issue's whole list of methods run in about 8 hours
  with 2 jobs (at 512K the on-policy estimator form had to be cut);
* the number of seeds comes from the power calculation on the second design's records
  (``benchmarks/didactic_v3_power.py --methods 5``): 12 seeds resolve a difference of 0.02 in the
  primary endpoint at 80% power after Holm's correction over the 5 methods for a typical method,
  and about 0.02 with the largest variance components;
* the methods are the issue's list.

The budget was set to 256K (from 512K) after the budget pilot and before any tuning or final run.

Nothing here was chosen from a method's result in this design.
"""

from __future__ import annotations

# star-cue-base continued for 600 steps with the hint written twice-listed in half the prompts and a
# teacher that ignores it (the hint pilot's dup-ignore run): it reads the hint part of the time
# (hinted arm first in 0.54 of first walks, chance 0.35; star-cue-base, never trained on it, 0.81),
# so there is an order to learn and the model has the circuit to learn it
BASE = "mrt/tasks/checkpoints/star-dup-base"
B = 16  # binding thinking budget (the second design's, measured on star-cue-base before any training)
CUE_AT = "dup"  # where the hint is written; from the hint pilot (see the module docstring)

SETTING = {
    "name": "order-readable",
    "model": BASE,
    "knobs": ["arms=2-4", "arm_len=3-5", "cue=0.75", f"cue_at={CUE_AT}"],
    "thinking_budget": B,
    "budgets": [B // 2, B, 2 * B, 4 * B],
    "max_completion_length": 2 * B,
    "what": "thinking cut at B=16 and the answer forced; a hint inside the edge list names the goal arm with p=0.75",
}

# method -> the mrt train algorithm and its fixed flags (the same trainer for all)
METHODS = {
    "grpo": {"algo": "grpo"},
    "length-penalty": {"algo": "length-penalty"},
    "mrt": {"algo": "mrt"},  # the paper's form: termination baseline
    "mrt-dense": {"algo": "mrt-dense", "j_source": "mc"},  # dense progress bonus, Monte Carlo J
    "anytime": {"algo": "anytime"},  # AnytimeReasoner's BRPO
    "mrt-dense-onpolicy": {"algo": "mrt-dense", "j_source": "mixed"},  # dense MRT from the on-policy estimator
}
# methods of the list left out to fit the time, with the reason (none at 256K tokens)
CUT: dict = {}
LEARNING_RATES = [1e-4, 2e-4, 4e-4]  # the second design's grid, not re-chosen
# every method: 3 learning rates x 3 values of one more hyperparameter of its own (9 tuning runs each)
SECOND_AXIS = {
    "grpo": ("num_generations", [4, 8, 16]),
    "length-penalty": ("length_penalty", [0.1, 0.3, 0.5]),
    "mrt": ("alpha", [0.5, 1.0, 2.0]),
    "mrt-dense": ("alpha", [0.5, 1.0, 2.0]),
    "anytime": ("budget_prior", ["uniform", "linear", "0,0,0,1"]),
    "mrt-dense-onpolicy": ("alpha", [0.5, 1.0, 2.0]),
}
TOKEN_BUDGET = 256_000  # sampled tokens per training run, every method, every token counted
TUNE_SEEDS = [100]  # never a final seed
FINAL_SEEDS = list(range(12))
# problem sets: training seed 11 (the trainer's default), validation seed 1, held-out test seed 0
VALIDATION = {"problem_seed": 1, "n_problems": 64, "traces": 4, "extensions": 0}
TEST = {"problem_seed": 0, "n_problems": 128, "traces": 8, "extensions": 2}
CRITERION = "regret_at_B"  # tuning: 1 - normalised regret at C = B on the validation split (higher is better)
TIE_SE = 2.0  # a tuning margin below this many standard errors (bootstrap over problems) is reported as a tie

# The one primary endpoint. Everything else the report holds is secondary and labelled so.
PRIMARY = {
    "name": "regret at the training budget",
    "metric": f"regret_C{B}",  # normalised regret at C = B: 1 - the area under the accuracy-budget curve up to B
    "lower_is_better": True,
    "comparison": "method - grpo, paired over seeds and held-out problems",
    "methods": ["length-penalty", "mrt", "mrt-dense", "anytime", "mrt-dense-onpolicy"],
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
