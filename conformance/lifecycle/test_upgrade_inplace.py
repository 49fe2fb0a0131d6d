"""Daemon independence across a release upgrade in place: old daemon out, new version in.

The way a host is really upgraded (`apt-get install docker.io=<next>` with live-restore): the
containers started under the old daemon keep running while it stops, the new version starts on
the same data root and must re-adopt every one of them, as containerd's release-upgrade test
checks (integration/release_upgrade_linux_test.go: build state under the old version, switch,
check the whole state as a set).

It is the daemon-events scenario of test_daemon_events.py (eight containers: running, paused,
created, exited x restart policy no, always, on a named volume; then state, host PID, start
time, restart count, exec as root and as 'app', every log line, stop semantics, rm, mounts
left, image and volume lists) with one event: `daemon.release-upgrade`. The runtime's version
before and after is recorded; a command that leaves the version unchanged is no upgrade, and
the check says so (error) instead of passing. Afterwards the target's own `daemon.stop` +
`daemon.start` bring back the release it runs normally (a rollback, with no containers left).

A target without `daemon.release-upgrade` is 'unsupported': the harness was not told how to
upgrade it, and cannot certify that it can be.
"""
import pytest

from conformance.lifecycle.test_daemon_events import Event, Scenario, _attach
from cutover.drivers.base import RuntimeFailure, Unsupported
from fixtures import daemonlock
from fixtures.runtime import Containers

EVENT_NAME = "release-upgrade"
EVENT = Event(("release-upgrade",), revert=("stop", "start"))


class UpgradeScenario(Scenario):
    def __init__(self, driver, pool, run_id):
        super().__init__(driver, "daemon-upgrade", pool, run_id)
        self.event_name, self.event = EVENT_NAME, EVENT


def _version(driver):
    try:
        return driver.facts().get("runtime_version")
    except Exception as e:      # the daemon may be down: the scenario's own wait reports it
        return f"unknown ({str(e).splitlines()[0][:80]})"


def run_upgrade(driver, ctx):
    t = driver.target
    missing = [a for a in EVENT.actions + EVENT.revert if not t.daemon.get(a)]
    if missing:
        raise Unsupported(f"target '{t.name}' has no daemon.{missing[0]} command "
                          f"(how to upgrade its runtime in place)")
    sc = UpgradeScenario(driver, Containers(ctx, f"lifecycle:{t.name}:{EVENT_NAME}"), ctx.run_id)
    # Plain data only: shared with the other check through a pickle (daemonlock.run_once).
    out = {"live": None, "stopped": None, "error": None}
    versions = [_version(driver)]
    try:
        try:
            sc.build()
            sc.run_event()
            versions.append(_version(driver))
            sc.log(f"runtime version {versions[0]} -> {versions[1]}")
            if versions[1] == versions[0]:
                raise RuntimeFailure(f"daemon.release-upgrade of target '{t.name}' left the runtime at "
                                     f"{versions[0]}: no upgrade happened, so nothing was shown")
            out["live"], out["stopped"] = sc.observe()
        finally:
            sc.cleanup()
            versions.append(_version(driver))
            sc.log(f"after daemon.stop + daemon.start: runtime version {versions[-1]}")
        if versions[-1] != versions[0]:
            raise RuntimeFailure(f"target '{t.name}' runs {versions[-1]} after daemon.stop + daemon.start, "
                                 f"not {versions[0]} as before the check")
    except (RuntimeFailure, Unsupported) as e:
        out["error"] = e
    except Exception as e:   # transport trouble the driver did not translate: still one error
        out["error"] = RuntimeFailure(f"{EVENT_NAME} scenario: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
    out["evidence"] = [("timeline", sc.log.text())] + sc.evidence
    out["versions"] = versions
    out["notes"] = [f"release upgrade in place: {' -> '.join(str(v) for v in versions[:2])} on the same data root; "
                 f"8 containers (running, paused, created, exited x restart no, always), "
                 f"daemon down {sc.outage:.1f}s"]
    return out


@pytest.fixture(scope="session")
def release_upgrade(cutover_ctx, pytestconfig):
    """One scenario per target, run by the first of the two checks (holding the daemon's
    exclusive lock), once per run even across workers."""

    def get(driver):
        out = daemonlock.run_once(pytestconfig, f"release-upgrade|{driver.target.name}",
                                  lambda: run_upgrade(driver, cutover_ctx))
        if out["error"] is not None:
            raise out["error"]
        return out
    return get


@pytest.mark.disruptive("daemon")
@pytest.mark.check("life.upgrade-inplace.live")
def test_upgrade_inplace_live(release_upgrade, driver, check):
    out = release_upgrade(driver)
    _attach(check, out)
    check.expect(*out["live"])


@pytest.mark.disruptive("daemon")
@pytest.mark.check("life.upgrade-inplace.stopped")
def test_upgrade_inplace_stopped(release_upgrade, driver, check):
    out = release_upgrade(driver)
    _attach(check, out)
    check.expect(*out["stopped"])
