"""Soak: nothing lost and nothing counted twice under many faults and kills.

    nohup python -m benchmarks.soak --out runs/soak --results benchmarks/results/soak.json > runs/soak.log 2>&1 &

Each part runs a command twice on the same seeds: once clean, once with faults injected into
its sampler (``MRT_FAULTS``: errors, time-outs, empty and garbage completions, see
``mrt/samplers/faults.py``) and ``kill -9`` at random moments, rerun until it finishes:

* ``random`` kills: a random time after the process has taken its run directory's lock;
* ``append`` kills: while a group of records is being appended (``MRT_SLOW_WRITES`` splits each
  write in two with a pause; the kill comes when the records file ends in a torn line);
* ``final`` kills: while ``summary.json``, a plot or ``report.html`` is being written (a
  temporary file exists);
* ``checkpoint`` kills (``mrt train``): while a checkpoint is being written (its directory
  exists, its ``mrt_state.json``, written last, does not).

Then it compares: every record (``(problem, trace)`` for ``mrt analyze``, a problem's row for
``mrt eval``) exactly once and equal to the clean run's, the same figures in ``summary.json``
(wall times and fault counts aside), faults injected per kind (all attempts) and counted in
``summary.json`` (faults met on the finished problems). ``mrt train``: the final weights and
the sampled-token count against the clean run's. ``openai``: ``mrt analyze`` through a real
``vllm serve`` (CPU build) that is killed with ``kill -9`` and restarted during the run.

Every part is resumable (state in ``OUT/PART/state.json``; the runs themselves resume). Results:
``OUT/soak.json`` (copied to ``--results``). ``tests/runloop/test_reliability.py`` runs a small version.

``analyze-2proc``: ``mrt analyze`` in two processes under ``accelerate launch``, with the faults
above, and ``kill -9`` of one of its two processes (chosen at random, each kill) at random
moments after the launch has started to write records; the launcher then ends the other, and the
launch is rerun until it finishes. Compared with a clean one-process run at the same window:
every record once and equal, the same summary.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAULTS = "error=0.03,timeout=0.02,empty=0.03,garbage=0.03,hang=0.2,backoff=0.05"
GIVEUP_FAULTS = "error=0.06,timeout=0.03,empty=0.06,garbage=0.06,hang=0.2,backoff=0.05"
SLOW = "0.25"  # seconds of pause inside a write, for the attempts whose kill aims at a write
IGNORED = ("wall_seconds_this_run", "sampler_faults", "failed_problems")


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MRT_FAULTS", "MRT_SLOW_WRITES")}
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("OMP_NUM_THREADS", "1")  # the tiny model gains nothing from more; on a busy machine they spin
    env.update({k: str(v) for k, v in extra.items() if v is not None})
    return env


def mrt_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "mrt.cli", *map(str, args)]


# ---------------------------------------------------------------------------- observing a run


def holder(out: Path) -> int | None:
    """The pid written in a run directory's lock file (the writer that took it last)."""
    try:
        return int(json.loads((out / ".lock").read_text() or "{}").get("pid") or 0) or None
    except (OSError, ValueError):
        return None


def torn(path: Path) -> bool:
    """The records file ends inside a line (a write in progress, or cut)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            if f.tell() == 0:
                return False
            f.seek(-1, 2)
            return f.read(1) != b"\n"
    except OSError:
        return False


def temporaries(out: Path, pid: int | None = None) -> list[str]:
    """Temporary files in a run directory (of process ``pid`` only, if given)."""
    mark = f".{pid}.tmp" if pid else ".tmp"
    return sorted(p.name for d in (out, out / "plots") if d.is_dir() for p in d.glob(".*.tmp*") if mark in p.name)


def open_checkpoints(out: Path) -> list[str]:
    """Checkpoint directories being written (no mrt_state.json yet)."""
    d = out / "checkpoints"
    if not d.is_dir():
        return []
    return sorted(
        c.name for c in d.iterdir() if c.name.startswith("checkpoint-") and not (c / "mrt_state.json").exists()
    )


def fresh_open_checkpoint(out: Path):
    """A test that turns true when a checkpoint is being written by this attempt: one left open
    by the previous (killed) attempt must first have been removed by this one's resume."""
    cleared = [not open_checkpoints(out)]

    def test():
        now = open_checkpoints(out)
        if not cleared[0]:
            cleared[0] = not now
            return False
        return bool(now)

    return test


