"""The backtracking format's adapters: how a task in it renders attempts, opens a revision,
parses what the model wrote and keys a branch (the tree world's words, or text tasks with
``format=backtrack``). Shared by ``mrt linearized`` (measure) and MRT-RL on the format (train).
"""

from __future__ import annotations

from dataclasses import dataclass

from mrt.core import backtrack as bt


@dataclass
class Attempt:
    steps: tuple[str, ...]
    outcome: str | None = None  # didactic: dead, found or None


class WordsFormat:
    """The didactic backtracking world's words (task ``tree``)."""

    def __init__(self, task, problem, tok):
        self.task, self.problem, self.tok = task, problem, tok
        self.stops = (bt.TRY, bt.BACK, "check", "</think>")
        self._g = None

    @property
    def g(self):
        if self._g is None:
            self._g = self.task.graph(self.problem.meta["seed"])
        return self._g

    @property
    def nodes(self) -> set[str]:
        return {self.g.start} | {v for arm in self.g.arms for v in arm}

    def ids(self, words: list[str]) -> list[int]:
        return self.tok.convert_tokens_to_ids(words)

    def render(self, window: list[Attempt]) -> list[int]:
        words: list[str] = []
        for a in window:
            words += bt.render_words(a.steps, a.outcome)
        return self.ids(words)

    def opener(self, first: bool) -> list[int]:
        return self.ids([bt.TRY if first else bt.BACK])

    def clean(self, text: str) -> str:
        return " ".join(w for w in text.split() if w not in ("<eos>", "<pad>"))

    def kept(self, text: str) -> list[int]:
        return self.ids(self.clean(text).split())

    def parse(self, last: Attempt | None, gen_text: str) -> Attempt:
        words = self.clean(gen_text).split()
        if last is None:
            t = bt.parse_words([bt.TRY] + words, self.nodes)
            return Attempt(t.attempt, t.outcome)
        t = bt.parse_words(bt.render_words(last.steps, last.outcome) + [bt.BACK] + words, self.nodes)
        return Attempt(t.attempts()[-1], t.outcomes()[-1])

    def exact_j(self, window: list[Attempt], first: bool, gen_text: str) -> float | None:
        """The world's exact J after the context's attempts and this episode (``tree.exact_j``:
        what the window and the episode rule out; the walk-only value, not a bound)."""
        from mrt.tasks.tree import exact_j

        words: list[str] = []
        for a in window:
            words += bt.render_words(a.steps, a.outcome)
        words += [bt.TRY if first else bt.BACK] + self.clean(gen_text).split()
        return exact_j(self.g, words)

    def key(self, attempt: Attempt, answer_label) -> tuple[str | None, bool]:
        """(branch key, wrong) of an attempt: the leaf it walked to and said so."""
        from mrt.tasks.tree import leaf_of

        leaf = leaf_of(self.g, attempt.steps) if attempt.outcome else None
        return (None, False) if leaf is None else (str(leaf), leaf != self.g.goal_arm)


class TextFormat:
    """Text tasks with ``format=backtrack``: numbered steps, the authors' markers."""

    def __init__(self, task, problem, tok):
        self.task, self.problem, self.tok = task, problem, tok
        self.stops = ("Backtrack to", bt.RL_MARKER)

    def _enc(self, text: str) -> list[int]:
        return list(self.tok.encode(text, add_special_tokens=False)) if text else []

    def render(self, window: list[Attempt]) -> list[int]:
        sep = "\n" + bt.RL_MARKER + "\n"
        return self._enc(sep.join("\n".join(a.steps) for a in window))

    def opener(self, first: bool) -> list[int]:
        return [] if first else self._enc(bt.RL_PROMPT_SUFFIX)

    def clean(self, text: str) -> str:
        """The text without the end-of-sequence marker (it must not end the turn in a later context)."""
        for t in {getattr(self.tok, "eos_token", None), getattr(self.tok, "pad_token", None)} - {None, ""}:
            text = text.replace(t, "")
        return text

    def kept(self, text: str) -> list[int]:
        return self._enc(self.clean(text))

    def parse(self, last: Attempt | None, gen_text: str) -> Attempt:
        gen_text = self.clean(gen_text)
        if last is None:  # strictly too: numbered steps rising from 1, nothing before the first
            return Attempt(bt.parse_text(gen_text).attempt)
        t = bt.parse_text("\n".join(last.steps) + bt.RL_PROMPT_SUFFIX + gen_text)
        return Attempt(t.attempts()[-1])

    def exact_j(self, window: list[Attempt], first: bool, gen_text: str) -> None:
        return None  # no exact J for text

    def key(self, attempt: Attempt, answer_label) -> tuple[str | None, bool]:
        return answer_label, None  # wrong-ness comes from the forced answer's grade


def format_for(task, problem, tok):
    """The format adapter of a task in the backtracking format (``problem``: None where only the
    markers and the rendering are needed); ValueError for a task that is not in it."""
    from mrt.tasks.tree import TreeTask

    if isinstance(task, TreeTask):
        if task.format != "backtrack":
            raise ValueError("linearized evaluation needs the tree world's format=backtrack")
        return WordsFormat(task, problem, tok)
    if getattr(task, "format", None) == "backtrack":
        return TextFormat(task, problem, tok)
    raise ValueError(
        f"task {task.name!r} is not in the backtracking format: use --task tree, or a text task with --knobs format=backtrack"
    )
