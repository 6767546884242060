"""Measure test-time compute: the meta-prover (forced answers after each prefix), the analysis
driver (`mrt analyze`: J, progress, regret, maj@k, budget forcing) and the evaluation harness (`mrt eval`)."""
