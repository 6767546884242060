"""Speed of the HF sampler (rerun: ``.venv/bin/python -m benchmarks.bench_sampler``).

1. J for every prefix of N traces: ``mrt.metaprover.estimate_prefixes`` (shared prefix encoded
   once, suffixes once, n samples decoded together) vs re-encoding each prefix from scratch with
   ``model.generate(num_return_sequences=n)`` per prefix.
2. Sampling throughput on the same work (P prompts x n samples): ``HFSampler.sample`` vs a plain
   ``model.generate`` loop (one call per prompt) and vs one left-padded batched ``generate``.
Writes ``benchmarks/results/sampler.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from mrt.core.episodes import find_subsequence
from mrt.measure.metaprover import estimate_prefixes
from mrt.samplers import SamplingParams, load_sampler
from mrt.tasks import get_task
from mrt.tasks.tiny import shipped_model_path


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def bench_prefix_j(sampler, task, problems, n, answer_tokens):
    tok, model = sampler.tokenizer, sampler.model
    end_ids = tok.encode(task.think_end_text, add_special_tokens=False)
    work = []  # (problem, prompt_ids, [(thinking, ends)])
    for i, p in enumerate(problems):
        prompt = tok.encode(p.prompt, add_special_tokens=False)
        traces = sampler.sample([prompt], SamplingParams(n=4, max_new_tokens=256, seed=i))[0]
        th = []
        for c in traces:
            cut = find_subsequence(c.token_ids, end_ids)
            ids = c.token_ids[:cut] if cut >= 0 else c.token_ids
            th.append((ids, task.episode_ends(ids, tok)))
        work.append((p, prompt, th))
    n_prefixes = sum(len(e) + 1 for _, _, th in work for _, e in th)

    def ours():
        for k, (p, prompt, th) in enumerate(work):
            estimate_prefixes(sampler, task, p, prompt, th, n=n, answer_tokens=answer_tokens, seed=k)

    term = tok.encode(task.termination_text, add_special_tokens=False)

    def scratch():
        torch.manual_seed(0)
        for _p, prompt, th in work:
            for ids, ends in th:
                for cut in [0] + ends:
                    x = torch.tensor([prompt + ids[:cut] + term])
                    with torch.inference_mode():
                        model.generate(
                            x,
                            attention_mask=torch.ones_like(x),
                            do_sample=True,
                            num_return_sequences=n,
                            max_new_tokens=answer_tokens,
                            eos_token_id=tok.eos_token_id,
                            pad_token_id=tok.pad_token_id,
                        )

    t_ours, _ = timed(ours)
    t_scratch, _ = timed(scratch)
    return {
        "problems": len(work),
        "traces": sum(len(th) for _, _, th in work),
        "prefixes": n_prefixes,
        "answers_per_prefix": n,
        "seconds_shared_kv": round(t_ours, 2),
        "seconds_reencode": round(t_scratch, 2),
        "speedup": round(t_scratch / t_ours, 2),
    }


def bench_throughput(sampler, task, problems, n, max_new):
    tok, model = sampler.tokenizer, sampler.model
    prompts = [tok.encode(p.prompt, add_special_tokens=False) for p in problems]
    params = SamplingParams(n=n, max_new_tokens=max_new, temperature=1.0, seed=0)
    before = sampler.tokens_generated
    t_ours, _ = timed(lambda: sampler.sample(prompts, params))
    ours_tokens = sampler.tokens_generated - before

    def count(seqs, plen):
        new = seqs[:, plen:]
        total = 0
        for row in new.tolist():
            total += next((i + 1 for i, t in enumerate(row) if t == tok.eos_token_id), len(row))
        return total

    def loop():
        total = 0
        for p in prompts:
            x = torch.tensor([p])
            with torch.inference_mode():
                out = model.generate(
                    x,
                    attention_mask=torch.ones_like(x),
                    do_sample=True,
                    num_return_sequences=n,
                    max_new_tokens=max_new,
                    eos_token_id=tok.eos_token_id,
                    pad_token_id=tok.pad_token_id,
                )
            total += count(out, len(p))
        return total

    def batched():
        width = max(map(len, prompts))
        x = torch.tensor([[tok.pad_token_id] * (width - len(p)) + p for p in prompts])
        m = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        with torch.inference_mode():
            out = model.generate(
                x,
                attention_mask=m,
                do_sample=True,
                num_return_sequences=n,
                max_new_tokens=max_new,
                eos_token_id=tok.eos_token_id,
                pad_token_id=tok.pad_token_id,
            )
        return count(out, width)

    torch.manual_seed(0)
    t_loop, loop_tokens = timed(loop)
    torch.manual_seed(0)
    t_batch, batch_tokens = timed(batched)
    r = {
        "prompts": len(prompts),
        "n": n,
        "max_new_tokens": max_new,
        "hf_sampler_tokens_per_s": round(ours_tokens / t_ours, 1),
        "generate_loop_tokens_per_s": round(loop_tokens / t_loop, 1),
        "generate_batched_tokens_per_s": round(batch_tokens / t_batch, 1),
    }
    r["ratio_vs_loop"] = round(r["hf_sampler_tokens_per_s"] / r["generate_loop_tokens_per_s"], 2)
    r["ratio_vs_batched"] = round(r["hf_sampler_tokens_per_s"] / r["generate_batched_tokens_per_s"], 2)
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(shipped_model_path()))
    ap.add_argument("--problems", type=int, default=16)
    ap.add_argument("--n", type=int, default=8, help="answers per prefix / samples per prompt")
    ap.add_argument("--out", default="benchmarks/results/sampler.json")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    sampler = load_sampler(args.model)
    task = get_task("star")
    problems = task.problems(args.problems, seed=123)
    sampler.sample([[1, 2]], SamplingParams(max_new_tokens=2))  # warm-up
    res = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "device": sampler.device,
        "model": args.model,
        "prefix_j": bench_prefix_j(sampler, task, problems, args.n, task.default_answer_tokens),
        "throughput": bench_throughput(sampler, task, problems, args.n, 128),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
