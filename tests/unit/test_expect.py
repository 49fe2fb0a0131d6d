"""Expectation matchers say what was expected and what was observed."""
from cutover.expect import Approx, AtLeast, AtMost, Equals, OneOf, compare, render


def test_matchers():
    assert Approx(100, rel=0.01).ok(100.9) and not Approx(100, rel=0.01).ok(102)
    assert Approx(10, abs=2).ok(12) and not Approx(10, abs=2).ok(12.5)
    assert AtMost(3).ok(3) and not AtMost(3).ok(3.1) and not AtMost(3).ok("3")
    assert AtLeast(0.3).ok(0.3) and not AtLeast(0.3).ok(0.1)
    assert Equals([]).ok([]) and not Equals([]).ok(["eth0"])
    assert OneOf("ENOSPC", "EDQUOT").ok("EDQUOT")


def test_compare_names_every_mismatch():
    bad = compare({"MemTotal": Approx(262144, rel=0.01, unit="kB"), "MemFree": AtMost(262144, unit="kB"),
                   "n": 1}, {"MemTotal": 24684084, "MemFree": 5, "n": 2})
    assert bad == ["MemTotal: expected 262144 kB ±1%, observed 24684084 kB", "n: expected 1, observed 2"]
    assert compare({"x": 1}, {}) == ["x: expected 1, observed <missing>"]
    assert render({"a": AtMost(3, unit="s"), "b": 4}) == {"a": "<= 3 s", "b": "4"}
