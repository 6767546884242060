"""The didactic benchmark, second design (issue 12): three settings (control, binding budget,
learnable order), eight training methods and the base, equal tuning on a validation split, five
seeds of final runs, 128 x 8 held-out traces, paired 95% bootstrap intervals over problems and
seeds.

    python -m benchmarks.didactic_v2 --out runs/bench-v2 --results benchmarks/results/didactic_v2.json --jobs 2

Stages (``--stage``, default ``all``): ``tune`` trains every method on each configuration of its
grid in the tuning setting and scores it on validation problems by one criterion (1 - normalised
regret at the training budget B, the area under the accuracy-budget curve); ``final`` trains the
chosen configuration of each method with every seed in every setting and evaluates base and
methods on the same held-out problems; ``report`` aggregates. Every run is an ``mrt train`` and an
``mrt analyze`` subprocess: a rerun skips finished runs and resumes killed ones, so the benchmark
can be stopped and continued at any point. Settings, grid and criterion are declared in
``benchmarks/didactic_v2_settings.py``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from pathlib import Path

from benchmarks import didactic_stats as ST
from benchmarks import didactic_v2_settings as S
from benchmarks import runner
from benchmarks.didactic_stats import REPS, bootstrap, paired  # noqa: F401  (bootstrap and paired: also the tests')
from benchmarks.runner import mrt_cmd
from mrt.core.trace import TraceRecord

ROOT = Path(__file__).resolve().parents[1]


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/bench-v2", help="working directory (runs, logs, tables)")
    p.add_argument("--results", default="", help="also copy the results JSON here")
    p.add_argument(
        "--stage",
        default="all",
        choices=["plan", "tune", "final", "report", "all", "tune-status"],
        help="what to run (tune-status: write the finished tuning runs' criteria and costs to "
        "--results, choosing nothing)",
    )
    p.add_argument("--methods", nargs="+", default=S.METHODS, help="methods (default: all eight)")
    p.add_argument("--settings", nargs="+", default=list(S.SETTINGS), help="settings of the final runs")
    p.add_argument("--seeds", nargs="+", type=int, default=S.FINAL_SEEDS, help="seeds of the final runs")
    p.add_argument("--jobs", type=int, default=2, help="runs at once (default: 2)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (default: 1)")
    p.add_argument(
        "--tuning",
        default=str(ROOT / "benchmarks" / "results" / "didactic_v2_tuning.json"),
        help="committed tuning table (--stage tune-status output) to choose from when the tuning "
        "runs are not under --out (same rule: each method's best criterion)",
    )
    p.add_argument(
        "--records",
        default=str(ROOT / "benchmarks" / "results" / "didactic_v2_runs"),
        help="folder of each finished final run's compact figures (committed: a run with a record is "
        "not run again, and the report reads records, so results outlive --out)",
    )
    p.add_argument(
        "--prior",
        nargs="*",
        default=[str(ROOT / "benchmarks" / "results" / "didactic_v2_order.json")],
        help="earlier report JSONs: a setting whose run records are incomplete is taken from them as it "
        "stands, where they hold it complete (marked with its source; the order setting ran "
        "before records existed)",
    )
    p.add_argument(
        "--plots",
        default=str(ROOT / "docs" / "img" / "didactic_v2"),
        help="folder of the report's plots (one PNG per setting)",
    )
    p.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiply the token budget and problem counts (a quick pipeline check: 0.05)",
    )
    ns = p.parse_args(argv)
    for m in ns.methods:
        if m not in S.METHODS:
            p.error(f"unknown method {m!r}; known: {', '.join(S.METHODS)}")
    for s in ns.settings:
        if s not in S.SETTINGS:
            p.error(f"unknown setting {s!r}; known: {', '.join(S.SETTINGS)}")
    return ns


# --------------------------------------------------------------------------- commands


def _n(ns, x: int) -> int:
    return max(2, int(round(x * ns.scale)))


def training_cmd(s: dict, algo: str, seed: int, out: Path, token_budget: int, threads: int, values: dict, **also):
    """``mrt train`` of one run in a setting ``s`` (knobs, model, thinking budget, completion
    length), at a token budget, with a method's values (the third design's too; a value of the
    method's, e.g. its own thinking budget, replaces the setting's)."""
    flags = dict(
        algo=algo,
        seed=seed,
        out=out,
        token_budget=token_budget,
        max_steps=100000,
        report_to="none",
        eval_problems=0,
        knobs=s["knobs"],
        threads=threads,
        **also,
        model=s["model"] or None,
        thinking_budget=s["thinking_budget"] or None,
        max_completion_length=s["max_completion_length"] or None,
        task=s.get("task"),  # a setting on another task than the didactic world's default
    )
    flags.update(s.get("train_flags", {}))  # the setting's own flags, then the method's
    flags.update(values)  # the method's own flags, after the setting's (one of its own replaces the setting's)
    return mrt_cmd("train", **flags)


def analysis_cmd(s: dict, model: str, seed: int, split: dict, n_problems: int, out: Path) -> list[str]:
    """``mrt analyze`` of a model on an evaluation split in a setting ``s`` (the third design's too)."""
    flags = dict(
        out=out,
        knobs=s["knobs"],
        n_problems=n_problems,
        problem_seed=split["problem_seed"],
        traces_per_problem=split["traces"],
        extensions=split["extensions"],
        budgets=s["budgets"],
        seed=seed,
        model=model or None,
        task=s.get("task"),
    )
    flags.update(s.get("analysis_flags", {}))
    return mrt_cmd("analyze", **flags)


def train_cmd(ns, setting: str, method: str, seed: int, values: dict, out: Path) -> list[str]:
    return training_cmd(S.SETTINGS[setting], method, seed, out, _n(ns, S.TOKEN_BUDGET), ns.threads, values)


def eval_cmd(ns, setting: str, model: str, seed: int, split: dict, out: Path) -> list[str]:
    return analysis_cmd(S.SETTINGS[setting], model, seed, split, _n(ns, split["n_problems"]), out)


def run_jobs(ns, jobs: list) -> None:
    """The shared runner; each finished final run leaves its record at once."""

    def after(name: str) -> None:
        if not name.startswith("tune/"):
            setting, run = name.split("/")
            write_record(ns, setting, run)

    runner.run_jobs(jobs, ns.jobs, ns.out, after=after)


def job(ns, name: str, d: Path, setting: str, method: str | None, seed: int, values: dict, split: dict):
    if (d / "eval" / "summary.json").exists():
        return None
    cmds = []
    model = S.SETTINGS[setting]["model"]
    if method:
        cmds.append(train_cmd(ns, setting, method, seed, values, d / "train"))
        model = str(d / "train" / "model")
    cmds.append(eval_cmd(ns, setting, model, seed, split, d / "eval"))
    d.mkdir(parents=True, exist_ok=True)
    return name, cmds, d / "log.txt", ns.threads


# --------------------------------------------------------------------------- figures


def trace_figures(rec: TraceRecord, budgets: list[int]) -> dict:
    from mrt.core.figures import trace_regret
    from mrt.core.metrics import j_at_budget

    ends, js = rec.episode_ends, rec.j_curve
    return {
        "correct": float(rec.correct),
        "tokens": rec.n_output_tokens,
        "regret": {str(c): trace_regret(rec, c, "thinking") for c in budgets},
        "acc_at": {str(c): j_at_budget(ends, js, c) for c in budgets},
        "ends": ends,
        "js": js,
    }


def wrong_figures(rec: TraceRecord, budgets: list[int]) -> dict:
    """A truncated or empty trace (or one without J estimates): a wrong answer in every figure,
    accuracy 0 at the natural end and at every budget, regret 1."""
    return {
        "correct": 0.0,
        "tokens": rec.n_output_tokens,
        "regret": {str(c): 1.0 for c in budgets},
        "acc_at": {str(c): 0.0 for c in budgets},
        "ends": [],
        "js": [0.0],
    }


def problem_table(eval_dir: Path, budgets: list[int]) -> dict[str, list[dict]]:
    """Every trace's figures, per problem. Traces whose status is not ``ok`` (truncated at the
    token limit, empty) count as wrong answers (:func:`wrong_figures`): leaving them out would
    favour the methods that truncate more."""
    out: dict[str, list[dict]] = {}
    path = eval_dir / "traces.jsonl"
    with open(path) as f:
        for n, line in enumerate(f, 1):
            r = TraceRecord.from_json(json.loads(line), f"{path}:{n}")
            ok = r.status == "ok" and r.prefixes
            out.setdefault(r.problem_id, []).append(trace_figures(r, budgets) if ok else wrong_figures(r, budgets))
    return out


def per_problem(table: dict, fn) -> dict[str, float]:
    """Per-problem mean of fn(trace)."""
    return {p: statistics.fmean(fn(t) for t in ts) for p, ts in table.items()}


def acc_curve(tables: list[dict], grid: list[int]) -> list[float]:
    from mrt.core.metrics import j_at_budget

    vals = [
        statistics.fmean(j_at_budget(t["ends"], t["js"], g) for tab in tables for ts in tab.values() for t in ts)
        for g in grid
    ]
    return vals


def seed_interval(xs: list[float]) -> dict:
    """Mean and a 95% bootstrap interval over seeds (figures measured once per run)."""
    xs = [x for x in xs if x is not None]
    if not xs:
        return {"mean": None, "ci": [None, None], "seeds": 0}
    rng = random.Random(0)
    boots = sorted(statistics.fmean(rng.choice(xs) for _ in xs) for _ in range(REPS))
    return {
        "mean": statistics.fmean(xs),
        "ci": [boots[int(0.025 * REPS)], boots[int(0.975 * REPS) - 1]],
        "seeds": len(xs),
    }


# --------------------------------------------------------------------------- stages


def tune_dir(ns, method: str, i: int) -> Path:
    return Path(ns.out) / "tune" / f"{method}-{i}"


def tune_jobs(ns) -> list:
    jobs = [job(ns, "tune/base", Path(ns.out) / "tune" / "base", S.TUNE_SETTING, None, S.TUNE_SEED, {}, S.VALIDATION)]
    for m in ns.methods:
        for i, values in enumerate(S.tune_grid(m)):
            jobs.append(
                job(ns, f"tune/{m}-{i}", tune_dir(ns, m, i), S.TUNE_SETTING, m, S.TUNE_SEED, values, S.VALIDATION)
            )
    return [j for j in jobs if j]


def select(ns, partial: bool = False) -> dict:
    """Each method's configuration with the best criterion on the validation split, with every
    tuning run's criterion and cost (``partial``: report the finished runs, choose nothing).
    Without the tuning runs on disk, the choice is made by the same rule from the committed
    tuning table (``--tuning``), which must hold every run of each method's grid."""
    if not partial and not (Path(ns.out) / "tune").exists() and Path(ns.tuning).exists():
        return select_from_table(ns)
    budget = S.criterion_budget(S.TUNE_SETTING)
    chosen = {}
    for m in ns.methods:
        rows = []
        for i, values in enumerate(S.tune_grid(m)):
            d = tune_dir(ns, m, i) / "eval"
            if not (d / "summary.json").exists():
                if partial:
                    continue
                raise SystemExit(f"tuning run {d.parent} has not finished; run --stage tune first")
            tab = problem_table(d, [budget])
            auc = 1 - statistics.fmean(per_problem(tab, lambda t: t["regret"][str(budget)]).values())
            train = json.loads((d.parent / "train" / "summary.json").read_text())
            rows.append(
                {
                    "values": values,
                    "criterion": auc,
                    "steps": train["steps"],
                    "sampled_tokens": train["sampled_tokens"],
                    "j_and_summary_tokens": train["extra_sampled_tokens"],
                    "wall_seconds": train["wall_seconds"],
                }
            )
        if partial:
            chosen[m] = {"values": None, "grid": rows, "finished": f"{len(rows)}/{len(S.tune_grid(m))}"}
            continue
        best = max(rows, key=lambda r: r["criterion"])
        chosen[m] = {"values": best["values"], "grid": rows}
    if not partial:
        (Path(ns.out) / "selected.json").write_text(json.dumps(chosen, indent=1))
    return chosen


def _repo_relative(path) -> str:
    """A path as recorded in results: relative to the repository when inside it (a checkout's own
    location is not part of a result)."""
    p = Path(path).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(path)


def select_from_table(ns) -> dict:
    table = json.loads(Path(ns.tuning).read_text())["tuning"]
    chosen = {}
    for m in ns.methods:
        rows = table.get(m, {}).get("grid", [])
        if len(rows) != len(S.tune_grid(m)):
            raise SystemExit(
                f"{ns.tuning}: {m} has {len(rows)} of {len(S.tune_grid(m))} tuning runs; run --stage tune first"
            )
        best = max(rows, key=lambda r: r["criterion"])
        chosen[m] = {"values": best["values"], "grid": rows, "from": _repo_relative(ns.tuning)}
    (Path(ns.out) / "selected.json").write_text(json.dumps(chosen, indent=1))
    return chosen


def final_dir(ns, setting: str, method: str, seed: int) -> Path:
    return Path(ns.out) / "final" / setting / f"{method}-s{seed}"


def final_jobs(ns, chosen: dict) -> list:
    jobs = []
    for setting in ns.settings:
        for m in ["base"] + ns.methods:
            for seed in ns.seeds:
                if record_path(ns, setting, f"{m}-s{seed}").exists():
                    continue
                method, values = (None, {}) if m == "base" else (m, chosen[m]["values"])
                jobs.append(
                    job(
                        ns,
                        f"{setting}/{m}-s{seed}",
                        final_dir(ns, setting, m, seed),
                        setting,
                        method,
                        seed,
                        values,
                        S.TEST,
                    )
                )
    return [j for j in jobs if j]


# --------------------------------------------------------------------------- run records


def metric_keys(setting: str) -> dict[str, str]:
    budgets = S.SETTINGS[setting]["budgets"]
    return {
        "accuracy": _accuracy_key(setting),
        "natural_accuracy": "correct",
        "output_tokens": "tokens",
        **{f"regret_C{c}": f"regret:{c}" for c in budgets},
        **{f"acc_at_{c}": f"acc_at:{c}" for c in budgets},
    }


def curve_grid(setting: str) -> list[int]:
    return list(range(0, 4 * max(S.SETTINGS[setting]["budgets"]) + 1))


def record_path(ns, setting: str, run: str) -> Path:
    return Path(ns.records) / setting / f"{run}.json"


def first_walk_arm(output: str) -> str | None:
    """The first arm node of the trace's first walk (``try <start> <node> ...``), if any."""
    words = output.split()
    for i, w in enumerate(words):
        if w in ("try", "check"):
            return words[i + 2] if i + 2 < len(words) else None
        if w == "</think>":
            return None
    return None


def answer_arm(output: str) -> str | None:
    """The first arm node of the trace's answer (``answer <start> <node> ...``), if any."""
    words = output.split()
    i = words.index("answer") if "answer" in words else -1
    return words[i + 2] if 0 <= i and i + 2 < len(words) else None


def hint_uptake(eval_dir: Path, knobs: list[str]) -> dict:
    """How often the first walk takes the arm the prompt's hint names, and the goal arm; how often
    a trace walks at all, and how often its answer takes the hinted arm (a model that answers
    without walking scores 0 on the first-walk figures, not on the answer one).

    The graph of each problem is rebuilt from its seed; traces of problems without a hint count
    only towards the goal-arm and walk figures."""
    from mrt.tasks import get_task, parse_knobs

    task = get_task("star", **parse_knobs(knobs))
    n = hinted = hint_first = goal_first = walked = hint_answer = 0
    with open(eval_dir / "traces.jsonl") as f:
        for line in f:
            r = json.loads(line)
            if r.get("status", "ok") != "ok":
                continue
            g = task.graph(r["meta"]["seed"])
            arm = first_walk_arm(r["output"])
            n += 1
            walked += arm is not None
            goal_first += arm == g.arms[g.goal_arm][0]
            if g.cue:
                hinted += 1
                hint_first += arm == g.cue
                hint_answer += answer_arm(r["output"]) == g.cue
    return {
        "traces": n,
        "goal_arm_first": goal_first / n if n else None,
        "hinted_traces": hinted,
        "hinted_arm_first": hint_first / hinted if hinted else None,
        "walked": walked / n if n else None,
        "answer_on_hinted_arm": hint_answer / hinted if hinted else None,
    }


def rounded(x):
    return round(x, 6) if isinstance(x, float) else x


def write_record(ns, setting: str, run: str) -> dict:
    """A finished final run's compact figures: per-problem means of every metric, its
    accuracy-vs-thinking-tokens curve, budget forcing, training cost and hint uptake."""
    from mrt.core.figures import eval_figures

    s = S.SETTINGS[setting]
    d = Path(ns.out) / "final" / setting / run
    tab = problem_table(d / "eval", s["budgets"])
    summary = json.loads((d / "eval" / "summary.json").read_text())
    train_file = d / "train" / "summary.json"
    train = json.loads(train_file.read_text()) if train_file.exists() else {}
    grid = curve_grid(setting)
    figs = eval_figures(summary).get("accuracy_at_budget", {})
    rec = {
        "setting": setting,
        "run": run,
        "scale": ns.scale,
        "per_problem": {
            k: {p: rounded(v) for p, v in per_problem(tab, lambda t, key=key: value_of(t, key)).items()}
            for k, key in metric_keys(setting).items()
        },
        "curve": [rounded(x) for x in acc_curve([tab], grid)],
        "accounting": "strict",  # truncated and empty traces are in every figure, as wrong answers
        "n_traces": sum(len(ts) for ts in tab.values()),
        "skipped_traces": sum(v for k, v in summary.get("trace_status", {}).items() if k != "ok"),
        "budget_forcing": {k: figs.get(k, {}).get("j") for k in ("1x", "2x", "4x")},
        "train": {k: train.get(k) for k in ("sampled_tokens", "extra_sampled_tokens", "steps", "wall_seconds")},
        "hint": hint_uptake(d / "eval", s["knobs"]),
    }
    path = record_path(ns, setting, run)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec))
    return rec


