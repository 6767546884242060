"""Task registry: ``get_task("star", arms="2-5", arm_len=3)``."""

from __future__ import annotations

import dataclasses

from mrt.tasks.base import Problem, Task
from mrt.tasks.star import StarTask
from mrt.tasks.text import PRESETS, DataTask, GymTask, MathTask
from mrt.tasks.tree import TreeTask

TASKS: dict[str, type[Task]] = {
    "star": StarTask,
    "tree": TreeTask,
    "data": DataTask,
    "gym": GymTask,
    "math": MathTask,
    **{name: DataTask for name in PRESETS},
}


def task_knobs(name: str) -> list[str]:
    cls = _task_class(name)
    return [f.name for f in dataclasses.fields(cls) if f.init and f.name != "name" and not f.name.startswith("_")]


def _task_class(name: str) -> type[Task]:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]


def get_task(name: str, **knobs) -> Task:
    """Build a task by name; an unknown task or knob raises ValueError naming it."""
    cls = _task_class(name)
    allowed = task_knobs(name)
    for key in knobs:
        if key not in allowed:
            raise ValueError(f"unknown knob {key!r} for task {name!r}; known knobs: {', '.join(allowed)}")
    if name in PRESETS:
        knobs = {"preset": name, **knobs}
    return cls(**knobs)


def parse_knobs(items: list[str] | None) -> dict:
    """``["arms=2-5", "arm_len=3"]`` -> dict; a malformed item raises ValueError."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"task knob {item!r} must look like name=value")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


__all__ = [
    "Problem",
    "Task",
    "StarTask",
    "TreeTask",
    "DataTask",
    "GymTask",
    "PRESETS",
    "TASKS",
    "get_task",
    "parse_knobs",
    "task_knobs",
]
