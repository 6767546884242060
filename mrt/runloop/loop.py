"""One per-problem run loop, shared by every command that works through problems and appends a
record per problem (``mrt analyze``, ``eval``, ``diagnose``, ``linearized``, ``warmstart``, and
``eval --stop``'s online controller).

What it owns, so that no command copies it:

* **resume**: the finished problems are read from the records file (torn lines and partly written
  problems dropped, :func:`mrt.runloop.records.load_finished`), and only the others are worked on;
* **the sampler's retries**: the sampler is wrapped once in :func:`mrt.samplers.faults.resilient`,
  and only when there is work;
* **progress**: a tqdm bar and a :class:`mrt.heartbeat.Heartbeat` (progress lines, stall warnings);
* **giving up**: a problem whose sampling still fails after the retries is skipped and counted
  (:class:`mrt.samplers.faults.GiveUps`); so is one whose sampler call waited ``hang_timeout``
  seconds without a token (kind ``hang``), and the run moves on;
* **records exactly once**: a problem's records are appended in one write, after its work ended,
  and a problem already finished is never appended again;
* **per-run fault counts**: the grader failures (:func:`mrt.grading.counting`) and sampler faults
  met by each problem are stored on its first record, not read off process-wide counters.

A command gives the loop its problems and one function, ``work(items) -> {problem id: records}``
(``items``: ``(index, problem)`` pairs, ``batch`` of them at a time), and reads the finished
records back in the problems' order.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import signal
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from mrt import grading
from mrt.heartbeat import Heartbeat
from mrt.rundir import append_lines, kill_point, write_atomic
from mrt.runloop.records import load_records
from mrt.runloop.share import Marks, Share, shard_files
from mrt.samplers.errors import SamplerError
from mrt.samplers.faults import GiveUps, SamplerGaveUp, fault_delta, resilient

log = logging.getLogger(__name__)

Work = Callable[[list[tuple[int, object]]], dict[str, list[dict]]]


class Hung(SamplerGaveUp):
    """A problem given up because a sampler call waited ``hang_timeout`` seconds without a token."""

    def __init__(self, seconds: float):
        super().__init__("hang", f"no token for {seconds:g} s (--hang-timeout): the problem is given up")


class _HangGuard:
    """Turns the heartbeat's hang signal into :class:`Hung` raised in the main thread, only while a
    problem's work runs (``armed``): never while its records are written."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.armed = False
        self.usable = seconds > 0 and threading.current_thread() is threading.main_thread()
        self._old = None
        if seconds > 0 and not self.usable:
            log.warning("--hang-timeout works on the main thread only: hung calls are warned about, not given up")

    def __enter__(self):
        if self.usable:
            self._old = signal.signal(signal.SIGUSR2, self._handler)
        return self

    def __exit__(self, *exc):
        self.armed = False
        if self.usable:
            signal.signal(signal.SIGUSR2, self._old or signal.SIG_DFL)
        return False

    def _handler(self, signum, frame):
        if self.armed:
            self.armed = False
            raise Hung(self.seconds)

    def fire(self) -> None:
        """Called from the heartbeat's thread when the current call looks hung."""
        if self.usable and self.armed:
            signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR2)


