"""vLLM backend (``pip install 'mrt[vllm]'``, a GPU machine): one ``LLM.generate`` call per
request, prompts as token ids, automatic prefix caching on (a problem's prefixes share their
prompt, and the meta-prover's prompts share long thinking prefixes).

Not run in this project's CI (no GPU there); see docs/real-models.md for what was checked where.
"""
from __future__ import annotations

from mrt.samplers.base import Completion, SamplingParams, check_prompts


class VLLMSampler:
    def __init__(self, model: str, tokenizer: str = "", enable_prefix_caching: bool = True, **engine_kw):
        try:
            from vllm import LLM
        except ImportError:
            raise ValueError("the vllm backend needs vLLM: pip install 'mrt[vllm]'") from None
        self.llm = LLM(model=model, tokenizer=tokenizer or model, enable_prefix_caching=enable_prefix_caching,
                       **engine_kw)
        self.tokenizer = self.llm.get_tokenizer()
        self.tokens_generated = 0

    def sample(self, prompts: list[list[int]], params: SamplingParams) -> list[list[Completion]]:
        from vllm import SamplingParams as VParams

        if not prompts:
            return []
        check_prompts(prompts)
        vp = VParams(n=params.n, max_tokens=params.max_new_tokens, temperature=params.temperature,
                     top_p=params.top_p, stop=list(params.stop) or None,
                     stop_token_ids=list(params.stop_token_ids) or None, seed=params.seed, logprobs=0,
                     skip_special_tokens=False)
        outs = self.llm.generate([{"prompt_token_ids": p} for p in prompts], vp, use_tqdm=False)
        result = []
        for out in outs:
            comps = []
            for o in sorted(out.outputs, key=lambda o: o.index):
                ids = list(o.token_ids)
                lps = [d[t].logprob for t, d in zip(ids, o.logprobs or [])] if o.logprobs else []
                comps.append(Completion(ids, o.text, lps, "length" if o.finish_reason == "length" else "stop"))
                self.tokens_generated += len(ids)
            result.append(comps)
        return result
