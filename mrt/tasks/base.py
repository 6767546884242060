"""What a task is: problems with a prompt and a reference answer, plus an exact verifier."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from mrt.chat import encode_prompt
from mrt.episodes import R1_MARKERS, segment_r1
from mrt.metaprover import find_subsequence

log = logging.getLogger(__name__)

R1_TERMINATION = ("Time is up.\n\nGiven the time I've spent and the approaches I've tried, I should "
                  "stop thinking and formulate a final answer based on what I already have.\n</think>")


@dataclass
class Problem:
    id: str
    prompt: str  # the text the model continues (already templated)
    answer: str  # the reference answer
    meta: dict = field(default_factory=dict)


class Task:
    """Base class. Subclasses implement ``problems``, ``extract_answer`` and ``grade``.

    ``termination_text`` is appended to a thinking prefix to force an answer (the meta-prover);
    ``think_end_text`` marks the natural end of thinking in an output; ``extension_texts`` are
    appended in turn after a natural end to make the model think on (budget forcing), each
    extension running until one of ``extension_stop_texts`` or ``extension_tokens`` tokens.
    The defaults are the R1-style choices of MRT-NOTES §2.
    """

    name: str = "task"
    termination_text: str = "\n\n" + R1_TERMINATION
    think_end_text: str = "</think>"
    extension_texts: tuple[str, ...] = ("\nWait", "\nBut wait", "\nAlternatively", "\nBut hold on")
    extension_stop_texts: tuple[str, ...] = ("</think>",)
    extension_tokens: int = 2048
    answer_stop_texts: tuple[str, ...] = ()
    default_budgets: tuple[int, ...] = (4096, 8192, 12288, 16384)
    default_max_new_tokens: int = 16384
    default_answer_tokens: int = 4096
    r1_max_steps: int = 49
    r1_group_size: int = 5

    def knobs(self) -> dict:
        return {}

    def problems(self, n: int, seed: int = 0) -> list[Problem]:
        raise NotImplementedError

    def extract_answer(self, completion: str) -> str | None:
        """The final answer inside the answer part of a completion (never the thinking)."""
        raise NotImplementedError

    def grade(self, problem: Problem, answer: str | None) -> bool:
        raise NotImplementedError

    # ------------------------------------------------------------------ prompts and tokens
    def render(self, problem: Problem, tokenizer) -> str:
        """The prompt text the model continues (a chat task applies the chat template here)."""
        return problem.prompt

    def prompt_ids(self, problem: Problem, tokenizer) -> list[int]:
        """Token ids of the rendered prompt, with exactly one BOS where the tokenizer uses one."""
        return encode_prompt(tokenizer, self.render(problem, tokenizer))

    def termination_ids(self, tokenizer, thinking_ids: list[int]) -> list[int]:
        """Token ids of the termination text to append after ``thinking_ids``.

        A termination text that starts with newlines (the R1 default ``"\n\n" + R1_TERMINATION``)
        is placed the authors' way: after an empty prefix the text comes right after the prompt,
        otherwise after exactly one blank line; newlines the prefix already ends with are not
        repeated. Other termination texts are appended as they are.
        """
        text = self.termination_text
        core = text.lstrip("\n")
        if core != text:
            if not thinking_ids:
                text = core
            else:
                tail = tokenizer.decode(list(thinking_ids[-8:]), skip_special_tokens=False)
                have = len(tail) - len(tail.rstrip("\n"))
                text = text[min(have, len(text) - len(core)):]
        return _encode_cached(tokenizer, text)

    def forced_ids(self, tokenizer, prompt_ids: list[int], thinking_ids: list[int]) -> list[int]:
        """The meta-prover's prompt: prompt + thinking prefix + termination text, as token ids."""
        return list(prompt_ids) + list(thinking_ids) + self.termination_ids(tokenizer, thinking_ids)

    def split_output(self, token_ids: list[int], tokenizer) -> tuple[list[int], list[int] | None]:
        """(thinking ids, answer ids) of an output; answer None when thinking never ended.

        With an empty ``think_end_text`` (a model that does not think in tags) the whole output,
        less a final EOS, is the thinking, and a finished output (ending in EOS) is also its own
        answer part.
        """
        ids = list(token_ids)
        eos = tokenizer.eos_token_id
        if not self.think_end_text:
            done = bool(ids) and ids[-1] == eos
            thinking = ids[:-1] if done else ids
            return thinking, (thinking if done else None)
        end = _encode_cached(tokenizer, self.think_end_text)
        cut = find_subsequence(ids, end)
        if cut < 0:
            return [i for i in ids if i != eos], None
        return ids[:cut], ids[cut + len(end):]

    def grade_answer_ids(self, problem: Problem, answer_ids: list[int] | None, tokenizer) -> tuple[str | None, bool]:
        """(extracted answer, correct) of an output's answer part (``split_output``'s second
        value); (None, False) when there is none. A grader or extractor that raises grades the
        answer wrong (logged), never the run."""
        if answer_ids is None:
            return None, False
        try:
            answer = self.extract_answer(tokenizer.decode(answer_ids, skip_special_tokens=False))
            return answer, answer is not None and bool(self.grade(problem, answer))
        except Exception as e:  # noqa: BLE001
            log.warning("grading failed on problem %s: %s", problem.id, e)
            return None, False

    def answer_part(self, completion: str, terminated: bool = False) -> str | None:
        """The part of a completion that is graded: what follows the end of thinking.

        ``terminated``: the prompt already ended thinking (a forced answer), so all of it.
        None when thinking never ended (nothing may be graded then).
        """
        if terminated or not self.think_end_text:
            return completion
        if self.think_end_text not in completion:
            return None
        return completion.split(self.think_end_text, 1)[1]

    def episode_ends(self, thinking_ids: list[int], tokenizer) -> list[int]:
        """Episode end offsets, in tokens, of a thinking stream (R1 segmentation by default).

        Character ends of the R1 segmentation are mapped to the first token whose decoded text
        reaches them (tokens decoded one by one).
        """
        text = tokenizer.decode(thinking_ids, skip_special_tokens=False)
        seg = segment_r1(text, self.r1_max_steps, self.r1_group_size, R1_MARKERS)
        cum, ends, i = 0, [], 0
        tok_ends = []
        for t in thinking_ids:
            cum += len(tokenizer.decode([t], skip_special_tokens=False))
            tok_ends.append(cum)
        for ce in seg.char_ends:
            while i < len(tok_ends) and tok_ends[i] < ce:
                i += 1
            ends.append(min(i + 1, len(thinking_ids)))
        if ends:
            ends[-1] = len(thinking_ids)
        return ends


def _encode_cached(tokenizer, text: str) -> list[int]:
    """``tokenizer.encode(text)`` without special tokens, remembered on the tokenizer."""
    cache = tokenizer.__dict__.setdefault("_mrt_encoded", {})
    if text not in cache:
        cache[text] = list(tokenizer.encode(text, add_special_tokens=False)) if text else []
    return cache[text]
