"""A deliberately leaky pytest plugin for the leak-check self-test (loaded with -p).

It creates a volume and a network labelled with the run (as a buggy check would) on the
target named by CUTOVER_LEAK_TARGET and never removes them.
"""
import os

import docker


def pytest_sessionstart(session):
    ctx = getattr(session.config, "cutover", None)
    if ctx is None or hasattr(session.config, "workerinput"):
        return
    t = ctx.targets[os.environ["CUTOVER_LEAK_TARGET"]]
    labels = dict(ctx.labels, **{"cutover.test": "leaky-volume-plugin"})
    c = docker.DockerClient(base_url=t.endpoint, timeout=30)
    c.volumes.create(name=f"cutover-leak-{ctx.run_id}", labels=labels)
    c.networks.create(f"cutover-leak-{ctx.run_id}", driver="bridge", internal=True, labels=labels,
                      options={"com.docker.network.bridge.name": f"cvl{ctx.run_id[-6:]}"})
    c.close()
