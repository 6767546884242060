from mrt.samplers.base import Completion, Sampler, SamplingParams

__all__ = ["Completion", "Sampler", "SamplingParams", "load_sampler"]


def load_sampler(model: str, backend: str = "hf", **kw) -> Sampler:
    """Build a sampler for a model path or hub id. Backends: ``hf``."""
    if backend == "hf":
        from mrt.samplers.hf import HFSampler

        return HFSampler.from_pretrained(model, **kw)
    raise ValueError(f"unknown sampler backend {backend!r}; known: hf")
