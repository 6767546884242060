"""The backtracking benchmark (issue 23): its world, arms, tuning, seeds and its one primary
endpoint, declared before any tuning or final run.

Read by ``benchmarks/backtracking.py``, which refuses a settings file without ``PRIMARY``;
documented in docs/backtracking.md ("The benchmark"). Where each choice comes from:

* the world (``tree``, ``arm_len=2 twig_len=2``: paths of four nodes after the start, three
  backward hops from the goal's marked edge) is the smoke check's (docs/backtracking.md): with the
  default knobs an SFT model reads the answer off the prompt (its J before any walk is far above
  the walk-only value), with these it nearly does not;
* the warm-start and SFT recipe (1,024 problems, 4 draws a problem, 150 steps of 32, lr 1e-3) is
  the smoke check's, the same for the three schemes; each scheme's data are cut to the smallest
  scheme's example count of that seed (equal examples, not equal problems);
* the RL arms start from the seed's ``backtrack`` SFT model, as the paper's MRT-RL starts from its
  backtrack-warm-started model; G = 4 is the paper's Table 5; alpha's grid is the authors' sweep
  {0.2, 0.8, 1.6} (every other value of their {0, 0.2, 0.4, 0.8, 1.6}: 0 is GRPO, an arm here);
* each RL arm gets three tuning runs on one tuning seed that is never a final seed, scored on
  validation problems by the primary endpoint's quantity: GRPO, STaR and MRT-STaR over three
  learning rates, MRT-RL over alpha at the middle learning rate (MRT-RL's learning rate is not
  tuned: a handicap to MRT, not to its baseline);
* the step count and the evaluation sizes come from the timing pilot (``--stage plan`` prints
  the compute plan), chosen so a rerun fits about 4 hours with 2 jobs;
* the token budget of the primary endpoint, B, is the tuning seed's backtrack-SFT model's mean
  token cost of parallel maj@10 on validation problems, measured in that pilot, rounded.

Nothing here was chosen from a method's result in this benchmark.
"""

from __future__ import annotations

TASK = "tree"
KNOBS = ["arm_len=2", "twig_len=2"]  # format=backtrack is the tree world's default
BASE = ""  # the shipped star base model (knows the world, not the 'back' marker)

WARMSTART = {"n_problems": 1024, "problem_seed": 11, "attempts": 4}
SCHEMES = ["backtrack", "rise", "star"]
SFT = {"max_steps": 150, "batch_size": 32, "learning_rate": 1e-3}

# RL arms: mrt train --algo mrt-backtrack from the seed's backtrack-SFT model
RL = {
    "max_steps": 150,  # about 150K sampled tokens, 4 minutes on one core (timing pilot: 1.6 s a step)
    "prompts_per_step": 8,
    "num_generations": 4,
    "mc_answers": 8,
    "max_completion_length": 32,
    "warmup_steps": 5,
}
LEARNING_RATES = [1e-4, 2e-4, 4e-4]
RL_ARMS = {
    "grpo": {"mrt_advantage": "outcome+progress", "alpha": 0.0},  # alpha = 0: GRPO on the same prompts
    "mrt-rl": {"mrt_advantage": "outcome+progress"},  # the paper's objective, alpha tuned
    "star": {"mrt_advantage": "star"},
    "mrt-star": {"mrt_advantage": "mrt-star"},
}
# three tuning runs per RL arm: (learning rate, extra flags)
TUNE_GRID = {
    "grpo": [(lr, {}) for lr in LEARNING_RATES],
    "star": [(lr, {}) for lr in LEARNING_RATES],
    "mrt-star": [(lr, {}) for lr in LEARNING_RATES],
    "mrt-rl": [(LEARNING_RATES[1], {"alpha": a}) for a in (0.2, 0.8, 1.6)],
}

TUNE_SEEDS = [100]  # never a final seed
FINAL_SEEDS = [0, 1, 2, 3, 4]
# problem sets: training 11 (warm-start data and RL prompts), validation 2, held-out test 1
VALIDATION = {"problem_seed": 2, "n_problems": 64, "samples": 4}
TEST = {"problem_seed": 1, "n_problems": 128, "samples": 8}
# an attempt or a revision is at most 10 words here; the cap cuts degenerate repeats (the task's
# default, 256, let a few of them hold whole batches for 256 decoding steps: 0.4 s -> 1 s a trace)
LINEARIZED = {"episodes": 10, "window": 1, "answers": 4, "batch_problems": 32, "episode_tokens": 16}
WINDOW2_ARMS = ["grpo", "mrt-rl"]  # also evaluated with W = 2 (secondary, one seed: compute)
WINDOW2_SEEDS = [0]

# the primary endpoint, declared before the final runs
# the pilot (tuning seed 100's backtrack-SFT model, 64 validation problems x 4, the LINEARIZED
# settings above): parallel maj@10 cost 129.7 generated tokens a trace (linearized: 149.7); rounded
# to the token grid: B = 128. Declared before any RL tuning run.
B_TOKENS = 128
PRIMARY = {
    "name": "linearized majority at B tokens",
    "metric": "lin_at_B",
    "what": "each linearized trace's majority vote after its last attempt that fits in B generated tokens "
    "(0 before the first fits), mean over 128 held-out problems x 8 traces",
    "comparisons": {"mrt-rl": "grpo", "mrt-star": "star"},  # method: its baseline; Holm over these
    "primary": "mrt-rl",
    "level": 0.95,
    "alpha": 0.05,
}
EFFICIENCY_FRACTIONS = (0.5, 0.75, 0.9)  # of the best baseline's final linearized accuracy
TOKEN_GRID_STEP = 8  # the maj-vs-tokens curves are read every this many tokens
