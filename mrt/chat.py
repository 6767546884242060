"""Prompts for chat models: the tokenizer's chat template, the opening of thinking, one BOS.

The MRT authors' code added the BOS token twice (the chat template writes it as text, and the
tokenizer added another when encoding; MRT-NOTES §2). Here a rendered prompt is encoded without
the tokenizer's own special tokens, and exactly one BOS is kept when the tokenizer uses one.
"""

from __future__ import annotations

THINK_OPEN = "<think>\n"


def adds_bos(tok) -> bool:
    """Does ``tok`` put a BOS token in front of plain text by default?"""
    bos = getattr(tok, "bos_token_id", None)
    if bos is None:
        return False
    ids = tok("a")["input_ids"]
    return bool(ids) and ids[0] == bos


def encode_prompt(tok, text: str) -> list[int]:
    """Token ids of a prompt: the text's own tokens, with exactly one leading BOS if the
    tokenizer uses one (a chat template that writes the BOS itself is not doubled)."""
    ids = list(tok(text, add_special_tokens=False)["input_ids"])
    bos = getattr(tok, "bos_token_id", None)
    if bos is None:
        return ids
    while len(ids) >= 2 and ids[0] == bos and ids[1] == bos:
        ids = ids[1:]
    if adds_bos(tok) and (not ids or ids[0] != bos):
        ids = [bos] + ids
    return ids


def render_chat(tok, user: str, system: str = "", think_open: str = THINK_OPEN) -> str:
    """The prompt text a chat model continues: its chat template with the generation prompt,
    then ``think_open`` unless the template already ends with it (newer R1 templates do)."""
    if not getattr(tok, "chat_template", None):
        raise ValueError(
            f"tokenizer {getattr(tok, 'name_or_path', '?')!r} has no chat template; "
            "use the task knob template=raw, or a tokenizer with one"
        )
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if think_open and not text.endswith(think_open) and not text.rstrip().endswith(think_open.strip()):
        text += think_open
    return text
