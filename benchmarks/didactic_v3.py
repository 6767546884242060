"""The didactic benchmark, third design (issue 22): one setting with a hint the model can read, a
training budget at which outcome RL moves the model, five methods tuned equally, and one primary
endpoint declared before the final runs.

    python -m benchmarks.didactic_v3 --out runs/bench-v3 --results benchmarks/results/didactic_v3.json --jobs 2

Stages (``--stage``, default ``all``): ``tune`` trains every method on each configuration of its
grid (3 x 3 for every method) with the tuning seeds, which are never final seeds, and scores it
on validation problems (1 - normalised regret at B); ``final`` trains each method's chosen
configuration with every final seed and evaluates base and methods on the held-out problems;
``report`` computes the primary endpoint (per method against GRPO, Holm-corrected) and the
secondary figures from the run records. Every run is an ``mrt train`` and an ``mrt analyze``
subprocess: a rerun skips finished runs and resumes killed ones. Every finished run leaves a
compact record as soon as it finishes, tuning runs in ``--tune-records`` and final runs in
``--records`` (both committed): a run with a record is never run again, the final stage chooses
from the tuning records, and the report needs only the records, so the design can be run across
sessions on fresh checkouts.

Everything is declared in the settings file (``--settings-file``, default
``benchmarks/didactic_v3_settings.py``); a file without a declared primary endpoint is refused,
as are tuning seeds that are also final seeds and grids of unequal size.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
from pathlib import Path

from benchmarks import didactic_stats as ST
from benchmarks import didactic_v2 as D  # trace figures, strict accounting, hint uptake, formatting, plots
from benchmarks import runner

ROOT = Path(__file__).resolve().parents[1]

DEFAULT_SETTINGS = ROOT / "benchmarks" / "didactic_v3_settings.py"
PRIMARY_KEYS = ("metric", "methods", "correction", "alpha", "lower_is_better")
HINT_KEYS = ("hinted_arm_first", "goal_arm_first", "walked", "answer_on_hinted_arm")


class SettingsError(ValueError):
    pass


def load_settings(path: str | Path):
    """The settings module at ``path``, checked: a declared primary endpoint (metric, methods,
    Holm, alpha), tuning seeds disjoint from final seeds, the same number of tuning runs for
    every method."""
    spec = importlib.util.spec_from_file_location("didactic_v3_settings_file", path)
    if spec is None or not Path(path).exists():
        raise SettingsError(f"{path}: no such settings file")
    S = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(S)
    except ValueError as e:  # a design that reads another stage's record refuses to load before it
        raise SettingsError(f"{path}: {e}") from None
    prim = getattr(S, "PRIMARY", None)
    if not isinstance(prim, dict) or any(k not in prim for k in PRIMARY_KEYS):
        raise SettingsError(
            f"{path}: no declared primary endpoint (PRIMARY with {', '.join(PRIMARY_KEYS)}); "
            "declare it before any final run"
        )
    if prim["correction"] != "holm":
        raise SettingsError(f"{path}: PRIMARY correction must be 'holm', got {prim['correction']!r}")
    budgets = S.SETTING["budgets"]
    if prim["metric"] not in [f"regret_C{c}" for c in budgets] + [f"acc_at_{c}" for c in budgets] + ["accuracy"]:
        raise SettingsError(f"{path}: PRIMARY metric {prim['metric']!r} is not a figure of the setting")
    refs = {m: prim.get("reference", {}).get(m, "grpo") for m in prim["methods"]}
    unknown = [m for m in prim["methods"] if m not in S.METHODS or m == refs[m] or refs[m] not in S.METHODS]
    if unknown:
        raise SettingsError(
            f"{path}: PRIMARY methods must be declared methods other than their reference (grpo, or "
            f"PRIMARY['reference'][method], also declared): {unknown}"
        )
    shared = set(S.TUNE_SEEDS) & set(S.FINAL_SEEDS)
    if shared:
        raise SettingsError(f"{path}: tuning seeds {sorted(shared)} are also final seeds")
    try:
        sizes = {m: len(S.tune_grid(m)) for m in S.METHODS}
    except ValueError as e:  # a design whose configurations come from another's finished tuning
        raise SettingsError(f"{path}: {e}") from None
    if len(set(sizes.values())) != 1:
        raise SettingsError(f"{path}: unequal tuning: {sizes}")
    return S


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--settings-file", default=str(DEFAULT_SETTINGS), help="the declared design")
    p.add_argument("--out", default=None, help="working directory (runs, logs; default: runs/bench-NAME)")
    p.add_argument("--results", default="", help="also copy the results JSON here")
    p.add_argument("--stage", default="all", choices=["tune", "final", "report", "all", "plan"])
    p.add_argument("--methods", nargs="+", default=None, help="methods (default: all declared)")
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="final seeds (default: all declared)")
    p.add_argument("--jobs", type=int, default=2, help="runs at once (default: 2)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (default: 1)")
    p.add_argument(
        "--records",
        default=None,
        help="folder of each finished final run's compact record (committed; a run with a record is not run "
        "again; default: benchmarks/results/NAME_runs, NAME the settings file's)",
    )
    p.add_argument(
        "--tune-records",
        default=None,
        help="folder of each finished tuning run's compact record (committed; a run with a record is not run "
        "again; default: benchmarks/results/NAME_tuning_runs)",
    )
    p.add_argument(
        "--tuning",
        default=None,
        help="where the tuning table is written (from the tuning records, which the final stage chooses from; "
        "default: benchmarks/results/NAME_tuning.json)",
    )
    p.add_argument("--plots", default=None, help="folder of the report's plot (default: docs/img/NAME)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply token budget and problem counts (check: 0.05)")
    ns = p.parse_args(argv)
    try:
        ns.S = load_settings(ns.settings_file)
    except SettingsError as e:
        p.error(str(e))
    name = getattr(ns.S, "NAME", "didactic_v3")  # a design is its settings file: it names its records
    results = ROOT / "benchmarks" / "results"
    ns.out = ns.out or f"runs/bench-{name.replace('didactic_', '')}"
    ns.records = ns.records or str(results / f"{name}_runs")
    ns.tune_records = ns.tune_records or str(results / f"{name}_tuning_runs")
    ns.tuning = ns.tuning or str(results / f"{name}_tuning.json")
    ns.plots = ns.plots or str(ROOT / "docs" / "img" / name)
    ns.methods = ns.methods or list(ns.S.METHODS)
    ns.seeds = ns.seeds if ns.seeds is not None else list(ns.S.FINAL_SEEDS)
    for m in ns.methods:
        if m not in ns.S.METHODS:
            p.error(f"unknown method {m!r}; declared: {', '.join(ns.S.METHODS)}")
    if set(ns.seeds) & set(ns.S.TUNE_SEEDS):
        p.error(f"--seeds {sorted(set(ns.seeds) & set(ns.S.TUNE_SEEDS))} are tuning seeds")
    return ns


# --------------------------------------------------------------------------- commands


def _n(ns, x: int) -> int:
    return max(2, int(round(x * ns.scale)))


def train_cmd(ns, method: str, seed: int, values: dict, out: Path) -> list[str]:
    spec = dict(ns.S.METHODS[method])
    algo = spec.pop("algo")
    token_budget = _n(ns, ns.S.TOKEN_BUDGET)
    return D.training_cmd(ns.S.SETTING, algo, seed, out, token_budget, ns.threads, {**spec, **values}, save_every=25)


def eval_cmd(ns, model: str, seed: int, split: dict, out: Path) -> list[str]:
    return D.analysis_cmd(ns.S.SETTING, model, seed, split, _n(ns, split["n_problems"]), out)


def hard_split(S) -> dict | None:
    """A design's optional harder held-out split (``HARD``: its own knobs, problem seed, problem and
    trace counts), evaluated after the held-out one in final runs only."""
    return getattr(S, "HARD", None)


def _job(ns, name: str, d: Path, method: str | None, seed: int, values: dict, split: dict):
    hard = hard_split(ns.S) if split is ns.S.TEST else None
    done = (d / "eval" / "summary.json").exists() and (not hard or (d / "eval-hard" / "summary.json").exists())
    if done:
        return None
    cmds, model = [], ns.S.SETTING["model"]
    if method:
        cmds.append(train_cmd(ns, method, seed, values, d / "train"))
        model = str(d / "train" / "model")
    cmds.append(eval_cmd(ns, model, seed, split, d / "eval"))
    if hard:
        s = {**ns.S.SETTING, "knobs": hard["knobs"]}
        cmds.append(D.analysis_cmd(s, model, seed, hard, _n(ns, hard["n_problems"]), d / "eval-hard"))
    d.mkdir(parents=True, exist_ok=True)
    return name, cmds, d / "log.txt", ns.threads


def run_jobs(ns, jobs: list) -> None:
    """Run the jobs; each finished run leaves its compact record at once (tuning and final)."""

    def after(name: str) -> None:
        stage, run = name.split("/")
        if stage == "final":
            write_record(ns, run)
        elif stage == "tune":
            write_tune_record(ns, run)

    runner.run_jobs(jobs, ns.jobs, ns.out, after=after)


# --------------------------------------------------------------------------- tuning


def tune_dir(ns, method: str, i: int, seed: int) -> Path:
    return Path(ns.out) / "tune" / f"{method}-{i}-s{seed}"


def estimator_cost(train: dict) -> dict:
    """The token positions a run's learned progress estimator processed (forward passes and
    updates: computed, not sampled), from its summary's ``token_split``; none without one."""
    per_step = (train.get("token_split") or {}).get("estimator_tokens_processed_per_step") or 0
    return {"estimator_tokens_processed": round(per_step * train.get("steps", 0))} if per_step else {}


