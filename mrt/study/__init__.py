"""Study verifier-based vs verifier-free scaling: diagnostics (heterogeneity, anti-concentration),
`mrt diagnose`, the outcome verifier and best-of-N, and the VB-vs-VF study (`mrt study vb-vf`)."""
