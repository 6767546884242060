"""Failures of a sampling backend that a command reports in one line (exit code 3), keeping
everything it finished before them."""


class SamplerError(RuntimeError):
    pass