def tune_record_path(ns, run: str) -> Path:
    return Path(ns.tune_records) / f"{run}.json"


def tune_jobs(ns) -> list:
    S = ns.S
    jobs = []
    if not tune_record_path(ns, "base").exists():
        jobs.append(_job(ns, "tune/base", Path(ns.out) / "tune" / "base", None, S.TUNE_SEEDS[0], {}, S.VALIDATION))
    for m in ns.methods:
        for i, values in enumerate(S.tune_grid(m)):
            for seed in S.TUNE_SEEDS:
                run = f"{m}-{i}-s{seed}"
                if not tune_record_path(ns, run).exists():
                    jobs.append(_job(ns, f"tune/{run}", tune_dir(ns, m, i, seed), m, seed, values, S.VALIDATION))
    return [j for j in jobs if j]


def hint(S, eval_dir: Path) -> dict:
    """Hint uptake in the didactic world (none on other tasks)."""
    return D.hint_uptake(eval_dir, S.SETTING["knobs"]) if S.SETTING.get("task", "star") == "star" else {}


def write_tune_record(ns, run: str) -> dict:
    """A finished tuning run's compact record: its configuration, the criterion per validation
    problem (1 - normalised regret at B, strict accounting: truncated and empty traces are wrong),
    hint uptake and cost."""
    S = ns.S
    b = S.SETTING["thinking_budget"] or max(S.SETTING["budgets"])
    d = Path(ns.out) / "tune" / run
    tab = D.problem_table(d / "eval", [b])
    train_file = d / "train" / "summary.json"
    train = json.loads(train_file.read_text()) if train_file.exists() else {}
    values = {}
    if run != "base":
        m, i, _ = run.rsplit("-", 2)
        values = S.tune_grid(m)[int(i)]
    rec = {
        "setting": S.SETTING["name"],
        "run": run,
        "values": values,
        "scale": ns.scale,
        "accounting": "strict",
        "criterion_per_problem": {
            p: D.rounded(1 - v) for p, v in D.per_problem(tab, lambda t: t["regret"][str(b)]).items()
        },
        "n_traces": sum(len(ts) for ts in tab.values()),
        "hint": hint(S, d / "eval"),
        "train": {k: train.get(k) for k in ("steps", "sampled_tokens", "extra_sampled_tokens", "wall_seconds")},
    }
    path = tune_record_path(ns, run)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec))
    return rec


