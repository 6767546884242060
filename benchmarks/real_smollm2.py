"""MRT on a real language model (issue 37): SmolLM2-135M-Instruct, given a thinking warm start, on a
reasoning-gym task it can learn, then GRPO against MRT at equal sampled tokens.

    python -m benchmarks.real_smollm2 --stage prepare     # the warm start and the task pilot
    python -m benchmarks.real_smollm2 --stage plan        # what is left, and how long it takes here
    python -m benchmarks.real_smollm2 --jobs 2            # tuning, final runs and the report

Stages:

* ``prepare``, in two steps, each resumable, each leaving its record in
  ``benchmarks/results/real_smollm2_prepare.json`` (committed):

  1. **Warm start.** ``mrt warmstart --scheme think`` writes R1-format thinking traces for chain
     sums of 2-3 terms of 1-2 digits (train seed 11, a quick attempt, a check by place value,
     sometimes a check by signs; half the quick attempts slip once, the check by place value then
     disagrees and one by signs settles it; :mod:`mrt.tasks.think_traces`), with forced-answer
     examples after the authors' termination text; ``mrt train --algo sft`` fine-tunes SmolLM2 on
     them for one epoch. The record keeps a fingerprint of the weights: a fresh checkout rebuilds the model with
     the same command and is told if the weights differ.
  2. **Task pilot.** ``mrt analyze`` of the warm-started model on each candidate difficulty
     (``PILOT_CANDIDATES``, problem seed 3, never used again), 48 problems x 2 traces, 4 forced
     answers per prefix. The declared rule: a candidate qualifies when its accuracy at the training
     budget B is in [0.3, 0.7] and thinking pays (that accuracy minus the answer forced before any
     thinking >= 0.1); of those, the one whose accuracy is closest to 0.5. The warm start must
     think in >= 2 episodes at the median, with J rising from the first episode to the second, on
     the chosen task. Anything else stops with an error naming what to change, and the settings
     refuse to load. A pilot that has chosen is never run again (its record is the design's).

* ``plan``, ``tune``, ``final``, ``report``, ``all``: the third didactic design's driver
  (``benchmarks/didactic_v3.py``) on ``benchmarks/real_smollm2_settings.py``, which declares the
  comparison (methods, grids, seeds, budget, primary endpoint) and reads the pilot's choice.

Everything is sized from rates measured on this 2-core machine (docs/real-models.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import statistics
import sys
from pathlib import Path

from benchmarks import runner

ROOT = Path(__file__).resolve().parents[1]
SETTINGS_FILE = ROOT / "benchmarks" / "real_smollm2_settings.py"
PREPARE = ROOT / "benchmarks" / "results" / "real_smollm2_prepare.json"
OUT = "runs/real-smollm2"

B = 128  # the training budget (thinking tokens); declared before the pilot
BUDGETS = [B // 2, B, 2 * B]
DATASET = "dataset=chain_sum"
GROUP = "episode_group_size=1"  # one R1 episode per marker: the warm start's episodes are short
WARMSTART = {
    "options": "min_terms:2,max_terms:3,min_digits:1,max_digits:2",
    "n_problems": 768,
    "problem_seed": 11,  # mrt train's default train seed; evaluation uses others
    "third": 0.5,
    "forced_share": 0.5,
    "slips": 0.5,
    "batch_size": 8,
    "learning_rate": 1e-4,
    "epochs": 1,
}
# The second warm start and its pilot, in folders of their own. The first (2-4 terms of 1-3 digits,
# 256 problems, no slips; candidates 2x2, 3x2, 4x2, 3x3 in runs/real-smollm2/warmstart and pilot)
# failed the pilot: its checks copied the first attempt's value (J by episode 0.02, 0.33, 0.31 on
# 2x2), with 2x2 at the band's lower edge (0.305 at B; 3x2 0.06). Its record is kept under
# "earlier". This one: slipped first attempts with checks that disagree (think_traces), three
# times the problems, the difficulty the pilot could reach (2-3 terms of 1-2 digits), and the
# candidates from 2 to 3 terms of 2 digits (terms of one digit have too few problems for held-out
# sets: 200 pairs). Chosen from the first pilot's figures, before this warm start existed.
FOLDERS = {"warmstart": "warmstart2", "pilot": "pilot2"}
PILOT_CANDIDATES = {  # ascending difficulty
    "2x2": "min_terms:2,max_terms:2,min_digits:2,max_digits:2",
    "23x2": "min_terms:2,max_terms:3,min_digits:2,max_digits:2",
    "3x2": "min_terms:3,max_terms:3,min_digits:2,max_digits:2",
}
TEST_PROBLEMS, FINAL_SEEDS = 96, 5  # the comparison's held-out split and seeds (real_smollm2_settings.py)
PILOT = {
    "problem_seed": 3,  # training and the warm start 11, test 0, validation 1 (mrt.tasks.text.gym_seed)
    "n_problems": 48,
    "traces": 2,
    "answers_per_prefix": 4,
    "max_new_tokens": 3 * B,
    "band": [0.3, 0.7],
    "min_thinking_gain": 0.1,
}


def smollm2_path() -> str:
    from mrt.models import smollm2

    return str(smollm2())


def rel(path: Path) -> Path:
    """A path under the checkout as the commands see it (they run from its root): relative, so that
    a run's settings and its resume do not depend on where the checkout is."""
    return path.relative_to(ROOT)


