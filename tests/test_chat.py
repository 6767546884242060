"""Chat prompts: one BOS, and the forced-termination text placed token-exactly after a thinking
prefix, on two real tokenizers (SmolLM2's ChatML template without BOS, and DeepSeek-R1-Distill's
template, which writes the BOS itself while the tokenizer also adds one)."""
import pytest

from mrt.chat import encode_prompt
from mrt.tasks import get_task
from mrt.tasks.base import Problem, R1_TERMINATION

THINKING = ("Let me compute 12 * 7 first.\n\n12 * 7 = 84.\n\nThen add 5: 89.\n\n"
            "Wait, the question asks for 12 * 7 + 5, so 89 is right.\n\nLet me re-check: 84 + 5 = 89.\n\n"
            "Yes.\n\nAlternatively, 12 * 8 = 96, minus 12 is 84, plus 5 is 89.\n\nDone.\n\n"
            "But wait, maybe \\boxed{88}?\n\nNo, 89.")


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
    assert r1_tok(text)["input_ids"][:2] == [bos, bos]  # the authors' trap: plain encoding doubles it
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
    assert len(ends) == 3 and ends[-1] == len(think)  # "Wait" and "Alternatively" start episodes; "But wait" is too close
    prompt_text = tok.decode(prompt, skip_special_tokens=False)
    for cut in [0] + ends:
        forced = task.forced_ids(tok, prompt, think[:cut])
        assert forced[:len(prompt)] == prompt and forced[len(prompt):len(prompt) + cut] == think[:cut]
        text = tok.decode(forced, skip_special_tokens=False)
        prefix = tok.decode(think[:cut], skip_special_tokens=False)
        assert text.startswith(prompt_text + prefix)
        if cut == 0:  # right after "<think>\n", as the authors did
            assert text == prompt_text + R1_TERMINATION
        else:  # the prefix's own text, trailing newlines dropped, then exactly one blank line
            assert text == prompt_text + prefix.rstrip("\n") + "\n\n" + R1_TERMINATION
        assert text.endswith("formulate a final answer based on what I already have.\n</think>")
        # the boxed guess in the thinking is never part of what gets graded
        assert task.answer_part("anything", terminated=True) == "anything"
    end_ids = tok.encode("</think>", add_special_tokens=False)
    assert forced[-len(end_ids):] == end_ids


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
