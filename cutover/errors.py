"""Errors a person can act on: one line, naming the problem, never a traceback."""


def one_line(text):
    """Keep a message on one line: a newline inside a quoted value is shown, not obeyed."""
    return str(text).replace("\r", "\\r").replace("\n", "\\n")


def show(value, limit=60):
    """A value as an error message may quote it: repr, on one line, cut short.

    A bad input may be a huge or deeply nested structure: its repr must neither flood the
    line nor fail (RecursionError).
    """
    try:
        text = repr(value)
    except RecursionError:
        text = f"<{type(value).__name__} nested too deeply>"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def seconds(text):
    """A time limit given on a command line: a positive, finite number of seconds.

    An argparse type (the CLI's --test-timeout/--op-timeout and pytest's --op-timeout): a
    zero, negative or infinite limit would mean "never time out".
    """
    import argparse
    import math
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds") from None
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got '{text}'")
    return value


class CutoverError(Exception):
    """Bad input or an unusable environment. The CLI prints it on one line and exits 2."""
    exit_code = 2

    def __init__(self, message="", *args):
        super().__init__(one_line(message), *args)


class RuntimeTimeout(CutoverError):
    """A runtime operation did not finish within its timeout."""
    exit_code = 1
