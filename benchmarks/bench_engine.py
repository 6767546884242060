"""The engine's limit and how close the toolkit gets to it: ``mrt analyze`` and ``mrt eval`` on the
vLLM engine, one problem at a time (``--window 1``, what every run did before problems in flight)
and a window of problems at once, each against the engine's own throughput on the same work.

For each job the toolkit runs the command in this process on an engine started once (start not
timed), and records every sampler call: its prompts and the number of tokens each sample
produced. The engine's limit is then measured on that same work handed to it in one
``LLM.generate`` call: every sample of every call as one request of its prompt, exactly as many
tokens long (``min_tokens = max_tokens``, end of sequence ignored), the prefix cache emptied
first. The ratio is the toolkit's tokens per second over the engine's. The one-call limit is
above what any run can reach (a forced answer's prompt needs its trace first), so 1.0 is not
attainable; the goal in issue 34 is 0.7.

The shipped model also runs on the HF backend (its default), one window against the other,
without a limit (a padded HF batch has no per-row token count to replay). Prefix caching
(vLLM's automatic prefix caching, on in every ``mrt`` engine: a problem's forced answers share its
prompt and thinking prefixes) is measured by the analysis at the largest window once more on an
engine started without it, and once on an engine with 32-token KV blocks (``--vllm-block-size``;
vLLM's CPU default is 128, and a prefix is reused in whole blocks only).

    python -m benchmarks.bench_engine --out runs/bench-engine --results benchmarks/results/bench_engine.json

Output: ``OUT/<model>-<backend>-<job>.json`` per job (a rerun skips finished jobs), and the
results JSON with the ratios and the window's speed-ups.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

# model: (task, knobs, analyze settings, eval settings); sized to take minutes here
MODELS = {
    "shipped": (
        "star",
        [],
        {"n_problems": 32, "traces_per_problem": 4, "answers_per_prefix": 8, "extensions": 2},
        {"n_problems": 64, "samples": 8, "extensions": 2},
    ),
    "smollm2": (
        "gym",
        ["dataset=chain_sum", "options=max_terms:4,max_digits:2", "thinking=none", "extract=last-number"],
        {
            "n_problems": 16,
            "traces_per_problem": 2,
            "max_new_tokens": 128,
            "answers_per_prefix": 8,
            "answer_tokens": 32,
            "segmentation": "chunk:32",
            "extensions": 1,
            "extension_tokens": 32,
        },
        {"n_problems": 16, "samples": 8, "max_new_tokens": 128},
    ),
}
BACKENDS = {"shipped": ("vllm", "vllm-nocache", "hf"), "smollm2": ("vllm", "vllm-nocache", "vllm-block32")}
# the vLLM engines: "vllm" at vLLM's own CPU block size (128 tokens, what mrt used when this was
# measured), and two variants run on the analysis at the largest window: prefix caching off, and
# 32-token blocks (a shared prefix is reused in whole blocks; mrt's default without a GPU since)
ENGINES = {
    "vllm": {"block_size": 128},
    "vllm-nocache": {"enable_prefix_caching": False, "block_size": 128},
    "vllm-block32": {"block_size": 32},
}
VARIANTS = ("vllm-nocache", "vllm-block32")


def model_path(name: str) -> str:
    if name == "shipped":
        from mrt.tasks.tiny import shipped_model_path

        return str(shipped_model_path())
    from mrt.models import smollm2

    return str(smollm2())


class Recorder:
    """A sampler that records every call's prompts and each sample's token count."""

    def __init__(self, inner):
        self.inner = inner
        self.calls: list[tuple] = []

    @property
    def tokenizer(self):
        return self.inner.tokenizer

    def __getattr__(self, name):
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def sample(self, prompts, params):
        out = self.inner.sample(prompts, params)
        self.calls.append((prompts, params, [[len(c.token_ids) for c in cs] for cs in out]))
        return out


def engine_limit(llm, calls: list[tuple]) -> dict:
    """Seconds for the engine to produce the same tokens for the same prompts in one call."""
    from vllm import SamplingParams as VParams

    prompts, params = [], []
    for ps, sp, lens in calls:
        for p, ls in zip(ps, lens):
            for n in ls:
                if n:
                    prompts.append({"prompt_token_ids": list(p)})
                    params.append(
                        VParams(
                            n=1, max_tokens=n, min_tokens=n, ignore_eos=True, temperature=sp.temperature, top_p=sp.top_p
                        )
                    )
    llm.reset_prefix_cache()
    t0 = time.time()
    outs = llm.generate(prompts, params, use_tqdm=False)
    seconds = time.time() - t0
    tokens = sum(len(o.token_ids) for r in outs for o in r.outputs)
    return {"requests": len(prompts), "tokens": tokens, "seconds": round(seconds, 2)}


def run_job(sampler, name: str, job: str, window: int, out: Path, backend: str) -> dict:
    """One toolkit run (``analyze`` or ``eval``) at ``window``, timed, with its calls recorded."""
    from mrt.measure.analyze import AnalyzeConfig
    from mrt.measure.evaluate import EvalConfig
    from mrt.pipelines import analyze, evaluate

    task, knobs, a_set, e_set = MODELS[name]
    d = out / "runs" / f"{name}-{backend}-{job}-w{window}"
    shutil.rmtree(d, ignore_errors=True)  # timed from scratch, never resumed
    common = dict(model=model_path(name), task=task, knobs=knobs, out=str(d), window=window, progress_seconds=0)
    common["backend"] = "vllm" if backend.startswith("vllm") else backend
    cfg = AnalyzeConfig(**common, **a_set) if job == "analyze" else EvalConfig(**common, **e_set)
    rec = Recorder(sampler)
    if getattr(sampler, "llm", None) is not None:
        sampler.llm.reset_prefix_cache()
    t0 = time.time()
    summary = (analyze if job == "analyze" else evaluate)(cfg, rec)
    seconds = time.time() - t0
    tokens = sum(n for _, _, lens in rec.calls for ls in lens for n in ls)
    row = {
        "window": window,
        "calls": len(rec.calls),
        "tokens": tokens,
        "seconds": round(seconds, 2),
        "tokens_per_s": round(tokens / seconds, 1),
        "accuracy": summary.get("accuracy", summary.get("pass@1")),
    }
    return row, rec.calls


def worker(name: str, backend: str, out: Path, windows: list[int], threads: int) -> None:
    """Every job of one model on one backend, the engine started once."""
    import torch

    torch.set_num_threads(threads)
    from mrt.samplers import load_sampler

    t0 = time.time()
    if backend in ENGINES:
        from transformers import AutoTokenizer

        from mrt.samplers.vllm import VLLMSampler, engine_settings, start_engine

        path = model_path(name)
        v = dict(ENGINES[backend])
        caching = v.pop("enable_prefix_caching", True)
        llm = start_engine(path, enable_prefix_caching=caching, **engine_settings(**v))
        sampler = VLLMSampler(llm, AutoTokenizer.from_pretrained(path))
        jobs, windows = (("analyze", "eval"), windows) if backend == "vllm" else (("analyze",), windows[-1:])
    else:
        sampler = load_sampler(model_path(name), backend)
        jobs = ("analyze", "eval")
    start = round(time.time() - t0, 2)
    for job in jobs:
        f = out / f"{name}-{backend}-{job}.json"
        if f.exists():
            continue
        res = {"model": name, "backend": backend, "job": job, "start_s": start, "runs": []}
        for w in windows:
            row, calls = run_job(sampler, name, job, w, out, backend)
            if backend.startswith("vllm"):
                lim = engine_limit(sampler.llm, calls)
                row["engine"] = lim
                row["engine_tokens_per_s"] = round(lim["tokens"] / lim["seconds"], 1)
                row["ratio_to_engine"] = round(row["tokens_per_s"] / row["engine_tokens_per_s"], 2)
            res["runs"].append(row)
            print(json.dumps({"model": name, "backend": backend, "job": job, **row}), flush=True)
        base = res["runs"][0]["tokens_per_s"]
        for row in res["runs"]:
            row["speedup_vs_window_1"] = round(row["tokens_per_s"] / base, 2)
        f.write_text(json.dumps(res, indent=1))


def _gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/bench-engine", help="working directory (a rerun skips finished jobs)")
    ap.add_argument("--results", default="", help="write the results JSON here too")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS), help="models to run")
    ap.add_argument("--windows", type=int, nargs="+", default=[1, 16], help="problems in flight; the first is the base")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the HF backend")
    ap.add_argument("--worker", nargs=2, metavar=("MODEL", "BACKEND"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.worker:
        return worker(a.worker[0], a.worker[1], out, a.windows, a.threads)
    res = {
        "machine": "GPU" if _gpu() else f"{platform.machine()}, {os.cpu_count()} CPU cores, no GPU",
        "command": "python -m benchmarks.bench_engine " + " ".join(sys.argv[1:]),
        "jobs": [],
    }
    for name in a.models:
        for backend in BACKENDS[name]:
            # one process per backend: a vLLM engine changes process-wide thread settings
            cmd = [sys.executable, "-m", "benchmarks.bench_engine", "--worker", name, backend, "--out", str(out)]
            cmd += ["--windows", *map(str, a.windows), "--threads", str(a.threads)]
            subprocess.run(cmd, check=True)
            for job in ("analyze",) if backend in VARIANTS else ("analyze", "eval"):
                res["jobs"].append(json.loads((out / f"{name}-{backend}-{job}.json").read_text()))
    for name in a.models:  # each engine variant against the default engine, analysis at the largest window
        by = {(j["backend"], j["job"]): j for j in res["jobs"] if j["model"] == name}
        base = by.get(("vllm", "analyze"))
        for variant in VARIANTS:
            other = by.get((variant, "analyze"))
            if base and other:
                r0, r1 = base["runs"][-1], other["runs"][-1]
                res.setdefault("variants", {}).setdefault(name, {})[variant] = {
                    "window": r0["window"],
                    "tokens_per_s_default": r0["tokens_per_s"],
                    "tokens_per_s_variant": r1["tokens_per_s"],
                    "variant_over_default": round(r1["tokens_per_s"] / r0["tokens_per_s"], 2),
                    "engine_limit_variant_over_default": round(
                        r1["engine_tokens_per_s"] / r0["engine_tokens_per_s"], 2
                    ),
                }
    text = json.dumps(res, indent=1)
    print(text)
    if a.results:
        Path(a.results).write_text(text + "\n")


if __name__ == "__main__":
    main()
