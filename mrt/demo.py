"""``mrt demo``: the didactic pipeline end to end on the shipped base model."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from mrt.config import arg

log = logging.getLogger(__name__)


@dataclass
class DemoConfig:
    out: str = arg("runs/demo", "output directory")
    model: str = arg("", "base model (default: the shipped didactic base model)")
    n_problems: int = arg(64, "held-out problems to analyse")
    seed: int = arg(0, "sampling seed")


def run_demo(cfg: DemoConfig) -> dict:
    from mrt.analyze import AnalyzeConfig, run_analysis
    from mrt.cli import _print_summary

    t0 = time.time()
    out = Path(cfg.out)
    base = AnalyzeConfig(model=cfg.model, task="star", out=str(out / "base"),
                         n_problems=cfg.n_problems, seed=cfg.seed)
    print(f"[1/1] analysing the base model on {cfg.n_problems} held-out star-graph problems")
    summary = run_analysis(base)
    _print_summary(summary, base.out)
    print(f"demo finished in {time.time() - t0:.0f} s; open {out}/base/report.html")
    return {"base": summary}
