"""Progress a user can trust, and a hang told apart from slow work.

The samplers report work as it arrives into one process-wide :data:`ACTIVITY`: the transformers
backend every decoding step, vLLM every engine step, an OpenAI-compatible server every response;
the meta-prover the prefixes it has estimated. A command (``mrt analyze``, ``mrt eval``,
``mrt diagnose``) prints, before any work, how much its settings imply (:func:`work_line`), and
runs a :class:`Heartbeat` over its problems: every ``every`` seconds one line with the problem
it is on, the tokens and prefixes so far, the rate and an estimate of the time left; and a
warning, naming the backend, when a sampler call has been waiting ``stall`` seconds without a
single token (a stuck engine or server, not slow work).
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger("mrt.heartbeat")


class Activity:
    """Counters the samplers tick (thread-safe)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.tokens = 0  # tokens generated, as they arrive
        self.prefixes = 0  # prefixes whose J was estimated
        self.in_flight = 0  # sampler calls running now
        self.last = time.monotonic()  # when the last token (or the start of a call) came

    def tokens_arrived(self, n: int = 1) -> None:
        with self._lock:
            self.tokens += n
            self.last = time.monotonic()

    def prefixes_done(self, n: int) -> None:
        with self._lock:
            self.prefixes += n

    def call_started(self) -> None:
        with self._lock:
            if self.in_flight == 0:
                self.last = time.monotonic()
            self.in_flight += 1

    def call_ended(self) -> None:
        with self._lock:
            self.in_flight = max(0, self.in_flight - 1)
            self.last = time.monotonic()

    def snapshot(self) -> tuple[int, int, int, float]:
        with self._lock:
            return self.tokens, self.prefixes, self.in_flight, self.last


ACTIVITY = Activity()


def _dur(s: float) -> str:
    if s < 10:
        return f"{s:.1f} s"
    s = int(round(s))
    if s < 90:
        return f"{s} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


class Heartbeat:
    """``with Heartbeat("analyze", total, source=...) as hb:`` then ``hb.start_problem(pid)`` and
    ``hb.end_problem()`` around each problem. ``every``: seconds between progress lines (0: none);
    ``stall``: seconds without a token, while a sampler call runs, before a warning (0: none)."""

    def __init__(self, what: str, total: int, source: str, every: float = 30.0, stall: float = 300.0):
        self.what, self.total, self.source = what, total, source
        self.every, self.stall = every, stall
        self.done = 0
        self.problem = ""
        self._stop = threading.Event()
        self._thread = None
        self._t0 = self._tok0 = 0.0
        self._p_t0 = self._p_tok0 = self._p_pre0 = 0
        self._warned_at = None
        self._first_told = False
        self._p_n = 1  # problems worked together in the current window
        self.hang = 0.0  # seconds without a token before on_hang is called (0: never); set by the run loop
        self.on_hang = None
        self._hang_told = False

    def __enter__(self):
        self._t0 = time.monotonic()
        self._tok0 = ACTIVITY.snapshot()[0]
        if self.total and (self.every > 0 or self.stall > 0 or self.hang > 0):
            self._thread = threading.Thread(target=self._run, name="mrt-heartbeat", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        return False

    def start_problem(self, pid: str, n: int = 1) -> None:
        """A problem (or a window of ``n`` problems worked together, named ``pid``) starts."""
        tok, pre, _, _ = ACTIVITY.snapshot()
        self.problem, self._p_t0, self._p_tok0, self._p_pre0 = pid, time.monotonic(), tok, pre
        self._p_n = max(1, n)
        self._hang_told = False

    def end_problem(self) -> None:
        self.done += 1
        n = self._p_n
        if not self._first_told and self.total > n:
            self._first_told = True
            tok = ACTIVITY.snapshot()[0] - self._p_tok0
            took = time.monotonic() - self._p_t0
            log.info(
                "%s: the first %s took %s (%s tokens, %.0f tokens/s); at that rate the other %d take about %s",
                self.what,
                "problem" if n == 1 else f"window of {n} problems",
                _dur(took),
                f"{tok:,}",
                tok / max(took, 1e-9),
                self.total - n,
                _dur(took / n * (self.total - n)),
            )

    def line(self) -> str:
        """The progress line: problems done, the current one, tokens, rate and time left."""
        now = time.monotonic()
        tok, pre, _, _ = ACTIVITY.snapshot()
        elapsed = now - self._t0
        rate = (tok - self._tok0) / max(elapsed, 1e-9)
        parts = [f"{self.what}: {self.done}/{self.total} problems done"]
        if self.problem:
            parts.append(
                f"on {self.problem} for {_dur(now - self._p_t0)}: {tok - self._p_tok0:,} tokens, "
                f"{pre - self._p_pre0:,} prefixes estimated"
            )
        parts.append(f"{rate:.0f} tokens/s")
        if self.done:
            parts.append(f"about {_dur(elapsed / self.done * (self.total - self.done))} left")
        return "; ".join(parts)

    def _run(self) -> None:
        tick = min(x for x in (self.every, self.stall / 4, self.hang / 4, 5.0) if x > 0)
        next_line = time.monotonic() + self.every if self.every > 0 else float("inf")
        while not self._stop.wait(tick):
            now = time.monotonic()
            if now >= next_line:
                log.info("%s", self.line())
                next_line = now + self.every
            _, _, in_flight, last = ACTIVITY.snapshot()
            quiet = now - last
            if self.hang > 0 and in_flight and quiet >= self.hang and not self._hang_told and self.on_hang:
                self._hang_told = True
                log.warning(
                    "%s: no token from %s for %s: giving up on problem %s (--hang-timeout %g s)",
                    self.what,
                    self.source,
                    _dur(quiet),
                    self.problem,
                    self.hang,
                )
                self.on_hang()
            if self.stall > 0 and in_flight and quiet >= self.stall:
                if self._warned_at is None or now - self._warned_at >= self.stall:
                    self._warned_at = now
                    log.warning(
                        "%s: no token from %s for %s (a call is waiting): the engine or server looks stuck, "
                        "this is not slow work; check it (the run resumes where it stopped if you end it)",
                        self.what,
                        self.source,
                        _dur(quiet),
                    )
            elif quiet < self.stall:
                self._warned_at = None


def work_line(what: str, parts: list[str], totals: list[tuple[str, int]]) -> str:
    """``what: part, part, ...: up to N x, M y`` (the work a command's settings imply)."""
    s = f"{what}: " + ", ".join(parts)
    shown = [f"{n:,} {name}" for name, n in totals if n]
    return s + (": at most " + ", ".join(shown) if shown else "")
