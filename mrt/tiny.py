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
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=star.BOS, eos_token=star.EOS,
                                   pad_token=star.PAD, unk_token=star.PAD,
                                   clean_up_tokenization_spaces=False)


def build_model(tokenizer, n_layer: int = 4, n_embd: int = 128, n_head: int = 4,
                n_positions: int = 512, seed: int = 0):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=len(tokenizer), n_positions=n_positions, n_embd=n_embd,
                     n_layer=n_layer, n_head=n_head, bos_token_id=tokenizer.bos_token_id,
                     eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(cfg)


def shipped_model_path() -> Path:
    """The base checkpoint that ships inside the package (see ``docs/base-model.md``)."""
    return Path(__file__).parent / "checkpoints" / "star-base"
