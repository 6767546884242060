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
* **no W = 2 evaluation** (compute);
* **sensitivity** (issue 35; declared with the design, before any run, never in the primary
  endpoint's Holm family): the comparisons with the format-error rounds' votes left out of the
  majority (every record), and RL with a format penalty of 0.5 (``mrt train --format-penalty``: a
  right answer whose stream breaks the format still scores above a wrong well-formed one), ``grpo``
  and ``mrt-episode`` each rerun at its own tuned configuration on the first 6 final seeds;
  reported beside the same comparison without the penalty on the same seeds.

Nothing here was chosen from a method's result in this comparison.
"""

from __future__ import annotations

NAME = "backtracking_episode"

# kept from the first design, unchanged: the world, the warm start and SFT recipe, the RL budget
# and learning rates, the tuning seed, the problem splits, the linearized evaluation, B
from benchmarks.backtracking_settings import (  # noqa: E402, F401
    B_TOKENS,
    BASE,
    EFFICIENCY_FRACTIONS,
    KNOBS,
    LEARNING_RATES,
    LINEARIZED,
    RL,
    SFT,
    TASK,
    TEST,
    TOKEN_GRID_STEP,
    TUNE_SEEDS,
    VALIDATION,
    WARMSTART,
)
from benchmarks.backtracking_settings import PRIMARY as FIRST_PRIMARY  # noqa: E402

SCHEMES = ["backtrack"]  # the RL arms start from it; the schemes' comparison was the first design's
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
FINAL_SEEDS = list(range(18))  # the power calculation above; never the tuning seed
WINDOW2_ARMS: list[str] = []  # no W = 2 evaluation here (compute)
WINDOW2_SEEDS: list[int] = []

SENSITIVITY = {
    "arms": {"grpo-fp": "grpo", "mrt-episode-fp": "mrt-episode"},  # arm: the RL arm it reruns
    "flags": {"format_penalty": 0.5},
    "seeds": FINAL_SEEDS[:6],
    "comparisons": {"mrt-episode-fp": "grpo-fp"},
}

# A diagnostic, added after results (the primary pair's first 4 seeds: mrt-episode below GRPO,
# -0.07 [-0.12, -0.03]); not declared before the runs, outside the Holm family, never a verdict.
# The two arms differ in two ways: the per-episode bonus, and what a rollout is. GRPO (mrt-backtrack)
# trains the marker and revision after the policy's own first attempt, held in the prompt;
# mrt-episode (mrt-dense) trains the whole stream, first attempt included. ``stream-grpo`` is
# mrt-episode at its tuned configuration with alpha = 0: the same rollouts, the same forced answers,
# the outcome advantage only. mrt-episode - stream-grpo is the bonus alone; stream-grpo - grpo is
# the rollout's shape alone (at each arm's own tuned learning rate).
DIAGNOSTIC = {
    "arms": {"stream-grpo": "mrt-episode"},  # arm: the RL arm it reruns
    "flags": {"alpha": 0.0},
    "seeds": FINAL_SEEDS[:6],
    "comparisons": {"mrt-episode": "stream-grpo", "stream-grpo": "grpo"},
}

# the primary endpoint, declared before any run of this design: the first design's quantity
# (linearized majority at B = 128 tokens), the paper's per-episode form against GRPO first
PRIMARY = {
    **FIRST_PRIMARY,
    "comparisons": {"mrt-episode": "grpo", "mrt-fork": "grpo"},  # method: its baseline; Holm over these
    "primary": "mrt-episode",
}
