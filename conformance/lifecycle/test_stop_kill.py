"""Stop and kill semantics: SIGTERM first, SIGKILL only after the grace period; exit codes right.

One scenario per target, shared by both checks: six containers, each ended one way, all at
once (the grace periods overlap, so the scenario takes about one grace period):

  graceful      traps SIGTERM and exits 0          `stop -t 10`  -> 0, well before the grace
  ignores-term  logs SIGTERM and goes on           `stop -t 2`   -> SIGKILL after 2 s: 137
  default-term  sleep under an init (tini)         `stop -t 10`  -> dies of SIGTERM: 143
  term-signal   sleep under an init (tini)         `kill -s TERM`-> 143
  killed        logs SIGTERM and goes on           `kill`        -> SIGKILL at once: 137
  exits-3       exits 3 by itself                  (wait)        -> 3
"""
import concurrent.futures
import time

import pytest

from cutover.drivers.base import RuntimeFailure
from cutover.expect import AtMost, Between, Equals
from fixtures.runtime import Containers

LONG_GRACE = 10
SHORT_GRACE = 2
SLACK = 6.0
PROMPT_S = 3.0          # a container that exits on SIGTERM is gone within this
WAIT_S = 30

TRAP_EXIT = "trap 'echo term; exit 0' TERM; echo up; while :; do sleep 0.1; done"
TRAP_IGNORE = "trap 'echo term' TERM; echo up; while :; do sleep 0.1; done"

CASES = {
    # name: (container kwargs, action, argument)
    "graceful": (dict(command=["sh", "-c", TRAP_EXIT]), "stop", LONG_GRACE),
    "ignores-term": (dict(command=["sh", "-c", TRAP_IGNORE]), "stop", SHORT_GRACE),
    "default-term": (dict(command=["sleep", "600"], init=True), "stop", LONG_GRACE),
    "term-signal": (dict(command=["sleep", "600"], init=True), "kill", "TERM"),
    "killed": (dict(command=["sh", "-c", TRAP_IGNORE]), "kill", "KILL"),
    "exits-3": (dict(command=["sh", "-c", "echo up; sleep 0.5; exit 3"]), "wait", None),
}


def _wait_up(driver, cid, deadline):
    """Until the container's shell has set its trap (it logs 'up' after)."""
    while time.monotonic() < deadline:
        if "up" in driver.logs(cid) or driver.inspect(cid).status != "running":
            return
        time.sleep(0.05)


def _end(driver, name, cid):
    kw, action, arg = CASES[name]
    t0 = time.monotonic()
    err = None
    try:
        if action == "stop":
            driver.stop(cid, grace=arg)
        elif action == "kill":
            driver.kill(cid, signal=arg)
    except RuntimeFailure as e:
        err = str(e).splitlines()[0][:160]
    st = driver.wait_exit(cid, WAIT_S)
    took = round(time.monotonic() - t0, 2)
    logs = driver.logs(cid)
    return {"name": name, "took": took, "error": err, "status": st.status if st else "still running",
            "exit": st.exit_code if st else None, "oom": st.oom_killed if st else None,
            "term_seen": "term" in logs, "logs": logs}


@pytest.fixture(scope="session")
def stop_scenario(cutover_ctx):
    done = {}

    def run(driver):
        name = driver.target.name
        if name in done:
            return done[name]
        pool = Containers(cutover_ctx, f"stop-scenario:{name}")
        try:
            ids = {}
            for case, (kw, _, _) in CASES.items():
                ids[case] = pool.run(driver, **kw).id
            deadline = time.monotonic() + 10
            for case, cid in ids.items():
                if "echo up" in " ".join(CASES[case][0]["command"]):
                    _wait_up(driver, cid, deadline)
            with concurrent.futures.ThreadPoolExecutor(len(ids)) as ex:
                obs = {o["name"]: o for o in ex.map(lambda c: _end(driver, c, ids[c]), ids)}
        finally:
            pool.remove_all()
        done[name] = obs
        return obs
    return run


def _evidence(check, obs):
    check.attach("stop/kill scenario", "\n".join(
        f"{n}: {CASES[n][1]} {CASES[n][2] or ''} -> {o['status']} exit {o['exit']} in {o['took']}s"
        f"{' (' + o['error'] + ')' if o['error'] else ''}; SIGTERM seen: {o['term_seen']}; "
        f"log: {o['logs'].strip()!r}" for n, o in obs.items()))


@pytest.mark.check("life.stop-grace")
def test_stop_grace(stop_scenario, driver, check):
    driver.require("exit-status", "report a container's exit code (LXC keeps none)")
    obs = stop_scenario(driver)
    _evidence(check, obs)
    g, i = obs["graceful"], obs["ignores-term"]
    f = driver.target.time_factor        # an emulated host adds its slowness to every stop
    check.note(f"stop -t {LONG_GRACE} of a container that exits on SIGTERM; "
               f"stop -t {SHORT_GRACE} of one that ignores it")
    check.expect({
        "exits on SIGTERM: SIGTERM seen": True,
        "exits on SIGTERM: stop took": AtMost(PROMPT_S * f, unit="s"),
        "exits on SIGTERM: exit code": 0,
        "ignores SIGTERM: SIGTERM seen": True,
        "ignores SIGTERM: stop took": Between(SHORT_GRACE - 0.2, SHORT_GRACE + SLACK * f, unit="s"),
        "ignores SIGTERM: exit code": 137,
    }, {
        "exits on SIGTERM: SIGTERM seen": g["term_seen"],
        "exits on SIGTERM: stop took": g["took"],
        "exits on SIGTERM: exit code": g["exit"],
        "ignores SIGTERM: SIGTERM seen": i["term_seen"],
        "ignores SIGTERM: stop took": i["took"],
        "ignores SIGTERM: exit code": i["exit"],
    })


@pytest.mark.check("life.exit-codes")
def test_exit_codes(stop_scenario, driver, check):
    driver.require("exit-status", "report a container's exit code (LXC keeps none)")
    obs = stop_scenario(driver)
    _evidence(check, obs)
    check.note("each container ended one way; inspect's State after it exited")
    expected = {"graceful": 0, "ignores-term": 137, "default-term": 143, "term-signal": 143,
                "killed": 137, "exits-3": 3}
    labels = {"graceful": "exit 0 on SIGTERM (stop)", "ignores-term": "SIGKILL after the grace (stop)",
              "default-term": "died of SIGTERM (stop)", "term-signal": "died of SIGTERM (kill -s TERM)",
              "killed": "SIGKILL (kill)", "exits-3": "exit 3 by itself"}
    exp, got = {}, {}
    for case, code in expected.items():
        exp[f"{labels[case]}: exit code"], got[f"{labels[case]}: exit code"] = code, obs[case]["exit"]
        exp[f"{labels[case]}: state"], got[f"{labels[case]}: state"] = "exited", obs[case]["status"]
        exp[f"{labels[case]}: OOM killed"] = Equals(False)
        got[f"{labels[case]}: OOM killed"] = obs[case]["oom"]
    check.expect(exp, got)