def load_records(ns, setting: str, method: str) -> list[dict] | None:
    """The method's records for every seed (written from --out where a finished run has none yet),
    or None while a seed is missing."""
    recs = []
    for seed in ns.seeds:
        run = f"{method}-s{seed}"
        path = record_path(ns, setting, run)
        if not path.exists():
            if not (final_dir(ns, setting, method, seed) / "eval" / "summary.json").exists():
                return None
            write_record(ns, setting, run)
        recs.append(strict_record(json.loads(path.read_text()), _n(ns, S.TEST["n_problems"]), S.TEST))
    return recs


ACC_KEYS = ("accuracy", "natural_accuracy")  # and acc_at_*: accuracy-like figures (0 for a wrong trace)


def _traces_consistent(pp: dict, p: str, n: int, answers: int) -> bool:
    """Can problem p's per-problem means come from n traces? Accuracy and tokens are means of
    integers, J at a budget a mean of multiples of 1/answers: mean * n (* answers) is an integer."""
    for k, v in pp.items():
        if p not in v:
            continue
        m = n if k in ("natural_accuracy", "output_tokens") else n * answers if k.startswith("acc_at_") else 0
        if m and abs(v[p] * m - round(v[p] * m)) > 1e-3:
            return False
    return True


def strict_record(rec: dict, n_problems: int, split: dict, answers: int = 8) -> dict:
    """A run record under the strict accounting (truncated and empty traces count as wrong).

    Records written before it (``accounting`` absent) left those traces out of every per-problem
    mean and kept only their number. Their per-problem counts are recovered from the means
    themselves (:func:`_traces_consistent`: the largest count below the traces per problem that
    the means allow where the full count is impossible); a remainder that cannot be placed so
    (a count that divides the full one) is spread over all problems in proportion. Then each
    problem's accuracy figures are scaled by kept/all traces, regret moved towards 1 in the same
    proportion, and the pooled curve scaled by kept/all traces. Output tokens stay the mean over
    the traces that ended (the left-out traces' lengths are not in the record)."""
    if str(rec.get("accounting", "")).startswith("strict"):
        return rec
    per_trace = split["traces"]
    pp = rec["per_problem"]
    ids = [f"star-{split['problem_seed']}-{i}" for i in range(n_problems)]
    kept = {}
    for p in ids:
        if p not in pp["accuracy"]:
            kept[p] = 0
        elif _traces_consistent(pp, p, per_trace, answers):
            kept[p] = per_trace
        else:
            kept[p] = next(
                (n for n in range(per_trace - 1, 0, -1) if _traces_consistent(pp, p, n, answers)), per_trace - 1
            )
    placed = sum(per_trace - k for k in kept.values())
    rest = rec.get("skipped_traces", 0) - placed
    if rest < 0:
        raise ValueError(f"{rec['run']}: {placed} traces missing from the means, but {rec['skipped_traces']} skipped")
    spread = 1 - rest / max(1, sum(kept.values()))  # the unplaced remainder, as a share of all kept traces
    new = {}
    for k, v in pp.items():
        if k == "output_tokens":
            new[k] = dict(v)
            continue
        acc = k in ACC_KEYS or k.startswith("acc_at_")
        col = {}
        for p in ids:
            w = kept[p] / per_trace * spread
            x = v.get(p, 0.0 if acc else 1.0)
            col[p] = x * w if acc else 1 - (1 - x) * w
        new[k] = col
    total = rec["n_traces"] + rec.get("skipped_traces", 0)
    return {
        **rec,
        "per_problem": new,
        "curve": [c * rec["n_traces"] / total for c in rec["curve"]],
        "n_traces": total,
        "accounting": "strict (recovered from a record that left out truncated and empty traces)",
        "recovered": {"placed": placed, "spread": rest},
    }


