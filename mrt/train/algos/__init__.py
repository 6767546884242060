"""Training algorithms, one module each, registered by name (the shape of verl's ``core_algos``).

An algorithm is an :class:`Algorithm`: its name and what it changes in a GRPO step, each part
optional, each a plain function:

* ``prepare(trainer, inputs) -> inputs``: before TRL samples the rollouts (MRT's prefixes);
* ``reward(correct, lengths, cfg) -> rewards``: the scalar reward of each rollout (default 0/1);
* ``advantages(trainer, step) -> advantages``: replaces GRPO's advantages (a tensor of one value
  per row, or one per token); the arithmetic itself is a pure function of ``mrt.core.advantages``;
* ``validate(cfg)``: the checks of its own settings, run with every config.

Every module of this package is imported on first use, so adding an algorithm is one new file
here (and its test); ``TrainConfig.algo`` accepts it, ``mrt train --help`` lists it.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Algorithm:
    name: str
    doc: str  # one line: what it trains
    advantages: Callable | None = None  # (trainer, Step) -> advantages; None: GRPO's, unchanged
    prepare: Callable | None = None  # (trainer, inputs) -> inputs, before the rollouts are sampled
    reward: Callable | None = None  # (correct, completion lengths, cfg) -> rewards; None: 0/1 correctness
    validate: Callable | None = None  # (cfg) -> None; raises ValueError on a bad setting of its own
    uses_j: bool = False  # its J may come from the progress estimator (--j-source estimator|mixed)
    trainer: str = "grpo"  # "grpo": MRTTrainer (TRL's GRPOTrainer); "sft": TRL's SFTTrainer on given traces
    rank: int = 100  # order in listings


@dataclass
class Step:
    """What an advantage function sees of one step, on this process: ``inputs`` (the local rows),
    ``out`` (TRL's batch: ``advantages``, ``completion_mask``, ...), ``local`` (each row's sampled
    completion ids), ``correct`` (each row's 0/1 grade), ``rewards`` (each row's reward: the grade
    less any penalty; None where the caller has only grades)."""

    inputs: list[dict]
    out: dict
    local: list[list[int]]
    correct: list[bool]
    rewards: list[float] | None = None


_REGISTRY: dict[str, Algorithm] = {}
_loaded = False


def register(algo: Algorithm) -> Algorithm:
    if algo.name in _REGISTRY and _REGISTRY[algo.name] is not algo:
        raise ValueError(f"training algorithm {algo.name!r} registered twice")
    _REGISTRY[algo.name] = algo
    return algo


def unregister(name: str) -> None:
    """Remove an algorithm (one registered by a test or a notebook)."""
    _REGISTRY.pop(name, None)


def _load() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for m in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{m.name}")


def algorithms() -> dict[str, Algorithm]:
    """Every registered algorithm by name, in listing order."""
    _load()
    return dict(sorted(_REGISTRY.items(), key=lambda kv: (kv[1].rank, kv[0])))


def names() -> tuple[str, ...]:
    return tuple(algorithms())


def get(name: str) -> Algorithm:
    algos = algorithms()
    if name not in algos:
        raise ValueError(f"unknown algorithm {name!r}; one of {', '.join(algos)}")
    return algos[name]
