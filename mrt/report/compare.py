"""``mrt compare RUN_DIR... --out DIR``: runs side by side (a table, four plots and a page).

A run directory is either an ``mrt train`` output (its ``summary.json`` holds ``eval``) or an
``mrt analyze`` output (its ``summary.json`` is the analysis itself). Writes ``DIR/table.md``,
``DIR/compare.json``, ``DIR/plots/{accuracy_vs_tokens,regret_vs_budget,j_by_episode,training}.png``
(and ``estimator_calibration.png`` when a run trained with ``--j-source mixed``)
and ``DIR/compare.html`` (headline figures side by side, the plots, and the trace viewer with a
problem's traces from every run next to each other).
"""

from __future__ import annotations

import json
from pathlib import Path

from mrt.rundir import lock_run_dir, one_writer, write_atomic, write_json


def load_run(path: str | Path) -> dict:
    p = Path(path)
    f = p / "summary.json"
    if not f.exists():
        raise FileNotFoundError(f"{p} has no summary.json (not a finished mrt train / mrt analyze run)")
    s = json.loads(f.read_text())
    if "eval" in s:
        sets, train = s["eval"], s
    elif "accuracy" in s:
        from mrt.core.figures import eval_figures

        sets, train = {"held_out": eval_figures(s)}, None
    else:
        raise ValueError(f"{f} is neither a training nor an analysis summary")
    curve = []
    log = p / "train_log.jsonl"
    if log.exists():
        for line in log.read_text().splitlines():
            row = json.loads(line)
            if "reward" in row or "loss" in row:
                curve.append(row)
    return {"name": p.name, "path": str(p), "sets": sets, "train": train, "log": curve}


def _row(run: dict, set_name: str) -> dict | None:
    e = run["sets"].get(set_name)
    if e is None:
        return None
    t = run["train"] or {}
    return {
        "run": run["name"],
        "algo": t.get("algo", "-"),
        "accuracy": e["accuracy"],
        "mean_output_tokens": e["mean_output_tokens"],
        "normalized_regret": e["normalized_regret"],
        "regret_split": e.get("regret_split", {}),
        "maj_at_k": e.get("maj_at_k", {}),
        "accuracy_at_budget": e.get("accuracy_at_budget", {}),
        "steps": t.get("steps"),
        "sampled_tokens": t.get("sampled_tokens"),
        "wall_seconds_per_step": t.get("wall_seconds_per_step"),
    }


