"""The backtracking benchmark (issue 23): warm-start schemes, STaR, MRT-STaR, GRPO and MRT-RL on the
backtracking format of the tree world, scored by linearized evaluation.

    python -m benchmarks.backtracking --out runs/bench-backtrack --jobs 2

Everything is declared in ``benchmarks/backtracking_settings.py`` (a file without ``PRIMARY`` or
without the token budget ``B_TOKENS`` is refused before any RL run). Stages (``--stage``, default
``all``):

* ``tune``: the tuning seed's warm-start data and backtrack-SFT model, its validation evaluation
  (which prints the pilot's B), then three tuning runs per RL arm scored on validation problems by
  the primary endpoint's quantity;
* ``final``: per final seed, the warm-start data of the three schemes (cut to equal example
  counts), SFT on each, the four RL arms from the seed's backtrack-SFT model with the chosen
  settings, and a linearized evaluation (K = 10, W = 1, M = 4 forced answers per attempt) of every
  arm and of the base on the held-out problems; GRPO and MRT-RL also with W = 2;
* ``report``: the primary endpoint (per comparison, paired bootstrap over problems and seeds,
  seed-level t interval, Holm) and the secondary figures, from the compact per-run records in
  ``--records`` (committed) alone.

Every step is an ``mrt`` subprocess that resumes: a rerun skips finished runs and resumes killed
ones. ``--stage plan`` prints what is left and the measured cost of what is done.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import statistics
import sys
from pathlib import Path

from benchmarks import didactic_stats as ST
from benchmarks import runner
from benchmarks.runner import mrt_cmd
from mrt.core import backtrack as bt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


class SettingsError(ValueError):
    pass


def load_settings(path: str | Path):
    spec = importlib.util.spec_from_file_location("bt_settings", path)
    S = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(S)
    if not getattr(S, "PRIMARY", None):
        raise SettingsError(f"{path}: no primary endpoint declared (PRIMARY)")
    if set(S.TUNE_SEEDS) & set(S.FINAL_SEEDS):
        raise SettingsError(
            f"{path}: tuning seeds {sorted(set(S.TUNE_SEEDS) & set(S.FINAL_SEEDS))} are also final seeds"
        )
    sizes = {arm: len(g) for arm, g in S.TUNE_GRID.items()}
    if len(set(sizes.values())) != 1 or set(sizes) != set(S.RL_ARMS):
        raise SettingsError(f"{path}: unequal tuning: {sizes}")
    for arm, base in S.PRIMARY["comparisons"].items():
        if arm not in S.RL_ARMS or base not in S.RL_ARMS:
            raise SettingsError(f"{path}: comparison {arm} vs {base} names an arm that is not declared")
    for key, block in extra_blocks(S).items():
        if not set(block["arms"].values()) <= set(S.RL_ARMS) or not set(block["seeds"]) <= set(S.FINAL_SEEDS):
            raise SettingsError(f"{path}: {key} must name RL arms and final seeds")
        named = set(block["arms"]) | (set(S.RL_ARMS) if key == "DIAGNOSTIC" else set())
        if not all(a in named and b in named for a, b in block["comparisons"].items()):
            raise SettingsError(
                f"{path}: {key}'s comparisons must name its own arms"
                + (" or RL arms" if named - set(block["arms"]) else "")
            )
    return S


def sensitivity(S) -> dict:
    """A settings file's declared sensitivity runs (``SENSITIVITY``): arms that rerun an RL arm at
    its tuned configuration with extra flags, on some of the final seeds; {} when none."""
    return getattr(S, "SENSITIVITY", None) or {}


def diagnostic(S) -> dict:
    """A settings file's diagnostic runs (``DIAGNOSTIC``), added after results to find out why a
    method did what it did: shaped as ``SENSITIVITY``, its comparisons may name the RL arms too;
    never part of the primary endpoint; {} when none."""
    return getattr(S, "DIAGNOSTIC", None) or {}


def extra_blocks(S) -> dict[str, dict]:
    """The runs beyond the arms: each reruns an RL arm at its tuned configuration with flags."""
    return {k: b for k, b in (("SENSITIVITY", sensitivity(S)), ("DIAGNOSTIC", diagnostic(S))) if b}


def extra_arms(S) -> dict[str, dict]:
    """Every sensitivity and diagnostic arm: its block."""
    return {a: b for b in extra_blocks(S).values() for a in b["arms"]}


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--settings-file", default=str(ROOT / "benchmarks" / "backtracking_settings.py"))
    p.add_argument("--out", default="runs/bench-backtrack", help="working directory (runs, logs)")
    p.add_argument("--stage", choices=["tune", "final", "report", "all", "plan"], default="all")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="final seeds (default: all declared)")
    p.add_argument("--jobs", type=int, default=2, help="runs at once")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument(
        "--records",
        default="",
        help="compact per-run records (committed; the report reads only these; default: "
        "benchmarks/results/NAME_records, NAME from the settings file, 'backtracking' without one)",
    )
    p.add_argument("--results", default="", help="the results JSON (default: benchmarks/results/NAME.json)")
    p.add_argument(
        "--tuning",
        default="",
        help="the tuning table (committed; written by the tune stage, read by the final stage; default: "
        "benchmarks/results/NAME_tuning.json)",
    )
    p.add_argument("--plots", default="", help="where the figures go (default: docs/img, or docs/img/NAME)")
    p.add_argument("--scale", type=float, default=1.0, help="scale steps and problem counts (tests: 0.05)")
    ns = p.parse_args(argv)
    ns.S = load_settings(ns.settings_file)
    name = getattr(ns.S, "NAME", "backtracking")
    res = ROOT / "benchmarks" / "results"
    ns.records = ns.records or str(res / f"{name}_records")
    ns.results = ns.results or str(res / f"{name}.json")
    ns.tuning = ns.tuning or str(res / f"{name}_tuning.json")
    ns.plots = ns.plots or str(ROOT / "docs" / "img" / ("" if name == "backtracking" else name))
    ns.out, ns.records = str(Path(ns.out).resolve()), str(Path(ns.records).resolve())
    ns.tuning = str(Path(ns.tuning).resolve())  # the runs' cwd is ROOT
    ns.seeds = ns.seeds if ns.seeds is not None else list(ns.S.FINAL_SEEDS)
    if set(ns.seeds) & set(ns.S.TUNE_SEEDS):
        p.error(f"--seeds {sorted(set(ns.seeds) & set(ns.S.TUNE_SEEDS))} are tuning seeds")
    return ns


def _n(ns, x: int, least: int = 2) -> int:
    return max(least, int(round(x * ns.scale)))


# --------------------------------------------------------------------------- the commands


def seed_dir(ns, seed: int) -> Path:
    return Path(ns.out) / f"seed-{seed}"


def prepare_data(ns, seed: int) -> dict[str, int]:
    """The seed's warm-start data for every scheme, each cut to the smallest scheme's example count
    (``data-<scheme>.jsonl``); returns the counts before the cut."""
    S, d = ns.S, seed_dir(ns, seed)
    counts = {}
    for scheme in S.SCHEMES:
        out = d / f"ws-{scheme}"
        if not (out / "summary.json").exists():
            cmd = mrt_cmd(
                "warmstart",
                scheme=scheme,
                task=S.TASK,
                knobs=S.KNOBS,
                out=out,
                n_problems=_n(ns, S.WARMSTART["n_problems"], 16),
                seed=seed,
                problem_seed=S.WARMSTART["problem_seed"],
                attempts=S.WARMSTART["attempts"],
            )
            d.mkdir(parents=True, exist_ok=True)
            name, ok, _ = runner.run_job((f"warmstart/{scheme}-s{seed}", [cmd], d / "log.txt", ns.threads))
            if not ok:
                sys.exit(f"warm-start data failed: see {d / 'log.txt'}")
        counts[scheme] = json.loads((out / "summary.json").read_text())["examples"]
    n = min(counts.values())
    for scheme in S.SCHEMES:
        dst = d / f"data-{scheme}.jsonl"
        if not dst.exists():
            lines = (d / f"ws-{scheme}" / "data.jsonl").read_text().splitlines(keepends=True)[:n]
            tmp = dst.with_suffix(".tmp")
            tmp.write_text("".join(lines))
            tmp.replace(dst)
    (d / "examples.json").write_text(json.dumps({"before_cut": counts, "each": n}))
    return counts


def sft_cmd(ns, seed: int, scheme: str) -> list[str]:
    S, d = ns.S, seed_dir(ns, seed)
    return mrt_cmd(
        "train",
        algo="sft",
        task=S.TASK,
        knobs=S.KNOBS,
        sft_data=d / f"data-{scheme}.jsonl",
        max_steps=_n(ns, S.SFT["max_steps"]),
        batch_size=S.SFT["batch_size"],
        learning_rate=S.SFT["learning_rate"],
        eval_problems=0,
        threads=ns.threads,
        report_to="none",
        seed=seed,
        out=d / f"sft-{scheme}",
        model=S.BASE or None,
    )


def sft_model(ns, seed: int, scheme: str) -> Path:
    return seed_dir(ns, seed) / f"sft-{scheme}" / "model"


def rl_cmd(ns, seed: int, arm: str, lr: float, extra: dict, out: Path) -> list[str]:
    """An RL arm's run: ``mrt train --algo mrt-backtrack`` with the arm's flags, or the arm's own
    ``algo`` (the per-episode arm is ``mrt-dense``)."""
    S = ns.S
    rl = dict(S.RL)
    rl["max_steps"] = _n(ns, rl["max_steps"])
    flags = dict(S.RL_ARMS[arm])
    algo = flags.pop("algo", "mrt-backtrack")
    return mrt_cmd(
        "train",
        algo=algo,
        task=S.TASK,
        knobs=S.KNOBS,
        model=sft_model(ns, seed, "backtrack"),
        learning_rate=lr,
        seed=seed,
        out=out,
        eval_problems=0,
        report_to="none",
        threads=ns.threads,
        save_every=20,
        **{**rl, **flags, **extra},
    )


def lin_cmd(ns, model: str | Path, seed: int, split: dict, out: Path, window: int) -> list[str]:
    S = ns.S
    L = dict(S.LINEARIZED, window=window)
    return mrt_cmd(
        "linearized",
        task=S.TASK,
        knobs=S.KNOBS,
        out=out,
        seed=seed,
        n_problems=_n(ns, split["n_problems"], 4),
        problem_seed=split["problem_seed"],
        samples=split["samples"],
        **L,
        model=model or None,
    )


def _done(out: Path) -> bool:
    """Finished, and nothing skipped (a linearized run that gave up on problems is rerun: they are redone)."""
    p = out / "summary.json"
    return p.exists() and not json.loads(p.read_text()).get("failed_problems")


def _job(ns, name: str, d: Path, cmds: list[list[str]], want: Path):
    if _done(want):
        return None
    d.mkdir(parents=True, exist_ok=True)
    return name, [[str(x) for x in c] for c in cmds], d / "log.txt", ns.threads


def run_jobs(ns, jobs: list, after=None) -> None:
    """The shared runner; ``after`` is called on each finished final run."""
    runner.run_jobs(
        jobs, ns.jobs, ns.out, after=(lambda name: name.startswith("final/") and after(name)) if after else None
    )


# --------------------------------------------------------------------------- tuning


def tune_dir(ns, arm: str, i: int, seed: int) -> Path:
    return Path(ns.out) / "tune" / f"{arm}-{i}-s{seed}"


def tune(ns) -> dict:
    S = ns.S
    for seed in S.TUNE_SEEDS:
        prepare_data(ns, seed)
        val = Path(ns.out) / "tune" / f"sft-backtrack-s{seed}" / "val"
        run_jobs(
            ns,
            [
                _job(
                    ns,
                    f"tune/sft-backtrack-s{seed}",
                    val.parent,
                    [
                        sft_cmd(ns, seed, "backtrack"),
                        lin_cmd(ns, sft_model(ns, seed, "backtrack"), seed, S.VALIDATION, val, 1),
                    ],
                    val,
                )
            ],
        )
        s = json.loads((val / "summary.json").read_text())
        K = str(S.LINEARIZED["episodes"])
        print(
            f"pilot (tuning seed {seed}, backtrack SFT, validation): parallel maj@{K} costs "
            f"{s['parallel'][K]['tokens']:.1f} tokens, linearized {s['linearized'][K]['tokens']:.1f}",
            flush=True,
        )
    if not S.B_TOKENS:
        sys.exit("B_TOKENS is not declared in the settings file: set it from the pilot line above, then rerun")
    jobs = []
    for arm, grid in S.TUNE_GRID.items():
        for i, (lr, extra) in enumerate(grid):
            for seed in S.TUNE_SEEDS:
                d = tune_dir(ns, arm, i, seed)
                cmds = [rl_cmd(ns, seed, arm, lr, extra, d / "train")]
                cmds.append(lin_cmd(ns, d / "train" / "model", seed, S.VALIDATION, d / "val", 1))
                jobs.append(_job(ns, f"tune/{arm}-{i}-s{seed}", d, cmds, d / "val"))
    run_jobs(ns, jobs)
    return tuning_table(ns)


def lin_at(row: dict, mode: str, budget: float) -> float:
    groups = row[mode]
    return statistics.fmean(bt.value_at_tokens(g["cum_tokens"], g["maj"], budget) for g in groups)


def parsed_at(groups: list[dict], budget: float, tie: str) -> float:
    """The linearized majority at ``budget`` tokens with the format-error rounds' answers out of the
    vote (``mrt linearized``'s ``linearized_parsed_votes``, per problem)."""
    return statistics.fmean(
        bt.value_at_tokens(
            g["cum_tokens"],
            bt.running_majority(
                [None if "format_error" in e else lab for e, lab in zip(g["episodes"], g["labels"])],
                [e["correct"] for e in g["episodes"]],
                tie=tie,
            ),
            budget,
        )
        for g in groups
    )


def read_rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def tuning_table(ns) -> dict:
    """Per RL arm and grid point: the validation criterion (linearized majority at B, mean over
    problems, with its standard error over problems), and the chosen grid point."""
    S = ns.S
    table = {}
    for arm, grid in S.TUNE_GRID.items():
        rows = []
        for i, (lr, extra) in enumerate(grid):
            per = []
            for seed in S.TUNE_SEEDS:
                p = tune_dir(ns, arm, i, seed) / "val" / "linearized.jsonl"
                if (p.parent / "summary.json").exists():
                    per += [lin_at(r, "linearized", S.B_TOKENS) for r in read_rows(p)]
            if per:
                se = statistics.stdev(per) / math.sqrt(len(per)) if len(per) > 1 else 0.0
                rows.append({"i": i, "learning_rate": lr, **extra, "criterion": statistics.fmean(per), "se": se})
        done = len(rows) == len(grid)
        best = max(rows, key=lambda r: r["criterion"]) if done else None
        table[arm] = {"runs": rows, "finished": f"{len(rows)}/{len(grid)}", "chosen": best}
    return table


# --------------------------------------------------------------------------- final runs and records


def final_dir(ns, run: str) -> Path:
    return Path(ns.out) / "final" / run


def record_path(ns, run: str) -> Path:
    return Path(ns.records) / f"{run}.json"


def tuned_flags(chosen: dict) -> dict:
    """A tuning choice's flags beyond the learning rate (alpha, ...)."""
    return {k: v for k, v in chosen.items() if k not in ("i", "learning_rate", "criterion", "se")}


def final_jobs(ns, table: dict) -> tuple[list, list]:
    """(the backtrack-SFT trainings the RL arms start from, then every evaluated run): the primary
    comparison's arms first, seed by seed, so a partial run has the primary endpoint first, then its
    diagnostic runs, the other arms, and the sensitivity runs last (the order changes no result)."""
    S = ns.S
    extra = extra_arms(S)
    first, by_arm, sens_jobs, diag_jobs = [], {a: [] for a in arms(S)}, [], []
    for seed in ns.seeds:
        todo = [a for a in arms(S) if not record_path(ns, f"{a}-s{seed}").exists()]
        sens_todo = [a for a, b in extra.items() if seed in b["seeds"] and not record_path(ns, f"{a}-s{seed}").exists()]
        for a in arms(S):
            by_arm[a].append(None)  # a run with a record is not run again
        if not todo and not sens_todo:
            continue
        prepare_data(ns, seed)
        sft_dir = seed_dir(ns, seed) / "sft-backtrack"
        for arm in sens_todo:  # the parent's tuned configuration + the block's flags
            block = extra[arm]
            parent = block["arms"][arm]
            c = table[parent]["chosen"]
            tuned = tuned_flags(c)
            d = final_dir(ns, f"{arm}-s{seed}")
            cmds = [rl_cmd(ns, seed, parent, c["learning_rate"], {**tuned, **block["flags"]}, d / "train")]
            cmds.append(lin_cmd(ns, d / "train" / "model", seed, S.TEST, d / "eval", 1))
            job = _job(ns, f"final/{arm}-s{seed}", d, cmds, d / "eval")
            (diag_jobs if block is diagnostic(S) else sens_jobs).append(job)
        if set(todo) & set(S.RL_ARMS) or sens_todo:
            first.append(
                _job(ns, f"prep/sft-backtrack-s{seed}", seed_dir(ns, seed), [sft_cmd(ns, seed, "backtrack")], sft_dir)
            )
        for scheme in S.SCHEMES:
            run = f"sft-{scheme}-s{seed}"
            d = final_dir(ns, run)
            cmds = [sft_cmd(ns, seed, scheme), lin_cmd(ns, sft_model(ns, seed, scheme), seed, S.TEST, d / "eval", 1)]
            if f"sft-{scheme}" in todo:
                by_arm[f"sft-{scheme}"][-1] = _job(ns, f"final/{run}", d, cmds, d / "eval")
        d = final_dir(ns, f"base-s{seed}")
        if "base" in todo:
            by_arm["base"][-1] = _job(
                ns, f"final/base-s{seed}", d, [lin_cmd(ns, S.BASE, seed, S.TEST, d / "eval", 1)], d / "eval"
            )
        for arm in todo:
            if arm not in S.RL_ARMS:
                continue
            c = table[arm]["chosen"]
            tuned = tuned_flags(c)
            run = f"{arm}-s{seed}"
            d = final_dir(ns, run)
            cmds = [rl_cmd(ns, seed, arm, c["learning_rate"], tuned, d / "train")]
            cmds.append(lin_cmd(ns, d / "train" / "model", seed, S.TEST, d / "eval", 1))
            want = d / "eval"
            if arm in S.WINDOW2_ARMS and seed in S.WINDOW2_SEEDS:
                cmds.append(lin_cmd(ns, d / "train" / "model", seed, S.TEST, d / "eval-w2", 2))
                want = d / "eval-w2"
            by_arm[arm][-1] = _job(ns, f"final/{run}", d, cmds, want)
    P = S.PRIMARY
    pairs = [(P["primary"], P["comparisons"][P["primary"]])] + [kv for kv in P["comparisons"].items()]
    order = list(dict.fromkeys([*[a for kv in pairs for a in kv], *arms(S)]))
    second = []
    for group in (order[:2], order[2:4], order[4:]):
        for i in range(len(ns.seeds)):
            second += [by_arm[a][i] for a in group]
        if group == order[:2]:
            second += diag_jobs  # the primary comparison's diagnostic right after it
    return first, second + sens_jobs


def token_grid(S) -> list[int]:
    return list(range(S.TOKEN_GRID_STEP, 64 * S.TOKEN_GRID_STEP + 1, S.TOKEN_GRID_STEP))


def eval_record(S, d: Path) -> dict:
    """A linearized evaluation's compact record: per problem, the figures that are paired and
    resampled (majority at B and on the token grid, maj@k, both modes), and the pooled counts."""
    rows = read_rows(d / "linearized.jsonl")
    summary = json.loads((d / "summary.json").read_text())
    tie = (
        json.loads((d / "run.json").read_text()).get("vote_tie", "expected")
        if (d / "run.json").exists()
        else "expected"
    )
    grid = token_grid(S)
    per_problem, progress, j_pairs = {}, [], []
    for r in rows:
        f = {}
        for mode in ("linearized", "parallel"):
            g = r[mode]
            f[mode] = {
                "at_B": round(lin_at(r, mode, S.B_TOKENS), 6),
                "curve": [round(lin_at(r, mode, b), 4) for b in grid],
                "maj": [round(statistics.fmean(x["maj"][k] for x in g), 4) for k in range(len(g[0]["maj"]))],
                "tokens": [round(statistics.fmean(x["cum_tokens"][k] for x in g), 2) for k in range(len(g[0]["maj"]))],
            }
        # sensitivity (issue 35): the linearized majority at B with the format-error rounds' votes left out
        f["linearized_parsed_at_B"] = round(parsed_at(r["linearized"], S.B_TOKENS, tie), 6)
        rp = []
        for tr in r["linearized"]:
            last_j = None
            for e in tr["episodes"]:
                if "format_error" in e:
                    continue  # the attempt in context is still the one before
                if last_j is not None and "j" in e:
                    rp.append(round(e["j"] - last_j, 4))
                last_j = e.get("j", last_j)
            e0 = tr["episodes"][0]
            if "j" in e0 and "exact_j" in e0:
                j_pairs.append((e0["j"], e0["exact_j"]))
        f["round_progress"] = round(statistics.fmean(rp), 6) if rp else None
        progress += rp
        per_problem[r["problem_id"]] = f
    return {
        "per_problem": per_problem,
        "round_progress": progress,
        "j_first_attempt": {
            "meta_prover": round(statistics.fmean(a for a, _ in j_pairs), 6) if j_pairs else None,
            "exact": round(statistics.fmean(b for _, b in j_pairs), 6) if j_pairs else None,
            "mean_abs_diff": round(statistics.fmean(abs(a - b) for a, b in j_pairs), 6) if j_pairs else None,
            "n": len(j_pairs),
        },
        "format_errors": summary["format_errors"],
        "revision_rounds": summary["revision_rounds"],
        "revisits": summary["revisits"],
        "unseen_revisit_fraction": summary["unseen_revisit_fraction"],
        "wall_seconds": summary.get("wall_seconds_this_run"),
    }


def write_record(ns, run: str) -> dict:
    d = final_dir(ns, run)
    rec = {"run": run, "eval": eval_record(ns.S, d / "eval")}
    if _done(d / "eval-w2"):
        rec["eval_w2"] = eval_record(ns.S, d / "eval-w2")
    if _done(d / "train"):
        t = json.loads((d / "train" / "summary.json").read_text())
        rec["train"] = {k: t.get(k) for k in ("steps", "sampled_tokens", "extra_sampled_tokens", "wall_seconds")}
    sft = seed_dir(ns, int(run.rsplit("-s", 1)[1]))
    ex = sft / "examples.json"
    if run.startswith("sft-") and ex.exists():
        rec["examples"] = json.loads(ex.read_text())
    p = record_path(ns, run)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(rec, separators=(",", ":")))
    return rec


