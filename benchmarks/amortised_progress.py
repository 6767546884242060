"""Dense MRT at outcome RL's token cost: GRPO vs mrt-dense with Monte Carlo J vs mrt-dense with an
on-policy progress estimator (``--j-source mixed``), at equal sampled tokens.

The setting, problem sets, token budget and evaluation are those of the didactic benchmark's
second design (``benchmarks/didactic_v2_settings.py``, its ``budget`` setting: thinking cut at
B = 16 tokens, 64K sampled tokens per run). GRPO's and mrt-dense's runs are its committed
records (``benchmarks/results/didactic_v2_runs/budget``, the same command for seeds 0-2). The
estimator form uses mrt-dense's tuned learning rate and alpha (not tuned again: the decisive
benchmark tunes it), and its own settings are declared below before any final run.

Stages:
- ``pilot``: the two estimator forms (a head on the policy's hidden states, a separate value
  model), one training run each on a tuning seed that is never a final seed; the form with the
  lower mean Brier score against fresh Monte Carlo J over training is used (cost as tie-break).
- ``final``: the estimator form on the final seeds; each finished run leaves a compact record.
- ``report``: accuracy and regret at the budget with paired bootstrap intervals against GRPO
  (over problems and seeds), steps reached, and sampled tokens per step split by use.

    python -m benchmarks.amortised_progress --out runs/bench-amortised \\
        --results benchmarks/results/amortised_progress.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from benchmarks import didactic_v2 as V
from benchmarks import didactic_v2_settings as S
from benchmarks import runner

ROOT = Path(__file__).resolve().parents[1]

SETTING = "budget"
SEEDS = [0, 1, 2]
PILOT_SEED = 100  # never a final seed
ESTIMATOR = {"j_source": "mixed", "mc_share": 0.05}  # declared before the pilot and the final runs
FORMS = ["head", "model"]
NEW = "mrt-dense-est"  # the method's name in records and tables
COMMITTED = ROOT / "benchmarks" / "results" / "didactic_v2_runs"


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/bench-amortised", help="working directory (runs, logs)")
    p.add_argument("--results", default="", help="also write the results JSON here")
    p.add_argument("--stage", default="all", choices=["pilot", "final", "report", "all"], help="what to run")
    p.add_argument("--seeds", nargs="+", type=int, default=SEEDS, help="final seeds (default: 0 1 2)")
    p.add_argument("--jobs", type=int, default=2, help="runs at once")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument(
        "--records",
        default=str(ROOT / "benchmarks" / "results" / "amortised_progress_runs"),
        help="folder of the new runs' compact records (a run with a record is not run again)",
    )
    p.add_argument(
        "--form", default="", choices=["", *FORMS], help="estimator form of the final runs (default: the pilot's)"
    )
    p.add_argument("--scale", type=float, default=1.0, help="multiply the token budget and problem counts")
    p.add_argument("--plots", default=str(ROOT / "docs" / "img" / "amortised"), help="folder of the calibration plot")
    ns = p.parse_args(argv)
    ns.tuning = str(ROOT / "benchmarks" / "results" / "didactic_v2_tuning.json")
    ns.methods = ["mrt-dense"]
    return ns


def dense_values(ns) -> dict:
    """mrt-dense's configuration chosen by the second design's tuning (its committed table)."""
    Path(ns.out).mkdir(parents=True, exist_ok=True)
    return V.select_from_table(ns)["mrt-dense"]["values"]


def train_log(d: Path) -> list[dict]:
    f = d / "train" / "train_log.jsonl"
    return [json.loads(x) for x in f.read_text().splitlines()] if f.exists() else []


def calibration_summary(rows: list[dict]) -> dict:
    """Mean per-step calibration against fresh Monte Carlo J, over training and its last fifth."""
    cal = [r for r in rows if "estimator/brier" in r]
    if not cal:
        return {}
    tail = cal[-max(1, len(cal) // 5) :]
    out = {"steps_logged": len(cal)}
    for k in ("brier", "ece", "correlation"):
        xs = [r[f"estimator/{k}"] for r in cal if f"estimator/{k}" in r]
        ys = [r[f"estimator/{k}"] for r in tail if f"estimator/{k}" in r]
        out[k] = statistics.fmean(xs) if xs else None
        out[f"{k}_last_fifth"] = statistics.fmean(ys) if ys else None
    return out


def pilot(ns, values: dict) -> dict:
    jobs = []
    for form in FORMS:
        d = Path(ns.out) / "pilot" / form
        if (d / "train" / "summary.json").exists():
            continue
        d.mkdir(parents=True, exist_ok=True)
        cmd = V.train_cmd(
            ns, SETTING, "mrt-dense", PILOT_SEED, {**values, **ESTIMATOR, "estimator_form": form}, d / "train"
        )
        cmd += ["--logging-steps", "1"]
        jobs.append((f"pilot/{form}", [cmd], d / "log.txt", ns.threads))
    if jobs:
        print("pilot runs:", flush=True)
        runner.run_jobs(jobs, ns.jobs, Path(ns.out) / "pilot")
    res = {}
    for form in FORMS:
        d = Path(ns.out) / "pilot" / form
        s = json.loads((d / "train" / "summary.json").read_text())
        res[form] = {
            "calibration": calibration_summary(train_log(d)),
            "steps": s["steps"],
            "wall_seconds_per_step": s["wall_seconds_per_step"],
            "token_split": s.get("token_split"),
        }
    best = min(FORMS, key=lambda f: (res[f]["calibration"]["brier"], res[f]["wall_seconds_per_step"]))
    doc = {"seed": PILOT_SEED, "forms": res, "chosen": best, "rule": "lower mean Brier; cost breaks ties"}
    (Path(ns.out) / "pilot.json").write_text(json.dumps(doc, indent=1))
    return doc


def final(ns, values: dict, form: str) -> None:
    jobs = []
    for seed in ns.seeds:
        run = f"{NEW}-s{seed}"
        if V.record_path(ns, SETTING, run).exists():
            continue
        vals = {**values, **ESTIMATOR, "estimator_form": form}
        job = V.job(
            ns, f"{SETTING}/{run}", V.final_dir(ns, SETTING, NEW, seed), SETTING, "mrt-dense", seed, vals, S.TEST
        )
        if job:
            name, cmds, log, threads = job
            cmds[0] += ["--logging-steps", "1"]
            jobs.append((name, cmds, log, threads))
    V.run_jobs(ns, jobs)
    for seed in ns.seeds:  # the record keeps the token split and calibration of the training run too
        run = f"{NEW}-s{seed}"
        path = V.record_path(ns, SETTING, run)
        d = V.final_dir(ns, SETTING, NEW, seed)
        if not path.exists():
            V.write_record(ns, SETTING, run)
        rec = json.loads(path.read_text())
        if "token_split" not in rec and (d / "train" / "summary.json").exists():
            s = json.loads((d / "train" / "summary.json").read_text())
            rec["token_split"] = s["token_split"]
            rec["calibration"] = calibration_summary(train_log(d))
            path.write_text(json.dumps(rec))


def _records(folder: Path, method: str, seeds: list[int]) -> list[dict]:
    recs = []
    for seed in seeds:
        f = folder / SETTING / f"{method}-s{seed}.json"
        if not f.exists():
            raise SystemExit(f"no record {f}; run --stage final first")
        recs.append(json.loads(f.read_text()))
    return recs


def per_step(rec: dict) -> dict:
    """Steps reached and sampled tokens per step: all, and those sampled outside TRL's rollouts
    (answers forced at the thinking budget, forced answers for J). The committed records of the
    second design keep only these totals; the new runs also keep the split by use."""
    t = rec["train"]
    steps = max(t["steps"], 1)
    out = {
        "steps": t["steps"],
        "sampled_per_step": t["sampled_tokens"] / steps,
        "outside_rollouts_per_step": t["extra_sampled_tokens"] / steps,
    }
    for k, v in (rec.get("token_split") or {}).items():
        out[k] = v
    return out


def report(ns) -> dict:
    keys = V.metric_keys(SETTING)
    b = S.SETTINGS[SETTING]["thinking_budget"]
    wanted = {"accuracy": keys["accuracy"], f"regret_C{b}": keys[f"regret_C{b}"], "natural_accuracy": "correct"}
    recs = {
        "grpo": _records(COMMITTED, "grpo", ns.seeds),
        "mrt-dense": _records(COMMITTED, "mrt-dense", ns.seeds),
        NEW: _records(Path(ns.records), NEW, ns.seeds),
    }
    per = {m: {k: [x["per_problem"][k] for x in rs] for k in wanted} for m, rs in recs.items()}
    doc = {
        "command": "python -m benchmarks.amortised_progress " + " ".join(sys.argv[1:]),
        "setting": SETTING,
        "seeds": ns.seeds,
        "estimator": ESTIMATOR,
        "token_budget": S.TOKEN_BUDGET,
        "methods": {},
    }
    pilot_file = Path(ns.out) / "pilot.json"
    if pilot_file.exists():
        doc["pilot"] = json.loads(pilot_file.read_text())
    grpo_cost = statistics.fmean(per_step(r)["sampled_per_step"] for r in recs["grpo"])
    for m, rs in recs.items():
        costs = [per_step(r) for r in rs]
        row = {k: V.bootstrap(v) for k, v in per[m].items()}
        row["cost"] = {k: V.seed_interval([c.get(k) for c in costs]) for k in costs[0]}
        row["tokens_per_step_vs_grpo"] = statistics.fmean(c["sampled_per_step"] for c in costs) / grpo_cost
        if m != "grpo":
            row["vs_grpo"] = {k: V.paired(per[m][k], per["grpo"][k]) for k in wanted}
        if m == NEW:
            row["vs_mrt_dense"] = {k: V.paired(per[m][k], per["mrt-dense"][k]) for k in wanted}
            row["calibration"] = [r.get("calibration") for r in rs]
        doc["methods"][m] = row
    plot_calibration(ns, Path(ns.plots))
    text = json.dumps(doc, indent=1)
    (Path(ns.out) / "amortised_progress.json").write_text(text)
    if ns.results:
        Path(ns.results).write_text(text)
    print(markdown(doc))
    return doc


def plot_calibration(ns, folder: Path) -> None:
    """The estimator's per-step calibration against fresh Monte Carlo J in each final run (from the
    training logs under --out; skipped when they are gone)."""
    from mrt.report.analysis import pyplot
    from mrt.report.compare import calibration_plot

    runs = []
    for seed in ns.seeds:
        rows = train_log(V.final_dir(ns, SETTING, NEW, seed))
        if rows:
            runs.append({"name": f"seed {seed}", "log": [r for r in rows if "loss" in r or "reward" in r]})
    if runs:
        folder.mkdir(parents=True, exist_ok=True)
        calibration_plot(pyplot(), runs, folder / "estimator_calibration.png")


def markdown(doc: dict) -> str:
    b = S.SETTINGS[SETTING]["thinking_budget"]
    f = V.fmt
    lines = [
        f"| method | steps | sampled tokens / step (× GRPO) | outside TRL's rollouts / step | accuracy at B | "
        f"vs GRPO | regret C={b} | vs GRPO |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m, r in doc["methods"].items():
        c = r["cost"]
        vs = r.get("vs_grpo", {})
        lines.append(
            f"| {m} | {f(c['steps'], 1)} | {c['sampled_per_step']['mean']:.0f} ({r['tokens_per_step_vs_grpo']:.2f}×) | "
            f"{c['outside_rollouts_per_step']['mean']:.0f} | "
            f"{f(r['accuracy'])} | {f(vs.get('accuracy'))} | {f(r[f'regret_C{b}'])} | {f(vs.get(f'regret_C{b}'))} |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- the stages (benchmarks.runner)

STAGE_NAMES = {"pilot": "tune"}  # this design's tuning is the pilot of the two estimator forms


def stage_tune(ns) -> dict:
    p = pilot(ns, dense_values(ns))
    print(json.dumps(p, indent=1), flush=True)
    return p


def stage_choose(ns, pilot_result: dict | None, stage: str) -> str | None:
    """The estimator form of the final runs: --form if given, else the pilot's choice (the pilot
    runs first if it has not: its runs resume from their directories)."""
    if stage == "report":
        return None
    if ns.form:
        return ns.form
    return (pilot_result or stage_tune(ns))["chosen"]


def stage_final(ns, form: str) -> None:
    final(ns, dense_values(ns), form)


def stage_report(ns, form) -> dict:
    return report(ns)


def main(argv=None):
    return runner.run_design(sys.modules[__name__], argv)


if __name__ == "__main__":
    main()
