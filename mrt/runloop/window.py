"""How many problems a run hands the engine at once (``--window``).

A window's problems go through each stage of their work together (all their traces in one
sampler call, then all their forced answers in one, and so on), so the engine batches across
problems instead of serving one problem's few prompts at a time. The windows are fixed by the
problems' index (:meth:`mrt.runloop.ProblemLoop.run`'s batches), and a window's seeds are its
first problem's, so a rerun, or another process, draws the same samples for the same window.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)

# measured in benchmarks/results/bench_engine.json (docs/scale.md#problems-in-flight)
DEFAULT_WINDOW = {"hf": 1, "vllm": 16, "openai": 16}

WINDOW_HELP = (
    "problems in flight: each stage of their work (traces, forced answers, budget forcing) is one "
    "sampler call for all of them (0: auto, 1 with hf, 16 with vllm and openai; "
    "docs/scale.md#problems-in-flight)"
)


def resolve_window(window: int, backend: str) -> int:
    """``window``, or the backend's default when it is 0; a negative value is an error."""
    if window < 0:
        raise ValueError(f"window must be >= 1 problem (0: the backend's default), got {window}")
    return window or DEFAULT_WINDOW.get(backend, 1)


def note_window(out, window: int) -> None:
    """Warn when a run resumes at another window than it was started with: the problems left are
    drawn in other windows (other seeds) than a fresh run would draw them; nothing is lost."""
    run = Path(out) / "run.json"
    try:
        before = json.loads(run.read_text()).get("window")
    except (OSError, ValueError):
        return
    if before and before != window:
        log.warning(
            "%s was started with --window %s, resumed with %s: the problems left are drawn in windows of %s "
            "(other seeds than a fresh run at either window would use)",
            out,
            before,
            window,
            window,
        )
