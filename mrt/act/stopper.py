"""``mrt eval --stop RULE``'s side in the act part: the settings checked before any work, one
problem's row from the online controller (:func:`mrt.act.controller.run_controller`), and the
``stop`` block of ``summary.json``. The measure part's ``run_eval`` receives :func:`stopper_from`
from ``mrt.pipelines.evaluate`` and never imports this module.
"""

from __future__ import annotations

import logging

from mrt.act.controller import boundary_stop_texts, run_controller
from mrt.act.rules import StopRule, parse_rule
from mrt.act.tradeoff import J_SOURCES

log = logging.getLogger(__name__)


class Stopper:
    """The online controller of one ``mrt eval --stop`` run (``cfg``: its ``EvalConfig``)."""

    def __init__(self, cfg, rule: StopRule, estimator, segmentation: str):
        self.cfg, self.rule, self.estimator, self.segmentation = cfg, rule, estimator, segmentation

    def row(self, sampler, task, problem, prompt: list[int], seed: int) -> dict:
        """One problem's row: ``cfg.samples`` traces under the controller, graded."""
        cfg = self.cfg
        traces = run_controller(
            sampler,
            task,
            problem,
            prompt,
            cfg.samples,
            self.rule,
            source=cfg.j_source,
            k=cfg.stop_k,
            max_new_tokens=cfg.max_new_tokens or task.default_max_new_tokens,
            answer_tokens=cfg.answer_tokens or task.default_answer_tokens,
            chunk_tokens=cfg.chunk_tokens,
            segmentation=self.segmentation,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            seed=seed,
            estimator=self.estimator,
            reuse_signal_answer=cfg.reuse_signal_answer,
        )
        answers = [t["answer"] for t in traces]
        return {
            "problem_id": problem.id,
            "reference": problem.answer,
            "answers": answers,
            "correct": [t["correct"] for t in traces],
            "labels": task.answer_labels(answers),
            "n_tokens": [t["tokens"] for t in traces],
            "finish": ["stop" if t["stopped_early"] or t["natural_end"] else "length" for t in traces],
            "controller": traces,
        }

    def summary(self, rows: list[dict]) -> dict:
        """The ``stop`` block of ``summary.json``: how often and where the rule stopped, what it cost."""
        cfg = self.cfg
        ts = [t for r in rows for t in r["controller"]]
        return {
            "rule": cfg.stop,
            "j_source": cfg.j_source,
            "k": cfg.stop_k,
            "stopped_early_fraction": sum(t["stopped_early"] for t in ts) / len(ts),
            "mean_thinking_tokens": sum(t["generated_tokens"] for t in ts) / len(ts),
            "mean_overhead_tokens": sum(t["overhead_tokens"] for t in ts) / len(ts),
            # the learned estimator's forward passes: token positions processed, not sampled (what a
            # saving in sampled tokens is net of)
            "mean_estimator_tokens_processed": sum(t.get("estimator_tokens_processed", 0) for t in ts) / len(ts),
            "mean_answer_tokens": sum(t["answer_tokens"] for t in ts) / len(ts),
            "answer_reused_fraction": sum(t.get("answer_reused", False) for t in ts) / len(ts),
            "natural_end_fraction": sum(t["natural_end"] and not t["stopped_early"] for t in ts) / len(ts),
            "reuse_signal_answer": cfg.reuse_signal_answer,
        }


def stopper_from(cfg, task) -> Stopper:
    """The controller ``cfg.stop`` asks for, every setting checked before any work."""
    rule = parse_rule(cfg.stop)
    if cfg.j_source not in J_SOURCES:
        raise ValueError(f"j_source must be one of {', '.join(J_SOURCES)}, got {cfg.j_source!r}")
    if cfg.stop_k < 1 or cfg.chunk_tokens < 1:
        raise ValueError("stop_k and chunk_tokens must be >= 1")
    segmentation = cfg.segmentation
    if not (
        segmentation == "task"
        or (segmentation.startswith("chunk:") and segmentation[6:].isdigit() and int(segmentation[6:]) > 0)
    ):
        raise ValueError(f"segmentation must be 'task' or 'chunk:N', got {segmentation!r}")
    if segmentation == "task" and not task.think_end_text:
        segmentation = f"chunk:{cfg.chunk_tokens}"
        log.warning(
            "the model does not think in tags (thinking=none): episode boundaries fall back to %s-token chunks "
            "(--segmentation chunk:N to choose)",
            cfg.chunk_tokens,
        )
    elif segmentation == "task" and not boundary_stop_texts(task):
        segmentation = f"chunk:{cfg.chunk_tokens}"
        log.warning(
            "task %s has no known episode markers to stop generation at: episode boundaries fall back to "
            "%s-token chunks (--segmentation chunk:N to choose)",
            task.name,
            cfg.chunk_tokens,
        )
    estimator = None
    if rule.signal == "j" and cfg.j_source == "estimator":
        if not cfg.estimator:
            raise ValueError("j_source=estimator needs --estimator DIR (mrt estimator train)")
        from mrt.act.estimator import load_estimator

        estimator = load_estimator(cfg.estimator)
    return Stopper(cfg, rule, estimator, segmentation)
