"""Faults of the harness itself, for the reports self-test (loaded with -p).

The tests named in CUTOVER_BREAK_SETUP get a setup that raises (as a broken fixture would),
those in CUTOVER_BREAK_TEARDOWN a teardown whose assertion fails (harness code, not the
runtime): results.json must call both "error", and Allure must file both as harness errors.
"""
import os

import pytest


def _named(var, name):
    return name in [n for n in os.environ.get(var, "").split(",") if n]


@pytest.fixture(autouse=True)
def _harness_fault(request):
    if _named("CUTOVER_BREAK_SETUP", request.node.name):
        raise RuntimeError("harness fault on purpose: setup broke")
    yield
    if _named("CUTOVER_BREAK_TEARDOWN", request.node.name):
        assert False, "harness fault on purpose: a teardown check failed"
