"""Figures of analysed traces, computed once: per-trace figures (regret and accuracy at a budget)
and the aggregates of a set of trace records that ``summary.json`` holds. Pure: records in,
numbers out. Every consumer (the analysis summary, the report, the viewer, the benchmarks)
calls these functions instead of recomputing the figures.

A trace record is one line of an analysis's ``traces.jsonl``, read as a
:class:`mrt.core.trace.TraceRecord`: ``episodes`` (each with its token ``end``), ``prefixes`` (J
after 0..k episodes, with maj@k and pass@k), ``progress``, ``correct`` and token counts
(docs/concepts.md). The functions take records or their JSON objects.
"""

from __future__ import annotations

from collections import defaultdict

from mrt.core import metrics
from mrt.core.trace import TraceRecord, as_records

REGRET_AXES = ("thinking", "authors")
EPISODE_BUDGETS = (1, 2, 3, 4, 5, 6)  # steps of the authors' majority-comparator regret
EVAL_KEYS = (
    "accuracy",
    "mean_output_tokens",
    "mean_episodes",
    "j_by_episode",
    "traces_by_episode",
    "progress_by_episode",
    "normalized_regret",
    "regret_split",
    "regret_by_curve",
    "regret_by_axis",
    "majority_regret",
    "maj_at_k",
    "accuracy_vs_tokens",
    "tokens_to_accuracy",
    "grader_failures",
    "extrapolation",
)


def _record(r) -> TraceRecord:
    return r if isinstance(r, TraceRecord) else TraceRecord.from_json(r)


def episode_ends(r: TraceRecord | dict) -> list[int]:
    """Thinking-token ends of a trace's episodes."""
    return _record(r).episode_ends


def j_curve(r: TraceRecord | dict) -> list[float]:
    """J after 0, 1, ..., k episodes of a trace."""
    return _record(r).j_curve


def trace_regret(r: TraceRecord | dict, budget: float, axis: str) -> float:
    """Normalised regret of one trace record at ``budget`` on ``axis`` (see REGRET_AXES)."""
    r = _record(r)
    js = r.j_curve
    if axis == "thinking":
        return metrics.normalized_regret(r.episode_ends, js, budget)
    if "input_tokens" not in r.prefixes[0]:
        raise ValueError(
            "these traces predate the authors' regret axis (no input_tokens per prefix); "
            "analyse them again into a new directory"
        )
    xs = metrics.authors_axis([p["input_tokens"] for p in r.prefixes], [p["answer_tokens"] for p in r.prefixes])
    return metrics.normalized_regret_authors(xs, js, budget)


def trace_regret_split(r: TraceRecord | dict, budget: float, curve: str = "interpolated") -> dict:
    """:func:`mrt.core.metrics.regret_split` of one trace (thinking-token axis)."""
    r = _record(r)
    return metrics.regret_split(r.episode_ends, r.j_curve, budget, curve)


def regret_split(records: list, budgets: list[int], curve: str = "interpolated") -> dict:
    """Per budget, the means over traces of :func:`mrt.core.metrics.regret_split`: the part of
    normalised regret before the first episode ends and after it, and regret as the answer before
    thinking (``start`` = 1 - J(empty)) minus what thinking added (``progress_area``)."""
    records = as_records(records)
    out = {}
    for c in budgets:
        parts = [trace_regret_split(r, c, curve) for r in records]
        out[str(c)] = {k: sum(p[k] for p in parts) / len(parts) for k in parts[0]}
    return out


def trace_accuracy_at(r: TraceRecord | dict, budget: float) -> float:
    """J of a trace's thinking cut at ``budget`` thinking tokens (its last episode end within it)."""
    r = _record(r)
    return metrics.j_at_budget(r.episode_ends, r.j_curve, budget)


def majority_regret(records: list, ks: list[int]) -> dict:
    """The authors' majority-comparator regret at episode budgets 1..6 (mean of per-trace
    values; traces with no comparator area skipped). Needs maj@1, 2, 4 and 8."""
    if not {1, 2, 4, 8} <= set(ks):
        return {"note": "needs maj@1, 2, 4 and 8 (--maj-k 1 2 4 8 --answers-per-prefix 8 or more)"}
    records = as_records(records)
    out = {}
    for b in EPISODE_BUDGETS:
        vals = [
            metrics.majority_regret([[p["maj_at_k"][k] for k in ("1", "2", "4", "8")] for p in r.prefixes], b)
            for r in records
        ]
        vals = [v for v in vals if v is not None]
        out[str(b)] = sum(vals) / len(vals) if vals else None
    return out