def _wait(p: subprocess.Popen, until, timeout: float, poll: float = 0.005) -> bool:
    """Poll ``until()`` while ``p`` runs; True when it held before ``p`` ended (or timed out)."""
    t0 = time.time()
    while p.poll() is None and time.time() - t0 < timeout:
        if until():
            return True
        time.sleep(poll)
    return False


def cpu_of_children() -> float:
    """User + system CPU seconds of the child processes waited for so far (less noisy than wall
    time on a shared machine)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def working(out: Path, records: str):
    """A test that turns true once the process has written new work: a record appended (the
    records file grew past the smallest size seen since it started: a resume may first drop a
    torn line), or, for training, one more complete checkpoint."""
    if records:
        path, low = out / records, [float("inf")]

        def grew():
            size = path.stat().st_size if path.exists() else 0
            low[0] = min(low[0], size)
            return size > low[0]

        return grew
    start = len(complete_checkpoints(out))
    return lambda: len(complete_checkpoints(out)) > start


def complete_checkpoints(out: Path) -> list[str]:
    d = out / "checkpoints"
    return [c.name for c in d.iterdir() if (c / "mrt_state.json").exists()] if d.is_dir() else []


def attempt(cmd, out: Path, env: dict, kind: str | None, delay: float, records: str, log: Path) -> dict:
    """One start of ``cmd``; ``kind``: which moment to ``kill -9`` it at (None: let it finish).
    ``random`` and ``append`` kills come ``delay`` seconds after the process has started to write
    work (so that they fall across the run, not in its start-up), then at once (``random``) or at
    the next torn record line (``append``)."""
    t0, c0 = time.time(), cpu_of_children()
    with log.open("a") as f:
        f.write(f"\n=== attempt {time.strftime('%H:%M:%S')} kill={kind} delay={delay:.1f}\n")
        f.flush()
        p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        killed, where = False, ""
        if kind is not None:
            started = working(out, records)
            claimed = _wait(p, lambda: holder(out) == p.pid, 900)
            if claimed and kind in ("random", "append"):
                claimed = _wait(p, started, 3600, poll=0.02)
            if claimed:
                deadline = time.time() + delay
                _wait(p, lambda: time.time() >= deadline, delay + 1, poll=0.05)
                moment = {
                    "random": lambda: True,
                    "append": lambda: torn(out / records),
                    "final": lambda: any(
                        t.startswith((".summary", ".report", ".j_", ".regret", ".majk"))
                        for t in temporaries(out, p.pid)
                    ),
                    "checkpoint": fresh_open_checkpoint(out),
                }[kind]
                if _wait(p, moment, 3600, poll=0.002):
                    os.killpg(p.pid, signal.SIGKILL)
                    killed = True
        rc = p.wait()
    if killed:  # what the kill cut
        cut = []
        if records and torn(out / records):
            cut.append("a torn record line")
        if temporaries(out, p.pid):
            cut.append("temporary " + ", ".join(temporaries(out, p.pid)))
        if open_checkpoints(out):
            cut.append("checkpoint " + ", ".join(open_checkpoints(out)))
        where = "; ".join(cut)
    return {
        "kill": kind if killed else None,
        "rc": rc,
        "wall": round(time.time() - t0, 2),
        "cpu": round(cpu_of_children() - c0, 2),
        "cut": where,
    }


# ---------------------------------------------------------------------------- one part


def kill_plan(n: int, final: int, rng: random.Random, second: str = "append") -> list[str]:
    """``n`` kills: about half at random moments, the others inside writes, the last ``final``
    ones inside the closing writes (summary, plots, report)."""
    body = ["random" if i % 2 == 0 else second for i in range(n - final)]
    rng.shuffle(body)
    return body + ["final"] * final


def load_state(d: Path) -> dict:
    f = d / "state.json"
    return json.loads(f.read_text()) if f.exists() else {}


def save_state(d: Path, state: dict) -> None:
    from mrt.rundir import write_json

    write_json(d / "state.json", state)


def clean_run(name: str, args: list, d: Path, state: dict, log: Path) -> None:
    """The part's clean run (one process, no faults), once: its wall and CPU time in ``state``."""
    if "clean_wall" in state:
        return
    t0, c0 = time.time(), cpu_of_children()
    r = subprocess.run(
        mrt_cmd(*args, "--out", d / "clean"), cwd=ROOT, env=_env(), stdout=log.open("a"), stderr=subprocess.STDOUT
    )
    if r.returncode != 0:
        raise RuntimeError(f"{name}: the clean run failed ({r.returncode}); see {log}")
    state["clean_wall"] = round(time.time() - t0, 2)
    state["clean_cpu"] = round(cpu_of_children() - c0, 2)
    save_state(d, state)


