"""The meta-prover: force the model to answer after a thinking prefix and estimate J by sampling.

J(x, z_{0:j}) is estimated as the fraction of ``n`` answers, sampled after the first ``j``
episodes plus the task's termination text, that the task's verifier grades correct. Only the
answer part (what the model writes after the termination text) is ever graded.
"""

from __future__ import annotations

from mrt.core.grades import PrefixEstimate, VoteRule, grade_completions
from mrt.heartbeat import ACTIVITY
from mrt.samplers.base import SamplingParams


def estimate_prefixes(sampler, task, problem, prompt_ids: list[int], thinkings: list[tuple], n: int, **kw):
    """J after 0..k episodes for each (thinking_ids, episode_ends[, closed]) of one problem, in
    one batch. ``closed``: the output ended thinking by itself, so the prefix of all its thinking
    is a natural end and gets the task's natural-end text instead of the termination text.
    Keywords as :func:`estimate_groups` (``answer_tokens``, ``temperature``, ``top_p``, ``seed``,
    ``ks``, ``include_empty``, ``votes``).

    Returns, per thinking, k+1 estimates (index 0: no thinking at all), or k without the empty
    prefix when ``include_empty`` is False.
    """
    return estimate_groups(sampler, task, [(problem, prompt_ids, thinkings)], n, **kw)[0]


def estimate_groups(
    sampler,
    task,
    groups: list[tuple],
    n: int,
    answer_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    ks=(1, 2, 4, 8),
    include_empty: bool = True,
    votes: VoteRule | None = None,
) -> list[list[list[PrefixEstimate]]]:
    """:func:`estimate_prefixes` for several problems at once, ``groups`` of ``(problem,
    prompt_ids, thinkings)``, in one sampler call (the engine serves every problem's prefixes
    together). Returns, per group, what :func:`estimate_prefixes` returns for it; with one group
    the call is exactly :func:`estimate_prefixes`'s."""
    tok = sampler.tokenizer
    prompts, where = [], []
    for g, (_, prompt_ids, thinkings) in enumerate(groups):
        for t, item in enumerate(thinkings):
            ids, ends = item[0], item[1]
            closed = bool(item[2]) if len(item) > 2 else False
            cuts = ([0] if include_empty else []) + list(ends)
            for j, cut in enumerate(cuts, start=0 if include_empty else 1):
                natural = closed and j == len(ends) and cut == len(ids) and j > 0
                prompts.append(task.forced_ids(tok, prompt_ids, ids[:cut], natural_end=natural))
                where.append((g, t, j, cut, natural))
    params = SamplingParams(
        n=n,
        max_new_tokens=answer_tokens,
        temperature=temperature,
        top_p=top_p,
        stop=tuple(task.answer_stop_texts),
        seed=seed,
    )
    comps = sampler.sample(prompts, params)
    ACTIVITY.prefixes_done(len(prompts))
    out: list[list[list[PrefixEstimate]]] = [[[] for _ in thinkings] for _, _, thinkings in groups]
    for (g, t, j, cut, natural), prompt, cs in zip(where, prompts, comps):
        est = grade_completions(task, groups[g][0], cs, ks, votes)
        est.episodes, est.tokens = j, cut
        est.input_tokens, est.natural_end = len(prompt), natural
        out[g][t].append(est)
    return out