def _tune_record(ns, run: str) -> dict | None:
    """The run's record, written from its folder if it finished here but has none yet."""
    if not tune_record_path(ns, run).exists():
        if not (Path(ns.out) / "tune" / run / "eval" / "summary.json").exists():
            return None
        write_tune_record(ns, run)
    return json.loads(tune_record_path(ns, run).read_text())


def tuning_table(ns) -> dict:
    """Every finished tuning run's criterion (1 - regret at B on the validation split, strict
    accounting), per-problem values for the tie check, and cost, from the tuning records."""
    S = ns.S
    table = {}
    base = _tune_record(ns, "base")
    if base:
        table["base"] = {"criterion": statistics.fmean(base["criterion_per_problem"].values()), "hint": base["hint"]}
    for m in S.METHODS:
        rows = []
        for i, values in enumerate(S.tune_grid(m)):
            recs = [_tune_record(ns, f"{m}-{i}-s{seed}") for seed in S.TUNE_SEEDS]
            if not all(recs):
                continue
            per = [r["criterion_per_problem"] for r in recs]
            rows.append(
                {
                    "values": values,
                    "criterion": statistics.fmean(statistics.fmean(x.values()) for x in per),
                    "per_problem": {p: statistics.fmean(x[p] for x in per) for p in per[0]},
                    "hint": {k: D.seed_interval([r["hint"].get(k) for r in recs]) for k in HINT_KEYS},
                    **{k: statistics.fmean(r["train"][k] or 0 for r in recs) for k in recs[0]["train"]},
                }
            )
        table[m] = {"grid": rows, "finished": f"{len(rows)}/{len(S.tune_grid(m))}"}
    return table


def choose(S, table: dict, methods: list[str]) -> dict:
    """Each method's best configuration on the criterion; the margin over the runner-up with its
    standard error (paired over validation problems), and whether it is a tie (margin < TIE_SE x SE)."""
    chosen = {}
    for m in methods:
        rows = table.get(m, {}).get("grid", [])
        if len(rows) != len(S.tune_grid(m)):
            raise SystemExit(f"{m}: {len(rows)} of {len(S.tune_grid(m))} tuning runs finished; run --stage tune first")
        ranked = sorted(rows, key=lambda r: -r["criterion"])
        best = ranked[0]
        if len(ranked) == 1:  # one configuration (a design that takes another's choice): nothing to choose
            chosen[m] = {"values": best["values"], "margin": None, "margin_se": None, "tie": False}
            continue
        second = ranked[1]
        diff = [best["per_problem"][p] - second["per_problem"][p] for p in best["per_problem"]]
        se = statistics.stdev(diff) / len(diff) ** 0.5 if len(diff) > 1 else 0.0
        margin = best["criterion"] - second["criterion"]
        chosen[m] = {"values": best["values"], "margin": margin, "margin_se": se, "tie": margin <= S.TIE_SE * se}
    return chosen


# --------------------------------------------------------------------------- final runs and records


def final_dir(ns, run: str) -> Path:
    return Path(ns.out) / "final" / run


def record_path(ns, run: str) -> Path:
    return Path(ns.records) / f"{run}.json"


def final_jobs(ns, chosen: dict) -> list:
    jobs = []
    for seed in ns.seeds:  # seed by seed: a partial run has whole seeds to report (--seeds)
        for m in ["base"] + ns.methods:
            run = f"{m}-s{seed}"
            if record_path(ns, run).exists():
                continue
            method, values = (None, {}) if m == "base" else (m, chosen[m]["values"])
            jobs.append(_job(ns, f"final/{run}", final_dir(ns, run), method, seed, values, ns.S.TEST))
    return [j for j in jobs if j]


