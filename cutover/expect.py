"""Expectations: compare what a check expected with what it observed, and say both.

Pure logic (no pytest, no runtime). A matcher renders itself as the expectation a person
reads in a report ("262144 kB ±1%"), and `compare` returns one line per mismatch.
"""


class Matcher:
    unit = ""

    def ok(self, observed):
        raise NotImplementedError

    def _u(self, v):
        return f"{_fmt(v)} {self.unit}".strip()


class Equals(Matcher):
    def __init__(self, value, unit=""):
        self.value, self.unit = value, unit

    def ok(self, observed):
        return observed == self.value

    def __str__(self):
        return self._u(self.value)


class Approx(Matcher):
    def __init__(self, value, rel=0.0, abs=0.0, unit=""):
        self.value, self.rel, self.abs, self.unit = value, rel, abs, unit

    def ok(self, observed):
        if not isinstance(observed, (int, float)):
            return False
        return abs(observed - self.value) <= max(self.abs, self.rel * abs(self.value))

    def __str__(self):
        tol = f" ±{self.rel * 100:g}%" if self.rel else (f" ±{_fmt(self.abs)}" if self.abs else "")
        return self._u(self.value) + tol


class AtMost(Matcher):
    def __init__(self, value, unit=""):
        self.value, self.unit = value, unit

    def ok(self, observed):
        return isinstance(observed, (int, float)) and observed <= self.value

    def __str__(self):
        return "<= " + self._u(self.value)


class AtLeast(Matcher):
    def __init__(self, value, unit=""):
        self.value, self.unit = value, unit

    def ok(self, observed):
        return isinstance(observed, (int, float)) and observed >= self.value

    def __str__(self):
        return ">= " + self._u(self.value)


class Between(Matcher):
    """lo <= observed <= hi (e.g. a stop that must last its grace period, but not much more)."""

    def __init__(self, lo, hi, unit=""):
        self.lo, self.hi, self.unit = lo, hi, unit

    def ok(self, observed):
        return isinstance(observed, (int, float)) and not isinstance(observed, bool) \
            and self.lo <= observed <= self.hi

    def __str__(self):
        return f"{_fmt(self.lo)}..{self._u(self.hi)}"


class OneOf(Matcher):
    def __init__(self, *values):
        self.values = values

    def ok(self, observed):
        return observed in self.values

    def __str__(self):
        return " or ".join(_fmt(v) for v in self.values)


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.2f}".rstrip("0").rstrip(".") if abs(v) < 1e6 else f"{v:.0f}"
    return str(v)


def as_matcher(expected):
    return expected if isinstance(expected, Matcher) else Equals(expected)


def render(expected):
    return {k: str(as_matcher(v)) for k, v in expected.items()}


def compare(expected, observed):
    """Mismatch lines for every expected key whose observation does not match."""
    out = []
    for key, exp in expected.items():
        m = as_matcher(exp)
        obs = observed.get(key, "<missing>")
        if not m.ok(obs):
            unit = f" {m.unit}" if getattr(m, "unit", "") and isinstance(obs, (int, float)) else ""
            out.append(f"{key}: expected {m}, observed {_fmt(obs)}{unit}")
    return out
