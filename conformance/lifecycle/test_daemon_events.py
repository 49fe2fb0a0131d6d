"""Daemon independence: containers survive every stop, kill, restart and upgrade of the daemon.

A table, as in moby's integration/container/restart_test.go, checked as a whole state, as in
containerd's release-upgrade test: for each target x daemon event, one scenario builds eight
containers -- container state before the event (running, paused, created, exited) x restart
policy (no, always) -- on a named volume, records everything, runs the event once through the
target's daemon commands, and then checks every container:

  life.<event>.live     running and paused containers: same state and host PID, not restarted
                        (StartedAt and RestartCount unchanged), `exec` gives the same output as
                        root and as user 'app', the log keeps every line written before, during
                        and after the outage and goes on, `stop` sends SIGTERM and SIGKILL only
                        after its grace period, `rm` works and leaves no mount on the host;
  life.<event>.stopped  created and exited containers keep state, start time, exit code and
                        logs; `rm` works and leaves no mount; image and volume lists unchanged.

Each record names every container x aspect in expected/observed, so a failure says which case
broke. The events: daemon.stop + daemon.start (SIGTERM), daemon.kill + daemon.start (SIGKILL),
daemon.containerd-kill (SIGKILL of its containerd; daemon.start afterwards brings back one
that nothing restarted), daemon.upgrade (restart with a changed configuration; the scenario
restores the usual one with daemon.stop + daemon.start afterwards).

An event that did not happen is an error, never a pass (a no-op command would leave every
container as it was): the host must show a new daemon process on the endpoint after a
restart and a helper process (containerd) gone after a containerd kill (daemonprocs.py), and
an upgrade must change the daemon's configuration (its info, and the log options a new
container gets) and the revert must bring it back. `exec` must give its expected output
before the event too, so a runtime whose exec is broken cannot pass by being broken alike.
A daemon that does not come back in DAEMON_BACK_S is an error of the target; the run goes on.
"""
import concurrent.futures
import re
import secrets
import time
from dataclasses import dataclass, field

import pytest

from cutover.drivers.base import RuntimeFailure, Unsupported
from conformance.lifecycle import daemonprocs
from cutover.expect import AtLeast, Between, Equals
from fixtures import daemonlock
from fixtures.runtime import Containers

STATES = ("running", "paused", "created", "exited")
POLICIES = ("no", "always")
LIVE = ("running", "paused")
TICK_S = 0.2
OUTAGE_S = 2.0          # how long the daemon stays down between stop/kill and start
STOP_TIMEOUT = 2        # the containers' own stop timeout (a daemon without live-restore waits it)
STOP_GRACE = 2          # the grace period of the `stop` after the event
STOP_SLACK = 6.0        # what a stop may take beyond its grace period
DAEMON_BACK_S = 60      # the daemon must answer again within this
SETTLE_S = 30           # and run an exec again (containerd reconnected) within this
AFTER_S = 3 * TICK_S    # log lines written after the event: wait this long for some

# Writes its marker files, then logs a numbered tick every TICK_S; SIGTERM is logged, not obeyed.
TICKER = ("echo $MARK > /tmp/marker; echo $MARK > /data/$SLOT; trap 'echo term' TERM; i=0; "
          f"while :; do echo tick $i; i=$((i+1)); sleep {TICK_S}; done")
# What `exec` must answer the same before and after (waits for the marker files first).
PROBE = ("while [ ! -s /tmp/marker ] || [ ! -s /data/$SLOT ]; do sleep 0.05; done; "
         "echo $(id -un) $(cat /tmp/marker) $(cat /data/$SLOT) $(hostname)")


@dataclass
class Event:
    actions: tuple          # daemon actions, in order; OUTAGE_S between the first and the rest
    revert: tuple = ()      # daemon actions that restore the usual state afterwards
    proof: str = "restart"  # what shows it happened: daemonprocs.PROOFS
    changes_config: bool = False    # the daemon must come back with another configuration


