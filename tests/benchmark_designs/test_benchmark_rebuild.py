"""Every committed benchmark's report stage rebuilds its committed results JSON from the committed
records, with equal numbers (only the ``command`` that wrote it differs): the evidence the docs
quote is what the code computes from the records, today."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"

# (driver, committed results file); each report stage reads only committed records
BENCHMARKS = [
    ("didactic_v2", "didactic_v2.json"),
    ("didactic_v3", "didactic_v3.json"),
    ("didactic_v3 --settings-file benchmarks/didactic_v4_settings.py", "didactic_v4.json"),
    ("didactic_v3 --settings-file benchmarks/didactic_curriculum_settings.py", "didactic_curriculum.json"),
    ("backtracking", "backtracking.json"),
    ("backtracking --settings-file benchmarks/backtracking_episode_settings.py", "backtracking_episode.json"),
    ("amortised_progress", "amortised_progress.json"),
]


def _differences(new, old, path="") -> list[str]:
    if isinstance(new, dict) and isinstance(old, dict):
        out = [f"{path}/{k}: only in one" for k in set(new) ^ set(old)]
        for k in set(new) & set(old):
            out += _differences(new[k], old[k], f"{path}/{k}")
        return out
    if isinstance(new, list) and isinstance(old, list):
        if len(new) != len(old):
            return [f"{path}: {len(new)} items, committed {len(old)}"]
        return [d for i, (a, b) in enumerate(zip(new, old)) for d in _differences(a, b, f"{path}[{i}]")]
    return [] if new == old else [f"{path}: {str(new)[:60]} != committed {str(old)[:60]}"]


@pytest.mark.parametrize("driver,results", BENCHMARKS, ids=[r.split(".")[0] for _, r in BENCHMARKS])
def test_report_stage_rebuilds_the_committed_results(driver, results, tmp_path):
    out = tmp_path / "results.json"
    module, *args = driver.split()
    cmd = [sys.executable, "-m", f"benchmarks.{module}", *args, "--out", str(tmp_path / "work")]
    cmd += ["--stage", "report", "--results", str(out)]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    new, old = json.loads(out.read_text()), json.loads((RESULTS / results).read_text())
    new.pop("command", None), old.pop("command", None)
    diffs = _differences(new, old)
    assert not diffs, f"{len(diffs)} differences, e.g. " + "; ".join(sorted(diffs)[:8])


def _committed_bounds(name: str, split: str, estimator_seed: int = 0):
    """The early-stopping benchmark's committed per-boundary rows of one model and split, as the
    replay's boundaries (the rows are rounded to 4 decimals: the rebuild is equal to that)."""
    import gzip

    from mrt.act.tradeoff import Boundary

    lines = [json.loads(x) for x in gzip.open(RESULTS / "early_stopping_traces" / f"{name}.jsonl.gz", "rt")]
    head, rows = lines[0], lines[1:]
    bounds, keys = [], []
    for r in (x for x in rows if x["split"] == split):
        last = len(r["b"]) - 1
        bs = []
        for i, v in enumerate(r["b"]):
            d = dict(zip(head["fields"], v))
            bs.append(
                Boundary(
                    tokens=d["tokens"],
                    acc=d["acc"],
                    answer_tokens=d["answer_tokens"],
                    j=d["j"],
                    vote=d["vote"],
                    confidence=d["confidence"],
                    estimate=d[f"estimate_e{estimator_seed}"],
                    generated=d["generated"],
                    end=i == last and last > 0,
                    majority=d["majority"],
                    trial=d["trial"],
                )
            )
        bounds.append(bs)
        keys.append((r["id"], r["trace"]))
    return bounds, keys, head["k"]


@pytest.mark.parametrize("name", ["base", "grpo", "mrt"])
def test_early_stopping_replay_rebuilds_from_its_committed_rows(name):
    """The early-stopping results come from analyses and estimators that are not committed; its
    committed per-boundary rows are. The replay of every rule on the test split, from those rows,
    gives the committed figures: exactly where no rounded signal decides (the budgets and the
    natural end), to the rows' rounding elsewhere; and the rules chosen on validation are the same."""
    from mrt.act.tradeoff import select, tradeoff_bounds

    committed = json.loads((RESULTS / "early_stopping.json").read_text())["results"][name]
    sources = ("oracle", "vote", "estimator")
    bounds, keys, k = _committed_bounds(name, "test")
    res = tradeoff_bounds(bounds, keys, k, sources=sources, with_estimates=True, draws=1000)
    old = {(p["rule"], p["source"]): p for p in committed["test"]["points"]}
    assert len(res["points"]) == len(old) and res["n_traces"] == committed["test"]["n_traces"]
    for p in res["points"]:
        c = old[(p["rule"], p["source"])]
        exact = p["family"] in ("budget", "natural")
        assert p["accuracy"] == pytest.approx(c["accuracy"], abs=1e-4 if exact else 5e-3), p["rule"]
        assert p["tokens"] == pytest.approx(c["tokens"], rel=1e-4 if exact else 1e-2), p["rule"]
    vb, vk, _ = _committed_bounds(name, "val")
    chosen = select(tradeoff_bounds(vb, vk, k, sources=sources, with_estimates=True, draws=200)["points"])
    assert set(committed["selected"]) <= set(chosen)
    for fam, per_seed in committed["selected"].items():
        assert chosen[fam]["rule"] == per_seed[0]["chosen_on_validation"]["rule"], fam
