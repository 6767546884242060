import pytest
import torch

from mrt.samplers import SamplingParams, load_sampler


def _ids(tok, text):
    return tok.convert_tokens_to_ids(text.split())


PROMPTS = ["<bos> v1 v2 | v3 v4 | start v1", "<bos> v1 v2 | v5 v6 v7 v8 | start v9 goal", "<bos> v1"]


@pytest.fixture(params=["llama", "gpt2"])
def any_arch_sampler(request, tmp_path_factory):
    from mrt.samplers.hf import HFSampler
    from mrt.tasks.tiny import build_model, build_tokenizer

    tok = build_tokenizer()
    return HFSampler(build_model(tok, n_layer=2, n_embd=32, n_head=2, arch=request.param), tok)


def test_greedy_matches_generate_and_logprobs_match_a_full_forward(any_arch_sampler):
    s = any_arch_sampler
    tok, model = s.tokenizer, s.model
    prompts = [_ids(tok, p) for p in PROMPTS]
    out = s.sample(prompts, SamplingParams(n=2, max_new_tokens=12, temperature=0))
    assert len(out) == 3 and all(len(o) == 2 for o in out)
    for p, comps in zip(prompts, out):
        ref = model.generate(
            torch.tensor([p]),
            max_new_tokens=12,
            do_sample=False,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )[0, len(p) :].tolist()
        assert comps[0].token_ids == ref == comps[1].token_ids
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([p + ref])).logits[0], -1)
        want = [logp[len(p) - 1 + i, t].item() for i, t in enumerate(ref)]
        assert comps[0].logprobs == pytest.approx(want, abs=1e-4)


def test_sampling_is_seeded_and_respects_limits(tiny_sampler):
    s = tiny_sampler
    prompts = [_ids(s.tokenizer, p) for p in PROMPTS]
    a = s.sample(prompts, SamplingParams(n=4, max_new_tokens=7, temperature=1.0, seed=3))
    b = s.sample(prompts, SamplingParams(n=4, max_new_tokens=7, temperature=1.0, seed=3))
    c = s.sample(prompts, SamplingParams(n=4, max_new_tokens=7, temperature=1.0, seed=4))
    ids = lambda r: [x.token_ids for o in r for x in o]  # noqa: E731
    assert ids(a) == ids(b) and ids(a) != ids(c)
    for comp in (x for o in a for x in o):
        assert 1 <= len(comp.token_ids) <= 7 and len(comp.logprobs) == len(comp.token_ids)
        assert comp.finish_reason == ("length" if len(comp.token_ids) == 7 else "stop")
        assert comp.text == s.tokenizer.decode(comp.token_ids)
    # a shorter cap samples the first tokens of the longer sample (MRT's prefix traces rely on it)
    short = s.sample(prompts, SamplingParams(n=4, max_new_tokens=3, temperature=1.0, seed=3))
    assert [x[:3] for x in ids(a)] == ids(short) and any(len(x) > 3 for x in ids(a))


def test_stop_tokens_end_a_row(tiny_sampler):
    s = tiny_sampler
    vocab_ids = list(range(len(s.tokenizer)))
    prompts = [_ids(s.tokenizer, PROMPTS[0])]
    out = s.sample(prompts, SamplingParams(n=8, max_new_tokens=30, stop_token_ids=tuple(vocab_ids)))
    assert all(len(c.token_ids) == 1 and c.finish_reason == "stop" for c in out[0])


def test_bad_requests(tiny_sampler, tmp_path):
    with pytest.raises(ValueError, match="prompt 1 is empty"):
        tiny_sampler.sample([[1], []], SamplingParams())
    with pytest.raises(ValueError):
        SamplingParams(n=0)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_sampler(str(tmp_path / "missing"))
    assert tiny_sampler.sample([], SamplingParams()) == []