EVENTS = {
    "daemon-stop": Event(("stop", "start")),
    "daemon-kill": Event(("kill", "start")),
    # `start` afterwards: where nothing restarts a killed containerd, the daemon's own start
    # brings it back, so that the scenario can clean up (a no-op where all runs already).
    "containerd-kill": Event(("containerd-kill",), revert=("start",), proof="helper"),
    "daemon-upgrade": Event(("upgrade",), revert=("stop", "start"), changes_config=True),
}
# What an "upgrade" must change, as the daemon reports it (plus a new container's log options).
CONFIG_FACTS = ("runtime_version", "components", "oci_runtimes", "default_runtime", "storage_driver",
                "cgroup_driver", "live_restore")


@dataclass
class Case:
    state: str
    policy: str
    probe: object = None
    before: object = None            # ContainerState
    execs: dict = field(default_factory=dict)
    logs_before: str = ""
    tick_before: int = -1            # last tick logged just before the event
    tick_up: int = -1                # last tick logged once the daemon was back
    mounts_of: list = field(default_factory=list)
    hostname: str = None

    @property
    def name(self):
        return f"{self.state}/{self.policy}"

    @property
    def id(self):
        return self.probe.id


class Timeline:
    def __init__(self):
        self.t0 = time.monotonic()
        self.lines = []

    def __call__(self, msg):
        self.lines.append(f"{time.monotonic() - self.t0:7.2f}s  {msg}")

    def text(self):
        return "\n".join(self.lines)


def ticks(log):
    return [int(m.group(1)) for m in re.finditer(r"^tick (\d+)$", log, re.M)]


def log_facts(log):
    t = ticks(log)
    last = max(t) if t else -1
    return {"last": last, "lost": len(set(range(last + 1)) - set(t)), "restarted": t.count(0) > 1,
            "terms": log.count("term\n")}


def _err(e):
    return f"error: {str(e).splitlines()[0][:160]}" if str(e) else f"error: {type(e).__name__}"


def host_mounts(driver, needles):
    """Mount points on the host whose mountinfo line names any of the needles."""
    needles = [n for n in needles if n]
    res = driver.host.run("cat /proc/self/mountinfo")
    return sorted({l.split()[4] for l in res.stdout.splitlines() if any(n in l for n in needles)})