def metric_keys(S) -> dict[str, str]:
    budgets, b = S.SETTING["budgets"], S.SETTING["thinking_budget"]
    return {
        "accuracy": f"acc_at:{b}" if b else "correct",
        "natural_accuracy": "correct",
        "output_tokens": "tokens",
        **{f"regret_C{c}": f"regret:{c}" for c in budgets},
        **{f"acc_at_{c}": f"acc_at:{c}" for c in budgets},
    }


def curve_grid(S) -> list[int]:
    return list(range(0, 4 * max(S.SETTING["budgets"]) + 1))


def write_record(ns, run: str) -> dict:
    """A finished final run's compact figures (strict accounting: every trace, truncated and empty
    ones as wrong answers)."""
    from mrt.core.figures import eval_figures

    S, d = ns.S, final_dir(ns, run)
    tab = D.problem_table(d / "eval", S.SETTING["budgets"])
    summary = json.loads((d / "eval" / "summary.json").read_text())
    train_file = d / "train" / "summary.json"
    train = json.loads(train_file.read_text()) if train_file.exists() else {}
    figs = eval_figures(summary).get("accuracy_at_budget", {})
    rec = {
        "setting": S.SETTING["name"],
        "run": run,
        "scale": ns.scale,
        "accounting": "strict",
        "per_problem": {
            k: {p: D.rounded(v) for p, v in D.per_problem(tab, lambda t, key=key: D.value_of(t, key)).items()}
            for k, key in metric_keys(S).items()
        },
        "curve": [D.rounded(x) for x in D.acc_curve([tab], curve_grid(S))],
        "n_traces": sum(len(ts) for ts in tab.values()),
        "skipped_traces": sum(v for k, v in summary.get("trace_status", {}).items() if k != "ok"),
        "budget_forcing": {k: figs.get(k, {}).get("j") for k in ("1x", "2x", "4x")},
        "train": {
            **{k: train.get(k) for k in ("sampled_tokens", "extra_sampled_tokens", "steps", "wall_seconds")},
            **estimator_cost(train),
        },
        "hint": hint(S, d / "eval"),
    }
    if hard_split(S) and (d / "eval-hard" / "summary.json").exists():
        hard = D.problem_table(d / "eval-hard", S.SETTING["budgets"])
        rec["hard"] = {
            k: {p: D.rounded(v) for p, v in D.per_problem(hard, lambda t, key=key: D.value_of(t, key)).items()}
            for k, key in metric_keys(S).items()
        }
    path = record_path(ns, run)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec))
    return rec


def load_records(ns, method: str) -> list[dict] | None:
    recs = []
    for seed in ns.seeds:
        run = f"{method}-s{seed}"
        if not record_path(ns, run).exists():
            if not (final_dir(ns, run) / "eval" / "summary.json").exists():
                return None
            write_record(ns, run)
        recs.append(json.loads(record_path(ns, run).read_text()))
    return recs


# --------------------------------------------------------------------------- results


def primary_endpoint(S, per: dict[str, list[dict]]) -> dict:
    """The declared primary endpoint: per method, the paired difference from its reference (GRPO,
    or ``PRIMARY["reference"][method]``) with the bootstrap interval at the Bonferroni level
    1 - alpha/k, Holm-adjusted p (from the bootstrap's normal approximation), the seed-level t
    interval at the same level, and the verdict. k is the number of declared methods; a declared
    method without runs counts in the correction with p = 1."""
    P = S.PRIMARY
    refs = {m: P.get("reference", {}).get(m, "grpo") for m in P["methods"]}
    missing_refs = sorted({r for r in refs.values() if r not in per})
    if missing_refs:
        return {"declared": P, "missing": missing_refs}
    k = len(P["methods"])
    level = 1 - P["alpha"] / k
    rows = {m: ST.paired(per[m], per[refs[m]], level=level) for m in P["methods"] if m in per}
    adj = ST.holm({m: rows[m]["p"] if m in rows else 1.0 for m in P["methods"]}, P["alpha"])
    out = {}
    for m, r in rows.items():
        better = r["mean"] < 0 if P["lower_is_better"] else r["mean"] > 0
        ref = "GRPO" if refs[m] == "grpo" else refs[m]
        verdict = (
            (f"better than {ref}" if better else f"worse than {ref}") if adj[m]["survives"] else "no difference shown"
        )
        out[m] = {**r, "level": level, "p_holm": adj[m]["p_holm"], "verdict": verdict, "reference": refs[m]}
    return {"declared": P, "k": k, "level": level, "methods": out, "missing": [m for m in P["methods"] if m not in per]}


LEAD_CURVE_POINTS = (0, 4, 6, 8, 12, 16, 20, 32, 48, 64, 128, 256)  # thinking tokens


