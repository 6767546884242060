"""A run's records file: which problems are finished, their sampling seeds, the faults they met.

Records are JSON lines appended a problem at a time (``rundir.append_lines``). A problem counts as
finished once all its lines are whole; anything else is dropped and redone (docs/reliability.md).
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from pathlib import Path

from mrt.rundir import read_jsonl_whole, write_atomic

log = logging.getLogger(__name__)


def problem_seed(seed: int, index: int) -> int:
    """The sampling seed of the ``index``-th problem of a run (analyze, eval, diagnose, linearized)."""
    return seed * 1_000_003 + index * 7919 + 1


def load_finished(path: Path, per_problem, rewrite: bool = True) -> tuple[dict[str, list[dict]], int]:
    """Complete problems in a records file: :func:`load_records` without the other problems'."""
    done, _, bad = load_records(path, per_problem, rewrite)
    return done, bad


def load_records(path: Path, per_problem, rewrite: bool = True) -> tuple[dict, dict, int]:
    """Complete problems in a records file (``per_problem``: records per problem, an int or a dict
    by problem id). A line counts once it is whole (it ends with a newline and parses): a line
    torn by a kill or a full disk, a malformed line and the records of a partly written problem
    are dropped (counted in one log line) and the file is rewritten, whole, to hold only what is
    kept, so that the dropped problems are redone (``rewrite=False``: only read, for a file another
    process appends to). The records of problems a dict ``per_problem`` does not name (a run with
    more problems before) are kept as they are, never dropped. Returns (records by problem id,
    those other problems' records by id, lines dropped)."""
    rows, bad_lines = read_jsonl_whole(path)
    groups: dict[str, list[dict]] = defaultdict(list)
    bad = len(bad_lines)
    for n, rec in rows:
        if isinstance(rec.get("problem_id"), str):
            groups[rec["problem_id"]].append(rec)
        else:
            bad += 1
            bad_lines.append(n)

    known = (lambda pid: pid in per_problem) if isinstance(per_problem, dict) else (lambda pid: True)

    def want(pid):
        return per_problem[pid] if isinstance(per_problem, dict) else per_problem

    others = {pid: recs for pid, recs in groups.items() if not known(pid)}
    done = {pid: recs for pid, recs in groups.items() if known(pid) and len(recs) == want(pid)}
    partial = len(groups) - len(done) - len(others)
    if (bad or partial) and rewrite:
        log.warning(
            "%s: dropping %d torn or malformed line(s)%s and %d partly written problem(s); they are redone",
            path,
            bad,
            f" (line {', '.join(map(str, sorted(bad_lines)[:5]))}{', ...' if bad > 5 else ''})" if bad else "",
            partial,
        )
        kept = [r for recs in done.values() for r in recs] + [r for recs in others.values() for r in recs]
        write_atomic(path, "".join(json.dumps(r) + "\n" for r in kept))
    return done, others, bad


def sum_faults(rows: list) -> dict:
    """Sampler faults per kind over records, JSON objects or trace records (each problem's faults
    are on its first record)."""
    total: Counter = Counter()
    for r in rows:
        total.update((r.get("sampler_faults") if isinstance(r, dict) else r.sampler_faults) or {})
    return dict(sorted(total.items()))
