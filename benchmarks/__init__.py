"""Rerunnable benchmarks of mrt: speed, the didactic designs, backtracking, early stopping, the
soak. Each is run from the repository root as a module (``python -m benchmarks.NAME``); the
shared experiment runner is :mod:`benchmarks.runner`, results and committed records are in
``benchmarks/results/``."""