def lead_split(S, recs: dict[str, list[dict]]) -> dict:
    """Secondary, added after the results (issue 36): where each method's difference from GRPO in
    regret at the primary endpoint's budget sits, from the records alone, per seed (paired), 95% seed-level t intervals.

    Per run: J(empty) = the step curve at 0 tokens (the answer forced with no thinking); regret at B
    on the declared, interpolated curve (the primary metric); the same integral on the step curve
    (an answer forced at t, the curve the plots draw: 1 - the mean of the curve over [0, B)); and
    regret = start - progress, start = 1 - J(empty), progress = the area between the curve and its
    start, over B (docs/concepts.md, regret split). The differences: method - GRPO."""
    B = int(S.PRIMARY["metric"].rsplit("_", 1)[-1].lstrip("C"))  # regret_C16, acc_at_128: the budget
    key = f"regret_C{B}"

    def per_run(x: dict) -> dict:
        j0 = x["curve"][0]
        reg = statistics.fmean(x["per_problem"][key].values())
        step = 1 - statistics.fmean(x["curve"][:B])
        return {
            "regret": reg,
            "regret_step": step,
            "start": 1 - j0,
            "progress": (1 - j0) - reg,
            "progress_step": (1 - j0) - step,
            "accuracy": statistics.fmean(x["per_problem"]["accuracy"].values()),
            "natural_accuracy": statistics.fmean(x["per_problem"]["natural_accuracy"].values()),
            "truncated": x.get("skipped_traces", 0) / x["n_traces"],
            "curve": [x["curve"][t] for t in LEAD_CURVE_POINTS],
        }

    if "grpo" not in recs:
        return {}
    g = {x["run"].rsplit("-s", 1)[1]: per_run(x) for x in recs["grpo"]}
    out = {"budget": B, "curve_points": list(LEAD_CURVE_POINTS), "methods": {}}
    for m, rs in recs.items():
        mine = {x["run"].rsplit("-s", 1)[1]: per_run(x) for x in rs}
        row = {
            k: ST.t_interval([v[k] for v in mine.values()])
            for k in ("regret", "regret_step", "start", "progress", "progress_step", "natural_accuracy", "truncated")
        }
        if m != "grpo":
            seeds = [sd for sd in mine if sd in g]
            d = {k: [mine[sd][k] - g[sd][k] for sd in seeds] for k in mine[seeds[0]] if k != "curve"}
            row["vs_grpo"] = {k: ST.t_interval(v) for k, v in d.items()}
            row["vs_grpo"]["seeds_better_step"] = sum(x < 0 for x in d["regret_step"])
            row["vs_grpo"]["seeds_better"] = sum(x < 0 for x in d["regret"])
            dr, ds = statistics.fmean(d["regret"]), statistics.fmean(d["start"])
            row["vs_grpo"]["share_from_the_answer_before_thinking"] = ds / dr if abs(dr) > 1e-12 else None
            row["vs_grpo"]["curve"] = [
                ST.t_interval([mine[sd]["curve"][i] - g[sd]["curve"][i] for sd in seeds])
                for i in range(len(LEAD_CURVE_POINTS))
            ]
        out["methods"][m] = row
    return out


def results(ns) -> dict:
    S = ns.S
    keys = metric_keys(S)
    grid = curve_grid(S)
    recs = {m: r for m in ["base"] + ns.methods if (r := load_records(ns, m))}
    per = {m: {k: [x["per_problem"][k] for x in rs] for k in keys} for m, rs in recs.items()}
    metric = S.PRIMARY["metric"]
    r = {
        "what": S.SETTING["what"],
        "knobs": S.SETTING["knobs"],
        "thinking_budget": S.SETTING["thinking_budget"],
        "budgets": S.SETTING["budgets"],
        "accuracy_is": keys["accuracy"],
        "primary": primary_endpoint(S, {m: p[metric] for m, p in per.items()}),
        "methods": {},
        "missing": [m for m in ["base"] + ns.methods if m not in recs],
    }
    for m, rs in recs.items():
        row = {"secondary": True, **{k: ST.bootstrap(v) for k, v in per[m].items()}}
        row["seed_level"] = {k: ST.t_interval([statistics.fmean(x.values()) for x in v]) for k, v in per[m].items()}
        row["budget_forcing"] = {k: D.seed_interval([x["budget_forcing"].get(k) for x in rs]) for k in ("1x", "2x")}
        row["hint"] = {k: D.seed_interval([x["hint"].get(k) for x in rs]) for k in HINT_KEYS}
        row["skipped_traces"] = sum(x.get("skipped_traces", 0) for x in rs)
        if m != "base":
            for k in ("sampled_tokens", "extra_sampled_tokens", "steps", "wall_seconds"):
                row[k] = D.seed_interval([x["train"].get(k) for x in rs])
            if all("estimator_tokens_processed" in x["train"] for x in rs):  # token positions, not sampled
                row["estimator_tokens_processed"] = D.seed_interval(
                    [x["train"]["estimator_tokens_processed"] for x in rs]
                )
        if "grpo" in recs and m != "grpo":
            row["vs_grpo"] = {k: ST.paired(per[m][k], per["grpo"][k]) for k in keys}
            g = recs["grpo"]
            row["token_efficiency_vs_grpo"] = ST.efficiency_vs(
                grid,
                [x["curve"] for x in g],
                [x["curve"] for x in rs],
                [x["n_traces"] for x in g],
                [x["n_traces"] for x in rs],
            )
        if "base" in recs and m != "base":
            row["vs_base"] = {"accuracy": ST.paired(per[m]["accuracy"], per["base"]["accuracy"])}
            if "grpo" in recs and m != "grpo":  # the paper's headline ratio: its gain over the base / GRPO's
                row["relative_gain_vs_grpo"] = ST.relative_gain(
                    per[m]["accuracy"], per["grpo"]["accuracy"], per["base"]["accuracy"]
                )
        if all("hard" in x for x in rs):  # the harder held-out split: secondary
            hard = {k: [x["hard"][k] for x in rs] for k in keys}
            row["hard"] = {k: ST.bootstrap(v) for k, v in hard.items()}
            if "grpo" in recs and m != "grpo" and all("hard" in x for x in recs["grpo"]):
                row["hard_vs_grpo"] = {k: ST.paired(v, [x["hard"][k] for x in recs["grpo"]]) for k, v in hard.items()}
        r["methods"][m] = row

    def curve(rs):
        return ST.pooled([x["curve"] for x in rs], [x["n_traces"] for x in rs])

    r["curves"] = {m: {"grid": grid[::2], "accuracy": curve(rs)[::2]} for m, rs in recs.items()}
    r["lead_split"] = lead_split(S, recs)
    if "grpo" in recs:
        g = recs["grpo"]
        r["grpo_vs_itself"] = ST.self_null(grid, [x["curve"] for x in g], [x["n_traces"] for x in g])
    return r


