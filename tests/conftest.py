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
