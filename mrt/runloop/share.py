"""One run across several processes: each takes its share of the problems, one merged result.

Under a launcher (``accelerate launch``, ``torchrun``: ``RANK`` and ``WORLD_SIZE``; Slurm's
``srun``: ``SLURM_PROCID`` and ``SLURM_NTASKS``) a per-problem command (``mrt analyze``,
``mrt eval``) runs once per process. Process ``r`` of ``W`` takes the windows of problems whose
index ``i`` has ``i % W == r`` (windows fixed by the problems' index, so the samples are the same
whatever the number of processes) and appends its records to its own shard,
``OUT/shards/R-of-W/<records file>``, under that directory's lock. When it is done it writes
``OUT/shards/R-of-W/done.json`` (the problems it gave up). Process 0 does its share, waits for
every other share to be finished or given up, merges every shard into the one records file (in
the problems' order, written whole) and writes the summary and report as a one-process run
would. No collective communication is used (an in-process vLLM engine keeps its own), only
files, so a process killed mid-run leaves its finished problems in its shard; the rerun finds
them (any ``R-of-W`` directory, any earlier process count) and does only the rest.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Share:
    """This process's place in the launch: ``rank`` of ``world`` processes."""

    rank: int = 0
    world: int = 1

    @classmethod
    def from_env(cls, environ=None) -> Share:
        env = os.environ if environ is None else environ
        for r, w in (("RANK", "WORLD_SIZE"), ("SLURM_PROCID", "SLURM_NTASKS")):
            if env.get(w):
                try:
                    rank, world = int(env.get(r, "0")), int(env[w])
                except ValueError:
                    raise ValueError(f"{r}={env.get(r)!r} and {w}={env[w]!r} must be integers") from None
                if not 0 <= rank < world:
                    raise ValueError(f"{r}={rank} is not a process of {w}={world}")
                return cls(rank, world)
        return cls()

    @property
    def many(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def shard_dir(self, out: Path, rank: int | None = None) -> Path:
        return Path(out) / "shards" / f"{self.rank if rank is None else rank}-of-{self.world}"

    def takes(self, window_index: int) -> bool:
        return window_index % self.world == self.rank


def shard_files(out: Path, name: str) -> list[Path]:
    """Every shard's records file ``name`` in ``out`` (of any process count)."""
    return sorted(p / name for p in (Path(out) / "shards").glob("*-of-*") if (p / name).is_file())


def mark_done(share: Share, out: Path, failed: list[str], by_kind: dict) -> None:
    from mrt.rundir import write_json

    write_json(share.shard_dir(out) / "done.json", {"failed": sorted(failed), "by_kind": by_kind, "pid": os.getpid()})


def clear_done(share: Share, out: Path) -> None:
    (share.shard_dir(out) / "done.json").unlink(missing_ok=True)


def claim(out: Path, settings: dict, free: tuple, share: Share) -> None:
    """Process 0 (or a lone process) claims ``out`` as :func:`mrt.config.claim_run_dir` does; any
    other takes its shard's lock (a second launch into the same directory is refused) and waits
    for process 0's ``run.json``, checking the settings against it."""
    from mrt.config import claim_run_dir
    from mrt.rundir import lock_run_dir

    if share.main:
        claim_run_dir(out, settings, free)
        return
    lock_run_dir(share.shard_dir(out))
    wait_for_run_json(out, settings, free)


def wait_for_run_json(out: Path, settings: dict, free: tuple, seconds: float = 900.0) -> None:
    """A process other than the first waits for the first to claim ``out`` (its ``run.json``), then
    checks the settings as the first did."""
    from mrt.config import check_settings

    run_file = Path(out) / "run.json"
    t0 = time.time()
    while not run_file.is_file():
        if time.time() - t0 > seconds:
            raise TimeoutError(f"process 0 did not write {run_file} in {seconds:g} s: did it start?")
        time.sleep(0.5)
    check_settings(Path(out), settings, free)


def wait_for_shares(share: Share, out: Path, finished, shares: dict[int, list[str]], every: float = 30.0):
    """Process 0 waits until every other process's share (``shares``: problem ids by rank) is
    finished (``finished()``: the ids found in the records files now) or given up (its
    ``done.json``). Returns the ``done.json`` of each process that gave problems up, by rank."""
    failed: dict[int, dict] = {}
    last = time.time()
    while True:
        done_ids = finished()
        waiting = []
        for rank, ids in shares.items():
            left = [i for i in ids if i not in done_ids]
            marker = share.shard_dir(out, rank) / "done.json"
            if not left:
                continue
            if marker.is_file():
                try:
                    mark = json.loads(marker.read_text())
                except ValueError:
                    mark = {}
                if set(left) <= set(mark.get("failed", [])):
                    failed[rank] = mark
                    continue
            waiting.append(f"{rank} ({len(left)} problems left)")
        if not waiting:
            return failed
        if time.time() - last >= every:
            log.info("waiting for process(es) %s", ", ".join(waiting))
            last = time.time()
        time.sleep(1.0)


def shard_summary(loop) -> dict:
    """What a process other than 0 returns: its share's counts (process 0 writes the summary)."""
    return {
        "process": loop.share.rank,
        "processes": loop.share.world,
        "problems_done": loop.appended,
        "failed_problems": dict(loop.gave_up.by_kind),
        "merged_by": "process 0",
    }
