"""One small sampling interface; backends (Hugging Face now; vLLM and OpenAI-compatible later)
implement :meth:`Sampler.sample`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass
class SamplingParams:
    n: int = 1  # continuations per prompt
    max_new_tokens: int = 64
    temperature: float = 1.0  # 0 means greedy
    top_p: float = 1.0
    stop: tuple[str, ...] = ()  # stop strings (cut from the text, like vLLM)
    stop_token_ids: tuple[int, ...] = ()  # stop tokens besides EOS (kept in token_ids)
    seed: int = 0

    def __post_init__(self):
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError(f"need temperature >= 0 and 0 < top_p <= 1, got {self.temperature}, {self.top_p}")


@dataclass
class Completion:
    token_ids: list[int]
    text: str
    logprobs: list[float] = field(default_factory=list)  # model log-prob of each sampled token
    finish_reason: str = "stop"  # "stop" (EOS, stop token or string) or "length"

    @property
    def mean_logprob(self) -> float:
        return sum(self.logprobs) / len(self.logprobs) if self.logprobs else 0.0


class Sampler(Protocol):
    tokenizer: object

    def sample(self, prompts: list[list[int]], params: SamplingParams) -> list[list[Completion]]:
        """``params.n`` completions for each token-id prompt, in order."""
        ...


def check_prompts(prompts: list[list[int]]) -> None:
    """Every backend refuses an empty prompt the same way."""
    for i, p in enumerate(prompts):
        if not p:
            raise ValueError(f"prompt {i} is empty")
