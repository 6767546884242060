"""Act at test time: stop thinking when measured progress stalls (rules, the online controller,
the learned progress estimator, and the accuracy-tokens trade-off of each rule)."""
