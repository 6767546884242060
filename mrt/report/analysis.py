"""Plots (PNG) and a self-contained HTML report for an analysis run: the headline figures first
(each to the precision its interval supports, with a one-line definition), then plots that state
how many traces stand behind each point, then the trace viewer (:mod:`mrt.viewer`).

``mrt report RUN_DIR`` writes the page again from a run's ``summary.json`` and ``traces.jsonl``.
"""

from __future__ import annotations

import base64
import html
import json
import math
import random
from pathlib import Path

from mrt.core.trace import TraceRecord, as_records
from mrt.rundir import read_jsonl_whole, write_atomic

CONCEPTS = Path(__file__).resolve().parents[2] / "docs" / "concepts.md"
SUMMARY_KEYS = (
    "accuracy",
    "accuracy_ci",
    "n_traces",
    "n_problems",
    "j_by_episode",
    "traces_by_episode",
    "progress_by_episode",
    "normalized_regret",
    "accuracy_vs_tokens",
    "tokens_to_accuracy",
    "maj_at_k",
    "pass_at_k",
)
RECORD_KEYS = ("problem_id", "trace", "output", "correct", "n_output_tokens", "episodes", "prefixes", "progress")


class ReportError(ValueError):
    pass


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(plt, fig, path: Path) -> Path:
    from mrt.rundir import atomic_path

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return path


def min_traces(n_traces: int) -> int:
    """An episode's mean J is plotted only where at least this many traces reach it."""
    return max(10, math.ceil(0.05 * n_traces))


def fmt(x: float, lo: float | None = None, hi: float | None = None) -> str:
    """``x`` to the precision its interval supports (one significant digit of the half-width)."""
    if lo is None or hi is None or hi <= lo:
        return f"{x:.3f}"
    d = min(4, max(1, -math.floor(math.log10((hi - lo) / 2))))
    return f"{x:.{d}f} [{lo:.{d}f}, {hi:.{d}f}]"


def bootstrap_regret(records: list, budgets: list[int], reps: int = 1000, seed: int = 0) -> dict:
    """Mean per-trace regret (thinking axis) at each budget with a 95% bootstrap interval over
    problems (a problem's traces are resampled together)."""
    from mrt.core.figures import trace_regret

    by_p: dict[str, list[TraceRecord]] = {}
    for r in as_records(records):
        by_p.setdefault(r.problem_id, []).append(r)
    probs = list(by_p)
    vals = {b: {p: [trace_regret(r, b, "thinking") for r in by_p[p]] for p in probs} for b in budgets}
    rng = random.Random(seed)
    draws = [[rng.choice(probs) for _ in probs] for _ in range(reps)]
    out = {}
    for b in budgets:

        def mean(ps, b=b):
            xs = [x for p in ps for x in vals[b][p]]
            return sum(xs) / len(xs)

        boot = sorted(mean(d) for d in draws)
        out[str(b)] = {"mean": mean(probs), "ci": [boot[int(0.025 * reps)], boot[int(0.975 * reps) - 1]]}
    return out


def check_run(summary: dict, records: list, where: str = "this run") -> None:
    """A clear error for a run from an older version or without results (not a broken page)."""
    missing = [k for k in SUMMARY_KEYS if k not in summary]
    if missing:
        raise ReportError(
            f"{where}: summary.json lacks {', '.join(missing)} (written by an older mrt?); "
            "rerun mrt analyze into a new directory"
        )
    if not records:
        raise ReportError(f"{where}: traces.jsonl holds no trace")
    first = records[0].to_json() if isinstance(records[0], TraceRecord) else records[0]
    bad = [k for k in RECORD_KEYS if k not in first]
    if bad:
        raise ReportError(
            f"{where}: traces.jsonl records lack {', '.join(bad)} (written by an older mrt?); "
            "rerun mrt analyze into a new directory"
        )


