"""Flows across the mission's parts. ``measure``, ``train``, ``act`` and ``report`` import none of
each other (docs/architecture.md); what joins them lives here, each a few lines:

* :func:`analyze`: measure's analysis, then report's ``report.html`` (``mrt analyze``);
* :func:`evaluate`: measure's harness, with act's online controller when ``--stop`` is set
  (``mrt eval``);
* :func:`train`: train's run, ended by measure's analysis of held-out problems on the training
  engine (``mrt train``);
* :func:`evaluate_held_out`: that final analysis alone.
"""

from __future__ import annotations

from pathlib import Path

from mrt.core.figures import eval_figures
from mrt.measure.analyze import AnalyzeConfig, run_analysis
from mrt.measure.evaluate import EvalConfig, run_eval
from mrt.train.config import TrainConfig
from mrt.train.run import eval_budgets, run_train


def analyze(cfg: AnalyzeConfig, sampler=None, share=None) -> dict:
    """``mrt analyze``: the analysis and its ``report.html`` (``share``: several processes,
    :class:`mrt.runloop.Share`)."""
    from mrt.report.analysis import write_report

    return run_analysis(cfg, sampler=sampler, report=write_report, share=share)


def evaluate(cfg: EvalConfig, sampler=None, share=None) -> dict:
    """``mrt eval``: pass@1, maj@k, pass@k; with ``cfg.stop``, under the online stop controller."""
    from mrt.act.stopper import stopper_from

    return run_eval(cfg, sampler=sampler, stopper=stopper_from, share=share)


def evaluate_held_out(sampler, cfg: TrainConfig, out: Path, task) -> dict:
    """A trained model's analysis on held-out problems (and, with ``eval_knobs``, harder ones):
    ``{set: figures}`` for the training summary (``core.figures.eval_figures``)."""
    res = {}
    sets = {"held_out": ("eval", [])}
    if cfg.eval_knobs:
        sets["hard"] = ("eval-hard", list(cfg.eval_knobs))
    for name, (sub, knobs) in sets.items():
        acfg = AnalyzeConfig(
            model=str(out / "model"),
            task=cfg.task,
            knobs=list(cfg.knobs if not knobs else knobs),
            out=str(out / sub),
            n_problems=cfg.eval_problems,
            problem_seed=cfg.eval_seed,
            traces_per_problem=cfg.eval_traces,
            extensions=cfg.eval_extensions,
            seed=cfg.seed,
            max_new_tokens=cfg.max_completion_length,
            answer_tokens=cfg.answer_tokens,
            extension_tokens=cfg.max_completion_length // 4,
            budgets=eval_budgets(cfg, task),
        )
        res[name] = eval_figures(analyze(acfg, sampler=sampler))
    return res


def train(cfg: TrainConfig) -> dict:
    """``mrt train``: train, then analyse held-out problems (``cfg.eval_problems`` of them)."""
    return run_train(cfg, evaluate=evaluate_held_out)
