"""Configs are dataclasses whose fields carry a help line; this turns them into CLI flags."""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from dataclasses import MISSING, field


def arg(default, help: str, **kw):  # noqa: A002 - mirrors argparse
    """A dataclass field with a help line: ``steps: int = arg(100, "optimizer steps")``."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: default, metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


def add_dataclass_args(
    parser: argparse.ArgumentParser, cls, skip: tuple[str, ...] = (), only_given: bool = False
) -> None:
    """One flag per field. ``only_given``: flags left out stay out of the namespace (so that a
    config file's values are overridden only by the flags a user actually typed)."""
    hints = typing.get_type_hints(cls)
    own = set(cls.__dict__.get("__annotations__", {}))  # a config's own flags first, shared ones after
    for f in sorted(dataclasses.fields(cls), key=lambda f: f.name not in own):
        if f.name in skip or not f.init:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = (
            f.default
            if f.default is not MISSING
            else (f.default_factory() if f.default_factory is not MISSING else None)
        )
        kind = hints[f.name]
        shown = default not in (None, "", [])
        help_ = f.metadata.get("help", "") + (f" (default: {default})" if shown else "")
        if only_given:
            default = argparse.SUPPRESS
        if kind is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=default, help=help_)
        elif typing.get_origin(kind) is list:
            inner = typing.get_args(kind)[0]
            parser.add_argument(flag, dest=f.name, type=inner, nargs="+", default=default, help=help_)
        else:
            base = kind
            if typing.get_origin(kind) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
                base = next(a for a in typing.get_args(kind) if a is not type(None))
            parser.add_argument(flag, dest=f.name, type=base, default=default, help=help_)


def from_namespace(cls, ns: argparse.Namespace, **extra):
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    kw = {k: v for k, v in vars(ns).items() if k in names}
    kw.update(extra)
    return cls(**kw)


def claim_run_dir(out, settings: dict, free: tuple[str, ...] = ()) -> None:
    """Create ``out``, take its writer's lock (:func:`mrt.rundir.lock_run_dir`: a second process
    is refused, naming the holder) and record ``settings`` in ``out/run.json``; refuse a directory
    that holds a run with other settings (keys in ``free`` may differ), so that a rerun resumes
    safely. The lock lasts until the enclosing :func:`mrt.rundir.writer_scope` ends (or the process)."""
    from pathlib import Path

    from mrt.rundir import lock_run_dir, release_run_dir, write_json

    out = lock_run_dir(Path(out))
    try:
        check_settings(out, settings, free)
    except BaseException:
        release_run_dir(out)
        raise
    write_json(out / "run.json", settings)


def check_settings(out, settings: dict, free: tuple[str, ...]) -> None:
    """Refuse ``out`` if its ``run.json`` holds other settings (keys in ``free`` may differ)."""
    run_file = out / "run.json"
    if run_file.exists():
        try:
            old = json.loads(run_file.read_text())
        except ValueError:  # torn by a kill under an older mrt (run.json is now written whole)
            import logging

            logging.getLogger(__name__).warning("%s is damaged; writing it again", run_file)
            return
        diff = sorted(k for k in set(old) | set(settings) if k not in free and old.get(k) != settings.get(k))
        if diff:
            raise ValueError(
                f"{out} holds a run with other settings ({', '.join(diff)}); use another --out or delete it"
            )


def read_jsonl(path, required: tuple[str, ...] = ()):
    """``(line number, object)`` of each non-blank line of a JSONL file; a line that is not a JSON
    object, or lacks a ``required`` field, raises ValueError naming the file, line and field."""
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"file {str(path)!r} does not exist")
    for n, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{n}: not valid JSON ({e})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{n}: expected a JSON object")
        missing = [k for k in required if k not in row]
        if missing:
            raise ValueError(f"{path}:{n}: missing field(s) {', '.join(missing)}")
        yield n, row
