"""HF vs vLLM: J for every prefix of N traces, and one MRT training step, on the shipped didactic
model and on SmolLM2-135M-Instruct.

Each backend runs in its own process (a vLLM engine changes process-wide thread settings). The
HF worker samples the traces and writes them; the vLLM worker estimates J on those same traces,
so both do exactly the same work: every prefix of every trace (one batch per trace, so that its
prefixes share their cache), ``--answers`` forced answers each. Engine or model start is timed
apart. The training step is ``mrt train --algo mrt-dense --max-steps 1`` without and with
``--vllm-mode colocate`` (the step's wall time, not counting model load or engine start).

    python -m benchmarks.bench_vllm --out runs/bench-vllm --results benchmarks/results/vllm.json

Output: ``OUT/<model>-<backend>.json`` per worker (a rerun skips finished ones) and the results
JSON with the speed-ups.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = {
    # name: (task, knobs, traces, trace tokens, answers per prefix, answer tokens, segmentation chunk)
    "shipped": ("star", [], 32, 0, 8, 0, 0),
    "smollm2": (
        "gym",
        ["dataset=chain_sum", "options=max_terms:4,max_digits:2", "thinking=none", "extract=last-number"],
        8,
        256,
        8,
        32,
        32,
    ),
}


def model_path(name: str) -> str:
    if name == "shipped":
        from mrt.tasks.tiny import shipped_model_path

        return str(shipped_model_path())
    from mrt.models import smollm2

    return str(smollm2())


def worker(name: str, backend: str, out: Path, threads: int):
    """One backend on one model: start, traces (HF writes them), J of every prefix."""
    import torch

    from mrt.measure.metaprover import estimate_prefixes
    from mrt.samplers import SamplingParams
    from mrt.tasks import get_task, parse_knobs

    torch.set_num_threads(threads)
    task_name, knobs, n_traces, trace_tokens, answers, answer_tokens, chunk = MODELS[name]
    task = get_task(task_name, **parse_knobs(knobs))
    trace_tokens = trace_tokens or task.default_max_new_tokens
    answer_tokens = answer_tokens or task.default_answer_tokens
    path = model_path(name)
    t0 = time.time()
    if backend == "hf":
        from mrt.samplers.hf import HFSampler

        s = HFSampler.from_pretrained(path)
    else:
        from mrt.samplers.vllm import VLLMSampler

        s = VLLMSampler.start(path)
    start = time.time() - t0
    tok = s.tokenizer
    problems = task.problems(n_traces, seed=5)
    prompts = [task.prompt_ids(p, tok) for p in problems]
    t0 = time.time()
    comps = s.sample(prompts, SamplingParams(n=1, max_new_tokens=trace_tokens, temperature=1.0, seed=1))
    trace_s = time.time() - t0
    trace_tok = sum(len(c[0].token_ids) for c in comps)
    traces_file = out / f"{name}-traces.json"
    if backend == "hf":
        traces_file.write_text(json.dumps([c[0].token_ids for c in comps]))
    outputs = json.loads(traces_file.read_text())
    before = s.tokens_generated
    t0 = time.time()
    js, n_prefixes = [], 0
    for prob, prompt, ids in zip(problems, prompts, outputs):
        think, answer = task.split_output(ids, tok)
        ends = (
            (list(range(chunk, len(think), chunk)) + [len(think)] if chunk else task.episode_ends(think, tok))
            if think
            else []
        )
        est = estimate_prefixes(
            s, task, prob, prompt, [(think, ends, answer is not None)], n=answers, answer_tokens=answer_tokens, seed=3
        )[0]
        js += [e.j for e in est]
        n_prefixes += len(est)
    j_s = time.time() - t0
    res = {
        "model": name,
        "backend": backend,
        "start_s": round(start, 2),
        "traces": len(outputs),
        "trace_sampling_s": round(trace_s, 2),
        "trace_tokens": trace_tok,
        "trace_tokens_per_s": round(trace_tok / trace_s, 1),
        "prefixes": n_prefixes,
        "answers_per_prefix": answers,
        "j_s": round(j_s, 2),
        "j_answer_tokens": s.tokens_generated - before,
        "j_answer_tokens_per_s": round((s.tokens_generated - before) / j_s, 1),
        "mean_j": sum(js) / len(js),
    }
    (out / f"{name}-{backend}.json").write_text(json.dumps(res, indent=1))


def train_step(name: str, vllm: bool, out: Path, threads: int) -> dict:
    task, knobs = MODELS[name][0], MODELS[name][1]
    d = out / f"train-{name}-{'vllm' if vllm else 'hf'}"
    if not (d / "summary.json").exists():
        cmd = [
            sys.executable,
            "-m",
            "mrt.cli",
            "train",
            "--algo",
            "mrt-dense",
            "--out",
            str(d),
            "--max-steps",
            "1",
            "--prompts-per-step",
            "2",
            "--num-generations",
            "4",
            "--mc-answers",
            "4",
            "--train-problems",
            "16",
            "--report-to",
            "none",
            "--eval-problems",
            "0",
            "--threads",
            str(threads),
            "--task",
            task,
            "--model",
            model_path(name),
        ]
        if knobs:
            cmd += ["--knobs", *knobs]
        if name == "smollm2":
            cmd += ["--max-completion-length", "128", "--answer-tokens", "32"]
        if vllm:
            cmd += ["--vllm-mode", "colocate"]
        t0 = time.time()
        subprocess.run(cmd, check=True, cwd=ROOT)
        (d / "process_seconds.txt").write_text(f"{time.time() - t0:.1f}")
    s = json.loads((d / "summary.json").read_text())
    return {
        "step_s": s["wall_seconds"],
        "sampled_tokens": s["sampled_tokens"],
        "extra_sampled_tokens": s["extra_sampled_tokens"],
        "process_s": float((d / "process_seconds.txt").read_text()),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/bench-vllm", help="working directory (a rerun skips finished parts)")
    ap.add_argument("--results", default="", help="write the results JSON here too")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS), help="models to run")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the HF worker and the trainer")
    ap.add_argument("--no-train", action="store_true", help="skip the training-step comparison")
    ap.add_argument("--worker", nargs=2, metavar=("MODEL", "BACKEND"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.worker:
        return worker(a.worker[0], a.worker[1], out, a.threads)
    res = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, no GPU" if not _gpu() else "GPU",
        "command": "python -m benchmarks.bench_vllm " + " ".join(sys.argv[1:]),
        "models": {},
    }
    for name in a.models:
        rows = {}
        for backend in ("hf", "vllm"):  # hf first: it writes the traces
            f = out / f"{name}-{backend}.json"
            if not f.exists():
                subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--out",
                        str(out),
                        "--threads",
                        str(a.threads),
                        "--worker",
                        name,
                        backend,
                    ],
                    check=True,
                    cwd=ROOT,
                )
            rows[backend] = json.loads(f.read_text())
        r = {
            "hf": rows["hf"],
            "vllm": rows["vllm"],
            "j_speedup": round(rows["hf"]["j_s"] / rows["vllm"]["j_s"], 2),
            "trace_speedup": round(rows["hf"]["trace_sampling_s"] / rows["vllm"]["trace_sampling_s"], 2),
        }
        if not a.no_train:
            r["train_hf"] = train_step(name, False, out, a.threads)
            r["train_vllm"] = train_step(name, True, out, a.threads)
            r["train_step_speedup"] = round(r["train_hf"]["step_s"] / r["train_vllm"]["step_s"], 2)
        res["models"][name] = r
        print(json.dumps({name: {k: v for k, v in r.items() if "speedup" in k}}))
    (out / "results.json").write_text(json.dumps(res, indent=1))
    if a.results:
        Path(a.results).write_text(json.dumps(res, indent=1))


def _gpu() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    main()
