"""Before a run: does each target's runtime answer? One line per target that does not.

The run goes on regardless: the checks of such a target end as errors (never passes) and the
run exits non-zero. This only says why, once per target and up front, instead of leaving a
person to read the cause out of every error record.
"""
import sys
import threading
import time

from cutover.errors import one_line

MAX_PARALLEL = 32        # a fleet's endpoints are pinged in parallel, this many at a time


def _ping(target, timeout):
    """None when the target's runtime answers within timeout seconds, else the cause."""
    from cutover.drivers import driver_for
    try:
        driver_for(target, timeout=timeout).ping()
        return None
    except Exception as e:     # whatever the driver raises, the endpoint did not answer
        text = str(e).strip()
        return one_line(text.splitlines()[0] if text else type(e).__name__)


def unreachable(targets, timeout):
    """[(target name, endpoint, cause)] of the targets whose runtime does not answer.

    One ping per endpoint (targets often share a daemon), each bounded by the driver's own
    timeout; a ping that hangs anyway is given up after timeout + 5 s.
    """
    by_endpoint = {}
    for t in targets.values():
        by_endpoint.setdefault((t.driver, t.host, t.endpoint), []).append(t)
    causes, gate = {}, threading.Semaphore(MAX_PARALLEL)

    def work(key, target):
        with gate:
            causes[key] = _ping(target, timeout)

    threads = []
    for key, ts in by_endpoint.items():
        th = threading.Thread(target=work, args=(key, ts[0]), daemon=True)   # never blocks our exit
        th.start()
        threads.append((key, th))
    rounds = -(-len(threads) // MAX_PARALLEL)
    deadline = time.monotonic() + rounds * timeout + 5
    for key, th in threads:
        th.join(max(0.1, deadline - time.monotonic()))
    if "cutover.drivers.sshfwd" in sys.modules:       # the run's workers open their own
        sys.modules["cutover.drivers.sshfwd"].stop_all()
    out = []
    for key, ts in by_endpoint.items():
        cause = causes.get(key, f"did not answer within {timeout:g}s")
        out += [(t.name, t.endpoint, cause) for t in ts if cause is not None]
    return out
