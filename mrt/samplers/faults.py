"""Faults, injected and real, and what a run does with them.

* :class:`ResilientSampler` wraps every sampler a command uses. It checks each answer (as many
  completions as asked, none empty, token ids inside the vocabulary, finite log-probs) and
  retries a call that failed transiently (:class:`TransientSamplerError`: an injected error or
  time-out, an empty or garbage answer) with exponential back-off, up to ``retries`` times. It
  counts every fault per kind (``faults``), with those of the backend below it (the OpenAI
  backend's own HTTP retries); a call that still fails raises :class:`SamplerGaveUp`.
* :class:`FaultySampler` injects faults at set rates, for tests and the soak benchmark
  (``benchmarks/soak.py``): ``error`` (the call raises), ``timeout`` (the call hangs ``hang``
  seconds, then raises), ``empty`` (one completion comes back empty) and ``garbage`` (one
  completion comes back with token ids outside the vocabulary, or a completion is missing).
  Commands built from flags get it from the environment: ``MRT_FAULTS="error=0.05,timeout=0.02,
  empty=0.05,garbage=0.05,seed=1,hang=0.2,backoff=0.05,log=FILE"`` (``log``: one JSON line per
  injected fault, for the soak's accounting). Not a user setting.
* :class:`GiveUps`: a command's problem loop skips a problem whose sampling still fails after the
  retries (one log line each, counted per kind in ``summary.json``), stops when ``limit``
  problems in a row fail (the backend looks down), and ends with exit code 3 when any was
  skipped: a rerun of the same command does the skipped problems.

Retried calls ask the backend again with the same prompts and seed, so with a reproducible
backend (transformers, vLLM with per-request seeds) a run with faults writes the same records as
one without.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from numbers import Integral

from mrt.heartbeat import ACTIVITY
from mrt.samplers.base import Completion, SamplingParams
from mrt.samplers.errors import SamplerError

log = logging.getLogger(__name__)
FAULT_KINDS = ("error", "timeout", "empty", "garbage")


class TransientSamplerError(SamplerError):
    """A fault worth retrying; ``kind`` names it (error, timeout, empty, garbage, ...)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class SamplerGaveUp(SamplerError):
    """A call that still failed after the retries; ``kind``: its last fault's."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


# ---------------------------------------------------------------------------- checking answers


def check_completions(out, prompts: list[list[int]], params: SamplingParams, vocab_size: int | None) -> None:
    """Raise :class:`TransientSamplerError` (``empty`` or ``garbage``) for an answer no backend
    gives when it works: a wrong number of prompts or completions, a completion without tokens,
    token ids outside ``[0, vocab_size)`` (:func:`vocab_bound`), far more tokens than asked
    (a re-encoded text may differ by a few), a non-finite or positive log-prob, an unknown
    finish reason."""
    if not isinstance(out, list) or len(out) != len(prompts):
        raise TransientSamplerError("garbage", f"asked for {len(prompts)} prompts, got {_n(out)} answers")
    for i, comps in enumerate(out):
        if not isinstance(comps, list) or len(comps) != params.n:
            raise TransientSamplerError("garbage", f"prompt {i}: asked for {params.n} completions, got {_n(comps)}")
        for c in comps:
            if not isinstance(c, Completion) or not isinstance(c.text, str):
                raise TransientSamplerError("garbage", f"prompt {i}: not a completion: {str(c)[:80]}")
            if not c.token_ids:
                raise TransientSamplerError("empty", f"prompt {i}: an empty completion")
            if c.finish_reason not in ("stop", "length"):
                raise TransientSamplerError("garbage", f"prompt {i}: finish reason {c.finish_reason!r}")
            if len(c.token_ids) > 2 * params.max_new_tokens + 16:
                raise TransientSamplerError(
                    "garbage", f"prompt {i}: {len(c.token_ids)} tokens for a cap of {params.max_new_tokens}"
                )
            if vocab_size and any(not isinstance(t, Integral) or not 0 <= t < vocab_size for t in c.token_ids):
                raise TransientSamplerError("garbage", f"prompt {i}: token ids outside the vocabulary")
            if any(not math.isfinite(x) or x > 1e-4 for x in c.logprobs):
                raise TransientSamplerError("garbage", f"prompt {i}: log-probs that are not log-probs")


def _n(x) -> str:
    return str(len(x)) if isinstance(x, list) else type(x).__name__


def vocab_bound(tokenizer) -> int | None:
    """An id at or above this is no token of the model: the tokenizer's size plus a margin for
    embedding rows padded past it (DeepSeek-R1-Distill-Qwen: 151,665 tokens, 152,064 rows)."""
    try:
        return len(tokenizer) + 4096
    except TypeError:
        return None


# ---------------------------------------------------------------------------- retries


class ResilientSampler:
    """Checks answers and retries transient faults with exponential back-off (``backoff``,
    ``2 * backoff``, ...), up to ``retries`` times; counts faults per kind. Other attributes are
    the wrapped sampler's."""

    def __init__(self, inner, retries: int = 4, backoff: float = 0.5, what: str = ""):
        self.inner = inner
        self.retries = max(0, int(retries))
        self.backoff = backoff
        self.what = what or type(inner).__name__
        self._own: Counter = Counter()  # faults met here, per kind
        self.gave_up: Counter = Counter()  # calls that still failed, per kind of the last fault
        self._lock = threading.Lock()
        self._vocab = vocab_bound(inner.tokenizer)

    @property
    def tokenizer(self):
        return self.inner.tokenizer

    @property
    def faults(self) -> Counter:
        """Every fault met so far, per kind (this wrapper's and the backend's own retries)."""
        return self._own + Counter(getattr(self.inner, "faults", {}))

    def __getattr__(self, name):  # tokens_generated, stats, llm, ... of the backend
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def sample(self, prompts: list[list[int]], params: SamplingParams) -> list[list[Completion]]:
        if not prompts:
            return []
        last: TransientSamplerError | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            ACTIVITY.call_started()
            try:
                out = self.inner.sample(prompts, params)
                check_completions(out, prompts, params, self._vocab)
                return out
            except TransientSamplerError as e:
                last = e
                with self._lock:
                    self._own[e.kind] += 1
            finally:
                ACTIVITY.call_ended()
        with self._lock:
            self.gave_up[last.kind] += 1
        raise SamplerGaveUp(last.kind, f"{self.what}: failed after {self.retries + 1} tries ({last.kind}: {last})")


