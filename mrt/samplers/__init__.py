from mrt.samplers.base import Completion, Sampler, SamplingParams

__all__ = ["Completion", "Sampler", "SamplingParams", "load_sampler", "BACKENDS"]
BACKENDS = ("hf", "vllm", "openai")


def load_sampler(model: str, backend: str = "hf", base_url: str = "", tokenizer: str = "",
                 concurrency: int = 8, timeout: float = 600.0, max_retries: int = 4) -> Sampler:
    """Build a sampler. ``hf``: transformers on this machine; ``vllm``: a vLLM engine in this
    process; ``openai``: a running OpenAI-compatible server at ``base_url`` (``model`` is the
    served model name, ``tokenizer`` a local tokenizer of the same model, default ``model``)."""
    if backend == "hf":
        from mrt.samplers.hf import HFSampler

        return HFSampler.from_pretrained(model)
    if backend == "vllm":
        from mrt.samplers.vllm import VLLMSampler

        return VLLMSampler(model, tokenizer)
    if backend == "openai":
        from transformers import AutoTokenizer

        from mrt.samplers.hf import check_model_path
        from mrt.samplers.openai import OpenAISampler

        path = tokenizer or model
        check_model_path(path)
        return OpenAISampler(base_url, AutoTokenizer.from_pretrained(path), model=model,
                             concurrency=concurrency, timeout=timeout, max_retries=max_retries)
    raise ValueError(f"unknown sampler backend {backend!r}; known: {', '.join(BACKENDS)}")
