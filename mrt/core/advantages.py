"""Rewards, advantages and trace filters of the training algorithms (pure functions, no I/O).

Rows are laid out group by group: ``rewards[g * G : (g + 1) * G]`` are the ``G`` rollouts of
prompt ``g`` (TRL's layout). Every function takes and returns plain Python lists so that the
arithmetic can be checked by hand; the trainer turns them into tensors.

Forms (also in docs/training.md):

* **GRPO** — ``A_i = (R_i - mean_G R) / (std_G R + eps)`` (``scale=False`` drops the division).
* **Length penalty** — ``R_i = 1[correct_i] - coef * L_i / L_max`` (``L_i`` completion tokens).
* **MRT (termination baseline)** — half of each group is force-terminated at a shared prefix,
  half continues. ``b = mean of R over the terminated rows``. Two forms (``form``):
  ``"outcome+progress"`` (default): ``A_i = (R_i - mean_G R) + alpha * (R_i - b)``, the paper's
  objective ``l_FT + alpha * progress``: GRPO's outcome advantage plus the progress a rollout
  makes over answering at the prefix, which is zero on average for the terminated half and
  ``J(continue) - J(stop now)`` for the continuing half; ``"termination"``: ``A_i = R_i - b``, the
  authors' RL README (``A = R - R_termination``: the group mean replaced by the termination
  baseline). Either is then divided by the reward std of the group (``scale="group"``) or of
  the whole batch (``"batch"``), or not (``"none"``).
* **MRT dense** — the tokens of episode ``j`` get ``A_outcome + alpha * (J_j - J_{j-1})`` with
  ``J_0 = J(x, empty)``; tokens after the last episode end (the answer) get ``A_outcome``.
* **STaR** — keep correct traces; kept rows get the advantage ``T / T_kept`` (all completion
  tokens of the batch over the kept ones) and the rest 0, so that under the token-mean loss
  (``loss_type="dapo"``) the update is the supervised loss averaged over the kept tokens: its
  size no longer depends on how many traces were kept (:func:`kept_advantages`).
* **MRT-STaR** — see :func:`mrt_star_keep`.
"""

from __future__ import annotations

import math

EPS = 1e-4


def _mean(xs):
    return sum(xs) / len(xs) if xs else 0.0


def _std(xs):
    """Sample standard deviation (n - 1), as torch.std and TRL use; 0 for a single value."""
    if len(xs) < 2:
        return 0.0
    m = _mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def _groups(xs: list, size: int):
    if size < 1 or len(xs) % size:
        raise ValueError(f"{len(xs)} rows do not split into groups of {size}")
    return [xs[i : i + size] for i in range(0, len(xs), size)]


def grpo_advantages(rewards: list[float], group_size: int, scale: bool = True) -> list[float]:
    out = []
    for g in _groups(rewards, group_size):
        m, s = _mean(g), _std(g)
        out += [(r - m) / (s + EPS) if scale else r - m for r in g]
    return out


def length_penalty_rewards(correct: list[bool], lengths: list[int], max_length: int, coef: float) -> list[float]:
    if max_length < 1:
        raise ValueError("max_length must be >= 1")
    return [float(c) - coef * min(n, max_length) / max_length for c, n in zip(correct, lengths)]


MRT_FORMS = ("outcome+progress", "termination")
SCALES = ("group", "batch", "none")


def termination_baseline_advantages(
    rewards: list[float],
    terminated: list[bool],
    group_size: int,
    alpha: float = 1.0,
    scale: str = "group",
    form: str = "outcome+progress",
) -> list[float]:
    if form not in MRT_FORMS:
        raise ValueError(f"MRT advantage form must be one of {MRT_FORMS}, got {form!r}")
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    batch_std = _std(rewards)
    out = []
    for g, t in zip(_groups(rewards, group_size), _groups(terminated, group_size)):
        term = [r for r, ti in zip(g, t) if ti]
        if not term:
            raise ValueError("each MRT group needs at least one force-terminated rollout")
        b, m = _mean(term), _mean(g)
        s = _std(g) if scale == "group" else batch_std
        for r in g:
            a = (r - m) + alpha * (r - b) if form == "outcome+progress" else r - b
            out.append(a / (s + EPS) if scale != "none" else a)
    return out


