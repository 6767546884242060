"""The budget curriculum (issue 36, point 4; the paper's 8K-then-16K analysis, here B then 2B),
declared before any of its runs; run by the third design's driver after the fourth design's tuning:

    python -m benchmarks.didactic_v3 --settings-file benchmarks/didactic_curriculum_settings.py \\
        --results benchmarks/results/didactic_curriculum.json --jobs 2

Question. At equal sampled tokens, does training at a short thinking budget B and then at 2B
(``--thinking-budget-schedule 16@0,32@0.5``: B for the first half of the tokens, 2B for the
second) do better at 2B than training at 2B throughout? And B throughout, as the third arm. For
GRPO and for MRT in the paper's form.

World and base: the fourth design's (``didactic_v4_settings.py``: the hint at chance, so the answer
before thinking cannot carry a result), B = 16, 2B = 32. Every run may write up to 64 tokens
(``max_completion_length``), so the cap is the same for the three arms and never binds before 2B.
256K sampled tokens per run, every token counted, as in the third and fourth designs.

Configurations: not tuned again. Each method's learning rate (and MRT's alpha, GRPO's group size)
is the one the fourth design's tuning chose at B (read from its committed tuning table,
``benchmarks/results/didactic_v4_tuning.json``; this design refuses to load before that table has
a choice for GRPO and MRT). The same configuration serves a method's three budget arms, so the
arms differ only in the thinking budget over training; the tuning stage here is one validation run
per arm on the tuning seed (no choice is made from it).

Primary endpoint, declared here: regret at 2B (C = 32) on the held-out split, curriculum − 2B
throughout, for GRPO and for MRT (Holm over these 2 comparisons). Secondary: accuracy at 2B and at
B, regret at B, the regret split, every arm against every other.

Seeds: 6, from the fourth design's power calculation (``benchmarks/results/didactic_v4_power.json``:
a minimum detectable difference of about 0.015 in regret at B with 6 seeds; the variance at 2B has
not been measured and may differ).

Nothing here was chosen from a result of this design.
"""

from __future__ import annotations

import json
from pathlib import Path

NAME = "didactic_curriculum"

_V4 = Path(__file__).resolve().parent / "results" / "didactic_v4_tuning.json"
BASE = "mrt/tasks/checkpoints/star-dup-base"
B = 16

SETTING = {
    "name": "curriculum",
    "model": BASE,
    "knobs": ["arms=2-4", "arm_len=3-5", "cue=chance", "cue_at=dup"],
    "thinking_budget": 0,  # each arm sets its own (METHODS)
    "budgets": [B // 2, B, 2 * B, 4 * B],
    "max_completion_length": 4 * B,
    "what": "the fourth design's world; thinking budget B=16 throughout, 2B=32 throughout, or B then 2B",
}

ARMS = {
    "B": {"thinking_budget": B},
    "2B": {"thinking_budget": 2 * B},
    "B-2B": {"thinking_budget_schedule": f"{B}@0,{2 * B}@0.5"},
}
METHODS = {f"{m}-{arm}": {"algo": m, **flags} for m in ("grpo", "mrt") for arm, flags in ARMS.items()}
CUT: dict = {}
TOKEN_BUDGET = 256_000
TUNE_SEEDS = [100]
FINAL_SEEDS = list(range(6))
VALIDATION = {"problem_seed": 1, "n_problems": 64, "traces": 4, "extensions": 0}
TEST = {"problem_seed": 0, "n_problems": 128, "traces": 8, "extensions": 2}
CRITERION = "regret_at_B"
TIE_SE = 2.0

PRIMARY = {
    "name": "regret at 2B",
    "metric": f"regret_C{2 * B}",
    "lower_is_better": True,
    "comparison": "curriculum (B then 2B) - 2B throughout, per method, paired over seeds and held-out problems",
    "methods": ["grpo-B-2B", "mrt-B-2B"],
    "reference": {"grpo-B-2B": "grpo-2B", "mrt-B-2B": "mrt-2B"},
    "correction": "holm",
    "alpha": 0.05,
    "interval": "paired bootstrap over seeds and problems at the Bonferroni level 1 - alpha/k, with Holm-adjusted "
    "p; seed-level t intervals beside it",
}


def _chosen() -> dict:
    """Each method's configuration chosen by the fourth design's tuning (a clear error before it)."""
    if not _V4.is_file():
        raise ValueError(f"{_V4} is missing: run the fourth design's tuning first (didactic_v4_settings.py)")
    table = json.loads(_V4.read_text())["tuning"]
    out = {}
    for m in ("grpo", "mrt"):
        done = table.get(m, {})
        if not done.get("finished", "").startswith("9/") or not done.get("grid"):
            raise ValueError(f"the fourth design's tuning of {m} is not finished ({done.get('finished', '0/9')})")
        best = done.get("chosen") or max(done["grid"], key=lambda r: r["criterion"])
        out[m] = dict(best["values"])
    return out


# the driver reads these two names; one configuration per arm, the fourth design's choice for its method
LEARNING_RATES: list = []
SECOND_AXIS: dict = {}


def tune_grid(method: str) -> list[dict]:
    """One configuration: the fourth design's choice for the arm's method (read when asked)."""
    return [_chosen()[METHODS[method]["algo"]]]