def arms(S) -> list[str]:
    return ["base"] + [f"sft-{s}" for s in S.SCHEMES] + list(S.RL_ARMS)


def load_records(ns, arm: str) -> list[dict] | None:
    recs = []
    for seed in ns.seeds:
        p = record_path(ns, f"{arm}-s{seed}")
        if not p.exists():
            return None
        recs.append(json.loads(p.read_text()))
    return recs


# --------------------------------------------------------------------------- report


def sensitivity_results(ns) -> dict:
    """The declared sensitivity runs against their parents (``SENSITIVITY``): each comparison with
    the flags, and the same comparison without them on the same seeds (paired over seeds and
    problems, linearized majority at B); a comparison whose records are not all there is left out."""
    S = ns.S
    sens = sensitivity(S)
    seeds = [s for s in ns.seeds if s in sens["seeds"]]
    rows = {}
    for a, b in sens["comparisons"].items():
        got = {x: [record_path(ns, f"{x}-s{s}") for s in seeds] for x in (a, b, sens["arms"][a], sens["arms"][b])}
        if not seeds or not all(p.exists() for ps in got.values() for p in ps):
            continue
        rec = {x: [json.loads(p.read_text()) for p in ps] for x, ps in got.items()}

        def d(x, y, rec=rec):
            return ST.paired(
                per_seed(rec[x], lambda f: f["linearized"]["at_B"]),
                per_seed(rec[y], lambda f: f["linearized"]["at_B"]),
            )

        rows[f"{a} - {b}"] = {
            "seeds": seeds,
            "with_flags": d(a, b),
            "without_on_the_same_seeds": d(sens["arms"][a], sens["arms"][b]),
            **{f"{x} - {sens['arms'][x]}": d(x, sens["arms"][x]) for x in (a, b)},
        }
    return {"declared": sens, "comparisons": rows}


