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

    def to_json(self) -> dict:
        return {"episodes": self.episodes, "tokens": self.tokens, "j": self.j,
                "ci": list(self.ci), "answers": self.answers, "grades": self.grades,
                "mean_logprobs": [round(x, 4) for x in self.mean_logprobs],
                "maj_at_k": {str(k): v for k, v in self.maj_at_k.items()},
                "pass_at_k": {str(k): v for k, v in self.pass_at_k.items()}}


def find_subsequence(seq: list[int], sub: list[int], start: int = 0) -> int:
    """Index of the first occurrence of ``sub`` in ``seq`` at or after ``start`` (-1 if none)."""
    n = len(sub)
    for i in range(start, len(seq) - n + 1):
        if seq[i:i + n] == sub:
            return i
    return -1


def grade_completions(task, problem, comps: list[Completion], ks=(1, 2, 4, 8)) -> PrefixEstimate:
    answers, grades = [], []
    for c in comps:
        try:
            a = task.extract_answer(c.text)
            ok = bool(task.grade(problem, a))
        except Exception as e:  # a grader that chokes counts the answer as wrong, never the run
            log.warning("grading failed on problem %s: %s", problem.id, e)
            a, ok = None, False
        answers.append(a)
        grades.append(ok)
    n, s = len(grades), sum(grades)
    ks = [k for k in ks if k <= n]
    return PrefixEstimate(
        episodes=-1, tokens=-1, j=s / n if n else 0.0, ci=metrics.wilson_interval(s, n),
        answers=answers, grades=grades, mean_logprobs=[c.mean_logprob for c in comps],
        maj_at_k={k: metrics.maj_at_k(answers, grades, k) for k in ks},
        pass_at_k={k: metrics.pass_at_k(n, s, k) for k in ks})


def estimate_prefixes(sampler, task, problem, prompt_ids: list[int],
                      thinkings: list[tuple[list[int], list[int]]], n: int, answer_tokens: int,
                      temperature: float = 1.0, top_p: float = 1.0, seed: int = 0,
                      ks=(1, 2, 4, 8), include_empty: bool = True) -> list[list[PrefixEstimate]]:
    """J after 0..k episodes for each (thinking_ids, episode_ends) of one problem, in one batch.

    Returns, per thinking, k+1 estimates (index 0: no thinking at all), or k without the empty
    prefix when ``include_empty`` is False.
    """
    tok = sampler.tokenizer
    prompts, where = [], []
    for t, (ids, ends) in enumerate(thinkings):
        cuts = ([0] if include_empty else []) + list(ends)
        for j, cut in enumerate(cuts, start=0 if include_empty else 1):
            prompts.append(task.forced_ids(tok, prompt_ids, ids[:cut]))
            where.append((t, j, cut))
    params = SamplingParams(n=n, max_new_tokens=answer_tokens, temperature=temperature, top_p=top_p,
                            stop=tuple(task.answer_stop_texts), seed=seed)
    comps = sampler.sample(prompts, params)
    out: list[list[PrefixEstimate]] = [[] for _ in thinkings]
    for (t, j, cut), cs in zip(where, comps):
        est = grade_completions(task, problem, cs, ks)
        est.episodes, est.tokens = j, cut
        out[t].append(est)
    return out