def extrapolation(records: list) -> list[dict]:
    """Mean J and extra thinking tokens after 0, 1, 2, ... budget-forcing extensions (0: the
    natural end of the traces that closed their thinking)."""
    records = as_records(records)
    ext = defaultdict(list)
    for r in records:
        for e in r.extension or []:
            ext[e["extensions"]].append((e["tokens"] - r.n_thinking_tokens, e["j"]))
    base_closed = [r.prefixes[-1]["j"] for r in records if r.closed_thinking]
    out = (
        [{"extensions": 0, "extra_tokens": 0.0, "j": sum(base_closed) / len(base_closed), "n": len(base_closed)}]
        if base_closed
        else []
    )
    out += [
        {
            "extensions": k,
            "extra_tokens": sum(t for t, _ in v) / len(v),
            "j": sum(j for _, j in v) / len(v),
            "n": len(v),
        }
        for k, v in sorted(ext.items())
    ]
    return out


def aggregate(records: list, budgets: list[int], regret_axis: str) -> dict:
    """The figures of ``summary.json`` over a set of trace records (key order as written there)."""
    records = as_records(records)
    n = len(records)
    if n == 0:
        raise ValueError("no traces to summarise")
    ks = sorted({int(k) for r in records for k in r.prefixes[-1]["maj_at_k"]})
    j_sum, j_cnt, p_sum = defaultdict(float), defaultdict(int), defaultdict(float)
    for r in records:
        for i, p in enumerate(r.prefixes):
            j_sum[i] += p["j"]
            j_cnt[i] += 1
        for i, v in enumerate(r.progress):
            p_sum[i] += v
    regret = {
        axis: {str(c): sum(trace_regret(r, c, axis) for r in records) / n for c in budgets} for axis in REGRET_AXES
    }
    max_ep = max(j_cnt)
    # accuracy vs budget is a step function that changes only at episode ends: evaluate it there
    grid = sorted({0} | {e["end"] for r in records for e in r.episodes})
    acc_curve = [sum(trace_accuracy_at(r, b) for r in records) / n for b in grid]
    acc_lin = [sum(metrics.j_interpolated(r.episode_ends, r.j_curve, b) for r in records) / n for b in grid]
    correct = sum(r.correct for r in records)
    status, grader = defaultdict(int), defaultdict(int)
    for r in records:
        status[r.status] += 1
        for kind, c in (r.grader_failures or {}).items():
            grader[kind] += c
    return {
        "n_problems": len({r.problem_id for r in records}),
        "n_traces": n,
        "accuracy": correct / n,
        "accuracy_ci": list(metrics.wilson_interval(correct, n)),
        "mean_output_tokens": sum(r.n_output_tokens for r in records) / n,
        "mean_thinking_tokens": sum(r.n_thinking_tokens for r in records) / n,
        "mean_episodes": sum(len(r.episodes) for r in records) / n,
        "trace_status": dict(status),
        "grader_failures": dict(grader),
        "j_by_episode": [j_sum[i] / j_cnt[i] for i in range(max_ep + 1)],
        "traces_by_episode": [j_cnt[i] for i in range(max_ep + 1)],
        "progress_by_episode": [p_sum[i] / j_cnt[i + 1] for i in range(max_ep)],
        "regret_axis": regret_axis,
        "normalized_regret": regret[regret_axis],
        "regret_by_axis": regret,
        "majority_regret": majority_regret(records, ks),
        "maj_at_k": {str(k): sum(r.prefixes[-1]["maj_at_k"][str(k)] for r in records) / n for k in ks},
        "pass_at_k": {str(k): sum(r.prefixes[-1]["pass_at_k"][str(k)] for r in records) / n for k in ks},
        "accuracy_vs_tokens": metrics.step_points(grid, acc_curve),
        "accuracy_vs_tokens_interpolated": {f"{t:g}": v for t, v in zip(grid, acc_lin)},
        "regret_split": regret_split(records, budgets),
        "regret_by_curve": {
            "interpolated": regret["thinking"],
            "step": {
                str(c): sum(metrics.normalized_regret_step(r.episode_ends, r.j_curve, c) for r in records) / n
                for c in budgets
            },
        },
        "forced_accuracy_at_end": acc_curve[-1],
        "tokens_to_accuracy": metrics.tokens_to_fraction(grid, acc_curve),
        "extrapolation": extrapolation(records),
    }


def eval_figures(s: dict) -> dict:
    """The figures of an analysis summary that runs are compared on (``mrt compare``, the
    benchmarks): EVAL_KEYS, plus accuracy at 1x/2x/4x the natural thinking when budget forcing ran."""
    e = {k: s[k] for k in EVAL_KEYS if k in s}
    if s.get("extrapolation"):
        e["accuracy_at_budget"] = metrics.extrapolated_accuracy(
            s["extrapolation"], s["mean_thinking_tokens"], (1, 2, 4)
        )
    return e
