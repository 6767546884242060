"""What a task is: problems with a prompt and a reference answer, plus an exact verifier."""

from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass, field

from mrt.chat import encode_prompt
from mrt.core.episodes import R1_MARKERS, find_subsequence, segment_r1

log = logging.getLogger(__name__)

R1_TERMINATION = (
    "Time is up.\n\nGiven the time I've spent and the approaches I've tried, I should "
    "stop thinking and formulate a final answer based on what I already have.\n</think>"
)
# what the authors' meta-prover writes after </think> before the model's forced answer
R1_ANSWER_OPENER = "\n\n**Step-by-Step Explanation and Answer:**\n\n1. **"


@dataclass
class Problem:
    id: str
    prompt: str  # the text the model continues (already templated)
    answer: str  # the reference answer
    meta: dict = field(default_factory=dict)


class Task:
    """Base class. Subclasses implement ``problems``, ``extract_answer`` and ``grade``.

    ``termination_text`` is appended to a thinking prefix to force an answer (the meta-prover);
    ``natural_end_text`` replaces it after the whole thinking of an output that ended thinking by
    itself (None: the termination text there too); ``think_end_text`` marks the natural end of
    thinking in an output; ``extension_texts`` are appended in turn after a natural end to make the model think on (budget forcing), each
    extension running until one of ``extension_stop_texts`` or ``extension_tokens`` tokens.
    The defaults are the R1-style choices of MRT-NOTES §2.
    """

    name: str = "task"
    termination_text: str = "\n\n" + R1_TERMINATION + R1_ANSWER_OPENER
    natural_end_text: str | None = "\n</think>"
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

    def _end_text(self, natural_end: bool) -> str:
        if natural_end and self.natural_end_text is not None:
            return self.natural_end_text
        return self.termination_text

    def termination_ids(self, tokenizer, thinking_ids: list[int], natural_end: bool = False) -> list[int]:
        """Token ids to append after ``thinking_ids``, kept whole, to force an answer: the
        termination text, or the natural-end text after the whole thinking of an output that
        ended thinking by itself (``natural_end``; the authors append only ``\n</think>`` there).

        The append-only form, for thinking tokens that must stay as sampled (training's budget
        cut keeps their log-probs): a text that starts with newlines comes right after an empty
        prefix without them, and its newlines are not repeated where the prefix already ends
        with them. The meta-prover's prompt is :meth:`forced_ids`.
        """
        text = self._end_text(natural_end)
        core = text.lstrip("\n")
        if core != text:
            if not thinking_ids:
                text = core
            else:
                tail = tokenizer.decode(list(thinking_ids[-8:]), skip_special_tokens=False)
                have = len(tail) - len(tail.rstrip("\n"))
                text = text[min(have, len(text) - len(core)) :]
        return _encode_cached(tokenizer, text)

    def forced_ids(
        self, tokenizer, prompt_ids: list[int], thinking_ids: list[int], natural_end: bool = False
    ) -> list[int]:
        """The meta-prover's prompt: prompt + thinking prefix + termination (or natural-end)
        text, as token ids.

        A text that starts with newlines (the R1 defaults) is placed the authors' way: the
        newlines the prefix ends with are dropped (their episodes lose their trailing newlines)
        and the text follows with its own, so exactly ``\n\n`` comes before the termination text
        and ``\n`` before ``</think>``; after an empty (or all-newline) prefix the text comes right
        after the prompt, without them. The prefix keeps the model's own tokens, except a last
        token that holds text and some of those newlines together (``.\n\n``): its text is
        encoded with the appended text, as a re-encoding of the whole prompt would. Other texts are
        appended as they are.
        """
        text = self._end_text(natural_end)
        core = text.lstrip("\n")
        thinking_ids = list(thinking_ids)
        seam = _newline_seam(tokenizer, thinking_ids) if core != text else None
        if seam is None:
            return list(prompt_ids) + thinking_ids + self.termination_ids(tokenizer, thinking_ids, natural_end)
        keep, tail = seam
        if keep == 0 and not tail:
            return list(prompt_ids) + _encode_cached(tokenizer, core)
        return list(prompt_ids) + thinking_ids[:keep] + _encode_cached(tokenizer, tail + text)

    def same_answer(self, a: str, b: str) -> bool:
        """Are two extracted answers the same answer (one vote in maj@k)? Equal strings here;
        math tasks compare with math-verify."""
        return a == b

    def answer_labels(self, answers: list[str | None]) -> list[str | None]:
        """Vote labels of answers: each answer is labelled with the first earlier answer it is
        the same as (:meth:`same_answer`), so that equivalent answers vote together."""
        reps: list[str] = []
        out: list[str | None] = []
        for a in answers:
            if a is None:
                out.append(None)
                continue
            rep = next((r for r in reps if a == r or self.same_answer(a, r)), None)
            if rep is None:
                reps.append(a)
            out.append(a if rep is None else rep)
        return out

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
        return ids[:cut], ids[cut + len(end) :]

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
            log.warning("grading failed on problem %s: %.80s", problem.id, str(e))
            return None, False

    has_format_check = False  # True where format_error judges a thinking stream (training's --format-penalty)

    def format_error(self, prompt: str, completion: str) -> str | None:
        """The kind of format error in the thinking a prompt and its completion write together, or
        None. Only tasks whose thinking has a format of its own judge it (``has_format_check``);
        a stream the budget cut before it ended is not judged."""
        return None

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

        The text is segmented as the tokens decode (:func:`decoded_char_ends`); each episode's
        character end maps to the first token whose text reaches it, so a prefix of ``end``
        tokens decodes to the episodes before it (plus, at most, the rest of that token).
        """
        text, tok_ends = decoded_char_ends(tokenizer, thinking_ids)
        seg = segment_r1(text, self.r1_max_steps, self.r1_group_size, R1_MARKERS)
        ends = [bisect.bisect_left(tok_ends, ce) + 1 for ce in seg.char_ends]
        ends = [min(e, len(thinking_ids)) for e in ends]
        if ends:
            ends[-1] = len(thinking_ids)
        return ends


def decoded_char_ends(tokenizer, ids: list[int]) -> tuple[str, list[int]]:
    """(text, ends): the decoded text of ``ids`` and, per token, the number of characters of it
    that are complete once that token is read.

    Byte-level tokens that split one character (an accent, a CJK character, an emoji) add
    nothing until the character is whole: a token's text is the difference between decoding a
    short window with and without it, and a window that decodes to an incomplete character
    (U+FFFD at its end) waits for the next token. So ``text[:ends[i]]`` is exactly what the first
    ``i + 1`` tokens decode to, for SentencePiece and byte-level BPE tokenizers alike.
    """

    def dec(a, b):
        return tokenizer.decode(ids[a:b], skip_special_tokens=False)

    pieces, ends, total = [], [], 0
    start, read = 0, 0  # the window ids[start:i+1]; ids[start:read] is already in the text
    for i in range(len(ids)):
        before = dec(start, read) if read > start else ""
        now = dec(start, i + 1)
        if len(now) > len(before) and not now.endswith("\ufffd") and now.startswith(before):
            pieces.append(now[len(before) :])
            total += len(now) - len(before)
            start, read = read, i + 1
        ends.append(total)
    if read < len(ids):  # a trailing incomplete character: keep what the decoder makes of it
        tail = dec(start, len(ids))[len(dec(start, read)) if read > start else 0 :]
        pieces.append(tail)
        total += len(tail)
        ends[-1] = total
    return "".join(pieces), ends


def _newline_seam(tokenizer, ids: list[int]) -> tuple[int, str] | None:
    """Where the newlines that end a thinking stream start, in tokens: ``(keep, tail)`` such that
    ``ids[:keep]`` decodes to the text before those newlines less ``tail``, the text of the token(s)
    that also hold some of them. ``(len(ids), "")`` when the stream does not end with a newline,
    ``(0, "")`` when it is all newlines; None when that token's text cannot be told (it starts
    inside a character the window does not hold).
    """
    n = 8
    while True:
        start = max(0, len(ids) - n)
        text, ends = decoded_char_ends(tokenizer, ids[start:])
        body = len(text.rstrip("\n"))
        if body == len(text):
            return len(ids), ""
        if body > 0 or start == 0:
            break
        n *= 2
    i = bisect.bisect_right(ends, body)  # the first token that reaches into the newlines
    while i > 0 and ends[i - 1] == (ends[i - 2] if i > 1 else 0):  # bytes of a character it completes
        i -= 1
    tail = text[ends[i - 1] if i else 0 : body]
    if "\ufffd" in tail:
        return None
    return start + i, tail


def _encode_cached(tokenizer, text: str) -> list[int]:
    """``tokenizer.encode(text)`` without special tokens, remembered on the tokenizer."""
    cache = tokenizer.__dict__.setdefault("_mrt_encoded", {})
    if text not in cache:
        cache[text] = list(tokenizer.encode(text, add_special_tokens=False)) if text else []
    return cache[text]