class ProblemLoop:
    """The problems of one run: ``ProblemLoop("analyze", out / "traces.jsonl", problems, expected,
    cfg)`` reads what is finished; ``loop.todo`` is what is left; ``loop.run(sampler, work)`` does
    it; ``loop.records()`` returns every finished problem's records in the problems' order.

    ``per_problem``: records per problem (an int, or a dict by problem id); ``settings``: an object
    with the loop's settings (``progress_seconds``, ``stall_seconds``, ``hang_timeout``; a
    :class:`mrt.samplers.SamplerArgs` has them); ``annotate``: store each problem's grader failures
    and sampler faults on its first record; ``batch``: problems worked on together (windows fixed
    by the problems' index); ``share``: this process's place among several
    (:class:`mrt.runloop.share.Share`; the windows it takes, its own shard of records, and for
    process 0 the merge: :meth:`gather`)."""

    def __init__(
        self,
        what: str,
        path: Path,
        problems: list,
        per_problem=1,
        settings=None,
        annotate: bool = False,
        batch: int = 1,
        share: Share | None = None,
    ):
        self.what, self.main_path, self.problems = what, Path(path), list(problems)
        self.per_problem = per_problem
        self.share = share or Share()
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        self.batch = batch
        indexed = list(enumerate(self.problems))
        self.windows = [indexed[c : c + batch] for c in range(0, len(indexed), batch)]
        if self.share.world > max(len(self.windows), 1):
            raise ValueError(
                f"{self.share.world} processes for {len(self.windows)} window(s) of problems: "
                "launch fewer processes, or give each fewer problems at once (--window)"
            )
        out = self.main_path.parent
        self.path = self.share.shard_dir(out) / self.main_path.name if self.share.many else self.main_path
        self.marks = Marks(self.share, self.main_path) if self.share.many else None
        if self.marks is not None:
            self.marks.started()
        self.done, self.kept_aside, self.dropped = load_records(self.path, per_problem)
        self._add_others()
        mine = [w for k, w in enumerate(self.windows) if self.share.takes(k)]
        self.my_windows = [w for w in mine if any(p.id not in self.done for _, p in w)]
        self.todo = [(i, p) for w in mine for i, p in w if p.id not in self.done]
        self.gave_up = GiveUps(what)
        self.annotate = annotate
        self.appended = 0  # problems appended by this process
        self.progress_seconds = float(getattr(settings, "progress_seconds", 30.0))
        self.stall_seconds = float(getattr(settings, "stall_seconds", 300.0))
        self.hang_timeout = float(getattr(settings, "hang_timeout", 0.0) or 0.0)
        if self.hang_timeout < 0:
            raise ValueError(f"hang_timeout must be >= 0 seconds, got {self.hang_timeout}")
        if self.done:
            log.info(
                "resuming: %d of %d problems already finished", len(self.problems) - len(self.todo), len(self.problems)
            )

    def _add_others(self) -> None:
        """Problems finished in the other records files of this run: the merged file and every
        shard (any process count; ``claim`` refused shards of other settings), read only (their
        writers may be appending). Problems that are not this run's (a run with more problems
        before) are kept aside, and written back by a merge."""
        ids = {p.id for p in self.problems}
        for f in [self.main_path] + shard_files(self.main_path.parent, self.main_path.name):
            if f == self.path:
                continue
            found, others, _ = load_records(f, self.per_problem, rewrite=False)
            for pid, recs in found.items():
                if pid in ids:
                    self.done.setdefault(pid, recs)
                else:
                    self.kept_aside.setdefault(pid, recs)
            for pid, recs in others.items():
                self.kept_aside.setdefault(pid, recs)

    def sampler(self, given, make: Callable[[], object], retries: int = 4, what: str = ""):
        """The sampler to work with, behind the retries: ``given`` (a caller's engine) or ``make()``,
        built only when there is work left (a finished run starts no engine)."""
        if not self.todo:
            return given
        return resilient(given if given is not None else make(), retries=retries, what=what)

    def run(self, sampler, work: Work, source: str = "", bar: bool = True) -> None:
        """Do the problems left, a window (``batch`` problems, fixed by their index) at a time,
        appending each problem's records as its window finishes (a rerun redoes a window whose
        problems were not all written, with the same seeds)."""
        from tqdm import tqdm

        batches = self.my_windows
        source = getattr(sampler, "what", "") or source
        guard = _HangGuard(self.hang_timeout)
        beat = Heartbeat(self.what, len(self.todo), source, self.progress_seconds, self.stall_seconds)
        beat.hang, beat.on_hang = self.hang_timeout, guard.fire
        progress = tqdm(total=len(self.todo), desc=self.what, unit="problem", disable=not bar)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._run(sampler, work, batches, guard, beat, progress)
        except BaseException:
            if self.marks is not None and not self.share.main:  # process 0 must not wait for this one
                self._mark(aborted=True)
            raise

    def _mark(self, aborted: bool = False) -> None:
        """This process's share is over: the problems it gave up (all it left undone when it
        ``aborted`` on an error), by kind."""
        failed = list(self.gave_up.problems)
        by_kind = dict(self.gave_up.by_kind)
        if aborted:
            left = [p.id for _, p in self.todo if p.id not in self.done and p.id not in failed]
            failed += left
            by_kind["aborted"] = by_kind.get("aborted", 0) + len(left)
        self.marks.mark({"failed": failed, "by_kind": by_kind, "aborted": aborted})

    def _run(self, sampler, work, batches, guard, beat, progress) -> None:
        with self.path.open("a") as f, beat, guard, progress:
            for items in batches:
                head = items[0][1].id
                beat.start_problem(
                    head if len(items) == 1 else f"the window of {head} and {len(items) - 1} more", len(items)
                )
                faults_before = Counter(getattr(sampler, "faults", {}))
                try:
                    with grading.counting() as graded:
                        guard.armed = True
                        try:
                            out = work(items)
                        finally:
                            guard.armed = False
                except SamplerError as e:  # the window failed as one: one failure in a row
                    left = [p.id for _, p in items if p.id not in self.done]
                    for k, pid in enumerate(left):
                        self.gave_up.failed(pid, e, streak=k == len(left) - 1)  # counted whole, then maybe stop
                    continue
                self.gave_up.ok()
                met = fault_delta(sampler, faults_before)
                first = True  # a batch's counts go on its first new problem: none is lost
                empty = 0
                for _, p in items:
                    recs = out.get(p.id)
                    if p.id in self.done:
                        continue
                    if not recs:  # the work gave nothing for it: counted, and a rerun does it
                        err = SamplerGaveUp("no_records", f"{self.what}: no records for {p.id}")
                        self.gave_up.failed(p.id, err, streak=empty == 0)
                        empty += 1
                        continue
                    if self.annotate:
                        recs[0]["grader_failures"] = dict(graded) if first else {}
                        if met and first:
                            recs[0]["sampler_faults"] = met
                    first = False
                    append_lines(f, recs)
                    self.done[p.id] = recs
                    self.appended += 1
                    kill_point("problem", self.appended)  # tests only (MRT_KILL_AT)
                    beat.end_problem()
                    progress.update(1)

    def gather(self) -> bool:
        """After :meth:`run`: with several processes, the others mark their share done and
        return False; process 0 waits for every mark and counts the problems the others gave up
        (``died``: a process of this host gone without its mark). Then, where there are shards
        (also those a one-process rerun found), every record is merged into the run's records
        file (this run's problems in their order, then any other problems' records it held,
        written whole) and the shards are removed. Returns True where the summary is to be
        written."""
        out = self.main_path.parent
        if self.share.many and not self.share.main:
            self._mark()
            return False
        if self.share.many:
            for rank, mark in sorted(self.marks.wait().items()):
                if mark.get("died"):
                    log.warning(
                        "process %d ended without finishing its share: its problems are redone by a rerun", rank
                    )
                self.gave_up.by_kind.update(mark.get("by_kind", {}))
                self.gave_up.problems += mark.get("failed", [])
            self.marks.finish()
        shards = shard_files(out, self.main_path.name)
        if shards:
            self._add_others()
            if self.share.many:
                self.done.update(load_records(self.path, self.per_problem, rewrite=False)[0])
            ids = {p.id for p in self.problems}
            missing = [p.id for p in self.problems if p.id not in self.done and p.id not in self.gave_up.problems]
            if missing:  # a process that died: counted as given up, redone by a rerun
                self.gave_up.problems += missing
                self.gave_up.by_kind["died"] += len(missing)
            rest = {**self.kept_aside, **{k: v for k, v in self.done.items() if k not in ids}}
            rows = [r for recs in self.records() for r in recs] + [r for v in rest.values() for r in v]
            write_atomic(self.main_path, "".join(json.dumps(r) + "\n" for r in rows))
            for f in shards:
                shutil.rmtree(f.parent, ignore_errors=True)
            with contextlib.suppress(OSError):
                (out / "shards").rmdir()  # when empty
        return True

    def records(self) -> list[list[dict]]:
        """Each finished problem's records, in the problems' order, whatever order they finished in
        (figures are sums over records, and float sums depend on their order)."""
        return [self.done[p.id] for p in self.problems if p.id in self.done]

    def flat(self) -> list[dict]:
        """Every finished record, in the problems' order."""
        return [r for recs in self.records() for r in recs]
