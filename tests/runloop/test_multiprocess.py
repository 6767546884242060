"""``mrt train`` in two processes on the CPU (torch.distributed, gloo) under ``accelerate launch``
with the shipped config file: both processes agree on the sampled-token count, stop at the
token budget on the same step, and one of them writes the model, checkpoints and summary."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_two_process_cpu_run(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "run"
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or "accelerate"
    mrt = shutil.which("mrt", path=str(Path(sys.executable).parent)) or "mrt"
    cmd = [
        accelerate,
        "launch",
        "--config_file",
        str(ROOT / "configs/accelerate/cpu-2proc.yaml"),
        "--main_process_port",
        str(port),
        mrt,
        "train",
        "--algo",
        "mrt-dense",
        "--max-steps",
        "6",
        "--token-budget",
        "1500",
        "--prompts-per-step",
        "2",
        "--num-generations",
        "4",
        "--mc-answers",
        "2",
        "--save-every",
        "1",
        "--eval-problems",
        "2",
        "--eval-traces",
        "2",
        "--eval-extensions",
        "0",
        "--threads",
        "1",
        "--out",
        str(out),
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [x for x in r.stdout.splitlines() if x.startswith("mrt-dense:")]
    assert len(lines) == 2 and lines[0].split(",")[:2] == lines[1].split(",")[:2]  # same steps, same tokens
    s = json.loads((out / "summary.json").read_text())
    assert s["processes"] == 2
    assert s["sampled_tokens"] >= 1500 and s["steps"] < 6  # the budget stopped both processes
    assert (out / "model" / "config.json").is_file() and (out / "eval" / "summary.json").is_file()
    state = json.loads((out / "checkpoints" / f"checkpoint-{s['steps']}" / "mrt_state.json").read_text())
    assert state["tokens_sampled"] == s["sampled_tokens"]


def _launch(args: list[str], port: int, env: dict) -> subprocess.CompletedProcess:
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or "accelerate"
    mrt = shutil.which("mrt", path=str(Path(sys.executable).parent)) or "mrt"
    cmd = [accelerate, "launch", "--config_file", str(ROOT / "configs/accelerate/cpu-2proc.yaml")]
    cmd += ["--main_process_port", str(port), mrt, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)


def test_analysis_in_two_processes_equals_one_and_survives_a_kill_of_either(tmp_path):
    """``mrt analyze`` under ``accelerate launch`` with 2 processes: each takes its windows, process
    0 merges; the records and the summary equal a one-process run's. Process 1, then process 0,
    killed after its first problem: each rerun resumes, and the end is the same, each record once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ["analyze", "--n-problems", "6", "--window", "2", "--traces-per-problem", "2", "--answers-per-prefix"]
    args += ["2", "--extensions", "1", "--progress-seconds", "0"]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MRT_KILL_AT")}
    env["OMP_NUM_THREADS"] = "1"
    one = subprocess.run(
        [sys.executable, "-m", "mrt.cli", *args, "--out", str(tmp_path / "one")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert one.returncode == 0, one.stderr[-2000:]
    two = tmp_path / "two"
    r = _launch([*args, "--out", str(two)], port, env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "process 1 of 2: 2 problems done; process 0 merges them" in r.stdout
    expected = (tmp_path / "one" / "traces.jsonl").read_text()
    assert (two / "traces.jsonl").read_text() == expected
    assert not (two / "shards").exists()

    def summary(d):
        s = json.loads((d / "summary.json").read_text())
        s.pop("wall_seconds_this_run")
        return s

    assert summary(two) == summary(tmp_path / "one")
    for rank in ("1", "0"):
        d = tmp_path / f"killed{rank}"
        r = _launch([*args, "--out", str(d)], port, {**env, "MRT_KILL_AT": f"problem:1@{rank}"})
        assert r.returncode != 0 and "MRT_KILL_AT" in r.stderr, r.stderr[-3000:]
        assert not (d / "summary.json").exists()
        r = _launch([*args, "--out", str(d)], port, env)
        assert r.returncode == 0, r.stderr[-3000:]
        assert "resuming:" in r.stderr
        assert (d / "traces.jsonl").read_text() == expected  # nothing lost, nothing twice
