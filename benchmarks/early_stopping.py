"""Stop thinking when progress stalls: the accuracy-tokens trade-off of every stop rule, chosen on
a validation split and reported on a test split, against the fixed-budget curve and the natural
end, replayed and measured online, for several models.

    python -m benchmarks.early_stopping --out runs/early-stop --results benchmarks/results/early_stopping.json \\
        --models base grpo=runs/bench-didactic/grpo-s0/model mrt=runs/bench-didactic/mrt-s0/model --threads 1

For each model:

* ``mrt analyze`` on held-out problems: the validation split (problem seed 0) and the test split
  (seeds 1 and 2), 8 forced answers per prefix (4 are the controller's signal, 4 measure
  accuracy); one more analysis on training-distribution problems (seed 11) trains the learned
  progress estimator, three times (estimator seeds 0, 1, 2: split, initial head and order);
* the replay of every rule and parameter (``mrt.act.tradeoff``), charged as the online controller
  pays (:func:`mrt.act.controller.reveal_offsets`, no signal at the natural end, the signal answer
  reused at an early stop), with 95% bootstrap intervals over problems on every figure, the
  margins over the fixed-budget curve included;
* the parameter of every rule family chosen on the validation split (``mrt.act.tradeoff.select``)
  and reported on the test split, for every estimator seed;
* the online controller (``mrt eval --stop``) on the first ``--online-problems`` problems of each
  test seed, next to the replay on the same problems: the natural end, the chosen estimator rule,
  and the most accurate oracle and DEER-style rules (whatever their tokens).

Every step resumes (analyses and eval runs resume, a finished estimator is reused). Results:
``OUT/early_stopping.json`` (copied to ``--results``), the per-trace records
``OUT/traces/NAME.jsonl.gz`` (copied next to ``--results``, in ``early_stopping_traces/``),
``OUT/plots/*.png``, ``OUT/table.md``. ``--smollm2`` adds SmolLM2-135M-Instruct on a reasoning-gym
task with token-chunk episodes, the online runs on the vLLM backend (``--smollm2-backend``); it
was not part of the committed run (too slow on the shared cores; see
``benchmarks/early_stopping_smollm2.py`` for the online-only real-model run).
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SMOLLM2 = dict(
    task="gym",
    knobs=[
        "dataset=products",
        "options=min_terms:2,max_terms:2,min_digits:1,max_digits:1",
        "thinking=none",
        "extract=last-number",
    ],
    max_new_tokens=64,
    answer_tokens=16,
    segmentation="chunk:16",
    n_problems=24,
    traces_per_problem=2,
    estimator_steps=60,
    val_seeds=[0],
    test_seeds=[1],
    online_problems=24,
)  # about 90 tokens/s here: small splits, said so in the doc
RULE_FAMILIES = (
    "j-threshold|estimator",
    "j-threshold|oracle",
    "j-threshold|vote",
    "stall|estimator",
    "confidence|none",
)
ONLINE = ("j-threshold|estimator", "j-threshold|oracle", "confidence|none")  # + natural (module doc)


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/early-stop", help="working directory")
    p.add_argument("--results", default="", help="also copy early_stopping.json here")
    p.add_argument(
        "--models",
        nargs="+",
        default=["base"],
        help="NAME=PATH (or 'base' for the shipped model) of the didactic models to compare",
    )
    p.add_argument("--val-seeds", nargs="+", type=int, default=[0], help="validation problem seeds (selection)")
    p.add_argument("--test-seeds", nargs="+", type=int, default=[1, 2], help="test problem seeds (reported)")
    p.add_argument("--problems", type=int, default=64, help="held-out problems per seed")
    p.add_argument("--k", type=int, default=4, help="signal answers per boundary (of 8)")
    p.add_argument("--estimator-steps", type=int, default=300, help="training steps of the estimator")
    p.add_argument("--estimator-seeds", nargs="+", type=int, default=[0, 1, 2], help="estimator training seeds")
    p.add_argument("--online-problems", type=int, default=32, help="online runs: problems per test seed (0: none)")
    p.add_argument("--online-samples", type=int, default=4, help="online runs: traces per problem")
    p.add_argument("--smollm2", action="store_true", help="add SmolLM2-135M-Instruct on a text task")
    p.add_argument("--smollm2-backend", default="vllm", help="sampler of SmolLM2's online runs (vllm or hf)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--report-only", action="store_true", help="rewrite plots and table from OUT/early_stopping.json")
    return p.parse_args()


def _analyze(model: str, out: Path, problem_seed: int, n: int, extra: dict) -> Path:
    from mrt.measure.analyze import AnalyzeConfig
    from mrt.pipelines import analyze as run_analysis

    cfg = dict(
        model=model,
        task="star",
        out=str(out),
        n_problems=n,
        problem_seed=problem_seed,
        traces_per_problem=4,
        answers_per_prefix=8,
        extensions=0,
        maj_k=[1, 2, 4, 8],
    )
    cfg.update(extra)
    if not (out / "summary.json").is_file():
        run_analysis(AnalyzeConfig(**cfg))
    return out


def _records(d: Path, seed: int) -> list[dict]:
    recs = [json.loads(x) for x in (d / "traces.jsonl").read_text().splitlines() if x.strip()]
    for r in recs:  # problem ids are unique within a seed; keep them apart across seeds
        r["problem_id"] = f"s{seed}/{r['problem_id']}"
    return recs


def _estimates(path: Path, seed: int) -> dict:
    from mrt.act.estimator import read_estimates

    return {(f"s{seed}/{pid}", t): v for (pid, t), v in read_estimates(path).items()}


def _reveal(task, tok, records: list[dict], segmentation: str) -> dict:
    from mrt.act.controller import boundary_ends, reveal_offsets

    out = {}
    for r in records:
        ids = r["thinking_ids"]
        ends = [p["tokens"] for p in r["prefixes"][1:]]
        if ends and ends[:-1] != [e for e in boundary_ends(task, ids, tok, segmentation)][:-1]:
            raise ValueError(f"{r['problem_id']}: the analysis's episodes are not the controller's")
        out[(r["problem_id"], r["trace"])] = reveal_offsets(task, tok, ids, ends, r["closed_thinking"], segmentation)
    return out


def _sub(records: list[dict], keep: set[str]) -> list[dict]:
    return [r for r in records if r["problem_id"] in keep]


def _online(name, model, sampler, rule, source, estimator, seeds, ns, out: Path, extra: dict) -> list[dict]:
    """``mrt eval --stop`` on the first problems of every test seed; per-trace rows."""
    from mrt.measure.evaluate import EvalConfig
    from mrt.pipelines import evaluate as run_eval

    rows = []
    for s in seeds:
        d = out / name / "online" / f"{rule.replace(':', '_').replace(',', '_').replace('=', '')}-{source}-s{s}"
        cfg = EvalConfig(
            model=model,
            task=extra.get("task", "star"),
            knobs=list(extra.get("knobs", [])),
            out=str(d),
            n_problems=extra.get("online_problems", ns.online_problems),
            problem_seed=s,
            samples=extra.get("traces_per_problem", ns.online_samples),
            max_new_tokens=extra.get("max_new_tokens", 0),
            answer_tokens=extra.get("answer_tokens", 0),
            temperature=1.0,
            top_p=1.0,
            maj_k=[1],
            stop=rule,
            j_source=source if source != "none" else "oracle",
            stop_k=ns.k,
            estimator=str(estimator) if source == "estimator" else "",
            segmentation=extra.get("segmentation", "task"),
            backend=extra.get("backend", "hf"),
        )
        run_eval(cfg, sampler=sampler)  # resumes: only the problems not yet finished are sampled
        for line in (d / "samples.jsonl").read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                if int(row["problem_id"].rsplit("-", 1)[1]) >= cfg.n_problems:
                    continue
                for t, c in enumerate(row["controller"]):
                    rows.append({"problem_id": f"s{s}/{row['problem_id']}", "trace": t, **c})
    return rows


def mean_ci(by_problem: dict[str, list[float]], draws: int = 1000, seed: int = 0) -> tuple[float, list[float]]:
    import numpy as np

    keys = list(by_problem)
    sums = np.array([sum(by_problem[k]) for k in keys])
    counts = np.array([len(by_problem[k]) for k in keys])
    idx = np.random.default_rng(seed).integers(0, len(keys), size=(draws, len(keys)))
    m = np.sort(sums[idx].sum(1) / counts[idx].sum(1))
    return float(sums.sum() / counts.sum()), [float(m[int(0.025 * draws)]), float(m[int(0.975 * draws) - 1])]


def diff_ci(a: dict[str, list[float]], b: dict[str, list[float]], draws: int = 1000, seed: int = 0):
    """Mean of a minus mean of b (independent samples on the same problems), problems resampled
    together: the estimate and its 95% interval."""
    import numpy as np

    keys = [k for k in a if k in b]
    sa, ca = np.array([sum(a[k]) for k in keys]), np.array([len(a[k]) for k in keys])
    sb, cb = np.array([sum(b[k]) for k in keys]), np.array([len(b[k]) for k in keys])
    idx = np.random.default_rng(seed).integers(0, len(keys), size=(draws, len(keys)))
    d = np.sort(sa[idx].sum(1) / ca[idx].sum(1) - sb[idx].sum(1) / cb[idx].sum(1))
    return float(sa.sum() / ca.sum() - sb.sum() / cb.sum()), [
        float(d[int(0.025 * draws)]),
        float(d[int(0.975 * draws) - 1]),
    ]


def by_problem(rows: list[dict], key) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for r in rows:
        out.setdefault(r["problem_id"], []).append(float(key(r)))
    return out


def run_model(name: str, model: str, ns, out: Path, extra: dict | None = None) -> dict:
    from mrt.act.estimator import EstimatorConfig, predict, train_estimator
    from mrt.act.rules import parse_rule
    from mrt.act.tradeoff import boundaries, replay, select, tradeoff
    from mrt.tasks import get_task, parse_knobs

    extra = dict(extra or {})
    settings = {k: extra.pop(k) for k in ("online_problems", "backend") if k in extra}
    n = extra.pop("n_problems", ns.problems)
    steps = extra.pop("estimator_steps", ns.estimator_steps)
    val_seeds = extra.pop("val_seeds", ns.val_seeds)
    test_seeds = extra.pop("test_seeds", ns.test_seeds)
    t0 = time.time()
    task = get_task(extra.get("task", "star"), **parse_knobs(extra.get("knobs", [])))
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    segmentation = extra.get("segmentation", "task")
    train_dir = _analyze(model, out / name / "train-analysis", 11, n, extra)
    cals, est_dirs = {}, {}
    for e in ns.estimator_seeds:
        est_dirs[e] = out / name / f"estimator-s{e}"
        cals[e] = train_estimator(
            EstimatorConfig(
                analysis=[str(train_dir)],
                out=str(est_dirs[e]),
                model=model,
                steps=steps,
                held_out=0.2,
                seed=e,
                threads=ns.threads,
            )
        )
    split_records, split_est = {}, {}
    for split, seeds in (("val", val_seeds), ("test", test_seeds)):
        recs, est = [], {e: {} for e in ns.estimator_seeds}
        for s in seeds:
            d = _analyze(model, out / name / f"heldout-s{s}", s, n, extra)
            recs += _records(d, s)
            for e in ns.estimator_seeds:
                f = d / f"estimates-e{e}.jsonl"
                if not f.is_file():
                    predict(est_dirs[e], d, f)
                est[e].update(_estimates(f, s))
        split_records[split], split_est[split] = recs, est
    reveal = {
        **_reveal(task, tok, split_records["val"], segmentation),
        **_reveal(task, tok, split_records["test"], segmentation),
    }
    sources = ("oracle", "vote", "estimator")
    chosen, test_rows, test_full = {}, {}, None
    for e in ns.estimator_seeds:
        val = tradeoff(
            split_records["val"], k=ns.k, sources=sources, estimates=split_est["val"][e], generated=reveal, draws=200
        )
        chosen[e] = select(val["points"])
        res = tradeoff(
            split_records["test"], k=ns.k, sources=sources, estimates=split_est["test"][e], generated=reveal, draws=1000
        )
        test_rows[e] = res["points"]
        if test_full is None:
            test_full = res
    e0 = ns.estimator_seeds[0]

    def row_of(rows, rule, source):
        return next(p for p in rows if p["rule"] == rule and p["source"] == (source if rule != "natural" else "none"))

    selected = {}
    for fam in RULE_FAMILIES:
        per_seed = []
        for e in ns.estimator_seeds if fam.endswith("|estimator") else [e0]:
            c, src = chosen[e][fam], fam.split("|")[1]
            per_seed.append(
                {
                    "estimator_seed": e,
                    "chosen_on_validation": c,
                    "test": row_of(test_rows[e], c["rule"], src),
                    "most_accurate_test": row_of(test_rows[e], c["most_accurate"]["rule"], src),
                }
            )
        selected[fam] = per_seed
    # the online controller with the chosen rules, next to the replay on the same problems
    online = {}
    if ns.online_problems and settings.get("online_problems", 1):
        sampler = _sampler(model, settings.get("backend", "hf"))
        keep_n = settings.get("online_problems", ns.online_problems)
        nat_tok = None
        for fam in ("natural|none",) + ONLINE:
            source = fam.split("|")[1]
            if fam == "natural|none":
                rule = "natural"
            elif fam.endswith("|estimator"):  # the chosen one (if it is not never stopping)
                rule = selected[fam][0]["chosen_on_validation"]["rule"]
                if rule == "natural":
                    continue
            else:  # rules that sample answers: the most accurate on validation, whatever its tokens
                rule = selected[fam][0]["chosen_on_validation"]["most_accurate"]["rule"]
            rows = _online(name, model, sampler, rule, source, est_dirs[e0], test_seeds, ns, out, {**extra, **settings})
            keep = {r["problem_id"] for r in rows}
            assert all(int(pid.split("-")[-1]) < keep_n for pid in keep)
            recs = _sub(split_records["test"], keep)
            rep = []
            for r in recs:
                key = (r["problem_id"], r["trace"])
                bs = boundaries(r, ns.k, split_est["test"][e0].get(key), reveal[key])
                rep.append({"problem_id": r["problem_id"], **replay(bs, parse_rule(rule), source, ns.k)})
            on_acc, rp_acc = by_problem(rows, lambda r: r["correct"]), by_problem(rep, lambda r: r["acc"])
            on_tok, rp_tok = by_problem(rows, lambda r: r["tokens"]), by_problem(rep, lambda r: r["tokens"])
            entry = {
                "rule": rule,
                "source": source,
                "problems": len(keep),
                "online_traces": len(rows),
                "replay_traces": len(rep),
                "online_accuracy": mean_ci(on_acc),
                "replay_accuracy": mean_ci(rp_acc),
                "online_minus_replay_accuracy": diff_ci(on_acc, rp_acc),
                "online_tokens": mean_ci(on_tok),
                "replay_tokens": mean_ci(rp_tok),
                "online_minus_replay_tokens": diff_ci(on_tok, rp_tok),
                "online_thinking_tokens": statistics.fmean(r["generated_tokens"] for r in rows),
                "replay_thinking_tokens": statistics.fmean(r["generated"] for r in rep),
                "online_stopped_early": statistics.fmean(r["stopped_early"] for r in rows),
                "online_answer_reused": statistics.fmean(r["answer_reused"] for r in rows),
            }
            if fam == "natural|none":
                nat_tok, nat_rows = entry["online_tokens"][0], rows
            entry["online_tokens_vs_natural"] = entry["online_tokens"][0] / nat_tok if nat_tok else None
            # the online runs share their generation seeds: a trace is the same as under the natural
            # rule up to its stop, so the difference to the online natural end is paired, trace by trace
            nat_by = {(r["problem_id"], r["trace"]): r for r in nat_rows}
            paired = [{**r, "nat": nat_by[(r["problem_id"], r["trace"])]} for r in rows]
            entry["online_vs_online_natural"] = {
                "accuracy": mean_ci(by_problem(paired, lambda r: float(r["correct"]) - float(r["nat"]["correct"]))),
                "tokens": mean_ci(by_problem(paired, lambda r: r["tokens"] - r["nat"]["tokens"])),
                "same_trace_to_stop": statistics.fmean(
                    r["boundary_tokens"] == r["nat"]["boundary_tokens"][: len(r["boundary_tokens"])] for r in paired
                ),
            }
            online[fam] = entry
            _write_online_traces(out / "traces" / f"{name}-online.jsonl.gz", fam, rule, rows)
        del sampler
    _write_traces(out / "traces" / f"{name}.jsonl.gz", split_records, split_est, reveal, ns)
    return {
        "model": model,
        "task": {"name": task.name, "knobs": task.knobs(), "segmentation": segmentation},
        "splits": {"validation_seeds": val_seeds, "test_seeds": test_seeds, "problems_per_seed": n},
        "n_traces": {k: len(v) for k, v in split_records.items()},
        "calibration": {str(e): c for e, c in cals.items()},
        "selected": selected,
        "test": test_full,
        "estimator_rows_by_seed": {
            str(e): [p for p in rows if p["source"] == "estimator"] for e, rows in test_rows.items()
        },
        "online": online,
        "wall_seconds": round(time.time() - t0, 1),
    }


def _sampler(model: str, backend: str):
    from mrt.samplers import load_sampler

    return load_sampler(model, backend)


def _write_traces(path: Path, split_records, split_est, reveal, ns) -> None:
    """Per trace and boundary: tokens, tokens generated when deciding there, held-out accuracy,
    mean answer tokens, oracle J and vote share of the k signal answers, the trial answer's
    confidence, the grades of the majority and trial answers, the estimators' J (per seed)."""
    from mrt.act.tradeoff import boundaries

    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as f:
        f.write(
            json.dumps(
                {
                    "fields": [
                        "tokens",
                        "generated",
                        "acc",
                        "answer_tokens",
                        "j",
                        "vote",
                        "confidence",
                        "majority",
                        "trial",
                    ]
                    + [f"estimate_e{e}" for e in ns.estimator_seeds],
                    "k": ns.k,
                }
            )
            + "\n"
        )
        for split, recs in split_records.items():
            for r in recs:
                key = (r["problem_id"], r["trace"])
                bs = boundaries(r, ns.k, None, reveal[key])
                ests = [split_est[split][e][key] for e in ns.estimator_seeds]
                rows = [
                    [b.tokens, b.generated, round(b.acc, 4), round(b.answer_tokens, 2), b.j, b.vote]
                    + [round(b.confidence, 4), b.majority, b.trial]
                    + [round(es[i], 4) for es in ests]
                    for i, b in enumerate(bs)
                ]
                f.write(json.dumps({"split": split, "id": r["problem_id"], "trace": r["trace"], "b": rows}) + "\n")