def warm_dir() -> Path:
    return ROOT / OUT / FOLDERS["warmstart"]


def pilot_dir() -> Path:
    return ROOT / OUT / FOLDERS["pilot"]


def warm_model() -> Path:
    """Where the warm-started model is: the settings file names the same folder."""
    return warm_dir() / "sft" / "model"


def knobs(options: str) -> list[str]:
    return [DATASET, f"options={options}", GROUP]


def fingerprint(model_dir: Path) -> str:
    """A short digest of a model's weights (the safetensors files, in name order)."""
    h = hashlib.sha256()
    for f in sorted(model_dir.glob("*.safetensors")):
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def load_prepare() -> dict:
    return json.loads(PREPARE.read_text()) if PREPARE.exists() else {}


def save_prepare(doc: dict) -> None:
    PREPARE.parent.mkdir(parents=True, exist_ok=True)
    PREPARE.write_text(json.dumps(doc, indent=1) + "\n")


# --------------------------------------------------------------------------- the warm start


def archive_earlier(doc: dict) -> dict:
    """A record whose warm start had other settings is an earlier attempt: it moves, with its pilot,
    to ``earlier`` (kept, never rewritten), and this warm start's record starts afresh."""
    prev = doc.get("warmstart")
    if prev and prev["settings"] != json.loads(json.dumps(WARMSTART)):
        doc.setdefault("earlier", []).append({"warmstart": prev, "pilot": doc.pop("pilot", None)})
        del doc["warmstart"]
    return doc


ENV_PACKAGES = ("torch", "transformers", "trl", "accelerate", "safetensors", "numpy")


def environment() -> dict:
    """What the warm start's weights depend on beyond its settings: the packages that train it, the
    CPU and the thread count (a rebuild in another environment writes other weights)."""
    import platform
    from importlib import metadata

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return {
        "packages": {name: metadata.version(name) for name in ENV_PACKAGES},
        "python": platform.python_version(),
        "cpu": cpu,
        "threads": torch.get_num_threads(),
    }


def environment_differences(recorded: dict | None, here: dict) -> list[str]:
    """What differs between the environment a record's warm start was built in and this one (an
    older record without one: nothing known, nothing refused)."""
    if not recorded:
        return []
    out = [
        f"{name} {recorded['packages'].get(name)} (here {v})"
        for name, v in here["packages"].items()
        if recorded.get("packages", {}).get(name) != v
    ]
    out += [f"{k} {recorded.get(k)} (here {here[k]})" for k in ("python", "threads") if recorded.get(k) != here[k]]
    return out