def entry_module() -> str:
    """The module this process was started as (a wrapper such as ``benchmarks.real_smollm2`` names
    itself), ``benchmarks.didactic_v3`` otherwise."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    name = getattr(spec, "name", "") or ""
    return name if name.startswith("benchmarks.") else "benchmarks.didactic_v3"


def has_hint(setting: dict) -> bool:
    """The hint columns belong to the star world's settings only."""
    return setting.get("task", "star") == "star"


def report(ns, chosen: dict | None) -> dict:
    S = ns.S
    doc = {
        "command": f"python -m {entry_module()} " + " ".join(sys.argv[1:]),
        "declared": {
            "setting": S.SETTING,
            "methods": S.METHODS,
            "learning_rates": S.LEARNING_RATES,
            "second_axis": getattr(S, "SECOND_AXIS", {}),
            "token_budget": _n(ns, S.TOKEN_BUDGET),
            "tune_seeds": S.TUNE_SEEDS,
            "final_seeds": ns.seeds,
            "validation": S.VALIDATION,
            "test": S.TEST,
            **({"hard": hard_split(S)} if hard_split(S) else {}),
            "criterion": S.CRITERION,
            "primary": S.PRIMARY,
            "scale": ns.scale,
        },
        "accounting": "truncated and empty traces count as wrong answers (accuracy 0, regret 1)",
        "selected": chosen,
        "settings": {S.SETTING["name"]: results(ns)},
    }
    text = json.dumps(doc, indent=1)
    (Path(ns.out) / f"{getattr(S, 'NAME', 'didactic_v3')}.json").write_text(text)
    if ns.results:
        Path(ns.results).parent.mkdir(parents=True, exist_ok=True)
        Path(ns.results).write_text(text)
    if not doc["settings"][S.SETTING["name"]]["missing"]:
        D.plots(doc, Path(ns.plots))
    print(markdown(doc))
    return doc


def markdown(doc: dict) -> str:
    lines = []
    for name, r in doc["settings"].items():
        P = r["primary"]
        lines.append(f"\n### {name}: {r['what']}\n")
        ref = "its reference" if P["declared"].get("reference") else "GRPO"
        lines.append(f"**Primary endpoint** ({P['declared']['name']}, `{P['declared']['metric']}`, method − {ref}):\n")
        if "methods" not in P:
            lines.append(f"(not computed: missing {', '.join(P['missing'])})")
        else:
            if P["missing"]:
                lines.append(f"(no runs yet for {', '.join(P['missing'])}: counted in Holm's correction with p = 1)\n")
            lines += [
                f"| method | Δ vs {ref} | {P['level']:.1%} bootstrap interval | {P['level']:.1%} seed-level t | "
                "Holm p | verdict |",
                "|---|---|---|---|---|---|",
            ]
            for m, x in P["methods"].items():
                t = x["t_ci"]
                tt = f"[{t[0]:+.4f}, {t[1]:+.4f}]" if t[0] is not None else "— (one seed)"
                vs = f" (vs {x['reference']})" if x.get("reference", "grpo") != "grpo" else ""
                lines.append(
                    f"| {m}{vs} | {x['mean']:+.4f} | [{x['ci'][0]:+.4f}, {x['ci'][1]:+.4f}] | "
                    f"{tt} | {x['p_holm']:.3f} | {x['verdict']} |"
                )
        bs = r["budgets"]
        hinted = has_hint(doc.get("declared", {}).get("setting", {}))
        hint_heads = " hinted arm first | walks at all | answer on hinted arm | goal arm first |" if hinted else ""
        lines += [
            "\nSecondary (95% intervals, not corrected for multiplicity):\n",
            "| method | accuracy | Δ vs GRPO | "
            + " | ".join(f"regret C={c}" for c in bs)
            + f" | tokens | token eff. at 90% | at 95% |{hint_heads} steps |",
            "|---" * ((12 if hinted else 8) + len(bs)) + "|",
        ]
        for m, row in r["methods"].items():
            te = row.get("token_efficiency_vs_grpo") or {}
            lines.append(
                f"| {m} | {D.fmt(row['accuracy'])} | {D.fmt(row.get('vs_grpo', {}).get('accuracy'))} | "
                + " | ".join(D.fmt(row[f"regret_C{c}"]) for c in bs)
                + f" | {row['output_tokens']['mean']:.1f} | {D.fmt_eff(te.get('0.9'))} | {D.fmt_eff(te.get('0.95'))} | "
                + (
                    " | ".join(D.fmt(row["hint"][k]) for k in ("hinted_arm_first", "walked", "answer_on_hinted_arm"))
                    + f" | {D.fmt(row['hint']['goal_arm_first'])} | "
                    if hinted
                    else ""
                )
                + f"{D.fmt(row.get('steps'), 0)} |"
            )
        hard = {m: row for m, row in r["methods"].items() if "hard" in row}
        if hard:
            metric = P["declared"]["metric"]
            lines += [
                f"\nHarder held-out split (secondary, 95% intervals), `{metric}`:\n",
                "| method | value | Δ vs GRPO |",
                "|---|---|---|",
            ]
            for m, row in hard.items():
                d = row.get("hard_vs_grpo", {}).get(metric)
                lines.append(f"| {m} | {D.fmt(row['hard'][metric])} | {D.fmt(d)} |")
        gains = {m: row["relative_gain_vs_grpo"] for m, row in r["methods"].items() if "relative_gain_vs_grpo" in row}
        if gains:
            lines += [
                "\nThe paper's relative gain (secondary): accuracy gain over the base, relative to GRPO's "
                "((method - base) / (GRPO - base), 95% bootstrap over seeds and problems):\n",
                "| method | gain over base | GRPO's gain | ratio | interval |",
                "|---|---|---|---|---|",
            ]
            for m, x in gains.items():
                ci = (
                    "— (GRPO's gain is not above 0 in enough draws)"
                    if x["ci"] is None
                    else (f"[{x['ci'][0]:.2f}, {x['ci'][1]:.2f}]")
                )
                ratio = "—" if x["mean"] is None else f"{x['mean']:.2f}"
                lines.append(f"| {m} | {x['new_gain']:+.4f} | {x['ref_gain']:+.4f} | {ratio} | {ci} |")
        for f, n in (r.get("grpo_vs_itself") or {}).items():
            lines.append(
                f"\nGRPO vs GRPO at {float(f):.0%}: seed pairs {D.fmt_range(n['seed_pairs'])}, "
                f"split halves {D.fmt_range(n['split_halves'])}."
            )
        if r.get("missing"):
            lines.append(f"\n(runs missing: {', '.join(r['missing'])})")
        lines += lead_markdown(r.get("lead_split") or {})
    return "\n".join(lines)