def _accuracy_key(setting: str) -> str:
    """The accuracy a setting is judged by: at the budget B where it binds, else at the natural end."""
    b = S.SETTINGS[setting]["thinking_budget"]
    return f"acc_at:{b}" if b else "correct"


def value_of(t: dict, key: str) -> float:
    if key.startswith("acc_at:"):
        return t["acc_at"][key.split(":")[1]]
    if key.startswith("regret:"):
        return t["regret"][key.split(":")[1]]
    return t[key]


def setting_results(ns, setting: str) -> dict:
    """Every figure of a setting, from the runs' records; a method with a seed missing is left out."""
    s = S.SETTINGS[setting]
    budgets = s["budgets"]
    keys = metric_keys(setting)
    grid = curve_grid(setting)
    recs = {m: r for m in ["base"] + ns.methods if (r := load_records(ns, setting, m))}
    per = {m: {k: [x["per_problem"][k] for x in rs] for k in keys} for m, rs in recs.items()}

    def curve(rs):  # pooled over seeds, each seed weighted by its traces
        n = sum(x["n_traces"] for x in rs)
        return [sum(x["curve"][i] * x["n_traces"] for x in rs) / n for i in range(len(grid))]

    out = {
        "what": s["what"],
        "knobs": s["knobs"],
        "thinking_budget": s["thinking_budget"],
        "budgets": budgets,
        "accuracy_is": keys["accuracy"],
        "methods": {},
        "missing": [m for m in ["base"] + ns.methods if m not in recs],
    }
    for m, rs in recs.items():
        row = {k: bootstrap(v) for k, v in per[m].items()}
        row["budget_forcing"] = {k: seed_interval([x["budget_forcing"].get(k) for x in rs]) for k in ("1x", "2x", "4x")}
        row["hint"] = {k: seed_interval([x["hint"][k] for x in rs]) for k in ("hinted_arm_first", "goal_arm_first")}
        row["skipped_traces"] = sum(x.get("skipped_traces", 0) for x in rs)  # counted as wrong
        row["recovered"] = [x.get("recovered") for x in rs if x.get("recovered")]
        if m != "base":
            for k in ("sampled_tokens", "extra_sampled_tokens", "steps", "wall_seconds"):
                row[k] = seed_interval([x["train"].get(k) for x in rs])
        if "grpo" in recs and m != "grpo":
            row["vs_grpo"] = {k: paired(per[m][k], per["grpo"][k]) for k in keys}
            g = recs["grpo"]
            row["token_efficiency_vs_grpo"] = ST.efficiency_vs(
                grid,
                [x["curve"] for x in g],
                [x["curve"] for x in rs],
                [x["n_traces"] for x in g],
                [x["n_traces"] for x in rs],
            )
        if "base" in recs and m != "base":
            row["vs_base"] = {k: paired(per[m][k], per["base"][k]) for k in ("accuracy",)}
            if "grpo" in recs and m != "grpo":
                row["relative_gain_over_base"] = relative_gain(
                    per[m]["accuracy"], per["grpo"]["accuracy"], per["base"]["accuracy"]
                )
        out["methods"][m] = row
    out["curves"] = {m: {"grid": grid[::2], "accuracy": curve(rs)[::2]} for m, rs in recs.items()}
    if "grpo" in recs:
        g = recs["grpo"]
        out["grpo_vs_itself"] = ST.self_null(grid, [x["curve"] for x in g], [x["n_traces"] for x in g])
        out["holm"] = holm_family(out, keys)
    return out


