"""One run across several processes: each takes its share of the problems, one merged result.

Under a launcher (``accelerate launch``, ``torchrun``: ``RANK`` and ``WORLD_SIZE``; Slurm's
``srun``: ``SLURM_PROCID`` and ``SLURM_STEP_NUM_TASKS``, which only a job step has) a
per-problem command (``mrt analyze``, ``mrt eval``) runs once per process. Process ``r`` of ``W``
takes the windows of problems whose index ``k`` has ``k % W == r`` (windows fixed by the
problems' index, so the samples are the same whatever the number of processes) and appends its
records to its own shard, ``OUT/shards/R-of-W/<records file>``, under that directory's lock.
When its share is done (or it stops on an error) it says so (:class:`Marks`). Process 0 does its
share, waits until every other process has said so, merges every shard into the one records
file (in the problems' order, written whole), removes the shards and writes the summary and
report as a one-process run would.

No collective communication is used (an in-process vLLM engine keeps its own). The processes say
they are done through the launcher's key-value store where there is one (torchrun's agent store,
also under ``accelerate launch``: new for each launch, so nothing is left from an earlier one),
else through ``done.json`` files that name the launch (srun's job step). A process killed
mid-run leaves its finished problems in its shard; the rerun finds them (any ``R-of-W``
directory, any earlier number of processes) and does only the rest.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Share:
    """This process's place in the launch: ``rank`` of ``world`` processes; ``launch`` names the
    launch; ``store``: the launcher's key-value store (host, port), if it has one."""

    rank: int = 0
    world: int = 1
    launch: str = ""
    store: tuple[str, int] | None = None

    @classmethod
    def from_env(cls, environ=None) -> Share:
        env = os.environ if environ is None else environ
        for r, w in (("RANK", "WORLD_SIZE"), ("SLURM_PROCID", "SLURM_STEP_NUM_TASKS")):
            if not env.get(w):
                continue
            try:
                rank, world = int(env.get(r, "0")), int(env[w])
            except ValueError:
                raise ValueError(f"{r}={env.get(r)!r} and {w}={env[w]!r} must be integers") from None
            if not 0 <= rank < world:
                raise ValueError(f"{r}={rank} is not a process of {w}={world}")
            if w == "WORLD_SIZE":
                addr, port = env.get("MASTER_ADDR", ""), env.get("MASTER_PORT", "")
                store = (addr, int(port)) if env.get("TORCHELASTIC_USE_AGENT_STORE") == "True" and port else None
                return cls(rank, world, f"{addr}:{port}", store)
            return cls(rank, world, f"slurm {env.get('SLURM_JOB_ID', '')}.{env.get('SLURM_STEP_ID', '')}")
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


def claim(out: Path, settings: dict, free: tuple, share: Share) -> None:
    """Process 0 (or a lone process) claims ``out`` as :func:`mrt.config.claim_run_dir` does; any
    other takes its shard's lock (a second launch into the same directory is refused) and waits
    for process 0's ``run.json``, checking the settings against it. Every shard left in ``out``
    must hold this run's settings (its own ``run.json``); each process records them in its own."""
    from mrt.config import check_settings, claim_run_dir
    from mrt.rundir import lock_run_dir, write_json

    out = Path(out)
    if share.main:
        claim_run_dir(out, settings, free)
    else:
        lock_run_dir(share.shard_dir(out))
        wait_for_run_json(out, settings, free)
    for d in sorted((out / "shards").glob("*-of-*")):
        if (d / "run.json").is_file():
            check_settings(d, settings, free)  # a shard of another run: refused, nothing touched
    if share.many:
        share.shard_dir(out).mkdir(parents=True, exist_ok=True)
        write_json(share.shard_dir(out) / "run.json", settings)


def wait_for_run_json(out: Path, settings: dict, free: tuple, seconds: float = 900.0) -> None:
    from mrt.config import check_settings

    run_file = Path(out) / "run.json"
    t0 = time.time()
    while not run_file.is_file():
        if time.time() - t0 > seconds:
            raise TimeoutError(f"process 0 did not write {run_file} in {seconds:g} s: did it start?")
        time.sleep(0.5)
    check_settings(Path(out), settings, free)


