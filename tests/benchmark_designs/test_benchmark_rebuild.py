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
    ("backtracking", "backtracking.json"),
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


@pytest.mark.parametrize("driver,results", BENCHMARKS, ids=[b for b, _ in BENCHMARKS])
def test_report_stage_rebuilds_the_committed_results(driver, results, tmp_path):
    out = tmp_path / "results.json"
    cmd = [sys.executable, "-m", f"benchmarks.{driver}", "--out", str(tmp_path / "work")]
    cmd += ["--stage", "report", "--results", str(out)]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    new, old = json.loads(out.read_text()), json.loads((RESULTS / results).read_text())
    new.pop("command", None), old.pop("command", None)
    diffs = _differences(new, old)
    assert not diffs, f"{len(diffs)} differences, e.g. " + "; ".join(sorted(diffs)[:8])