def table(rows: list[dict]) -> str:
    """The runs side by side; regret at the first budget also split into the answer before
    thinking (1 - J(empty)) and what thinking added (docs/concepts.md, regret split)."""
    budgets = list(rows[0]["normalized_regret"]) if rows else []
    first = budgets[0] if budgets else None
    head = (
        ["run", "algo", "accuracy", "output tokens"]
        + [f"regret C={b}" for b in budgets]
        + ([f"C={first}: before thinking", f"C={first}: thinking added"] if first else [])
        + ["steps", "sampled tokens", "s/step"]
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["run"], r["algo"], f"{r['accuracy']:.3f}", f"{r['mean_output_tokens']:.1f}"]
        cells += [f"{r['normalized_regret'].get(b, float('nan')):.3f}" for b in budgets]
        if first:
            sp = r.get("regret_split", {}).get(first)
            cells += [f"{sp['start']:.3f}", f"{sp['progress_area']:.3f}"] if sp else ["-", "-"]
        cells += [
            str(r["steps"] if r["steps"] is not None else "-"),
            str(r["sampled_tokens"] if r["sampled_tokens"] is not None else "-"),
            f"{r['wall_seconds_per_step']:.2f}" if r["wall_seconds_per_step"] else "-",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# algorithms whose training rollouts start after a sampled prefix of the model's own thinking (MRT's
# termination form; MRT-RL's revision after a first attempt): their training curves measure those
PREFIX_CONDITIONED = ("mrt", "mrt-backtrack")


def plots(runs: list[dict], out: Path) -> list[Path]:
    from mrt.report.analysis import pyplot, save_figure

    plt = pyplot()
    made = []
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for r in runs:
        e = r["sets"]["held_out"]
        pts = sorted((int(k), v) for k, v in e["accuracy_vs_tokens"].items())
        ax.step([p[0] for p in pts], [p[1] for p in pts], where="post", label=r["name"])
    ax.set(xlabel="thinking tokens before the forced answer", ylabel="accuracy", title="Accuracy vs tokens")
    ax.legend(fontsize=7)
    made.append(save_figure(plt, fig, out / "accuracy_vs_tokens.png"))

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for r in runs:
        reg = r["sets"]["held_out"]["normalized_regret"]
        ax.plot([int(k) for k in reg], list(reg.values()), marker="o", label=r["name"])
    ax.set(xlabel="token budget C", ylabel="normalised regret", title="Regret vs budget (lower is better)")
    ax.legend(fontsize=7)
    made.append(save_figure(plt, fig, out / "regret_vs_budget.png"))

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    from mrt.report.analysis import min_traces

    for r in runs:
        e = r["sets"]["held_out"]
        counts = e.get("traces_by_episode")
        shown = sum(c >= min_traces(counts[0]) for c in counts) if counts else min(8, len(e["j_by_episode"]))
        j = e["j_by_episode"][:shown]
        ax.plot(
            range(len(j)), j, marker="o", label=r["name"] + (f" (n: {counts[0]}→{counts[shown - 1]})" if counts else "")
        )
    ax.set(
        xlabel="episodes before the forced answer",
        ylabel="mean J",
        title="J by episode (episodes reached by ≥ max(10, 5%) of traces)",
    )
    ax.legend(fontsize=7)
    made.append(save_figure(plt, fig, out / "j_by_episode.png"))

    if any(r["log"] for r in runs):
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
        for r in runs:
            rows = [x for x in r["log"] if "reward" in x]
            if rows:
                # MRT's rollouts continue (or answer after) a sampled prefix: their reward and length are
                # not those of whole traces, so they are drawn dashed and named, not compared like with like
                prefixed = (r["train"] or {}).get("algo") in PREFIX_CONDITIONED
                kw = {"label": r["name"] + (" (after a sampled prefix)" if prefixed else "")}
                kw["linestyle"] = "--" if prefixed else "-"
                axes[0].plot([x["step"] for x in rows], [x["reward"] for x in rows], **kw)
                axes[1].plot(
                    [x["step"] for x in rows], [x.get("completions/mean_length", float("nan")) for x in rows], **kw
                )
        axes[0].set(xlabel="step", ylabel="mean reward", title="Training reward of the sampled rollouts")
        axes[1].set(xlabel="step", ylabel="tokens", title="Mean rollout length")
        axes[0].legend(fontsize=7)
        made.append(save_figure(plt, fig, out / "training.png"))
    if any("estimator/brier" in x for r in runs for x in r["log"]):
        made.append(calibration_plot(plt, runs, out / "estimator_calibration.png"))
    return made


def calibration_plot(plt, runs: list[dict], path: Path) -> Path:
    """Per training step, the on-policy progress estimator against that step's fresh Monte Carlo
    J (--j-source mixed): Brier score and ECE (left), correlation (right)."""
    from mrt.report.analysis import save_figure

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for r in runs:
        rows = [x for x in r["log"] if "estimator/brier" in x]
        if not rows:
            continue
        steps = [x["step"] for x in rows]
        (line,) = axes[0].plot(steps, [x["estimator/brier"] for x in rows], label=f"{r['name']} Brier")
        axes[0].plot(
            steps, [x["estimator/ece"] for x in rows], ls="--", color=line.get_color(), label=f"{r['name']} ECE"
        )
        axes[1].plot(steps, [x.get("estimator/correlation", float("nan")) for x in rows], label=r["name"])
    axes[0].set(xlabel="step", ylabel="error", title="Estimator vs fresh Monte Carlo J (lower is better)")
    axes[1].set(xlabel="step", ylabel="Pearson r", title="Estimator vs fresh Monte Carlo J: correlation")
    axes[0].legend(fontsize=7)
    return save_figure(plt, fig, path)


@one_writer
def compare(run_dirs: list[str], out: str) -> dict:
    runs = [load_run(d) for d in run_dirs]
    outp = lock_run_dir(out)
    (outp / "plots").mkdir(parents=True, exist_ok=True)
    result = {}
    text = []
    for set_name in ("held_out", "hard"):
        rows = [r for r in (_row(run, set_name) for run in runs) if r]
        if rows:
            result[set_name] = rows
            text.append(f"### {set_name.replace('_', '-')}\n\n{table(rows)}\n")
    write_json(outp / "compare.json", result)
    write_atomic(outp / "table.md", "\n".join(text))
    made = plots(runs, outp / "plots")
    page = write_page(runs, made, outp)
    print("\n".join(text))
    print("plots: " + ", ".join(str(p) for p in made))
    print(f"page: {page}")
    return result


def analysis_dir(run: dict) -> Path:
    """Where a run's held-out analysis (summary.json + traces.jsonl) lives."""
    p = Path(run["path"])
    return p / "eval" if run["train"] is not None else p


def write_page(runs: list[dict], made: list[Path], out: Path) -> Path:
    """``compare.html``: the headline figures side by side, the overlaid curves, and the same
    problem's traces from every run next to each other."""
    import html

    from mrt.report.analysis import bootstrap_regret, headline, img_tag, load_run_dir, page
    from mrt.report.viewer import trace_rows, viewer_html

    heads, viewer_runs, notes = [], [], []
    for run in runs:
        try:
            summary, records = load_run_dir(analysis_dir(run))
        except ValueError as e:
            notes.append(f"{run['name']}: {e}")
            continue
        budgets = [int(b) for b in summary["normalized_regret"]]
        heads.append((run, headline(summary, records, bootstrap_regret(records, budgets))))
        viewer_runs.append((run["name"], trace_rows(records, budgets[len(budgets) // 2] if budgets else None)))
    names = [h["name"] for h in heads[0][1]] if heads else []
    rows = "".join(
        "<tr><th>"
        + html.escape(run["name"])
        + "</th><td>"
        + html.escape((run["train"] or {}).get("algo", "-"))
        + "</td>"
        + "".join(f"<td>{html.escape(next((h['value'] for h in hs if h['name'] == n), '-'))}</td>" for n in names)
        + "</tr>"
        for run, hs in heads
    )
    defs = "".join(
        f"<li><b>{html.escape(h['name'])}</b>: {html.escape(h['definition'])}</li>"
        for h in (heads[0][1] if heads else [])
    )
    body = (
        "<h1>Runs compared</h1>"
        + (
            f"<table><tr><th>run</th><th>algo</th>{''.join(f'<th>{html.escape(n)}</th>' for n in names)}</tr>"
            f"{rows}</table><ul style='font-size:13px;color:#555'>{defs}</ul>"
            if heads
            else ""
        )
        + "".join(f"<p><b>left out</b>: {html.escape(n)}</p>" for n in notes)
        + "<h2>Curves</h2>"
        + "".join(img_tag(p) for p in made)
        + (
            "<h2>The same problem in every run</h2><p>Click a trace: the problem's traces from every run "
            "are shown side by side, each episode shaded by its progress.</p>" + viewer_html(viewer_runs)
            if viewer_runs
            else ""
        )
    )
    path = out / "compare.html"
    write_atomic(path, page("mrt compare", body))
    return path