class Marks:
    """How the processes of one launch tell process 0 that their share of one records file is
    done: ``mark(doc)`` (``doc``: the problems given up, by kind, and whether the process stopped
    on an error), ``read()`` the marks made so far, by rank. ``round`` tells apart several runs
    of the same records file in one launch."""

    _rounds: dict[str, int] = {}

    def __init__(self, share: Share, records: Path):
        self.share, self.records = share, Path(records)
        key = os.path.realpath(records)
        self.round = Marks._rounds.get(key, 0)
        self.prefix = f"mrt-done/{key}/{self.round}"
        self._store = None
        if share.store is not None:
            from datetime import timedelta

            from torch.distributed import TCPStore

            host, port = share.store
            self._store = TCPStore(host, port, is_master=False, timeout=timedelta(seconds=300))

    def started(self) -> None:
        """Called as the process starts its share: its mark of an earlier launch is gone, and the
        file marks say where it runs (so that process 0 can tell a dead process on its host)."""
        from mrt.rundir import write_json

        d = self.share.shard_dir(self.records.parent)
        d.mkdir(parents=True, exist_ok=True)
        (d / "done.json").unlink(missing_ok=True)
        if self._store is None:
            write_json(
                d / "alive.json", {"pid": os.getpid(), "host": socket.gethostname(), "launch": self.share.launch}
            )

    def mark(self, doc: dict) -> None:
        from mrt.rundir import write_json

        Marks._rounds[os.path.realpath(self.records)] = self.round + 1
        doc = {**doc, "launch": self.share.launch}
        if self._store is not None:
            self._store.set(f"{self.prefix}/{self.share.rank}", json.dumps(doc))
        else:
            write_json(self.share.shard_dir(self.records.parent) / "done.json", doc)

    def read(self) -> dict[int, dict]:
        marks = {}
        for r in range(1, self.share.world):
            if self._store is not None:
                key = f"{self.prefix}/{r}"
                if self._store.check([key]):
                    marks[r] = json.loads(self._store.get(key))
                continue
            d = self.share.shard_dir(self.records.parent, r)
            try:
                doc = json.loads((d / "done.json").read_text())
            except (OSError, ValueError):
                doc = None
            if doc is not None and doc.get("launch") == self.share.launch:
                marks[r] = doc
            elif _died(d, self.share.launch):
                marks[r] = {"failed": [], "by_kind": {}, "aborted": True, "died": True}
        return marks

    def finish(self) -> None:
        Marks._rounds[os.path.realpath(self.records)] = self.round + 1

    def wait(self, every: float = 30.0) -> dict[int, dict]:
        """Process 0: every other process's mark, once all are there."""
        last = time.time()
        while True:
            marks = self.read()
            waiting = [r for r in range(1, self.share.world) if r not in marks]
            if not waiting:
                return marks
            if time.time() - last >= every:
                log.info("waiting for process(es) %s to finish their share", ", ".join(map(str, waiting)))
                last = time.time()
            time.sleep(0.5)


def _died(shard: Path, launch: str) -> bool:
    """A process of this launch and this host that said where it runs and is gone without its mark."""
    try:
        alive = json.loads((shard / "alive.json").read_text())
    except (OSError, ValueError):
        return False
    if alive.get("host") != socket.gethostname() or alive.get("launch") != launch:
        return False
    try:
        os.kill(int(alive["pid"]), 0)
    except ProcessLookupError:
        return True
    except (OSError, ValueError, KeyError):
        return False
    return False


def shard_summary(loop) -> dict:
    """What a process other than 0 returns: its share's counts (process 0 writes the summary)."""
    return {
        "process": loop.share.rank,
        "processes": loop.share.world,
        "problems_done": loop.appended,
        "failed_problems": dict(loop.gave_up.by_kind),
        "merged_by": "process 0",
    }