def holm_family(out: dict, keys: dict) -> dict:
    """Holm's correction over every paired comparison with GRPO in a setting: each method other
    than GRPO (the base included) on accuracy and on regret at each budget. p from the bootstrap's
    normal approximation; ``better``: a difference in the method's favour that survives."""
    names = [k for k in keys if k == "accuracy" or k.startswith("regret_C")]
    ps, sign = {}, {}
    for m, row in out["methods"].items():
        for k in names:
            if "vs_grpo" in row:
                d = row["vs_grpo"][k]
                ps[f"{m}:{k}"] = d["p"]
                sign[f"{m}:{k}"] = d["mean"] if k == "accuracy" else -d["mean"]
    adj = ST.holm(ps)
    return {
        "comparisons": len(ps),
        "tests": adj,
        "survive_better": sorted(k for k, v in adj.items() if v["survives"] and sign[k] > 0),
        "survive_worse": sorted(k for k, v in adj.items() if v["survives"] and sign[k] < 0),
    }


def relative_gain(new: list[dict], ref: list[dict], base: list[dict]) -> dict:
    """(acc_new - acc_base) / (acc_ref - acc_base), bootstrapped over seeds and problems (draws
    where GRPO's gain is not positive are undefined and left out, and counted)."""
    import numpy as np

    probs = sorted(set.intersection(*(set(d) for d in new + ref + base)))
    a = np.array([[n[p] - b[p] for p in probs] for n, b in zip(new, base)])
    r = np.array([[f[p] - b[p] for p in probs] for f, b in zip(ref, base)])
    n_s, n_p = a.shape
    rng = np.random.default_rng(1)
    cs, cp = np.zeros((REPS, n_s)), np.zeros((REPS, n_p))
    np.add.at(cs, (np.repeat(np.arange(REPS), n_s), rng.integers(0, n_s, REPS * n_s)), 1)
    np.add.at(cp, (np.repeat(np.arange(REPS), n_p), rng.integers(0, n_p, REPS * n_p)), 1)
    num, den = np.einsum("rs,sp,rp->r", cs, a, cp), np.einsum("rs,sp,rp->r", cs, r, cp)
    ok = np.sort(num[den > 0] / den[den > 0])
    point = a.mean() / r.mean() if r.mean() > 0 else None
    ci = [float(ok[int(0.025 * len(ok))]), float(ok[int(0.975 * len(ok)) - 1])] if len(ok) > 20 else [None, None]
    return {"mean": None if point is None else float(point), "ci": ci, "undefined_draws": int(REPS - len(ok))}


