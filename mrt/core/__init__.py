"""The pure core: episode segmentation, progress/regret/vote/pass@k math, grading of forced
answers, per-trace and summary figures, and advantage arithmetic. No I/O, no torch."""
