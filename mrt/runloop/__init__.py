"""The shared run loop (docs/architecture.md): a run's records file, resume, retries, progress,
giving up on a problem and appending records exactly once, for every per-problem command."""

from mrt.runloop.loop import Hung, ProblemLoop
from mrt.runloop.records import load_finished, problem_seed, sum_faults

__all__ = ["Hung", "ProblemLoop", "load_finished", "problem_seed", "sum_faults"]