def check_environment(recorded: dict | None, here: dict) -> None:
    """Before an hour's rebuild: refuse where the committed weights were built with other packages or
    threads, naming what differs and the pins that restore it (another CPU: a note; the fingerprint
    check after the rebuild decides)."""
    diffs = environment_differences(recorded, here)
    if recorded and recorded.get("cpu") != here["cpu"]:  # the same kernels may still run: the fingerprint decides
        print(
            f"note: the warm start was built on {recorded.get('cpu')}, this is {here['cpu']}: the rebuilt weights may differ"
        )
    if diffs:
        pins = " ".join(f"{n}=={v}" for n, v in recorded["packages"].items() if here["packages"].get(n) != v)
        sys.exit(
            "the committed warm start was built in another environment, so a rebuild here would write other "
            f"weights than its records were made from: {'; '.join(diffs)}."
            + (f" Pin the packages (pip install {pins}) and rebuild" if pins else " Rebuild where they match")
            + f", or restart the comparison from new weights (move {rel(PREPARE)}'s warmstart and pilot "
            "entries and the design's records aside and run --stage prepare)"
        )


def check_weights(committed: str | None, rebuilt: str) -> None:
    """A rebuilt warm start must have the committed record's weights: the pilot and every tuning and
    final record were made from them, and runs from other weights must not join them."""
    if committed and committed != rebuilt:
        import torch

        sys.exit(
            f"the rebuilt warm-started model's weights ({rebuilt}) differ from the committed record's "
            f"({committed}), whose pilot, tuning and final records were made from them. Rebuild with the "
            f"torch version and thread count that made them (here: torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads), or, to restart the comparison from these weights, move "
            f"{rel(PREPARE)}'s warmstart and pilot entries and the design's records aside and run --stage prepare"
        )


