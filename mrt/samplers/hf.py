"""Hugging Face transformers backend: batched sampling that encodes shared work once.

For one call with prompts p_1..p_B and n samples each:
1. the longest common prefix of all prompts is encoded once (batch 1);
2. each prompt's remaining suffix is encoded once (left-padded, batch B) on top of that cache;
3. the cache is repeated n times and the B*n rows are decoded together; finished rows are
   dropped from the batch.
Re-encoding every prefix for each of its n samples (what a plain ``generate`` loop over prefixes
does) is the cost this avoids; see ``benchmarks/bench_sampler.py``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from mrt.heartbeat import ACTIVITY
from mrt.samplers.base import Completion, SamplingParams, check_prompts

log = logging.getLogger(__name__)


def check_model_path(path: str) -> None:
    """A local-looking path that does not exist fails here, not deep inside a hub download."""
    if not Path(path).exists() and (path.startswith((".", "/", "~")) or path.count("/") != 1):
        raise FileNotFoundError(f"model path {path!r} does not exist")


def _lcp(prompts: list[list[int]]) -> int:
    first, n = prompts[0], min(map(len, prompts))
    for i in range(n):
        tok = first[i]
        if any(p[i] != tok for p in prompts):
            return i
    return n


class HFSampler:
    def __init__(self, model, tokenizer, max_batch_rows: int = 512, device: str | None = None):
        import torch

        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_batch_rows = max_batch_rows
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device)
        self.eos_id = tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id
        self.tokens_generated = 0  # running count, for token accounting

    @classmethod
    def from_pretrained(cls, path: str, dtype: str = "auto", **kw) -> HFSampler:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        check_model_path(path)
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        return cls(model, tok, **kw)

    # ------------------------------------------------------------------ public API
    def sample(self, prompts: list[list[int]], params: SamplingParams) -> list[list[Completion]]:
        import torch

        if not prompts:
            return []
        check_prompts(prompts)
        gen = torch.Generator(device="cpu").manual_seed(params.seed)
        per_chunk = max(1, self.max_batch_rows // params.n)
        out: list[list[Completion]] = []
        for i in range(0, len(prompts), per_chunk):
            out += self._sample_chunk(prompts[i : i + per_chunk], params, gen)
        return out

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _pick(logits, params: SamplingParams, gen):
        import torch

        logp = torch.log_softmax(logits.float(), dim=-1)
        if params.temperature == 0:
            tok = logp.argmax(-1)
        else:
            probs = torch.softmax(logits.float() / params.temperature, dim=-1)
            if params.top_p < 1.0:
                sp, si = probs.sort(-1, descending=True)
                keep = sp.cumsum(-1) - sp < params.top_p
                sp = sp * keep
                probs = torch.zeros_like(probs).scatter(-1, si, sp)
            tok = torch.multinomial(probs.cpu(), 1, generator=gen).squeeze(-1).to(logits.device)
        return tok, logp.gather(-1, tok[:, None]).squeeze(-1)

    def _sample_chunk(self, prompts, params, gen):  # noqa: C901 - one readable loop
        import torch

        dev, n, B = self.device, params.n, len(prompts)
        c = min(_lcp(prompts), min(map(len, prompts)) - 1)  # every row keeps >= 1 suffix token
        with torch.inference_mode():
            cache = None
            if c > 0:
                cache = self.model(input_ids=torch.tensor([prompts[0][:c]], device=dev), use_cache=True).past_key_values
                cache.batch_repeat_interleave(B)
            suffixes = [p[c:] for p in prompts]
            S = max(map(len, suffixes))
            ids = torch.full((B, S), self.pad_id, dtype=torch.long)
            mask = torch.zeros((B, c + S), dtype=torch.long)
            mask[:, :c] = 1
            pos = torch.zeros((B, S), dtype=torch.long)
            for r, s in enumerate(suffixes):
                ids[r, S - len(s) :] = torch.tensor(s)
                mask[r, c + S - len(s) :] = 1
                pos[r, S - len(s) :] = torch.arange(c, c + len(s))
            out = self.model(
                input_ids=ids.to(dev),
                attention_mask=mask.to(dev),
                position_ids=pos.to(dev),
                past_key_values=cache,
                use_cache=True,
            )
            cache, logits = out.past_key_values, out.logits[:, -1]
            # n samples per prompt
            if n > 1:
                cache.batch_repeat_interleave(n)
                logits = logits.repeat_interleave(n, 0)
                mask = mask.repeat_interleave(n, 0)
            next_pos = torch.tensor([len(p) for p in prompts]).repeat_interleave(n)
            rows = B * n
            toks = [[] for _ in range(rows)]
            lps = [[] for _ in range(rows)]
            finish = ["length"] * rows
            active = torch.arange(rows)
            stop_ids = set(params.stop_token_ids) | ({self.eos_id} if self.eos_id is not None else set())
            mask = mask.to(dev)
            for step in range(params.max_new_tokens):
                tok, lp = self._pick(logits, params, gen)
                tok_l, lp_l = tok.tolist(), lp.tolist()
                ACTIVITY.tokens_arrived(len(tok_l))
                keep = []
                for j, row in enumerate(active.tolist()):
                    toks[row].append(tok_l[j])
                    lps[row].append(lp_l[j])
                    if tok_l[j] in stop_ids or (params.stop and self._hit_stop(toks[row], params.stop)):
                        finish[row] = "stop"
                    else:
                        keep.append(j)
                if not keep or step == params.max_new_tokens - 1:
                    break
                if len(keep) < len(active):
                    idx = torch.tensor(keep)
                    cache.batch_select_indices(idx.to(dev))
                    mask, tok, active, next_pos = mask[idx.to(dev)], tok[idx.to(dev)], active[idx], next_pos[idx]
                mask = torch.cat([mask, torch.ones((len(active), 1), dtype=mask.dtype, device=dev)], 1)
                out = self.model(
                    input_ids=tok[:, None],
                    attention_mask=mask,
                    position_ids=next_pos[:, None].to(dev),
                    past_key_values=cache,
                    use_cache=True,
                )
                cache, logits = out.past_key_values, out.logits[:, -1]
                next_pos = next_pos + 1
        self.tokens_generated += sum(map(len, toks))
        result = []
        for r in range(B):
            comps = []
            for row in range(r * n, (r + 1) * n):
                text = self.tokenizer.decode(toks[row], skip_special_tokens=False)
                if params.stop:
                    cut = [text.find(s) for s in params.stop if s in text]
                    if cut:
                        text = text[: min(cut)]
                comps.append(Completion(toks[row], text, lps[row], finish[row]))
            result.append(comps)
        return result

    def _hit_stop(self, toks: list[int], stops: tuple[str, ...]) -> bool:
        tail = self.tokenizer.decode(toks[-16:], skip_special_tokens=False)
        return any(s in tail for s in stops)
