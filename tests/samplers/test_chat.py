"""Chat prompts: one BOS, and the forced-termination text placed token-exactly after a thinking
prefix, on two real tokenizers (SmolLM2's ChatML template without BOS, and DeepSeek-R1-Distill's
template, which writes the BOS itself while the tokenizer also adds one)."""

import pytest

from mrt.chat import encode_prompt
from mrt.tasks import get_task
from mrt.tasks.base import R1_ANSWER_OPENER, R1_TERMINATION, Problem

THINKING = (
    "Let me compute 12 * 7 first.\n\n12 * 7 = 84.\n\nThen add 5: 89.\n\n"
    "Wait, the question asks for 12 * 7 + 5, so 89 is right.\n\nLet me re-check: 84 + 5 = 89.\n\n"
    "Yes.\n\nAlternatively, 12 * 8 = 96, minus 12 is 84, plus 5 is 89.\n\nDone.\n\n"
    "But wait, maybe \\boxed{88}?\n\nNo, 89."
)


@pytest.fixture(params=["smollm2", "r1"])
def tok(request, smollm2_tok, r1_tok):
    return {"smollm2": smollm2_tok, "r1": r1_tok}[request.param]


def test_one_bos_where_the_template_writes_it(r1_tok, smollm2_tok):
    task = get_task("math")
    p = Problem("p", "What is 12 * 7 + 5?", "89")
    text = task.render(p, r1_tok)
    assert text.startswith("<｜begin▁of▁sentence｜><｜User｜>What is 12 * 7 + 5?")
    assert text.endswith("<｜Assistant｜><think>\n")
    ids = task.prompt_ids(p, r1_tok)
    bos = r1_tok.bos_token_id
    assert ids[0] == bos and ids.count(bos) == 1
    plain = r1_tok(text)["input_ids"]
    if r1_tok("x")["input_ids"][0] == bos:  # the authors' trap: a tokenizer that adds BOS doubles it
        assert plain[:2] == [bos, bos]  # (transformers >= 5.20 on this GGUF tokenizer; 5.19 adds none)
    else:
        assert plain[0] == bos and plain.count(bos) == 1
    assert ids[-2:] == r1_tok.encode("<think>\n", add_special_tokens=False)
    # SmolLM2's template has no BOS and its tokenizer adds none: nothing added
    s = task.render(p, smollm2_tok)
    assert task.prompt_ids(p, smollm2_tok) == smollm2_tok(s, add_special_tokens=False)["input_ids"]
    assert encode_prompt(smollm2_tok, "plain text") == smollm2_tok("plain text")["input_ids"]


def test_termination_text_placed_token_exactly(tok):
    task = get_task("math", episode_max_steps=49, episode_group_size=1)
    p = Problem("p", "What is 12 * 7 + 5?", "89")
    prompt = task.prompt_ids(p, tok)
    think = tok.encode(THINKING, add_special_tokens=False)
    ends = task.episode_ends(think, tok)
    assert len(ends) == 3 and ends[-1] == len(
        think
    )  # "Wait" and "Alternatively" start episodes; "But wait" is too close
    prompt_text = tok.decode(prompt, skip_special_tokens=False)
    for cut in [0] + ends:
        forced = task.forced_ids(tok, prompt, think[:cut])
        assert forced[: len(prompt)] == prompt and forced[len(prompt) : len(prompt) + cut] == think[:cut]
        text = tok.decode(forced, skip_special_tokens=False)
        prefix = tok.decode(think[:cut], skip_special_tokens=False)
        assert text.startswith(prompt_text + prefix)
        if cut == 0:  # right after "<think>\n", as the authors did
            assert text == prompt_text + R1_TERMINATION + R1_ANSWER_OPENER
        else:  # the prefix's own text, trailing newlines dropped, then exactly one blank line
            assert text == prompt_text + prefix.rstrip("\n") + "\n\n" + R1_TERMINATION + R1_ANSWER_OPENER
        # the authors' exact text, with their answer opener after </think>
        assert text.endswith(
            "formulate a final answer based on what I already have.\n</think>\n\n"
            "**Step-by-Step Explanation and Answer:**\n\n1. **"
        )
        # the boxed guess in the thinking is never part of what gets graded
        assert task.answer_part("anything", terminated=True) == "anything"
    # a natural end (the output closed thinking itself): only "\n</think>", as the authors did
    natural = task.forced_ids(tok, prompt, think, natural_end=True)
    assert natural[: len(prompt) + len(think)] == prompt + think
    assert tok.decode(natural, skip_special_tokens=False) == prompt_text + THINKING + "\n</think>"
    with_nl = tok.encode(THINKING + "\n", add_special_tokens=False)
    assert tok.decode(task.forced_ids(tok, prompt, with_nl, natural_end=True)).endswith("No, 89.\n</think>")


def test_thinking_split_and_answer_part_only(tok):
    task = get_task("math")
    out = tok.encode(THINKING + "</think>\n\nThe answer is \\boxed{89}.", add_special_tokens=False) + [tok.eos_token_id]
    thinking, answer = task.split_output(out, tok)
    assert tok.decode(thinking) == THINKING
    part = tok.decode(answer, skip_special_tokens=True)
    assert task.extract_answer(part) == "89"  # not the \boxed{88} inside the thinking
    assert task.grade(Problem("p", "", "89"), task.extract_answer(part))
    unfinished = tok.encode(THINKING, add_special_tokens=False)
    assert task.split_output(unfinished, tok)[1] is None  # thinking never ended: nothing graded
    plain = get_task("math", thinking="none")
    th, ans = plain.split_output(out, tok)
    assert ans == th and out[-1] == tok.eos_token_id and len(th) == len(out) - 1


MULTIBYTE = [
    "Soit f(x) = x² — café, déjà vu, naïve.",
    "東京と大阪の距離を計算します。",
    "Emoji check 🙂🎉👩‍👩‍👧: $\\frac{\\sqrt{3}}{2} \\approx 0.866$.",
    "Wait, ça fait combien ? 中文 😀.",
    "Let $\\alpha \\in \\mathbb{R}$ and ∑ᵢ xᵢ.",
    "Ok.",
    "But wait, Ωmega ≠ ω; 🤔.",
    "Done ✅.",
]


def test_episode_ends_are_token_exact_on_multibyte_text(tok):
    """Byte-level tokens that split accents, CJK and emoji must not shift episode ends: each end
    is the first token whose prefix decodes to the whole episodes before it."""
    task = get_task("math", episode_max_steps=49, episode_group_size=1)
    text = "\n\n".join(MULTIBYTE)
    ids = tok.encode(text, add_special_tokens=False)
    assert len(ids) > len(text) // 3  # byte-level pieces, not one token per character
    ends = task.episode_ends(ids, tok)
    # hand-computed: paragraphs 3 ("Wait") and 6 ("But wait") start episodes (gap >= 3)
    expected = ["\n\n".join(MULTIBYTE[:3]), "\n\n".join(MULTIBYTE[:6]), text]
    assert len(ends) == 3 and ends[-1] == len(ids)
    for end, want in zip(ends, expected):
        assert tok.decode(ids[:end]).startswith(want)
        assert len(tok.decode(ids[: end - 1])) < len(want)  # and not one token later than needed