def resilient(sampler, retries: int = 4, backoff: float | None = None, what: str = ""):
    """``sampler`` behind a :class:`ResilientSampler` (once); with ``MRT_FAULTS`` set, faults are
    injected below it (the soak benchmark's setting)."""
    if isinstance(sampler, ResilientSampler):
        return sampler
    spec = parse_faults(os.environ.get("MRT_FAULTS", ""))
    if spec:  # a restarted process meets other faults than the one killed
        sampler = FaultySampler(sampler, {**spec, "seed": f"{spec.get('seed', 0)}-{os.getpid()}"})
    if backoff is None:
        backoff = float(spec.get("backoff", 0.5)) if spec else 0.5
    return ResilientSampler(sampler, retries=retries, backoff=backoff, what=what)


# ---------------------------------------------------------------------------- injection


def parse_faults(spec: str) -> dict:
    """``"error=0.05,empty=0.1,seed=3"`` -> dict; an unknown key or a bad rate raises ValueError."""
    out: dict = {}
    for item in (x.strip() for x in spec.split(",") if x.strip()):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"MRT_FAULTS item {item!r} must look like name=value")
        if key in FAULT_KINDS or key in ("hang", "backoff"):
            out[key] = float(value)
            if key in FAULT_KINDS and not 0 <= out[key] <= 1:
                raise ValueError(f"MRT_FAULTS rate {key}={value} must be in [0, 1]")
        elif key in ("seed", "log"):
            out[key] = value
        else:
            raise ValueError(
                f"unknown MRT_FAULTS key {key!r}; known: {', '.join(FAULT_KINDS)}, seed, hang, backoff, log"
            )
    return out


@dataclass
class FaultRates:
    error: float = 0.0
    timeout: float = 0.0
    empty: float = 0.0
    garbage: float = 0.0