def report(ns, chosen: dict | None) -> dict:
    doc = {
        "command": "python -m benchmarks.didactic_v2 " + " ".join(sys.argv[1:]),
        "declared": {
            "settings": S.SETTINGS,
            "tune_setting": S.TUNE_SETTING,
            "learning_rates": S.LEARNING_RATES,
            "coefficients": S.COEFFICIENTS,
            "token_budget": _n(ns, S.TOKEN_BUDGET),
            "validation": S.VALIDATION,
            "test": S.TEST,
            "criterion": S.CRITERION,
            "final_seeds": ns.seeds,
            "scale": ns.scale,
        },
        "selected": chosen,
        "accounting": "truncated and empty traces count as wrong answers (accuracy 0, regret 1); records made "
        "before this rule are corrected on reading (strict_record); token efficiency at fixed fractions of "
        "GRPO's final accuracy, with GRPO against itself; Holm over each setting's comparisons with GRPO",
        "settings": {},
    }
    for setting in ns.settings:
        doc["settings"][setting] = setting_results(ns, setting)
        if doc["settings"][setting]["missing"]:  # a rerun under way: an earlier complete result stands
            for prior in ns.prior:
                earlier = json.loads(Path(prior).read_text())["settings"].get(setting)
                if earlier and not earlier.get("missing"):
                    doc["settings"][setting] = {
                        **earlier,
                        "source": prior,
                        "missing": [],
                        "rerun_missing": doc["settings"][setting]["missing"],
                    }
                    break
    out = Path(ns.out) / "didactic_v2.json"
    out.write_text(json.dumps(doc, indent=1))
    if ns.results:
        Path(ns.results).parent.mkdir(parents=True, exist_ok=True)
        Path(ns.results).write_text(json.dumps(doc, indent=1))
    plots(doc, Path(ns.plots))
    print(markdown(doc))
    return doc


