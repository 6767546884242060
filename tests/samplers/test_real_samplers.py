"""The three samplers behind one interface, on a real model: transformers (SmolLM2-135M-Instruct
converted from its GGUF file), a real llama.cpp server serving that GGUF file through the
OpenAI-compatible backend (vLLM: tests/samplers/test_vllm.py)."""

import json

import pytest

from mrt.samplers import SamplingParams
from mrt.samplers.openai import OpenAISampler, ServerError


def _check_shapes(out, prompts, params, tok, exact=True):
    """``exact``: ids are the sampled ids (one log-prob each); the OpenAI backend may re-encode
    the text where a server's ids do not decode to it (then counts can differ by a token)."""
    assert len(out) == len(prompts)
    for comps in out:
        assert len(comps) == params.n
        for c in comps:
            slack = 0 if exact else 2
            assert 1 <= len(c.token_ids) <= params.max_new_tokens + slack
            assert c.logprobs and all(lp <= 0 for lp in c.logprobs)
            assert c.finish_reason in ("stop", "length")
            if c.finish_reason == "stop":
                assert c.token_ids[-1] == tok.eos_token_id
            if exact:
                assert len(c.logprobs) == len(c.token_ids)
                assert c.finish_reason == "stop" or len(c.token_ids) == params.max_new_tokens
            assert isinstance(c.text, str)


def _request(tok):
    from mrt.chat import encode_prompt, render_chat

    prompts = [encode_prompt(tok, render_chat(tok, q, think_open="")) for q in ("What is 2 + 3?", "Name a colour.")]
    return prompts, SamplingParams(n=3, max_new_tokens=24, temperature=0.8, seed=5)


def test_hf_sampler_shapes(smollm2_dir, smollm2_tok):
    from mrt.samplers import load_sampler

    s = load_sampler(str(smollm2_dir))
    prompts, params = _request(s.tokenizer)
    _check_shapes(s.sample(prompts, params), prompts, params, s.tokenizer)


@pytest.mark.server
def test_openai_sampler_on_a_real_llama_cpp_server(llama_server, smollm2_tok):
    s = OpenAISampler(llama_server, smollm2_tok, concurrency=2)
    prompts, params = _request(smollm2_tok)
    out = s.sample(prompts, params)
    _check_shapes(out, prompts, params, smollm2_tok, exact=s.stats["reencoded"] == 0)
    assert s.stats["requests"] == 2 and s.stats["failed"] == 0 and s.stats["retries"] == 0
    assert s.tokens_generated == sum(len(c.token_ids) for cs in out for c in cs)
    assert s.stats["prompt_tokens"] > 0 and s.stats["completion_tokens"] > 0
    greedy = SamplingParams(n=1, max_new_tokens=12, temperature=0.0)
    a, b = s.sample(prompts[:1], greedy)[0][0], s.sample(prompts[:1], greedy)[0][0]
    assert a.token_ids == b.token_ids  # the ids are the server's own sampled ids, not a re-encoding
    assert smollm2_tok.decode(a.token_ids, skip_special_tokens=True) == a.text


def test_openai_sampler_retries_then_reports_counts(smollm2_tok):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    s = OpenAISampler(f"http://127.0.0.1:{port}/v1", smollm2_tok, max_retries=2, backoff=0.01, timeout=2)
    with pytest.raises(ServerError, match=r"failed after 3 tries \(ConnectionError"):
        s.sample([[1, 2, 3]], SamplingParams(n=1, max_new_tokens=4))
    assert s.stats["requests"] == 3 and s.stats["retries"] == 2 and s.stats["failed"] == 1


@pytest.mark.server
def test_mrt_analyze_through_the_server(llama_server, smollm2_dir, tmp_path):
    """``mrt analyze --backend openai`` end to end against the server: J estimated for every prefix."""
    from mrt.cli import main

    out = tmp_path / "an"
    rc = main(
        [
            "analyze",
            "--model",
            str(smollm2_dir),
            "--backend",
            "openai",
            "--base-url",
            llama_server,
            "--task",
            "gym",
            "--knobs",
            "dataset=chain_sum",
            "options=max_terms:2,max_digits:1",
            "thinking=none",
            "extract=last-number",
            "--n-problems",
            "2",
            "--traces-per-problem",
            "2",
            "--answers-per-prefix",
            "2",
            "--max-new-tokens",
            "48",
            "--answer-tokens",
            "16",
            "--segmentation",
            "chunk:16",
            "--extensions",
            "1",
            "--extension-tokens",
            "8",
            "--budgets",
            "32",
            "48",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    recs = [json.loads(x) for x in (out / "traces.jsonl").read_text().splitlines()]
    assert len(recs) == 4
    for r in recs:
        assert len(r["prefixes"]) == len(r["episodes"]) + 1 and all(len(p["grades"]) == 2 for p in r["prefixes"])
    s = json.loads((out / "summary.json").read_text())
    assert s["n_traces"] == 4 and set(s["normalized_regret"]) == {"32", "48"}