def diagnostic_results(ns) -> dict:
    """The diagnostic runs' comparisons (``DIAGNOSTIC``), paired over its seeds and problems: the
    linearized and parallel majority at B, their difference, and the first attempt's accuracy; a
    comparison whose records are not all there is left out."""
    S = ns.S
    diag = diagnostic(S)
    seeds = [s for s in ns.seeds if s in diag["seeds"]]
    figures = {
        "lin_at_B": lambda f: f["linearized"]["at_B"],
        "par_at_B": lambda f: f["parallel"]["at_B"],
        "lin_minus_par_at_B": lambda f: f["linearized"]["at_B"] - f["parallel"]["at_B"],
        "first_attempt": lambda f: f["linearized"]["maj"][0],
    }
    rows = {}
    for a, b in diag["comparisons"].items():
        paths = {x: [record_path(ns, f"{x}-s{s}") for s in seeds] for x in (a, b)}
        if not seeds or not all(p.exists() for ps in paths.values() for p in ps):
            continue
        rec = {x: [json.loads(p.read_text()) for p in ps] for x, ps in paths.items()}
        rows[f"{a} - {b}"] = {
            "seeds": seeds,
            **{k: ST.paired(per_seed(rec[a], g), per_seed(rec[b], g)) for k, g in figures.items()},
        }
    return {"declared": diag, "comparisons": rows}


