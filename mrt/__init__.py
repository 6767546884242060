"""MRT: measure and optimise how language models spend test-time compute."""

__version__ = "0.1.0"