def progress_from_j(j: list[float]) -> list[float]:
    """Progress of each episode from J after 0, 1, ..., k episodes (``len(j) == k + 1``)."""
    return [j[i] - j[i - 1] for i in range(1, len(j))]


def dense_token_advantages(
    outcome: float, episode_ends: list[int], progress: list[float], length: int, alpha: float
) -> list[float]:
    """Per-token advantages of one completion of ``length`` tokens.

    ``episode_ends[j]`` is the token offset (within the completion) where episode ``j`` ends;
    ``progress[j]`` its progress. Tokens after the last end get the outcome advantage alone.
    """
    if len(episode_ends) != len(progress):
        raise ValueError("one progress value per episode end is needed")
    adv = [outcome] * length
    start = 0
    for end, p in zip(episode_ends, progress):
        end = min(end, length)
        for t in range(start, end):
            adv[t] = outcome + alpha * p
        start = max(start, end)
    return adv


def star_keep(correct: list[bool]) -> list[bool]:
    return [bool(c) for c in correct]


def mrt_star_keep(
    correct: list[bool], j_curves: list[list[float]], group_size: int, min_final_j: float = 0.5
) -> list[bool]:
    """The MRT-STaR filter, per group of rollouts of one problem.

    A rollout is a *candidate* when its own final answer is correct and the meta-prover's J
    after its last thinking episode (J(empty) when it has none) is at least ``min_final_j`` (it
    is followed by a correct answer once thinking is terminated). Kept: every candidate with no
    episode (it spent no episode, so wasted none), and among the candidates with episodes those
    whose mean progress per episode, ``(J_k - J_0) / k``, equals the group's best (ties all
    kept). So among correct traces, the filter prefers those that got from J(empty) to a
    confident answer in the fewest episodes, i.e. with no wasted episodes.
    """
    keep = []
    for c_g, j_g in zip(_groups(list(correct), group_size), _groups(list(j_curves), group_size)):
        scores = []  # None: not a candidate; inf: a candidate with no episode
        for c, j in zip(c_g, j_g):
            k = len(j) - 1
            ok = bool(c) and len(j) > 0 and j[-1] >= min_final_j
            scores.append(((j[-1] - j[0]) / k if k > 0 else math.inf) if ok else None)
        finite = [s for s in scores if s is not None and s != math.inf]
        best = max(finite) if finite else None
        keep += [s is not None and (s == math.inf or abs(s - best) < 1e-9) for s in scores]
    return keep


def kept_advantages(
    keep: list[bool], lengths: list[int] | None = None, total: tuple[int, int] | None = None
) -> list[float]:
    """Advantages of kept rows (STaR, MRT-STaR): ``T / T_kept`` on kept rows, 0 elsewhere, with
    ``T`` the completion tokens of all rows and ``T_kept`` those of the kept rows (``lengths``:
    the rows' completion tokens; ``total``: (T, T_kept) over the whole batch of every process
    when these rows are one process's share). Without ``lengths``: 1 on kept rows."""
    if lengths is None:
        return [1.0 if k else 0.0 for k in keep]
    t_all, t_kept = total if total is not None else (sum(lengths), sum(n for n, k in zip(lengths, keep) if k))
    w = t_all / t_kept if t_kept else 0.0
    return [w if k else 0.0 for k in keep]


# --------------------------------------------------------------------------- anytime reasoning


def budget_prior(spec: str, m: int) -> list[float]:
    """The prior p_1..p_m over a grid of m budgets: ``uniform``, ``linear`` (p_j proportional to
    j) or m comma-separated probabilities. Anything that is not a distribution over the m
    budgets raises ValueError saying why."""
    if m < 1:
        raise ValueError(f"the budget grid needs at least one budget, got {m}")
    spec = str(spec).strip()
    if spec == "uniform":
        return [1.0 / m] * m
    if spec == "linear":
        tot = m * (m + 1) / 2
        return [j / tot for j in range(1, m + 1)]
    try:
        ps = [float(x) for x in spec.split(",")]
    except ValueError:
        raise ValueError(
            f"budget prior {spec!r}: expected uniform, linear or {m} probabilities separated by commas"
        ) from None
    if len(ps) != m:
        raise ValueError(f"budget prior {spec!r} has {len(ps)} probabilities for a grid of {m} budgets")
    if any(not math.isfinite(p) or p < 0 for p in ps) or abs(sum(ps) - 1.0) > 1e-6:
        raise ValueError(
            f"budget prior {spec!r} is not a distribution: probabilities must be >= 0 and sum to 1 (sum {sum(ps):g})"
        )
    return ps


