"""Calibration of predicted success probabilities against measured ones (pure): the reliability
bins, expected calibration error, Brier score and correlation. Used by the progress estimator's
evaluation (act) and by dense MRT's per-step check of its estimator (train)."""

from __future__ import annotations

import statistics


def calibration(pred: list[float], target: list[float], bins: int = 10) -> dict:
    """Reliability of predicted J against measured J: per bin of the prediction, the mean
    prediction, the mean measured J and the count; expected calibration error (count-weighted
    mean |gap|), Brier score (mean squared error) and Pearson correlation."""
    if not pred:
        raise ValueError("nothing to calibrate")
    rows = []
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        idx = [i for i, p in enumerate(pred) if lo <= p < hi or (b == bins - 1 and p == 1.0)]
        if idx:
            rows.append(
                {
                    "bin": [lo, hi],
                    "n": len(idx),
                    "predicted": statistics.fmean(pred[i] for i in idx),
                    "measured": statistics.fmean(target[i] for i in idx),
                }
            )
    n = len(pred)
    ece = sum(r["n"] * abs(r["predicted"] - r["measured"]) for r in rows) / n
    brier = statistics.fmean((p - t) ** 2 for p, t in zip(pred, target))
    corr = None
    if n > 1 and statistics.pstdev(pred) > 0 and statistics.pstdev(target) > 0:
        corr = statistics.correlation(pred, target)
    return {
        "n": n,
        "ece": ece,
        "brier": brier,
        "correlation": corr,
        "bins": rows,
        "brier_of_the_mean": statistics.fmean((statistics.fmean(target) - t) ** 2 for t in target),
    }
