"""The tiny base model of the didactic world: a word-level tokenizer and a GPT-2-style model."""

from __future__ import annotations

from pathlib import Path

from mrt.tasks import star


def build_tokenizer():
    """A word-level tokenizer over the didactic vocabulary, as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(star.vocabulary())}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=star.PAD))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=star.BOS,
        eos_token=star.EOS,
        pad_token=star.PAD,
        unk_token=star.PAD,
        clean_up_tokenization_spaces=False,
    )


def build_model(
    tokenizer,
    n_layer: int = 4,
    n_embd: int = 128,
    n_head: int = 4,
    n_positions: int = 512,
    seed: int = 0,
    arch: str = "llama",
):
    """A small decoder-only transformer.

    ``arch="llama"`` (default): pre-norm, rotary positions, SwiGLU — the layout of today's LLMs.
    ``arch="gpt2"``: learned absolute positions. Both run through the same code paths; the
    shipped base model uses llama because it learns the in-context edge look-up of the didactic
    world several times faster on CPU (see docs/didactic-world.md).
    """
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    ids = dict(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    if arch == "gpt2":
        return GPT2LMHeadModel(
            GPT2Config(
                vocab_size=len(tokenizer),
                n_positions=n_positions,
                n_embd=n_embd,
                n_layer=n_layer,
                n_head=n_head,
                resid_pdrop=0.0,
                embd_pdrop=0.0,
                attn_pdrop=0.0,
                **ids,
            )
        )
    if arch == "llama":
        return LlamaForCausalLM(
            LlamaConfig(
                vocab_size=len(tokenizer),
                hidden_size=n_embd,
                intermediate_size=4 * n_embd,
                num_hidden_layers=n_layer,
                num_attention_heads=n_head,
                num_key_value_heads=n_head,
                max_position_embeddings=n_positions,
                tie_word_embeddings=True,
                **ids,
            )
        )
    raise ValueError(f"arch must be 'llama' or 'gpt2', got {arch!r}")


def shipped_model_path() -> Path:
    """The base checkpoint that ships inside the package (see ``docs/base-model.md``)."""
    return Path(__file__).parent / "checkpoints" / "star-base"