def soak_part(
    name: str,
    args: list[str],
    out: Path,
    records: str,
    key: tuple[str, ...],
    kills: int,
    final: int = 2,
    seed: int = 0,
    faults: str = FAULTS,
    second: str = "append",
    compare=None,
    spread: float = 1.2,
) -> dict:
    """Clean run, then the faulted run with ``kills`` kills, rerun until done; the comparison.
    ``spread``: the kills' delays add up to about ``spread / 2`` of the clean run's work."""
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    state = load_state(d)
    log = d / "log.txt"
    clean, faulty = d / "clean", d / "faulty"
    clean_run(name, args, d, state, log)
    rng = random.Random(f"{seed}-{name}")
    plan = kill_plan(kills, final, rng, second)
    state.setdefault("attempts", [])
    # kills spread over about the first 60% of the work (the problem loop's time in the clean run)
    sc = json.loads((clean / "summary.json").read_text())
    work = sc.get("wall_seconds_this_run") or sc.get("wall_seconds") or state["clean_wall"]
    gap = spread * work / kills
    fault_log = d / "faults.jsonl"
    while not state.get("done"):
        n_killed = sum(a["kill"] is not None for a in state["attempts"])
        kind = plan[n_killed] if n_killed < len(plan) else None
        slow = SLOW if kind in ("append", "final", "checkpoint") else None
        env = _env(MRT_FAULTS=f"{faults},seed={seed}-{len(state['attempts'])},log={fault_log}", MRT_SLOW_WRITES=slow)
        delay = rng.uniform(0, gap) if kind != "final" else 0.0
        a = attempt(mrt_cmd(*args, "--out", faulty), faulty, env, kind, delay, records, log)
        state["attempts"].append(a)
        if a["kill"] is None and a["rc"] == 0:
            state["done"] = True
        elif a["kill"] is None and a["rc"] != 3:  # 3: problems skipped after retries, rerun them
            save_state(d, state)
            raise RuntimeError(f"{name}: attempt ended with exit code {a['rc']}; see {log}")
        save_state(d, state)
        print(f"[{name}] attempt {len(state['attempts'])}: {a}", flush=True)
    res = {
        "command": "mrt " + " ".join(map(str, args)) + " --out DIR",
        "clean_wall_seconds": state["clean_wall"],
        "faulted_wall_seconds": round(sum(a["wall"] for a in state["attempts"]), 2),
        "clean_cpu_seconds": state.get("clean_cpu"),
        "faulted_cpu_seconds": round(sum(a.get("cpu", 0) for a in state["attempts"]), 2),
        "attempts": len(state["attempts"]),
        "kills": dict(Counter(a["kill"] for a in state["attempts"] if a["kill"])),
        "kills_total": sum(1 for a in state["attempts"] if a["kill"]),
        "kills_that_cut_a_write": sum(1 for a in state["attempts"] if a["kill"] and a["cut"]),
        "cuts": [a["cut"] for a in state["attempts"] if a["kill"] and a["cut"]],
        "exit_codes": dict(Counter(str(a["rc"]) for a in state["attempts"] if not a["kill"])),
        "faults_injected": injected(fault_log),
        "problems_skipped_after_retries": skipped(log),
    }
    res["wall_overhead"] = round(res["faulted_wall_seconds"] / max(res["clean_wall_seconds"], 1e-9) - 1, 3)
    if res["clean_cpu_seconds"]:
        res["cpu_overhead"] = round(res["faulted_cpu_seconds"] / res["clean_cpu_seconds"] - 1, 3)
    res.update((compare or compare_records)(clean, faulty, records, key))
    return res