def load_run_dir(path) -> tuple[dict, list[TraceRecord]]:
    """``summary.json`` and the trace records of ``traces.jsonl`` of an analysis directory."""
    p = Path(path)
    if not (p / "summary.json").is_file() or not (p / "traces.jsonl").is_file():
        raise ReportError(
            f"{p} holds no finished analysis (summary.json and traces.jsonl); "
            "run mrt analyze --out there first, or point at a training run's eval/ directory"
        )
    summary = json.loads((p / "summary.json").read_text())
    rows, bad = read_jsonl_whole(p / "traces.jsonl")  # a torn last line (a run in progress) is left out
    if bad:
        import logging

        logging.getLogger(__name__).warning(
            "%s: %d torn or malformed line(s) left out (line %s)", p / "traces.jsonl", len(bad), bad[0]
        )
    check_run(summary, [r for _, r in rows], str(p))
    try:
        records = [TraceRecord.from_json(r, f"{p / 'traces.jsonl'}:{n}") for n, r in rows]
    except ValueError as e:
        raise ReportError(str(e)) from None
    return summary, records


def make_plots(out: Path, summary: dict, records: list | None = None, regret_ci: dict | None = None) -> dict[str, Path]:
    plt = pyplot()
    pdir = out / "plots"
    pdir.mkdir(parents=True, exist_ok=True)
    paths = {}
    n, T = summary["n_traces"], min_traces(summary["n_traces"])

    # J and progress by episode, only where >= T traces reach the episode; counts shown
    js, counts, prg = summary["j_by_episode"], summary["traces_by_episode"], summary["progress_by_episode"]
    shown = sum(c >= T for c in counts)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    a1.plot(range(shown), js[:shown], marker="o", color="tab:blue")
    a1.set(
        xlabel="episodes in the prefix",
        ylabel="mean J (forced-answer success)",
        ylim=(0, 1.02),
        title=f"J by episode (episodes reached by ≥ {T} traces)",
    )
    tw = a1.twinx()
    tw.bar(range(shown), counts[:shown], alpha=0.15, color="gray")
    tw.set_ylabel("traces reaching the episode", color="gray")
    a1.set_zorder(tw.get_zorder() + 1)
    a1.patch.set_visible(False)
    p = prg[: max(0, shown - 1)]
    a2.bar(range(1, len(p) + 1), p, color=["tab:green" if x >= 0 else "tab:red" for x in p])
    for i, c in enumerate(counts[1:shown], 1):
        a2.annotate(
            f"n={c}",
            (i, 0),
            textcoords="offset points",
            xytext=(0, -11 if p[i - 1] >= 0 else 4),
            fontsize=7,
            ha="center",
            color="gray",
        )
    a2.axhline(0, color="k", lw=0.6)
    a2.set(xlabel="episode", ylabel="mean progress (ΔJ)", title="Progress by episode")
    if shown < len(counts):
        fig.text(
            0.01,
            0.01,
            f"{len(counts) - shown} later episodes reached by < {T} of {n} traces are left out (summary.json has them)",
            fontsize=7,
            color="gray",
        )
    paths["j_progress"] = save_figure(plt, fig, pdir / "j_progress.png")

    # J against thinking tokens: each trace faint, the mean (accuracy at budget) bold
    fig, ax = plt.subplots(figsize=(6, 3.8))
    rng = random.Random(0)
    sample = rng.sample(records, min(len(records), 200)) if records else []
    for r in sample:
        xs = [0] + r.episode_ends
        ys = r.j_curve
        ax.step(xs, ys, where="post", color="tab:blue", alpha=0.06, lw=0.8)
    acc = sorted((int(k), v) for k, v in summary["accuracy_vs_tokens"].items())
    ax.step(
        [a for a, _ in acc],
        [b for _, b in acc],
        where="post",
        color="tab:blue",
        lw=2.2,
        label=f"mean over {n} traces (J at the last episode end within the budget)",
    )
    ext = summary.get("extrapolation") or []
    if ext:
        base = summary.get("mean_thinking_tokens", 0)
        ax.plot(
            [base + e["extra_tokens"] for e in ext],
            [e["j"] for e in ext],
            marker="^",
            color="tab:orange",
            label="budget forcing past the natural end",
        )
    ax.set(
        xlabel="thinking tokens",
        ylabel="J",
        ylim=(-0.02, 1.02),
        title=f"J against thinking tokens ({len(sample)} traces drawn faint)",
    )
    ax.legend(fontsize=7, loc="lower right")
    paths["j_tokens"] = save_figure(plt, fig, pdir / "j_tokens.png")

    # regret vs budget with intervals
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    if regret_ci:
        bs = [int(b) for b in regret_ci]
        m = [regret_ci[b]["mean"] for b in regret_ci]
        lo = [v["mean"] - v["ci"][0] for v in regret_ci.values()]
        hi = [v["ci"][1] - v["mean"] for v in regret_ci.values()]
        a1.errorbar(bs, m, yerr=[lo, hi], marker="o", capsize=3, label="thinking tokens, from (0, J(empty)); 95% CI")
    authors = summary.get("regret_by_axis", {}).get("authors")
    if authors:
        a1.plot(
            [int(x) for x in authors],
            list(authors.values()),
            marker="s",
            ls="--",
            alpha=0.7,
            label="authors' axis, from (0, 0)",
        )
    a1.set(
        xlabel="token budget C",
        ylabel="normalised regret (J* = 1)",
        ylim=(0, 1),
        title=f"Regret vs budget ({n} traces, {summary['n_problems']} problems)",
    )
    a1.legend(fontsize=7)
    maj = {k: v for k, v in summary.get("majority_regret", {}).items() if k.isdigit() and v is not None}
    if maj:
        a2.plot([int(k) for k in maj], list(maj.values()), marker="s")
    a2.set(
        xlabel="episode budget (steps)",
        ylabel="regret vs majority vote",
        ylim=(0, 1),
        title="Majority-comparator regret (authors' form)",
    )
    paths["regret"] = save_figure(plt, fig, pdir / "regret.png")

    fig, ax = plt.subplots(figsize=(5, 3.6))
    ks = [int(k) for k in summary["maj_at_k"]]
    ax.plot(ks, list(summary["maj_at_k"].values()), marker="o", label="maj@k")
    ax.plot(ks, list(summary["pass_at_k"].values()), marker="s", label="pass@k")
    ax.set(
        xlabel="k (forced answers at the natural end)",
        ylabel="score",
        ylim=(0, 1.02),
        xscale="log",
        title=f"maj@k and pass@k ({n} traces)",
    )
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.legend()
    paths["majk"] = save_figure(plt, fig, pdir / "majk.png")

    if summary.get("accuracy_vs_tokens_interpolated"):
        fig, ax = plt.subplots(figsize=(5, 3.6))
        lin = summary["accuracy_vs_tokens_interpolated"]
        ax.plot([float(t) for t in lin], list(lin.values()), label="interpolated (the regret's curve)")
        step = summary["accuracy_vs_tokens"]
        ts = [float(t) for t in step] + [max(float(t) for t in lin)]
        ax.step(ts, list(step.values()) + [list(step.values())[-1]], where="post", label="step (answer forced at t)")
        ax.set(
            xlabel="thinking tokens", ylabel="mean J", ylim=(0, 1.02), title=f"accuracy vs thinking tokens ({n} traces)"
        )
        ax.legend(fontsize=8)
        paths["curves"] = save_figure(plt, fig, pdir / "accuracy_curves.png")
    return paths


