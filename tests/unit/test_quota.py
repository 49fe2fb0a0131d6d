"""The disk quota suite's pure logic: quota sizes, tolerance, reading a fill's outcome."""
import pytest

from cutover import quota
from cutover.errors import CutoverError

MIB = 2 ** 20


def test_parse_default_sizes():
    a, b = quota.parse(quota.DEFAULT)
    assert (a.name, a.disk, a.memory) == ("disk64m", 64 * MIB, 256 * MIB)
    assert (b.name, b.disk) == ("disk160m", 160 * MIB)


@pytest.mark.parametrize("spec, words", [("", "at least two sizes"), ("64m", "at least two sizes"),
                                         ("8m,64m", "below 32 MiB"), ("64m,64m", "repeat"),
                                         ("lots", "not a size"), ("64.5m,160m", "whole number")])
def test_parse_refuses_bad_sizes(spec, words):
    with pytest.raises(CutoverError, match=words):
        quota.parse(spec)


def test_tolerance_is_below_the_quota_only():
    m = quota.expected(64 * MIB)
    assert str(m) == "49.6..64 MiB"
    assert m.ok(54.7) and m.ok(64.0) and not m.ok(64.1) and not m.ok(49.5)
    assert quota.expected(160 * MIB).ok(139.0)        # ext4 root with the probe image, measured


def test_neighbour_is_another_size():
    qs = quota.parse("64m,160m")
    assert quota.neighbour_quota(64 * MIB, qs) == 160 * MIB
    assert quota.neighbour_quota(160 * MIB, qs) == 64 * MIB
    assert quota.neighbour_quota(64 * MIB, qs[:1]) == 128 * MIB


@pytest.mark.parametrize("out, expected", [
    ("dd: error writing '/f': No space left on device\n53+0 records in\nrc=1\nsize=55574528\n", ("ENOSPC", 55574528)),
    ("dd: error writing '/f': Disk quota exceeded\nrc=1\nsize=64962560\n", ("EDQUOT", 64962560)),
    ("81+0 records in\n81+0 records out\nrc=0\nsize=84934656\n", ("none", 84934656)),
    ("dd: can't open '/f': Read-only file system\nrc=1\nsize=0\n", ("Read-only file system", 0)),
])
def test_fill_outcome(out, expected):
    assert quota.fill_outcome(out) == expected


def test_fill_outcome_unreadable():
    with pytest.raises(ValueError):
        quota.fill_outcome("sh: dd: not found\n")