def _write_online_traces(path: Path, fam: str, rule: str, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "at") as f:
        for r in rows:
            f.write(
                json.dumps(
                    {
                        "family": fam,
                        "rule": rule,
                        "id": r["problem_id"],
                        "trace": r["trace"],
                        "stop_tokens": r["stop_tokens"],
                        "generated": r["generated_tokens"],
                        "overhead": r["overhead_tokens"],
                        "answer_tokens": r["answer_tokens"],
                        "correct": bool(r["correct"]),
                        "reused": r["answer_reused"],
                        "boundaries": r["boundary_tokens"],
                    }
                )
                + "\n"
            )


def plots(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    styles = {
        ("j-threshold", "oracle"): "tab:blue",
        ("j-threshold", "vote"): "tab:cyan",
        ("j-threshold", "estimator"): "tab:green",
        ("stall", "oracle"): "tab:purple",
        ("stall", "vote"): "tab:pink",
        ("stall", "estimator"): "tab:olive",
        ("confidence", "none"): "tab:red",
    }
    for name, r in results.items():
        pts = r["test"]["points"]
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
        for ax, key, xlabel in (
            (axes[0], "tokens", "mean tokens per trace (thinking + controller overhead + answer)"),
            (axes[1], "thinking_tokens", "mean thinking tokens generated (the signal taken as free)"),
        ):
            budget = sorted((p[key], p["accuracy"]) for p in pts if p["family"] == "budget")
            ax.plot([t for t, _ in budget], [a for _, a in budget], color="k", marker=".", label="fixed budget")
            nat = next(p for p in pts if p["family"] == "natural")
            ax.scatter([nat[key]], [nat["accuracy"]], color="k", marker="*", s=120, zorder=5, label="natural end")
            for (fam, src), color in styles.items():
                sel = sorted((p[key], p["accuracy"]) for p in pts if p["family"] == fam and p["source"] == src)
                if sel:
                    ax.plot(
                        [t for t, _ in sel],
                        [a for _, a in sel],
                        marker="o",
                        ms=3,
                        lw=1,
                        color=color,
                        label=f"{fam} ({src})" if src != "none" else fam + " (DEER-style)",
                    )
            ax.set(xlabel=xlabel, ylabel="accuracy")
        for o in r.get("online", {}).values():  # the online controller's own runs (fewer problems)
            (acc, _), (tok, _) = o["online_accuracy"], o["online_tokens"]
            axes[0].scatter([tok], [acc], marker="x", s=60, color="0.3", zorder=6)
            axes[0].annotate("online " + o["rule"], (tok, acc), fontsize=6, xytext=(3, -8), textcoords="offset points")
        axes[0].set_title(f"{name}: every sampled token counted (test split; x: online runs)")
        axes[1].set_title(f"{name}: where each rule stops, overhead aside")
        axes[0].legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        fig.savefig(out / f"{name}.png", dpi=100)
        plt.close(fig)


def _f(x, d=3):
    return "—" if x is None else f"{x:.{d}f}"


def _ci(x, d=3, sign=False):
    if x is None:
        return "—"
    f = f"{{:+.{d}f}}" if sign else f"{{:.{d}f}}"
    return "[" + ", ".join(f.format(v) for v in x) + "]"


def _paired(o: dict) -> str:
    p = o.get("online_vs_online_natural")
    if not p:
        return "—"
    (a, aci), (t, tci) = p["accuracy"], p["tokens"]
    return f"{a:+.3f} {_ci(aci, sign=True)}, {t:+.1f} {_ci(tci, 1, sign=True)}"


def table(results: dict) -> str:
    lines = []
    for name, r in results.items():
        lines += [f"### {name}", ""]
        for e, cal in r["calibration"].items():
            c = cal.get("calibration", {})
            lines.append(
                f"estimator seed {e} on held-out problems of its training analysis: ECE {_f(c.get('ece'))}, Brier "
                f"{_f(c.get('brier'))} (predicting the mean: {_f(c.get('brier_of_the_mean'))}), correlation "
                f"{_f(c.get('correlation'))}, n = {c.get('n')}"
            )
        lines += [
            "",
            "Chosen on the validation split, reported on the test split:",
            "",
            "| rule family | est. seed | chosen | accuracy [95% CI] | tokens [95% CI] | Δacc vs natural [95% CI] "
            "| tokens / natural | Δacc vs budget curve at equal tokens [95% CI] | tokens saved vs budget curve [95% CI] |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for fam, entries in r["selected"].items():
            for s, key in [(s, key) for key in ("test", "most_accurate_test") for s in entries]:
                p = s.get(key)
                if p is None or (key == "most_accurate_test" and p["rule"] == s["test"]["rule"]):
                    continue
                lines.append(
                    f"| {fam} | {s['estimator_seed'] if fam.endswith('estimator') else '—'} | {p['rule']}"
                    f"{' (never stop)' if p['rule'] == 'natural' else ''}"
                    f"{' (most accurate, any tokens)' if key == 'most_accurate_test' else ''} "
                    f"| {_f(p['accuracy'])} {_ci(p['accuracy_ci'])} | {_f(p['tokens'], 1)} {_ci(p['tokens_ci'], 1)} "
                    f"| {p['accuracy_vs_natural']:+.3f} {_ci(p['accuracy_vs_natural_ci'], sign=True)} "
                    f"| {_f(p['token_ratio_vs_natural'], 2)} | {_f(p['accuracy_vs_budget_curve'])} "
                    f"{_ci(p.get('accuracy_vs_budget_curve_ci'), sign=True)} | {_f(p['tokens_saved_vs_budget_curve'], 1)} "
                    f"{_ci(p.get('tokens_saved_vs_budget_curve_ci'), 1, sign=True)} |"
                )
        if r.get("online"):
            lines += [
                "",
                "Online controller (mrt eval --stop) vs replay on the same problems:",
                "",
                "| rule | source | problems | online accuracy [95% CI] | replay accuracy [95% CI] | online − replay "
                "| online tokens [95% CI] | replay tokens [95% CI] | online − replay tokens [95% CI] "
                "| thinking online / replay | online tokens / natural | online − online natural, paired: accuracy, tokens |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|",
            ]
            for o in r["online"].values():
                lines.append(
                    f"| {o['rule']} | {o['source']} | {o['problems']} | {_f(o['online_accuracy'][0])} "
                    f"{_ci(o['online_accuracy'][1])} | {_f(o['replay_accuracy'][0])} {_ci(o['replay_accuracy'][1])} "
                    f"| {o['online_minus_replay_accuracy'][0]:+.3f} {_ci(o['online_minus_replay_accuracy'][1], sign=True)} "
                    f"| {_f(o['online_tokens'][0], 1)} {_ci(o['online_tokens'][1], 1)} | {_f(o['replay_tokens'][0], 1)} "
                    f"{_ci(o['replay_tokens'][1], 1)} | {o['online_minus_replay_tokens'][0]:+.1f} "
                    f"{_ci(o['online_minus_replay_tokens'][1], 1, sign=True)} | {_f(o['online_thinking_tokens'], 1)} / "
                    f"{_f(o['replay_thinking_tokens'], 1)} | {_f(o['online_tokens_vs_natural'], 2)} "
                    f"| {_paired(o)} |"
                )
        lines += [
            "",
            "Every rule on the test split (estimator seed 0):",
            "",
            "| rule | J source | accuracy [95% CI] | tokens | thinking | overhead | answer | Δacc vs natural [95% CI] "
            "| tokens / natural | Δacc vs budget curve [95% CI] | tokens saved vs budget curve [95% CI] |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for p in r["test"]["points"]:
            lines.append(
                f"| {p['rule']} | {p['source']} | {_f(p['accuracy'])} {_ci(p['accuracy_ci'])} "
                f"| {_f(p['tokens'], 1)} | {_f(p['thinking_tokens'], 1)} | {_f(p['overhead_tokens'], 1)} "
                f"| {_f(p['answer_tokens'], 1)} "
                f"| {p['accuracy_vs_natural']:+.3f} {_ci(p['accuracy_vs_natural_ci'], sign=True)} "
                f"| {_f(p['token_ratio_vs_natural'], 2)} | {_f(p['accuracy_vs_budget_curve'])} "
                f"{_ci(p.get('accuracy_vs_budget_curve_ci'), sign=True)} | {_f(p['tokens_saved_vs_budget_curve'], 1)} "
                f"{_ci(p.get('tokens_saved_vs_budget_curve_ci'), 1, sign=True)} |"
            )
        lines.append("")
    return "\n".join(lines)


def main():
    ns = parse()
    out = Path(ns.out)
    out.mkdir(parents=True, exist_ok=True)
    doc_path = out / "early_stopping.json"
    if ns.report_only:
        doc = json.loads(doc_path.read_text())
    else:
        import torch

        if ns.threads:
            torch.set_num_threads(ns.threads)
        from mrt.tasks.tiny import shipped_model_path

        doc = {"results": {}}
        results = doc["results"]
        for spec in ns.models:
            name, _, path = spec.partition("=")
            model = str(shipped_model_path()) if name == "base" and not path else path
            if not Path(model).exists():
                raise SystemExit(f"model {model!r} of {name!r} does not exist (run benchmarks/didactic.py first?)")
            print(f"== {name}: {model}", flush=True)
            (out / "traces" / f"{name}-online.jsonl.gz").unlink(missing_ok=True)
            results[name] = run_model(name, model, ns, out)
            _save(doc, ns, doc_path)
        if ns.smollm2:
            from mrt.models import smollm2

            print("== smollm2", flush=True)
            (out / "traces" / "smollm2-online.jsonl.gz").unlink(missing_ok=True)
            results["smollm2"] = run_model(
                "smollm2", str(smollm2()), ns, out, {**SMOLLM2, "backend": ns.smollm2_backend}
            )
            _save(doc, ns, doc_path)
    if ns.results:
        from mrt.rundir import update_json

        # merged, not overwritten: another model's run may have written its results meanwhile
        update_json(ns.results, lambda on_disk: _merged(on_disk, doc))
        traces = Path(ns.results).parent / "early_stopping_traces"
        traces.mkdir(parents=True, exist_ok=True)
        for f in (out / "traces").glob("*.jsonl.gz"):
            shutil.copy(f, traces / f.name)
    plots(doc["results"], out / "plots")
    (out / "table.md").write_text(table(doc["results"]))
    print((out / "table.md").read_text())


def _merged(on_disk: dict, doc: dict) -> dict:
    """``doc``'s models over those already in ``on_disk`` (results, commands, settings)."""
    for key in ("results", "commands", "settings"):
        on_disk.setdefault(key, {}).update(doc.get(key, {}))
    for key, value in doc.items():
        on_disk.setdefault(key, value)
    return on_disk


def _save(doc: dict, ns, path: Path) -> None:
    """After every model: a killed run keeps the finished models (each step below resumes too).
    Models written meanwhile by another process into the same file are kept (one command per
    model is recorded): the file is merged under a lock and written whole (``rundir.update_json``)."""
    from mrt.rundir import update_json

    command = "python -m benchmarks.early_stopping " + " ".join(sys.argv[1:])
    settings = {k: v for k, v in vars(ns).items() if k != "report_only"}

    def merge(on_disk: dict) -> dict:
        for name in doc["results"]:
            on_disk.setdefault("results", {})[name] = doc["results"][name]
            on_disk.setdefault("commands", {})[name] = command
            on_disk.setdefault("settings", {})[name] = settings
        return on_disk

    doc.update(update_json(path, merge))