def img_tag(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{path.stem}">'


def _concepts_link(label: str = "definitions") -> str:
    if not CONCEPTS.exists():  # an installed package without the repository's docs
        return f"{label}: docs/concepts.md"
    return f'<a href="{html.escape(CONCEPTS.as_uri())}" title="docs/concepts.md">{label}</a>'


def headline(summary: dict, records: list, regret_ci: dict) -> list[dict]:
    """The few numbers a reader wants first: [{name, value, definition, anchor}]."""
    acc, (lo, hi) = summary["accuracy"], summary["accuracy_ci"]
    out = [
        {
            "name": "Accuracy",
            "value": fmt(acc, lo, hi),
            "definition": f"answers graded correct at the natural end of thinking, over {summary['n_traces']} "
            f"traces of {summary['n_problems']} problems (95% Wilson interval)",
            "anchor": "measurement",
        }
    ]
    for b, v in regret_ci.items():
        out.append(
            {
                "name": f"Regret at C = {b}",
                "value": fmt(v["mean"], *v["ci"]),
                "definition": f"1 − (1/C)∫J over the first {b} thinking tokens (J* = 1; lower is better; "
                "95% bootstrap interval over problems)",
                "anchor": "regret",
            }
        )
    split = summary.get("regret_split") or {}
    mid = list(split)[len(split) // 2] if split else None
    if mid is not None:
        sp = split[mid]
        out.append(
            {
                "name": f"Regret at C = {mid}, split",
                "value": f"{sp['start']:.3f} − {sp['progress_area']:.3f}",
                "definition": "the answer before thinking (1 − J(empty)) minus what thinking added (the area "
                f"between the curve and its start, over C); by time: {sp['before_first_end']:.3f} before the first "
                f"episode ends, {sp['after_first_end']:.3f} after it",
                "anchor": "regret-split",
            }
        )
    t90 = (summary.get("tokens_to_accuracy") or {}).get("0.9")
    if t90:
        out.append(
            {
                "name": "Tokens to 90% of final accuracy",
                "value": f"{t90['tokens']:,} (→ {t90['accuracy']:.2f})",
                "definition": "thinking-token budget at which accuracy at budget first reaches 90% of its "
                "final value (shown after the arrow)",
                "anchor": "token-efficiency",
            }
        )
    j0 = [r.prefixes[0]["j"] for r in records]
    j1 = [r.prefixes[-1]["j"] for r in records]
    m0, m1 = sum(j0) / len(j0), sum(j1) / len(j1)
    d = m1 - m0
    se = math.sqrt(sum((a - b - d) ** 2 for a, b in zip(j1, j0)) / max(1, len(j0) - 1) / len(j0))
    delta = f" (Δ {fmt(d, d - 1.96 * se, d + 1.96 * se)})" if se > 0 else ""
    out.append(
        {
            "name": "J(empty) → J(end)",
            "value": f"{m0:.2f} → {m1:.2f}{delta}",
            "definition": "mean success of forced answers with no thinking, and after all of it; "
            "the difference is the progress the thinking made",
            "anchor": "progress",
        }
    )
    return out


def _headline_html(items: list[dict]) -> str:
    cards = "".join(
        f'<div class="card"><div class="name">{html.escape(h["name"])}</div>'
        f'<div class="value">{html.escape(h["value"])}</div>'
        f'<div class="def">{html.escape(h["definition"])} · {_concepts_link()}</div></div>'
        for h in items
    )
    return f'<div class="headline">{cards}</div>'


PAGE_CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:auto;padding:0 12px;color:#222}
.headline{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));gap:10px;margin:12px 0}
.card{border:1px solid #ddd;border-radius:8px;padding:10px;background:#fcfcfc}
.card .name{font-size:13px;color:#555}.card .value{font-size:22px;font-weight:600;margin:4px 0}
.card .def{font-size:12px;color:#666}img{max-width:100%}
details{margin:8px 0}td,th{border:1px solid #ddd;padding:2px 6px;text-align:left}table{border-collapse:collapse}
h2{margin-top:28px}"""


def page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{PAGE_CSS}</style></head>'
        f"<body>{body}</body></html>"
    )


def write_report(out: Path, summary: dict, records: list) -> Path:
    from mrt.report.viewer import trace_rows, viewer_html

    out = Path(out)
    check_run(summary, records, str(out))
    records = as_records(records)
    budgets = [int(b) for b in summary["normalized_regret"]]
    regret_ci = bootstrap_regret(records, budgets)
    plots = make_plots(out, summary, records, regret_ci)
    heads = headline(summary, records, regret_ci)
    mid = budgets[len(budgets) // 2] if budgets else None
    settings = "".join(
        f"<tr><th>{html.escape(k)}</th><td><code>{html.escape(json.dumps(summary.get(k), default=str))}"
        "</code></td></tr>"
        for k in (
            "model",
            "task",
            "knobs",
            "mean_output_tokens",
            "mean_episodes",
            "trace_status",
            "grader_failures",
            "maj_at_k",
            "pass_at_k",
            "majority_regret",
            "regret_split",
            "regret_by_curve",
            "tokens_to_accuracy",
        )
    )
    body = (
        f"<h1>Test-time compute: {html.escape(str(summary.get('task', '')))} · "
        f"{html.escape(Path(str(summary.get('model', ''))).name)}</h1>"
        f"{_headline_html(heads)}"
        "<h2>Plots</h2>"
        + "".join(img_tag(p) for p in plots.values())
        + f"<h2>Traces</h2><p>Click a trace to read it; click an episode for J before and after it and the "
        f"answers forced there. Regret in the list is at C = {mid}.</p>"
        + viewer_html([(out.name, trace_rows(records, mid))])
        + f"<h2>All figures</h2><details><summary>summary.json, in short</summary><table>{settings}</table>"
        "</details>"
    )
    path = out / "report.html"
    write_atomic(path, page(f"mrt analysis: {out.name}", body))
    return path


def run_card(name: str, summary: dict, train: dict | None = None, href: str = "") -> str:
    """One run's card on a front page: accuracy, regret at the middle budget split into the answer
    before thinking and what thinking added, thinking tokens, and for a trained run its steps and
    sampled tokens."""
    acc, (lo, hi) = summary["accuracy"], summary.get("accuracy_ci", [None, None])
    reg = summary.get("normalized_regret", {})
    mid = list(reg)[len(reg) // 2] if reg else None
    rows = [("accuracy", fmt(acc, lo, hi))]
    if mid is not None:
        rows.append((f"regret at C = {mid}", f"{reg[mid]:.3f}"))
        sp = (summary.get("regret_split") or {}).get(mid)
        if sp:
            rows.append(("= before thinking − thinking added", f"{sp['start']:.3f} − {sp['progress_area']:.3f}"))
    rows.append(("thinking tokens (mean)", f"{summary.get('mean_thinking_tokens', float('nan')):.1f}"))
    if train:
        rows.append(("training steps", f"{train.get('steps', '-')}"))
        rows.append(("sampled tokens", f"{train.get('sampled_tokens', 0):,}"))
    title = f'<a href="{html.escape(href)}">{html.escape(name)}</a>' if href else html.escape(name)
    cells = "".join(
        f'<div class="def">{html.escape(k)}</div><div class="value">{html.escape(v)}</div>' for k, v in rows
    )
    return f'<div class="card run"><div class="name">{title}</div>{cells}</div>'


def write_index(
    out: Path,
    links: list[tuple[str, str, str]],
    title: str = "mrt demo",
    cards: list[str] | None = None,
    plot: Path | None = None,
) -> Path:
    """A front page: one card per run (:func:`run_card`), an overlaid plot, then the links
    ``[(label, relative href, one-line note), ...]``."""
    items = "".join(
        f'<li><a href="{html.escape(h)}">{html.escape(lab)}</a> — {html.escape(note)}</li>' for lab, h, note in links
    )
    body = f"<h1>{html.escape(title)}</h1>"
    if cards:
        body += (
            '<div class="headline">' + "".join(cards) + "</div>"
            "<p>Regret is split into the answer before thinking (1 − J(empty)) and what thinking added (the "
            f"area between the curve and its start): {_concepts_link('definitions')}.</p>"
        )
    if plot is not None and Path(plot).is_file():
        body += img_tag(Path(plot))
    body += f"<h2>Reports</h2><ul>{items}</ul>"
    path = Path(out) / "index.html"
    write_atomic(path, page(title, body))
    return path


def print_summary(s: dict, out: str) -> None:
    """The headline of an analysis summary, printed by ``mrt analyze`` and ``mrt demo``."""
    print(
        f"accuracy {s['accuracy']:.3f} over {s['n_traces']} traces of {s['n_problems']} problems; "
        f"{s['mean_output_tokens']:.1f} output tokens, {s['mean_episodes']:.2f} episodes per trace"
    )
    shown = sum(c >= 0.1 * s["n_traces"] for c in s["traces_by_episode"])  # >= 10% of traces
    print(
        "J by episode:      "
        + " ".join(f"{x:.2f}" for x in s["j_by_episode"][:shown])
        + "   (episodes reached by >= 10% of traces; all in summary.json)"
    )
    print("progress by ep.:   " + " ".join(f"{x:+.2f}" for x in s["progress_by_episode"][: shown - 1]))
    print("normalised regret: " + ", ".join(f"C={c}: {v:.3f}" for c, v in s["normalized_regret"].items()))
    if s.get("regret_split"):
        print(
            "  = before thinking - made by thinking: "
            + ", ".join(f"C={c}: {v['start']:.3f} - {v['progress_area']:.3f}" for c, v in s["regret_split"].items())
        )
    print("maj@k:             " + ", ".join(f"k={k}: {v:.3f}" for k, v in s["maj_at_k"].items()))
    print(f"report: {out}/report.html")
