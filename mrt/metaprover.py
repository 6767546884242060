"""The meta-prover: force the model to answer after a thinking prefix and estimate J by sampling.

J(x, z_{0:j}) is estimated as the fraction of ``n`` answers, sampled after the first ``j``
episodes plus the task's termination text, that the task's verifier grades correct. Only the
answer part (what the model writes after the termination text) is ever graded.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from mrt import metrics
from mrt.samplers.base import Completion, SamplingParams

log = logging.getLogger(__name__)


@dataclass
class VoteRule:
    """How forced answers vote in maj@k (docs/concepts.md, conventions)."""

    tie: str = "expected"  # a tie that includes the correct answer: 1/m ("expected") or 0.5 ("authors")
    weights: str = "none"  # "none" (one vote each) or "logprob" (the authors' 2 ** mean token log-prob)

    def __post_init__(self):
        if self.tie not in metrics.TIE_RULES:
            raise ValueError(f"vote tie rule must be one of {metrics.TIE_RULES}, got {self.tie!r}")
        if self.weights not in ("none", "logprob"):
            raise ValueError(f"vote weights must be 'none' or 'logprob', got {self.weights!r}")


@dataclass
class PrefixEstimate:
    episodes: int  # number of episodes in the prefix
    tokens: int  # thinking tokens in the prefix
    j: float
    ci: tuple[float, float]
    answers: list[str | None]
    grades: list[bool]
    mean_logprobs: list[float] = field(default_factory=list)
    maj_at_k: dict[int, float] = field(default_factory=dict)
    pass_at_k: dict[int, float] = field(default_factory=dict)
    labels: list[str | None] = field(default_factory=list)  # vote labels (equivalent answers share one)
    input_tokens: int = 0  # tokens of the meta-prover's whole input (prompt + prefix + termination)
    answer_tokens: float = 0.0  # mean tokens of the sampled answers
    natural_end: bool = False  # the whole thinking of an output that ended thinking by itself

    def to_json(self) -> dict:
        return {"episodes": self.episodes, "tokens": self.tokens, "j": self.j,
                "ci": list(self.ci), "answers": self.answers, "grades": self.grades,
                "labels": self.labels, "mean_logprobs": [round(x, 4) for x in self.mean_logprobs],
                "maj_at_k": {str(k): v for k, v in self.maj_at_k.items()},
                "pass_at_k": {str(k): v for k, v in self.pass_at_k.items()},
                "input_tokens": self.input_tokens, "answer_tokens": self.answer_tokens,
                "natural_end": self.natural_end}


def find_subsequence(seq: list[int], sub: list[int], start: int = 0) -> int:
    """Index of the first occurrence of ``sub`` in ``seq`` at or after ``start`` (-1 if none)."""
    n = len(sub)
    for i in range(start, len(seq) - n + 1):
        if seq[i:i + n] == sub:
            return i
    return -1


def grade_completions(task, problem, comps: list[Completion], ks=(1, 2, 4, 8),
                      votes: VoteRule | None = None) -> PrefixEstimate:
    """J, maj@k and pass@k of the answers forced at one prefix. Equivalent answers vote together
    (``Task.answer_labels``); ``votes`` sets the tie rule and the vote weights."""
    votes = votes or VoteRule()
    answers, grades = [], []
    for c in comps:
        try:
            a = task.extract_answer(c.text)
            ok = bool(task.grade(problem, a))
        except Exception as e:  # a grader that chokes counts the answer as wrong, never the run
            log.warning("grading failed on problem %s: %.80s", problem.id, str(e))
            a, ok = None, False
        answers.append(a)
        grades.append(ok)
    labels = task.answer_labels(answers)
    lps = [c.mean_logprob for c in comps]
    weights = metrics.vote_weights(lps) if votes.weights == "logprob" else None
    n, s = len(grades), sum(grades)
    ks = [k for k in ks if k <= n]
    return PrefixEstimate(
        episodes=-1, tokens=-1, j=s / n if n else 0.0, ci=metrics.wilson_interval(s, n),
        answers=answers, grades=grades, mean_logprobs=lps, labels=labels,
        maj_at_k={k: metrics.maj_at_k(labels, grades, k, weights, tie=votes.tie) for k in ks},
        pass_at_k={k: metrics.pass_at_k(n, s, k) for k in ks},
        answer_tokens=sum(len(c.token_ids) for c in comps) / n if n else 0.0)


def estimate_prefixes(sampler, task, problem, prompt_ids: list[int],
                      thinkings: list[tuple], n: int, answer_tokens: int,
                      temperature: float = 1.0, top_p: float = 1.0, seed: int = 0,
                      ks=(1, 2, 4, 8), include_empty: bool = True,
                      votes: VoteRule | None = None) -> list[list[PrefixEstimate]]:
    """J after 0..k episodes for each (thinking_ids, episode_ends[, closed]) of one problem, in
    one batch. ``closed``: the output ended thinking by itself, so the prefix of all its thinking
    is a natural end and gets the task's natural-end text instead of the termination text.

    Returns, per thinking, k+1 estimates (index 0: no thinking at all), or k without the empty
    prefix when ``include_empty`` is False.
    """
    tok = sampler.tokenizer
    prompts, where = [], []
    for t, item in enumerate(thinkings):
        ids, ends = item[0], item[1]
        closed = bool(item[2]) if len(item) > 2 else False
        cuts = ([0] if include_empty else []) + list(ends)
        for j, cut in enumerate(cuts, start=0 if include_empty else 1):
            natural = closed and j == len(ends) and cut == len(ids) and j > 0
            prompts.append(task.forced_ids(tok, prompt_ids, ids[:cut], natural_end=natural))
            where.append((t, j, cut, natural))
    params = SamplingParams(n=n, max_new_tokens=answer_tokens, temperature=temperature, top_p=top_p,
                            stop=tuple(task.answer_stop_texts), seed=seed)
    comps = sampler.sample(prompts, params)
    out: list[list[PrefixEstimate]] = [[] for _ in thinkings]
    for (t, j, cut, natural), prompt, cs in zip(where, prompts, comps):
        est = grade_completions(task, problem, cs, ks, votes)
        est.episodes, est.tokens = j, cut
        est.input_tokens, est.natural_end = len(prompt), natural
        out[t].append(est)
    return out