def _pp(rec: dict) -> list[dict]:
    return list(rec["eval"]["per_problem"].values())


def per_seed(recs: list[dict], key, which: str = "eval") -> list[dict[str, float]]:
    return [{pid: key(f) for pid, f in r[which]["per_problem"].items()} for r in recs]


def histogram(values: list[float], step: float = 0.25) -> dict:
    """Shares of the values at each multiple of ``step`` in [-1, 1] (each value to the nearest: with
    M = 4 forced answers J, and so progress, moves in quarters)."""
    n = round(1 / step)
    counts = {k: 0 for k in range(-n, n + 1)}
    for v in values:
        counts[max(-n, min(n, round(v / step)))] += 1
    total = len(values) or 1
    return {f"{k * step:+g}": round(c / total, 4) for k, c in counts.items()}


def results(ns) -> dict:
    S = ns.S
    recs = {a: r for a in arms(S) if (r := load_records(ns, a))}
    missing = [a for a in arms(S) if a not in recs]
    K = S.LINEARIZED["episodes"]
    if recs:  # as evaluated (a scaled-down run may have fewer)
        K = len(next(iter(next(iter(recs.values()))[0]["eval"]["per_problem"].values()))["linearized"]["maj"])
    grid = token_grid(S)
    out = {"missing": missing, "arms": {}, "grid": grid, "K": K}
    for a, rs in recs.items():
        lin_B = ST.bootstrap(per_seed(rs, lambda f: f["linearized"]["at_B"]))
        par_B = ST.bootstrap(per_seed(rs, lambda f: f["parallel"]["at_B"]))
        linK = ST.bootstrap(per_seed(rs, lambda f: f["linearized"]["maj"][K - 1]))
        parK = ST.bootstrap(per_seed(rs, lambda f: f["parallel"]["maj"][K - 1]))
        lin1 = ST.bootstrap(per_seed(rs, lambda f: f["linearized"]["maj"][0]))
        lin_minus_par = ST.paired(
            per_seed(rs, lambda f: f["linearized"]["at_B"]), per_seed(rs, lambda f: f["parallel"]["at_B"])
        )
        prog = [v for r in rs for v in r["eval"]["round_progress"]]
        prog_seed = [statistics.fmean(r["eval"]["round_progress"]) for r in rs if r["eval"]["round_progress"]]
        rounds = sum(r["eval"]["revision_rounds"] for r in rs)
        errs = sum(sum(r["eval"]["format_errors"].values()) for r in rs)
        row = {
            "lin_at_B": lin_B,
            "par_at_B": par_B,
            "lin_minus_par_at_B": lin_minus_par,
            f"lin_maj@{K}": linK,
            f"par_maj@{K}": parK,
            "first_attempt": lin1,
            "lin_tokens_at_K": statistics.fmean(
                statistics.fmean(f["linearized"]["tokens"][K - 1] for f in r["eval"]["per_problem"].values())
                for r in rs
            ),
            "par_tokens_at_K": statistics.fmean(
                statistics.fmean(f["parallel"]["tokens"][K - 1] for f in r["eval"]["per_problem"].values()) for r in rs
            ),
            "round_progress": {
                "mean": statistics.fmean(prog) if prog else None,
                "seed_t": ST.t_interval(prog_seed) if len(prog_seed) > 1 else None,
                "positive": round(sum(v > 0 for v in prog) / len(prog), 4) if prog else None,
                "n": len(prog),
                "histogram": histogram(prog),
            },
            "j_first_attempt": {
                k: statistics.fmean(r["eval"]["j_first_attempt"][k] for r in rs)
                if all(r["eval"]["j_first_attempt"][k] is not None for r in rs)
                else None
                for k in ("meta_prover", "exact", "mean_abs_diff")
            },
            "format_error_rate": round(errs / rounds, 4) if rounds else None,
            "unseen_revisit_fraction": statistics.fmean(
                r["eval"]["unseen_revisit_fraction"] for r in rs if r["eval"]["unseen_revisit_fraction"] is not None
            )
            if any(r["eval"]["unseen_revisit_fraction"] is not None for r in rs)
            else None,
            "lin_curve": [
                statistics.fmean(
                    statistics.fmean(f["linearized"]["curve"][i] for f in r["eval"]["per_problem"].values()) for r in rs
                )
                for i in range(len(grid))
            ],
            "par_curve": [
                statistics.fmean(
                    statistics.fmean(f["parallel"]["curve"][i] for f in r["eval"]["per_problem"].values()) for r in rs
                )
                for i in range(len(grid))
            ],
        }
        w2 = [r for r in rs if "eval_w2" in r]  # the seeds evaluated with W = 2 too
        if w2:
            row["lin_at_B_w2"] = ST.bootstrap(per_seed(w2, lambda f: f["linearized"]["at_B"], "eval_w2"))
            row["w2_minus_w1_at_B"] = ST.paired(
                per_seed(w2, lambda f: f["linearized"]["at_B"], "eval_w2"),
                per_seed(w2, lambda f: f["linearized"]["at_B"]),
            )
            row["w2_seeds"] = len(w2)
        if all("train" in r for r in rs):
            row["train_tokens"] = statistics.fmean(r["train"]["sampled_tokens"] for r in rs)
        out["arms"][a] = row
    # the primary endpoint: each declared comparison, paired over seeds and problems, Holm
    P = S.PRIMARY
    comps, pv = {}, {}
    for a, b in P["comparisons"].items():
        if a in recs and b in recs:
            d = ST.paired(
                per_seed(recs[a], lambda f: f["linearized"]["at_B"]),
                per_seed(recs[b], lambda f: f["linearized"]["at_B"]),
            )
            comps[f"{a} - {b}"] = d
            pv[f"{a} - {b}"] = d["p"]
        else:
            pv[f"{a} - {b}"] = 1.0
    h = ST.holm(pv, P["alpha"])
    for k, d in comps.items():
        d["p_holm"] = h[k]["p_holm"]
        d["verdict"] = ("better" if d["mean"] > 0 else "worse") if h[k]["survives"] else "no difference resolved"
    out["primary"] = {
        "declared": P,
        "B_tokens": S.B_TOKENS,
        "comparisons": comps,
        "missing": [k for k in pv if k not in comps],
    }
    # sensitivity (issue 35, declared; not corrected): the comparisons with format-error rounds' votes
    # out of the majority (records that have it), and RL with a format penalty (SENSITIVITY)
    parsed = {}
    for a, b in P["comparisons"].items():
        if a in recs and b in recs and all("linearized_parsed_at_B" in f for r in recs[a] + recs[b] for f in _pp(r)):
            parsed[f"{a} - {b}"] = ST.paired(
                per_seed(recs[a], lambda f: f["linearized_parsed_at_B"]),
                per_seed(recs[b], lambda f: f["linearized_parsed_at_B"]),
            )
    if parsed:
        out["parsed_votes"] = parsed
    if sensitivity(S):
        out["sensitivity"] = sensitivity_results(ns)
    if diagnostic(S):
        out["diagnostic"] = diagnostic_results(ns)
    # found after the results (not declared, not corrected): each arm in its better mode at B
    # against GRPO in its better mode, since an SFT arm that never learned to revise is best sampled
    # in parallel
    if "grpo" in recs:

        def best_mode(a: str) -> str:
            return max(("linearized", "parallel"), key=lambda m: out["arms"][a][f"{m[:3]}_at_B"]["mean"])

        g = best_mode("grpo")
        modes = {a: best_mode(a) for a in recs if a != "grpo"}
        out["best_mode_vs_grpo"] = {
            "grpo_mode": g,
            "arms": {
                a: {
                    "mode": m,
                    **ST.paired(
                        per_seed(recs[a], lambda f, m=m: f[m]["at_B"]),
                        per_seed(recs["grpo"], lambda f: f[g]["at_B"]),
                    ),
                }
                for a, m in modes.items()
            },
        }
    # token efficiency of the MRT arms against the best baseline on the linearized maj-vs-tokens curve
    baselines = [a for a in ("sft-backtrack", "sft-rise", "sft-star", "star", "grpo") if a in recs]
    if baselines:
        best = max(baselines, key=lambda a: out["arms"][a]["lin_curve"][-1])
        ref = [
            [
                statistics.fmean(f["linearized"]["curve"][i] for f in r["eval"]["per_problem"].values())
                for i in range(len(grid))
            ]
            for r in recs[best]
        ]
        eff = {}
        for a in ("mrt-rl", "mrt-star"):
            if a in recs:
                new = [
                    [
                        statistics.fmean(f["linearized"]["curve"][i] for f in r["eval"]["per_problem"].values())
                        for i in range(len(grid))
                    ]
                    for r in recs[a]
                ]
                w = [1.0] * len(ref)
                eff[a] = ST.efficiency_vs(grid, ref, new, w, w, S.EFFICIENCY_FRACTIONS)
        out["efficiency"] = {
            "best_baseline": best,
            "vs_best": eff,
            "null": ST.self_null(grid, ref, [1.0] * len(ref), S.EFFICIENCY_FRACTIONS),
        }
    return out