def fmt(d: dict | None, digits: int = 3) -> str:
    if not d or d.get("mean") is None:
        return "—"
    lo, hi = d["ci"]
    return f"{d['mean']:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]" if lo is not None else f"{d['mean']:.{digits}f}"


def fmt_eff(e: dict | None) -> str:
    """Token efficiency: geometric mean over seed pairs with its t interval, else the seeds reached."""
    if not e:
        return "—"
    if e.get("geomean"):
        g = e["geomean"]
        return f"{g['mean']:.2f}× [{g['ci'][0]:.2f}, {g['ci'][1]:.2f}]"
    return f"reached {e['reached']}"


def fmt_range(s: dict) -> str:
    if s["min"] is None:
        return "never reached"
    nr = f", {s['not_reached']} of {s['n']} not reached" if s["not_reached"] else ""
    return f"{s['min']:.2f}-{s['max']:.2f}× (median {s['median']:.2f}{nr})"


def markdown(doc: dict) -> str:
    lines = []
    for setting, r in doc["settings"].items():
        bs = r["budgets"]
        lines += [
            f"\n### {setting}: {r['what']}\n",
            "| method | accuracy | Δ vs GRPO | "
            + " | ".join(f"regret C={c}" for c in bs)
            + " | tokens | token eff. at 90% | at 95% | rel. gain | first walk on the goal arm |",
            "|---" * (8 + len(bs)) + "|",
        ]
        for m, row in r["methods"].items():
            vs = row.get("vs_grpo", {})
            te = row.get("token_efficiency_vs_grpo") or {}
            lines.append(
                f"| {m} | {fmt(row['accuracy'])} | {fmt(vs.get('accuracy'))} | "
                + " | ".join(fmt(row[f"regret_C{c}"]) for c in bs)
                + f" | {row['output_tokens']['mean']:.1f} | {fmt_eff(te.get('0.9'))} | {fmt_eff(te.get('0.95'))}"
                f" | {fmt(row.get('relative_gain_over_base'), 2)} | {fmt(row.get('hint', {}).get('goal_arm_first'))} |"
            )
        if r.get("grpo_vs_itself"):
            lines.append("")
            for f, n in r["grpo_vs_itself"].items():
                sp, hv = n["seed_pairs"], n["split_halves"]
                lines.append(
                    f"GRPO vs GRPO at {float(f):.0%}: seed pairs {fmt_range(sp)}, split halves {fmt_range(hv)}"
                    f" (ratio ≥ 1.1 in {sp['share_at_least_1.1']:.0%} of pairs)."
                )
        if r.get("holm"):
            h = r["holm"]
            lines.append(
                f"\nHolm over {h['comparisons']} comparisons with GRPO (accuracy and regret at each C, base included):"
                f" better and surviving: {', '.join(h['survive_better']) or 'none'};"
                f" worse and surviving: {', '.join(h['survive_worse']) or 'none'}."
            )
        lines += [
            "",
            "| method | forced 1× | forced 2× | forced 4× | natural-end accuracy | sampled tokens | "
            "J / summary tokens | steps | wall s |",
            "|---" * 9 + "|",
        ]
        for m, row in r["methods"].items():
            bf = row.get("budget_forcing", {})
            cost = " | ".join(
                fmt(row.get(k), 0) if m != "base" else "—"
                for k in ("sampled_tokens", "extra_sampled_tokens", "steps", "wall_seconds")
            )
            lines.append(
                f"| {m} | {fmt(bf.get('1x'))} | {fmt(bf.get('2x'))} | {fmt(bf.get('4x'))} | "
                f"{fmt(row.get('natural_accuracy'))} | {cost} |"
            )
        if r.get("source"):
            lines.append(f"\n(from {Path(r['source']).name}: made before run records and hint figures existed)")
        if r.get("missing"):
            lines.append(f"\n(not all seeds finished: {', '.join(r['missing'])})")
    return "\n".join(lines)


