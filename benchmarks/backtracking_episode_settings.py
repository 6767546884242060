"""The per-episode backtracking comparison (issue 35): the paper's progress bonus, credited to each
episode of a backtracking rollout, against GRPO and against the one-scalar form of the first
author's fork; declared before any of its tuning or final runs.

Read by ``benchmarks/backtracking.py``:

    python -m benchmarks.backtracking --settings-file benchmarks/backtracking_episode_settings.py \
        --out runs/bench-backtrack-episode --jobs 2

What differs from the first backtracking design (``backtracking_settings.py``, whose world,
warm start, SFT recipe, RL budget, evaluation and token budget B are kept unchanged):

* **arms**: ``grpo`` (``mrt-backtrack`` with alpha = 0, as before); ``mrt-fork``, the arm the first
  design called MRT-RL: ``alpha * (R - J(z0))`` added to the whole completion, one scalar, which
  telescopes to the plain policy gradient with ``J(z0)`` as its baseline (docs/backtracking.md);
  ``mrt-episode``, the paper's form: ``mrt train --algo mrt-dense`` in the tree world, each
  episode's tokens (the first attempt, the marker and each revision, the tree world's episode
  ends) credited with that episode's progress ``J(z0..k) - J(z0..k-1)``, J from
  ``mc_answers`` forced answers (the meta-prover), on top of the outcome advantage; progress
  varies within a group because every episode is sampled inside the rollout;
* **warm start**: only the ``backtrack`` scheme is trained (the RL arms start from it; the
  schemes' comparison was the first design's);
* **tuning**: three runs per arm on the tuning seed (never a final seed), scored on validation
  problems by the primary endpoint's quantity: GRPO over the three learning rates, each MRT
  form over alpha in the authors' sweep {0.2, 0.8, 1.6} at the middle learning rate (their
  learning rate untuned: a handicap to MRT, not to its baseline), as in the first design;
* **seeds**: 18, from a power calculation on the first design's records: the seed-level SD of the
  paired difference (MRT-RL minus GRPO, lin_at_B) was 0.041; resolving 0.03 at 80% power after
  Holm over two comparisons (two-sided alpha 0.025 for the first: z = 2.241, power z = 0.842)
  needs n = ((2.241 + 0.842) x 0.041 / 0.03)^2 = 17.8, so 18 seeds;
* **no W = 2 evaluation** (compute).

Nothing here was chosen from a method's result in this comparison.
"""

from __future__ import annotations

NAME = "backtracking_episode"

TASK = "tree"
KNOBS = ["arm_len=2", "twig_len=2"]  # format=backtrack is the tree world's default
BASE = ""  # the shipped star base model (knows the world, not the 'back' marker)

WARMSTART = {"n_problems": 1024, "problem_seed": 11, "attempts": 4}
SCHEMES = ["backtrack"]
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
    "mrt-fork": {"mrt_advantage": "outcome+progress"},  # the fork's one scalar per completion, alpha tuned
    "mrt-episode": {"algo": "mrt-dense"},  # the paper's per-episode progress, alpha tuned
}
# three tuning runs per RL arm: (learning rate, extra flags)
TUNE_GRID = {
    "grpo": [(lr, {}) for lr in LEARNING_RATES],
    "mrt-fork": [(LEARNING_RATES[1], {"alpha": a}) for a in (0.2, 0.8, 1.6)],
    "mrt-episode": [(LEARNING_RATES[1], {"alpha": a}) for a in (0.2, 0.8, 1.6)],
}

TUNE_SEEDS = [100]  # never a final seed
FINAL_SEEDS = list(range(18))
# problem sets: training 11 (warm-start data and RL prompts), validation 2, held-out test 1
VALIDATION = {"problem_seed": 2, "n_problems": 64, "samples": 4}
TEST = {"problem_seed": 1, "n_problems": 128, "samples": 8}
# an attempt or a revision is at most 10 words here; the cap cuts degenerate repeats (the task's
# default, 256, let a few of them hold whole batches for 256 decoding steps: 0.4 s -> 1 s a trace)
LINEARIZED = {"episodes": 10, "window": 1, "answers": 4, "batch_problems": 32, "episode_tokens": 16}
WINDOW2_ARMS: list[str] = []  # no W = 2 evaluation here (compute)
WINDOW2_SEEDS: list[int] = []

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
    "comparisons": {"mrt-episode": "grpo", "mrt-fork": "grpo"},  # method: its baseline; Holm over these
    "primary": "mrt-episode",
    "level": 0.95,
    "alpha": 0.05,
}
EFFICIENCY_FRACTIONS = (0.5, 0.75, 0.9)  # of the best baseline's final linearized accuracy
TOKEN_GRID_STEP = 8  # the maj-vs-tokens curves are read every this many tokens
