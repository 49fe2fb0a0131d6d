"""Errors a person can act on: one line, naming the problem, never a traceback."""


class CutoverError(Exception):
    """Bad input or an unusable environment. The CLI prints it on one line and exits 2."""
    exit_code = 2


class RuntimeTimeout(CutoverError):
    """A runtime operation did not finish within its timeout."""
    exit_code = 1
