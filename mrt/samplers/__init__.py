from dataclasses import dataclass

from mrt.config import arg
from mrt.samplers.base import Completion, Sampler, SamplingParams

__all__ = [
    "Completion",
    "Sampler",
    "SamplingParams",
    "SamplerArgs",
    "load_sampler",
    "sampler_from",
    "BACKENDS",
    "ENGINE_FIELDS",
]
BACKENDS = ("hf", "vllm", "openai")
# settings that change how fast samples come, not what they are: a rerun may change them
ENGINE_FIELDS = (
    "concurrency",
    "request_timeout",
    "max_retries",
    "vllm_memory",
    "vllm_eager",
    "vllm_max_model_len",
    "vllm_block_size",
    "progress_seconds",
    "stall_seconds",
    "hang_timeout",
)


@dataclass
class SamplerArgs:
    """The sampler flags every sampling command shares (``mrt analyze``, ``eval``, ``diagnose``, ``study``)."""

    backend: str = arg("hf", "sampler backend: hf (transformers here), vllm (in-process engine) or openai (a server)")
    base_url: str = arg(
        "",
        "openai backend: the server's address, e.g. http://localhost:8000/v1; several servers comma-separated "
        "(their requests shared, a retry goes to the next one)",
    )
    tokenizer: str = arg("", "openai/vllm backends: a local tokenizer of the served model (default: --model)")
    concurrency: int = arg(8, "openai backend: requests in flight per server")
    request_timeout: float = arg(600.0, "openai backend: seconds per request before a retry")
    max_retries: int = arg(
        4,
        "retries of a failed request (openai backend: HTTP errors and time-outs) and of an empty or garbage "
        "answer (every backend), with exponential back-off; a problem that still fails is skipped and counted, "
        "3 in a row stop the run (work so far kept)",
    )
    vllm_memory: float = arg(
        0.0, "vllm backend: the engine's memory fraction (0: 0.9 of the GPU; without a GPU 0.2 of RAM)"
    )
    vllm_eager: str = arg("auto", "vllm backend: eager mode, no compilation: auto (on without a GPU), on or off")
    vllm_max_model_len: int = arg(0, "vllm backend: context length (0: the model's)")
    vllm_block_size: int = arg(
        0,
        "vllm backend: KV-cache block size in tokens, the unit prefix caching reuses (0: vLLM's on a GPU, "
        "32 without one; docs/scale.md#prefix-caching)",
    )
    progress_seconds: float = arg(30.0, "seconds between progress lines (problem, tokens, rate, time left; 0: none)")
    stall_seconds: float = arg(
        300.0, "warn when a sampler call has waited this many seconds without a token (a stuck engine; 0: never)"
    )
    hang_timeout: float = arg(
        0.0,
        "give up on a problem when a sampler call has waited this many seconds without a token: the problem "
        "is skipped and counted (failed_problems, kind hang) and the run moves on; a rerun does it (0: never)",
    )


def sampler_from(cfg, model: str) -> Sampler:
    """The sampler a config's :class:`SamplerArgs` fields ask for, behind the retries of
    :class:`mrt.samplers.faults.ResilientSampler`."""
    from mrt.samplers.faults import resilient

    return resilient(
        load_sampler(
            model,
            cfg.backend,
            base_url=cfg.base_url,
            tokenizer=cfg.tokenizer,
            concurrency=cfg.concurrency,
            timeout=cfg.request_timeout,
            max_retries=cfg.max_retries,
            vllm={
                "memory": cfg.vllm_memory,
                "eager": cfg.vllm_eager,
                "max_model_len": cfg.vllm_max_model_len,
                "block_size": getattr(cfg, "vllm_block_size", 0),
            },
        ),
        retries=cfg.max_retries,
        what=describe_backend(cfg, model),
    )


def describe_backend(cfg, model: str) -> str:
    """``the hf sampler (MODEL)`` / ``the openai server at URL (MODEL)``: names a stuck backend."""
    if cfg.backend == "openai":
        return f"the openai server at {cfg.base_url} ({model})"
    return f"the {cfg.backend} sampler ({model})"


def load_sampler(
    model: str,
    backend: str = "hf",
    base_url: str = "",
    tokenizer: str = "",
    concurrency: int = 8,
    timeout: float = 600.0,
    max_retries: int = 4,
    vllm: dict | None = None,
) -> Sampler:
    """Build a sampler. ``hf``: transformers on this machine; ``vllm``: a vLLM engine in this
    process (``vllm``: :func:`mrt.samplers.vllm.engine_settings` keywords); ``openai``: a running
    OpenAI-compatible server at ``base_url`` (``model`` is the served model name, ``tokenizer`` a
    local tokenizer of the same model, default ``model``)."""
    if backend == "hf":
        from mrt.samplers.hf import HFSampler

        return HFSampler.from_pretrained(model)
    if backend == "vllm":
        from mrt.samplers.vllm import VLLMSampler

        return VLLMSampler.start(model, tokenizer, **(vllm or {}))
    if backend == "openai":
        from transformers import AutoTokenizer

        from mrt.samplers.hf import check_model_path
        from mrt.samplers.openai import OpenAISampler

        path = tokenizer or model
        check_model_path(path)
        return OpenAISampler(
            base_url,
            AutoTokenizer.from_pretrained(path),
            model=model,
            concurrency=concurrency,
            timeout=timeout,
            max_retries=max_retries,
        )
    raise ValueError(f"unknown sampler backend {backend!r}; known: {', '.join(BACKENDS)}")