class FaultySampler:
    """Injects faults at set rates into the calls of ``inner`` (see the module's docstring)."""

    def __init__(self, inner, spec: dict | FaultRates):
        if isinstance(spec, FaultRates):
            spec = {k: getattr(spec, k) for k in FAULT_KINDS}
        self.inner = inner
        self.rates = {k: float(spec.get(k, 0.0)) for k in FAULT_KINDS}
        self.hang = float(spec.get("hang", 0.2))
        self.log_path = spec.get("log", "")
        self.rng = random.Random(str(spec.get("seed", 0)))
        self.injected: Counter = Counter()
        self._lock = threading.Lock()

    @property
    def tokenizer(self):
        return self.inner.tokenizer

    def __getattr__(self, name):
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _draw(self) -> str | None:
        with self._lock:
            u = self.rng.random()
        for kind in FAULT_KINDS:
            if u < self.rates[kind]:
                return kind
            u -= self.rates[kind]
        return None

    def _note(self, kind: str) -> None:
        with self._lock:
            self.injected[kind] += 1
            if self.log_path:
                with open(self.log_path, "a") as f:
                    f.write(json.dumps({"kind": kind, "pid": os.getpid(), "time": round(time.time(), 3)}) + "\n")

    def sample(self, prompts: list[list[int]], params: SamplingParams) -> list[list[Completion]]:
        kind = self._draw()
        if kind == "error":
            self._note(kind)
            raise TransientSamplerError("error", "injected: the backend answered with an error")
        if kind == "timeout":
            self._note(kind)
            time.sleep(self.hang)
            raise TransientSamplerError("timeout", f"injected: no answer within {self.hang} s")
        out = self.inner.sample(prompts, params)
        if kind is None or not out or not out[0]:
            return out
        self._note(kind)
        out = [list(cs) for cs in out]
        i = self.rng.randrange(len(out))
        j = self.rng.randrange(len(out[i]))
        if kind == "empty":
            out[i][j] = Completion([], "", [], "stop")
        elif self.rng.random() < 0.5:  # garbage: ids no tokenizer has
            c = out[i][j]
            bad = (vocab_bound(self.inner.tokenizer) or 1 << 30) + 17
            out[i][j] = Completion(
                [bad + k for k in range(len(c.token_ids))], "\ufffd" * 3, c.logprobs, c.finish_reason
            )
        else:  # garbage: a completion missing
            out[i] = out[i][:-1]
        return out


# ---------------------------------------------------------------------------- a command's problems


class GiveUps:
    """The problems of a command whose sampling still failed after the retries."""

    def __init__(self, what: str, limit: int = 3):
        self.what = what
        self.limit = limit
        self.by_kind: Counter = Counter()
        self.problems: list[str] = []
        self.in_a_row = 0
        self.last = ""

    def failed(self, problem_id: str, err: SamplerError, streak: bool = True) -> None:
        """Count and log a given-up problem; raise once ``limit`` failures in a row happened
        (``streak=False``: the other problems of a window that failed as one, one failure)."""
        kind = getattr(err, "kind", "server")
        self.by_kind[kind] += 1
        self.problems.append(problem_id)
        self.in_a_row += 1 if streak else 0
        self.last = str(err)
        log.warning("%s: problem %s skipped, its sampling failed after retries: %s", self.what, problem_id, err)
        if self.in_a_row >= self.limit:
            raise SamplerError(
                f"{self.limit} problems (or windows of problems) in a row failed after retries (the last: {err}); "
                "the backend looks down. "
                "Finished problems are kept: rerun the same command when it is back"
            )

    def ok(self) -> None:
        self.in_a_row = 0

    def finish(self) -> None:
        """After the outputs are written: exit code 3 (one line) if any problem was skipped."""
        if self.problems:
            kinds = ", ".join(f"{k}: {v}" for k, v in sorted(self.by_kind.items()))
            raise SamplerError(
                f"{len(self.problems)} problem(s) skipped after sampling failures ({kinds}; counted in summary.json "
                "as failed_problems); the figures cover the others. Rerun the same command to do them"
            )


def fault_delta(sampler, before: Counter) -> dict:
    """Faults met since ``before`` (a copy of ``sampler.faults``), per kind."""
    now = Counter(getattr(sampler, "faults", {}))
    return dict(now - before)
