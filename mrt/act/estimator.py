"""The learned progress estimator: J at a thinking prefix from one forward pass.

``mrt analyze`` writes, for every prefix of every trace, a Monte Carlo estimate of J (the success
rate of answers forced there). The estimator is the policy's own network with a scalar value
head (:mod:`mrt.value_head`), trained with binary cross-entropy against those estimates (soft
targets) on the token ids ``prompt + thinking prefix``. It then predicts J at a prefix with one
forward pass and no sampled tokens: a cheap signal for the stop rules (:mod:`mrt.act.rules`).

``mrt estimator train --analysis DIR ... --out EST``: trains on the analysis directories'
traces, holding out a share of the problems; writes ``EST/`` (the model), ``EST/calibration.json``
(predicted vs measured J on the held-out prefixes: reliability bins, expected calibration error,
Brier score, correlation) and ``EST/reliability.png``.
``mrt estimator predict --estimator EST --analysis DIR --out FILE``: J per prefix of every trace
of DIR (``{"problem_id", "trace", "j": [...]}`` per line), for ``mrt early-stop --estimates``.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path

from mrt.config import arg
from mrt.core.calibration import calibration
from mrt.core.trace import TraceRecord
from mrt.rundir import atomic_path, read_jsonl_whole, write_atomic, write_json

log = logging.getLogger(__name__)


@dataclass
class EstimatorConfig:
    analysis: list[str] = arg([], "analysis directories (mrt analyze) whose traces it learns from")
    out: str = arg("runs/estimator", "output directory (the model, calibration.json, reliability.png)")
    model: str = arg("", "network to put the head on (default: the analysed model, from run.json)")
    held_out: float = arg(0.2, "share of the problems held out for the calibration report")
    steps: int = arg(300, "training steps")
    batch_size: int = arg(32, "examples per step")
    learning_rate: float = arg(3e-4, "learning rate (cosine schedule)")
    seed: int = arg(0, "seed (split, the head's initial weights and training order)")
    threads: int = arg(0, "torch threads (0: torch's default)")


def read_records(directory: str | Path) -> list[TraceRecord]:
    """Trace records of an analysis directory; an error naming what is missing otherwise."""
    path = Path(directory) / "traces.jsonl"
    if not path.is_file():
        raise ValueError(f"{directory}: no traces.jsonl (not an mrt analyze directory)")
    rows = read_jsonl_whole(path)[0]  # a torn last line (a killed writer) is left out
    if not rows:
        raise ValueError(f"{path}: no traces")
    if "thinking_ids" not in rows[0][1]:
        raise ValueError(f"{path}: traces without token ids (made by an older mrt analyze); analyse again")
    return [TraceRecord.from_json(r, f"{path}:{n}") for n, r in rows]


def examples(records: list[TraceRecord]) -> list[tuple[list[int], float, str]]:
    """(prompt + thinking prefix ids, measured J, problem id) for every prefix of every trace."""
    out = []
    for r in records:
        for p in r.prefixes:
            out.append((r.prompt_ids + r.thinking_ids[: p["tokens"]], p["j"], r.problem_id))
    return out


def _split(problems: list[str], share: float, seed: int) -> set[str]:
    ids = sorted(set(problems))
    random.Random(seed).shuffle(ids)
    return set(ids[: max(1, round(share * len(ids)))]) if share > 0 else set()


def train_estimator(cfg: EstimatorConfig) -> dict:
    from mrt.value_head import score_sequences, train_value_head

    if not cfg.analysis:
        raise ValueError("give at least one analysis directory (--analysis DIR)")
    if not 0 <= cfg.held_out < 1:
        raise ValueError(f"held_out must be in [0, 1), got {cfg.held_out}")
    records = [r for d in cfg.analysis for r in read_records(d)]
    model = cfg.model or json.loads((Path(cfg.analysis[0]) / "run.json").read_text()).get("model") or ""
    if not model:
        from mrt.tasks.tiny import shipped_model_path

        model = str(shipped_model_path())
    ex = examples(records)
    held = _split([e[2] for e in ex], cfg.held_out, cfg.seed)
    train = [(ids, y) for ids, y, pid in ex if pid not in held]
    test = [(ids, y) for ids, y, pid in ex if pid in held]
    out = Path(cfg.out)
    from transformers import set_seed

    set_seed(cfg.seed)  # the value head's initial weights too: one seed, one estimator
    net, tok = train_value_head(
        model,
        train,
        out,
        steps=cfg.steps,
        batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        seed=cfg.seed,
        threads=cfg.threads,
    )
    run_file = Path(cfg.analysis[0]) / "run.json"
    run = json.loads(run_file.read_text()) if run_file.is_file() else {}
    report = {
        "model": model,
        "task": run.get("task"),  # a training run's --estimator is checked against its task
        "sampling": {k: run.get(k) for k in ("temperature", "top_p")},  # what the targets were sampled at
        "analysis": list(cfg.analysis),
        "train_examples": len(train),
        "held_out_examples": len(test),
        "held_out_problems": len(held),
    }
    if test:
        pred = score_sequences(net, tok, [ids for ids, _ in test])
        report["calibration"] = calibration(pred, [y for _, y in test])
        _plot(report["calibration"], out / "reliability.png")
    write_json(out / "calibration.json", report)
    return report


def _plot(cal: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 4))
    ax.plot([0, 1], [0, 1], color="0.6", lw=0.8, ls="--", label="calibrated")
    xs = [b["predicted"] for b in cal["bins"]]
    ax.plot(xs, [b["measured"] for b in cal["bins"]], marker="o", label="estimator")
    for b in cal["bins"]:
        ax.annotate(
            str(b["n"]),
            (b["predicted"], b["measured"]),
            textcoords="offset points",
            xytext=(0, 6),
            fontsize=7,
            ha="center",
        )
    ax.set(
        xlabel="predicted J",
        ylabel="measured J (Monte Carlo)",
        xlim=(0, 1),
        ylim=(0, 1),
        title=f"Reliability (ECE {cal['ece']:.3f}, n={cal['n']})",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def load_estimator(path: str | Path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from mrt.rundir import has_weights

    path = Path(path)
    if not has_weights(path):
        raise ValueError(f"{path}: no trained estimator there (mrt estimator train --out {path})")
    return AutoModelForSequenceClassification.from_pretrained(str(path)), AutoTokenizer.from_pretrained(str(path))


def predict(estimator: str | Path, analysis: str | Path, out: str | Path) -> int:
    """J per prefix of every trace of an analysis directory, written as JSONL; returns traces."""
    from mrt.value_head import score_sequences

    net, tok = load_estimator(estimator)
    records = read_records(analysis)
    ex = examples(records)
    pred = iter(score_sequences(net, tok, [ids for ids, _, _ in ex]))
    rows = [{"problem_id": r.problem_id, "trace": r.trace, "j": [next(pred) for _ in r.prefixes]} for r in records]
    write_atomic(out, "".join(json.dumps(row) + "\n" for row in rows))
    return len(records)


def read_estimates(path: str | Path) -> dict:
    """{(problem_id, trace): [J per prefix]} from :func:`predict`'s file."""
    out = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
                out[(row["problem_id"], row["trace"])] = [float(x) for x in row["j"]]
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                raise ValueError(f"{path}:{n}: not an estimates line (problem_id, trace, j)") from None
    return out
