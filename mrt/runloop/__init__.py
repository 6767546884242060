"""The shared run loop (docs/architecture.md): a run's records file, resume, retries, progress,
giving up on a problem and appending records exactly once, for every per-problem command."""

from mrt.runloop.loop import Hung, ProblemLoop
from mrt.runloop.records import load_finished, problem_seed, sum_faults
from mrt.runloop.share import Share, claim, shard_summary
from mrt.runloop.window import resolve_window

__all__ = [
    "Hung",
    "ProblemLoop",
    "Share",
    "claim",
    "load_finished",
    "problem_seed",
    "resolve_window",
    "shard_summary",
    "sum_faults",
]