def _ci(x: dict | None, d: int = 3) -> str:
    if not x:
        return "—"
    return f"{x['mean']:.{d}f} [{x['ci'][0]:.{d}f}, {x['ci'][1]:.{d}f}]"


def _d(x: dict | None) -> str:
    if not x:
        return "—"
    return f"{x['mean']:+.3f} [{x['ci'][0]:+.3f}, {x['ci'][1]:+.3f}]"


def markdown(doc: dict) -> str:
    r = doc["results"]
    K = r["K"]
    P = r["primary"]
    lines = [f"**Primary endpoint**: {P['declared']['name']} (B = {P['B_tokens']} tokens), method − baseline\n"]
    lines += ["| comparison | Δ | 95% bootstrap | 95% seed-level t | Holm p | verdict |", "|---|---|---|---|---|---|"]
    for k, d in P["comparisons"].items():
        t = d["t_ci"]
        tt = f"[{t[0]:+.4f}, {t[1]:+.4f}]" if t[0] is not None else "— (one seed)"
        lines.append(
            f"| {k} | {d['mean']:+.4f} | [{d['ci'][0]:+.4f}, {d['ci'][1]:+.4f}] | {tt} | "
            f"{d['p_holm']:.3f} | {d['verdict']} |"
        )
    for k in P["missing"]:
        lines.append(f"| {k} | (runs missing) | | | | |")
    lines += [
        "\nSecondary (95% intervals over problems and seeds; not corrected for multiplicity):\n",
        f"| arm | linearized at B | parallel at B | lin − par at B | lin maj@{K} | par maj@{K} | first attempt | "
        f"tokens lin / par at K | round progress (mean, share > 0) | J(z0) meta-prover / exact | format errors | "
        "unseen revisits |",
        "|---" * 12 + "|",
    ]
    for a, x in r["arms"].items():
        rp, j = x["round_progress"], x["j_first_attempt"]
        rps = f"{rp['mean']:+.3f}, {rp['positive']:.2f}" if rp["mean"] is not None else "—"
        js = f"{j['meta_prover']:.2f} / {j['exact']:.2f}" if j["meta_prover"] is not None else "—"
        u = x["unseen_revisit_fraction"]
        lines.append(
            f"| {a} | {_ci(x['lin_at_B'])} | {_ci(x['par_at_B'])} | {_d(x['lin_minus_par_at_B'])} | "
            f"{_ci(x[f'lin_maj@{K}'])} | {_ci(x[f'par_maj@{K}'])} | {_ci(x['first_attempt'])} | "
            f"{x['lin_tokens_at_K']:.0f} / {x['par_tokens_at_K']:.0f} | {rps} | {js} | "
            f"{x['format_error_rate'] if x['format_error_rate'] is not None else '—'} | "
            f"{f'{u:.3f}' if u is not None else '—'} |"
        )
    w2 = {a: x for a, x in r["arms"].items() if "lin_at_B_w2" in x}
    if w2:
        lines.append("\nWindow W = 2 (secondary; the seeds evaluated with it):\n")
        lines += ["| arm | seeds | linearized at B, W = 2 | W = 2 − W = 1 |", "|---|---|---|---|"]
        for a, x in w2.items():
            lines.append(f"| {a} | {x['w2_seeds']} | {_ci(x['lin_at_B_w2'])} | {_d(x['w2_minus_w1_at_B'])} |")
    if r.get("parsed_votes"):
        lines.append("\nSensitivity: the comparisons with the format-error rounds' votes out of the majority:\n")
        lines += ["| comparison | Δ at B, parsed votes |", "|---|---|"]
        for k, x in r["parsed_votes"].items():
            lines.append(f"| {k} | {_d(x)} |")
    sv = (r.get("sensitivity") or {}).get("comparisons")
    if sv:
        flags = r["sensitivity"]["declared"]["flags"]
        lines.append(f"\nSensitivity: RL with {flags} (each arm at its tuned configuration), on its seeds:\n")
        lines += ["| comparison | seeds | Δ with it | Δ without, same seeds |", "|---|---|---|---|"]
        for k, x in sv.items():
            lines.append(f"| {k} | {len(x['seeds'])} | {_d(x['with_flags'])} | {_d(x['without_on_the_same_seeds'])} |")
    dg = (r.get("diagnostic") or {}).get("comparisons")
    if dg:
        decl = r["diagnostic"]["declared"]
        runs = ", ".join(f"{a} = {p} with {decl['flags']}" for a, p in decl["arms"].items())
        lines.append(f"\nDiagnostic runs ({runs}; added after results, not corrected):\n")
        lines += [
            "| comparison | seeds | Δ linearized at B | Δ parallel at B | Δ (lin − par) at B | Δ first attempt |",
            "|---|---|---|---|---|---|",
        ]
        for k, x in dg.items():
            lines.append(
                f"| {k} | {len(x['seeds'])} | {_d(x['lin_at_B'])} | {_d(x['par_at_B'])} | "
                f"{_d(x['lin_minus_par_at_B'])} | {_d(x['first_attempt'])} |"
            )
    bm = r.get("best_mode_vs_grpo")
    if bm:
        lines.append(
            f"\nEach arm in its better mode at B against GRPO in its better mode ({bm['grpo_mode']}); found after "
            "the results, not declared, not corrected:\n"
        )
        lines += ["| arm | better mode | Δ vs GRPO at B |", "|---|---|---|"]
        for a, x in bm["arms"].items():
            lines.append(f"| {a} | {x['mode']} | {_d(x)} |")
    return "\n".join(lines)


