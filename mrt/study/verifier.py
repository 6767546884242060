"""An outcome verifier and best-of-N search under a token budget (the verifier-based search arm).

The verifier is the base model with a scalar value head
(``AutoModelForSequenceClassification``, one logit read at the last token), trained with
binary cross-entropy on the base policy's own rollouts, labelled 1/0 by the task's grader. It
trains with transformers' ``Trainer``. At test time it scores N rollouts of the base policy:

* best-of-N keeps the rollout with the highest score;
* verifier-weighted majority sums the scores of the rollouts that give each answer and keeps
  the answer with the largest sum;
* maj@N (no verifier) and pass@N (an oracle verifier) are reported beside them.

The budget of best-of-N is its sampled tokens: N times the mean rollout length.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from mrt.samplers.base import SamplingParams
from mrt.value_head import score_sequences, train_value_head


@dataclass
class Rollout:
    prompt: list[int]
    output: list[int]
    answer: str | None
    correct: bool


def sample_rollouts(
    sampler, task, problems, n: int, max_new_tokens: int, temperature: float = 1.0, seed: int = 0
) -> list[list[Rollout]]:
    """``n`` rollouts of each problem, graded on their answer part."""
    tok = sampler.tokenizer
    prompts = [task.prompt_ids(p, tok) for p in problems]
    comps = sampler.sample(
        prompts, SamplingParams(n=n, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
    )
    out = []
    for p, prompt, cs in zip(problems, prompts, comps):
        rows = []
        for c in cs:
            answer, ok = task.grade_answer_ids(p, task.split_output(c.token_ids, tok)[1], tok)
            rows.append(Rollout(prompt, list(c.token_ids), answer, ok))
        out.append(rows)
    return out


def train_verifier(
    base_model: str,
    rollouts: list[Rollout],
    out: str | Path,
    steps: int = 200,
    batch_size: int = 32,
    learning_rate: float = 3e-4,
    seed: int = 0,
    threads: int = 0,
):
    """Train the value-head verifier on labelled rollouts; saves it to ``out``; returns the model.

    A finished verifier in ``out`` (its weights written) is loaded instead of retrained.
    """
    from mrt.rundir import has_weights

    if not has_weights(out) and (not rollouts or len({r.correct for r in rollouts}) < 2):
        raise ValueError("the verifier needs both correct and wrong rollouts to learn from")
    return train_value_head(
        base_model,
        [(r.prompt + r.output, float(r.correct)) for r in rollouts],
        out,
        steps=steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        threads=threads,
    )


def score(model, tok, rollouts: list[Rollout], batch_size: int = 64) -> list[float]:
    """P(correct) of each rollout under the verifier."""
    return score_sequences(model, tok, [r.prompt + r.output for r in rollouts], batch_size)


def verifier_accuracy(scores: list[float], labels: list[bool]) -> dict:
    """Accuracy at threshold 0.5 and ROC AUC (ties count half) of the verifier's scores."""
    acc = sum((s >= 0.5) == y for s, y in zip(scores, labels)) / len(labels)
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    auc = None
    if pos and neg:
        auc = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg) / (len(pos) * len(neg))
    return {"accuracy": acc, "auc": auc, "n": len(labels), "positive_fraction": len(pos) / len(labels)}


def select(rollouts: list[Rollout], scores: list[float], how: str) -> bool:
    """Is the answer chosen from these rollouts correct? ``how``: best (best-of-N),
    weighted (verifier-weighted majority), majority (plain votes) or oracle (pass@N)."""
    if how == "oracle":
        return any(r.correct for r in rollouts)
    if how == "best":
        return rollouts[max(range(len(rollouts)), key=lambda i: scores[i])].correct
    votes: dict[str, float] = {}
    right: dict[str, bool] = {}
    for r, s in zip(rollouts, scores):
        if r.answer is None:
            continue
        votes[r.answer] = votes.get(r.answer, 0.0) + (s if how == "weighted" else 1.0)
        right[r.answer] = r.correct
    if not votes:
        return False
    top = max(votes.values())
    winners = [a for a, v in votes.items() if v == top]
    return right[sorted(winners)[0]]  # ties: a fixed choice


def best_of_n_curve(
    per_problem: list[list[Rollout]], scores: list[list[float]], ns: list[int], draws: int = 8, seed: int = 0
) -> list[dict]:
    """Accuracy of each selection rule at each N, averaged over ``draws`` random subsets of N of
    each problem's rollouts; ``tokens``: mean sampled tokens per problem at that N."""
    rng = random.Random(seed)
    total = max(len(r) for r in per_problem)
    rows = []
    for n in ns:
        if n > total:
            raise ValueError(f"N={n} needs at least {n} rollouts per problem, have {total}")
        acc = {h: 0.0 for h in ("best", "weighted", "majority", "oracle")}
        tokens = 0.0
        for rs, ss in zip(per_problem, scores):
            for _ in range(draws):
                idx = rng.sample(range(len(rs)), n)
                sub, sc = [rs[i] for i in idx], [ss[i] for i in idx]
                tokens += sum(len(r.output) for r in sub) / draws
                for h in acc:
                    acc[h] += select(sub, sc, h) / draws
        k = len(per_problem)
        rows.append({"n": n, "tokens": tokens / k, **{h: v / k for h, v in acc.items()}})
    return rows
