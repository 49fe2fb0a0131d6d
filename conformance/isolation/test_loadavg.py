"""Load visibility: a busy neighbour's load must not show in an idle container (T4 promise 1).

One scenario per target: a busy container (busy loops) and an idle one, same allocation.
After the load has built up, the busy one must see its own load and the idle one nothing.
The scenario is shared by the /proc/loadavg and the `uptime` (sysinfo) checks.
"""
import time

import pytest

from cutover import parse
from cutover.expect import AtLeast, AtMost

BUSY_LOOPS = 2
BUILD_UP_S = 40          # give up waiting for the busy container's load after this
IDLE_MAX = 0.1           # an idle container's own 1-minute load
BUSY_MIN = 0.3           # two busy loops for ~20 s: 2 * (1 - e^(-20/60)) ~ 0.57


@pytest.fixture(scope="session")
def load_scenario(probe_pool, cutover_ctx):
    """{target name: observations}, one scenario per target, run on first use."""
    done = {}
    from fixtures.runtime import Containers

    def run(driver, allocation):
        name = driver.target.name
        if name in done:
            return done[name]
        pool = Containers(cutover_ctx, f"load-scenario:{name}")
        try:
            busy = pool.run(driver, allocation)
            idle = pool.run(driver, allocation)
            # lxcfs tracks a cgroup's load only once its loadavg has been read.
            for c in (busy, idle):
                c.sh("cat /proc/loadavg")
            for _ in range(BUSY_LOOPS):
                driver.exec_detached(busy.id, ["sh", "-c", "while :; do :; done"])
            t0 = time.monotonic()
            busy_load = 0.0
            while time.monotonic() - t0 < BUILD_UP_S:
                time.sleep(2)
                busy_load = parse.loadavg(busy.sh("cat /proc/loadavg"))[0]
                if busy_load >= BUSY_MIN + 0.1:
                    break
            obs = {"busy": busy.sh("cat /proc/loadavg"), "idle": idle.sh("cat /proc/loadavg"),
                   "idle_uptime": idle.sh("uptime"), "busy_uptime": busy.sh("uptime"),
                   "host": driver.host.file("/proc/loadavg").content_string,
                   "seconds": round(time.monotonic() - t0, 1)}
        finally:
            pool.remove_all()
        done[name] = obs
        return obs
    return run


def _evidence(check, obs):
    check.attach("load scenario", "\n".join(f"{k}: {v.strip() if isinstance(v, str) else v}"
                                            for k, v in obs.items()))
    check.note(f"busy and idle containers, {BUSY_LOOPS} busy loops for {obs['seconds']}s")


@pytest.mark.slow_scenario
@pytest.mark.one_allocation
@pytest.mark.check("vis.loadavg")
def test_loadavg(load_scenario, driver, allocation, check):
    obs = load_scenario(driver, allocation)
    _evidence(check, obs)
    check.expect({"idle load1": AtMost(IDLE_MAX), "busy load1": AtLeast(BUSY_MIN)},
                 {"idle load1": parse.loadavg(obs["idle"])[0], "busy load1": parse.loadavg(obs["busy"])[0]})


@pytest.mark.slow_scenario
@pytest.mark.one_allocation
@pytest.mark.check("vis.uptime-load")
def test_uptime_load(load_scenario, driver, allocation, check):
    obs = load_scenario(driver, allocation)
    _evidence(check, obs)
    check.expect({"idle load1": AtMost(IDLE_MAX), "busy load1": AtLeast(BUSY_MIN)},
                 {"idle load1": parse.uptime_cmd_load1(obs["idle_uptime"]),
                  "busy load1": parse.uptime_cmd_load1(obs["busy_uptime"])})