def budget_grid(max_budget: int, m: int) -> list[int]:
    """m budgets evenly spaced up to ``max_budget``: b_j = round(j * B / m), j = 1..m."""
    if max_budget < m:
        raise ValueError(f"a budget grid of {m} needs a largest budget of at least {m} tokens, got {max_budget}")
    return [round(j * max_budget / m) for j in range(1, m + 1)]


def brpo_returns(rewards: list[float], prior: list[float]) -> list[float]:
    """Reward-to-go of each thinking segment: G_j = sum_{k >= j} p_k r_k (j = 1..m)."""
    out, acc = [0.0] * len(rewards), 0.0
    for j in range(len(rewards) - 1, -1, -1):
        acc += prior[j] * rewards[j]
        out[j] = acc
    return out


def brpo_segment_advantages(
    rewards: list[list[float]], prior: list[float], group_size: int, discount: float = 2.0
) -> list[list[float]]:
    """BRPO advantages of the m thinking segments of each rollout (AnytimeReasoner's
    ``brpo.py``; see docs/training.md). ``rewards[i][j]``: the mean score of rollout i's
    summaries at budget b_j.

    Segment s (thinking tokens in (b_{s-1}, b_s], 0-indexed) is credited with the score still to
    come, ``G_s = sum_{k>=s} p_k r_k``, against the baseline ``(s V1_s + (m - s) V2_s) / m``:
    ``V2_s`` is the group's mean of ``G_s`` (GRPO's baseline) and ``V1_s`` the rollout's own
    earlier scores, ``prev_s * sum_{k>=s} p_k`` with ``prev_s`` their mean weighted by
    ``discount**k`` (later budgets count more; ``V1_0 = 0``). No division by a std, as theirs.
    """
    m = len(prior)
    if any(len(r) != m for r in rewards):
        raise ValueError(f"each rollout needs one reward per budget ({m})")
    returns = [brpo_returns(r, prior) for r in rewards]
    tails = [sum(prior[s:]) for s in range(m)]
    out = []
    for rg, gg in zip(_groups(rewards, group_size), _groups(returns, group_size)):
        v2 = [_mean([g[s] for g in gg]) for s in range(m)]
        for r, g in zip(rg, gg):
            row = []
            for s in range(m):
                if s == 0:
                    v1 = 0.0
                else:
                    w = [discount**k for k in range(s)]
                    v1 = sum(wk * r[k] for k, wk in enumerate(w)) / sum(w) * tails[s]
                row.append(g[s] - (s * v1 + (m - s) * v2[s]) / m)
            out.append(row)
    return out


def segment_token_advantages(
    segment_adv: list[float],
    budgets: list[int],
    think_len: int,
    length: int,
    answer_adv: float,
    skip: tuple[int, int] | None = None,
) -> list[float]:
    """Per-token advantages of a completion of ``length`` tokens: thinking token t (t < think_len)
    gets the advantage of the budget segment it falls in (b_{j-1} <= t < b_j; past b_m, the last
    segment's); the rest (termination text, answer) get ``answer_adv``."""
    out = [answer_adv] * length
    j = 0
    for t in range(min(think_len, length)):
        while j < len(budgets) - 1 and t >= budgets[j]:
            j += 1
        out[t] = segment_adv[j]
    return out


def online_rewards(correct: list[bool], j_curves: list[list[float]], alpha: float) -> list[float]:
    """mrt-online's per-trace reward: ``R = 1[correct] + alpha * sum_j r_prg(z_j)`` over the episodes
    whose J was measured (``j_curves[i]``: J(empty), then J after each of the first K episodes);
    the sum telescopes to ``J_K - J_0``."""
    return [float(c) + alpha * (sum(progress_from_j(j)) if len(j) > 1 else 0.0) for c, j in zip(correct, j_curves)]


def scaled_advantages(rewards: list[float], group_size: int, scale: str = "group") -> list[float]:
    """``R - mean_G R``, divided by the group's std (``group``), the batch's (``batch``) or not."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    if scale == "group":
        return grpo_advantages(rewards, group_size)
    centred = grpo_advantages(rewards, group_size, scale=False)
    s = _std(rewards)
    return [a / (s + EPS) for a in centred] if scale == "batch" else centred
