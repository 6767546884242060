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
