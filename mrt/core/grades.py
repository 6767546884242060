"""Grading one prefix's forced answers: J (with a Wilson interval), maj@k over equivalent
answers and pass@k. Pure: the task (its answer extraction, grader and answer labels) and the
completions are given; nothing is sampled or written here."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from mrt.core import metrics

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
        return {
            "episodes": self.episodes,
            "tokens": self.tokens,
            "j": self.j,
            "ci": list(self.ci),
            "answers": self.answers,
            "grades": self.grades,
            "labels": self.labels,
            "mean_logprobs": [round(x, 4) for x in self.mean_logprobs],
            "maj_at_k": {str(k): v for k, v in self.maj_at_k.items()},
            "pass_at_k": {str(k): v for k, v in self.pass_at_k.items()},
            "input_tokens": self.input_tokens,
            "answer_tokens": self.answer_tokens,
            "natural_end": self.natural_end,
        }


def grade_completions(task, problem, comps: list, ks=(1, 2, 4, 8), votes: VoteRule | None = None) -> PrefixEstimate:
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
        episodes=-1,
        tokens=-1,
        j=s / n if n else 0.0,
        ci=metrics.wilson_interval(s, n),
        answers=answers,
        grades=grades,
        mean_logprobs=lps,
        labels=labels,
        maj_at_k={k: metrics.maj_at_k(labels, grades, k, weights, tie=votes.tie) for k in ks},
        pass_at_k={k: metrics.pass_at_k(n, s, k) for k in ks},
        answer_tokens=sum(len(c.token_ids) for c in comps) / n if n else 0.0,
    )