def plots(doc: dict, where: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = doc["results"]
    where.mkdir(parents=True, exist_ok=True)
    names = list(r["arms"])
    cols = 4
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(10, 2.4 * rows), sharey=True, squeeze=False)
    for ax in axes.flat[len(names) :]:
        ax.axis("off")
    for ax, a in zip(axes.flat, names):
        rp = r["arms"][a]["round_progress"]
        h = rp["histogram"]
        ax.bar([float(k) for k in h], list(h.values()), width=0.2, color="tab:blue")
        mean = f"mean {rp['mean']:+.3f}" if rp["mean"] is not None else "no parsed round"
        ax.set_title(f"{a} ({mean})", fontsize=8)
        ax.set_xlim(-1.15, 1.15)
    for row in axes:
        row[0].set_ylabel("share of rounds")
    fig.suptitle("progress of a backtrack round: J(after revision) - J(after the attempt it revises)", fontsize=9)
    fig.tight_layout()
    fig.savefig(where / "backtracking_progress.png", dpi=120)
    plt.close(fig)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    grid = r["grid"]
    for ax, mode in zip(axes, ("lin_curve", "par_curve")):
        for a in names:
            ax.plot(grid, r["arms"][a][mode], label=a)
        ax.axvline(r["primary"]["B_tokens"], color="grey", lw=0.8, ls=":")
        ax.set_title("linearized (W = 1)" if mode == "lin_curve" else "parallel")
        ax.set_xlabel("generated tokens per trace")
    axes[0].set_ylabel("majority-vote accuracy")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(where / "backtracking_maj_vs_tokens.png", dpi=120)
    plt.close(fig)