def warmstart(ns) -> dict:
    W, d = WARMSTART, warm_dir()
    base = smollm2_path()
    data = d / "data"
    cmds = []
    if not (data / "summary.json").exists():
        cmds.append(
            runner.mrt_cmd(
                "warmstart",
                scheme="think",
                task="gym",
                knobs=knobs(W["options"]),
                model=base,
                n_problems=W["n_problems"],
                problem_seed=W["problem_seed"],
                third=W["third"],
                forced_share=W["forced_share"],
                slips=W["slips"],
                out=rel(data),
            )
        )
    if cmds:
        runner.run_jobs([runner.Job("warmstart/data", cmds, d / "log.txt")], 1, d)
    examples = json.loads((data / "summary.json").read_text())["examples"]
    steps = -(-examples * W["epochs"] // W["batch_size"])
    sft = d / "sft"
    if not (sft / "summary.json").exists():
        check_environment(load_prepare().get("warmstart", {}).get("environment"), environment())
        cmd = runner.mrt_cmd(
            "train",
            algo="sft",
            sft_data=rel(data / "data.jsonl"),
            model=base,
            task="gym",
            knobs=knobs(W["options"]),
            batch_size=W["batch_size"],
            learning_rate=W["learning_rate"],
            max_steps=steps,
            eval_problems=0,
            report_to="none",
            out=rel(sft),
        )
        runner.run_jobs([runner.Job("warmstart/sft", [cmd], d / "log.txt")], 1, d)
    s = json.loads((sft / "summary.json").read_text())
    log = [json.loads(x) for x in (sft / "train_log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    rec = {
        "settings": W,
        "examples": examples,
        "steps": s.get("steps"),
        "wall_seconds": s.get("wall_seconds"),
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
        "fingerprint": fingerprint(warm_model()),
        "environment": environment(),
    }
    doc = archive_earlier(load_prepare())
    check_weights(doc.get("warmstart", {}).get("fingerprint"), rec["fingerprint"])
    doc["warmstart"] = record_rebuild(doc.get("warmstart"), rec)
    save_prepare(doc)
    return doc["warmstart"]


def record_rebuild(prev: dict | None, rec: dict) -> dict:
    """The record of the build the design's runs came from stays as it was; a later build with the
    same weights (a fresh checkout's rebuild) is logged under ``rebuilds``, once."""
    if not prev or prev.get("fingerprint") != rec["fingerprint"]:
        return rec
    entry = {k: rec[k] for k in ("wall_seconds", "loss_last", "environment")}
    if entry != {k: prev.get(k) for k in entry} and entry not in prev.get("rebuilds", []):
        prev = {**prev, "rebuilds": [*prev.get("rebuilds", []), entry]}
    return prev


# --------------------------------------------------------------------------- the task pilot


def pilot_figures(eval_dir: Path) -> dict:
    """Accuracy at B (strict: truncated traces wrong), the answer forced before any thinking, J by
    episode, episodes per trace, thinking tokens."""
    from benchmarks import didactic_v2 as D
    from mrt.core.trace import TraceRecord

    tab = D.problem_table(eval_dir, BUDGETS)
    traces = [t for ts in tab.values() for t in ts]
    recs = [TraceRecord.from_json(json.loads(x), str(eval_dir)) for x in open(eval_dir / "traces.jsonl")]
    summary = json.loads((eval_dir / "summary.json").read_text())
    acc = {str(c): statistics.fmean(t["acc_at"][str(c)] for t in traces) for c in BUDGETS}
    # J(empty) depends on the prompt alone: every trace's own estimate, truncated ones too
    j_empty = [r.j_curve[0] for r in recs if r.prefixes]
    per_problem = [statistics.fmean(t["acc_at"][str(B)] for t in ts) for ts in tab.values()]
    j0 = statistics.fmean(j_empty) if j_empty else 0.0
    return {
        "acc_at": acc,
        "j_empty": j0,
        "thinking_gain": acc[str(B)] - j0,
        "natural_accuracy": statistics.fmean(t["correct"] for t in traces),
        "episodes_median": statistics.median(len(r.episode_ends) for r in recs),
        "j_by_episode": summary.get("j_by_episode", [])[:5],
        "traces_by_episode": summary.get("traces_by_episode", [])[:5],
        "mean_thinking_tokens": summary.get("mean_thinking_tokens"),
        "truncated": sum(r.status != "ok" for r in recs),
        "problem_sd": statistics.stdev(per_problem) if len(per_problem) > 1 else None,
        "n_traces": len(recs),
        **check_figures(eval_dir / "traces.jsonl"),
    }


def episode_value(text: str) -> int | None:
    """The last integer an episode works out (its last ``= N``), or None."""
    found = re.findall(r"=\s*(-?\d+)\b(?!\.\d)", text)
    return int(found[-1]) if found else None


def _int(s) -> int | None:
    try:
        return int(str(s).strip())
    except ValueError:
        return None


def check_figures(traces_file: Path) -> dict:
    """Do the checks check? Of the traces whose first episode works out a wrong value and that have a
    second episode: how many second episodes reach the right value, and how many repeat the first's."""
    wrong_first = repeats = fixes = 0
    for line in open(traces_file):
        r = json.loads(line)
        eps, ref = [episode_value(e["text"]) for e in r.get("episodes", [])], _int(r["reference"])
        if len(eps) < 2 or eps[0] is None or eps[0] == ref:
            continue
        wrong_first += 1
        repeats += eps[1] == eps[0]
        fixes += eps[1] is not None and eps[1] == ref
    return {"wrong_first_with_a_check": wrong_first, "check_repeats_it": repeats, "check_fixes_it": fixes}


def min_detectable(sd: float, problems: int, seeds: int, methods: int = 2, power: float = 0.8) -> float:
    """A rough scale, not a power calculation: the difference in accuracy at B that ``problems`` x
    ``seeds`` independent per-problem differences of variance 2 sd^2 would resolve at two-sided
    0.05 / ``methods`` (Holm's first step) with ``power``. Pairing over problems removes part of
    the problems' spread; reusing the same problems in every seed and the seed-to-seed variance of
    training add to it. Neither is known before the final runs."""
    from statistics import NormalDist

    z = NormalDist().inv_cdf(1 - 0.05 / methods / 2) + NormalDist().inv_cdf(power)
    return z * (2 * sd**2 / (problems * seeds)) ** 0.5


def choose_task(figs: dict[str, dict]) -> tuple[str | None, str]:
    """The declared rule: of the candidates with accuracy at B in the band and a thinking gain of at
    least the minimum, the one closest to 0.5 (ties: the easier). Returns (name or None, why)."""
    lo, hi = PILOT["band"]

    def r9(x: float) -> float:  # k/384-type accuracies: no float noise in the comparisons
        return round(x, 9)

    ok = [
        n
        for n, f in figs.items()
        if lo <= r9(f["acc_at"][str(B)]) <= hi and r9(f["thinking_gain"]) >= PILOT["min_thinking_gain"]
    ]
    if not ok:
        table = ", ".join(
            f"{n}: acc@{B} {f['acc_at'][str(B)]:.2f}, gain {f['thinking_gain']:+.2f}" for n, f in figs.items()
        )
        return None, (
            f"no candidate has accuracy at B={B} in [{lo}, {hi}] and a thinking gain >= {PILOT['min_thinking_gain']} "
            f"({table}); change the candidates (PILOT_CANDIDATES), the budget B or the warm start (WARMSTART)"
        )
    order = list(figs)
    best = min(ok, key=lambda n: (r9(abs(figs[n]["acc_at"][str(B)] - 0.5)), order.index(n)))
    return best, "closest to 0.5 of those in the band with a thinking gain"


def check_thinking(name: str, f: dict) -> str:
    """The warm start must think in episodes, and J must rise across them: '' when it does, else
    what is wrong and what to change."""
    if f["episodes_median"] < 2:
        return (
            f"the warm-started model thinks in {f['episodes_median']} episodes at the median on {name} (at least "
            "2 needed): train the warm start longer (WARMSTART epochs) or check that the traces' episodes are "
            "cut by the task's R1 segmentation (episode_group_size=1)"
        )
    js = f["j_by_episode"]
    if len(js) < 3:
        return f"no J after a second episode on {name} (J by episode {js}): the warm start does not check its work"
    if js[2] <= js[1]:
        return (
            f"J does not rise from the first episode to the second on {name} (J by episode {js}): the warm "
            "start's checks do not help; change the traces (mrt.tasks.think_traces) or the candidates"
        )
    return ""


def pilot(ns) -> dict:
    """The pilot's analyses, the declared choice and the warm start's check, recorded together; a
    pilot that has chosen (its record committed) is not run again."""
    doc = archive_earlier(load_prepare())
    if (doc.get("pilot") or {}).get("chosen"):
        return doc["pilot"]
    if "warmstart" not in doc:
        raise SystemExit("the pilot measures this warm start, which has no record yet: run --stage prepare")
    model = warm_model()
    jobs = []
    for name, options in PILOT_CANDIDATES.items():
        d = pilot_dir() / name
        if (d / "summary.json").exists():
            continue
        cmd = runner.mrt_cmd(
            "analyze",
            model=rel(model),
            task="gym",
            knobs=knobs(options),
            backend=ns.backend,
            n_problems=PILOT["n_problems"],
            problem_seed=PILOT["problem_seed"],
            traces_per_problem=PILOT["traces"],
            answers_per_prefix=PILOT["answers_per_prefix"],
            max_new_tokens=PILOT["max_new_tokens"],
            budgets=BUDGETS,
            extensions=0,
            out=rel(d),
        )
        jobs.append(runner.Job(f"pilot/{name}", [cmd], d.parent / f"{name}.log"))
    if jobs:
        runner.run_jobs(jobs, 1, pilot_dir())
    figs = {n: pilot_figures(pilot_dir() / n) for n in PILOT_CANDIDATES}
    chosen, why = choose_task(figs)
    problem = check_thinking(chosen, figs[chosen]) if chosen else why
    sd = figs[chosen]["problem_sd"] if chosen else None
    doc["pilot"] = {
        "warmstart_fingerprint": fingerprint(model),
        "settings": PILOT,
        "budget": B,
        "candidates": PILOT_CANDIDATES,
        "figures": figs,
        "rule": why,
        "thinking_check": problem or "ok",
        "problems_only_scale": {
            "problems": TEST_PROBLEMS,
            "seeds": FINAL_SEEDS,
            "value": min_detectable(sd, TEST_PROBLEMS, FINAL_SEEDS) if sd else None,
            "note": "a rough scale from the pilot's spread of problems (2 traces, unpaired), not a power calculation",
        },
        # the settings file reads these two, and refuses to load without them
        "chosen": None if problem else chosen,
        "options": None if problem else PILOT_CANDIDATES[chosen],
    }
    save_prepare(doc)
    print(markdown(doc), flush=True)
    if problem:
        raise SystemExit(problem)
    return doc["pilot"]


def _f(x, spec: str = ".3f") -> str:
    return "—" if x is None else format(x, spec)


def markdown(doc: dict) -> str:
    """The record's warm starts and pilots, the earlier attempts first."""
    parts = [
        f"Earlier attempt {i + 1}:\n\n" + attempt_markdown(a.get("warmstart"), a.get("pilot"))
        for i, a in enumerate(doc.get("earlier", []))
    ]
    return "\n\n".join(parts + [attempt_markdown(doc.get("warmstart"), doc.get("pilot"))])


def checks(f: dict) -> str:
    if "wrong_first_with_a_check" not in f:
        return "—"
    return f"{f['check_repeats_it']} / {f['check_fixes_it']} of {f['wrong_first_with_a_check']}"


def attempt_markdown(w: dict | None, p: dict | None) -> str:
    lines = []
    if w:
        lines += [
            f"Warm start: {w['examples']} examples from {w['settings']['n_problems']} problems, slips "
            f"{w['settings'].get('slips', 0)}, {w['steps']} SFT steps, {_f(w.get('wall_seconds'), '.0f')} s, "
            f"loss {_f(w.get('loss_first'))} -> {_f(w.get('loss_last'))} (weights {w['fingerprint']})",
            "",
        ]
        lines += [
            f"Rebuilt with the same weights in {_f(r['wall_seconds'], '.0f')} s ({r['environment']['cpu']}, "
            f"{r['environment']['threads']} threads)\n"
            for r in w.get("rebuilds", [])
        ]
    if p:
        lines += [
            f"| candidate | acc at {B // 2} | acc at B={B} | acc at {2 * B} | before thinking | thinking gain | "
            "episodes (median) | J by episode | wrong first attempts: check repeats / fixes | thinking tokens | "
            "truncated |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for n, f in p["figures"].items():
            a = f["acc_at"]
            mark = " (**chosen**)" if n == p["chosen"] else ""
            lines.append(
                f"| {n}{mark} | {_f(a[str(B // 2)])} | {_f(a[str(B)])} | {_f(a[str(2 * B)])} | {_f(f['j_empty'])} | "
                f"{_f(f['thinking_gain'], '+.3f')} | {f['episodes_median']} | "
                f"{', '.join(_f(x, '.2f') for x in f['j_by_episode'])} | {checks(f)} | "
                f"{_f(f['mean_thinking_tokens'], '.0f')} | "
                f"{f['truncated']}/{f['n_traces']} |"
            )
        lines.append(f"\nRule: {p['rule']}. Warm start's thinking: {p['thinking_check']}.")
        scale = p.get("problems_only_scale", {}).get("value")
        if scale:
            lines.append(
                f"A rough scale of the difference {FINAL_SEEDS} seeds x {TEST_PROBLEMS} problems resolve, from the "
                f"pilot's spread of problems (not a power calculation): {scale:.3f}."
            )
    return "\n".join(lines)


# --------------------------------------------------------------------------- the command


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stage", default="all", choices=["prepare", "plan", "tune", "final", "report", "all"])
    p.add_argument("--backend", default="vllm", help="sampler of the pilot's analyses (default: vllm)")
    return p.parse_known_args(argv)


def main(argv=None) -> None:
    """``prepare``: the warm start, then the pilot. Other stages go to the v3 driver (its flags pass
    through); ``tune``, ``final`` and ``all`` first make what is missing: the pilot's choice, and the
    warm-started model (rebuilt on a fresh checkout, checked against the record's fingerprint)."""
    ns, rest = parse(argv)
    if ns.stage in ("prepare", "tune", "final", "all"):
        warmstart(ns)  # what is missing (the steps done are skipped; the weights are checked)
        pilot(ns)
        if ns.stage == "prepare":
            return
    from benchmarks import didactic_v3

    didactic_v3.main(["--settings-file", str(SETTINGS_FILE), "--stage", ns.stage, *rest])


if __name__ == "__main__":
    main()
