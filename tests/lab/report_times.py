"""A pytest plugin for the fault self-tests (loaded with -p): when each report came in.

Appends `<epoch> <outcome> <phase> <nodeid>` to $CUTOVER_REPORT_TIMES for every test report
the controller receives (xdist workers' reports included, a crashed worker's too), flushed at
once, so a fault test can measure the time from its fault to the first error record.
"""
import os
import time

_worker = False


def pytest_configure(config):
    global _worker
    _worker = hasattr(config, "workerinput")      # only the controller writes (no doubles)


def pytest_runtest_logreport(report):
    path = os.environ.get("CUTOVER_REPORT_TIMES")
    if _worker or not path or (report.outcome == "passed" and report.when != "call"):
        return
    with open(path, "a") as f:
        f.write(f"{time.time():.3f} {report.outcome} {report.when} {report.nodeid}\n")