def lead_markdown(ls: dict) -> list[str]:
    """The table of :func:`lead_split` (secondary, added after the results)."""
    if not ls:
        return []

    def f(x):
        return (
            f"{x['mean']:+.3f} [{x['ci'][0]:+.3f}, {x['ci'][1]:+.3f}]"
            if x and x.get("ci", [None])[0] is not None
            else "—"
        )

    b = ls["budget"]
    grpo_truncated = ls["methods"]["grpo"]["truncated"]["mean"]
    lines = [
        f"\n**Where the difference from GRPO at B = {b} sits** (secondary, added after the results; method − GRPO, "
        "paired by seed, 95% seed-level t intervals). Regret = before thinking (1 − J(empty)) − what thinking "
        "added (the area between the curve and its start, over B); the step curve is the answer forced at t.\n",
        "| method | Δ regret (declared) | Δ before thinking | Δ added by thinking | share of Δ regret before thinking "
        "| Δ regret, step curve | seeds better on the step curve | Δ accuracy at B | Δ accuracy at the natural end "
        "| truncated traces, method / GRPO |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m, row in ls["methods"].items():
        v = row.get("vs_grpo")
        if not v:
            continue
        sh = v.get("share_from_the_answer_before_thinking")
        lines.append(
            f"| {m} | {f(v['regret'])} | {f(v['start'])} | {f(v['progress'])} | {'—' if sh is None else f'{sh:.2f}'} "
            f"| {f(v['regret_step'])} | {v['seeds_better_step']} of {v['regret']['seeds']} | {f(v['accuracy'])} "
            f"| {f(v['natural_accuracy'])} | {row['truncated']['mean']:.3f} / {grpo_truncated:.3f} |"
        )
    pts = ls["curve_points"]
    lines += [
        "\nAccuracy (step curve) minus GRPO's, by thinking tokens (mean over seeds):\n",
        "| method | " + " | ".join(str(t) for t in pts) + " |",
        "|---" * (len(pts) + 1) + "|",
    ]
    for m, row in ls["methods"].items():
        v = row.get("vs_grpo")
        if v:
            lines.append(f"| {m} | " + " | ".join(f"{c['mean']:+.3f}" for c in v["curve"]) + " |")
    return lines


def tuning_markdown(S, table: dict) -> str:
    """The tuning table so far: per method and configuration, the criterion on validation
    problems, (star world) the share of traces that walk at all and the share of answers on the
    hinted arm, and the training steps and seconds; the best finished configuration of each method
    is marked."""
    hinted = has_hint(S.SETTING)

    def share(r: dict, k: str) -> str:
        v = r["hint"].get(k, {}).get("mean")
        return "—" if v is None else f"{v:.2f}"

    cols = " walks at all | answer on hinted arm |" if hinted else ""
    blank = " | |" if hinted else ""
    lines = [
        f"| method | configuration | 1 − regret at B (validation) |{cols} steps | train s |",
        "|---" * (7 if hinted else 5) + "|",
    ]
    if "base" in table:
        lines.append(f"| base | — | {table['base']['criterion']:.4f} |{blank} | |")
    for m in S.METHODS:
        rows = table.get(m, {}).get("grid", [])
        best = max(rows, key=lambda r: r["criterion"]) if rows else None
        done = len(rows) == len(S.tune_grid(m))
        if done:
            c = choose(S, table, [m])[m]
            tie = f"; a tie: margin {c['margin']:.4f}, SE {c['margin_se']:.4f}" if c["tie"] else ""
        for r in rows:
            conf = ", ".join(f"{k} {v}" for k, v in r["values"].items())
            mark = "" if r is not best else f" (**chosen**{tie})" if done else " (best so far)"
            hint = f" {share(r, 'walked')} | {share(r, 'answer_on_hinted_arm')} |" if hinted else ""
            lines.append(
                f"| {m} | {conf}{mark} | {r['criterion']:.4f} |{hint} {r['steps']:.0f} | {r['wall_seconds']:.0f} |"
            )
        lines.append(f"| {m} | ({table.get(m, {}).get('finished', '0/9')} finished) | |{blank} | |")
    return "\n".join(lines)


def plan(ns) -> dict:
    """How many runs the design holds and how many are still to do (nothing is started)."""
    S = ns.S
    tune = ["base"] + [f"{m}-{i}-s{s}" for m in ns.methods for i in range(len(S.tune_grid(m))) for s in S.TUNE_SEEDS]
    final = [f"{m}-s{s}" for m in ["base"] + ns.methods for s in ns.seeds]
    walls: dict[str, list] = {}
    for r in tune:
        if tune_record_path(ns, r).exists():
            w = json.loads(tune_record_path(ns, r).read_text())["train"].get("wall_seconds")
            walls.setdefault(r.rsplit("-", 2)[0], []).append(w or 0)
    out = {
        "tuning_runs": len(tune),
        "tuning_runs_to_do": sum(not tune_record_path(ns, r).exists() for r in tune),
        "tuning_train_seconds_measured": {m: round(statistics.fmean(w)) for m, w in walls.items()},
        "final_runs": len(final),
        "final_runs_without_record": sum(not record_path(ns, r).exists() for r in final),
        "training_tokens_per_run": _n(ns, S.TOKEN_BUDGET),
    }
    prior = getattr(S, "RUN_SECONDS", None)  # a design's per-run seconds here, from measured rates
    if prior:
        measured = [w for ws in walls.values() for w in ws if w]
        own = {m: statistics.fmean([w for w in ws if w]) for m, ws in walls.items() if any(ws)}
        train = {**prior.get("train_by_method", {}), **own}  # its own tuning runs, else the design's prior
        fallback = statistics.fmean(measured) if measured else prior["train"]
        tune_left = [r for r in tune if not tune_record_path(ns, r).exists()]
        final_left = [r for r in final if not record_path(ns, r).exists()]
        methods_left = [r.rsplit("-", 2)[0] for r in tune_left] + [r.rsplit("-", 1)[0] for r in final_left]
        left = (
            sum(train.get(m, fallback) for m in methods_left if m != "base")  # base runs only evaluate
            + len(tune_left) * prior["eval_validation"]
            + len(final_left) * prior["eval_test"]
        )
        out["hours_left_one_run_at_a_time"] = round(left / 3600, 1)
        out["seconds_per_run_from"] = "the tuning records" if measured else prior["source"]
    print(json.dumps(out))
    print(tuning_markdown(S, tuning_table(ns)))
    return out


# --------------------------------------------------------------------------- the stages (benchmarks.runner)


def stage_plan(ns) -> dict:
    return plan(ns)


def stage_tune(ns) -> dict:
    """The tuning runs without a record, then the tuning table (written to ``--tuning``)."""
    run_jobs(ns, tune_jobs(ns))
    table = tuning_table(ns)
    Path(ns.tuning).parent.mkdir(parents=True, exist_ok=True)
    Path(ns.tuning).write_text(json.dumps({"tuning": table}, indent=1))
    return table


def stage_choose(ns, table: dict | None, stage: str) -> dict | None:
    """Each method's configuration, chosen from the committed tuning records (None while tuning
    is unfinished: the report then shows the records without chosen configurations)."""
    table = tuning_table(ns)  # from the committed tuning records
    complete = all(table[m]["finished"] == f"{len(ns.S.tune_grid(m))}/{len(ns.S.tune_grid(m))}" for m in ns.methods)
    if complete:
        Path(ns.tuning).parent.mkdir(parents=True, exist_ok=True)
        Path(ns.tuning).write_text(json.dumps({"tuning": table}, indent=1))
    if stage == "report" and not complete:
        print("tuning is not finished: reporting the records without the chosen configurations", flush=True)
        return None
    chosen = choose(ns.S, table, ns.methods)
    if chosen:
        (Path(ns.out) / "selected.json").write_text(json.dumps(chosen, indent=1))
        print("chosen:", json.dumps({m: c["values"] for m, c in chosen.items()}), flush=True)
    return chosen


def stage_final(ns, chosen: dict | None) -> None:
    run_jobs(ns, final_jobs(ns, chosen))


def stage_report(ns, chosen: dict | None) -> dict:
    return report(ns, chosen)


def main(argv=None):
    return runner.run_design(sys.modules[__name__], argv)


if __name__ == "__main__":
    main()