class Scenario:
    def __init__(self, driver, event_name, pool, run_id):
        self.driver, self.event_name, self.event = driver, event_name, EVENTS[event_name]
        self.pool, self.run_id = pool, run_id
        self.log = Timeline()
        self.cases = [Case(s, p) for s in STATES for p in POLICIES]
        self.mark = secrets.token_hex(4)
        self.volume = None
        self.outage = 0.0
        self.evidence = []          # (name, text) attached to both records
        self.config_before = None

    # -- build the state ----------------------------------------------------------------------
    def build(self):
        d, log = self.driver, self.log
        t = d.target
        self.volume = d.create_volume(f"cutover-{self.run_id}-{t.name}-{self.event_name}",
                                      labels=dict(self.pool.ctx.labels, **{"cutover.test": self.pool.owner}))
        for c in self.cases:
            c.probe = self.pool.run(d, command=["sh", "-c", TICKER], start=c.state != "created",
                                    restart=c.policy, stop_timeout=STOP_TIMEOUT,
                                    volumes={self.volume: "/data"},
                                    env={"MARK": self.mark, "SLOT": f"{c.state}-{c.policy}"})
        for c in self.cases:
            if c.state in LIVE:
                c.execs = self.execs(c)
        for c in self.cases:
            if c.state == "paused":
                d.pause(c.id)
            elif c.state == "exited":
                d.stop(c.id, grace=0)
        self.images, self.volumes = d.list_images(), d.list_volumes()
        for c in self.cases:
            c.before = d.inspect(c.id)
            merged = ((c.before.raw.get("GraphDriver") or {}).get("Data") or {}).get("MergedDir")
            c.mounts_of = [c.id, merged]
            c.hostname = (c.before.raw.get("Config") or {}).get("Hostname")
        log(f"built {len(self.cases)} containers on volume {self.volume}: " +
            ", ".join(f"{c.name}={c.id[:12]}:{c.before.status}:pid {c.before.pid}" for c in self.cases))

    def exec_want(self, c, user):
        """What PROBE must print: the user, both markers, the container's host name."""
        return f"{user} {self.mark} {self.mark} {c.hostname}"

    def configuration(self):
        """The daemon's configuration as it reports it, and the log options of a new container
        (log options are in no daemon info); an upgrade must change it."""
        d = self.driver
        facts = d.facts()
        cfg = {k: facts.get(k) for k in CONFIG_FACTS}
        fresh = self.pool.run(d, command=["true"], start=False)     # removed with the pool
        cfg["a new container's log config"] = (d.inspect(fresh.id).raw.get("HostConfig") or {}).get("LogConfig")
        return cfg

    def execs(self, c):
        out = {}
        for user in ("root", "app"):
            for attempt in (1, 2):
                try:
                    res = self.driver.exec(c.id, ["sh", "-c", PROBE], user=user, timeout=10)
                    out[user] = res.stdout.strip() if res.exit_code == 0 else \
                        f"exit {res.exit_code}: {res.output.strip()[:120]}"
                except RuntimeFailure as e:
                    out[user] = _err(e)
                # dockerd 20.10 under load now and then loses a short exec's output (exit 0,
                # nothing attached), daemon event or not: ask once more, and say so.
                if out[user] or attempt == 2:
                    break
                self.log(f"exec as {user} in {c.name} succeeded with no output; asking again")
        return out

    # -- the event --------------------------------------------------------------------------------
    def run_event(self):
        d, log = self.driver, self.log
        if self.event.changes_config:
            self.config_before = self.configuration()
            log(f"configuration before: {self.config_before}")
        procs = daemonprocs.snapshot(d)
        log(f"before the event: {procs.text()}")
        for c in self.cases:
            c.logs_before = d.logs(c.id)
            c.tick_before = log_facts(c.logs_before)["last"]
        t_down = time.monotonic()
        for i, action in enumerate(self.event.actions):
            if i:
                time.sleep(OUTAGE_S)
            log(f"daemon.{action}: {d.target.daemon[action]}")
            res = d.daemon(action)
            out = (res.stdout + res.stderr).strip()
            log(f"daemon.{action} done (exit {res.rc}){': ' + out[-300:] if out else ''}")
        if not d.wait_ready(DAEMON_BACK_S):
            raise RuntimeFailure(f"the daemon of target '{d.target.name}' did not answer within "
                                 f"{DAEMON_BACK_S}s after {self.event_name}")
        self.outage = time.monotonic() - t_down
        log(f"daemon answers again ({self.outage:.1f}s after the event began)")
        self.confirm(procs)
        self.settle()
        for c in self.cases:
            try:
                c.tick_up = log_facts(d.logs(c.id))["last"]
            except RuntimeFailure:
                c.tick_up = -1

    def did_not_happen(self, why):
        return RuntimeFailure(f"{self.event_name} on target '{self.driver.target.name}': the event did not "
                              f"happen: {why}; nothing was shown")

    def confirm(self, before):
        """The event happened, or an error: a no-op command must not pass every check."""
        after = daemonprocs.snapshot(self.driver)
        self.log(f"after the event: {after.text()}")
        problem = daemonprocs.PROOFS[self.event.proof](before, after)
        if problem:
            raise self.did_not_happen(problem)
        if self.event.changes_config:
            now = self.configuration()
            self.log(f"configuration after: {now}")
            if now == self.config_before:
                raise self.did_not_happen(f"the daemon came back with the configuration it had ({_changed_keys(now)})")

    def settle(self):
        """After a containerd restart dockerd reconnects on its own time: wait for one exec."""
        d = self.driver
        c = next(c for c in self.cases if c.state == "running" and c.policy == "no")
        deadline = time.monotonic() + SETTLE_S
        while time.monotonic() < deadline:
            try:
                if d.inspect(c.id).status != "running":
                    return
                if d.exec(c.id, ["true"], timeout=5).exit_code == 0:
                    self.log("exec works again")
                    return
            except RuntimeFailure:
                pass
            time.sleep(0.3)
        self.log(f"exec still failing {SETTLE_S}s after the daemon came back")

    # -- the whole state, after ---------------------------------------------------------------------
    def observe(self):
        d, log = self.driver, self.log
        exp_live, obs_live, exp_stopped, obs_stopped = {}, {}, {}, {}
        after = {c.name: d.inspect(c.id) for c in self.cases}
        log("after: " + ", ".join(f"{n}:{s.status}:pid {s.pid}" for n, s in after.items()))
        for c in self.cases:
            st = after[c.name]
            exp, obs = (exp_live, obs_live) if c.state in LIVE else (exp_stopped, obs_stopped)
            n = c.name
            exp[f"{n}: state"], obs[f"{n}: state"] = c.before.status, st.status
            if c.state in LIVE:
                exp[f"{n}: pid"], obs[f"{n}: pid"] = c.before.pid, st.pid
            exp[f"{n}: started at"], obs[f"{n}: started at"] = c.before.started_at, st.started_at
            exp[f"{n}: restart count"] = c.before.raw.get("RestartCount")
            obs[f"{n}: restart count"] = st.raw.get("RestartCount")
            if c.state == "exited":
                exp[f"{n}: exit code"], obs[f"{n}: exit code"] = c.before.exit_code, st.exit_code
        # Paused containers must still be controllable: unpause, then they are like running ones.
        for c in self.cases:
            if c.state == "paused":
                if after[c.name].status == "paused":
                    try:
                        d.unpause(c.id)
                        res = "ok"
                    except RuntimeFailure as e:
                        res = _err(e)
                else:
                    res = f"not paused ({after[c.name].status})"
                exp_live[f"{c.name}: unpause"], obs_live[f"{c.name}: unpause"] = "ok", res
        for c in self.cases:
            if c.state in LIVE:
                now = self.execs(c)
                for user in ("root", "app"):
                    # Before too: an exec broken before and after is no survival.
                    want = self.exec_want(c, user)
                    exp_live[f"{c.name}: exec as {user} before the event"] = want
                    obs_live[f"{c.name}: exec as {user} before the event"] = c.execs[user]
                    exp_live[f"{c.name}: exec as {user}"] = want
                    obs_live[f"{c.name}: exec as {user}"] = now[user]
        time.sleep(AFTER_S)
        # A quarter of the ticks the outage lasted: a loaded host slows the ticker, not this.
        min_during = int(self.outage / TICK_S * 0.25)
        for c in self.cases:
            log_now = d.logs(c.id)
            f = log_facts(log_now)
            self.evidence.append((f"log {c.name} ({c.id[:12]})", log_now[-1500:]))
            if c.state in LIVE:
                n = c.name
                exp_live[f"{n}: log lines lost"], obs_live[f"{n}: log lines lost"] = 0, f["lost"]
                exp_live[f"{n}: log restarted"], obs_live[f"{n}: log restarted"] = False, f["restarted"]
                if c.state == "running":
                    exp_live[f"{n}: log lines since the event"] = AtLeast(min_during)
                    obs_live[f"{n}: log lines since the event"] = f["last"] - c.tick_before
                exp_live[f"{n}: log lines after the event"] = AtLeast(1)
                obs_live[f"{n}: log lines after the event"] = f["last"] - max(c.tick_up, c.tick_before)
            else:
                n = c.name
                exp_stopped[f"{n}: log"] = f"{len(c.logs_before.splitlines())} lines, unchanged"
                obs_stopped[f"{n}: log"] = (f"{len(c.logs_before.splitlines())} lines, unchanged"
                                            if log_now == c.logs_before else
                                            f"{len(log_now.splitlines())} lines, changed")
        self.stop_live(exp_live, obs_live)
        self.remove_all(after, exp_live, obs_live, exp_stopped, obs_stopped)
        exp_stopped["images"], obs_stopped["images"] = Equals(_short(self.images)), _short(d.list_images())
        exp_stopped["volumes"], obs_stopped["volumes"] = Equals(self.volumes), self.volumes_after
        return (exp_live, obs_live), (exp_stopped, obs_stopped)

    def stop_live(self, exp, obs):
        """Stop every live container at once: SIGTERM (logged, ignored), SIGKILL after the grace."""
        d = self.driver
        live = [c for c in self.cases if c.state in LIVE]

        def stop(c):
            terms = log_facts(d.logs(c.id))["terms"]
            t0 = time.monotonic()
            try:
                d.stop(c.id, grace=STOP_GRACE)
                res = "ok"
            except RuntimeFailure as e:
                res = _err(e)
            took = round(time.monotonic() - t0, 2)
            st = d.inspect(c.id)
            got_term = log_facts(d.logs(c.id))["terms"] > terms
            return c, res, took, st, got_term
        with concurrent.futures.ThreadPoolExecutor(len(live)) as ex:
            done = list(ex.map(stop, live))
        for c, res, took, st, got_term in done:
            n = c.name
            exp[f"{n}: stop"], obs[f"{n}: stop"] = "ok", res
            exp[f"{n}: stop took"] = Between(STOP_GRACE - 0.2, STOP_GRACE + STOP_SLACK * d.target.time_factor, unit="s")
            obs[f"{n}: stop took"] = took
            exp[f"{n}: SIGTERM before SIGKILL"], obs[f"{n}: SIGTERM before SIGKILL"] = True, got_term
            exp[f"{n}: exit code after stop"], obs[f"{n}: exit code after stop"] = 137, st.exit_code
            exp[f"{n}: state after stop"], obs[f"{n}: state after stop"] = "exited", st.status
        self.log("stopped: " + ", ".join(f"{c.name} in {took}s ({res})" for c, res, took, _, _ in done))

    def remove_all(self, after, exp_live, obs_live, exp_stopped, obs_stopped):
        d = self.driver
        self.volumes_after = d.list_volumes()
        for c in self.cases:
            exp, obs = (exp_live, obs_live) if c.state in LIVE else (exp_stopped, obs_stopped)
            # A container whose state the event changed cannot be removed unforced; rm -f then
            # still shows whether rm works at all (the state mismatch is recorded already).
            force = c.state not in LIVE and after[c.name].status != c.before.status
            try:
                d.remove(c.id, force=force)
                res = "ok"
            except RuntimeFailure as e:
                res = _err(e)
            try:
                d.inspect(c.id)
                gone = "still listed"
            except RuntimeFailure:
                gone = "ok"
            exp[f"{c.name}: rm"], obs[f"{c.name}: rm"] = "ok", res if res != "ok" else gone
            exp[f"{c.name}: mounts left on host"] = Equals([])
            obs[f"{c.name}: mounts left on host"] = host_mounts(d, c.mounts_of)
        self.log("removed all containers")

    # -- clean up ---------------------------------------------------------------------------
    def cleanup(self):
        """Revert first (a containerd nothing restarted must be back to remove anything), then
        remove what observe() left, then make sure an upgrade's configuration was undone."""
        d = self.driver
        for action in self.event.revert:
            self.log(f"revert: daemon.{action}")
            d.daemon(action)
        if self.event.revert and not d.wait_ready(DAEMON_BACK_S):
            raise RuntimeFailure(f"the daemon of target '{d.target.name}' did not answer within "
                                 f"{DAEMON_BACK_S}s after restoring its configuration")
        self.remove_left()
        if self.volume:
            try:
                d.remove_volume(self.volume)
            except Exception:
                pass
        if self.config_before is not None:
            now = self.configuration()
            self.remove_left()
            if now != self.config_before:
                raise RuntimeFailure(f"target '{d.target.name}' still runs a changed configuration after "
                                     f"daemon.{' + daemon.'.join(self.event.revert)}: "
                                     f"{_changed_keys(now, self.config_before)}")

    def remove_left(self):
        """Remove the pool's containers, retrying while a containerd brought back by the revert
        reconnects (no retries without a revert: a daemon that is gone stays gone)."""
        left, self.pool.made[:] = list(self.pool.made), []
        deadline = time.monotonic() + (SETTLE_S if self.event.revert else 0)
        while left:
            still = []
            for drv, cid in left:
                try:
                    drv.remove(cid)
                except Exception:
                    still.append((drv, cid))
            left = still
            if not left or time.monotonic() > deadline:
                break
            time.sleep(1)
        if left:
            self.log(f"could not remove {len(left)} container(s); the leak check names them")
        self.pool.made.extend(left)


