"""The experiment runner every benchmark design shares: ``mrt`` command lines in one style, runs as
jobs (their commands in turn, output to a log, several jobs at a time, each finished run's record
written as it finishes: the committed records, not a working folder, are what resumes a design on a
fresh checkout and what its report reads), and a design's stages in their order.

A design module keeps only what is its own: its settings (methods, grids, tuning and final seeds,
token budget, evaluation, the primary endpoint declared before any final run), how a run's
directory becomes a record, and its tables. Run a design as a module from the repository root,
``python -m benchmarks.didactic_v3 ...``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def mrt_cmd(verb: str, *args: str, **flags) -> list[str]:
    """``python -m mrt.cli VERB ARGS --flag value ...`` (``flag_name`` becomes ``--flag-name``; a
    list gives its items after the flag; ``None`` leaves the flag out; ``True`` and ``False`` give
    ``--flag`` and ``--no-flag``, as mrt's boolean options take them). One style for every design's
    training, analysis and evaluation commands."""
    cmd = [sys.executable, "-m", "mrt.cli", verb, *map(str, args)]
    for key, value in flags.items():
        name = key.replace("_", "-")
        if value is None:
            continue
        if isinstance(value, bool):
            cmd.append(f"--{name}" if value else f"--no-{name}")
            continue
        cmd.append(f"--{name}")
        cmd += [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]
    return cmd


@dataclass
class Job:
    """One run: its commands, run in turn, their output appended to ``log``."""

    name: str
    cmds: list[list[str]]
    log: Path
    threads: int = 0


def run_job(job: Job | tuple) -> tuple[str, bool, float]:
    """Run a job's commands in turn (stopping at the first that fails): (name, ok, seconds)."""
    if not isinstance(job, Job):
        job = Job(*job)
    t0 = time.time()
    env = dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false")
    if job.threads:
        env["OMP_NUM_THREADS"] = str(job.threads)
    Path(job.log).parent.mkdir(parents=True, exist_ok=True)
    with open(job.log, "a") as f:
        for cmd in job.cmds:
            r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
            if r.returncode:
                return job.name, False, time.time() - t0
    return job.name, True, time.time() - t0


def run_jobs(jobs: list, n_jobs: int, out, after: Callable[[str], object] | None = None) -> None:
    """Run jobs, ``n_jobs`` at a time, calling ``after(name)`` on each finished one as soon as it
    finishes (not in submission order: a record is written even if an earlier run is still going
    when the session stops); exits naming the failed runs, which a rerun resumes. ``None`` jobs
    (runs already done) are skipped."""
    jobs = [j for j in jobs if j]
    print(f"{len(jobs)} runs to do, {n_jobs} at a time", flush=True)
    failed = []
    with ThreadPoolExecutor(max_workers=max(1, n_jobs)) as pool:
        for fut in as_completed([pool.submit(run_job, j) for j in jobs]):
            name, ok, secs = fut.result()
            print(f"  {name}: {'done' if ok else 'FAILED'} in {secs:.0f} s", flush=True)
            if not ok:
                failed.append(name)
            elif after:
                after(name)
    if failed:
        sys.exit(f"failed runs: {', '.join(failed)} (see their logs under {out}; rerun to resume)")


# --------------------------------------------------------------------------- a design's stages

STAGES = ("plan", "tune", "final", "report", "all")


def run_design(design, argv=None):
    """Run a benchmark design through its stages; the runner owns their order, the design its
    content. ``design`` (a module) has:

    * ``parse(argv) -> ns``: its flags, with ``--stage`` (one of :data:`STAGES`, or a name of
      the design's ``STAGE_NAMES``, e.g. ``{"pilot": "tune"}``) and ``--out``;
    * ``stage_plan(ns)``: what is done and what is left, from the records alone (no run);
    * ``stage_tune(ns) -> table``: the tuning runs that have no record, then the tuning table;
    * ``stage_choose(ns, table, stage) -> chosen``: each method's configuration for the final
      runs (``table``: the tuning stage's, or None: read from the committed records);
    * ``stage_final(ns, chosen)``: the final runs that have no record, each leaving its record;
    * ``stage_report(ns, chosen) -> doc``: results, tables and plots from the records alone.

    ``all`` is tune, final, report. With ``REPORT_AFTER_FINAL`` set, ``final`` ends with the report.
    """
    ns = design.parse(argv)
    stage = getattr(design, "STAGE_NAMES", {}).get(ns.stage, ns.stage)
    if stage not in STAGES:
        raise SystemExit(f"unknown stage {ns.stage!r}; one of {', '.join(STAGES)}")
    Path(ns.out).mkdir(parents=True, exist_ok=True)
    if stage == "plan":
        return design.stage_plan(ns)
    table = design.stage_tune(ns) if stage in ("tune", "all") else None
    if stage == "tune":
        return table
    chosen = design.stage_choose(ns, table, stage)
    if stage in ("final", "all"):
        design.stage_final(ns, chosen)
    if stage in ("report", "all") or (stage == "final" and getattr(design, "REPORT_AFTER_FINAL", False)):
        return design.stage_report(ns, chosen)
    return None
