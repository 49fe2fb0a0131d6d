"""A deliberately leaky pytest plugin for the leak-check self-test (loaded with -p).

It creates one labelled container for the run and never removes it, as a buggy check would.
"""
import os

import docker


def pytest_sessionstart(session):
    ctx = getattr(session.config, "cutover", None)
    if ctx is None or hasattr(session.config, "workerinput"):
        return
    t = ctx.targets[os.environ["CUTOVER_LEAK_TARGET"]]
    c = docker.DockerClient(base_url=t.endpoint, timeout=30)
    c.containers.run(t.image, ["sleep", "600"], detach=True,
                     labels=dict(ctx.labels, **{"cutover.test": "leaky-plugin"}))