def plots(doc: dict, out: Path) -> list[Path]:
    """Per setting: accuracy vs thinking tokens (pooled over seeds), regret at each budget and
    accuracy at B with 95% intervals, and how often the first walk takes the goal arm."""
    from mrt.report.analysis import pyplot, save_figure

    plt = pyplot()
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for setting, r in doc["settings"].items():
        names = list(r["methods"])
        if not names:
            continue
        fig, axes = plt.subplots(1, 3, figsize=(15, 4))
        ax = axes[0]
        for m in names:
            c = r["curves"][m]
            ax.plot(
                c["grid"],
                c["accuracy"],
                label=m,
                lw=2 if m in ("grpo", "base") else 1.2,
                ls="--" if m == "base" else "-",
            )
        if r["thinking_budget"]:
            ax.axvline(r["thinking_budget"], color="grey", lw=0.8, ls=":")
        ax.set_xlim(0, 1.5 * max(r["budgets"]))
        ax.set(
            xlabel="thinking tokens",
            ylabel="J at that budget (pooled over seeds)",
            title=f"{setting}: accuracy vs thinking budget",
        )
        ax.legend(fontsize=7)
        ax = axes[1]
        bs = r["budgets"]
        width = 0.8 / len(names)
        for i, m in enumerate(names):
            row = r["methods"][m]
            ys = [row[f"regret_C{c}"]["mean"] for c in bs]
            lo = [y - row[f"regret_C{c}"]["ci"][0] for y, c in zip(ys, bs)]
            hi = [row[f"regret_C{c}"]["ci"][1] - y for y, c in zip(ys, bs)]
            ax.errorbar(
                [k + (i - len(names) / 2) * width for k in range(len(bs))],
                ys,
                yerr=[lo, hi],
                fmt="o",
                ms=3,
                capsize=2,
                label=m,
            )
        ax.set_xticks(range(len(bs)), [f"C={c}" for c in bs])
        ax.set(ylabel="normalised regret (95% CI, problems x seeds)", title="regret at each budget")
        ax.legend(fontsize=7)
        ax = axes[2]
        ys = [r["methods"][m]["accuracy"]["mean"] for m in names]
        err = [
            [y - r["methods"][m]["accuracy"]["ci"][0] for y, m in zip(ys, names)],
            [r["methods"][m]["accuracy"]["ci"][1] - y for y, m in zip(ys, names)],
        ]
        ax.errorbar(range(len(names)), ys, yerr=err, fmt="o", capsize=3, label="accuracy")
        if all("hint" in r["methods"][m] for m in names):
            gy = [r["methods"][m]["hint"]["goal_arm_first"]["mean"] for m in names]
            ax.plot(range(len(names)), gy, "s", color="tab:green", label="first walk on the goal arm")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        ax.set(ylabel="share (95% CI)", title=f"accuracy ({r['accuracy_is']}) and first walks")
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = out / f"{setting}.png"
        save_figure(plt, fig, path)
        written.append(path)
    return written