def injected(path: Path) -> dict:
    if not path.exists():
        return {}
    return dict(sorted(Counter(json.loads(x)["kind"] for x in path.read_text().splitlines() if x.strip()).items()))


def skipped(log: Path) -> int:
    return sum("skipped, its sampling failed" in x for x in log.read_text().splitlines()) if log.exists() else 0


def _rows(path: Path, key: tuple[str, ...]) -> tuple[Counter, dict]:
    from mrt.rundir import read_jsonl_whole

    rows, bad = read_jsonl_whole(path)
    if bad:
        raise RuntimeError(f"{path}: {len(bad)} torn or malformed line(s) in a finished run")
    count: Counter = Counter()
    by: dict = {}
    for _, r in rows:
        k = tuple(r[x] for x in key)
        count[k] += 1
        by[k] = {x: v for x, v in r.items() if x != "sampler_faults"}
    return count, by


def compare_records(clean: Path, faulty: Path, records: str, key: tuple[str, ...]) -> dict:
    c_count, c_rows = _rows(clean / records, key)
    f_count, f_rows = _rows(faulty / records, key)
    sc = json.loads((clean / "summary.json").read_text())
    sf = json.loads((faulty / "summary.json").read_text())
    diff = sorted(k for k in set(sc) | set(sf) if k not in IGNORED and sc.get(k) != sf.get(k))
    return {
        "records_expected": len(c_rows),
        "records_written": sum(f_count.values()),
        "records_lost": len(set(c_rows) - set(f_rows)),
        "records_duplicated": sum(n - 1 for n in f_count.values() if n > 1),
        "records_differing": sum(1 for k in c_rows if k in f_rows and c_rows[k] != f_rows[k]),
        "summary_equal": not diff,
        "summary_keys_differing": diff,
        "faults_counted_in_summary": sf.get("sampler_faults", {}),
    }


# ---------------------------------------------------------------------------- training


def compare_train(clean: Path, faulty: Path, records: str, key) -> dict:
    from safetensors.torch import load_file

    sc = json.loads((clean / "summary.json").read_text())
    sf = json.loads((faulty / "summary.json").read_text())
    a, b = load_file(str(clean / "model" / "model.safetensors")), load_file(str(faulty / "model" / "model.safetensors"))
    diff = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    return {
        "steps": [sc["steps"], sf["steps"]],
        "sampled_tokens": [sc["sampled_tokens"], sf["sampled_tokens"]],
        "sampled_tokens_equal": sc["sampled_tokens"] == sf["sampled_tokens"],
        "max_abs_weight_difference": diff,
        "same_tensors": sorted(a) == sorted(b),
        "leftover_open_checkpoints": open_checkpoints(faulty),
    }


# ---------------------------------------------------------------------------- two processes