def report(ns, table: dict | None) -> dict:
    S = ns.S
    doc = {
        "command": "python -m benchmarks.backtracking " + " ".join(sys.argv[1:]),
        "declared": {
            "task": S.TASK,
            "knobs": S.KNOBS,
            "warmstart": S.WARMSTART,
            "schemes": S.SCHEMES,
            "sft": S.SFT,
            "rl": S.RL,
            "rl_arms": S.RL_ARMS,
            "tune_grid": {a: [[lr, x] for lr, x in g] for a, g in S.TUNE_GRID.items()},
            "tune_seeds": S.TUNE_SEEDS,
            "final_seeds": ns.seeds,
            "validation": S.VALIDATION,
            "test": S.TEST,
            "linearized": S.LINEARIZED,
            "primary": S.PRIMARY,
            "B_tokens": S.B_TOKENS,
            "scale": ns.scale,
        },
        "tuning": table,
        "results": results(ns),
    }
    Path(ns.results).parent.mkdir(parents=True, exist_ok=True)
    Path(ns.results).write_text(json.dumps(doc, indent=1))
    if not doc["results"]["missing"]:
        plots(doc, Path(ns.plots))
    print(markdown(doc))
    return doc


def plan(ns) -> dict:
    S = ns.S
    n_tune = sum(len(g) for g in S.TUNE_GRID.values()) * len(S.TUNE_SEEDS)
    done_tune = sum(_done(p / "val") for p in (Path(ns.out) / "tune").glob("*-s*") if "sft-" not in p.name)
    runs = [f"{a}-s{s}" for a in arms(S) for s in ns.seeds]
    runs += [f"{a}-s{s}" for a, b in extra_arms(S).items() for s in ns.seeds if s in b["seeds"]]
    out = {
        "tuning_runs": n_tune,
        "tuning_runs_done": done_tune,
        "final_runs": len(runs),
        "final_runs_with_record": sum(record_path(ns, r).exists() for r in runs),
        "B_tokens": S.B_TOKENS,
    }
    print(json.dumps(out))
    return out