# --------------------------------------------------------------------------- the stages (benchmarks.runner)

STAGE_NAMES = {"tune-status": "plan"}  # the name this design's plan stage had first


def stage_plan(ns) -> dict:
    """The tuning so far (``tuning_status.json``; also to ``--results`` if given): no run."""
    doc = {
        "command": "python -m benchmarks.didactic_v2 " + " ".join(sys.argv[1:]),
        "partial": True,
        "criterion": f"1 - normalised regret at C = {S.criterion_budget(S.TUNE_SETTING)} "
        f"({S.TUNE_SETTING} setting, validation split)",
        "tuning": select(ns, partial=True),
    }
    text = json.dumps(doc, indent=1)
    (Path(ns.out) / "tuning_status.json").write_text(text)
    if ns.results:
        Path(ns.results).write_text(text)
    for m, c in doc["tuning"].items():
        print(m, c["finished"], *(f"{r['values']}: {r['criterion']:.3f}" for r in c["grid"]))
    return doc


def stage_tune(ns) -> None:
    run_jobs(ns, tune_jobs(ns))


def stage_choose(ns, table, stage: str) -> dict:
    chosen = select(ns)
    print("chosen:", json.dumps({m: c["values"] for m, c in chosen.items()}), flush=True)
    return chosen


def stage_final(ns, chosen: dict) -> None:
    run_jobs(ns, final_jobs(ns, chosen))


def stage_report(ns, chosen: dict) -> dict:
    return report(ns, chosen)


def main(argv=None):
    return runner.run_design(sys.modules[__name__], argv)


if __name__ == "__main__":
    main()