def rank_processes(launcher: int) -> dict[int, int]:
    """``{rank: pid}`` of the ``mrt`` worker processes descended from the launcher ``launcher``
    (torchrun starts its workers in sessions of their own)."""
    parent, info = {}, {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            env = dict(x.split("=", 1) for x in (d / "environ").read_bytes().decode().split("\0") if "=" in x)
            cmd = (d / "cmdline").read_bytes().decode()
        except (OSError, ValueError, UnicodeDecodeError):
            continue
        pid = int(d.name)
        parent[pid] = int(stat.rsplit(")", 1)[1].split()[1])
        info[pid] = (env.get("RANK"), "mrt" in cmd and "analyze" in cmd)

    def descends(pid: int) -> bool:
        while pid > 1:
            if pid == launcher:
                return True
            pid = parent.get(pid, 1)
        return False

    return {int(r): pid for pid, (r, ours) in info.items() if r is not None and ours and descends(pid)}


def _shard_bytes(out: Path) -> int:
    return sum(x.stat().st_size for x in out.glob("shards/*/traces.jsonl"))


def soak_two_processes(out: Path, problems: int, kills: int, seed: int = 0, window: int = 4) -> dict:
    """``mrt analyze`` in 2 processes, one of them killed ``kills`` times; against one process."""
    d = out / "analyze-2proc"
    d.mkdir(parents=True, exist_ok=True)
    state, log = load_state(d), d / "log.txt"
    args = [*analyze_args(problems), "--window", window]
    clean, faulty = d / "clean", d / "faulty"
    clean_run("analyze-2proc", args, d, state, log)
    rng = random.Random(f"{seed}-analyze-2proc")
    gap = 1.2 * json.loads((clean / "summary.json").read_text())["wall_seconds_this_run"] / 2 / kills
    state.setdefault("attempts", [])
    fault_log = d / "faults.jsonl"
    accelerate = str(Path(sys.executable).parent / "accelerate")
    while not state.get("done"):
        n_killed = sum(a["kill"] is not None for a in state["attempts"])
        port = free_port()
        cmd = [accelerate, "launch", "--config_file", str(ROOT / "configs/accelerate/cpu-2proc.yaml")]
        cmd += [
            "--main_process_port",
            str(port),
            str(Path(sys.executable).parent / "mrt"),  # a script: the launcher runs it with python
            *map(str, args),
            "--out",
            str(faulty),
        ]
        env = _env(MRT_FAULTS=f"{FAULTS},seed={seed}-{len(state['attempts'])},log={fault_log}")
        env = {k: v for k, v in env.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
        t0, killed = time.time(), None
        with log.open("a") as f:
            f.write(f"\n=== attempt {time.strftime('%H:%M:%S')}\n")
            f.flush()
            p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
            if n_killed < kills:
                before = _shard_bytes(faulty)  # this attempt's own records, not an earlier one's
                started = _wait(p, lambda b=before: _shard_bytes(faulty) > b, 900, poll=0.05)
                deadline = time.time() + rng.uniform(0, gap)
                if started and _wait(p, lambda t=deadline: time.time() >= t, gap + 1, poll=0.05):
                    ranks = rank_processes(p.pid)
                    if ranks:
                        rank = rng.choice(sorted(ranks))
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(ranks[rank], signal.SIGKILL)
                            killed = rank
            rc = p.wait()
        a = {"kill": None if killed is None else f"process {killed}", "rc": rc, "wall": round(time.time() - t0, 2)}
        state["attempts"].append(a)
        if killed is None and rc == 0:
            state["done"] = True
        elif killed is None and rc != 3:
            save_state(d, state)
            raise RuntimeError(f"analyze-2proc: attempt ended with exit code {rc}; see {log}")
        save_state(d, state)
        print(f"[analyze-2proc] attempt {len(state['attempts'])}: {a}", flush=True)
    res = {
        "command": "accelerate launch (2 processes) mrt " + " ".join(map(str, args)) + " --out DIR",
        "clean": "one process, the same window",
        "clean_wall_seconds": state["clean_wall"],
        "faulted_wall_seconds": round(sum(a["wall"] for a in state["attempts"]), 2),
        "attempts": len(state["attempts"]),
        "kills": dict(Counter(a["kill"] for a in state["attempts"] if a["kill"])),
        "kills_total": sum(1 for a in state["attempts"] if a["kill"]),
        "faults_injected": injected(fault_log),
        "shards_left": sorted(str(x.relative_to(faulty)) for x in faulty.glob("shards/*")),
    }
    res.update(compare_records(clean, faulty, "traces.jsonl", ("problem_id", "trace")))
    return res


# ---------------------------------------------------------------------------- a killed server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(port: int, log: Path, wait: float = 600) -> subprocess.Popen:
    """``vllm serve`` (the module form) on the shipped model, as tests/samplers/test_vllm.py runs it."""
    import requests

    from mrt.tasks.tiny import shipped_model_path

    cmd = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(shipped_model_path()),
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        "--served-model-name",
        "star",
        "--dtype",
        "float32",
        "--enforce-eager",
        "--gpu-memory-utilization",
        "0.2",
        "--max-model-len",
        "512",
        "--enable-prefix-caching",
    ]
    p = subprocess.Popen(cmd, stdout=log.open("a"), stderr=subprocess.STDOUT, start_new_session=True, env=_env())
    t0 = time.time()
    while time.time() - t0 < wait:
        if p.poll() is not None:
            raise RuntimeError(f"vllm serve exited with {p.returncode}; see {log}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).ok:
                return p
        except requests.RequestException:
            pass
        time.sleep(1)
    os.killpg(p.pid, signal.SIGKILL)
    raise RuntimeError(f"vllm serve did not answer within {wait} s; see {log}")


def soak_openai(out: Path, problems: int, server_kills: int, seed: int = 0) -> dict:
    """``mrt analyze --backend openai`` through a vLLM server that is killed and restarted."""
    import threading

    d = out / "openai"
    d.mkdir(parents=True, exist_ok=True)
    state = load_state(d)
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    from mrt.tasks.tiny import shipped_model_path

    args = [
        "analyze",
        "--backend",
        "openai",
        "--base-url",
        url,
        "--model",
        "star",
        "--tokenizer",
        shipped_model_path(),
        "--n-problems",
        problems,
        "--traces-per-problem",
        2,
        "--answers-per-prefix",
        2,
        "--extensions",
        0,
        "--max-retries",
        7,
        "--request-timeout",
        60,
    ]
    log, slog = d / "log.txt", d / "serve.log"
    server = [serve(port, slog)]
    try:
        if "clean_wall" not in state:
            t0 = time.time()
            r = subprocess.run(
                mrt_cmd(*args, "--out", d / "clean"),
                cwd=ROOT,
                env=_env(),
                stdout=log.open("a"),
                stderr=subprocess.STDOUT,
            )
            if r.returncode != 0:
                raise RuntimeError(f"openai: the clean run failed ({r.returncode}); see {log}")
            state["clean_wall"] = round(time.time() - t0, 2)
            save_state(d, state)
        rng = random.Random(f"{seed}-openai")
        gap = state["clean_wall"] / (server_kills + 1)
        state.setdefault("server_kills", 0)
        state.setdefault("attempts", [])
        stop = threading.Event()

        def killer():
            while not stop.is_set() and state["server_kills"] < server_kills:
                if stop.wait(rng.uniform(0.3 * gap, gap)):
                    return
                os.killpg(server[0].pid, signal.SIGKILL)
                server[0].wait()
                state["server_kills"] += 1
                print(f"[openai] server killed ({state['server_kills']})", flush=True)
                stop.wait(rng.uniform(1, 10))  # down for a while, then back
                server[0] = serve(port, slog)

        th = threading.Thread(target=killer, daemon=True)
        th.start()
        fault_log = d / "faults.jsonl"
        while not state.get("done"):
            env = _env(MRT_FAULTS=f"{FAULTS},seed={seed}-{len(state['attempts'])},log={fault_log}")
            a = attempt(mrt_cmd(*args, "--out", d / "faulty"), d / "faulty", env, None, 0, "traces.jsonl", log)
            state["attempts"].append(a)
            state["done"] = a["rc"] == 0
            save_state(d, state)
            print(f"[openai] attempt {len(state['attempts'])}: {a}", flush=True)
            if not state["done"]:
                time.sleep(15)  # the server may be restarting
        stop.set()
        th.join(timeout=700)
        res = {
            "command": "mrt " + " ".join(map(str, args)) + " --out DIR",
            "clean_wall_seconds": state["clean_wall"],
            "faulted_wall_seconds": round(sum(a["wall"] for a in state["attempts"]), 2),
            "server_kills": state["server_kills"],
            "attempts": len(state["attempts"]),
            "exit_codes": dict(Counter(str(a["rc"]) for a in state["attempts"])),
            "faults_injected": injected(fault_log),
            "problems_skipped_after_retries": skipped(log),
        }
        res["wall_overhead"] = round(res["faulted_wall_seconds"] / max(res["clean_wall_seconds"], 1e-9) - 1, 3)
        res.update(compare_records(d / "clean", d / "faulty", "traces.jsonl", ("problem_id", "trace")))
        return res
    finally:
        if server[0].poll() is None:
            os.killpg(server[0].pid, signal.SIGKILL)


# ---------------------------------------------------------------------------- report


def table(results: dict) -> str:
    """The soak's figures as a markdown table (docs/reliability.md)."""
    parts = [
        p
        for p in ("analyze", "analyze-giveup", "analyze-2proc", "eval", "eval-stop", "train", "openai")
        if p in results
    ]
    rows = [
        ("records (clean run)", lambda r: r.get("records_expected", "–")),
        ("`kill -9` of the command", lambda r: _kills(r)),
        (
            "... that cut a write (torn line, temporary file, open checkpoint)",
            lambda r: r.get("kills_that_cut_a_write", "–"),
        ),
        ("`kill -9` of the server", lambda r: r.get("server_kills", "–")),
        ("faults injected (error / timeout / empty / garbage)", lambda r: _kinds(r.get("faults_injected", {}))),
        ("faults counted in summary.json", lambda r: _kinds(r.get("faults_counted_in_summary", {}), server=True)),
        ("problems skipped after retries, then redone", lambda r: r.get("problems_skipped_after_retries", "–")),
        ("records lost", lambda r: r.get("records_lost", "–")),
        ("records duplicated", lambda r: r.get("records_duplicated", "–")),
        ("records differing from the clean run", lambda r: r.get("records_differing", "–")),
        ("summary.json figures equal", lambda r: _yes(r.get("summary_equal"))),
        ("final weights: max abs difference", lambda r: _num(r.get("max_abs_weight_difference"))),
        ("sampled tokens equal", lambda r: _yes(r.get("sampled_tokens_equal"))),
        ("attempts (starts)", lambda r: r.get("attempts", "–")),
        ("wall time: clean / faulted (overhead)", lambda r: _over(r, "wall")),
        ("CPU time: clean / faulted (overhead)", lambda r: _over(r, "cpu")),
    ]
    out = ["| | " + " | ".join(f"`{p}`" for p in parts) + " |", "|---" * (len(parts) + 1) + "|"]
    for name, f in rows:
        out.append(f"| {name} | " + " | ".join(str(f(results[p])) for p in parts) + " |")
    return "\n".join(out)


def _kills(r: dict) -> str:
    if "kills_total" not in r:
        return "–"
    k = r["kills"]
    return f"{r['kills_total']} (" + ", ".join(f"{v} {n}" for n, v in sorted(k.items())) + ")"


def _kinds(d: dict, server: bool = False) -> str:
    if not d:
        return "0"
    own = [d.get(k, 0) for k in ("error", "timeout", "empty", "garbage")]
    rest = {k: v for k, v in d.items() if k not in ("error", "timeout", "empty", "garbage")}
    return " / ".join(map(str, own)) + (" + " + ", ".join(f"{v} {k}" for k, v in sorted(rest.items())) if rest else "")


def _yes(x) -> str:
    return "–" if x is None else ("yes" if x else "**no**")


def _num(x) -> str:
    return "–" if x is None else f"{x:.3g}"


def _over(r: dict, what: str) -> str:
    c, f = r.get(f"clean_{what}_seconds"), r.get(f"faulted_{what}_seconds")
    if not c or f is None:
        return "–"
    return f"{c:.0f} s / {f:.0f} s ({f / c - 1:+.0%})"


# ---------------------------------------------------------------------------- main


def analyze_args(problems: int) -> list:
    return [
        "analyze",
        "--n-problems",
        problems,
        "--traces-per-problem",
        2,
        "--answers-per-prefix",
        2,
        "--extensions",
        1,
    ]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/soak", help="working directory (resumable)")
    p.add_argument("--results", default="", help="also copy soak.json here")
    p.add_argument(
        "--parts",
        nargs="+",
        default=["analyze", "analyze-giveup", "analyze-2proc", "eval", "eval-stop", "train", "openai"],
    )
    p.add_argument("--problems", type=int, default=1000, help="problems of mrt analyze")
    p.add_argument("--eval-problems", type=int, default=1000, help="problems of mrt eval (each part)")
    p.add_argument("--giveup-problems", type=int, default=200, help="problems of the one-retry analyze part")
    p.add_argument("--stop-problems", type=int, default=1000, help="problems of mrt eval --stop")
    p.add_argument("--openai-problems", type=int, default=200, help="problems of the served-model part")
    p.add_argument("--kills", type=int, default=24, help="kill -9 per analyze/eval part")
    p.add_argument("--two-process-problems", type=int, default=200, help="problems of the two-process part")
    p.add_argument("--two-process-kills", type=int, default=8, help="kill -9 of one process of the two-process part")
    p.add_argument("--train-kills", type=int, default=10, help="kill -9 of mrt train")
    p.add_argument("--server-kills", type=int, default=5, help="kill -9 of the vLLM server")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--table", action="store_true", help="print OUT/soak.json as a markdown table and stop")
    a = p.parse_args()
    out = Path(a.out)
    if a.table:
        print(table(json.loads((out / "soak.json").read_text())))
        return
    out.mkdir(parents=True, exist_ok=True)
    res_file = out / "soak.json"
    results = json.loads(res_file.read_text()) if res_file.exists() else {}
    results["faults_setting"] = FAULTS
    results["slow_writes_seconds"] = float(SLOW)
    for part in a.parts:
        if part in results and part != "faults_setting":
            continue
        print(f"=== {part}", flush=True)
        t0 = time.time()
        if part == "analyze":
            r = soak_part(
                part, analyze_args(a.problems), out, "traces.jsonl", ("problem_id", "trace"), a.kills, seed=a.seed
            )
        elif part == "analyze-giveup":  # one retry only and more faults: problems skipped, counted, redone
            args = [*analyze_args(a.giveup_problems), "--max-retries", 1]
            r = soak_part(part, args, out, "traces.jsonl", ("problem_id", "trace"), 6, 1, a.seed, GIVEUP_FAULTS)
        elif part == "eval":
            args = ["eval", "--n-problems", a.eval_problems, "--samples", 2]
            r = soak_part(part, args, out, "samples.jsonl", ("problem_id",), a.kills, final=1, seed=a.seed)
        elif part == "eval-stop":
            args = [
                "eval",
                "--n-problems",
                a.stop_problems,
                "--samples",
                2,
                "--stop",
                "stall:eps=0,m=2",
                "--j-source",
                "vote",
            ]
            r = soak_part(part, args, out, "samples.jsonl", ("problem_id",), a.kills, final=1, seed=a.seed)
        elif part == "train":
            args = [
                "train",
                "--algo",
                "mrt",
                "--max-steps",
                20,
                "--save-every",
                2,
                "--prompts-per-step",
                2,
                "--num-generations",
                4,
                "--train-problems",
                32,
                "--eval-problems",
                0,
                "--report-to",
                "none",
                "--threads",
                1,
            ]
            r = soak_part(
                part, args, out, "", (), a.train_kills, final=0, seed=a.seed, second="checkpoint", compare=compare_train
            )
        elif part == "openai":
            r = soak_openai(out, a.openai_problems, a.server_kills, a.seed)
        elif part == "analyze-2proc":
            r = soak_two_processes(out, a.two_process_problems, a.two_process_kills, a.seed)
        else:
            raise SystemExit(f"unknown part {part!r}")
        r["part_wall_seconds"] = round(time.time() - t0, 1)
        results[part] = r
        from mrt.rundir import write_json

        write_json(res_file, results)
        print(json.dumps(r, indent=1), flush=True)
    if a.results:
        from mrt.rundir import write_json

        write_json(a.results, results)


if __name__ == "__main__":
    main()