# --------------------------------------------------------------------------- the stages (benchmarks.runner)

REPORT_AFTER_FINAL = True  # the final stage ends with the report of the records so far


def stage_plan(ns) -> dict:
    return plan(ns)


def stage_tune(ns) -> dict:
    """The tuning table: the committed one when it is complete and the stage is ``all`` (give another
    ``--tuning`` to tune again), else the tuning runs, written to ``--tuning``."""
    tuning_file = Path(ns.tuning)
    done_table = json.loads(tuning_file.read_text()) if tuning_file.exists() else None
    if ns.stage == "all" and done_table and all(t["chosen"] for t in done_table.values()):
        print(f"tuning finished: the choices in {tuning_file} (give another --tuning to tune again)", flush=True)
        return done_table
    table = tune(ns)
    tuning_file.parent.mkdir(parents=True, exist_ok=True)
    tuning_file.write_text(json.dumps(table, indent=1))
    return table


def stage_choose(ns, table: dict | None, stage: str) -> dict | None:
    """The tuning table (its ``chosen`` configurations): the tuning stage's, or the committed one."""
    tuning_file = Path(ns.tuning)
    if stage in ("final", "all"):
        if table is None and not tuning_file.exists():
            sys.exit("no tuning table: run --stage tune first")
        table = table or json.loads(tuning_file.read_text())
        if not all(t["chosen"] for t in table.values()):
            sys.exit("tuning is not finished: run --stage tune first")
    if table is None and tuning_file.exists():
        table = json.loads(tuning_file.read_text())
    return table


def stage_final(ns, table: dict) -> None:
    first, second = final_jobs(ns, table)
    run_jobs(ns, first, after=lambda name: write_record(ns, name.split("/")[1]))
    run_jobs(ns, second, after=lambda name: write_record(ns, name.split("/")[1]))
    for seed in ns.seeds:  # records of runs finished before (a rerun after a kill)
        for a in arms(ns.S) + list(extra_arms(ns.S)):
            run = f"{a}-s{seed}"
            if not record_path(ns, run).exists() and _done(final_dir(ns, run) / "eval"):
                write_record(ns, run)


def stage_report(ns, table: dict | None) -> dict:
    return report(ns, table)


def main(argv=None):
    return runner.run_design(sys.modules[__name__], argv)


if __name__ == "__main__":
    main()