def _changed_keys(cfg, other=None):
    if other is None:
        return ", ".join(f"{k} {v}" for k, v in cfg.items() if k in ("default_runtime", "runtime_version"))
    return "; ".join(f"{k}: {other.get(k)} before, {v} now" for k, v in cfg.items() if other.get(k) != v)


def _short(ids):
    return sorted(i.replace("sha256:", "")[:12] for i in ids)


def run_scenario(driver, event_name, ctx):
    event = EVENTS[event_name]
    missing = [a for a in event.actions + event.revert if not driver.target.daemon.get(a)]
    if missing:
        raise Unsupported(f"target '{driver.target.name}' has no daemon.{missing[0]} command "
                          f"(needed for {event_name})")
    pool = Containers(ctx, f"lifecycle:{driver.target.name}:{event_name}")
    sc = Scenario(driver, event_name, pool, ctx.run_id)
    # Plain data only: the result is shared with the other check through a pickle (run_once).
    out = {"live": None, "stopped": None, "error": None}
    try:
        try:
            sc.build()
            sc.run_event()
            out["live"], out["stopped"] = sc.observe()
        finally:
            sc.cleanup()
    except (RuntimeFailure, Unsupported) as e:
        out["error"] = e
    except Exception as e:   # transport trouble the driver did not translate: still one error
        out["error"] = RuntimeFailure(f"{event_name} scenario: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
    out["evidence"] = [("timeline", sc.log.text())] + sc.evidence
    out["notes"] = [f"{event_name}: 8 containers (running, paused, created, exited x restart no, always), "
                    f"daemon down {sc.outage:.1f}s"]
    return out


@pytest.fixture(scope="session")
def daemon_event(cutover_ctx, pytestconfig):
    """One scenario per target x event, run by the first check that needs it (inside that
    check, so that it holds the daemon's exclusive lock), once per run even across workers."""

    def get(driver, event_name):
        out = daemonlock.run_once(pytestconfig, f"daemon-event|{driver.target.name}|{event_name}",
                                  lambda: run_scenario(driver, event_name, cutover_ctx))
        if out["error"] is not None:
            raise out["error"]
        return out
    return get


def _params(kind):
    return [pytest.param(e, id=e, marks=pytest.mark.check(f"life.{e}.{kind}")) for e in EVENTS]


def _attach(check, out):
    for name, text in out["evidence"]:
        check.attach(name, text)
    for n in out["notes"]:
        check.note(n)


@pytest.mark.disruptive("daemon")
@pytest.mark.parametrize("event", _params("live"))
def test_live_containers_survive(daemon_event, driver, event, check):
    out = daemon_event(driver, event)
    _attach(check, out)
    check.expect(*out["live"])


@pytest.mark.disruptive("daemon")
@pytest.mark.parametrize("event", _params("stopped"))
def test_stopped_containers_keep_state(daemon_event, driver, event, check):
    out = daemon_event(driver, event)
    _attach(check, out)
    check.expect(*out["stopped"])
