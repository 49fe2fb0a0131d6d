"""A pytest plugin for the CLI's honesty self-test (loaded with -p): the run dies early.

Before any check runs it leaves a results.json of *another* run in the output folder (every
record passed, complete) and ends pytest with an internal error, as a crashed or killed
session would. `cutover run` must not report that file's verdict as this run's.
"""
import json
import os


def pytest_sessionstart(session):
    config = session.config
    if hasattr(config, "workerinput") or not getattr(config, "cutover", None) or not config.cutover.out:
        return
    doc = {"run": {"id": "someone-elses-run", "complete": True},
           "results": [{"check": "vis.meminfo", "target": "t", "allocation": "a", "outcome": "pass"}]}
    with open(os.path.join(config.cutover.out, "results.json"), "w") as f:
        json.dump(doc, f)
    os._exit(3)
