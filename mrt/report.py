"""Plots (PNG) and a self-contained HTML report for an analysis run."""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def make_plots(out: Path, summary: dict) -> dict[str, Path]:
    plt = _plt()
    pdir = out / "plots"
    pdir.mkdir(parents=True, exist_ok=True)
    paths = {}

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    js, counts = summary["j_by_episode"], summary["traces_by_episode"]
    a1.plot(range(len(js)), js, marker="o")
    a1.set(xlabel="episodes in prefix", ylabel="J (forced-answer success)", ylim=(0, 1.02),
           title="J by episode")
    for i, c in enumerate(counts):
        a1.annotate(str(c), (i, js[i]), textcoords="offset points", xytext=(0, 6), fontsize=7, ha="center")
    prg = summary["progress_by_episode"]
    a2.bar(range(1, len(prg) + 1), prg, color=["tab:green" if p >= 0 else "tab:red" for p in prg])
    a2.axhline(0, color="k", lw=0.6)
    a2.set(xlabel="episode", ylabel="mean progress", title="Progress by episode")
    paths["j_progress"] = _save(plt, fig, pdir / "j_progress.png")

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    labels = {"thinking": "thinking tokens, from (0, J(empty))", "authors": "authors' axis, from (0, 0)"}
    for axis, values in summary.get("regret_by_axis", {"thinking": summary["normalized_regret"]}).items():
        a1.plot([int(x) for x in values], list(values.values()), marker="o", label=labels.get(axis, axis))
    a1.set(xlabel="token budget C", ylabel="normalised regret (J* = 1)", ylim=(0, 1), title="Regret vs budget")
    a1.legend(fontsize=8)
    maj = {k: v for k, v in summary.get("majority_regret", {}).items() if k.isdigit() and v is not None}
    if maj:
        a2.plot([int(k) for k in maj], list(maj.values()), marker="s")
    a2.set(xlabel="episode budget (steps)", ylabel="regret vs majority vote", ylim=(0, 1),
           title="Majority-comparator regret (authors' form)")
    paths["regret"] = _save(plt, fig, pdir / "regret.png")

    fig, ax = plt.subplots(figsize=(5, 3.6))
    acc = summary["accuracy_vs_tokens"]
    ax.plot([int(k) for k in acc], list(acc.values()), label="forced answer at budget")
    ext = summary.get("extrapolation", [])
    if ext:
        base = summary["mean_thinking_tokens"]
        ax.plot([base + e["extra_tokens"] for e in ext], [e["j"] for e in ext], marker="^",
                label="budget forcing (extensions)")
    ax.set(xlabel="thinking tokens", ylabel="accuracy", ylim=(0, 1.02), title="Accuracy vs tokens")
    ax.legend()
    paths["accuracy_tokens"] = _save(plt, fig, pdir / "accuracy_tokens.png")

    fig, ax = plt.subplots(figsize=(5, 3.6))
    ks = [int(k) for k in summary["maj_at_k"]]
    ax.plot(ks, list(summary["maj_at_k"].values()), marker="o", label="maj@k")
    ax.plot(ks, list(summary["pass_at_k"].values()), marker="s", label="pass@k")
    ax.set(xlabel="k (forced answers at the natural end)", ylabel="score", ylim=(0, 1.02),
           xscale="log", title="maj@k and pass@k")
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.legend()
    paths["majk"] = _save(plt, fig, pdir / "majk.png")
    return paths


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{path.stem}">'


def write_report(out: Path, summary: dict, records: list[dict], n_examples: int = 4) -> Path:
    out = Path(out)
    plots = make_plots(out, summary)
    keys = ["model", "task", "knobs", "n_problems", "n_traces", "accuracy", "accuracy_ci",
            "mean_output_tokens", "mean_episodes", "trace_status", "grader_failures", "regret_axis",
            "normalized_regret", "regret_by_axis", "majority_regret", "maj_at_k", "pass_at_k", "tokens_to_accuracy", "extrapolation"]
    rows = "".join(f"<tr><th>{k}</th><td><code>{html.escape(json.dumps(summary.get(k), default=str))}"
                   "</code></td></tr>" for k in keys)
    examples = []
    for r in records[:n_examples]:
        eps = "".join(
            f"<tr><td>{i + 1}</td><td><code>{html.escape(e['text'])}</code></td>"
            f"<td>{r['prefixes'][i + 1]['j']:.2f}</td><td>{r['progress'][i]:+.2f}</td></tr>"
            for i, e in enumerate(r["episodes"]))
        examples.append(
            f"<h3>{html.escape(r['problem_id'])} / trace {r['trace']} — "
            f"{'correct' if r['correct'] else 'wrong'}, {r['n_output_tokens']} tokens</h3>"
            f"<p>J with no thinking: {r['prefixes'][0]['j']:.2f}</p>"
            f"<table><tr><th>#</th><th>episode</th><th>J after</th><th>progress</th></tr>{eps}</table>")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>MRT analysis</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto}}td,th{{border:1px solid #ccc;
padding:3px 6px;text-align:left;vertical-align:top}}table{{border-collapse:collapse}}
img{{max-width:100%}}code{{white-space:pre-wrap;word-break:break-all}}</style></head><body>
<h1>Test-time compute analysis</h1>
<p>J is the success rate of answers forced after a thinking prefix; progress is the change of J
across an episode; normalised regret at budget C is 1 - (1/C)&int;J(t)dt with J interpolated
between episode ends (on thinking tokens from (0, J(empty)), or on the MRT authors' axis from
(0, 0): see docs/concepts.md).</p>
<table>{rows}</table>
<h2>Plots</h2>{''.join(_img(p) for p in plots.values())}
<h2>Example traces</h2>{''.join(examples)}
</body></html>"""
    path = out / "report.html"
    path.write_text(page)
    return path
